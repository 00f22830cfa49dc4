//! Session lifecycle under abuse, end to end: starts the caller abandons, workers that leave
//! their process group, eviction across principals, and the in-flight bound on every path to a
//! worker. Each test is the regression test of one defect of issue 10.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use bulkhead_protocol::codes::SESSION_LIMIT;
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
    assert!(
        eventually(Duration::from_secs(10), || live_workers(supervisor) == 0),
        "every worker started for a cancelled open is stopped: {:?}",
        children_of(supervisor)
    );
    for attempt in 0..5 {
        let opened = bulkhead.call("session_open", json!({}));
        assert!(
            opened.get("result").is_some(),
            "open {attempt} after five cancelled opens: {opened}"
        );
    }
    let sixth = bulkhead.call("session_open", json!({}));
    assert_eq!(error_code(&sixth), Some(SESSION_LIMIT), "{sixth}");
}

#[test]
fn session_opens_abandoned_by_disconnecting_http_clients_leave_no_slot_behind() {
    let tokens = tokens_file();
    let server = TestServer::start(&["--tokens", tokens.to_str().unwrap(), "--max-sessions", "3"]);
    let all_stopped = |what: &str| {
        assert!(
            eventually(Duration::from_secs(10), || live_workers(server.pid()) == 0),
            "every worker started for an abandoned {what} is stopped: {:?}",
            children_of(server.pid())
        );
    };
    for _ in 0..6 {
        call_and_disconnect(&server, ALICE, "session_open", json!({}));
    }
    all_stopped("session_open");
    for _ in 0..3 {
        call_and_disconnect(&server, ALICE, "echo", json!({"text": "gone"}));
    }
    all_stopped("default session");
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}});
    for _ in 0..3 {
        post_and_disconnect(&server, ALICE, "", &initialize);
    }
    all_stopped("legacy initialize");
    let bobs = server.modern(
        Some(BOB),
        2,
        "tools/call",
        json!({"name": "session_open", "arguments": {}}),
    );
    assert_eq!(
        bobs.status,
        200,
        "another principal can open: {}",
        bobs.text()
    );
    let default = server.modern(
        Some(BOB),
        3,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "default"}}),
    );
    assert_eq!(
        default.json()["result"]["structuredContent"]["text"],
        "default",
        "another principal's default session: {}",
        default.text()
    );
    let alices = server.modern(
        Some(ALICE),
        4,
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
