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
        assert_eq!(
            error_code(&response.json()),
            Some(SESSION_NOT_FOUND),
            "{id}"
        );
    }
    assert_eq!(sessions_open(&server), "bulkhead_sessions_open 0");
}

/// JSON-RPC code of a refusal by a draining node (`bulkhead_protocol::codes::NODE_DRAINING`).
const NODE_DRAINING: i64 = -32048;
const ADMIN: &str = "admin-token-abcdefghijkl";

fn admin_token_file() -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "bulkhead-admin-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&path, ADMIN).unwrap();
    path
}

fn legacy_initialize(server: &TestServer) -> bulkhead_tests::http::HttpResponse {
    server.post(
        &[],
        &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}),
    )
}

fn legacy_echo(server: &TestServer, session_id: &str) -> serde_json::Value {
    server
        .post(
            &[
                ("Mcp-Session-Id", session_id),
                ("MCP-Protocol-Version", "2025-11-25"),
            ],
            &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "still here"}}}),
        )
        .json()
}

fn echo_in(server: &TestServer, session: Option<&str>) -> bulkhead_tests::http::HttpResponse {
    let mut arguments = json!({"text": "still here"});
    if let Some(session) = session {
        arguments["session"] = json!(session);
    }
    server.modern(
        None,
        3,
        "tools/call",
        json!({"name": "echo", "arguments": arguments}),
    )
}

fn exited(
    server: &mut TestServer,
    within: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    let mut status = None;
    eventually(within, || {
        status = server.child.try_wait().unwrap();
        status.is_some()
    });
    status
}

#[test]
fn sigusr1_drains_a_node_which_serves_its_sessions_refuses_new_ones_and_exits_after_the_last() {
    let admin = admin_token_file();
    let mut server = TestServer::start(&[
        "--no-auth",
        "--node",
        "n1",
        "--admin-token-file",
        admin.to_str().unwrap(),
    ]);
    let handle = server.open_session(None);
    let initialized = legacy_initialize(&server);
    assert_eq!(initialized.status, 200);
    let legacy = initialized.header("mcp-session-id").unwrap().to_string();

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.pid() as i32),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .unwrap();
    assert!(eventually(std::time::Duration::from_secs(5), || server
        .get("/readyz")
        .status
        == 503));
    assert_eq!(server.get("/readyz").text(), "draining\n");
    assert_eq!(server.get("/healthz").status, 200);

    // Existing sessions are served: an explicit handle and a legacy session.
    let served = echo_in(&server, Some(&handle));
    assert_eq!(served.status, 200);
    assert!(served.json()["result"].is_object(), "{}", served.text());
    assert!(legacy_echo(&server, &legacy)["result"].is_object());

    // New sessions are refused, retryably, in every way one could start.
    let refused = server.modern(
        None,
        4,
        "tools/call",
        json!({"name": "session_open", "arguments": {}}),
    );
    let sessionless = echo_in(&server, None);
    let initialize = legacy_initialize(&server);
    for (what, response) in [
        ("session_open", &refused),
        ("sessionless call", &sessionless),
        ("initialize", &initialize),
    ] {
        let reply = response.json();
        assert_eq!(response.status, 503, "{what}: {reply}");
        assert_eq!(response.header("retry-after"), Some("2"), "{what}");
        assert_eq!(error_code(&reply), Some(NODE_DRAINING), "{what}: {reply}");
        assert!(
            reply["error"]["message"]
                .as_str()
                .unwrap()
                .contains("node n1 is draining"),
            "{what}: {reply}"
        );
    }

    let metrics = server.get("/metrics").text();
    assert!(
        metrics.contains("bulkhead_node_state{node=\"n1\",state=\"draining\"} 1"),
        "{metrics}"
    );
    let auth = [("Authorization", format!("Bearer {ADMIN}"))];
    let auth = [(auth[0].0, auth[0].1.as_str())];
    let node = server.request("GET", "/admin/node", &auth, b"").json();
    assert_eq!(node["state"], "draining");
    assert_eq!(node["drain_trigger"], "SIGUSR1");
    assert_eq!(node["sessions"], 2);

    // The node stays while a session is open, and exits by itself after the last one ends.
    let closed = server.modern(
        None,
        5,
        "tools/call",
        json!({"name": "session_close", "arguments": {"session": handle}}),
    );
    assert!(closed.json()["result"].is_object(), "{}", closed.text());
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "exited with a session open"
    );
    let deleted = server.request(
        "DELETE",
        "/mcp",
        &[
            ("Mcp-Session-Id", &legacy),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
        b"",
    );
    assert_eq!(deleted.status, 200);
    let status =
        exited(&mut server, std::time::Duration::from_secs(10)).expect("the drained node exits");
    assert!(status.success(), "{status:?}\n{}", server.stderr());
    assert!(
        server
            .stderr()
            .contains("drained: the last session has ended")
    );
    let _ = std::fs::remove_file(admin);
}

#[test]
fn post_admin_drain_ends_the_node_at_its_deadline_even_with_sessions_open() {
    let admin = admin_token_file();
    let mut server = TestServer::start(&[
        "--no-auth",
        "--node",
        "n1",
        "--drain-deadline",
        "1.5",
        "--admin-token-file",
        admin.to_str().unwrap(),
    ]);
    let handle = server.open_session(None);
    let pid = server
        .modern(
            None,
            1,
            "tools/call",
            json!({"name": "session_info", "arguments": {"session": handle}}),
        )
        .json()["result"]["structuredContent"]["pid"]
        .as_u64()
        .unwrap() as u32;
    assert_eq!(server.request("POST", "/admin/drain", &[], b"").status, 401);
    let auth = format!("Bearer {ADMIN}");
    let auth = [("Authorization", auth.as_str())];
    let begun = server.request("POST", "/admin/drain", &auth, b"");
    assert_eq!(begun.status, 202, "{}", begun.text());
    assert_eq!(begun.json()["state"], "draining");
    assert_eq!(begun.json()["drain_trigger"], "admin API");
    assert_eq!(
        server.request("POST", "/admin/drain", &auth, b"").status,
        200
    );
    assert!(echo_in(&server, Some(&handle)).json()["result"].is_object());
    let status = exited(&mut server, std::time::Duration::from_secs(15))
        .expect("the node exits at its drain deadline");
    assert!(status.success(), "{status:?}");
    assert!(
        server.stderr().contains("drain deadline has passed"),
        "{}",
        server.stderr()
    );
    assert!(
        eventually(std::time::Duration::from_secs(3), || process_state(pid)
            .is_none()),
        "the worker outlived its node"
    );
    let _ = std::fs::remove_file(admin);
}
