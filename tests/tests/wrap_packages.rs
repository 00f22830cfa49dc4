//! Claude-Desktop-style configurations with no other flag: `stdio --wrap -- npx -y
//! @modelcontextprotocol/server-everything` and `stdio --wrap -- uvx mcp-server-time`. The
//! package is installed once, by the supervisor at start, into its cache (here a fresh
//! `XDG_CACHE_HOME`); a legacy and a 2026-07-28 client are served from it; a later start finds
//! it installed with the registries unreachable; and a session's server needs no network at
//! all (`--wrap-network none`: Landlock refuses it every TCP connection).
//!
//! `npx` is the system's (Node 20); `uvx` is uv from PyPI, installed pinned into `.venv-uv` by
//! `scripts/wrap-servers` and put on the supervisor's `PATH` as a host's would be.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bulkhead_tests::*;
use serde_json::{Value, json};

/// A first install downloads the package and its dependencies; a loaded machine is slow.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);

/// A directory holding only `uv` and `uvx` (links into `.venv-uv`), for the supervisor's
/// `PATH`; installs them first (scripts/wrap-servers is idempotent).
fn uv_bin() -> &'static Path {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let bin = BIN.get_or_init(|| {
        let root = wrap_servers();
        let bin = scratch_dir("uv-bin");
        for tool in ["uv", "uvx"] {
            std::os::unix::fs::symlink(root.join(".venv-uv/bin").join(tool), bin.join(tool))
                .map_err(|error| format!("cannot link {tool}: {error}"))?;
        }
        Ok(bin)
    });
    match bin {
        Ok(bin) => bin,
        Err(problem) => panic!("{problem}"),
    }
}

/// A loopback URL where nothing listens.
fn closed_registry() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/")
}

/// The registries every installer the supervisor could run would use.
const REGISTRY_VARIABLES: [&str; 4] = [
    "npm_config_registry",
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "PIP_INDEX_URL",
];

/// `bulkhead stdio EXTRA… --wrap -- COMMAND…` with `cache` as its XDG cache and `uv` on its
/// `PATH`, the registries pointed at a closed port when `offline`; started once it serves.
fn start(cache: &Path, extra: &[&str], command: &[&str], offline: bool) -> Running {
    let path = format!(
        "{}:{}",
        uv_bin().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut supervisor = TestSupervisor::new()
        .env("XDG_CACHE_HOME", cache.to_str().unwrap())
        .env("PATH", &path);
    if offline {
        let closed = closed_registry();
        for name in REGISTRY_VARIABLES {
            supervisor = supervisor.env(name, &closed);
        }
    }
    let mut args: Vec<&str> = extra.to_vec();
    args.extend(["--wrap", "--"]);
    args.extend(command);
    let mut running = supervisor.args(args).spawn();
    let ready = eventually(INSTALL_TIMEOUT, || {
        running.stderr().contains("serving MCP on stdio")
            || running.child.try_wait().ok().flatten().is_some()
    });
    assert!(
        ready && running.stderr().contains("serving MCP on stdio"),
        "the supervisor did not start serving:\n{}",
        running.stderr()
    );
    running
}

fn legacy(mut running: Running) -> Running {
    let init = running.request(
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bulkhead-tests", "version": "0"}}),
    );
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25", "{init}");
    running.notify("notifications/initialized", None);
    running
}

fn call(running: &mut Running, modern: bool, name: &str, arguments: Value) -> Value {
    let mut params = json!({"name": name, "arguments": arguments});
    if modern {
        params["_meta"] = modern_meta();
    }
    let response = running.request("tools/call", params);
    let result = response
        .get("result")
        .unwrap_or_else(|| panic!("{name} failed: {response}\n{}", running.stderr()))
        .clone();
    assert!(result["isError"] != true, "{name}: {result}");
    result
}

/// The default session and an opened one each answer `tool`; their servers are two processes.
fn two_sessions(running: &mut Running, modern: bool, tool: (&str, Value), check: fn(&Value)) {
    check(&call(running, modern, tool.0, tool.1.clone()));
    let opened = call(running, modern, "session_open", json!({}));
    let handle = structured(&opened)["session"].as_str().unwrap().to_string();
    let mut arguments = tool.1;
    arguments["session"] = json!(handle);
    check(&call(running, modern, tool.0, arguments));
    let default = call(running, modern, "session_info", json!({}));
    assert_ne!(structured(&default)["pid"], structured(&opened)["pid"]);
}

fn assert_installed_once(first: &str, later: &str, package: &str, cache: &Path) {
    let installed = format!("installed {package} into {}", cache.display());
    assert!(first.contains(&installed), "{first}");
    assert!(
        later.contains(&format!("{package} is installed in {}", cache.display())),
        "{later}"
    );
    assert!(!later.contains("installing"), "installed again:\n{later}");
}

/// The whole scenario for one package: see the module's documentation. One at a time: an
/// install (npm or uv, CPU-bound) beside the other package's sessions starving them on two
/// shared cores made a session start outlast the harness's response timeout.
fn installed_once_and_served(
    command: &[&str],
    package: &str,
    tool: (&str, Value),
    check: fn(&Value),
) {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let cache = scratch_dir("wrap-cache");
    let mut first = legacy(start(&cache, &[], command, false));
    two_sessions(&mut first, false, tool.clone(), check);
    let first_log = first.stderr();
    drop(first);

    let mut second = start(&cache, &[], command, true);
    two_sessions(&mut second, true, tool.clone(), check);
    assert_installed_once(&first_log, &second.stderr(), package, &cache);
    drop(second);

    let mut isolated = legacy(start(&cache, &["--wrap-network", "none"], command, true));
    two_sessions(&mut isolated, false, tool, check);
    drop(isolated);
    let _ = std::fs::remove_dir_all(cache);
}

#[test]
fn npx_server_everything_is_installed_once_and_every_session_runs_it_offline() {
    installed_once_and_served(
        &["npx", "-y", "@modelcontextprotocol/server-everything"],
        "@modelcontextprotocol/server-everything",
        ("echo", json!({"message": "from the cache"})),
        |result| {
            assert_eq!(
                result["content"][0]["text"], "Echo: from the cache",
                "{result}"
            )
        },
    );
}

#[test]
fn uvx_mcp_server_time_is_installed_once_and_every_session_runs_it_offline() {
    installed_once_and_served(
        &["uvx", "mcp-server-time"],
        "mcp-server-time",
        ("get_current_time", json!({"timezone": "Asia/Tokyo"})),
        |result| {
            let text = result["content"][0]["text"].as_str().unwrap_or_default();
            assert!(text.contains("Asia/Tokyo"), "{result}");
        },
    );
}

#[test]
fn a_failed_install_stops_the_start_with_the_installers_error() {
    let cache = scratch_dir("wrap-cache-failed");
    let closed = closed_registry();
    let mut running = TestSupervisor::new()
        .env("XDG_CACHE_HOME", cache.to_str().unwrap())
        .env("npm_config_registry", &closed)
        .env("npm_config_fetch_retries", "0")
        .args([
            "--wrap",
            "--",
            "npx",
            "-y",
            "@bulkhead-tests/not-on-any-registry",
        ])
        .spawn();
    let status = running.wait_exit(INSTALL_TIMEOUT).expect("the start stops");
    assert!(!status.success());
    assert!(
        eventually(Duration::from_secs(5), || {
            let log = running.stderr();
            log.contains("installing @bulkhead-tests/not-on-any-registry failed")
                && log.contains("ECONNREFUSED")
        }),
        "{}",
        running.stderr()
    );
    let _ = std::fs::remove_dir_all(cache);
}
