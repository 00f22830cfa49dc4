//! Session lifecycle under abuse, end to end: starts the caller abandons, workers that leave
//! their process group, eviction across principals, and the in-flight bound on every path to a
//! worker. Each test is the regression test of one defect of issue 10.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bulkhead_protocol::codes::{SESSION_LIMIT, TOO_MANY_IN_FLIGHT};
use bulkhead_tests::http::TestServer;
use bulkhead_tests::*;
use serde_json::{Value, json};

const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-9876543210xyz";

/// A tokens file naming the principals `alice` and `bob`.
fn tokens_file() -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let path = std::env::temp_dir().join(format!(
        "bulkhead-lifecycle-tokens-{}-{nanos}",
        std::process::id()
    ));
    std::fs::write(&path, format!("alice:{ALICE}\nbob:{BOB}\n")).unwrap();
    path
}

/// Worker processes of the supervisor `pid` that are alive (not zombies).
fn live_workers(pid: u32) -> usize {
    children_of(pid)
        .into_iter()
        .filter(|(_, state)| *state != 'Z' && *state != 'X')
        .count()
}

/// Send a 2026-07-28 `tools/call` as `token` over a fresh connection and close it at once,
/// before any answer, as a client that gives up does.
fn call_and_disconnect(server: &TestServer, token: &str, name: &str, arguments: Value) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments, "_meta": modern_meta()}});
    let headers = format!(
        "MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: {name}\r\n"
    );
    post_and_disconnect(server, token, &headers, &body);
}

/// POST `body` with `headers` (each line ending in CRLF) and close the connection at once.
fn post_and_disconnect(server: &TestServer, token: &str, headers: &str, body: &Value) {
    let body = body.to_string();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        server.addr,
        body.len()
    );
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    stream.write_all(request.as_bytes()).expect("send");
    std::thread::sleep(Duration::from_millis(1));
    drop(stream);
}

#[test]
fn cancelled_session_opens_over_stdio_leave_no_slot_and_no_worker_behind() {
    let mut bulkhead = TestSupervisor::new()
        .args(["--max-sessions-per-principal", "5"])
        .start_legacy();
    let supervisor = bulkhead.pid();
    for _ in 0..5 {
        let id = bulkhead.send_request(
            "tools/call",
            json!({"name": "session_open", "arguments": {}}),
        );
        std::thread::sleep(Duration::from_millis(1));
        bulkhead.notify(
            "notifications/cancelled",
            Some(json!({"requestId": id, "reason": "changed my mind"})),
        );
    }
    // The cancelled starts finish in the background and give their slots back, all five.
    let mut opened = 0;
    let mut last = Value::Null;
    assert!(
        eventually(Duration::from_secs(10), || {
            last = bulkhead.call("session_open", json!({}));
            opened += usize::from(last.get("result").is_some());
            opened == 5
        }),
        "{opened} opens after five cancelled opens; the last: {last}"
    );
    let sixth = bulkhead.call("session_open", json!({}));
    assert_eq!(error_code(&sixth), Some(SESSION_LIMIT), "{sixth}");
    assert!(
        eventually(Duration::from_secs(5), || live_workers(supervisor) == 5),
        "no worker started for a cancelled open is left: {:?}",
        children_of(supervisor)
    );
}

/// How long the probe server of the HTTP test takes to start: long enough that a client that
/// disconnects a millisecond after its request surely leaves before the start completes.
const SLOW_START: &str = "1";

#[test]
fn session_opens_abandoned_by_disconnecting_http_clients_leave_no_slot_behind() {
    let tokens = tokens_file();
    let mut args = vec![
        "--tokens".to_string(),
        tokens.to_str().unwrap().to_string(),
        "--max-sessions".into(),
        "3".into(),
    ];
    args.extend(wrapped_probe());
    args.extend(["--start-delay".to_string(), SLOW_START.to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = TestServer::start(&args);
    // Bob can open (and close) a session once the abandoned starts have given their slots back.
    let bob_gets_a_slot = |what: &str| {
        std::thread::sleep(Duration::from_millis(300));
        let mut opened = Value::Null;
        assert!(
            eventually(Duration::from_secs(10), || {
                opened = server
                    .modern(
                        Some(BOB),
                        2,
                        "tools/call",
                        json!({"name": "session_open", "arguments": {}}),
                    )
                    .json();
                opened.get("result").is_some()
            }),
            "after an abandoned {what}, another principal can open: {opened}"
        );
        let handle = opened["result"]["structuredContent"]["session"]
            .as_str()
            .unwrap();
        let closed = server.modern(
            Some(BOB),
            3,
            "tools/call",
            json!({"name": "session_close", "arguments": {"session": handle}}),
        );
        assert_eq!(closed.status, 200, "{}", closed.text());
    };
    for _ in 0..6 {
        call_and_disconnect(&server, ALICE, "session_open", json!({}));
    }
    bob_gets_a_slot("session_open");
    for _ in 0..3 {
        call_and_disconnect(&server, ALICE, "whoami", json!({}));
    }
    bob_gets_a_slot("default-session call");
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}});
    for _ in 0..3 {
        post_and_disconnect(&server, ALICE, "", &initialize);
    }
    bob_gets_a_slot("legacy initialize");
    assert!(
        eventually(Duration::from_secs(10), || live_workers(server.pid()) == 0),
        "every server started for an abandoned open is stopped: {:?}\n{}",
        children_of(server.pid()),
        server.stderr()
    );
    let default = server.modern(
        Some(BOB),
        4,
        "tools/call",
        json!({"name": "whoami", "arguments": {}}),
    );
    assert!(
        default.json()["result"]["structuredContent"]["pid"].is_u64(),
        "another principal's default session: {}",
        default.text()
    );
    let alices = server.modern(
        Some(ALICE),
        5,
        "tools/call",
        json!({"name": "session_open", "arguments": {}}),
    );
    assert_eq!(
        alices.status,
        200,
        "the same principal can open: {}",
        alices.text()
    );
    let _ = std::fs::remove_file(tokens);
}

/// `--wrap -- python3 tests/servers/probe_server.py`.
fn wrapped_probe() -> Vec<String> {
    let probe = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("servers/probe_server.py");
    vec![
        "--wrap".into(),
        "--".into(),
        "python3".into(),
        probe.to_str().expect("UTF-8 path").into(),
    ]
}

/// Make the wrapped server of `session` leave its process group for the supervisor's, ignore
/// SIGTERM and outlive its stdin; returns its pid.
fn escape(result: &Value) -> u32 {
    let escaped = &result["structuredContent"];
    let pid = escaped["pid"].as_u64().expect("pid") as u32;
    assert_ne!(escaped["pgid"], json!(pid), "it left its group: {escaped}");
    pid
}

#[test]
fn a_wrapped_server_that_leaves_its_process_group_is_stopped_and_counts_until_reaped() {
    let mut bulkhead = TestSupervisor::new()
        .args(["--max-sessions-per-principal", "1"])
        .args(wrapped_probe())
        .start_legacy();
    let (session, _) = bulkhead.open_session();
    let pid = escape(&bulkhead.call_ok("escape", json!({"session": session})));
    let asked = Instant::now();
    let close = bulkhead.send_request(
        "tools/call",
        json!({"name": "session_close", "arguments": {"session": session}}),
    );
    std::thread::sleep(Duration::from_millis(300));
    let meanwhile = bulkhead.call("session_open", json!({}));
    assert_eq!(
        error_code(&meanwhile),
        Some(SESSION_LIMIT),
        "a session counts against its principal until its processes are reaped: {meanwhile}"
    );
    let closed = bulkhead.response(&json!(close));
    let took = asked.elapsed();
    assert!(closed.get("result").is_some(), "{closed}");
    assert!(
        took < Duration::from_millis(2500),
        "session_close took {took:?}"
    );
    assert!(process_state(pid).is_none(), "the server process is gone");
    let (_, _) = bulkhead.open_session();
}

#[test]
fn a_stuck_stop_does_not_hold_back_another_principals_expiry() {
    let tokens = tokens_file();
    let mut args = vec![
        "--tokens".to_string(),
        tokens.to_str().unwrap().to_string(),
        "--idle-ttl".into(),
        "2".into(),
    ];
    args.extend(wrapped_probe());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = TestServer::start(&args);
    let call = |token: &str, id: u64, name: &str, session: &str| {
        server
            .modern(
                Some(token),
                id,
                "tools/call",
                json!({"name": name, "arguments": {"session": session}}),
            )
            .json()
    };
    let alices = server.open_session(Some(ALICE));
    let stuck = escape(&call(ALICE, 1, "escape", &alices)["result"]);
    // Alice's session expires first, a second before Bob's.
    std::thread::sleep(Duration::from_secs(1));
    let bobs = server.open_session(Some(BOB));
    let idle = call(BOB, 2, "whoami", &bobs)["result"]["structuredContent"]["pid"]
        .as_u64()
        .expect("whoami") as u32;
    assert!(
        eventually(Duration::from_secs(8), || process_state(idle).is_none()),
        "bob's idle session expired on time; stderr:\n{}",
        server.stderr()
    );
    assert!(
        eventually(Duration::from_secs(3), || process_state(stuck).is_none()),
        "alice's escaped server was stopped too"
    );
    let _ = std::fs::remove_file(tokens);
}

#[test]
fn eviction_at_the_limit_never_takes_another_principals_session() {
    let tokens = tokens_file();
    let server = TestServer::start(&[
        "--tokens",
        tokens.to_str().unwrap(),
        "--max-sessions",
        "2",
        "--evict-idle",
    ]);
    let call = |token: &str, id: u64, name: &str, arguments: Value| {
        server
            .modern(
                Some(token),
                id,
                "tools/call",
                json!({"name": name, "arguments": arguments}),
            )
            .json()
    };
    let alices = server.open_session(Some(ALICE));
    let login = call(
        ALICE,
        1,
        "broker_login",
        json!({"broker": "paper", "api_key": "key", "api_secret": "secret", "session": alices}),
    );
    assert_eq!(login["result"]["isError"], false, "{login}");
    let bobs_first = server.open_session(Some(BOB));
    // At the limit, Bob's next open makes room among his own sessions only.
    let bobs_second = server.open_session(Some(BOB));
    let evicted = call(BOB, 2, "echo", json!({"text": "x", "session": bobs_first}));
    assert!(
        evicted["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("evicted"),
        "{evicted}"
    );
    let info = call(ALICE, 3, "session_info", json!({"session": alices}));
    // Network brokers are listed beside paper: find paper by name.
    let paper = info["result"]["structuredContent"]["brokers"]
        .as_array()
        .and_then(|brokers| brokers.iter().find(|broker| broker["name"] == "paper"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        paper["authenticated"], true,
        "alice's session and login survive bob's opens: {info}"
    );
    let echoed = call(
        BOB,
        4,
        "echo",
        json!({"text": "second", "session": bobs_second}),
    );
    assert_eq!(echoed["result"]["structuredContent"]["text"], "second");
    let _ = std::fs::remove_file(tokens);
}

#[test]
fn session_info_waits_for_no_worker_beyond_the_in_flight_bound() {
    let mut bulkhead = TestSupervisor::new()
        .args(["--test-tools", "--max-in-flight", "1"])
        .start_legacy();
    let hung = bulkhead.send_request(
        "tools/call",
        json!({"name": "hang_uncancellable", "arguments": {"ms": 2000}}),
    );
    std::thread::sleep(Duration::from_millis(300));
    let asked: Vec<u64> = (0..20)
        .map(|_| {
            bulkhead.send_request(
                "tools/call",
                json!({"name": "session_info", "arguments": {}}),
            )
        })
        .collect();
    let started = Instant::now();
    for id in asked {
        let refused = bulkhead.response(&json!(id));
        assert_eq!(
            error_code(&refused),
            Some(TOO_MANY_IN_FLIGHT),
            "the one permit is held: {refused}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "refused at once, not queued behind the blocked worker"
    );
    let done = bulkhead.response(&json!(hung));
    assert!(done.get("result").is_some(), "{done}");
    bulkhead.call_ok("session_info", json!({}));
}

#[test]
fn forwarded_methods_wait_for_no_worker_beyond_the_in_flight_bound() {
    let mut bulkhead = TestSupervisor::new()
        .args(["--test-fixtures", "--max-in-flight", "1"])
        .spawn();
    let init = bulkhead.request(
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {"sampling": {}}, "clientInfo": {"name": "t", "version": "0"}}),
    );
    assert!(init.get("result").is_some(), "{init}");
    bulkhead.notify("notifications/initialized", None);
    // A call that waits for the client's sampling answer, which never comes: it holds the
    // session's one permit.
    bulkhead.send_request(
        "tools/call",
        json!({"name": "test_sampling", "arguments": {"prompt": "hold"}}),
    );
    assert!(
        bulkhead
            .wait_for(RESPONSE_TIMEOUT, |message| message["method"]
                == "sampling/createMessage")
            .is_some(),
        "the call asks the client"
    );
    for method in ["resources/list", "prompts/list"] {
        let refused = bulkhead.request(method, json!({}));
        assert_eq!(
            error_code(&refused),
            Some(TOO_MANY_IN_FLIGHT),
            "{method} while the one permit is held: {refused}"
        );
    }
}

#[test]
fn two_clients_of_one_principal_using_the_same_request_id_never_cancel_each_other() {
    let tokens = tokens_file();
    let server = TestServer::start(&["--tokens", tokens.to_str().unwrap()]);
    let session = server.open_session(Some(ALICE));
    let slow = std::thread::scope(|scope| {
        let first_client = scope.spawn(|| {
            server.modern(
                Some(ALICE),
                1,
                "tools/call",
                json!({"name": "echo", "arguments": {"text": "mine", "delay_ms": 1500, "session": session}}),
            )
        });
        std::thread::sleep(Duration::from_millis(300));
        // Another client of the same principal cancels its own request 1 (say, a stale one). On
        // Streamable HTTP 2026-07-28 a request is cancelled by closing its own stream; an id
        // names nothing outside its client.
        let cancelled = server.post(
            &[
                ("Authorization", &format!("Bearer {ALICE}")),
                ("MCP-Protocol-Version", "2026-07-28"),
                ("Mcp-Method", "notifications/cancelled"),
            ],
            &json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1, "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}}),
        );
        assert_eq!(cancelled.status, 202, "{}", cancelled.text());
        first_client.join().unwrap()
    });
    assert_eq!(
        slow.json()["result"]["structuredContent"]["text"],
        "mine",
        "the first client's call ran to its end: {} {}",
        slow.status,
        slow.text()
    );
    let _ = std::fs::remove_file(tokens);
}
