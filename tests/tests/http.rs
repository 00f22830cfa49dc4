//! `bulkhead serve` end to end over real HTTP on loopback: both protocol eras, principals and
//! the handles bound to them, protections, and the operations endpoints.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bulkhead_tests::http::{HttpResponse, TestServer, closed_while_sending_headers_slowly};
use bulkhead_tests::*;
use serde_json::{Value, json};

const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-9876543210xyz";

fn tokens_file() -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "bulkhead-tokens-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    // Bob's token is stored only as its SHA-256 digest.
    std::fs::write(
        &path,
        format!(
            "# test principals\nalice:{ALICE}\nbob:sha256:{}\n",
            sha256_hex(BOB)
        ),
    )
    .unwrap();
    path
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn sha256_hex(text: &str) -> String {
    #[allow(
        clippy::disallowed_methods,
        reason = "sha256sum computes the digest independently of the server"
    )]
    let output = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .expect("sha256sum");
    String::from_utf8(output.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn structured_of(response: &HttpResponse) -> Value {
    response.json()["result"]["structuredContent"].clone()
}

fn legacy_initialize(server: &TestServer, token: Option<&str>) -> String {
    let auth = token.map(|token| format!("Bearer {token}"));
    let mut headers = vec![];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth.as_str()));
    }
    let response = server.post(
        &headers,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    response
        .header("mcp-session-id")
        .expect("Mcp-Session-Id")
        .to_string()
}

fn legacy_call(
    server: &TestServer,
    token: Option<&str>,
    session_id: &str,
    name: &str,
    arguments: Value,
) -> HttpResponse {
    let auth = token.map(|token| format!("Bearer {token}"));
    let mut headers = vec![
        ("Mcp-Session-Id", session_id),
        ("MCP-Protocol-Version", "2025-11-25"),
    ];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth.as_str()));
    }
    server.post(&headers, &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": name, "arguments": arguments}}))
}

#[test]
fn protocol_2026_07_28_over_http_discover_list_call_and_header_rules() {
    // Half a second: far above a warm echo's time even on a loaded machine, so the quick call
    // below is JSON; the slow one takes three times as long.
    let server = TestServer::start(&["--no-auth", "--sse-keepalive", "0.5"]);
    let discover = server.modern(None, 1, "server/discover", json!({}));
    assert_eq!(discover.status, 200);
    assert!(
        discover.json()["result"]["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!("2026-07-28"))
    );
    let list = server.modern(None, 2, "tools/list", json!({}));
    let result = &list.json()["result"];
    assert_eq!(result["resultType"], "complete");
    assert!(result["ttlMs"].is_u64() && result["cacheScope"].is_string());

    // A quick answer comes back as JSON; one that takes longer than the keep-alive interval
    // on a request-scoped SSE stream. The first call starts the default session's worker, which
    // may take longer than the interval on a busy machine: start it first.
    let _ = server.modern(
        None,
        3,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "start the default session"}}),
    );
    let echo = server.modern(
        None,
        3,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "over http"}}),
    );
    assert_eq!(echo.status, 200);
    assert_eq!(echo.header("content-type"), Some("application/json"));
    assert_eq!(structured_of(&echo), json!({"text": "over http"}));
    let slow = server.modern(
        None,
        3,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "slow", "delay_ms": 1500}}),
    );
    assert_eq!(slow.header("content-type"), Some("text/event-stream"));
    assert_eq!(slow.header("x-accel-buffering"), Some("no"));
    assert!(
        slow.text().contains(": keepalive"),
        "keep-alive comments while waiting"
    );
    assert_eq!(structured_of(&slow), json!({"text": "slow"}));

    let handle = server.open_session(None);
    let routed = server.modern(
        None,
        5,
        "tools/call",
        json!({"name": "session_info", "arguments": {"session": handle}}),
    );
    assert_eq!(structured_of(&routed)["session"], handle.as_str());

    // Header rules.
    let call = json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x", "session": handle}, "_meta": modern_meta()}});
    for (headers, why) in [
        (
            vec![
                ("MCP-Protocol-Version", "2026-07-28"),
                ("Mcp-Name", "echo"),
                ("Mcp-Param-Session", handle.as_str()),
            ],
            "no Mcp-Method",
        ),
        (
            vec![
                ("MCP-Protocol-Version", "2026-07-28"),
                ("Mcp-Method", "tools/list"),
                ("Mcp-Name", "echo"),
                ("Mcp-Param-Session", handle.as_str()),
            ],
            "wrong Mcp-Method",
        ),
        (
            vec![
                ("MCP-Protocol-Version", "2026-07-28"),
                ("Mcp-Method", "tools/call"),
                ("Mcp-Name", "other"),
                ("Mcp-Param-Session", handle.as_str()),
            ],
            "wrong Mcp-Name",
        ),
        (
            vec![
                ("MCP-Protocol-Version", "2026-07-28"),
                ("Mcp-Method", "tools/call"),
                ("Mcp-Name", "echo"),
            ],
            "no Mcp-Param-Session",
        ),
        (
            vec![
                ("MCP-Protocol-Version", "2026-07-28"),
                ("Mcp-Method", "tools/call"),
                ("Mcp-Name", "echo"),
                ("Mcp-Param-Session", "local.00"),
            ],
            "wrong Mcp-Param-Session",
        ),
    ] {
        let response = server.post(&headers, &call);
        assert_eq!(response.status, 400, "{why}: {}", response.text());
        assert_eq!(error_code(&response.json()), Some(-32020), "{why}");
    }
    let mismatched_version = server.post(
        &[
            ("MCP-Protocol-Version", "2025-11-25"),
            ("Mcp-Session-Id", "x"),
        ],
        &call,
    );
    assert_ne!(mismatched_version.status, 200);
    let unsupported = server.post(&[("MCP-Protocol-Version", "2030-01-01"), ("Mcp-Method", "tools/list")], &json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {"_meta": modern_meta()}}));
    assert_eq!(unsupported.status, 400);
    assert_eq!(error_code(&unsupported.json()), Some(-32022));
    assert!(
        unsupported.json()["error"]["data"]["supported"]
            .as_array()
            .unwrap()
            .contains(&json!("2026-07-28"))
    );
    let unknown = server.modern(None, 8, "nope/nothing", json!({}));
    assert_eq!(unknown.status, 404);
    assert_eq!(error_code(&unknown.json()), Some(-32601));
    let notification = server.post(&[("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "notifications/cancelled")], &json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}}));
    assert_eq!(notification.status, 202);
    let get = server.get("/mcp");
    assert_eq!(get.status, 405);
    let malformed = server.request(
        "POST",
        "/mcp",
        &[("Content-Type", "application/json")],
        b"{nope",
    );
    assert_eq!(malformed.status, 400);
    assert_eq!(error_code(&malformed.json()), Some(-32700));
}

#[test]
fn legacy_sessions_get_a_worker_at_initialize_and_delete_stops_it() {
    let server = TestServer::start(&["--no-auth"]);
    let session_id = legacy_initialize(&server, None);
    let (node, random) = session_id.split_once('.').unwrap();
    assert_eq!((node, random.len()), ("local", 32));
    let info = legacy_call(&server, None, &session_id, "session_info", json!({}));
    let pid = structured_of(&info)["pid"].as_u64().unwrap() as u32;
    assert_eq!(parent_of(pid), Some(server.pid()));
    let echo = legacy_call(
        &server,
        None,
        &session_id,
        "echo",
        json!({"text": "legacy"}),
    );
    assert_eq!(structured_of(&echo)["text"], "legacy");

    let without = server.post(
        &[("MCP-Protocol-Version", "2025-11-25")],
        &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
    );
    assert_eq!(without.status, 400);
    let unknown = legacy_call(
        &server,
        None,
        "local.0123456789abcdef0123456789abcdef",
        "echo",
        json!({"text": "x"}),
    );
    assert_eq!(unknown.status, 404);

    let deleted = server.request("DELETE", "/mcp", &[("Mcp-Session-Id", &session_id)], b"");
    assert_eq!(deleted.status, 200);
    assert!(
        eventually(Duration::from_secs(3), || process_state(pid).is_none()),
        "DELETE stopped and reaped the worker"
    );
    let after = legacy_call(&server, None, &session_id, "echo", json!({"text": "x"}));
    assert_eq!(after.status, 404);
    assert_eq!(
        after.body, unknown.body,
        "an ended id reads exactly like an unknown one"
    );
}

#[test]
fn principals_cannot_see_or_use_each_others_sessions() {
    let tokens = tokens_file();
    let server = TestServer::start(&["--tokens", tokens.to_str().unwrap()]);
    let anonymous = server.modern(None, 1, "tools/list", json!({}));
    assert_eq!(anonymous.status, 401);
    assert!(
        anonymous
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer"))
    );
    let wrong = server.modern(Some("not-a-real-token-at-all"), 1, "tools/list", json!({}));
    assert_eq!(wrong.status, 401);

    let handle = server.open_session(Some(ALICE));
    let mine = server.modern(
        Some(ALICE),
        3,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "a", "session": handle}}),
    );
    assert_eq!(structured_of(&mine)["text"], "a");

    let stolen = server.modern(
        Some(BOB),
        3,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "a", "session": handle}}),
    );
    let made_up = server.modern(Some(BOB), 3, "tools/call", json!({"name": "echo", "arguments": {"text": "a", "session": "local.00112233445566778899aabbccddeeff"}}));
    assert_eq!(stolen.status, made_up.status);
    assert_eq!(
        stolen.json(),
        made_up.json(),
        "another principal's handle reads exactly like an unknown one"
    );
    assert_eq!(error_code(&stolen.json()), Some(-32040));

    // Each principal's sessionless calls go to its own default session.
    let alice_default = structured_of(&server.modern(
        Some(ALICE),
        4,
        "tools/call",
        json!({"name": "session_info", "arguments": {}}),
    ));
    let bob_default = structured_of(&server.modern(
        Some(BOB),
        4,
        "tools/call",
        json!({"name": "session_info", "arguments": {}}),
    ));
    assert_ne!(alice_default["session"], bob_default["session"]);
    assert_ne!(alice_default["pid"], bob_default["pid"]);

    let alice_legacy = legacy_initialize(&server, Some(ALICE));
    let with_bob = legacy_call(
        &server,
        Some(BOB),
        &alice_legacy,
        "echo",
        json!({"text": "x"}),
    );
    let unknown = legacy_call(
        &server,
        Some(BOB),
        "local.ffeeddccbbaa99887766554433221100",
        "echo",
        json!({"text": "x"}),
    );
    assert_eq!(with_bob.status, 404);
    assert_eq!(with_bob.body, unknown.body);
    let with_alice = legacy_call(
        &server,
        Some(ALICE),
        &alice_legacy,
        "echo",
        json!({"text": "ok"}),
    );
    assert_eq!(structured_of(&with_alice)["text"], "ok");
    let _ = std::fs::remove_file(tokens);
}

#[test]
fn origin_host_body_size_and_slow_headers_are_enforced_while_others_are_served() {
    let server = TestServer::start(&["--no-auth", "--header-timeout", "1"]);
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": modern_meta()}});
    let modern = [
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/list"),
    ];
    let evil = server.post(
        &[modern[0], modern[1], ("Origin", "https://evil.example")],
        &list,
    );
    assert_eq!(evil.status, 403);
    let local_origin = server.post(
        &[modern[0], modern[1], ("Origin", "http://localhost:5173")],
        &list,
    );
    assert_eq!(local_origin.status, 200);
    let rebinding = server.raw(
        format!("POST /mcp HTTP/1.1\r\nHost: attacker.example:{}\r\nContent-Type: application/json\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/list\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{}", server.addr.port(), list.to_string().len(), list).as_bytes(),
    );
    assert_eq!(rebinding.status, 403);

    let mut huge =
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{\"pad\":\"".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 5 * 1024 * 1024));
    huge.extend_from_slice(b"\"}}");
    let too_big = server.request(
        "POST",
        "/mcp",
        &[("Content-Type", "application/json"), modern[0], modern[1]],
        &huge,
    );
    assert_eq!(too_big.status, 413);

    // A few hundred connections trickle headers; the timeout closes them while others are served.
    let mut slow: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(server.addr).ok())
        .collect();
    for stream in &mut slow {
        let _ = stream.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    }
    let served = server.post(&modern, &list);
    assert_eq!(
        served.status, 200,
        "a normal client is served during the slow-header flood"
    );
    std::thread::sleep(Duration::from_millis(1600));
    let closed = slow
        .iter_mut()
        .map(is_closed)
        .filter(|closed| *closed)
        .count();
    assert_eq!(
        closed,
        slow.len(),
        "every slow-header connection was closed"
    );
    assert!(closed_while_sending_headers_slowly(
        server.addr,
        Duration::from_secs(3)
    ));
    assert_eq!(server.post(&modern, &list).status, 200);
}

#[test]
fn per_principal_rate_limit_answers_429_with_retry_after() {
    let server = TestServer::start(&["--no-auth", "--rate-limit", "1", "--rate-burst", "5"]);
    let statuses: Vec<u16> = (0..8)
        .map(|id| server.modern(None, id, "tools/list", json!({})).status)
        .collect();
    assert_eq!(&statuses[..5], &[200; 5]);
    let limited = server.modern(None, 9, "tools/list", json!({}));
    assert_eq!(limited.status, 429);
    assert!(limited.header("retry-after").is_some());
}

#[test]
fn a_plain_no_auth_server_on_loopback_has_no_rate_limit() {
    // Everyone is one principal under --no-auth: a per-principal limit would only throttle the
    // local user's own client (the conformance suite's bursts tripped the old 50/s default).
    let server = TestServer::start(&["--no-auth"]);
    let limited = (0..300)
        .map(|id| server.modern(None, id, "tools/list", json!({})).status)
        .filter(|&status| status == 429)
        .count();
    assert_eq!(limited, 0, "requests were rate-limited");
}

#[test]
fn the_session_cap_is_503_with_retry_after() {
    let server = TestServer::start(&["--no-auth", "--max-sessions", "1"]);
    let first = legacy_initialize(&server, None);
    assert!(!first.is_empty());
    let refused = server.post(&[], &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}));
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(refused.header("retry-after").is_some());
    assert_eq!(error_code(&refused.json()), Some(-32044));
}

#[test]
fn closing_the_response_stream_cancels_the_call_in_the_worker() {
    let server = TestServer::start(&["--no-auth", "--sse-keepalive", "0.2"]);
    let handle = server.open_session(None);
    let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "slow", "delay_ms": 60000, "session": handle}, "_meta": modern_meta()}}).to_string();
    let mut stream = TcpStream::connect(server.addr).unwrap();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: echo\r\nMcp-Param-Session: {handle}\r\nContent-Length: {}\r\n\r\n{body}",
        server.addr,
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let in_flight = |server: &TestServer| {
        structured_of(&server.modern(
            None,
            3,
            "tools/call",
            json!({"name": "session_info", "arguments": {"session": handle}}),
        ))["in_flight"]
            .as_u64()
            .unwrap()
    };
    assert!(
        eventually(Duration::from_secs(3), || in_flight(&server) == 1),
        "the call is running"
    );
    drop(stream);
    assert!(
        eventually(Duration::from_secs(3), || in_flight(&server) == 0),
        "closing the stream cancelled the call"
    );
    let metrics = server.get("/metrics").text();
    assert!(metrics.contains("bulkhead_calls_in_flight 0"), "{metrics}");
}

#[test]
fn health_metrics_and_the_admin_api_show_safe_fields_only() {
    let admin_token_file = std::env::temp_dir().join(format!("bulkhead-admin-{}", rand_suffix()));
    std::fs::write(&admin_token_file, "admin-token-abcdefghijkl\n").unwrap();
    let server = TestServer::start(&[
        "--no-auth",
        "--admin-token-file",
        admin_token_file.to_str().unwrap(),
    ]);
    assert_eq!(server.get("/healthz").status, 200);
    assert_eq!(server.get("/readyz").status, 200);
    let session_id = legacy_initialize(&server, None);
    let login = legacy_call(
        &server,
        None,
        &session_id,
        "broker_login",
        json!({"broker": "paper", "api_key": "k", "api_secret": "SENTINEL-admin-secret"}),
    );
    assert_eq!(structured_of(&login)["authenticated"], true);
    legacy_call(
        &server,
        None,
        &session_id,
        "echo",
        json!({"text": "count me"}),
    );

    let metrics = server.get("/metrics").text();
    for name in [
        "bulkhead_sessions_open 1",
        "bulkhead_sessions_opened_total",
        "bulkhead_spawn_seconds_bucket",
        "bulkhead_call_seconds_count{outcome=\"ok\"}",
        "bulkhead_rejections_total{reason=\"unauthorized\"}",
    ] {
        assert!(
            metrics.contains(name),
            "{name} missing from metrics:\n{metrics}"
        );
    }
    assert_eq!(server.get("/admin/sessions").status, 401);
    let auth = [("Authorization", "Bearer admin-token-abcdefghijkl")];
    let listed = server.request("GET", "/admin/sessions", &auth, b"");
    assert_eq!(listed.status, 200);
    let listed_json = listed.json();
    let sessions = listed_json["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    let session = &sessions[0];
    for key in [
        "session",
        "principal",
        "created_at",
        "last_activity",
        "pid",
        "in_flight",
    ] {
        assert!(session.get(key).is_some(), "{key} missing: {session}");
    }
    assert!(
        !listed.text().contains("SENTINEL"),
        "the admin API showed a credential"
    );
    let handle = session["session"].as_str().unwrap();
    let pid = session["pid"].as_u64().unwrap() as u32;
    let one = server.request("GET", &format!("/admin/sessions/{handle}"), &auth, b"");
    assert_eq!(one.json()["pid"], pid);
    let ended = server.request("DELETE", &format!("/admin/sessions/{handle}"), &auth, b"");
    assert_eq!(ended.status, 200);
    assert!(eventually(Duration::from_secs(3), || process_state(pid).is_none()));
    assert!(!server.stderr().contains("SENTINEL"));
    // The harness reads the server's stderr on a thread of its own, and the supervisor writes
    // its log lines from a thread of its own: wait for the line to arrive.
    let echo_audited = |log: &str| {
        log.lines().any(|line| {
            line.contains("bulkhead::audit")
                && (line.contains("tool=\"echo\"") || line.contains("tool=echo"))
        })
    };
    assert!(
        eventually(Duration::from_secs(5), || echo_audited(&server.stderr())),
        "an audit line per tool call, the echo's among them"
    );
    assert!(!server.stderr().contains("SENTINEL"));
    let log = server.stderr();
    let audit: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("bulkhead::audit"))
        .collect();
    assert!(
        audit
            .iter()
            .any(|line| line.contains("tool=\"echo\"") || line.contains("tool=echo")),
        "{audit:?}"
    );
    assert!(
        audit.iter().all(|line| !line.contains("count me")),
        "audit lines never carry arguments"
    );
    let _ = std::fs::remove_file(admin_token_file);
}

/// Standard base64 with padding, for the `=?base64?…?=` header form.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, &b| (n << 8) | u32::from(b)) << (8 * (3 - chunk.len()));
        for index in 0..4 {
            if index <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * index)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn audit_lines_cannot_be_forged_through_the_tool_name_in_any_log_format() {
    let forged = "2026-07-28T00:00:00.000000Z  INFO bulkhead::audit: tool call principal=bob session=deadbeef tool=order_place outcome=ok duration_us=1";
    let names = [
        format!("echo\n{forged}"),
        format!("echo\r\n<6>{forged}"),
        format!("\u{1b}[1A\u{1b}[2K{forged}"),
        "echo outcome=ok principal=bob".to_string(),
        "echo".to_string(),
    ];
    for format in ["text", "json", "journald"] {
        let server = TestServer::start(&["--no-auth", "--log-format", format]);
        for (id, name) in names.iter().enumerate() {
            let header = format!("=?base64?{}?=", base64(name.as_bytes()));
            let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": {"text": "x"}, "_meta": modern_meta()}});
            let response = server.post(
                &[
                    ("MCP-Protocol-Version", "2026-07-28"),
                    ("Mcp-Method", "tools/call"),
                    ("Mcp-Name", &header),
                ],
                &call,
            );
            assert_eq!(
                response.status,
                200,
                "{format} {name:?}: {}",
                response.text()
            );
        }
        let audited = |log: &str| {
            log.lines()
                .filter(|line| line.contains("bulkhead::audit"))
                .count()
        };
        assert!(
            eventually(Duration::from_secs(5), || audited(&server.stderr())
                >= names.len()),
            "{format}: {}",
            server.stderr()
        );
        let log = server.stderr();
        let audit: Vec<&str> = log
            .lines()
            .filter(|line| line.contains("bulkhead::audit"))
            .collect();
        assert_eq!(
            audit.len(),
            names.len(),
            "{format}: one line per call:\n{log}"
        );
        assert!(
            !log.contains('\r') && !log.contains('\u{1b}'),
            "{format}: control characters reached the log:\n{log}"
        );
        for line in &audit {
            assert!(
                !line.starts_with("2026-07-28") && !line.starts_with("<6>2026"),
                "{format}: a forged line:\n{log}"
            );
        }
        if format == "json" {
            // Each JSON audit line still carries the exact name.
            let tools: Vec<String> = audit
                .iter()
                .map(|line| {
                    let event: Value =
                        serde_json::from_str(line).expect("one JSON object per line");
                    event["fields"]["tool"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect();
            assert_eq!(tools, names, "{log}");
        } else {
            // The field that holds spaces is quoted, so it cannot pose as more fields.
            assert!(
                audit
                    .iter()
                    .any(|line| line.contains(r#"tool="echo outcome=ok principal=bob""#)),
                "{format}:\n{log}"
            );
        }
    }
}

#[test]
fn operations_endpoints_apply_the_host_and_origin_rules_of_mcp() {
    let admin_token_file = std::env::temp_dir().join(format!("bulkhead-admin-{}", rand_suffix()));
    std::fs::write(&admin_token_file, "admin-token-abcdefghijkl\n").unwrap();
    let server = TestServer::start(&[
        "--no-auth",
        "--admin-token-file",
        admin_token_file.to_str().unwrap(),
    ]);
    let admin = ("Authorization", "Bearer admin-token-abcdefghijkl");
    for path in ["/healthz", "/readyz", "/metrics", "/admin/sessions"] {
        let fine = server.request("GET", path, &[admin], b"");
        assert_eq!(fine.status, 200, "{path}: {}", fine.text());
        let evil_origin = server.request(
            "GET",
            path,
            &[admin, ("Origin", "https://evil.example")],
            b"",
        );
        assert_eq!(evil_origin.status, 403, "{path} with a foreign Origin");
        let rebinding = server.raw(
            format!(
                "GET {path} HTTP/1.1\r\nHost: attacker.example:{}\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
                server.addr.port(),
                admin.1
            )
            .as_bytes(),
        );
        assert_eq!(rebinding.status, 403, "{path} with a foreign Host");
    }
    let metrics = server.get("/metrics").text();
    assert!(
        metrics.contains("bulkhead_rejections_total{reason=\"host\"} 4")
            && metrics.contains("bulkhead_rejections_total{reason=\"origin\"} 4"),
        "{metrics}"
    );
    let _ = std::fs::remove_file(admin_token_file);
}

#[test]
fn metrics_need_their_token_when_one_is_configured() {
    let token_file = std::env::temp_dir().join(format!("bulkhead-metrics-{}", rand_suffix()));
    std::fs::write(&token_file, "metrics-token-0123456789\n").unwrap();
    let server = TestServer::start(&[
        "--no-auth",
        "--metrics-token-file",
        token_file.to_str().unwrap(),
    ]);
    let anonymous = server.get("/metrics");
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    assert!(anonymous.header("www-authenticate").is_some());
    let wrong = server.request(
        "GET",
        "/metrics",
        &[("Authorization", "Bearer nope-nope-nope-nope")],
        b"",
    );
    assert_eq!(wrong.status, 401);
    let scraped = server.request(
        "GET",
        "/metrics",
        &[("Authorization", "Bearer metrics-token-0123456789")],
        b"",
    );
    assert_eq!(scraped.status, 200);
    assert!(scraped.text().contains("bulkhead_sessions_open"));
    assert_eq!(server.get("/healthz").status, 200, "probes need no token");
    let _ = std::fs::remove_file(token_file);
}

#[test]
fn metrics_are_not_served_on_a_public_listener_without_a_token() {
    let tokens = tokens_file();
    let server = TestServer::start_on(
        "0.0.0.0:0",
        &[
            "--tokens",
            tokens.to_str().unwrap(),
            "--allow-host",
            "0.0.0.0",
        ],
        &[],
    );
    let refused = server.get("/metrics");
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert!(
        refused.text().contains("--metrics-token-file"),
        "{}",
        refused.text()
    );
    assert_eq!(server.get("/healthz").status, 200);
    let _ = std::fs::remove_file(tokens);
}

/// A 2026-07-28 request's bytes: `method` with `token`, on a keep-alive connection.
fn modern_request(server: &TestServer, token: &str, method: &str) -> String {
    let body =
        json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"_meta": modern_meta()}})
            .to_string();
    format!(
        "POST /mcp HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: {method}\r\nContent-Length: {}\r\n\r\n{body}",
        server.addr,
        body.len()
    )
}

/// Send `request` on a new connection and return the status, or `None` when no answer came
/// within `within` (every slot held).
fn status_within(server: &TestServer, request: &str, within: Duration) -> Option<u16> {
    let mut stream = TcpStream::connect(server.addr).ok()?;
    stream.set_read_timeout(Some(within)).unwrap();
    stream.write_all(request.as_bytes()).ok()?;
    let mut status = [0u8; 12];
    stream.read_exact(&mut status).ok()?;
    std::str::from_utf8(&status[9..12]).ok()?.parse().ok()
}

fn rejections(server: &TestServer, reason: &str) -> u64 {
    let metrics = server.get("/metrics").text();
    let prefix = format!("bulkhead_rejections_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {reason} rejections in:\n{metrics}"))
        .parse()
        .unwrap()
}

#[test]
fn one_principal_with_unfinished_bodies_cannot_hold_every_connection() {
    let tokens = tokens_file();
    let server = TestServer::start(&[
        "--tokens",
        tokens.to_str().unwrap(),
        "--max-connections",
        "4",
        "--body-timeout",
        "2",
    ]);
    // Alice sends four requests with complete headers and bodies that never finish.
    let mut trickling: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut stream = TcpStream::connect(server.addr).unwrap();
            let head = format!(
                "POST /mcp HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {ALICE}\r\nContent-Type: application/json\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/list\r\nContent-Length: 1000\r\n\r\n{{\"jsonrpc\":",
                server.addr
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let bob = modern_request(&server, BOB, "tools/list");
    assert_eq!(
        status_within(&server, &bob, Duration::from_secs(3)),
        Some(200),
        "bob is answered while alice trickles four bodies"
    );
    // Alice's share was half the connections; the rest were refused at once, and the bodies
    // that trickle are cut off by the body timeout.
    assert!(
        eventually(Duration::from_secs(4), || trickling
            .iter_mut()
            .all(is_closed)),
        "every trickling connection was closed"
    );
    assert_eq!(rejections(&server, "principal_share"), 2);
    assert_eq!(rejections(&server, "body_timeout"), 2);
    let _ = std::fs::remove_file(tokens);
}

#[test]
fn one_principal_with_listen_streams_cannot_hold_every_connection() {
    let tokens = tokens_file();
    let server = TestServer::start(&[
        "--tokens",
        tokens.to_str().unwrap(),
        "--max-connections",
        "3",
        "--sse-keepalive",
        "0.2",
    ]);
    let listen = modern_request(&server, ALICE, "subscriptions/listen");
    let _streams: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut stream = TcpStream::connect(server.addr).unwrap();
            stream.write_all(listen.as_bytes()).unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let bob = modern_request(&server, BOB, "tools/list");
    assert_eq!(
        status_within(&server, &bob, Duration::from_secs(3)),
        Some(200),
        "bob is answered while alice holds listen streams"
    );
    assert!(rejections(&server, "principal_share") >= 1);
    drop(server);
    // Listen streams also have a share of their own, below the connection share.
    let server = TestServer::start(&[
        "--tokens",
        tokens.to_str().unwrap(),
        "--max-listen-per-principal",
        "1",
        "--sse-keepalive",
        "0.2",
    ]);
    let listen = modern_request(&server, ALICE, "subscriptions/listen");
    let mut first = TcpStream::connect(server.addr).unwrap();
    first.write_all(listen.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        status_within(&server, &listen, Duration::from_secs(3)),
        Some(503)
    );
    assert_eq!(rejections(&server, "listen_share"), 1);
    let bob_listens = modern_request(&server, BOB, "subscriptions/listen");
    assert_eq!(
        status_within(&server, &bob_listens, Duration::from_secs(3)),
        Some(200)
    );
    drop(first);
    let _ = std::fs::remove_file(tokens);
}

#[test]
fn idle_keep_alive_connections_are_reclaimed_for_another_principal() {
    let tokens = tokens_file();
    let server = TestServer::start(&[
        "--tokens",
        tokens.to_str().unwrap(),
        "--max-connections",
        "2",
        "--header-timeout",
        "30",
    ]);
    // Alice keeps two connections open after one request each.
    let alice = modern_request(&server, ALICE, "tools/list");
    let mut idle = Vec::new();
    for _ in 0..2 {
        let stream = TcpStream::connect(server.addr).unwrap();
        let mut reader = std::io::BufReader::new(stream);
        reader.get_mut().write_all(alice.as_bytes()).unwrap();
        assert_eq!(bulkhead_tests::http::read_response(&mut reader).status, 200);
        idle.push(reader);
    }
    let bob = modern_request(&server, BOB, "tools/list");
    assert_eq!(
        status_within(&server, &bob, Duration::from_secs(3)),
        Some(200),
        "an idle keep-alive connection made room for bob"
    );
    let _ = std::fs::remove_file(tokens);
}

#[test]
fn connections_that_never_finish_their_headers_cannot_keep_another_principal_out() {
    let tokens = tokens_file();
    let server = TestServer::start(&[
        "--tokens",
        tokens.to_str().unwrap(),
        "--max-connections",
        "4",
        "--header-timeout",
        "30",
    ]);
    // No principal yet: two connections send half their headers (the oldest among them), two
    // send nothing.
    let half = format!("POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Ty", server.addr);
    let mut held: Vec<TcpStream> = (0..4)
        .map(|index| {
            let mut stream = TcpStream::connect(server.addr).unwrap();
            if index % 2 == 0 {
                stream.write_all(half.as_bytes()).unwrap();
            }
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // Far below the 30 s header timeout that would otherwise be the only way to a slot.
    let bob = modern_request(&server, BOB, "tools/list");
    assert_eq!(
        status_within(&server, &bob, Duration::from_secs(10)),
        Some(200),
        "bob is answered while every slot is held by connections without headers"
    );
    assert!(
        is_closed(&mut held[0]),
        "the oldest connection without headers gave its slot up"
    );
    let _ = std::fs::remove_file(tokens);
}

#[test]
fn no_auth_is_refused_on_a_non_loopback_address() {
    #[allow(clippy::disallowed_methods, reason = "launching the binary under test")]
    let output = std::process::Command::new(binary("bulkhead"))
        .args(["serve", "--no-auth", "--http", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--no-auth is refused"));
}

#[test]
fn a_unix_socket_listener_can_name_callers_by_their_uid() {
    let dir = std::env::temp_dir().join(format!("bulkhead-unix-{}", rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mcp.sock");
    #[allow(clippy::disallowed_methods, reason = "launching the binary under test")]
    let mut child = std::process::Command::new(binary("bulkhead"))
        .args(["serve", "--unix", path.to_str().unwrap(), "--unix-peer-uid"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(eventually(Duration::from_secs(10), || path.exists()));
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "via unix"}, "_meta": modern_meta()}}).to_string();
    let response = eventually_response(&path, &body);
    assert!(response.contains("via unix"), "{response}");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
}

/// Whether the server closed this connection (EOF or reset), reading whatever it sent first.
fn is_closed(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buffer = [0u8; 512];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

fn eventually_response(path: &std::path::Path, body: &str) -> String {
    for _ in 0..100 {
        if let Ok(mut stream) = std::os::unix::net::UnixStream::connect(path) {
            let request = format!(
                "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nAccept: application/json\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: echo\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(request.as_bytes()).unwrap();
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response);
            if response.starts_with("HTTP/1.1 200") {
                return response;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the unix listener never answered")
}

/// A response sent before the request's body was read (401, 403, 429, a draining node, …)
/// leaves the body's bytes in the connection, so the server closes it. It must say so with
/// `Connection: close`, or a keep-alive client (the official SDK's httpx among them) reuses the
/// dead connection for its retry and fails with "server disconnected" — which is how an OAuth
/// client's POST → 401 → token → POST went wrong when the body arrived a moment after the
/// headers.
#[test]
fn a_response_sent_before_the_body_was_read_says_the_connection_closes() {
    let tokens = tokens_file();
    let server = TestServer::start(&["--tokens", tokens.to_str().unwrap()]);
    let body = serde_json::to_vec(&json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/list",
        "params": {"_meta": modern_meta()},
    }))
    .unwrap();
    let headers = |origin: &str| {
        format!(
            "POST /mcp HTTP/1.1\r\nHost: {}\r\n{origin}Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/list\r\nContent-Length: {}\r\n\r\n",
            server.addr,
            body.len()
        )
    };
    for (refusal, origin) in [
        (401, String::new()),
        (403, "Origin: https://evil.example\r\n".to_string()),
    ] {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // The headers first and the body a moment later, as a client on a real network sends
        // them: the answer is ready before the body is there.
        stream.write_all(headers(&origin).as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        stream.write_all(&body).unwrap();
        let response = bulkhead_tests::http::read_response(&mut std::io::BufReader::new(&stream));
        assert_eq!(response.status, refusal, "{}", response.text());
        assert_eq!(
            response.header("connection").map(str::to_ascii_lowercase),
            Some("close".to_string()),
            "a {refusal} sent before the body was read must close the connection, and say so"
        );
    }
    let _ = std::fs::remove_file(tokens);
}

/// A client that sends a body over the limit must read the `413`, not a connection reset: the
/// server reads (and discards) the rest of a moderately oversized body before it answers and
/// closes, as a client that writes its whole request before reading (most do) needs.
#[test]
fn an_oversized_body_is_answered_413_even_while_the_client_is_still_sending_it() {
    let server = TestServer::start(&["--no-auth", "--max-body-bytes", "1048576"]);
    let size = 3 * 1024 * 1024;
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let headers = format!(
        "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/list\r\nContent-Length: {size}\r\n\r\n",
        server.addr
    );
    stream.write_all(headers.as_bytes()).unwrap();
    // In slices with pauses, so the server sees the limit pass long before the body ends.
    let slice = vec![b' '; 256 * 1024];
    for _ in 0..size / slice.len() {
        if stream.write_all(&slice).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let response = bulkhead_tests::http::read_response(&mut std::io::BufReader::new(&stream));
    assert_eq!(response.status, 413, "{}", response.text());
    assert_eq!(
        response.header("connection").map(str::to_ascii_lowercase),
        Some("close".to_string())
    );
}
