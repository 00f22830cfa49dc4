//! What the broker worker offers a host besides tools, through the real supervisor: resources
//! (account, positions, open orders, quotes), prompts, completions and log messages.

use bulkhead_tests::*;
use serde_json::{Value, json};

fn read(bulkhead: &mut Running, uri: &str) -> Value {
    let response = bulkhead.request("resources/read", json!({"uri": uri}));
    let text = response["result"]["contents"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no contents for {uri}: {response}"));
    serde_json::from_str(text).unwrap()
}

#[test]
fn the_worker_declares_and_serves_logging_resources_prompts_and_completions() {
    let mut bulkhead = TestSupervisor::new().spawn();
    let init = bulkhead.request(
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}),
    );
    let capabilities = &init["result"]["capabilities"];
    for capability in ["tools", "logging", "resources", "prompts", "completions"] {
        assert!(
            capabilities.get(capability).is_some(),
            "{capability}: {init}"
        );
    }
    bulkhead.notify("notifications/initialized", None);

    let listed = bulkhead.request("resources/list", json!({}));
    let uris: Vec<&str> = listed["result"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|resource| resource["uri"].as_str().unwrap())
        .collect();
    assert_eq!(
        uris,
        [
            "bulkhead://broker/account",
            "bulkhead://broker/positions",
            "bulkhead://broker/orders/open"
        ]
    );
    let logged_out = read(&mut bulkhead, "bulkhead://broker/account");
    assert_eq!(logged_out["error"]["kind"], "not_logged_in", "{logged_out}");

    bulkhead.call_ok(
        "broker_login",
        json!({"broker": "paper", "api_key": "k", "api_secret": "s"}),
    );
    bulkhead.request("logging/setLevel", json!({"level": "info"}));
    let id = bulkhead.send_request(
        "tools/call",
        json!({"name": "order_place", "arguments": {"symbol": "SOL-USD", "side": "buy", "qty": "2"}}),
    );
    let log = bulkhead
        .wait_for(RESPONSE_TIMEOUT, |message| {
            message["method"] == "notifications/message"
        })
        .expect("a log message about the order");
    assert_eq!(log["params"]["logger"], "bulkhead.orders");
    assert!(
        log["params"]["data"]
            .as_str()
            .unwrap()
            .contains("buy 2 SOL-USD"),
        "{log}"
    );
    bulkhead.response(&json!(id));

    let account = read(&mut bulkhead, "bulkhead://broker/account");
    assert_eq!(account["broker"], "paper");
    assert!(account["cash"].as_str().unwrap().parse::<f64>().unwrap() < 100_000.0);
    let positions = read(&mut bulkhead, "bulkhead://broker/positions");
    assert_eq!(positions["positions"][0]["symbol"], "SOL-USD");
    let quote = read(&mut bulkhead, "bulkhead://quote/btc-usd");
    assert_eq!(quote["symbol"], "BTC-USD");
    let missing = bulkhead.request("resources/read", json!({"uri": "bulkhead://quote/NOPE"}));
    assert_eq!(error_code(&missing), Some(-32002), "{missing}");
    let templates = bulkhead.request("resources/templates/list", json!({}));
    assert_eq!(
        templates["result"]["resourceTemplates"][0]["uriTemplate"],
        "bulkhead://quote/{symbol}"
    );

    let prompts = bulkhead.request("prompts/list", json!({}));
    let names: Vec<&str> = prompts["result"]["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|prompt| prompt["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["portfolio_review", "trade_plan"]);
    let review = bulkhead.request("prompts/get", json!({"name": "portfolio_review"}));
    let messages = review["result"]["messages"].as_array().unwrap();
    assert_eq!(
        messages.len(),
        4,
        "the request and three attached resources"
    );
    assert_eq!(
        messages[2]["content"]["resource"]["uri"],
        "bulkhead://broker/positions"
    );
    assert!(
        messages[2]["content"]["resource"]["text"]
            .as_str()
            .unwrap()
            .contains("SOL-USD")
    );
    let plan = bulkhead.request(
        "prompts/get",
        json!({"name": "trade_plan", "arguments": {"symbol": "AAPL"}}),
    );
    let text = plan["result"]["messages"][0]["content"]["text"]
        .as_str()
        .unwrap();
    assert!(
        text.contains("Plan a buy trade in AAPL") && text.contains("dry_run"),
        "{text}"
    );
    let without = bulkhead.request("prompts/get", json!({"name": "trade_plan"}));
    assert_eq!(error_code(&without), Some(-32602));

    let completed = bulkhead.request(
        "completion/complete",
        json!({"ref": {"type": "ref/prompt", "name": "trade_plan"}, "argument": {"name": "symbol", "value": "b"}}),
    );
    assert_eq!(
        completed["result"]["completion"]["values"],
        json!(["BTC-USD"])
    );
}
