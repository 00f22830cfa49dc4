//! Cancellation end to end: a cancelled call — by its deadline, by a closed SSE stream, by the
//! client's `notifications/cancelled` — leaves a worker that honoured it alive with its state,
//! past the hard-cancel limit; a worker that really keeps running is still killed.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use bulkhead_protocol::codes::{DEADLINE_EXCEEDED, SESSION_LOST};
use bulkhead_tests::http::TestServer;
use bulkhead_tests::*;
use serde_json::{Value, json};

/// Hard-cancel limit of these tests, in seconds; each waits [`PAST_THE_HARD_LIMIT`] after a
/// cancellation before it looks.
const HARD_CANCEL: &str = "1";
const PAST_THE_HARD_LIMIT: Duration = Duration::from_secs(2);

/// Log in to the paper broker in `session` and buy 0.03 BTC-USD (crypto trades around the clock,
/// so the market order fills whatever the hour).
fn hold_a_position(bulkhead: &mut Running, session: &str) {
    bulkhead.call_ok(
        "broker_login",
        json!({"broker": "paper", "api_key": "key", "api_secret": "secret", "session": session}),
    );
    let bought = bulkhead.call_ok(
        "order_place",
        json!({"symbol": "BTC-USD", "side": "buy", "qty": "0.03", "type": "market", "session": session}),
    );
    assert_eq!(structured(&bought)["order"]["status"], "filled", "{bought}");
}

/// The session still answers from the same worker, and its position is intact.
fn still_serves_with_its_position(bulkhead: &mut Running, session: &str, pid: u32) {
    let info = bulkhead.call("session_info", json!({"session": session}));
    assert_eq!(
        info["result"]["structuredContent"]["pid"],
        json!(pid),
        "the same worker serves the session: {info}\nstderr:\n{}",
        bulkhead.stderr()
    );
    let positions = bulkhead.call_ok("positions", json!({"session": session}));
    assert_eq!(
        structured(&positions)["positions"][0]["symbol"],
        "BTC-USD",
        "{positions}"
    );
    assert_eq!(structured(&positions)["positions"][0]["qty"], "0.03");
}

#[test]
fn a_call_past_its_deadline_leaves_the_session_and_its_state_past_the_hard_limit() {
    let mut bulkhead = TestSupervisor::new()
        .args(["--call-timeout", "0.5", "--hard-cancel", HARD_CANCEL])
        .start_legacy();
    let (session, pid) = bulkhead.open_session();
    hold_a_position(&mut bulkhead, &session);
    let late = bulkhead.call(
        "echo",
        json!({"text": "late", "delay_ms": 5000, "session": session}),
    );
    assert_eq!(error_code(&late), Some(DEADLINE_EXCEEDED), "{late}");
    std::thread::sleep(PAST_THE_HARD_LIMIT);
    still_serves_with_its_position(&mut bulkhead, &session, pid);
}

#[test]
fn a_call_the_client_cancels_leaves_the_session_and_its_state_past_the_hard_limit() {
    let mut bulkhead = TestSupervisor::new()
        .args(["--hard-cancel", HARD_CANCEL])
        .start_legacy();
    let (session, pid) = bulkhead.open_session();
    hold_a_position(&mut bulkhead, &session);
    let id = bulkhead.send_request(
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "cancel me", "delay_ms": 60000, "session": session}}),
    );
    std::thread::sleep(Duration::from_millis(200));
    bulkhead.notify(
        "notifications/cancelled",
        Some(json!({"requestId": id, "reason": "the user pressed stop"})),
    );
    std::thread::sleep(PAST_THE_HARD_LIMIT);
    still_serves_with_its_position(&mut bulkhead, &session, pid);
    assert!(
        bulkhead
            .wait_for(Duration::from_millis(100), |message| message.get("id")
                == Some(&json!(id)))
            .is_none(),
        "a cancelled request gets no response"
    );
}

#[test]
fn a_closed_sse_stream_leaves_the_session_and_its_state_past_the_hard_limit() {
    let server = TestServer::start(&[
        "--no-auth",
        "--sse-keepalive",
        "0.2",
        "--hard-cancel",
        HARD_CANCEL,
    ]);
    let session = server.open_session(None);
    let call = |id: u64, name: &str, arguments: Value| {
        let mut arguments = arguments;
        arguments["session"] = json!(session);
        server.modern(
            None,
            id,
            "tools/call",
            json!({"name": name, "arguments": arguments}),
        )
    };
    let login = call(
        1,
        "broker_login",
        json!({"broker": "paper", "api_key": "key", "api_secret": "secret"}),
    );
    assert_eq!(login.status, 200, "{}", login.text());
    let bought = call(
        2,
        "order_place",
        json!({"symbol": "BTC-USD", "side": "buy", "qty": "0.03", "type": "market"}),
    );
    assert_eq!(
        bought.json()["result"]["structuredContent"]["order"]["status"],
        "filled"
    );
    let pid = call(3, "session_info", json!({})).json()["result"]["structuredContent"]["pid"]
        .as_u64()
        .unwrap();

    let body = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "slow", "delay_ms": 60000, "session": session}, "_meta": modern_meta()}}).to_string();
    let mut stream = TcpStream::connect(server.addr).unwrap();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: echo\r\nMcp-Param-Session: {session}\r\nContent-Length: {}\r\n\r\n{body}",
        server.addr,
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let in_flight = || {
        call(5, "session_info", json!({})).json()["result"]["structuredContent"]["in_flight"]
            .as_u64()
            .unwrap()
    };
    assert!(
        eventually(Duration::from_secs(3), || in_flight() == 1),
        "the call is running"
    );
    drop(stream);
    assert!(
        eventually(Duration::from_secs(3), || in_flight() == 0),
        "closing the stream cancelled the call"
    );
    std::thread::sleep(PAST_THE_HARD_LIMIT);
    let info = call(6, "session_info", json!({}));
    assert_eq!(
        info.json()["result"]["structuredContent"]["pid"],
        json!(pid),
        "the same worker serves the session: {}\nstderr:\n{}",
        info.text(),
        server.stderr()
    );
    let positions = call(7, "positions", json!({}));
    assert_eq!(
        positions.json()["result"]["structuredContent"]["positions"][0]["qty"],
        "0.03",
        "{}",
        positions.text()
    );
}

#[test]
fn a_worker_that_keeps_running_after_a_cancellation_is_still_killed() {
    let mut bulkhead = TestSupervisor::new()
        .args([
            "--test-tools",
            "--call-timeout",
            "0.3",
            "--hard-cancel",
            HARD_CANCEL,
        ])
        .start_legacy();
    let (stuck, stuck_pid) = bulkhead.open_session();
    let hung = bulkhead.call("hang_uncancellable", json!({"ms": 30000, "session": stuck}));
    assert_eq!(error_code(&hung), Some(DEADLINE_EXCEEDED), "{hung}");
    assert!(
        eventually(PAST_THE_HARD_LIMIT + Duration::from_secs(1), || {
            process_state(stuck_pid).is_none()
        }),
        "the worker that ignores the cancellation is killed"
    );
    let later = bulkhead.call("echo", json!({"text": "x", "session": stuck}));
    assert_eq!(error_code(&later), Some(SESSION_LOST), "{later}");
}

/// `--wrap -- python3 tests/servers/probe_server.py`: a foreign server that acknowledges no
/// cancellation.
fn wrapped_probe() -> Vec<String> {
    let probe = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("servers/probe_server.py");
    vec![
        "--wrap".into(),
        "--".into(),
        "python3".into(),
        probe.to_str().expect("UTF-8 path").into(),
    ]
}

fn wrapped_pid(bulkhead: &mut Running, session: &str) -> Option<u64> {
    let whoami = bulkhead.call("whoami", json!({"session": session}));
    whoami["result"]["structuredContent"]["pid"].as_u64()
}

#[test]
fn a_wrapped_server_whose_request_loop_answers_after_a_cancellation_is_kept() {
    let mut bulkhead = TestSupervisor::new()
        .args(["--call-timeout", "0.5", "--hard-cancel", HARD_CANCEL])
        .args(wrapped_probe())
        .start_legacy();
    let (session, _) = bulkhead.open_session();
    let pid = wrapped_pid(&mut bulkhead, &session).expect("whoami");
    let late = bulkhead.call("slow_reply", json!({"seconds": 60, "session": session}));
    assert_eq!(error_code(&late), Some(DEADLINE_EXCEEDED), "{late}");
    std::thread::sleep(PAST_THE_HARD_LIMIT);
    assert_eq!(
        wrapped_pid(&mut bulkhead, &session),
        Some(pid),
        "the same server process serves the session; stderr:\n{}",
        bulkhead.stderr()
    );
}

#[test]
fn a_wrapped_server_whose_request_loop_is_blocked_after_a_cancellation_is_killed() {
    let mut bulkhead = TestSupervisor::new()
        .args(["--call-timeout", "0.5", "--hard-cancel", HARD_CANCEL])
        .args(wrapped_probe())
        .start_legacy();
    let (session, _) = bulkhead.open_session();
    let pid = wrapped_pid(&mut bulkhead, &session).expect("whoami") as u32;
    let late = bulkhead.call("sleep", json!({"seconds": 60, "session": session}));
    assert_eq!(error_code(&late), Some(DEADLINE_EXCEEDED), "{late}");
    assert!(
        eventually(PAST_THE_HARD_LIMIT + Duration::from_secs(1), || {
            process_state(pid).is_none()
        }),
        "a server that answers nothing after the cancellation is killed"
    );
    let later = bulkhead.call("whoami", json!({"session": session}));
    assert_eq!(error_code(&later), Some(SESSION_LOST), "{later}");
}
