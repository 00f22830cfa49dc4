//! One `bulkhead serve` node among several, end to end: what a node answers for a session
//! that lives on another node, and how it drains for a rolling upgrade. The same behaviour
//! behind real nginx and HAProxy is in `loadbalancer.rs`.

use bulkhead_tests::http::TestServer;
use bulkhead_tests::*;
use serde_json::json;

/// JSON-RPC code of a session whose state is gone (`bulkhead_protocol::codes::SESSION_LOST`).
const SESSION_LOST: i64 = -32041;
/// JSON-RPC code of an unknown handle (`bulkhead_protocol::codes::SESSION_NOT_FOUND`).
const SESSION_NOT_FOUND: i64 = -32040;

fn handle_on(node: &str) -> String {
    format!("{node}.{}", "ab".repeat(16))
}

fn sessions_open(server: &TestServer) -> String {
    server
        .get("/metrics")
        .text()
        .lines()
        .find(|line| line.starts_with("bulkhead_sessions_open "))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_handle_of_another_node_is_answered_as_lost_with_that_node_named() {
    let server = TestServer::start(&["--no-auth", "--node", "n1"]);
    let foreign = handle_on("n2");
    let response = server.modern(
        None,
        1,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hi", "session": foreign}}),
    );
    let reply = response.json();
    assert_eq!(error_code(&reply), Some(SESSION_LOST), "{reply}");
    let message = reply["error"]["message"].as_str().unwrap();
    for part in [
        "node n2",
        "could not reach",
        "node n1 answered",
        "state is lost",
    ] {
        assert!(message.contains(part), "{part:?} missing from {message:?}");
    }
    assert!(!message.contains("unknown session"), "{message}");
    assert_eq!(reply["error"]["data"]["node"], "n2");
    assert_eq!(reply["error"]["data"]["answered_by"], "n1");
    for tool in ["session_info", "session_close"] {
        let reply = server
            .modern(
                None,
                2,
                "tools/call",
                json!({"name": tool, "arguments": {"session": foreign}}),
            )
            .json();
        assert_eq!(error_code(&reply), Some(SESSION_LOST), "{tool}: {reply}");
    }
    // Never a new session in its place.
    assert_eq!(sessions_open(&server), "bulkhead_sessions_open 0");

    // A handle of this node that never existed is still simply unknown.
    let own = server
        .modern(
            None,
            3,
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "hi", "session": handle_on("n1")}}),
        )
        .json();
    assert_eq!(error_code(&own), Some(SESSION_NOT_FOUND), "{own}");
    assert!(
        server
            .get("/metrics")
            .text()
            .contains("bulkhead_rejections_total{reason=\"other_node\"} 3")
    );
}

#[test]
fn a_legacy_session_id_of_another_node_is_404_with_that_node_named() {
    let server = TestServer::start(&["--no-auth", "--node", "n1"]);
    let foreign = handle_on("node-b");
    let headers = [
        ("Mcp-Session-Id", foreign.as_str()),
        ("MCP-Protocol-Version", "2025-11-25"),
    ];
    let response = server.post(
        &headers,
        &json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}),
    );
    // The 2025-11-25 transport: a request for a session that is over gets 404, and the client
    // starts a new one with initialize.
    assert_eq!(response.status, 404, "{}", response.text());
    let reply = response.json();
    assert_eq!(error_code(&reply), Some(SESSION_LOST), "{reply}");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("node node-b") && message.contains("initialize"),
        "{message}"
    );
    let deleted = server.request("DELETE", "/mcp", &headers, b"");
    assert_eq!(deleted.status, 404);
    assert_eq!(error_code(&deleted.json()), Some(SESSION_LOST));
    // A malformed id or one of this node stays a plain unknown session.
    for id in ["n2.not-hex", &handle_on("n1")] {
        let headers = [
            ("Mcp-Session-Id", id),
            ("MCP-Protocol-Version", "2025-11-25"),
        ];
        let response = server.post(
            &headers,
            &json!({"jsonrpc": "2.0", "id": 8, "method": "tools/list"}),
        );
        assert_eq!(response.status, 404);
        assert_eq!(error_code(&response.json()), Some(SESSION_NOT_FOUND), "{id}");
    }
    assert_eq!(sessions_open(&server), "bulkhead_sessions_open 0");
}
