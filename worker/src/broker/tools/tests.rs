//! Tests of the broker tools as a client sees them: JSON arguments in, results out.

use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use std::sync::Arc;

use bulkhead_protocol::trading::Rails;
use rmcp::model::CallToolResponse;

use super::*;
use crate::broker::confirm::ConfirmChannel;
use crate::broker::desk::test_desk::LocalDesk;

const SENTINEL: &str = "sentinel-secret-91c2e7";

fn tools() -> BrokerTools {
    BrokerTools::new(BrokerRegistry::for_tests(), Rails::default())
}

/// A trading call's context in unit tests: an in-process desk, nobody to confirm with.
pub(super) fn trade() -> TradeContext {
    TradeContext {
        desk: Arc::new(LocalDesk::default()),
        confirm: ConfirmChannel::Unavailable,
    }
}

/// The result of a call that cannot ask for input.
pub(super) fn complete(response: CallToolResponse) -> CallToolResult {
    match response {
        CallToolResponse::Complete(result) => result,
        other => panic!("expected a complete result, got {other:?}"),
    }
}

fn args<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("arguments match the schema")
}

fn is_error(result: &CallToolResult) -> bool {
    result.is_error == Some(true)
}

fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|block| block.as_text())
        .map(|t| t.text.clone())
        .collect()
}

fn structured(result: &CallToolResult) -> &Value {
    assert!(!is_error(result), "unexpected tool error: {}", text(result));
    result
        .structured_content
        .as_ref()
        .expect("structured content")
}

fn decimal(value: &Value) -> Decimal {
    value
        .as_str()
        .expect("decimals are strings")
        .parse()
        .unwrap()
}

async fn login(tools: &BrokerTools) {
    let login = json!({ "broker": "paper", "api_key": "key", "api_secret": SENTINEL });
    assert!(!is_error(&tools.broker_login(args(login)).await));
}

#[tokio::test]
async fn trading_before_login_says_to_log_in() {
    let tools = tools();
    let result = tools.account(BrokerArgs::default()).await;
    assert!(is_error(&result));
    assert_eq!(
        text(&result),
        "not logged in to paper: call broker_login first"
    );
    let quote = tools.quote(args(json!({ "symbol": "AAPL" }))).await;
    assert_eq!(structured(&quote)["broker"], "paper");
}

#[tokio::test]
async fn a_client_round_trip_balances_to_the_cent() {
    let tools = tools();
    login(&tools).await;
    let quote = tools.quote(args(json!({ "symbol": "NVDA" }))).await;
    assert!(structured(&quote)["time"].as_str().unwrap().ends_with('Z'));

    let buy = json!({ "symbol": "NVDA", "side": "buy", "qty": 7, "type": "market" });
    let bought = complete(tools.order_place(args(buy), trade()).await);
    let buy_price = decimal(&structured(&bought)["order"]["avg_fill_price"]);
    let positions = tools.positions(BrokerArgs::default()).await;
    assert_eq!(structured(&positions)["positions"][0]["qty"], "7");

    let sell = json!({ "symbol": "NVDA", "side": "sell", "qty": "7", "type": "market" });
    let sold = complete(tools.order_place(args(sell), trade()).await);
    let sell_price = decimal(&structured(&sold)["order"]["avg_fill_price"]);

    let account = tools.account(BrokerArgs::default()).await;
    let cash = decimal(&structured(&account)["cash"]);
    let expected: Decimal =
        "100000.00".parse::<Decimal>().unwrap() + (sell_price - buy_price) * Decimal::from(7);
    assert_eq!(cash, expected);
    assert_eq!(structured(&account)["currency"], "USD");
    assert!(text(&account).starts_with("paper account: cash "));
}

#[tokio::test]
async fn a_retried_order_place_yields_one_order() {
    let tools = tools();
    login(&tools).await;
    let order = json!({
        "symbol": "ETH-USD", "side": "buy", "qty": "0.25", "type": "limit",
        "limit_price": "1.00", "client_order_id": "abc-1",
    });
    let first = complete(tools.order_place(args(order.clone()), trade()).await);
    let second = complete(tools.order_place(args(order), trade()).await);
    assert_eq!(structured(&first)["replayed"], false);
    assert_eq!(structured(&second)["replayed"], true);
    assert_eq!(structured(&first)["order"], structured(&second)["order"]);
    let orders = tools.orders(args(json!({ "status": "open" }))).await;
    assert_eq!(structured(&orders)["orders"].as_array().unwrap().len(), 1);

    let order_id = structured(&first)["order"]["order_id"].clone();
    let cancel = tools
        .order_cancel(args(json!({ "order_id": order_id })), &LocalDesk::default())
        .await;
    assert_eq!(structured(&cancel)["order"]["status"], "cancelled");
}

#[tokio::test]
async fn the_secret_never_appears_in_any_result() {
    let tools = tools();
    login(&tools).await;
    let buy = json!({ "symbol": "AAPL", "side": "buy", "qty": 1, "type": "market" });
    let results = vec![
        tools.broker_list().await,
        tools.quote(args(json!({ "symbol": "AAPL" }))).await,
        complete(tools.order_place(args(buy), trade()).await),
        tools.account(BrokerArgs::default()).await,
        tools.positions(BrokerArgs::default()).await,
        tools.orders(OrdersArgs::default()).await,
        tools
            .broker_logout(args(json!({ "broker": "paper" })))
            .await,
    ];
    for result in results {
        let serialized = serde_json::to_string(&result).unwrap();
        assert!(!serialized.contains(SENTINEL), "{serialized}");
    }
    assert!(!tools.session_state().await.to_string().contains(SENTINEL));
    let login: LoginArgs =
        args(json!({ "broker": "paper", "api_key": SENTINEL, "api_secret": SENTINEL }));
    assert!(!format!("{login:?}").contains(SENTINEL));
}

#[tokio::test]
async fn login_arguments_must_be_one_kind_or_the_other() {
    let tools = tools();
    let cases = [
        (json!({ "broker": "paper" }), "pass one of the two"),
        (
            json!({ "broker": "paper", "api_key": "k" }),
            "pass one of the two",
        ),
        (
            json!({ "broker": "paper", "api_key": "k", "api_secret": "s", "credential_ref": "r" }),
            "not both",
        ),
        (
            json!({ "broker": "paper", "credential_ref": "prod" }),
            "not available in this worker",
        ),
        (
            json!({ "broker": "paper", "api_key": "", "api_secret": "s" }),
            "must both be non-empty",
        ),
        (
            json!({ "broker": "alpaca", "api_key": "k", "api_secret": "s" }),
            "call broker_list",
        ),
    ];
    for (login, message) in cases {
        let result = tools.broker_login(args(login)).await;
        assert!(is_error(&result));
        assert!(text(&result).contains(message), "{}", text(&result));
    }
    assert_eq!(
        tools.session_state().await["brokers"][0]["authenticated"],
        false
    );
}

#[tokio::test]
async fn session_state_and_broker_list_report_logins() {
    let tools = tools();
    let expected = json!({ "active_broker": "paper", "brokers": [{ "name": "paper", "authenticated": false }] });
    assert_eq!(tools.session_state().await, expected);
    login(&tools).await;
    let list = tools.broker_list().await;
    let paper = &structured(&list)["brokers"][0];
    assert_eq!(
        (&paper["name"], &paper["authenticated"], &paper["active"]),
        (&json!("paper"), &json!(true), &json!(true))
    );
    assert_eq!(paper["environment"], "simulated");
    assert_eq!(text(&list), "brokers: paper (simulated, logged in, active)");
    let used = tools.broker_use(args(json!({ "broker": "paper" }))).await;
    assert_eq!(structured(&used)["active_broker"], "paper");
    tools.end_session().await;
    assert_eq!(
        tools.session_state().await["brokers"][0]["authenticated"],
        false
    );
}

#[tokio::test]
async fn indicator_returns_its_value_and_inputs() {
    let tools = tools();
    let result = tools
        .indicator(args(
            json!({ "symbol": "BTC-USD", "kind": "sma", "period": 5 }),
        ))
        .await;
    let body = structured(&result);
    let prices: Vec<Decimal> = body["prices"]
        .as_array()
        .unwrap()
        .iter()
        .map(decimal)
        .collect();
    assert_eq!(prices.len(), 5);
    let mean = prices.iter().sum::<Decimal>() / Decimal::from(5);
    assert_eq!(decimal(&body["value"]), mean.round_dp(8).normalize());
    assert_eq!(
        (body["period"].clone(), body["interval_seconds"].clone()),
        (json!(5), json!(60))
    );

    let bad = tools
        .indicator(args(
            json!({ "symbol": "BTC-USD", "kind": "rsi", "period": 0 }),
        ))
        .await;
    assert!(is_error(&bad) && text(&bad).contains("period must be between 1 and 100"));
}

#[test]
fn argument_schemas_use_the_interface_names() {
    let schema = serde_json::to_value(schemars::schema_for!(OrderPlaceArgs)).unwrap();
    let properties = schema["properties"].as_object().unwrap();
    let names: Vec<&str> = properties.keys().map(String::as_str).collect();
    let expected = [
        "broker",
        "client_order_id",
        "dry_run",
        "limit_price",
        "notional",
        "qty",
        "side",
        "stop_loss_price",
        "stop_price",
        "symbol",
        "take_profit_price",
        "time_in_force",
        "type",
    ];
    assert_eq!(names, expected);
    assert_eq!(schema["required"], json!(["symbol", "side"]));
    assert_eq!(
        properties["qty"]["type"],
        json!(["string", "number", "null"])
    );
    let login = serde_json::to_value(schemars::schema_for!(LoginArgs)).unwrap();
    assert_eq!(login["required"], json!(["broker"]));
    assert_eq!(descriptions::ALL.len(), 18);
}

#[test]
fn tool_futures_can_cross_threads_as_rmcp_requires() {
    fn assert_send<T: Send>(_: &T) {}
    let tools = tools();
    assert_send(&tools.order_place(
        args(json!({ "symbol": "A", "side": "buy", "qty": 1, "type": "market" })),
        trade(),
    ));
    assert_send(&tools.broker_login(args(json!({ "broker": "paper" }))));
    assert_send(&tools.indicator(args(json!({ "symbol": "A", "kind": "ema", "period": 3 }))));
}
