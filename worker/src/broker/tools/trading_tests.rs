//! The trading pipeline as a client sees it: rails, dry runs, the desk's daily cap and journal
//! records, idempotency, the new lifecycle tools, and live confirmation failing closed.

use std::sync::Arc;

use bulkhead_protocol::trading::Rails;
use rmcp::model::{CallToolResponse, InputResponses};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::tests::complete;
use super::*;
use crate::broker::confirm::{CONFIRM_INPUT_KEY, ConfirmChannel};
use crate::broker::desk::test_desk::LocalDesk;
use crate::broker::paper::market::test_clock::ManualClock;
use crate::broker::paper::{PaperBroker, PaperConfig};
use crate::broker::registry::TEST_LIVE_BROKER;
use crate::broker::{Environment, credentials::UnavailableResolver};

/// Monday 2026-01-05 15:00 UTC: New York and crypto trade.
const T0: i64 = 1_767_625_200;

fn d(text: &str) -> Decimal {
    text.parse().unwrap()
}

fn args<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("arguments match the schema")
}

/// Tools on `paper` and the test-only live flavour, both logged in, on a stopped clock.
async fn tools_with(rails: Rails) -> BrokerTools {
    let clock = Arc::new(ManualClock::at(T0));
    let mut registry = BrokerRegistry::new(Arc::new(UnavailableResolver));
    registry.add(Box::new(PaperBroker::with_clock(
        PaperConfig::default(),
        clock.clone(),
    )));
    let live = PaperConfig {
        name: TEST_LIVE_BROKER.to_owned(),
        environment: Environment::Live,
        ..PaperConfig::default()
    };
    registry.add(Box::new(PaperBroker::with_clock(live, clock)));
    let tools = BrokerTools::new(registry, rails);
    for broker in ["paper", TEST_LIVE_BROKER] {
        let login = json!({ "broker": broker, "api_key": "k", "api_secret": "s" });
        assert!(tools.broker_login(args(login)).await.is_error != Some(true));
    }
    tools
}

fn with_desk(desk: &Arc<LocalDesk>) -> TradeContext {
    TradeContext {
        desk: desk.clone(),
        confirm: ConfirmChannel::Unavailable,
    }
}

fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|block| block.as_text())
        .map(|text| text.text.clone())
        .collect()
}

fn body(result: &CallToolResult) -> &Value {
    assert_ne!(
        result.is_error,
        Some(true),
        "unexpected tool error: {}",
        text(result)
    );
    result
        .structured_content
        .as_ref()
        .expect("structured content")
}

/// The error's kind and sentence.
fn refusal(result: &CallToolResult) -> (String, String) {
    assert_eq!(
        result.is_error,
        Some(true),
        "expected a tool error: {result:?}"
    );
    let kind = result.structured_content.as_ref().unwrap()["error"]["kind"]
        .as_str()
        .unwrap()
        .to_owned();
    (kind, text(result))
}

async fn open_orders(tools: &BrokerTools, broker: &str) -> usize {
    let orders = tools
        .orders(args(json!({ "status": "all", "broker": broker })))
        .await;
    body(&orders)["orders"].as_array().unwrap().len()
}

#[tokio::test]
async fn an_order_over_the_cap_is_refused_naming_the_limit_and_sized_from_the_broker() {
    let rails = Rails {
        max_order_notional: Some(d("1000")),
        ..Rails::default()
    };
    let tools = tools_with(rails).await;
    let desk = Arc::new(LocalDesk::default());
    // 10 AAPL is about 1900 USD; a limit of 1.00 does not make the buy any cheaper to size.
    let low_limit = json!({ "symbol": "AAPL", "side": "buy", "qty": "10", "type": "limit", "limit_price": "1.00" });
    let result = complete(tools.order_place(args(low_limit), with_desk(&desk)).await);
    let (kind, sentence) = refusal(&result);
    assert_eq!(kind, "max_order_notional");
    assert!(
        sentence.contains("over your max_order_notional of 1000 USD"),
        "{sentence}"
    );
    assert_eq!(open_orders(&tools, "paper").await, 0);
    assert!(desk.records().is_empty(), "nothing was announced");
    let small = json!({ "symbol": "AAPL", "side": "buy", "qty": "5" });
    let placed = complete(tools.order_place(args(small), with_desk(&desk)).await);
    assert_eq!(body(&placed)["order"]["status"], "filled");
}

#[tokio::test]
async fn allowed_symbols_and_read_only_refuse_orders_but_never_cancellations() {
    let tools = tools_with(Rails {
        allowed_symbols: Some(vec!["BTC-USD".into()]),
        ..Rails::default()
    })
    .await;
    let desk = Arc::new(LocalDesk::default());
    let msft = json!({ "symbol": "msft", "side": "buy", "qty": "1" });
    let result = complete(tools.order_place(args(msft), with_desk(&desk)).await);
    assert_eq!(
        refusal(&result),
        (
            "symbol_not_allowed".to_owned(),
            "orders in MSFT are not allowed for you: your operator allows only BTC-USD".to_owned()
        )
    );
    let btc = json!({ "symbol": "BTC-USD", "side": "buy", "qty": "0.01", "type": "limit", "limit_price": "1000" });
    body(&complete(
        tools.order_place(args(btc), with_desk(&desk)).await,
    ));

    let read_only = tools_with(Rails {
        read_only: true,
        ..Rails::default()
    })
    .await;
    let attempts = [
        complete(
            read_only
                .order_place(
                    args(json!({ "symbol": "BTC-USD", "side": "buy", "qty": "0.01" })),
                    with_desk(&desk),
                )
                .await,
        ),
        complete(
            read_only
                .order_replace(
                    args(json!({ "order_id": "paper-1", "qty": "2" })),
                    with_desk(&desk),
                )
                .await,
        ),
        complete(
            read_only
                .position_close(args(json!({ "symbol": "BTC-USD" })), with_desk(&desk))
                .await,
        ),
    ];
    for attempt in &attempts {
        assert_eq!(refusal(attempt).0, "read_only");
    }
    let cancelled = read_only
        .orders_cancel_all(OrdersCancelAllArgs::default(), desk.as_ref())
        .await;
    assert_eq!(body(&cancelled)["count"], 0);
}

#[tokio::test]
async fn a_dry_run_places_nothing_and_shows_the_buying_power_after() {
    let tools = tools_with(Rails::default()).await;
    let desk = Arc::new(LocalDesk::default());
    let order = json!({ "symbol": "MSFT", "side": "buy", "qty": "3", "dry_run": true });
    let result = complete(tools.order_place(args(order), with_desk(&desk)).await);
    let preview = body(&result);
    assert_eq!(preview["dry_run"], true);
    let estimate: Decimal = preview["estimated_notional"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(estimate > d("1000") && estimate < d("1500"), "{estimate}");
    assert_eq!(preview["buying_power"], "100000.00");
    let after: Decimal = preview["buying_power_after"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(after, d("100000.00") - estimate);
    assert_eq!(preview["would_send"]["symbol"], "MSFT");
    assert!(
        preview["client_order_id"]
            .as_str()
            .unwrap()
            .starts_with("bh-")
    );
    assert!(
        text(&result).ends_with("nothing was placed"),
        "{}",
        text(&result)
    );
    assert_eq!(open_orders(&tools, "paper").await, 0);
    assert!(desk.records().is_empty());
}

#[tokio::test]
async fn the_desk_sees_every_order_and_its_daily_cap_refuses_the_one_that_crosses_it() {
    let tools = tools_with(Rails::default()).await;
    let desk = Arc::new(LocalDesk::with_daily_cap(d("3000")));
    let buy = |qty: &str| json!({ "symbol": "AAPL", "side": "buy", "qty": qty });
    body(&complete(
        tools.order_place(args(buy("10")), with_desk(&desk)).await,
    ));
    let second = complete(tools.order_place(args(buy("10")), with_desk(&desk)).await);
    let (kind, sentence) = refusal(&second);
    assert_eq!(
        (kind.as_str(), sentence.as_str()),
        ("max_daily_notional", "over the daily cap of 3000")
    );
    assert_eq!(
        open_orders(&tools, "paper").await,
        1,
        "the refused order was not sent"
    );
    let records = desk.records();
    let events: Vec<&str> = records
        .iter()
        .map(|record| record["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["intent", "outcome", "intent"]);
    assert_eq!(records[0]["intent"]["symbol"], "AAPL");
    assert_eq!(records[0]["intent"]["environment"], "simulated");
    assert_eq!(records[1]["outcome"]["result"], "accepted");
    assert_eq!(records[1]["outcome"]["status"], "filled");
    assert!(desk.used() > d("1800"));
}

#[tokio::test]
async fn client_order_ids_are_returned_replayed_and_refused_for_another_order() {
    let tools = tools_with(Rails::default()).await;
    let desk = Arc::new(LocalDesk::default());
    let generated = complete(
        tools
            .order_place(
                args(json!({ "symbol": "ETH-USD", "side": "buy", "qty": "0.5" })),
                with_desk(&desk),
            )
            .await,
    );
    assert!(
        body(&generated)["client_order_id"]
            .as_str()
            .unwrap()
            .starts_with("bh-")
    );
    let mine =
        json!({ "symbol": "ETH-USD", "side": "buy", "qty": "0.5", "client_order_id": "mine-7" });
    let first = complete(
        tools
            .order_place(args(mine.clone()), with_desk(&desk))
            .await,
    );
    let again = complete(tools.order_place(args(mine), with_desk(&desk)).await);
    assert_eq!(body(&again)["replayed"], true);
    assert_eq!(
        body(&first)["order"]["order_id"],
        body(&again)["order"]["order_id"]
    );
    let other =
        json!({ "symbol": "ETH-USD", "side": "buy", "qty": "0.7", "client_order_id": "mine-7" });
    let refused = complete(tools.order_place(args(other), with_desk(&desk)).await);
    let (kind, sentence) = refusal(&refused);
    assert_eq!(kind, "client_order_id_reused");
    assert!(
        sentence.contains("was already used for another order"),
        "{sentence}"
    );
    let intents = desk
        .records()
        .iter()
        .filter(|record| record["event"] == "intent")
        .count();
    assert_eq!(intents, 2, "a replay announces nothing");
}

#[tokio::test]
async fn a_bracket_followed_by_order_get_and_a_partial_close() {
    let tools = tools_with(Rails::default()).await;
    let desk = Arc::new(LocalDesk::default());
    let quote = tools.quote(args(json!({ "symbol": "BTC-USD" }))).await;
    let ask: Decimal = body(&quote)["ask"].as_str().unwrap().parse().unwrap();
    let bracket = json!({
        "symbol": "BTC-USD", "side": "buy", "qty": "0.2",
        "take_profit_price": (ask * d("1.5")).round_dp(2).to_string(),
        "stop_loss_price": (ask * d("0.5")).round_dp(2).to_string(),
        "client_order_id": "bracket-1",
    });
    let placed = complete(tools.order_place(args(bracket), with_desk(&desk)).await);
    assert_eq!(body(&placed)["order"]["order_class"], "bracket");
    let got = tools
        .order_get(args(json!({ "client_order_id": "bracket-1" })))
        .await;
    let order = &body(&got)["order"];
    assert_eq!(order["status"], "filled");
    assert_eq!(order["filled_qty"], "0.2");
    assert_eq!(order["legs"].as_array().unwrap().len(), 2);
    assert_eq!(order["legs"][0]["status"], "open");

    let cancelled = tools
        .orders_cancel_all(args(json!({ "symbol": "BTC-USD" })), desk.as_ref())
        .await;
    assert_eq!(body(&cancelled)["count"], 2, "both legs");
    let half = complete(
        tools
            .position_close(
                args(json!({ "symbol": "BTC-USD", "percent": 50 })),
                with_desk(&desk),
            )
            .await,
    );
    assert_eq!(body(&half)["order"]["filled_qty"], "0.1");
    let positions = tools.positions(BrokerArgs::default()).await;
    assert_eq!(body(&positions)["positions"][0]["qty"], "0.1");
    let both = json!({ "symbol": "BTC-USD", "qty": "0.1", "percent": 10 });
    assert_eq!(
        refusal(&complete(
            tools.position_close(args(both), with_desk(&desk)).await
        ))
        .0,
        "invalid_request"
    );
}

#[tokio::test]
async fn market_tools_answer_on_paper() {
    let tools = tools_with(Rails::default()).await;
    let bars = tools
        .bars(args(
            json!({ "symbol": "AAPL", "timeframe": "15m", "limit": 4 }),
        ))
        .await;
    assert_eq!(body(&bars)["bars"].as_array().unwrap().len(), 4);
    let bad = tools
        .bars(args(
            json!({ "symbol": "AAPL", "timeframe": "1h", "start": "yesterday" }),
        ))
        .await;
    assert!(refusal(&bad).1.contains("RFC 3339"));
    let clock = tools
        .market_clock(args(json!({ "market": "us_equity" })))
        .await;
    assert_eq!(body(&clock)["clocks"][0]["is_open"], true);
    let symbols = tools.symbols(args(json!({ "query": "apple" }))).await;
    assert_eq!(body(&symbols)["symbols"][0]["symbol"], "AAPL");
    let hourly = tools
        .indicator(args(
            json!({ "symbol": "BTC-USD", "kind": "sma", "period": 3, "timeframe": "1h" }),
        ))
        .await;
    assert_eq!(body(&hourly)["interval_seconds"], 3600);
}

fn modern(responses: Option<InputResponses>, state: Option<String>) -> ConfirmChannel {
    ConfirmChannel::InputRequired {
        client_can_elicit: true,
        responses,
        state,
    }
}

#[tokio::test]
async fn a_live_order_is_placed_only_after_the_user_confirms_it() {
    let tools = tools_with(Rails::default()).await;
    let desk = Arc::new(LocalDesk::default());
    let order = json!({ "broker": TEST_LIVE_BROKER, "symbol": "AAPL", "side": "buy", "qty": "1" });

    // Nobody to ask: refused, nothing sent, the refusal journaled.
    let unconfirmed = complete(
        tools
            .order_place(args(order.clone()), with_desk(&desk))
            .await,
    );
    assert_eq!(refusal(&unconfirmed).0, "not_confirmed");
    assert_eq!(open_orders(&tools, TEST_LIVE_BROKER).await, 0);
    assert_eq!(desk.records()[0]["detail"]["result"], "not_confirmed");

    // 2026-07-28: first an input-required result, then the retry with the answer.
    let context = TradeContext {
        desk: desk.clone(),
        confirm: modern(None, None),
    };
    let CallToolResponse::InputRequired(asked) =
        tools.order_place(args(order.clone()), context).await
    else {
        panic!("expected an input-required result");
    };
    let question = serde_json::to_value(&asked).unwrap();
    let message = question["inputRequests"][CONFIRM_INPUT_KEY]["params"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.starts_with("Place a LIVE (real money) order on paper-live: buy 1 AAPL"),
        "{message}"
    );
    assert_eq!(
        open_orders(&tools, TEST_LIVE_BROKER).await,
        0,
        "asking places nothing"
    );

    let mut declined = InputResponses::new();
    declined.insert(CONFIRM_INPUT_KEY.into(), json!({ "action": "decline" }));
    let context = TradeContext {
        desk: desk.clone(),
        confirm: modern(Some(declined), asked.request_state.clone()),
    };
    let refused = complete(tools.order_place(args(order.clone()), context).await);
    assert_eq!(refusal(&refused).0, "not_confirmed");

    let mut accepted = InputResponses::new();
    accepted.insert(
        CONFIRM_INPUT_KEY.into(),
        json!({ "action": "accept", "content": { "confirm": true } }),
    );
    let context = TradeContext {
        desk: desk.clone(),
        confirm: modern(Some(accepted), asked.request_state.clone()),
    };
    let placed = complete(tools.order_place(args(order), context).await);
    assert_eq!(body(&placed)["environment"], "live");
    assert_eq!(body(&placed)["order"]["status"], "filled");
    assert_eq!(open_orders(&tools, TEST_LIVE_BROKER).await, 1);

    // Paper never asks.
    let paper = json!({ "symbol": "AAPL", "side": "buy", "qty": "1" });
    let context = TradeContext {
        desk: desk.clone(),
        confirm: modern(None, None),
    };
    assert!(matches!(
        tools.order_place(args(paper), context).await,
        CallToolResponse::Complete(_)
    ));
}
