//! External worker mode end to end: real stdio MCP servers from the registries
//! (`mcp-server-time` from PyPI, `@modelcontextprotocol/server-everything` from npm) and a
//! probe server (`tests/servers/probe_server.py`) wrapped by a real supervisor, one process
//! per session, driven by 2026-07-28 and legacy clients; per-principal environments over HTTP;
//! whole-tree cleanup and crash containment checked in `/proc`.
//!
//! The registry packages are installed by `scripts/wrap-servers` on first use; if that fails,
//! every test here fails saying so (nothing is skipped).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use bulkhead_tests::http::TestServer;
use bulkhead_tests::*;
use serde_json::{Value, json};

const WORKER_DIED: i64 = -32042;
const SESSION_LOST: i64 = -32041;
const EXIT_CONFIG: i32 = 64;

/// Where the wrapped servers live once installed.
struct Servers {
    python: PathBuf,
    mcp_server_time: PathBuf,
    everything: PathBuf,
    probe: PathBuf,
}

/// Install the registry servers once per test run (scripts/wrap-servers is idempotent).
fn servers() -> &'static Servers {
    static SERVERS: OnceLock<Result<Servers, String>> = OnceLock::new();
    let installed = SERVERS.get_or_init(|| {
        let root = wrap_servers();
        let node_modules = root.join("tests/servers/node_modules");
        let servers = Servers {
            python: root.join(".venv-wrap/bin/python"),
            mcp_server_time: root.join(".venv-wrap/bin/mcp-server-time"),
            everything: node_modules.join("@modelcontextprotocol/server-everything/dist/index.js"),
            probe: root.join("tests/servers/probe_server.py"),
        };
        for path in [
            &servers.python,
            &servers.mcp_server_time,
            &servers.everything,
            &servers.probe,
        ] {
            if !path.exists() {
                return Err(format!(
                    "{} is missing after scripts/wrap-servers",
                    path.display()
                ));
            }
        }
        Ok(servers)
    });
    match installed {
        Ok(servers) => servers,
        Err(problem) => panic!("{problem}"),
    }
}

fn text(path: &Path) -> String {
    path.to_str().expect("UTF-8 path").to_string()
}

/// `--wrap -- python probe_server.py EXTRA...`.
fn probe(extra: &[&str]) -> Vec<String> {
    let servers = servers();
    let mut args = vec![
        "--wrap".into(),
        "--".into(),
        text(&servers.python),
        text(&servers.probe),
    ];
    args.extend(extra.iter().map(|arg| arg.to_string()));
    args
}

fn time_server() -> Vec<String> {
    vec![
        "--wrap".into(),
        "--".into(),
        text(&servers().mcp_server_time),
    ]
}

/// `node …/node_modules/@modelcontextprotocol/server-everything/dist/index.js`, with no
/// sandbox flag: the read set derived for a script under `node_modules` holds its dependencies.
fn everything() -> Vec<String> {
    let servers = servers();
    vec![
        "--wrap".into(),
        "--".into(),
        "node".into(),
        text(&servers.everything),
    ]
}

/// A 2026-07-28 `tools/call` (no `initialize` anywhere), whole response.
fn modern_call(running: &mut Running, name: &str, arguments: Value) -> Value {
    running.request(
        "tools/call",
        json!({"name": name, "arguments": arguments, "_meta": modern_meta()}),
    )
}

fn result_of(response: &Value) -> &Value {
    assert!(
        response.get("result").is_some(),
        "expected a result: {response}"
    );
    &response["result"]
}

/// The JSON a tool result carries: its structured content, else its first text block parsed.
fn payload(result: &Value) -> Value {
    if let Some(structured) = result
        .get("structuredContent")
        .filter(|value| value.is_object())
    {
        return structured.clone();
    }
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    serde_json::from_str(text).unwrap_or_else(|_| json!(text))
}

/// A tool call in either era, whole response.
fn call_in(running: &mut Running, modern: bool, name: &str, arguments: Value) -> Value {
    if modern {
        modern_call(running, name, arguments)
    } else {
        running.call(name, arguments)
    }
}

fn session_pid(running: &mut Running, session: Option<&str>) -> u32 {
    let arguments = session.map_or_else(|| json!({}), |handle| json!({"session": handle}));
    let response = running.call("session_info", arguments);
    structured(result_of(&response))["pid"]
        .as_u64()
        .expect("pid") as u32
}

/// Default session plus one explicit session: two processes, children of the supervisor, each
/// serving its own calls.
fn assert_two_sessions_two_processes(running: &mut Running, modern: bool, call: (&str, Value)) {
    let response = call_in(running, modern, "session_info", json!({}));
    let default_pid = structured(result_of(&response))["pid"]
        .as_u64()
        .expect("pid") as u32;
    let response = call_in(running, modern, "session_open", json!({}));
    let opened = structured(result_of(&response)).clone();
    let (handle, pid) = (
        opened["session"].as_str().unwrap().to_string(),
        opened["pid"].as_u64().unwrap() as u32,
    );
    assert_ne!(pid, default_pid, "each session runs its own server process");
    for pid in [default_pid, pid] {
        assert!(is_running(pid), "server {pid} is alive");
        assert_eq!(
            parent_of(pid),
            Some(running.pid()),
            "server {pid} is a child of the supervisor"
        );
    }
    let mut arguments = call.1;
    arguments["session"] = json!(handle);
    let response = call_in(running, modern, call.0, arguments);
    assert!(result_of(&response)["isError"] != true, "{response}");
}

#[test]
fn mcp_server_time_serves_legacy_and_2026_clients_one_process_per_session() {
    let get_time = ("get_current_time", json!({"timezone": "Europe/Paris"}));

    let mut legacy = TestSupervisor::new().args(time_server()).start_legacy();
    let listed = legacy.request("tools/list", json!({}));
    let tools = result_of(&listed)["tools"]
        .as_array()
        .expect("tools")
        .clone();
    let names: Vec<&str> = tools
        .iter()
        .filter_map(|tool| tool["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "convert_time",
            "get_current_time",
            "session_close",
            "session_info",
            "session_open"
        ]
    );
    assert_eq!(
        tools[1]["inputSchema"]["properties"]["session"]["x-mcp-header"],
        "Session"
    );
    let result = legacy.call_ok(get_time.0, get_time.1.clone());
    assert_eq!(payload(&result)["timezone"], "Europe/Paris", "{result}");
    assert!(
        result.get("resultType").is_none(),
        "legacy replies stay legacy: {result}"
    );
    assert_two_sessions_two_processes(&mut legacy, false, get_time.clone());

    let mut modern = TestSupervisor::new().args(time_server()).spawn();
    let response = modern_call(&mut modern, get_time.0, get_time.1.clone());
    let result = result_of(&response);
    assert_eq!(result["resultType"], "complete", "{response}");
    assert_eq!(payload(result)["timezone"], "Europe/Paris");
    let listed = modern.request("tools/list", json!({"_meta": modern_meta()}));
    assert_eq!(result_of(&listed)["resultType"], "complete");
    let discovered = modern.request("server/discover", json!({"_meta": modern_meta()}));
    assert!(
        result_of(&discovered)["capabilities"]["tools"].is_object(),
        "{discovered}"
    );
    assert_two_sessions_two_processes(&mut modern, true, get_time);
}

#[test]
fn server_everything_serves_legacy_and_2026_clients_one_process_per_session() {
    let echo = ("echo", json!({"message": "through the bulkhead"}));

    let mut legacy = TestSupervisor::new().args(everything()).start_legacy();
    let result = legacy.call_ok(echo.0, echo.1.clone());
    assert_eq!(
        result["content"][0]["text"], "Echo: through the bulkhead",
        "{result}"
    );
    let prompts = legacy.request("prompts/list", json!({}));
    assert!(
        !result_of(&prompts)["prompts"]
            .as_array()
            .expect("prompts")
            .is_empty()
    );
    assert_two_sessions_two_processes(&mut legacy, false, echo.clone());

    // server-everything speaks only the initialize lifecycle: the bridge initializes it and
    // completes its replies for a 2026-07-28 client.
    let mut modern = TestSupervisor::new().args(everything()).spawn();
    let response = modern_call(&mut modern, echo.0, echo.1.clone());
    let result = result_of(&response);
    assert_eq!(result["content"][0]["text"], "Echo: through the bulkhead");
    assert_eq!(result["resultType"], "complete", "{response}");
    let prompts = modern.request("prompts/list", json!({"_meta": modern_meta()}));
    let prompts = result_of(&prompts);
    assert_eq!(prompts["resultType"], "complete");
    assert_eq!(prompts["ttlMs"], 0);
    assert_eq!(prompts["cacheScope"], "private");
    assert_two_sessions_two_processes(&mut modern, true, echo);
}

#[test]
fn a_2026_only_server_serves_a_legacy_client_and_an_initialize_only_server_a_2026_client() {
    // The probe refuses `initialize` and any request without the 2026-07-28 envelope.
    let mut legacy = TestSupervisor::new()
        .args(probe(&["--era", "modern"]))
        .start_legacy();
    let result = legacy.call_ok("whoami", json!({}));
    assert_eq!(structured(&result)["era"], "modern", "{result}");
    assert_eq!(
        parent_of(structured(&result)["pid"].as_u64().unwrap() as u32),
        Some(legacy.pid())
    );
    let listed = legacy.request("tools/list", json!({}));
    assert!(result_of(&listed)["tools"].as_array().unwrap().len() > 5);

    // The probe refuses the envelope and anything before `initialize`.
    let mut modern = TestSupervisor::new()
        .args(probe(&["--era", "legacy"]))
        .spawn();
    let response = modern_call(&mut modern, "whoami", json!({}));
    let result = result_of(&response);
    assert_eq!(structured(result)["era"], "legacy", "{response}");
    assert_eq!(result["resultType"], "complete");
}

#[test]
fn provisioned_variables_reach_only_their_principals_sessions() {
    let scratch = std::env::temp_dir().join(format!("bulkhead-wrap-env-{}", std::process::id()));
    let credentials = scratch.join("credentials");
    std::fs::create_dir_all(&credentials).unwrap();
    const ALICE: &str = "alice-token-0123456789";
    const BOB: &str = "bob-token-9876543210xyz";
    const SECRET: &str = "acme-secret-for-alice-only-4f2a";
    let tokens = scratch.join("tokens");
    std::fs::write(&tokens, format!("alice:{ALICE}\nbob:{BOB}\n")).unwrap();
    std::fs::write(
        credentials.join("alice.env"),
        format!("# alice's provisioned environment\nACME_TOKEN={SECRET}\nREGION = eu-west-1\n"),
    )
    .unwrap();
    let mut args = vec![
        "--tokens".to_string(),
        text(&tokens),
        "--credentials-dir".into(),
        text(&credentials),
    ];
    args.extend(everything());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server =
        TestServer::start_with_env(&args, &[("SUPERVISOR_ONLY_SENTINEL", "must-not-leak")]);

    // server-everything's get-env reports its whole environment.
    let env_of = |token: &str, id: u64, session: Option<&str>| -> Value {
        let arguments = session.map_or_else(|| json!({}), |handle| json!({"session": handle}));
        let response = server.modern(
            Some(token),
            id,
            "tools/call",
            json!({"name": "get-env", "arguments": arguments}),
        );
        assert_eq!(response.status, 200, "{}", response.text());
        let body = response.json();
        serde_json::from_str(body["result"]["content"][0]["text"].as_str().expect("text"))
            .expect("env JSON")
    };
    let alice_default = env_of(ALICE, 1, None);
    assert_eq!(alice_default["ACME_TOKEN"], SECRET);
    assert_eq!(alice_default["REGION"], "eu-west-1");
    let opened = server.modern(
        Some(ALICE),
        2,
        "tools/call",
        json!({"name": "session_open", "arguments": {}}),
    );
    let handle = opened.json()["result"]["structuredContent"]["session"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        env_of(ALICE, 3, Some(&handle))["ACME_TOKEN"],
        SECRET,
        "every session of alice's"
    );

    let bob = env_of(BOB, 4, None);
    assert!(
        bob.get("ACME_TOKEN").is_none(),
        "bob sees alice's variable: {bob}"
    );
    assert!(bob.get("REGION").is_none());
    for environment in [&alice_default, &bob] {
        let names: Vec<&String> = environment.as_object().unwrap().keys().collect();
        assert!(
            environment.get("SUPERVISOR_ONLY_SENTINEL").is_none(),
            "{names:?}"
        );
        assert_eq!(environment["PATH"], "/usr/local/bin:/usr/bin:/bin");
        let home = environment["HOME"].as_str().unwrap();
        assert_eq!(environment["TMPDIR"], home);
        for name in names {
            assert!(
                ["ACME_TOKEN", "REGION", "PATH", "HOME", "TMPDIR"].contains(&name.as_str()),
                "unexpected variable {name} in a wrapped server's environment"
            );
        }
    }
    assert_ne!(
        alice_default["HOME"], bob["HOME"],
        "each server has a private home"
    );
    assert!(
        !server.stderr().contains(SECRET),
        "the secret reached the log"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(scratch);
}

#[test]
fn closing_a_session_wrapped_in_sh_c_leaves_no_process_of_its_tree() {
    let servers = servers();
    // `; true` keeps sh alive as the parent of the server, so the tree has three levels. The
    // interpreter is named inside the shell command, so its install paths are allowed by hand.
    let command = format!("{} {} ; true", text(&servers.python), text(&servers.probe));
    let interpreter = std::fs::canonicalize(&servers.python).unwrap();
    let interpreter_prefix = interpreter.parent().and_then(Path::parent).unwrap();
    let mut running = TestSupervisor::new()
        .args(["--wrap-allow-path", &text(&workspace().join(".venv-wrap"))])
        .args(["--wrap-allow-path", &text(interpreter_prefix)])
        .args([
            "--wrap-allow-path",
            &text(&workspace().join("tests/servers")),
        ])
        .args(["--wrap", "--", "sh", "-c", command.as_str()])
        .start_legacy();
    let (handle, shell) = running.open_session();
    let server = structured(&running.call_ok("whoami", json!({"session": handle})))["pid"]
        .as_u64()
        .unwrap() as u32;
    assert_eq!(
        parent_of(server),
        Some(shell),
        "the server runs under the wrapper shell"
    );
    let spawn = |running: &mut Running, detach: bool| {
        structured(&running.call_ok("spawn", json!({"session": handle, "detach": detach})))["pid"]
            .as_u64()
            .unwrap() as u32
    };
    let home = structured(&running.call_ok("env", json!({"session": handle})))["variables"]["HOME"]
        .as_str()
        .expect("HOME")
        .to_string();
    assert!(
        Path::new(&home).is_dir(),
        "the server's private home {home} exists"
    );
    let in_group = spawn(&mut running, false);
    let detached = spawn(&mut running, true);
    let tree = [shell, server, in_group, detached];
    for pid in tree {
        assert!(is_running(pid), "{pid} of the tree is running");
    }
    assert_eq!(parent_of(detached), Some(server));

    let closed = running.call_ok("session_close", json!({"session": handle}));
    assert_eq!(structured(&closed)["closed"], true);
    assert!(
        eventually(Duration::from_secs(3), || tree
            .iter()
            .all(|&pid| process_state(pid).is_none())),
        "processes of the closed session's tree remain: {:?}",
        tree.iter()
            .map(|&pid| (pid, process_state(pid)))
            .collect::<Vec<_>>()
    );
    assert!(
        !Path::new(&home).exists(),
        "the private home {home} is removed with the session"
    );
    // The default session is untouched and nothing of the tree became anyone's zombie.
    let default_pid = session_pid(&mut running, None);
    assert!(is_running(default_pid));
    let children = children_of(running.pid());
    assert!(
        children.iter().all(|&(_, state)| state != 'Z'),
        "zombies: {children:?}"
    );
    assert_eq!(
        children.iter().map(|&(pid, _)| pid).collect::<Vec<_>>(),
        [default_pid]
    );
}

#[test]
fn killing_a_wrapped_server_mid_call_fails_that_call_and_nothing_else() {
    let mut running = TestSupervisor::new().args(probe(&[])).start_legacy();
    let (a, pid_a) = running.open_session();
    let (b, pid_b) = running.open_session();
    let slow = running.send_request(
        "tools/call",
        json!({"name": "sleep", "arguments": {"seconds": 30, "session": a}}),
    );
    std::thread::sleep(Duration::from_millis(300));
    kill9(pid_a);
    let died = running.response(&json!(slow));
    assert_eq!(error_code(&died), Some(WORKER_DIED), "{died}");

    let whoami = running.call_ok("whoami", json!({"session": b}));
    assert_eq!(structured(&whoami)["pid"], pid_b, "session B is untouched");
    let lost = running.call("whoami", json!({"session": a}));
    assert_eq!(error_code(&lost), Some(SESSION_LOST), "{lost}");
    assert!(
        eventually(Duration::from_secs(2), || process_state(pid_a).is_none()),
        "reaped"
    );
    // Its stderr tail is in the log.
    assert!(
        eventually(Duration::from_secs(2), || running
            .stderr()
            .contains("the last lines of its stderr")),
        "{}",
        running.stderr()
    );
    assert!(
        running
            .stderr()
            .contains(&format!("probe server {pid_a} starting"))
    );
}

#[test]
fn a_crashed_servers_stderr_tail_is_logged_with_secrets_redacted() {
    let scratch = std::env::temp_dir().join(format!("bulkhead-wrap-tail-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    const SECRET: &str = "tok-ultra-secret-0f9e8d";
    std::fs::write(scratch.join("local.env"), format!("ACME_TOKEN={SECRET}\n")).unwrap();
    let mut args = vec!["--credentials-dir".to_string(), text(&scratch)];
    args.extend(probe(&[]));
    let mut running = TestSupervisor::new().args(args).start_legacy();
    let response = running.call(
        "die",
        json!({"text": "fatal: cannot reach acme with $ACME_TOKEN (sent ACME_TOKEN=$ACME_TOKEN, password: hunter2)", "code": 3}),
    );
    assert_eq!(error_code(&response), Some(WORKER_DIED), "{response}");
    assert!(
        eventually(Duration::from_secs(3), || running
            .stderr()
            .contains("fatal: cannot reach acme")),
        "{}",
        running.stderr()
    );
    let log = running.stderr();
    assert!(log.contains("exit code 3"), "{log}");
    // The provisioned value is redacted wherever it appears, and credential-shaped values too
    // (a redacted word loses its trailing punctuation).
    assert!(
        log.contains("fatal: cannot reach acme with [redacted] (sent ACME_TOKEN=[redacted] password: [redacted]"),
        "{log}"
    );
    assert!(!log.contains(SECRET) && !log.contains("hunter2"), "{log}");
    // The next call gets a fresh default session, which says so.
    let next = running.call_ok("whoami", json!({}));
    assert!(
        next["_meta"]["io.bulkhead/notice"]
            .as_str()
            .unwrap()
            .contains("lost"),
        "{next}"
    );
    let _ = std::fs::remove_dir_all(scratch);
}

#[test]
fn a_secret_that_straddles_the_line_cut_is_redacted_whole() {
    // Lines are kept up to 1 KiB: a secret that crosses that cut must not leave its first
    // part in the log.
    let scratch =
        std::env::temp_dir().join(format!("bulkhead-wrap-straddle-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    const SECRET: &str = "sk-live-9f8e7d6c5b4a39281706f5e4d3c2b1a0ZYXW";
    assert_eq!(SECRET.len(), 44);
    std::fs::write(scratch.join("local.env"), format!("ACME_TOKEN={SECRET}\n")).unwrap();
    let mut args = vec!["--credentials-dir".to_string(), text(&scratch)];
    args.extend(probe(&[]));
    let mut running = TestSupervisor::new()
        .env("RUST_LOG", "debug")
        .args(args)
        .start_legacy();
    let padding = "p".repeat(1000);
    let response = running.call(
        "die",
        json!({"text": format!("{padding} $ACME_TOKEN and more"), "code": 3}),
    );
    assert_eq!(error_code(&response), Some(WORKER_DIED), "{response}");
    assert!(
        eventually(Duration::from_secs(3), || running
            .stderr()
            .contains(&padding[..100])),
        "{}",
        running.stderr()
    );
    std::thread::sleep(Duration::from_millis(300));
    let log = running.stderr();
    for start in 0..=SECRET.len() - 8 {
        let piece = &SECRET[start..start + 8];
        assert!(
            !log.contains(piece),
            "{piece:?} of the secret leaked:\n{log}"
        );
    }
    let _ = std::fs::remove_dir_all(scratch);
}

/// Plant `plant(path)` at `<temp>/bulkhead-<pid>` for the next pids, start a wrapped
/// supervisor with that temp directory, and return it with its pid's planted path, retrying
/// while other processes took every planted pid first.
fn start_after_planting(temp: &Path, plant: &dyn Fn(&Path)) -> (Running, PathBuf) {
    const PLANTED: u32 = 400;
    for _ in 0..5 {
        let last: u32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        for pid in last + 1..=last + PLANTED {
            plant(&temp.join(format!("bulkhead-{pid}")));
        }
        let running = TestSupervisor::new()
            .env("TMPDIR", &text(temp))
            .args(probe(&[]))
            .start_legacy();
        let planted = temp.join(format!("bulkhead-{}", running.pid()));
        if running.pid() <= last + PLANTED {
            return (running, planted);
        }
    }
    panic!("other processes took every planted pid five times");
}

#[test]
fn a_planted_symlink_or_foreign_directory_at_the_predictable_temp_name_has_no_effect() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let temp = std::env::temp_dir().join(format!("bulkhead-wrap-planted-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&temp);
    std::fs::create_dir_all(&temp).unwrap();
    let attacker = temp.join("attacker");
    std::fs::create_dir(&attacker).unwrap();
    std::fs::set_permissions(&attacker, std::fs::Permissions::from_mode(0o777)).unwrap();
    let symlink = |path: &Path| {
        let _ = std::os::unix::fs::symlink(&attacker, path);
    };
    let nobody = 65534;
    let foreign = |path: &Path| {
        if std::fs::create_dir(path).is_ok() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
            if running_as_root() {
                std::os::unix::fs::chown(path, Some(nobody), Some(nobody)).unwrap();
            }
        }
    };
    for (plant, what) in [
        (&symlink as &dyn Fn(&Path), "a symlink"),
        (&foreign as &dyn Fn(&Path), "another user's directory"),
    ] {
        let (mut running, planted) = start_after_planting(&temp, plant);
        let home = structured(&running.call_ok("env", json!({})))["variables"]["HOME"]
            .as_str()
            .expect("HOME")
            .to_string();
        let home = Path::new(&home);
        assert!(
            !home.starts_with(&planted) && !home.starts_with(&attacker),
            "{what} at {} decided where the home went: {}",
            planted.display(),
            home.display()
        );
        // Every component below the temp directory is a real directory of the supervisor's.
        let mut path = home.to_path_buf();
        while path != temp {
            let metadata = std::fs::symlink_metadata(&path).unwrap();
            assert!(metadata.is_dir(), "{} is not a directory", path.display());
            assert_eq!(metadata.uid(), own_uid(), "{}", path.display());
            path.pop();
        }
        assert_eq!(
            std::fs::metadata(home).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(std::fs::read_dir(&attacker).unwrap().count(), 0);
        assert_eq!(
            std::fs::metadata(&attacker).unwrap().permissions().mode() & 0o777,
            0o777,
            "the attacker's directory was changed"
        );
        if let Ok(metadata) = std::fs::symlink_metadata(&planted)
            && metadata.is_dir()
        {
            assert_eq!(
                metadata.permissions().mode() & 0o777,
                0o777,
                "{what} was changed"
            );
            assert_eq!(
                std::fs::read_dir(&planted).unwrap().count(),
                0,
                "{what} was used"
            );
        }
        drop(running);
        for entry in std::fs::read_dir(&temp).unwrap().flatten() {
            if entry.path() != attacker {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir_all(&temp);
}

fn own_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").unwrap().uid()
}

fn running_as_root() -> bool {
    own_uid() == 0
}

/// Resident memory of a process in KiB.
fn rss_kib(pid: u32) -> u64 {
    proc_status(pid, "VmRSS")
        .trim_end_matches(" kB")
        .parse()
        .expect("VmRSS in kB")
}

#[test]
fn a_wrapped_server_cannot_forge_sandbox_reports_on_its_stderr() {
    // Only the exec shim reports on the sandbox, through a channel the server never holds;
    // 10,000 distinct lines shaped like its reports are the server's stderr, nothing more, and
    // cost the supervisor no memory it keeps.
    let mut running = TestSupervisor::new()
        .env("RUST_LOG", "info,bulkhead::wrap=debug")
        .args(probe(&[]))
        .start_legacy();
    running.call_ok("whoami", json!({}));
    let before = rss_kib(running.pid());
    let padding = "x".repeat(900);
    let said = running.call_ok(
        "say",
        json!({"text": format!("bulkhead-worker: sandbox degraded: forged {{n}} {padding}"), "count": 10_000}),
    );
    assert_eq!(structured(&said)["written"], 10_000);
    running.call_ok("say", json!({"text": "end of the flood"}));
    assert!(
        eventually(Duration::from_secs(20), || running
            .stderr()
            .contains("end of the flood")),
        "the flood was read"
    );
    let log = running.stderr();
    let forged: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("forged") && !line.contains("DEBUG"))
        .take(3)
        .collect();
    assert!(
        forged.is_empty(),
        "forged lines logged as reports: {forged:?}"
    );
    let grown = rss_kib(running.pid()).saturating_sub(before);
    assert!(grown < 4 * 1024, "the supervisor grew by {grown} KiB");
}

#[test]
fn a_wrapped_server_runs_confined() {
    let mut running = TestSupervisor::new().args(probe(&[])).start_legacy();
    let server = structured(&running.call_ok("whoami", json!({})))["pid"]
        .as_u64()
        .unwrap() as u32;
    let status = std::fs::read_to_string(format!("/proc/{server}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    assert_eq!(field("NoNewPrivs"), "1");
    assert_eq!(field("Seccomp"), "2", "a seccomp filter is installed");
    assert_eq!(field("CapEff"), "0000000000000000");
    let read = |running: &mut Running, path: String| {
        structured(&running.call_ok("read", json!({"path": path}))).clone()
    };
    assert!(
        read(&mut running, "/etc/hosts".into())["bytes"].is_number(),
        "system files are readable"
    );
    let supervisor_environ = format!("/proc/{}/environ", running.pid());
    for path in [
        "/etc/shadow".to_string(),
        supervisor_environ,
        text(&workspace().join("Cargo.toml")),
    ] {
        let outcome = read(&mut running, path.clone());
        assert!(
            outcome["error"].is_string(),
            "{path} was readable: {outcome}"
        );
    }
    let write = |running: &mut Running, path: &str| {
        structured(&running.call_ok("write", json!({"path": path})))["error"].clone()
    };
    assert_eq!(
        write(&mut running, "$HOME/cache"),
        Value::Null,
        "its private home is writable"
    );
    let outside = std::env::temp_dir().join(format!("bulkhead-wrap-escape-{}", std::process::id()));
    assert!(
        write(&mut running, &text(&outside)).is_string(),
        "{} was writable",
        outside.display()
    );
    assert!(!outside.exists());
    let signalled = structured(&running.call_ok("signal", json!({"pid": running.pid()}))).clone();
    assert_eq!(signalled["error"], "Operation not permitted", "{signalled}");
    assert!(is_running(running.pid()));
}

#[test]
fn a_wrapped_server_cannot_route_io_signals_to_another_process() {
    // F_SETOWN and friends let the kernel signal another process for the server, without
    // `kill`; seccomp refuses every way to choose that receiver (or to turn on O_ASYNC).
    let mut running = TestSupervisor::new().args(probe(&[])).start_legacy();
    let outcome =
        structured(&running.call_ok("signal_owner", json!({"pid": running.pid()}))).clone();
    let attempts = outcome.as_object().expect("one entry per attempt");
    assert_eq!(attempts.len(), 7, "{outcome}");
    for (attempt, error) in attempts {
        assert_eq!(error, "Operation not permitted", "{attempt}: {outcome}");
    }
    assert!(is_running(running.pid()));
    assert_eq!(
        structured(&running.call_ok("whoami", json!({})))["era"],
        "legacy"
    );
}

#[test]
fn outgoing_tcp_follows_the_network_policy() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connect = |network: &str| {
        let mut args = vec!["--wrap-network".to_string(), network.to_string()];
        args.extend(probe(&[]));
        let mut running = TestSupervisor::new().args(args).start_legacy();
        structured(&running.call_ok("connect", json!({"port": port})))["error"].clone()
    };
    assert_eq!(
        connect("connect"),
        Value::Null,
        "outgoing TCP is allowed by default"
    );
    let refused = connect("none");
    assert!(
        refused.is_string(),
        "--wrap-network none let it connect: {refused}"
    );
}

#[test]
fn name_collisions_stop_the_start_with_exit_64_unless_renamed() {
    for (extra, advice) in [
        (
            &["--collide", "session_info"][..],
            "--wrap-rename session_info=server_session_info",
        ),
        (
            &["--session-arg"][..],
            "--wrap-rename search:session=server_session",
        ),
    ] {
        let mut running = TestSupervisor::new().args(probe(extra)).spawn();
        let status = running
            .wait_exit(Duration::from_secs(20))
            .expect("exits at start");
        assert_eq!(status.code(), Some(EXIT_CONFIG), "{}", running.stderr());
        // The log reader thread may still be catching up with the exited process.
        assert!(
            eventually(Duration::from_secs(2), || running.stderr().contains(advice)),
            "{}",
            running.stderr()
        );
    }

    let mut args = vec![
        "--wrap-rename".to_string(),
        "session_info=server_session_info".into(),
        "--wrap-rename".into(),
        "search:session=topic".into(),
    ];
    args.extend(probe(&["--collide", "session_info", "--session-arg"]));
    let mut running = TestSupervisor::new().args(args).start_legacy();
    let listed = running.request("tools/list", json!({}));
    let tools = result_of(&listed)["tools"].as_array().unwrap().clone();
    let search = tools.iter().find(|tool| tool["name"] == "search").unwrap();
    assert_eq!(
        search["inputSchema"]["properties"]["topic"]["type"],
        "string"
    );
    assert_eq!(
        search["inputSchema"]["properties"]["session"]["x-mcp-header"],
        "Session"
    );
    let renamed = running.call_ok("server_session_info", json!({}));
    assert_eq!(
        structured(&renamed)["name"],
        "session_info",
        "the server's own tool: {renamed}"
    );
    let echoed = running.call_ok("search", json!({"topic": "rust"}));
    assert_eq!(structured(&echoed)["arguments"], json!({"session": "rust"}));
    let ours = running.call_ok("session_info", json!({}));
    assert!(
        structured(&ours)["pid"].is_number(),
        "session_info is Bulkhead's: {ours}"
    );
}

#[test]
fn a_wrapped_command_that_cannot_run_is_a_configuration_error() {
    let mut running = TestSupervisor::new()
        .args(["--wrap", "--", "no-such-mcp-server-on-this-machine"])
        .spawn();
    let status = running
        .wait_exit(Duration::from_secs(20))
        .expect("exits at start");
    assert_eq!(status.code(), Some(EXIT_CONFIG));
    assert!(
        eventually(Duration::from_secs(2), || running
            .stderr()
            .contains("is not an executable file")),
        "{}",
        running.stderr()
    );
}
