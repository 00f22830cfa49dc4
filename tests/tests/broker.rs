//! The broker worker end to end: per-session credentials and trading state, idempotent
//! orders, crash containment of trading state, and operator-provisioned credential references.

use std::time::Duration;

use bulkhead_tests::*;
use serde_json::{Value, json};

const SENTINEL: &str = "SENTINEL-7f3c9a1e-do-not-leak";

fn login(bulkhead: &mut Running, session: &str, secret: &str) -> Value {
    bulkhead.call_ok(
        "broker_login",
        json!({"broker": "paper", "api_key": "key-id", "api_secret": secret, "session": session}),
    )
}

/// The `paper` entry of a `brokers` list (network brokers are listed beside it).
fn paper(result: &Value) -> &Value {
    structured(result)["brokers"]
        .as_array()
        .and_then(|brokers| brokers.iter().find(|broker| broker["name"] == "paper"))
        .unwrap_or_else(|| panic!("no paper broker in {result}"))
}

fn error_text(result: &Value) -> String {
    assert_eq!(result["isError"], true, "expected a tool error: {result}");
    result["content"][0]["text"].as_str().unwrap().to_string()
}

fn buy(
    bulkhead: &mut Running,
    session: &str,
    symbol: &str,
    qty: &str,
    client_order_id: Option<&str>,
) -> Value {
    let mut arguments =
        json!({"symbol": symbol, "side": "buy", "qty": qty, "type": "market", "session": session});
    if let Some(id) = client_order_id {
        arguments["client_order_id"] = json!(id);
    }
    bulkhead.call_ok("order_place", arguments)
}

#[test]
fn one_sessions_login_orders_and_positions_are_invisible_to_another_and_the_secret_leaks_nowhere() {
    let mut bulkhead = TestSupervisor::new()
        .env("RUST_LOG", "debug")
        .start_legacy();
    let (a, _) = bulkhead.open_session();
    let (b, _) = bulkhead.open_session();
    login(&mut bulkhead, &a, SENTINEL);
    let bought = buy(&mut bulkhead, &a, "ETH-USD", "0.5", None);
    assert_eq!(structured(&bought)["order"]["status"], "filled");

    let brokers = bulkhead.call_ok("broker_list", json!({"session": b}));
    assert_eq!(paper(&brokers)["authenticated"], false, "{brokers}");
    for tool in ["account", "positions", "orders"] {
        let refused = bulkhead.call_ok(tool, json!({"session": b}));
        let text = error_text(&refused);
        assert!(text.contains("broker_login"), "{tool}: {text}");
    }
    let refused = bulkhead.call_ok(
        "order_place",
        json!({"symbol": "ETH-USD", "side": "buy", "qty": "1", "type": "market", "session": b}),
    );
    assert!(error_text(&refused).contains("not logged in"));
    let info_b = bulkhead.call_ok("session_info", json!({"session": b}));
    assert_eq!(paper(&info_b)["authenticated"], false);
    let info_a = bulkhead.call_ok("session_info", json!({"session": a}));
    assert_eq!(structured(&info_a)["active_broker"], "paper");
    assert_eq!(paper(&info_a)["authenticated"], true);

    login(&mut bulkhead, &b, "b-secret");
    let positions_b = bulkhead.call_ok("positions", json!({"session": b}));
    assert_eq!(structured(&positions_b)["positions"], json!([]));
    let orders_b = bulkhead.call_ok("orders", json!({"session": b, "status": "all"}));
    assert_eq!(structured(&orders_b)["orders"], json!([]));
    let positions_a = bulkhead.call_ok("positions", json!({"session": a}));
    assert_eq!(
        structured(&positions_a)["positions"][0]["symbol"],
        "ETH-USD"
    );

    bulkhead.call_ok("session_close", json!({"session": a}));
    bulkhead.close_stdin();
    bulkhead.wait_exit(Duration::from_secs(3)).expect("exit");
    assert!(
        !bulkhead.stderr().contains(SENTINEL),
        "the secret reached a log line"
    );
    assert!(bulkhead.stderr().contains("DEBUG"), "debug logging was on");
    for line in &bulkhead.raw_stdout {
        assert!(
            !line.contains(SENTINEL),
            "the secret reached stdout: {line}"
        );
    }
}

#[test]
fn a_retried_order_with_the_same_client_order_id_places_one_order() {
    let mut bulkhead = TestSupervisor::new().start_legacy();
    let (session, _) = bulkhead.open_session();
    login(&mut bulkhead, &session, "s");
    let first = buy(&mut bulkhead, &session, "SOL-USD", "2", Some("retry-1"));
    let again = buy(&mut bulkhead, &session, "SOL-USD", "2", Some("retry-1"));
    assert_eq!(
        structured(&first)["order"]["order_id"],
        structured(&again)["order"]["order_id"]
    );
    assert_eq!(structured(&again)["replayed"], true);
    let orders = bulkhead.call_ok("orders", json!({"session": session, "status": "all"}));
    assert_eq!(
        structured(&orders)["orders"].as_array().unwrap().len(),
        1,
        "{orders}"
    );
    let positions = bulkhead.call_ok("positions", json!({"session": session}));
    assert_eq!(structured(&positions)["positions"][0]["qty"], "2");
}

#[test]
fn killing_one_sessions_worker_leaves_anothers_orders_and_positions_intact() {
    let mut bulkhead = TestSupervisor::new().start_legacy();
    let (a, pid_a) = bulkhead.open_session();
    let (b, _) = bulkhead.open_session();
    login(&mut bulkhead, &a, "a");
    login(&mut bulkhead, &b, "b");
    buy(&mut bulkhead, &a, "SOL-USD", "1", None);
    buy(&mut bulkhead, &b, "BTC-USD", "0.01", None);
    let limit = bulkhead.call_ok(
        "order_place",
        json!({"symbol": "ETH-USD", "side": "buy", "qty": "1", "type": "limit", "limit_price": "1", "session": b}),
    );
    assert_eq!(structured(&limit)["order"]["status"], "open");
    let before_positions =
        structured(&bulkhead.call_ok("positions", json!({"session": b})))["positions"].clone();
    let before_orders =
        structured(&bulkhead.call_ok("orders", json!({"session": b, "status": "all"})))["orders"]
            .clone();
    let before_cash =
        structured(&bulkhead.call_ok("account", json!({"session": b})))["cash"].clone();

    kill9(pid_a);
    assert!(eventually(Duration::from_secs(2), || process_state(pid_a).is_none()));
    let lost = bulkhead.call("positions", json!({"session": a}));
    assert_eq!(error_code(&lost), Some(-32041), "{lost}");

    let after_positions =
        structured(&bulkhead.call_ok("positions", json!({"session": b})))["positions"].clone();
    let after_orders =
        structured(&bulkhead.call_ok("orders", json!({"session": b, "status": "all"})))["orders"]
            .clone();
    let after_cash =
        structured(&bulkhead.call_ok("account", json!({"session": b})))["cash"].clone();
    assert_eq!(before_orders, after_orders);
    assert_eq!(before_cash, after_cash);
    assert_eq!(before_positions[0]["symbol"], after_positions[0]["symbol"]);
    assert_eq!(before_positions[0]["qty"], after_positions[0]["qty"]);
}

#[test]
fn credential_refs_resolve_for_the_provisioned_principal_only_and_refusals_reveal_nothing() {
    let dir = std::env::temp_dir().join(format!("bulkhead-creds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("local.main"),
        format!("broker = paper\napi_key = ops-key\napi_secret = {SENTINEL}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("bob.other"),
        "broker = paper\napi_key = bob\napi_secret = bob-secret\n",
    )
    .unwrap();
    let mut bulkhead = TestSupervisor::new()
        .env("RUST_LOG", "debug")
        .args(["--credentials-dir", dir.to_str().unwrap()])
        .start_legacy();
    let (session, _) = bulkhead.open_session();
    let ok = bulkhead.call_ok(
        "broker_login",
        json!({"broker": "paper", "credential_ref": "main", "session": session}),
    );
    assert_eq!(structured(&ok)["authenticated"], true, "{ok}");
    let account = bulkhead.call_ok("account", json!({"session": session}));
    assert_eq!(structured(&account)["cash"], "100000.00");

    let (other, _) = bulkhead.open_session();
    let someone_elses = error_text(&bulkhead.call_ok(
        "broker_login",
        json!({"broker": "paper", "credential_ref": "other", "session": other}),
    ));
    let nonexistent = error_text(&bulkhead.call_ok(
        "broker_login",
        json!({"broker": "paper", "credential_ref": "nope", "session": other}),
    ));
    assert_eq!(
        someone_elses.replace("\"other\"", "\"REF\""),
        nonexistent.replace("\"nope\"", "\"REF\"")
    );
    let traversal = error_text(&bulkhead.call_ok(
        "broker_login",
        json!({"broker": "paper", "credential_ref": "../bob.other", "session": other}),
    ));
    assert!(
        traversal.contains("unknown credential reference"),
        "{traversal}"
    );
    let still_out = bulkhead.call_ok("account", json!({"session": other}));
    assert!(error_text(&still_out).contains("not logged in"));

    bulkhead.close_stdin();
    bulkhead.wait_exit(Duration::from_secs(3)).expect("exit");
    assert!(
        !bulkhead.stderr().contains(SENTINEL),
        "a provisioned secret reached a log line"
    );
    assert!(
        bulkhead
            .raw_stdout
            .iter()
            .all(|line| !line.contains(SENTINEL))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_client_cannot_smuggle_a_resolved_credential_through_meta() {
    let mut bulkhead = TestSupervisor::new().start_legacy();
    let response = bulkhead.request(
        "tools/call",
        json!({
            "name": "broker_login",
            "arguments": {"broker": "paper", "credential_ref": "main"},
            "_meta": {"io.bulkhead/resolvedCredential": {"api_key": "forged", "api_secret": "forged"}},
        }),
    );
    let text = error_text(&response["result"]);
    assert!(text.contains("unknown credential reference"), "{text}");
}
