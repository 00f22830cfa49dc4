//! Pre-spawned pools for wrapped servers, end to end with `@modelcontextprotocol/server-everything`
//! from npm (its `get-env` tool reports its whole environment): a session over stdio starts on
//! a process that was running before it was opened; over HTTP each principal with a provisioned
//! environment gets spares of its own carrying its own variables, never handed to another
//! principal; a spare whose environment file changed is discarded and the new session sees the
//! new value; a spare that dies while idle is replaced. Pool figures are read from `/metrics`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bulkhead_tests::http::TestServer;
use bulkhead_tests::*;
use serde_json::{Value, json};

/// How long a pool gets to fill: a wrapped Node server takes ~150 ms to start alone, and the
/// tests share two cores with other tests.
const FILL: Duration = Duration::from_secs(30);

const ALICE: &str = "alice-token-pool-0123456789";
const BOB: &str = "bob-token-pool-9876543210x";

/// `server-everything`'s entry point, installed once per run by `scripts/wrap-servers`
/// (idempotent; shared with `wrap.rs`).
fn everything_js() -> PathBuf {
    wrap_servers()
        .join("tests/servers/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
}

fn everything() -> Vec<String> {
    let js = everything_js();
    let node_modules = workspace().join("tests/servers/node_modules");
    vec![
        "--wrap-allow-path".into(),
        node_modules.to_str().unwrap().into(),
        "--wrap".into(),
        "--".into(),
        "node".into(),
        js.to_str().unwrap().into(),
    ]
}

/// Live (non-zombie) children of `pid`.
fn live_children(pid: u32) -> BTreeSet<u32> {
    children_of(pid)
        .into_iter()
        .filter(|(_, state)| *state != 'Z' && *state != 'X')
        .map(|(pid, _)| pid)
        .collect()
}

/// One variable of a process's environment, read from `/proc/<pid>/environ`.
fn environ_var(pid: u32, name: &str) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{name}=");
    environ
        .split(|&byte| byte == 0)
        .filter_map(|entry| std::str::from_utf8(entry).ok())
        .find_map(|entry| entry.strip_prefix(&prefix).map(str::to_string))
}

/// A sample of `/metrics`, e.g. `bulkhead_pool_idle{class="principal"}`.
fn metric(server: &TestServer, sample: &str) -> u64 {
    let text = server.get("/metrics").text();
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {sample} in /metrics:\n{text}"))
}

/// A scratch directory with a tokens file for alice and bob and a credentials directory.
struct Scratch {
    root: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Self {
        let root =
            std::env::temp_dir().join(format!("bulkhead-pool-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("credentials")).unwrap();
        std::fs::write(root.join("tokens"), format!("alice:{ALICE}\nbob:{BOB}\n")).unwrap();
        Self { root }
    }

    fn provision(&self, principal: &str, contents: &str) {
        // Written whole under another name and renamed, as an operator's tool would.
        let staged = self.root.join(format!("{principal}.env.new"));
        std::fs::write(&staged, contents).unwrap();
        std::fs::rename(staged, self.credentials().join(format!("{principal}.env"))).unwrap();
    }

    fn credentials(&self) -> PathBuf {
        self.root.join("credentials")
    }

    fn serve(&self, extra: &[&str]) -> TestServer {
        let mut args = vec![
            "--tokens".to_string(),
            self.root.join("tokens").to_str().unwrap().into(),
            "--credentials-dir".into(),
            self.credentials().to_str().unwrap().into(),
        ];
        args.extend(extra.iter().map(|arg| arg.to_string()));
        args.extend(everything());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        TestServer::start(&args)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// `get-env` in session `handle` of the principal with `token`: the server's environment.
fn env_in(server: &TestServer, token: &str, handle: &str) -> Value {
    let response = server.modern(
        Some(token),
        7,
        "tools/call",
        json!({"name": "get-env", "arguments": {"session": handle}}),
    );
    let body = response.json();
    serde_json::from_str(
        body["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("get-env failed: {body}")),
    )
    .expect("env JSON")
}

/// The worker pid of session `handle`.
fn pid_of(server: &TestServer, token: &str, handle: &str) -> u32 {
    let response = server.modern(
        Some(token),
        8,
        "tools/call",
        json!({"name": "session_info", "arguments": {"session": handle}}),
    );
    response.json()["result"]["structuredContent"]["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("session_info failed: {}", response.text())) as u32
}

#[test]
fn a_wrapped_session_over_stdio_starts_on_a_process_spawned_before_it_was_opened() {
    let mut bulkhead = TestSupervisor::new()
        .args(["--pool-size", "1"])
        .args(everything())
        .start_legacy();
    let supervisor = bulkhead.pid();
    // The catalog's process comes and goes at start; then one spare stays, and stays put.
    let mut spare = BTreeSet::new();
    let settled = eventually(FILL, || {
        let before = live_children(supervisor);
        std::thread::sleep(Duration::from_millis(300));
        spare = live_children(supervisor);
        spare.len() == 1 && spare == before
    });
    assert!(settled, "no settled spare; stderr:\n{}", bulkhead.stderr());
    let (handle, pid) = bulkhead.open_session();
    assert!(
        spare.contains(&pid),
        "the session's process {pid} is not the spare {spare:?}"
    );
    let echoed = bulkhead.call_ok("echo", json!({"message": "pooled", "session": handle}));
    assert!(echoed.to_string().contains("pooled"), "{echoed}");
    assert!(
        eventually(FILL, || live_children(supervisor).len() == 2),
        "the pool refills after the take"
    );
}

#[test]
fn each_principals_spare_carries_its_own_environment_and_is_never_handed_to_another() {
    let scratch = Scratch::new("own");
    scratch.provision("alice", "WHO=alice\n");
    scratch.provision("bob", "WHO=bob\n");
    let server = scratch.serve(&["--pool-per-principal", "1"]);
    // First sessions: misses, which start each principal's pool.
    let alice_first = server.open_session(Some(ALICE));
    let bob_first = server.open_session(Some(BOB));
    assert_eq!(env_in(&server, ALICE, &alice_first)["WHO"], "alice");
    assert_eq!(
        metric(&server, "bulkhead_pool_misses_total{class=\"principal\"}"),
        2
    );
    assert!(
        eventually(FILL, || metric(
            &server,
            "bulkhead_pool_idle{class=\"principal\"}"
        ) == 2),
        "each principal gets a spare; stderr:\n{}",
        server.stderr()
    );
    let busy = BTreeSet::from([
        pid_of(&server, ALICE, &alice_first),
        pid_of(&server, BOB, &bob_first),
    ]);
    let spares: Vec<u32> = live_children(server.pid())
        .into_iter()
        .filter(|pid| !busy.contains(pid))
        .collect();
    assert_eq!(spares.len(), 2, "{spares:?}");
    let spare_of = |who: &str| {
        *spares
            .iter()
            .find(|&&pid| environ_var(pid, "WHO").as_deref() == Some(who))
            .unwrap_or_else(|| panic!("no spare carries WHO={who}: {spares:?}"))
    };
    let (alice_spare, bob_spare) = (spare_of("alice"), spare_of("bob"));

    // Bob first: he gets his own spare, never alice's, though hers is older.
    let bob_second = server.open_session(Some(BOB));
    assert_eq!(pid_of(&server, BOB, &bob_second), bob_spare);
    assert_eq!(env_in(&server, BOB, &bob_second)["WHO"], "bob");
    let alice_second = server.open_session(Some(ALICE));
    assert_eq!(pid_of(&server, ALICE, &alice_second), alice_spare);
    assert_eq!(env_in(&server, ALICE, &alice_second)["WHO"], "alice");
    assert_eq!(
        metric(&server, "bulkhead_pool_takes_total{class=\"principal\"}"),
        2
    );
    // Both refill, each for its own principal.
    assert!(eventually(FILL, || metric(
        &server,
        "bulkhead_pool_idle{class=\"principal\"}"
    ) == 2));
    assert_eq!(metric(&server, "bulkhead_pool_principal_pools"), 2);
    let text = server.get("/metrics").text();
    assert!(
        !text.contains("alice") && !text.contains("bob"),
        "no principal's name in /metrics"
    );
}

#[test]
fn a_spare_whose_environment_file_changed_is_discarded_and_the_session_sees_the_new_value() {
    let scratch = Scratch::new("stale");
    scratch.provision("alice", "WHO=before-rotation\n");
    let server = scratch.serve(&[]);
    let first = server.open_session(Some(ALICE));
    assert!(
        eventually(FILL, || metric(
            &server,
            "bulkhead_pool_idle{class=\"principal\"}"
        ) == 1),
        "alice's spare; stderr:\n{}",
        server.stderr()
    );
    let busy = pid_of(&server, ALICE, &first);
    let spare = *live_children(server.pid())
        .iter()
        .find(|&&pid| pid != busy)
        .expect("the spare");
    assert_eq!(
        environ_var(spare, "WHO").as_deref(),
        Some("before-rotation")
    );

    scratch.provision("alice", "WHO=after-rotation\n");
    let second = server.open_session(Some(ALICE));
    assert_ne!(
        pid_of(&server, ALICE, &second),
        spare,
        "a stale spare was handed out"
    );
    assert_eq!(env_in(&server, ALICE, &second)["WHO"], "after-rotation");
    assert_eq!(
        metric(
            &server,
            "bulkhead_pool_discards_total{class=\"principal\",reason=\"env_changed\"}"
        ),
        1
    );
    assert!(
        eventually(FILL, || !is_running(spare)),
        "the discarded spare is stopped"
    );
    // The refill carries the new environment, and the next session gets it from the pool.
    assert!(eventually(FILL, || metric(
        &server,
        "bulkhead_pool_idle{class=\"principal\"}"
    ) == 1));
    let takes = metric(&server, "bulkhead_pool_takes_total{class=\"principal\"}");
    let third = server.open_session(Some(ALICE));
    assert_eq!(env_in(&server, ALICE, &third)["WHO"], "after-rotation");
    assert_eq!(
        metric(&server, "bulkhead_pool_takes_total{class=\"principal\"}"),
        takes + 1
    );
}

#[test]
fn a_shared_spare_that_dies_while_idle_is_replaced_and_never_handed_out() {
    let scratch = Scratch::new("death");
    let server = scratch.serve(&["--pool-size", "1"]);
    assert!(
        eventually(FILL, || metric(
            &server,
            "bulkhead_pool_idle{class=\"shared\"}"
        ) == 1),
        "the shared spare; stderr:\n{}",
        server.stderr()
    );
    // Bob has no environment file: the shared pool serves him. Its spare is the only child
    // once the catalog's process is gone.
    let mut spare = BTreeSet::new();
    assert!(eventually(FILL, || {
        spare = live_children(server.pid());
        spare.len() == 1
    }));
    let dead = *spare.first().unwrap();
    kill9(dead);
    assert!(
        eventually(FILL, || metric(
            &server,
            "bulkhead_pool_discards_total{class=\"shared\",reason=\"died\"}"
        ) == 1),
        "the death is counted"
    );
    assert!(
        eventually(FILL, || metric(
            &server,
            "bulkhead_pool_idle{class=\"shared\"}"
        ) == 1),
        "and the spare replaced"
    );
    let handle = server.open_session(Some(BOB));
    let pid = pid_of(&server, BOB, &handle);
    assert_ne!(pid, dead);
    assert_eq!(
        metric(&server, "bulkhead_pool_takes_total{class=\"shared\"}"),
        1
    );
    assert!(env_in(&server, BOB, &handle).get("WHO").is_none());
}

fn check_config(file: &Path) -> std::process::Output {
    #[allow(clippy::disallowed_methods, reason = "running the binary under test")]
    let output = std::process::Command::new(binary("bulkhead"))
        .arg("check-config")
        .arg(file)
        .output()
        .unwrap();
    output
}

#[test]
fn pool_settings_come_from_the_file_and_check_config_refuses_bad_ones() {
    let scratch = Scratch::new("config");
    let good = scratch.root.join("good.toml");
    std::fs::write(
        &good,
        "[http]\nno_auth = true\n[pool]\nsize = 2\nper_principal = 3\nmemory_budget_mib = 256\n",
    )
    .unwrap();
    let output = check_config(&good);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let resolved: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        resolved["pool"],
        json!({"size": 2, "per_principal": 3, "memory_budget_mib": 256})
    );

    let bad = scratch.root.join("bad.toml");
    std::fs::write(
        &bad,
        "[http]\nno_auth = true\n[pool]\nper_principal = 1000\nmemory_budget_mib = -1\n",
    )
    .unwrap();
    let output = check_config(&bad);
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--pool-per-principal must be at most 16"),
        "{stderr}"
    );
    assert!(stderr.contains("pool-memory-budget"), "{stderr}");
}
