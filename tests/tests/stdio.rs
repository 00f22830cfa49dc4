//! End-to-end tests of `bulkhead stdio` with real processes: sessions, crash containment,
//! lifecycle hygiene, bad input, limits and deadlines.

use std::time::Duration;

use bulkhead_tests::*;
use serde_json::{Value, json};

const SUPERVISOR_CODES_SESSION_NOT_FOUND: i64 = -32040;
const SESSION_LOST: i64 = -32041;
const WORKER_DIED: i64 = -32042;
const DEADLINE_EXCEEDED: i64 = -32043;
const SESSION_LIMIT: i64 = -32044;
const TOO_MANY_IN_FLIGHT: i64 = -32045;

fn info(running: &mut Running, session: Option<&str>) -> Value {
    let arguments = match session {
        Some(handle) => json!({"session": handle}),
        None => json!({}),
    };
    structured(&running.call_ok("session_info", arguments)).clone()
}

#[test]
fn two_sessions_are_two_live_child_processes_and_closing_one_leaves_the_other() {
    let mut bulkhead = TestSupervisor::new().start_legacy();
    let (a, pid_a) = bulkhead.open_session();
    let (b, pid_b) = bulkhead.open_session();
    assert_ne!(a, b);
    assert_ne!(pid_a, pid_b);
    for pid in [pid_a, pid_b] {
        assert!(is_running(pid), "worker {pid} should be alive");
        assert_eq!(
            parent_of(pid),
            Some(bulkhead.pid()),
            "worker {pid} is a child of the supervisor"
        );
    }
    let info_a = info(&mut bulkhead, Some(&a));
    let info_b = info(&mut bulkhead, Some(&b));
    assert_eq!(info_a["pid"], pid_a);
    assert_eq!(info_b["pid"], pid_b);
    assert_eq!(info_a["session"], a.as_str());
    assert!(
        !info_a.to_string().contains(&b),
        "A's info mentions B: {info_a}"
    );
    assert!(
        !info_b.to_string().contains(&a),
        "B's info mentions A: {info_b}"
    );
    for key in ["created_at", "last_activity", "expires_at"] {
        assert!(
            info_a[key].as_str().is_some_and(|t| t.ends_with('Z')),
            "{key}: {info_a}"
        );
    }

    let closed = bulkhead.call_ok("session_close", json!({"session": a}));
    assert_eq!(structured(&closed)["closed"], true);
    assert!(
        eventually(Duration::from_secs(2), || process_state(pid_a).is_none()),
        "closed worker is gone and reaped"
    );
    let echo = bulkhead.call_ok("echo", json!({"text": "still here", "session": b}));
    assert_eq!(structured(&echo)["text"], "still here");
    let after_close = bulkhead.call("echo", json!({"text": "x", "session": a}));
    assert_eq!(
        error_code(&after_close),
        Some(SUPERVISOR_CODES_SESSION_NOT_FOUND),
        "{after_close}"
    );
    assert!(
        after_close["error"]["message"]
            .as_str()
            .unwrap()
            .contains("closed")
    );
}

#[test]
fn handles_are_random_node_prefixed_and_calls_without_session_use_the_default() {
    let mut bulkhead = TestSupervisor::new()
        .args(["--node", "edge-7"])
        .start_legacy();
    let (handle, _) = bulkhead.open_session();
    let (node, random) = handle.split_once('.').expect("node.random");
    assert_eq!(node, "edge-7");
    assert_eq!(random.len(), 32, "128 bits in hex");
    assert!(random.chars().all(|c| c.is_ascii_hexdigit()));

    let default_one = info(&mut bulkhead, None);
    let default_two = info(&mut bulkhead, None);
    assert_eq!(
        default_one["session"], default_two["session"],
        "the default session is stable"
    );
    assert_eq!(default_one["default"], true);
    assert_ne!(default_one["session"], handle.as_str());
    let echo = bulkhead.call_ok("echo", json!({"text": "via default"}));
    assert_eq!(structured(&echo)["text"], "via default");
}

#[test]
fn tools_list_is_deterministic_and_every_tool_takes_a_session_header_argument() {
    let mut first = TestSupervisor::new().start_legacy();
    let mut second = TestSupervisor::new().start_legacy();
    let list_one = first.request("tools/list", json!({}));
    let list_two = second.request("tools/list", json!({}));
    let again = first.request("tools/list", json!({}));
    assert_eq!(list_one["result"], list_two["result"]);
    assert_eq!(list_one["result"], again["result"]);
    let tools = list_one["result"]["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    for name in ["echo", "session_open", "session_close", "session_info"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert!(
        !names.contains(&"hang_uncancellable"),
        "test-only tools are hidden by default"
    );
    for tool in tools {
        let session = &tool["inputSchema"]["properties"]["session"];
        assert_eq!(session["type"], "string", "{}", tool["name"]);
        assert_eq!(session["x-mcp-header"], "Session", "{}", tool["name"]);
    }
    // Listing opened no session: the worker that supplied the catalog is gone again.
    assert_eq!(
        children_of(first.pid()),
        vec![],
        "tools/list left a worker running"
    );
}

#[test]
fn protocol_2026_07_28_works_without_initialize_and_unknown_methods_get_errors_first() {
    let mut bulkhead = TestSupervisor::new().spawn();
    // An unknown method before anything else gets an error, never silence.
    let unknown = bulkhead.request("bogus/method", json!({}));
    assert_eq!(error_code(&unknown), Some(-32601), "{unknown}");
    let discover = bulkhead.request("server/discover", json!({"_meta": modern_meta()}));
    let result = &discover["result"];
    assert!(
        result["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!("2026-07-28"))
    );
    assert!(
        result["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!("2025-03-26"))
    );
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "bulkhead"
    );
    let list = bulkhead.request("tools/list", json!({"_meta": modern_meta()}));
    assert_eq!(list["result"]["resultType"], "complete");
    assert!(list["result"]["ttlMs"].is_u64());
    assert!(list["result"]["cacheScope"].is_string());
    let call = bulkhead.request(
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "modern"}, "_meta": modern_meta()}),
    );
    assert_eq!(call["result"]["resultType"], "complete", "{call}");
    assert_eq!(call["result"]["structuredContent"]["text"], "modern");
    // Without _meta and without initialize, the error says what to send.
    let bare = bulkhead.request("tools/list", json!({}));
    assert_eq!(error_code(&bare), Some(-32602));
    assert!(
        bare["error"]["message"]
            .as_str()
            .unwrap()
            .contains("initialize")
    );
    let future = bulkhead.request(
        "tools/list",
        json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2099-01-01", "io.modelcontextprotocol/clientCapabilities": {}}}),
    );
    assert_eq!(error_code(&future), Some(-32022));
    assert!(
        future["error"]["data"]["supported"]
            .as_array()
            .unwrap()
            .contains(&json!("2026-07-28"))
    );
}

#[test]
fn legacy_versions_negotiate_and_unknown_versions_get_the_newest_handshake_version() {
    for (asked, answered) in [
        ("2025-03-26", "2025-03-26"),
        ("2025-06-18", "2025-06-18"),
        ("2025-11-25", "2025-11-25"),
        ("2026-07-28", "2025-11-25"),
        ("1999-01-01", "2025-11-25"),
    ] {
        let mut bulkhead = TestSupervisor::new().spawn();
        let init = bulkhead.request(
            "initialize",
            json!({"protocolVersion": asked, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}),
        );
        assert_eq!(
            init["result"]["protocolVersion"], answered,
            "asked {asked}: {init}"
        );
        bulkhead.notify("notifications/initialized", None);
        let echo = bulkhead.call_ok("echo", json!({"text": asked}));
        assert_eq!(structured(&echo)["text"], asked);
        assert!(
            echo.get("resultType").is_none(),
            "legacy results carry no resultType: {echo}"
        );
    }
}

#[test]
fn sigkill_of_a_worker_mid_call_fails_only_that_call_and_the_handle_is_lost_not_replaced() {
    let mut bulkhead = TestSupervisor::new().start_legacy();
    let (a, pid_a) = bulkhead.open_session();
    let (b, _pid_b) = bulkhead.open_session();
    let slow = bulkhead.send_request(
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "slow", "delay_ms": 30000, "session": a}}),
    );
    std::thread::sleep(Duration::from_millis(200));
    kill9(pid_a);
    let failed = bulkhead.response(&json!(slow));
    assert_eq!(error_code(&failed), Some(WORKER_DIED), "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("died"),
        "{failed}"
    );
    let other = bulkhead.call_ok("echo", json!({"text": "B is fine", "session": b}));
    assert_eq!(structured(&other)["text"], "B is fine");
    for _ in 0..2 {
        let later = bulkhead.call("echo", json!({"text": "x", "session": a}));
        assert_eq!(error_code(&later), Some(SESSION_LOST), "{later}");
        assert!(later["error"]["message"].as_str().unwrap().contains("lost"));
    }
    assert!(
        eventually(Duration::from_secs(2), || process_state(pid_a).is_none()),
        "no zombie remains"
    );
    assert!(
        children_of(bulkhead.pid())
            .iter()
            .all(|(_, state)| *state != 'Z')
    );
}

#[test]
fn a_crashed_default_session_is_replaced_and_the_reply_says_state_was_lost() {
    let mut bulkhead = TestSupervisor::new().start_legacy();
    let before = info(&mut bulkhead, None);
    let pid = before["pid"].as_u64().unwrap() as u32;
    kill9(pid);
    assert!(eventually(Duration::from_secs(2), || process_state(pid).is_none()));
    let result = bulkhead.call_ok("echo", json!({"text": "again"}));
    let notice = result["_meta"]["io.bulkhead/notice"]
        .as_str()
        .expect("notice in _meta");
    assert!(notice.contains("lost"), "{notice}");
    let texts: Vec<&str> = result["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["text"].as_str())
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("state was lost")),
        "{texts:?}"
    );
    let after = info(&mut bulkhead, None);
    assert_ne!(after["session"], before["session"]);
    assert_ne!(after["pid"], before["pid"]);
    let quiet = bulkhead.call_ok("echo", json!({"text": "no more notices"}));
    assert!(quiet.get("_meta").is_none(), "{quiet}");
}

#[test]
fn closing_stdin_ends_every_process_within_two_seconds() {
    let mut bulkhead = TestSupervisor::new().start_legacy();
    let (_, pid_a) = bulkhead.open_session();
    let (_, pid_b) = bulkhead.open_session();
    let default_pid = info(&mut bulkhead, None)["pid"].as_u64().unwrap() as u32;
    bulkhead.close_stdin();
    let status = bulkhead
        .wait_exit(Duration::from_secs(2))
        .expect("supervisor exits within 2 s");
    assert!(status.success(), "{status:?}");
    for pid in [pid_a, pid_b, default_pid] {
        assert!(!is_running(pid), "worker {pid} outlived the supervisor");
    }
}

#[test]
fn sigkill_of_the_supervisor_takes_every_worker_within_a_second() {
    let mut bulkhead = TestSupervisor::new().start_legacy();
    let (_, pid_a) = bulkhead.open_session();
    let (_, pid_b) = bulkhead.open_session();
    kill9(bulkhead.pid());
    assert!(
        eventually(Duration::from_secs(1), || !is_running(pid_a)
            && !is_running(pid_b)),
        "workers survived the supervisor"
    );
}

#[test]
fn a_worker_started_by_hand_refuses_to_run() {
    #[allow(
        clippy::disallowed_methods,
        reason = "launching the worker by hand is the point"
    )]
    let output = std::process::Command::new(binary("bulkhead-worker"))
        .env_remove("BULKHEAD_WORKER_PROTOCOL")
        .output()
        .expect("run worker");
    assert_eq!(output.status.code(), Some(78));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("not meant to be started by hand"),
        "{stderr}"
    );
    #[allow(
        clippy::disallowed_methods,
        reason = "launching the worker by hand is the point"
    )]
    let output = std::process::Command::new(binary("bulkhead-worker"))
        .env("BULKHEAD_WORKER_PROTOCOL", "1")
        .output()
        .expect("run worker");
    assert_eq!(
        output.status.code(),
        Some(78),
        "a protocol variable without the socket is not enough"
    );
}

/// Property (proptest, one supervisor for every case): whatever bytes a client writes, a
/// well-formed request after them and a newline is answered — by the supervisor (`ping`) and
/// through the worker (`echo`). The protocol crate's property tests check the same of the
/// reader and the classifier alone; this checks the real stdio path.
#[test]
fn any_bytes_then_a_request_is_answered() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let bulkhead = std::cell::RefCell::new(
        TestSupervisor::new()
            .args(["--max-frame-bytes", "65536"])
            .start_legacy(),
    );
    let garbage = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..3000),
        "[ -~]{0,200}".prop_map(String::into_bytes),
        Just(b"{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":".to_vec()),
        Just(b"\xff\xfe\r\r{\"jsonrpc\":\"2.0\",\"id\":[],\"method\":7}".to_vec()),
        (65_000..70_000usize).prop_map(|length| vec![b'{'; length]),
    ];
    let config = Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new(config)
        .run(&(garbage, any::<bool>()), |(garbage, through_worker)| {
            let mut bulkhead = bulkhead.borrow_mut();
            bulkhead.send_raw(&garbage);
            bulkhead.send_raw(b"\n");
            if through_worker {
                let echo = bulkhead.call("echo", json!({"text": "after garbage"}));
                prop_assert_eq!(&structured(&echo["result"])["text"], "after garbage");
            } else {
                let pong = bulkhead.request("ping", json!({}));
                prop_assert!(pong["result"].is_object(), "{}", pong);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn bad_input_gets_clear_errors_and_the_stream_keeps_working() {
    let mut bulkhead = TestSupervisor::new().start_legacy();
    let good = |bulkhead: &mut Running, text: &str| {
        let echo = bulkhead.call_ok("echo", json!({"text": text}));
        assert_eq!(structured(&echo)["text"], text);
    };
    bulkhead.send_raw(b"{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \n");
    let parse = bulkhead
        .wait_for(RESPONSE_TIMEOUT, |m| error_code(m) == Some(-32700))
        .expect("parse error");
    assert_eq!(parse["id"], Value::Null);
    good(&mut bulkhead, "after malformed");

    let mut huge = b"{\"jsonrpc\":\"2.0\",\"id\":\"huge\",\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"text\":\"".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 20 * 1024 * 1024));
    huge.extend_from_slice(b"\"}}}\n");
    bulkhead.send_raw(&huge);
    let oversized = bulkhead
        .wait_for(RESPONSE_TIMEOUT, |m| error_code(m) == Some(-32600))
        .expect("oversized error");
    let message = oversized["error"]["message"].as_str().unwrap();
    assert!(message.contains("4194304"), "names the limit: {message}");
    good(&mut bulkhead, "after 20 MiB");

    let depth = 100_000;
    let mut deep = "{\"jsonrpc\":\"2.0\",\"id\":\"deep\",\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"text\":".to_string();
    deep.push_str(&"[".repeat(depth));
    deep.push_str(&"]".repeat(depth));
    deep.push_str("}}}\n");
    bulkhead.send_raw(deep.as_bytes());
    let nested = bulkhead
        .wait_for(RESPONSE_TIMEOUT, |m| error_code(m) == Some(-32700))
        .expect("nesting error");
    assert!(
        nested["error"]["message"]
            .as_str()
            .unwrap()
            .contains("recursion limit"),
        "{nested}"
    );
    good(&mut bulkhead, "after deep nesting");

    let unknown = bulkhead.request("no/such/method", json!({}));
    assert_eq!(error_code(&unknown), Some(-32601));
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no/such/method")
    );
    good(&mut bulkhead, "after unknown method");

    let wrong_session = bulkhead.call("echo", json!({"text": "x", "session": 42}));
    assert_eq!(error_code(&wrong_session), Some(-32602), "{wrong_session}");
    assert!(
        wrong_session["error"]["message"]
            .as_str()
            .unwrap()
            .contains("session")
    );
    let wrong_arguments =
        bulkhead.request("tools/call", json!({"name": "echo", "arguments": "text"}));
    assert_eq!(
        error_code(&wrong_arguments),
        Some(-32602),
        "{wrong_arguments}"
    );
    // A tool argument of the wrong type is a tool execution error, so the model can correct
    // itself (MCP 2025-11-25, "Error Handling"); it names the problem.
    let wrong_type = bulkhead.call_ok("echo", json!({"text": 5}));
    assert_eq!(wrong_type["isError"], true);
    assert!(
        wrong_type["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("invalid type")
    );
    good(&mut bulkhead, "after wrong types");

    let unknown_handle = bulkhead.call(
        "echo",
        json!({"text": "x", "session": "local.0123456789abcdef0123456789abcdef"}),
    );
    assert_eq!(
        error_code(&unknown_handle),
        Some(SUPERVISOR_CODES_SESSION_NOT_FOUND)
    );
    let garbage_handle = bulkhead.call("echo", json!({"text": "x", "session": "not a handle"}));
    assert_eq!(
        error_code(&garbage_handle),
        Some(SUPERVISOR_CODES_SESSION_NOT_FOUND)
    );
    assert_eq!(
        unknown_handle["error"]["message"],
        garbage_handle["error"]["message"]
    );
    good(&mut bulkhead, "after unknown handles");
    assert!(
        bulkhead
            .raw_stdout
            .iter()
            .all(|line| serde_json::from_str::<Value>(line).is_ok())
    );
}

#[test]
fn a_handle_from_one_supervisor_is_unknown_to_another() {
    let mut first = TestSupervisor::new().start_legacy();
    let mut second = TestSupervisor::new().start_legacy();
    let (handle, _) = first.open_session();
    let elsewhere = second.call("echo", json!({"text": "x", "session": handle}));
    assert_eq!(
        error_code(&elsewhere),
        Some(SUPERVISOR_CODES_SESSION_NOT_FOUND),
        "{elsewhere}"
    );
    let closing = second.call("session_close", json!({"session": handle}));
    assert_eq!(
        error_code(&closing),
        Some(SUPERVISOR_CODES_SESSION_NOT_FOUND)
    );
    let home = first.call_ok("echo", json!({"text": "home", "session": handle}));
    assert_eq!(structured(&home)["text"], "home");
}

#[test]
fn the_deadline_answers_the_caller_cancels_the_work_and_the_session_stays_usable() {
    let mut bulkhead = TestSupervisor::new()
        .args(["--call-timeout", "0.5"])
        .start_legacy();
    let (handle, pid) = bulkhead.open_session();
    let late = bulkhead.call(
        "echo",
        json!({"text": "late", "delay_ms": 5000, "session": handle}),
    );
    assert_eq!(error_code(&late), Some(DEADLINE_EXCEEDED), "{late}");
    assert!(
        late["error"]["message"]
            .as_str()
            .unwrap()
            .contains("500 ms")
    );
    let prompt = bulkhead.call_ok("echo", json!({"text": "prompt", "session": handle}));
    assert_eq!(structured(&prompt)["text"], "prompt");
    assert!(
        is_running(pid),
        "a worker that honours cancellation is not killed"
    );
    // The late reply never shows up on stdout.
    assert!(
        bulkhead
            .wait_for(
                Duration::from_millis(300),
                |m| m["result"]["structuredContent"]["text"] == "late"
            )
            .is_none()
    );
}

#[test]
fn a_worker_that_ignores_cancellation_is_killed_and_only_its_session_is_lost() {
    let mut bulkhead = TestSupervisor::new()
        .args([
            "--test-tools",
            "--call-timeout",
            "0.3",
            "--hard-cancel",
            "0.5",
        ])
        .start_legacy();
    let (stuck, stuck_pid) = bulkhead.open_session();
    let (other, _) = bulkhead.open_session();
    let hung = bulkhead.call("hang_uncancellable", json!({"ms": 30000, "session": stuck}));
    assert_eq!(error_code(&hung), Some(DEADLINE_EXCEEDED), "{hung}");
    assert!(
        eventually(Duration::from_secs(3), || process_state(stuck_pid)
            .is_none()),
        "hung worker killed and reaped"
    );
    let later = bulkhead.call("echo", json!({"text": "x", "session": stuck}));
    assert_eq!(error_code(&later), Some(SESSION_LOST), "{later}");
    assert!(
        later["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cancellation"),
        "{later}"
    );
    let fine = bulkhead.call_ok("echo", json!({"text": "fine", "session": other}));
    assert_eq!(structured(&fine)["text"], "fine");
}

#[test]
fn requests_in_flight_per_session_are_bounded() {
    let mut bulkhead = TestSupervisor::new()
        .args(["--max-in-flight", "2"])
        .start_legacy();
    let (handle, _) = bulkhead.open_session();
    let slow: Vec<u64> = (0..2)
        .map(|_| bulkhead.send_request("tools/call", json!({"name": "echo", "arguments": {"text": "slow", "delay_ms": 1500, "session": handle}})))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let third = bulkhead.call("echo", json!({"text": "third", "session": handle}));
    assert_eq!(error_code(&third), Some(TOO_MANY_IN_FLIGHT), "{third}");
    for id in slow {
        let done = bulkhead.response(&json!(id));
        assert_eq!(done["result"]["structuredContent"]["text"], "slow");
    }
    let again = bulkhead.call_ok("echo", json!({"text": "room again", "session": handle}));
    assert_eq!(structured(&again)["text"], "room again");
}

#[test]
fn the_session_limit_gives_a_clear_error_and_idle_sessions_expire() {
    let mut bulkhead = TestSupervisor::new()
        .args(["--max-sessions", "2", "--idle-ttl", "1"])
        .start_legacy();
    let (first, first_pid) = bulkhead.open_session();
    let (_second, _) = bulkhead.open_session();
    let refused = bulkhead.call("session_open", json!({}));
    assert_eq!(error_code(&refused), Some(SESSION_LIMIT), "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limit 2")
    );
    assert!(
        eventually(Duration::from_secs(4), || process_state(first_pid)
            .is_none()),
        "idle session expired"
    );
    let expired = bulkhead.call("echo", json!({"text": "x", "session": first}));
    assert_eq!(
        error_code(&expired),
        Some(SUPERVISOR_CODES_SESSION_NOT_FOUND)
    );
    assert!(
        expired["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{expired}"
    );
    let (_, _) = bulkhead.open_session();
}

#[test]
fn over_stdio_the_one_principal_may_open_up_to_max_sessions() {
    // Every caller of a stdio connection is its one local user: serve's per-principal cap (100
    // by default, there to keep many principals apart) must not cap it below --max-sessions.
    let mut bulkhead = TestSupervisor::new()
        .args(["--max-sessions", "102"])
        .start_legacy();
    for _ in 0..102 {
        bulkhead.open_session();
    }
    let refused = bulkhead.call("session_open", json!({}));
    assert_eq!(error_code(&refused), Some(SESSION_LIMIT), "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limit 102"),
        "{refused}"
    );
}

#[test]
fn at_the_limit_the_least_recently_used_idle_session_can_be_evicted() {
    let mut bulkhead = TestSupervisor::new()
        .args(["--max-sessions", "2", "--evict-idle"])
        .start_legacy();
    let (oldest, oldest_pid) = bulkhead.open_session();
    let (newer, _) = bulkhead.open_session();
    bulkhead.call_ok("echo", json!({"text": "keep me", "session": newer}));
    let (third, _) = bulkhead.open_session();
    assert!(eventually(Duration::from_secs(2), || process_state(
        oldest_pid
    )
    .is_none()));
    let evicted = bulkhead.call("echo", json!({"text": "x", "session": oldest}));
    assert!(
        evicted["error"]["message"]
            .as_str()
            .unwrap()
            .contains("evicted"),
        "{evicted}"
    );
    for handle in [newer, third] {
        bulkhead.call_ok("echo", json!({"text": "ok", "session": handle}));
    }
}

#[test]
fn stdout_carries_only_protocol_and_logs_carry_short_tags_not_handles() {
    let mut bulkhead = TestSupervisor::new()
        .env("RUST_LOG", "debug")
        .start_legacy();
    let (handle, _) = bulkhead.open_session();
    bulkhead.call_ok("echo", json!({"text": "hello", "session": handle}));
    bulkhead.call_ok("session_close", json!({"session": handle}));
    bulkhead.close_stdin();
    bulkhead.wait_exit(Duration::from_secs(3)).expect("exit");
    let log = bulkhead.stderr();
    let tag = &handle.split_once('.').unwrap().1[..8];
    assert!(log.contains(tag), "logs name the session by its tag");
    assert!(!log.contains(&handle), "logs never carry a full handle");
    for line in &bulkhead.raw_stdout {
        let message: Value = serde_json::from_str(line).unwrap();
        assert_eq!(message["jsonrpc"], "2.0");
    }
}

#[test]
fn a_request_sent_just_before_stdin_closes_is_still_answered() {
    let mut bulkhead = TestSupervisor::new().start_legacy();
    let id = bulkhead.send_request(
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "last words"}}),
    );
    bulkhead.close_stdin();
    let reply = bulkhead.response(&json!(id));
    assert_eq!(
        reply["result"]["structuredContent"]["text"], "last words",
        "{reply}"
    );
    let status = bulkhead
        .wait_exit(Duration::from_secs(2))
        .expect("still exits within 2 s");
    assert!(status.success());
}
