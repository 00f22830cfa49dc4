//! Trading rails end to end, through the real supervisor and workers: the per-order cap, the
//! daily cap across sessions and across a restart (the order journal), allowed symbols,
//! read-only, dry runs, the journal's lines, and live orders that need the user's confirmation.

use std::path::Path;

use bulkhead_tests::*;
use serde_json::{Value, json};

const SENTINEL: &str = "SENTINEL-41d7-journal-must-not-see-this";

fn login(bulkhead: &mut Running, session: Option<&str>, broker: &str) {
    let mut arguments = json!({"broker": broker, "api_key": "key-id", "api_secret": SENTINEL});
    if let Some(session) = session {
        arguments["session"] = json!(session);
    }
    let result = bulkhead.call_ok("broker_login", arguments);
    assert_ne!(result["isError"], true, "{result}");
}

fn order(bulkhead: &mut Running, arguments: Value) -> Value {
    bulkhead.call_ok("order_place", arguments)
}

fn buy(session: Option<&str>, symbol: &str, qty: &str) -> Value {
    let mut arguments = json!({"symbol": symbol, "side": "buy", "qty": qty});
    if let Some(session) = session {
        arguments["session"] = json!(session);
    }
    arguments
}

fn error_text(result: &Value) -> String {
    assert_eq!(result["isError"], true, "expected a tool error: {result}");
    result["content"][0]["text"].as_str().unwrap().to_string()
}

fn error_kind(result: &Value) -> String {
    error_text(result);
    result["structuredContent"]["error"]["kind"]
        .as_str()
        .unwrap()
        .to_string()
}

fn order_count(bulkhead: &mut Running, session: Option<&str>, broker: &str) -> usize {
    let mut arguments = json!({"status": "all", "broker": broker});
    if let Some(session) = session {
        arguments["session"] = json!(session);
    }
    let orders = bulkhead.call_ok("orders", arguments);
    structured(&orders)["orders"].as_array().unwrap().len()
}

fn journal_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("every journal line is JSON"))
        .collect()
}

#[test]
fn an_order_over_the_max_order_notional_is_refused_with_a_sentence_naming_the_limit() {
    let mut bulkhead = TestSupervisor::new()
        .args(["--max-order-notional", "1000"])
        .start_legacy();
    login(&mut bulkhead, None, "paper");
    // One ETH is about 3200 USD at the paper market's prices, whatever the caller's limit says.
    let refused = order(
        &mut bulkhead,
        json!({"symbol": "ETH-USD", "side": "buy", "qty": "1", "type": "limit", "limit_price": "1"}),
    );
    let text = error_text(&refused);
    assert!(
        text.contains("over your max_order_notional of 1000 USD"),
        "{text}"
    );
    assert_eq!(error_kind(&refused), "max_order_notional");
    assert_eq!(order_count(&mut bulkhead, None, "paper"), 0);
    let small = order(&mut bulkhead, buy(None, "SOL-USD", "1"));
    assert_eq!(structured(&small)["order"]["status"], "filled", "{small}");
}

#[test]
fn the_daily_notional_spans_a_principals_sessions_and_survives_a_restart() {
    let dir = scratch_dir("daily");
    let journal = dir.join("orders.jsonl");
    let journal_arg = journal.to_str().unwrap().to_string();
    let rails = [
        "--max-daily-notional",
        "1000",
        "--order-journal",
        &journal_arg,
    ];
    let mut bulkhead = TestSupervisor::new().args(rails).start_legacy();
    let (a, _) = bulkhead.open_session();
    let (b, _) = bulkhead.open_session();
    login(&mut bulkhead, Some(&a), "paper");
    login(&mut bulkhead, Some(&b), "paper");
    // SOL trades within 5% of 150 USD: 3 + 3 SOL is 855 to 945, 2 more crosses 1000.
    for session in [&a, &b] {
        let placed = order(&mut bulkhead, buy(Some(session), "SOL-USD", "3"));
        assert_eq!(structured(&placed)["order"]["status"], "filled", "{placed}");
    }
    let refused = order(&mut bulkhead, buy(Some(&b), "SOL-USD", "2"));
    let text = error_text(&refused);
    assert!(
        text.contains("over your max_daily_notional of 1000"),
        "{text}"
    );
    assert!(text.contains("across all your sessions"), "{text}");
    assert_eq!(order_count(&mut bulkhead, Some(&b), "paper"), 1);
    drop(bulkhead);

    let mut restarted = TestSupervisor::new().args(rails).start_legacy();
    login(&mut restarted, None, "paper");
    let still = order(&mut restarted, buy(None, "SOL-USD", "2"));
    assert_eq!(error_kind(&still), "max_daily_notional", "{still}");
    let fits = order(&mut restarted, buy(None, "SOL-USD", "0.1"));
    assert_eq!(structured(&fits)["order"]["status"], "filled", "{fits}");

    let lines = journal_lines(&journal);
    let events: Vec<&str> = lines
        .iter()
        .map(|line| line["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "intent", "outcome", "intent", "outcome", "record", "record", "intent", "outcome"
        ]
    );
    let intent = &lines[0];
    for (field, value) in [
        ("principal", "local"),
        ("broker", "paper"),
        ("environment", "simulated"),
        ("action", "place"),
        ("symbol", "SOL-USD"),
        ("side", "buy"),
        ("qty", "3"),
        ("type", "market"),
    ] {
        assert_eq!(intent[field], value, "{field} in {intent}");
    }
    assert_eq!(
        intent["session"].as_str().unwrap().len(),
        8,
        "a session tag"
    );
    assert!(
        intent["client_order_id"]
            .as_str()
            .unwrap()
            .starts_with("bh-")
    );
    assert!(intent["estimated_notional"].is_string() && intent["time"].is_string());
    let outcome = &lines[1];
    assert_eq!(outcome["intent_id"], intent["intent_id"]);
    assert_eq!(outcome["client_order_id"], intent["client_order_id"]);
    assert_eq!(
        (&outcome["result"], &outcome["status"]),
        (&json!("accepted"), &json!("filled"))
    );
    assert_eq!(lines[4]["result"], "refused");
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(!text.contains(SENTINEL), "a secret reached the journal");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn allowed_symbols_and_a_principals_read_only_refuse_orders_but_not_the_kill_switch() {
    let mut bulkhead = TestSupervisor::new()
        .args(["--allowed-symbols", "BTC-USD,SOL-USD"])
        .start_legacy();
    login(&mut bulkhead, None, "paper");
    let refused = order(&mut bulkhead, buy(None, "eth-usd", "0.1"));
    assert_eq!(
        error_text(&refused),
        "orders in ETH-USD are not allowed for you: your operator allows only BTC-USD, SOL-USD"
    );
    let allowed = order(&mut bulkhead, buy(None, "SOL-USD", "1"));
    assert_eq!(structured(&allowed)["order"]["status"], "filled");
    drop(bulkhead);

    // Over stdio the principal is `local`.
    let mut read_only = TestSupervisor::new()
        .args(["--principal-rail", "local:read_only=true"])
        .start_legacy();
    login(&mut read_only, None, "paper");
    let refused = order(&mut read_only, buy(None, "SOL-USD", "1"));
    assert_eq!(error_kind(&refused), "read_only");
    assert!(error_text(&refused).contains("read-only"));
    let closed = read_only.call_ok("position_close", json!({"symbol": "SOL-USD"}));
    assert_eq!(error_kind(&closed), "read_only");
    let kill = read_only.call_ok("orders_cancel_all", json!({}));
    assert_eq!(structured(&kill)["count"], 0, "{kill}");
}

#[test]
fn a_dry_run_places_nothing_and_journals_nothing() {
    let dir = scratch_dir("dry-run");
    let journal = dir.join("orders.jsonl");
    let mut bulkhead = TestSupervisor::new()
        .args(["--order-journal", journal.to_str().unwrap()])
        .start_legacy();
    login(&mut bulkhead, None, "paper");
    let mut arguments = buy(None, "BTC-USD", "0.01");
    arguments["dry_run"] = json!(true);
    let preview = order(&mut bulkhead, arguments);
    let body = structured(&preview);
    assert_eq!(body["dry_run"], true, "{preview}");
    assert!(
        body["estimated_notional"]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap()
            > 500.0
    );
    assert_eq!(body["buying_power"], "100000.00");
    assert!(body["buying_power_after"].is_string());
    assert_eq!(order_count(&mut bulkhead, None, "paper"), 0);
    assert!(journal_lines(&journal).is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

fn live_broker_listed(args: &[&str]) -> bool {
    let mut bulkhead = TestSupervisor::new().args(args.to_vec()).start_legacy();
    let list = bulkhead.call_ok("broker_list", json!({}));
    structured(&list)["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|broker| broker["name"] == "paper-live")
}

#[test]
fn a_live_broker_is_listed_only_when_enabled_with_a_notional_cap() {
    assert!(!live_broker_listed(&["--test-tools"]));
    assert!(!live_broker_listed(&[
        "--test-tools",
        "--allow-live-broker",
        "paper-live"
    ]));
    assert!(live_broker_listed(&[
        "--test-tools",
        "--allow-live-broker",
        "paper-live",
        "--max-order-notional",
        "5000"
    ]));
    assert!(live_broker_listed(&[
        "--test-tools",
        "--principal-rail",
        "local:allow_live_brokers=paper-live",
        "--principal-rail",
        "local:max_order_notional=none"
    ]));
}

const LIVE: [&str; 5] = [
    "--test-tools",
    "--allow-live-broker",
    "paper-live",
    "--max-order-notional",
    "100000",
];

#[test]
fn a_live_order_without_a_client_that_can_confirm_is_refused() {
    let mut bulkhead = TestSupervisor::new().args(LIVE).start_legacy();
    let list = bulkhead.call_ok("broker_list", json!({}));
    let live = structured(&list)["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|broker| broker["name"] == "paper-live")
        .cloned()
        .unwrap();
    assert_eq!(live["environment"], "live");
    login(&mut bulkhead, None, "paper-live");
    let mut arguments = buy(None, "SOL-USD", "1");
    arguments["broker"] = json!("paper-live");
    let refused = order(&mut bulkhead, arguments);
    assert_eq!(error_kind(&refused), "not_confirmed", "{refused}");
    assert!(error_text(&refused).contains("the live order was not placed"));
    assert_eq!(order_count(&mut bulkhead, None, "paper-live"), 0);
}

/// Sends a live order and answers the confirmation the supervisor relays with `answer`.
fn live_order_answered(bulkhead: &mut Running, answer: Value) -> Value {
    let mut arguments = buy(None, "SOL-USD", "1");
    arguments["broker"] = json!("paper-live");
    let id = bulkhead.send_request(
        "tools/call",
        json!({"name": "order_place", "arguments": arguments}),
    );
    let question = bulkhead
        .wait_for(RESPONSE_TIMEOUT, |message| {
            message["method"] == "elicitation/create"
        })
        .expect("a confirmation request");
    let message = question["params"]["message"].as_str().unwrap();
    assert!(
        message.contains("LIVE (real money) order on paper-live: buy 1 SOL-USD"),
        "{message}"
    );
    bulkhead.send(&json!({"jsonrpc": "2.0", "id": question["id"], "result": answer}));
    bulkhead.response(&json!(id))["result"].clone()
}

#[test]
fn a_live_order_is_placed_only_when_the_user_confirms_it() {
    let mut bulkhead = TestSupervisor::new()
        .args(LIVE)
        .start_legacy_with(json!({"elicitation": {}}));
    login(&mut bulkhead, None, "paper-live");
    let declined = live_order_answered(&mut bulkhead, json!({"action": "decline"}));
    assert_eq!(error_kind(&declined), "not_confirmed");
    let unticked = live_order_answered(
        &mut bulkhead,
        json!({"action": "accept", "content": {"confirm": false}}),
    );
    assert_eq!(error_kind(&unticked), "not_confirmed");
    assert_eq!(order_count(&mut bulkhead, None, "paper-live"), 0);
    let placed = live_order_answered(
        &mut bulkhead,
        json!({"action": "accept", "content": {"confirm": true}}),
    );
    assert_eq!(structured(&placed)["environment"], "live", "{placed}");
    assert_eq!(structured(&placed)["order"]["status"], "filled");
    assert_eq!(order_count(&mut bulkhead, None, "paper-live"), 1);
}

#[test]
fn a_2026_client_confirms_a_live_order_with_an_input_required_round() {
    let mut bulkhead = TestSupervisor::new().args(LIVE).spawn();
    let mut meta = modern_meta();
    meta["io.modelcontextprotocol/clientCapabilities"] = json!({"elicitation": {}});
    let call = |name: &str, arguments: Value, extra: Value| {
        let mut params = json!({"name": name, "arguments": arguments, "_meta": meta.clone()});
        if let Value::Object(extra) = extra {
            params.as_object_mut().unwrap().extend(extra);
        }
        params
    };
    let login_args = json!({"broker": "paper-live", "api_key": "k", "api_secret": "s"});
    let logged_in = bulkhead.request("tools/call", call("broker_login", login_args, json!({})));
    assert_eq!(logged_in["result"]["isError"], false, "{logged_in}");
    let arguments = json!({"broker": "paper-live", "symbol": "SOL-USD", "side": "buy", "qty": "1"});
    let asked = bulkhead.request(
        "tools/call",
        call("order_place", arguments.clone(), json!({})),
    );
    let asked = &asked["result"];
    assert_eq!(asked["resultType"], "input_required", "{asked}");
    let state = asked["requestState"].clone();
    let answer = json!({
        "inputResponses": {"confirm_live_order": {"action": "accept", "content": {"confirm": true}}},
        "requestState": state,
    });
    let placed = bulkhead.request("tools/call", call("order_place", arguments, answer));
    let placed = &placed["result"];
    assert_eq!(placed["resultType"], "complete", "{placed}");
    assert_eq!(placed["structuredContent"]["order"]["status"], "filled");
}

#[test]
fn a_principal_with_rails_of_its_own_never_gets_a_pre_spawned_worker_without_them() {
    // Pool workers start with the defaults' policy (no cap here); `local` has a cap of its own.
    let mut bulkhead = TestSupervisor::new()
        .args([
            "--pool-size",
            "2",
            "--principal-rail",
            "local:max_order_notional=10",
        ])
        .start_legacy();
    let _ = bulkhead.request("tools/list", json!({}));
    let live = |bulkhead: &Running| -> Vec<u32> {
        children_of(bulkhead.pid())
            .into_iter()
            .filter(|(_, state)| *state != 'Z' && *state != 'X')
            .map(|(pid, _)| pid)
            .collect()
    };
    let filled = eventually(std::time::Duration::from_secs(10), || {
        live(&bulkhead).len() == 2
    });
    assert!(filled, "the pool did not fill: {:?}", live(&bulkhead));
    let pooled = live(&bulkhead);
    let (session, pid) = bulkhead.open_session();
    assert!(
        !pooled.contains(&pid),
        "{pid} came from the pool {pooled:?}"
    );
    login(&mut bulkhead, Some(&session), "paper");
    let refused = order(&mut bulkhead, buy(Some(&session), "SOL-USD", "1"));
    assert_eq!(error_kind(&refused), "max_order_notional", "{refused}");
}
