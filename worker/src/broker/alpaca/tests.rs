//! Mapping tests from the request and response shapes of Alpaca's OpenAPI documents (their
//! examples, as published), and the error sentences a model reads.

use reqwest::StatusCode;
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde_json::json;

use super::http::{Failure, Scrubber, Timeouts, refusal};
use super::wire::{
    CryptoBars, CryptoLatestQuotes, NewOrder, StockBars, StockLatestQuote, WireAccount, WireAsset,
    WireClock, WireOrder, WirePosition, alpaca_symbol, same_order, status,
};
use super::{AlpacaBroker, path_segment};
use crate::broker::model::OrderClass;
use crate::broker::{
    BrokerError, Credentials, OrderAmount, OrderRequest, OrderStatus, OrderType, Side, TimeInForce,
};
use bulkhead_protocol::brokers::NetworkBroker;

fn decimal(text: &str) -> Decimal {
    text.parse().unwrap()
}

/// The documented `EquityOrderResponse` example.
fn equity_order() -> serde_json::Value {
    json!({"asset_class": "us_equity", "asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415",
        "canceled_at": null, "client_order_id": "5680c4bc-9ac1-4a12-a44c-df427ba53032",
        "created_at": "2023-12-12T22:31:24.668464435Z", "expired_at": null, "extended_hours": false,
        "failed_at": null, "filled_at": null, "filled_avg_price": null, "filled_qty": "0",
        "hwm": null, "id": "7b08df51-c1ac-453c-99f9-323a5f075f0d", "legs": null,
        "limit_price": "150", "notional": null, "order_class": "", "order_type": "limit",
        "qty": "2", "replaced_at": null, "replaced_by": null, "replaces": null, "side": "buy",
        "source": null, "status": "accepted", "stop_price": null,
        "submitted_at": "2023-12-12T22:31:24.577215743Z", "subtag": null, "symbol": "AAPL",
        "time_in_force": "gtc", "trail_percent": null, "trail_price": null, "type": "limit",
        "updated_at": "2023-12-12T22:31:24.668464435Z"})
}

#[test]
fn the_documented_equity_order_maps_onto_the_model() {
    let order: WireOrder = serde_json::from_value(equity_order()).unwrap();
    let order = order.into_model();
    assert_eq!(order.order_id, "7b08df51-c1ac-453c-99f9-323a5f075f0d");
    assert_eq!(
        order.client_order_id,
        "5680c4bc-9ac1-4a12-a44c-df427ba53032"
    );
    assert_eq!(order.symbol, "AAPL");
    assert_eq!(order.side, Side::Buy);
    assert_eq!(order.order_type, OrderType::Limit);
    assert_eq!(order.time_in_force, TimeInForce::Gtc);
    assert_eq!(order.order_class, OrderClass::Simple);
    assert_eq!(order.qty, Some(decimal("2")));
    assert_eq!(order.limit_price, Some(decimal("150")));
    assert_eq!(order.status, OrderStatus::Accepted);
    assert_eq!(order.filled_qty, Decimal::ZERO);
    assert!(order.fills.is_empty() && order.avg_fill_price.is_none());
}

#[test]
fn a_filled_bracket_order_has_its_fill_and_its_legs() {
    let mut value = equity_order();
    value["status"] = json!("filled");
    value["filled_qty"] = json!("2");
    value["filled_avg_price"] = json!("149.5");
    value["filled_at"] = json!("2023-12-12T22:31:25Z");
    value["order_class"] = json!("bracket");
    let mut leg = equity_order();
    leg["id"] = json!("leg-1");
    leg["side"] = json!("sell");
    leg["status"] = json!("held");
    value["legs"] = json!([leg]);
    let order = serde_json::from_value::<WireOrder>(value)
        .unwrap()
        .into_model();
    assert_eq!(order.status, OrderStatus::Filled);
    assert_eq!(order.order_class, OrderClass::Bracket);
    assert_eq!(order.avg_fill_price, Some(decimal("149.5")));
    assert_eq!(order.fills.len(), 1);
    assert_eq!(order.fills[0].qty, decimal("2"));
    assert_eq!(order.legs.len(), 1);
    assert_eq!(order.legs[0].status, OrderStatus::Held);
    assert_eq!(
        order.legs[0].parent_order_id.as_deref(),
        Some("7b08df51-c1ac-453c-99f9-323a5f075f0d")
    );
}

#[test]
fn every_documented_order_status_has_a_model_status() {
    let expected = [
        ("new", OrderStatus::Open),
        ("partially_filled", OrderStatus::PartiallyFilled),
        ("filled", OrderStatus::Filled),
        ("done_for_day", OrderStatus::Open),
        ("canceled", OrderStatus::Cancelled),
        ("expired", OrderStatus::Expired),
        ("replaced", OrderStatus::Replaced),
        ("pending_cancel", OrderStatus::PendingCancel),
        ("pending_replace", OrderStatus::PendingReplace),
        ("accepted", OrderStatus::Accepted),
        ("pending_new", OrderStatus::Pending),
        ("accepted_for_bidding", OrderStatus::Accepted),
        ("stopped", OrderStatus::Open),
        ("rejected", OrderStatus::Rejected),
        ("suspended", OrderStatus::Held),
        ("calculated", OrderStatus::Filled),
        ("held", OrderStatus::Held),
    ];
    for (alpaca, model) in expected {
        assert_eq!(status(alpaca), model, "{alpaca}");
    }
}

#[test]
fn the_documented_crypto_order_and_a_crypto_pair_in_either_spelling() {
    let order = json!({"asset_class": "crypto", "client_order_id": "5b5d3d67-06ad-4ffa-af65-a117d0fc5a59",
        "created_at": "2023-12-12T22:36:51.337711497Z", "filled_qty": "0",
        "id": "38e482f3-79a8-4f75-a057-f07a1ec6a397", "legs": null, "limit_price": "2100",
        "notional": null, "order_class": "", "order_type": "limit", "qty": "0.02", "side": "buy",
        "status": "pending_new", "symbol": "ETH/USD", "time_in_force": "gtc", "type": "limit",
        "updated_at": "2023-12-12T22:36:51.337754768Z"});
    let order = serde_json::from_value::<WireOrder>(order)
        .unwrap()
        .into_model();
    assert_eq!(order.status, OrderStatus::Pending);
    assert_eq!(order.qty, Some(decimal("0.02")));
    assert_eq!(alpaca_symbol("eth-usd"), "ETH/USD");
    assert_eq!(alpaca_symbol("ETH/USD"), "ETH/USD");
    assert_eq!(alpaca_symbol("brk.b"), "BRK.B");
    let request = request(OrderAmount::Qty(decimal("0.020")));
    assert!(same_order(&order, &request, "ETH/USD"));
    let other = super::super::OrderRequest {
        side: Side::Sell,
        ..request
    };
    assert!(!same_order(&order, &other, "ETH/USD"));
}

fn request(amount: OrderAmount) -> OrderRequest {
    OrderRequest {
        symbol: "ETH-USD".into(),
        side: Side::Buy,
        amount,
        order_type: OrderType::Limit,
        time_in_force: None,
        limit_price: Some(decimal("2100.00")),
        stop_price: None,
        take_profit_price: None,
        stop_loss_price: None,
        client_order_id: "cid-1".into(),
    }
}

#[test]
fn order_requests_become_the_documented_body() {
    let crypto = NewOrder::from_request(&request(OrderAmount::Qty(decimal("0.5"))), "ETH/USD");
    assert_eq!(
        serde_json::to_value(&crypto).unwrap(),
        json!({"symbol": "ETH/USD", "side": "buy", "type": "limit", "time_in_force": "gtc",
               "qty": "0.5", "limit_price": "2100", "client_order_id": "cid-1"})
    );
    let bracket = OrderRequest {
        symbol: "AAPL".into(),
        amount: OrderAmount::Notional(decimal("250.00")),
        order_type: OrderType::Market,
        limit_price: None,
        take_profit_price: Some(decimal("200")),
        stop_loss_price: Some(decimal("150.5")),
        ..request(OrderAmount::Qty(Decimal::ONE))
    };
    let body = serde_json::to_value(NewOrder::from_request(&bracket, "AAPL")).unwrap();
    assert_eq!(body["time_in_force"], "day", "equities default to day");
    assert_eq!(body["notional"], "250");
    assert!(body.get("qty").is_none());
    assert_eq!(body["order_class"], "bracket");
    assert_eq!(body["take_profit"], json!({"limit_price": "200"}));
    assert_eq!(body["stop_loss"], json!({"stop_price": "150.5"}));
    let one_leg = OrderRequest {
        stop_loss_price: None,
        ..bracket
    };
    let body = serde_json::to_value(NewOrder::from_request(&one_leg, "AAPL")).unwrap();
    assert_eq!(body["order_class"], "oto");
}

#[test]
fn the_documented_account_position_and_asset_examples_map() {
    let account: WireAccount = serde_json::from_value(json!({"account_blocked": false,
        "buying_power": "262113.632", "cash": "-23140.2", "currency": "USD",
        "equity": "103820.56", "id": "e6fe16f3-64a4-4921-8928-cadf02f92f98", "status": "ACTIVE",
        "trading_blocked": false, "multiplier": "4", "daytrade_count": 0}))
    .unwrap();
    let account = account.into_model();
    assert_eq!(account.cash, decimal("-23140.2"));
    assert_eq!(account.buying_power, decimal("262113.632"));
    let position: WirePosition = serde_json::from_value(json!({"asset_class": "us_equity",
        "avg_entry_price": "100.0", "current_price": "120.0", "market_value": "600.0",
        "qty": "5", "side": "long", "symbol": "AAPL", "unrealized_pl": "100.0",
        "cost_basis": "500.0"}))
    .unwrap();
    assert_eq!(position.closing_side(), Side::Sell);
    let position = position.into_model();
    assert_eq!(
        (position.qty, position.avg_price, position.unrealized_pnl),
        (decimal("5"), decimal("100.0"), decimal("100.0"))
    );
    let asset: WireAsset = serde_json::from_value(json!({"class": "us_equity",
        "exchange": "NASDAQ", "fractionable": true, "name": "Apple Inc. Common Stock",
        "status": "active", "symbol": "AAPL", "tradable": true, "shortable": true}))
    .unwrap();
    let info = asset.into_model();
    assert!(info.fractionable && info.tradable);
    assert_eq!(info.market, "us_equity");
    assert_eq!(info.min_notional, Some(Decimal::ONE));
    assert_eq!(info.price_increment, decimal("0.01"));
}

#[test]
fn the_documented_market_data_examples_map() {
    let quote: StockLatestQuote = serde_json::from_value(json!({"quote": {"ap": 172.7, "as": 1,
        "ax": "Q", "bp": 172.6, "bs": 2, "bx": "Q", "c": ["R"],
        "t": "2022-08-17T10:09:34.055031265Z", "z": "C"}, "symbol": "AAPL"}))
    .unwrap();
    let quote = quote.quote.into_model("AAPL".into(), "USD".into());
    assert_eq!(
        (quote.bid, quote.ask, quote.last),
        (decimal("172.6"), decimal("172.7"), decimal("172.65"))
    );
    let crypto: CryptoLatestQuotes = serde_json::from_value(json!({"quotes": {"BTC/USD":
        {"ap": 29059, "as": 3.252, "bp": 29058, "bs": 0.3544,
         "t": "2022-05-26T11:47:18.44347136Z"}}}))
    .unwrap();
    assert_eq!(crypto.quotes["BTC/USD"].ap, decimal("29059"));
    let bars: CryptoBars = serde_json::from_value(json!({"bars": {"BTC/USD": [{"c": 29003,
        "h": 29003, "l": 28999, "n": 4, "o": 28999, "t": "2022-05-27T10:18:00Z", "v": 0.01,
        "vw": 29001}]}, "next_page_token": "MTY0"}))
    .unwrap();
    let bar = bars.bars["BTC/USD"][0].clone_model();
    assert_eq!((bar.open, bar.volume), (decimal("28999"), decimal("0.01")));
    let stock: StockBars = serde_json::from_value(json!({"bars": [{"c": 178.21, "h": 178.26,
        "l": 178.21, "n": 65, "o": 178.26, "t": "2022-01-03T09:00:00Z", "v": 1118,
        "vw": 178.235733}], "next_page_token": null, "symbol": "AAPL"}))
    .unwrap();
    assert_eq!(stock.bars.unwrap()[0].c, decimal("178.21"));
    let clock: WireClock = serde_json::from_value(json!({"timestamp": "2024-01-02T10:00:00-05:00",
        "is_open": true, "next_open": "2024-01-03T09:30:00-05:00",
        "next_close": "2024-01-02T16:00:00-05:00"}))
    .unwrap();
    let clock = clock.into_model();
    assert!(clock.is_open);
    assert_eq!(clock.market, "us_equity");
}

impl super::wire::WireBar {
    fn clone_model(&self) -> crate::broker::model::Bar {
        crate::broker::model::Bar {
            time: self.t,
            open: self.o,
            high: self.h,
            low: self.l,
            close: self.c,
            volume: self.v,
        }
    }
}

#[test]
fn refusals_become_sentences_a_model_can_act_on() {
    let broker = || "alpaca-paper".to_owned();
    assert_eq!(
        refusal(broker(), "insufficient buying power", None).kind(),
        "insufficient_buying_power"
    );
    let position = refusal(
        broker(),
        "insufficient qty available for order (requested: 10, available: 5)",
        Some("AAPL"),
    );
    assert_eq!(
        position,
        BrokerError::InsufficientPosition {
            symbol: "AAPL".into(),
            requested: decimal("10"),
            available: decimal("5"),
        }
    );
    assert_eq!(
        refusal(broker(), "could not find asset \"ZZZZ\"", None).kind(),
        "unknown_symbol"
    );
    assert_eq!(
        refusal(
            broker(),
            "market orders are not allowed when the market is closed",
            None
        )
        .kind(),
        "market_closed"
    );
    let intent = refusal(
        broker(),
        "position_intent is not valid for this order",
        None,
    );
    assert!(!intent.to_string().contains("insufficient"), "{intent}");
    let validation = refusal(broker(), "qty must be > 0", None);
    assert_eq!(validation.kind(), "rejected");
    assert!(
        validation.to_string().contains("qty must be > 0"),
        "{validation}"
    );
}

fn broker(name: &str) -> AlpacaBroker {
    let endpoints = NetworkBroker {
        name: name.into(),
        trading_url: "http://127.0.0.1:9".into(),
        data_url: "http://127.0.0.1:9".into(),
    };
    AlpacaBroker::new(&endpoints, std::time::Duration::from_secs(60)).unwrap()
}

#[test]
fn keys_refused_names_the_environment_and_rate_limits_say_when_to_retry() {
    let paper = broker("alpaca-paper").http.keys_refused().to_string();
    assert!(
        paper.contains("check that the keys belong to the paper environment you chose"),
        "{paper}"
    );
    let live = broker("alpaca").http.keys_refused().to_string();
    assert!(
        live.contains("check that the keys belong to the live environment you chose"),
        "{live}"
    );
    let limited = broker("alpaca-paper").http.error(Failure::Status {
        status: StatusCode::TOO_MANY_REQUESTS,
        code: None,
        reason: "too many requests".into(),
        retry_after_seconds: 7,
    });
    assert_eq!(limited.retry_after_seconds(), Some(7));
    assert!(limited.to_string().contains("retry in 7 s"), "{limited}");
    let down = broker("alpaca-paper").http.error(Failure::Status {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: None,
        reason: "maintenance".into(),
        retry_after_seconds: 60,
    });
    assert_eq!(down.kind(), "unreachable");
}

#[test]
fn the_key_and_secret_are_scrubbed_from_anything_alpaca_sends_back() {
    let credentials = Credentials::new(
        SecretString::from("PKKEY123"),
        SecretString::from("very-secret-value"),
    );
    let scrubbed = Scrubber::new(&credentials)
        .scrub("bad request: APCA-API-KEY-ID=PKKEY123 APCA-API-SECRET-KEY=very-secret-value");
    assert!(!scrubbed.contains("PKKEY123") && !scrubbed.contains("very-secret-value"));
    assert!(scrubbed.contains("[REDACTED]"), "{scrubbed}");
}

#[test]
fn timeouts_leave_room_for_the_look_up_within_the_deadline() {
    let timeouts = Timeouts::within(std::time::Duration::from_secs(60));
    assert_eq!(timeouts.request, std::time::Duration::from_secs(20));
    assert_eq!(timeouts.connect, std::time::Duration::from_secs(5));
    let short = Timeouts::within(std::time::Duration::from_secs(4));
    assert!(short.request * 2 < std::time::Duration::from_secs(4));
    assert!(short.connect <= short.request);
}

#[test]
fn ids_and_symbols_stay_one_path_segment() {
    assert_eq!(path_segment("7b08df51-c1ac"), "7b08df51-c1ac");
    assert_eq!(path_segment("../account"), "..%2Faccount");
    assert_eq!(path_segment("BTC/USD"), "BTC%2FUSD");
    assert_eq!(path_segment(".."), "-");
    assert_eq!(path_segment("BRK.B"), "BRK.B");
}

#[tokio::test]
async fn keys_no_header_can_carry_are_refused_before_anything_is_sent() {
    use crate::broker::Broker;
    let credentials = Credentials::new(SecretString::from("PK\nKEY"), SecretString::from("secret"));
    let error = broker("alpaca-paper")
        .login(&credentials)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "credentials_refused", "{error}");
    assert!(error.to_string().contains("copied whole"), "{error}");
}
