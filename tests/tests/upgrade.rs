//! Upgrading in place (SIGHUP): the supervisor re-executes the binary on disk and takes over
//! every live worker — same handles, same worker pids, same broker state, a new version, the
//! same supervisor pid — or, when the new binary cannot take over, refuses and serves on.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bulkhead_tests::http::{HttpResponse, TestServer};
use bulkhead_tests::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// How long a reload may take on a busy machine before a test gives up on it.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// A private copy of the supervisor binary, which the test may replace as an upgrade would.
fn installed_copy(dir: &Path) -> PathBuf {
    let path = dir.join("bulkhead");
    std::fs::copy(binary("bulkhead"), &path).unwrap();
    path
}

/// Replace the file at `path` (as a package manager does: write aside, rename over) with a
/// copy of the workspace binary whose marked bytes after `marker` read `value`.
fn replace_with_patched(path: &Path, marker: &[u8], value: &[u8]) {
    let mut bytes = std::fs::read(binary("bulkhead")).unwrap();
    let at = bytes
        .windows(marker.len())
        .position(|window| window == marker)
        .expect("the binary carries the marker");
    bytes[at + marker.len()..at + marker.len() + value.len()].copy_from_slice(value);
    let aside = path.with_extension("new");
    std::fs::write(&aside, &bytes).unwrap();
    std::fs::set_permissions(&aside, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&aside, path).unwrap();
}

fn hangup(pid: u32) {
    kill(Pid::from_raw(pid as i32), Signal::SIGHUP).unwrap();
}

fn start(program: PathBuf) -> Running {
    TestSupervisor::new()
        .program(program)
        .args(["--worker", binary("bulkhead-worker").to_str().unwrap()])
        .start_legacy()
}

fn login(bulkhead: &mut Running, session: Option<&str>) {
    let mut arguments = json!({"broker": "paper", "api_key": "key-id", "api_secret": "secret"});
    if let Some(session) = session {
        arguments["session"] = json!(session);
    }
    let result = bulkhead.call_ok("broker_login", arguments);
    assert_ne!(result["isError"], true, "{result}");
}

fn buy(bulkhead: &mut Running, session: Option<&str>, qty: &str) {
    let mut arguments = json!({"symbol": "BTC-USD", "side": "buy", "qty": qty});
    if let Some(session) = session {
        arguments["session"] = json!(session);
    }
    let result = bulkhead.call_ok("order_place", arguments);
    assert_ne!(result["isError"], true, "{result}");
}

/// The session's orders, as the worker's paper broker remembers them.
fn orders(bulkhead: &mut Running, session: Option<&str>) -> Vec<Value> {
    let mut arguments = json!({"status": "all", "broker": "paper"});
    if let Some(session) = session {
        arguments["session"] = json!(session);
    }
    let result = bulkhead.call_ok("orders", arguments);
    assert_ne!(result["isError"], true, "{result}");
    structured(&result)["orders"].as_array().unwrap().clone()
}

fn worker_pid(bulkhead: &mut Running, session: &str) -> u64 {
    let info = bulkhead.call_ok("session_info", json!({"session": session}));
    structured(&info)["pid"].as_u64().expect("pid")
}

fn server_version(bulkhead: &mut Running) -> String {
    let discover = bulkhead.request("server/discover", json!({"_meta": modern_meta()}));
    discover["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["version"]
        .as_str()
        .unwrap_or_else(|| panic!("no version: {discover}"))
        .to_string()
}

/// Wait until the supervisor's log shows `needle` `count` times.
fn wait_for_log(bulkhead: &Running, needle: &str, count: usize) {
    assert!(
        eventually(RELOAD_TIMEOUT, || bulkhead.stderr().matches(needle).count()
            >= count),
        "no {needle:?} (x{count}) in the log:\n{}",
        bulkhead.stderr()
    );
}

#[test]
fn stdio_sessions_survive_a_reload_into_a_replaced_binary() {
    let dir = scratch_dir("upgrade-stdio");
    let program = installed_copy(&dir);
    let mut bulkhead = start(program.clone());
    let supervisor = bulkhead.pid();
    let before = server_version(&mut bulkhead);
    let (handle, pid) = bulkhead.open_session();
    login(&mut bulkhead, Some(&handle));
    buy(&mut bulkhead, Some(&handle), "0.5");
    // The connection's default session too.
    login(&mut bulkhead, None);
    buy(&mut bulkhead, None, "0.25");
    buy(&mut bulkhead, None, "0.25");

    replace_with_patched(&program, b"BULKHEAD-BUILD-LABEL:", b"upgraded");
    hangup(supervisor);
    wait_for_log(&bulkhead, "session taken over", 2);

    assert_eq!(server_version(&mut bulkhead), format!("{before}+upgraded"));
    assert_eq!(worker_pid(&mut bulkhead, &handle), u64::from(pid));
    assert_eq!(
        orders(&mut bulkhead, Some(&handle)).len(),
        1,
        "the session's orders"
    );
    assert_eq!(
        orders(&mut bulkhead, None).len(),
        2,
        "the default session's orders"
    );
    // Still logged in, and the new image places orders through the adopted worker.
    buy(&mut bulkhead, Some(&handle), "0.1");
    assert_eq!(orders(&mut bulkhead, Some(&handle)).len(), 2);
    assert_eq!(bulkhead.pid(), supervisor);
    assert!(process_state(supervisor).is_some());
    // A fresh session works in the new image.
    let (fresh, _) = bulkhead.open_session();
    login(&mut bulkhead, Some(&fresh));
}

/// Descriptors the supervisor holds now.
fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// SIGHUP, and wait until the new image serves (its `n`th start line).
fn reload(bulkhead: &Running, n: usize) {
    hangup(bulkhead.pid());
    wait_for_log(bulkhead, "serving MCP on stdio", n + 1);
}

#[test]
fn a_worker_from_before_the_first_reload_still_answers_after_the_third() {
    let dir = scratch_dir("upgrade-three");
    let mut bulkhead = start(installed_copy(&dir));
    let supervisor = bulkhead.pid();
    let (first, first_pid) = bulkhead.open_session();
    login(&mut bulkhead, Some(&first));
    buy(&mut bulkhead, Some(&first), "1");
    reload(&bulkhead, 1);
    // A session of the second image, forked by the main thread of the first exec'd image.
    let (second, second_pid) = bulkhead.open_session();
    login(&mut bulkhead, Some(&second));
    reload(&bulkhead, 2);
    // Once the catalog's worker of the new image is gone.
    std::thread::sleep(Duration::from_millis(500));
    let descriptors = open_descriptors(supervisor);
    reload(&bulkhead, 3);
    assert_eq!(worker_pid(&mut bulkhead, &first), u64::from(first_pid));
    assert_eq!(worker_pid(&mut bulkhead, &second), u64::from(second_pid));
    assert_eq!(orders(&mut bulkhead, Some(&first)).len(), 1);
    buy(&mut bulkhead, Some(&second), "1");
    assert_eq!(orders(&mut bulkhead, Some(&second)).len(), 1);
    assert_eq!(parent_of(first_pid), Some(supervisor));
    assert!(
        eventually(Duration::from_secs(5), || open_descriptors(supervisor)
            == descriptors),
        "a reload leaks no descriptor: {descriptors} before, {} after",
        open_descriptors(supervisor)
    );
    let zombies: Vec<_> = children_of(supervisor)
        .into_iter()
        .filter(|(_, state)| *state == 'Z')
        .collect();
    assert!(zombies.is_empty(), "no zombie: {zombies:?}");
    assert_eq!(
        bulkhead.stderr().matches("session lost").count(),
        0,
        "{}",
        bulkhead.stderr()
    );
}

#[test]
fn a_call_in_flight_when_sighup_arrives_completes_and_a_second_sighup_is_ignored() {
    let dir = scratch_dir("upgrade-in-flight");
    let mut bulkhead = start(installed_copy(&dir));
    let (session, pid) = bulkhead.open_session();
    let id = bulkhead.send_request(
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "across", "delay_ms": 1500, "session": session}}),
    );
    std::thread::sleep(Duration::from_millis(300));
    hangup(bulkhead.pid());
    std::thread::sleep(Duration::from_millis(300));
    hangup(bulkhead.pid());
    let reply = bulkhead.response(&json!(id));
    assert_eq!(
        reply["result"]["content"][0]["text"], "across",
        "the call in flight completes: {reply}"
    );
    wait_for_log(&bulkhead, "serving MCP on stdio", 2);
    assert!(
        bulkhead.stderr().contains("a reload is already under way"),
        "{}",
        bulkhead.stderr()
    );
    assert_eq!(worker_pid(&mut bulkhead, &session), u64::from(pid));
    let echo = bulkhead.call_ok("echo", json!({"text": "after", "session": session}));
    assert_eq!(echo["content"][0]["text"], "after");
}

/// Error code of a call cut off by a reload's drain deadline: retry it.
const RELOADING: i64 = -32049;

#[test]
fn a_call_still_running_at_the_reload_deadline_gets_the_retryable_error_and_the_reload_goes_on() {
    let dir = scratch_dir("upgrade-cutoff");
    let mut bulkhead = start(installed_copy(&dir));
    let (session, pid) = bulkhead.open_session();
    // Longer than the reload's 10 s drain deadline, shorter than the call deadline.
    let id = bulkhead.send_request(
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "too long", "delay_ms": 25_000, "session": session}}),
    );
    std::thread::sleep(Duration::from_millis(300));
    hangup(bulkhead.pid());
    let reply = bulkhead.response(&json!(id));
    assert_eq!(error_code(&reply), Some(RELOADING), "{reply}");
    wait_for_log(&bulkhead, "serving MCP on stdio", 2);
    assert_eq!(worker_pid(&mut bulkhead, &session), u64::from(pid));
    let echo = bulkhead.call_ok("echo", json!({"text": "retried", "session": session}));
    assert_eq!(echo["content"][0]["text"], "retried");
}

/// SIGHUP with the file at `program` unfit; the reload is refused with `why` in the log, and the
/// old image still serves `session` from `pid`.
fn assert_refused(bulkhead: &mut Running, session: &str, pid: u32, why: &str, refusals: usize) {
    let version = server_version(bulkhead);
    hangup(bulkhead.pid());
    wait_for_log(bulkhead, "reload refused, still serving", refusals);
    assert!(
        bulkhead.stderr().contains(why),
        "{why:?} in:\n{}",
        bulkhead.stderr()
    );
    assert_eq!(worker_pid(bulkhead, session), u64::from(pid));
    assert_eq!(server_version(bulkhead), version);
    let echo = bulkhead.call_ok("echo", json!({"text": "still", "session": session}));
    assert_eq!(echo["content"][0]["text"], "still");
}

#[test]
fn preflight_refusals_keep_the_old_image_serving() {
    let dir = scratch_dir("upgrade-refused");
    let program = installed_copy(&dir);
    let mut bulkhead = start(program.clone());
    let (session, pid) = bulkhead.open_session();

    replace_with_patched(&program, b"BULKHEAD-STATE-VERSION:", b"0002");
    assert_refused(
        &mut bulkhead,
        &session,
        pid,
        "cannot take over this state",
        1,
    );

    std::fs::write(&program, "#!/bin/sh\nexit 0\n").unwrap();
    assert_refused(
        &mut bulkhead,
        &session,
        pid,
        "is not a Bulkhead supervisor",
        2,
    );

    std::fs::remove_file(&program).unwrap();
    assert_refused(&mut bulkhead, &session, pid, "cannot be started", 3);

    // Refusals leave nothing behind that stops the next reload.

    replace_with_patched(&program, b"BULKHEAD-BUILD-LABEL:", b"fixed");
    reload(&bulkhead, 1);
    assert_eq!(worker_pid(&mut bulkhead, &session), u64::from(pid));
    assert!(server_version(&mut bulkhead).ends_with("+fixed"));
}

fn legacy_post(
    server: &TestServer,
    session_id: Option<&str>,
    id: u64,
    method: &str,
    params: Value,
) -> HttpResponse {
    let mut headers = vec![("MCP-Protocol-Version", "2025-11-25")];
    if let Some(session_id) = session_id {
        headers.push(("Mcp-Session-Id", session_id));
    }
    server.post(
        &headers,
        &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
    )
}

/// A tool call's structured result over HTTP (2026-07-28 when `session_id` is `None`, else in
/// that legacy session), failing the test on any error.
fn http_call(server: &TestServer, session_id: Option<&str>, name: &str, arguments: Value) -> Value {
    let response = match session_id {
        None => server.modern(
            None,
            7,
            "tools/call",
            json!({"name": name, "arguments": arguments}),
        ),
        Some(id) => legacy_post(
            server,
            Some(id),
            7,
            "tools/call",
            json!({"name": name, "arguments": arguments}),
        ),
    };
    let message = response
        .events()
        .into_iter()
        .chain(std::iter::once(Value::Null))
        .find(|event| event.get("id").is_some())
        .unwrap_or_else(|| response.json());
    let result = message["result"].clone();
    assert!(
        result.is_object() && result["isError"] != true,
        "{name}: {}",
        response.text()
    );
    result["structuredContent"].clone()
}

fn http_version(server: &TestServer) -> String {
    let discover = server.modern(None, 9, "server/discover", json!({}));
    discover.json()["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["version"]
        .as_str()
        .unwrap_or_else(|| panic!("no version: {}", discover.text()))
        .to_string()
}

#[test]
fn http_sessions_and_legacy_session_ids_survive_a_reload_into_a_replaced_binary() {
    let dir = scratch_dir("upgrade-http");
    let program = installed_copy(&dir);
    let worker = binary("bulkhead-worker");
    let server = TestServer::start_program(
        &program,
        "127.0.0.1:0",
        &["--no-auth", "--worker", worker.to_str().unwrap()],
        &[],
    );
    let supervisor = server.pid();
    let before = http_version(&server);
    // A 2026-07-28 handle.
    let handle = server.open_session(None);
    let login = json!({"broker": "paper", "api_key": "k", "api_secret": "s", "session": handle});
    http_call(&server, None, "broker_login", login);
    let order = json!({"symbol": "ETH-USD", "side": "buy", "qty": "1", "session": handle});
    http_call(&server, None, "order_place", order);
    let pid = http_call(&server, None, "session_info", json!({"session": handle}))["pid"].clone();
    // A legacy Mcp-Session-Id session.
    let initialized = legacy_post(
        &server,
        None,
        1,
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}),
    );
    let legacy = initialized
        .header("mcp-session-id")
        .expect("Mcp-Session-Id")
        .to_string();
    http_call(
        &server,
        Some(&legacy),
        "broker_login",
        json!({"broker": "paper", "api_key": "k", "api_secret": "s"}),
    );
    http_call(
        &server,
        Some(&legacy),
        "order_place",
        json!({"symbol": "AAPL", "side": "buy", "qty": "2"}),
    );
    let legacy_pid = http_call(&server, Some(&legacy), "session_info", json!({}))["pid"].clone();

    replace_with_patched(&program, b"BULKHEAD-BUILD-LABEL:", b"upgraded");
    hangup(supervisor);
    assert!(
        eventually(RELOAD_TIMEOUT, || server
            .stderr()
            .matches("listening on")
            .count()
            >= 2
            && server.get("/readyz").status == 200),
        "the new image never served:\n{}",
        server.stderr()
    );

    assert_eq!(http_version(&server), format!("{before}+upgraded"));
    assert_eq!(
        http_call(&server, None, "session_info", json!({"session": handle}))["pid"],
        pid
    );
    let orders = http_call(
        &server,
        None,
        "orders",
        json!({"status": "all", "broker": "paper", "session": handle}),
    );
    assert_eq!(orders["orders"].as_array().unwrap().len(), 1, "{orders}");
    assert_eq!(
        http_call(&server, Some(&legacy), "session_info", json!({}))["pid"],
        legacy_pid
    );
    let orders = http_call(
        &server,
        Some(&legacy),
        "orders",
        json!({"status": "all", "broker": "paper"}),
    );
    assert_eq!(orders["orders"].as_array().unwrap().len(), 1, "{orders}");
    assert_eq!(server.pid(), supervisor);
    assert!(process_state(supervisor).is_some());
}

/// `--wrap -- python3 tests/servers/probe_server.py`.
fn wrapped_probe() -> Vec<String> {
    let probe = Path::new(env!("CARGO_MANIFEST_DIR")).join("servers/probe_server.py");
    vec![
        "--wrap".into(),
        "--".into(),
        "python3".into(),
        probe.to_str().expect("UTF-8 path").into(),
    ]
}

fn whoami(bulkhead: &mut Running, session: &str) -> u64 {
    let whoami = bulkhead.call_ok("whoami", json!({"session": session}));
    structured(&whoami)["pid"].as_u64().expect("pid")
}

#[test]
fn a_wrapped_servers_session_survives_a_reload_with_its_stderr_and_its_tree() {
    let dir = scratch_dir("upgrade-wrap");
    let mut bulkhead = TestSupervisor::new()
        .program(installed_copy(&dir))
        .env("RUST_LOG", "info,bulkhead::wrap=debug")
        .args(["--worker", binary("bulkhead-worker").to_str().unwrap()])
        .args(wrapped_probe())
        .start_legacy();
    let (session, _) = bulkhead.open_session();
    let server = whoami(&mut bulkhead, &session);
    reload(&bulkhead, 1);
    assert_eq!(
        whoami(&mut bulkhead, &session),
        server,
        "the same server process"
    );
    // Its stderr is still read (and it can still write it).
    bulkhead.call_ok(
        "say",
        json!({"text": "said after the reload", "session": session}),
    );
    wait_for_log(&bulkhead, "said after the reload", 1);
    // Stopping another session's tree sweeps orphans: the adopted server is not one.
    let (other, _) = bulkhead.open_session();
    whoami(&mut bulkhead, &other);
    bulkhead.call_ok("session_close", json!({"session": other}));
    assert_eq!(whoami(&mut bulkhead, &session), server);
    assert!(process_state(server as u32).is_some());
    // The new image keeps the previous one's directory of private homes: a reload leaves no
    // directory behind (two reloads, a new session after each).
    for n in 2..=3 {
        reload(&bulkhead, n);
        let (another, _) = bulkhead.open_session();
        whoami(&mut bulkhead, &another);
    }
    assert_eq!(
        homes_directories(bulkhead.pid()).len(),
        1,
        "one directory of private homes per supervisor, whatever the reloads"
    );
}

/// The supervisor's directories of wrapped servers' private homes (`<temp>/bulkhead-<pid>-…`).
fn homes_directories(supervisor: u32) -> Vec<PathBuf> {
    let prefix = format!("bulkhead-{supervisor}-");
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(&prefix))
        .map(|entry| entry.path())
        .collect()
}

/// Resident memory of a process in KiB.
fn rss_kib(pid: u32) -> u64 {
    proc_status(pid, "VmRSS")
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .expect("VmRSS in kB")
}

/// Sessions the soak keeps busy.
const SOAK_SESSIONS: usize = 20;

#[test]
#[ignore = "soak (about a minute): cargo test -p bulkhead-tests --test upgrade -- --ignored --nocapture"]
fn soak_reloads_under_load_lose_no_session_and_no_call() {
    let reloads: usize = std::env::var("BULKHEAD_SOAK_RELOADS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(100);
    let dir = scratch_dir("upgrade-soak");
    let mut bulkhead = start(installed_copy(&dir));
    let supervisor = bulkhead.pid();
    let sessions: Vec<(String, u32)> = (0..SOAK_SESSIONS)
        .map(|_| bulkhead.open_session())
        .collect();
    for (handle, _) in &sessions {
        login(&mut bulkhead, Some(handle));
    }
    // The first reload settles what a fresh image allocates once.
    reload(&bulkhead, 1);
    std::thread::sleep(Duration::from_millis(500));
    let (descriptors, rss) = (open_descriptors(supervisor), rss_kib(supervisor));
    let started = std::time::Instant::now();
    let (mut answered, mut failed) = (0usize, Vec::new());
    for round in 1..=reloads {
        // A steady load: a call in every session, then the SIGHUP while they run.
        let ids: Vec<u64> = sessions
            .iter()
            .map(|(handle, _)| {
                bulkhead.send_request(
                    "tools/call",
                    json!({"name": "echo", "arguments": {"text": "load", "delay_ms": 20, "session": handle}}),
                )
            })
            .collect();
        hangup(supervisor);
        for id in ids {
            let reply = bulkhead.response(&json!(id));
            if reply["result"]["content"][0]["text"] == "load" {
                answered += 1;
            } else {
                failed.push(reply);
            }
        }
        wait_for_log(&bulkhead, "serving MCP on stdio", round + 2);
    }
    let elapsed = started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let same_workers = sessions
        .iter()
        .filter(|(handle, pid)| worker_pid(&mut bulkhead, handle) == u64::from(*pid))
        .count();
    let zombies = children_of(supervisor)
        .into_iter()
        .filter(|(_, state)| *state == 'Z')
        .count();
    let (descriptors_after, rss_after) = (open_descriptors(supervisor), rss_kib(supervisor));
    eprintln!(
        "soak: {reloads} reloads in {:.1} s ({:.0} ms each) under load on {SOAK_SESSIONS} sessions; \
         calls answered {answered}, failed {}; sessions kept on their workers {same_workers}/{SOAK_SESSIONS}; \
         descriptors {descriptors} -> {descriptors_after}; RSS {rss} KiB -> {rss_after} KiB; zombies {zombies}",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / reloads as f64,
        failed.len()
    );
    assert!(failed.is_empty(), "calls lost: {failed:?}");
    assert_eq!(same_workers, SOAK_SESSIONS, "sessions lost");
    assert_eq!(descriptors_after, descriptors, "descriptors leaked");
    assert!(rss_after < rss * 2, "memory grew: {rss} -> {rss_after} KiB");
    assert_eq!(zombies, 0);
    assert!(!bulkhead.stderr().contains("session lost in the reload"));
}

#[test]
fn a_configuration_file_the_new_image_would_reject_refuses_the_reload() {
    let dir = scratch_dir("upgrade-config");
    let config = dir.join("bulkhead.toml");
    std::fs::write(&config, "[sessions]\nmax = 50\n").unwrap();
    let mut bulkhead = TestSupervisor::new()
        .program(installed_copy(&dir))
        .args([
            "--worker",
            binary("bulkhead-worker").to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ])
        .start_legacy();
    let (session, pid) = bulkhead.open_session();
    std::fs::write(&config, "[sessions]\nmax = \"many\"\n").unwrap();
    assert_refused(&mut bulkhead, &session, pid, "configuration: ", 1);
    // Fixed, the same SIGHUP reloads the configuration.
    std::fs::write(&config, "[sessions]\nmax = 60\n").unwrap();
    reload(&bulkhead, 1);
    assert_eq!(worker_pid(&mut bulkhead, &session), u64::from(pid));
}

#[test]
fn ended_and_lost_handles_keep_their_precise_answers_across_a_reload() {
    let dir = scratch_dir("upgrade-ended");
    let mut bulkhead = start(installed_copy(&dir));
    let (lost, lost_pid) = bulkhead.open_session();
    let (closed, _) = bulkhead.open_session();
    bulkhead.call_ok("session_close", json!({"session": closed}));
    kill9(lost_pid);
    assert!(eventually(Duration::from_secs(10), || process_state(
        lost_pid
    )
    .is_none()));
    reload(&bulkhead, 1);
    let after = bulkhead.call("echo", json!({"text": "x", "session": lost}));
    assert_eq!(
        error_code(&after),
        Some(-32041),
        "still lost, not unknown: {after}"
    );
    let after = bulkhead.call("echo", json!({"text": "x", "session": closed}));
    let message = after["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("was closed"),
        "still closed, not unknown: {after}"
    );
}
