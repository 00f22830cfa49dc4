//! The whole order lifecycle at the `Broker` trait, against `paper` and against `alpaca-paper`
//! talking HTTP to the stand-in (the paper engine behind Alpaca's API): every call the tools
//! make — clocks, symbols, bars, notional, stop and bracket orders, look-ups, replacement,
//! cancelling all, closing a position — must come out the same, up to ids, times and prices.

use std::time::Duration;

use bulkhead_protocol::brokers::NetworkBroker;
use bulkhead_tests::alpaca::StandIn;
use bulkhead_worker::broker::alpaca::AlpacaBroker;
use bulkhead_worker::broker::model::{
    BarsRequest, CloseAmount, CloseRequest, MarketClock, Order, OrderAmount, OrderLookup,
    OrderRequest, ReplaceRequest, Timeframe,
};
use bulkhead_worker::broker::paper::{PaperBroker, PaperConfig};
use bulkhead_worker::broker::{Broker, BrokerError, Credentials, OrderType, Side};
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde_json::{Value, json};

const KEY: &str = "PKLIFECYCLE";
const SECRET: &str = "lifecycle-secret";
const SEED: u64 = 11;

fn credentials() -> Credentials {
    Credentials::new(SecretString::from(KEY), SecretString::from(SECRET))
}

fn decimal(text: &str) -> Decimal {
    text.parse().unwrap()
}

/// An order without what legitimately differs: ids, times, fill prices, the pair's spelling.
fn shape(order: &Order) -> Value {
    json!({
        "symbol": order.symbol.replace('/', "-"),
        "side": order.side.as_str(),
        "type": order.order_type.as_str(),
        "time_in_force": order.time_in_force.as_str(),
        "class": format!("{:?}", order.order_class),
        "qty": order.qty.map(|qty| qty.normalize().to_string()),
        "notional": order.notional.map(|notional| notional.normalize().to_string()),
        "status": order.status.as_str(),
        "filled": order.filled_qty > Decimal::ZERO,
        "legs": order.legs.iter().map(shape).collect::<Vec<_>>(),
        "replaces": order.replaces.is_some(),
    })
}

fn outcome<T>(result: Result<T, BrokerError>, shape: impl Fn(&T) -> Value) -> Value {
    match result {
        Ok(value) => shape(&value),
        Err(error) => json!({"error": error.kind()}),
    }
}

fn request(symbol: &str, side: Side, amount: OrderAmount, client_order_id: &str) -> OrderRequest {
    OrderRequest {
        symbol: symbol.into(),
        side,
        amount,
        order_type: OrderType::Market,
        time_in_force: None,
        limit_price: None,
        stop_price: None,
        take_profit_price: None,
        stop_loss_price: None,
        client_order_id: client_order_id.into(),
    }
}

/// Runs one step on both brokers and checks they agree; returns both results' shapes.
macro_rules! both {
    ($paper:expr, $alpaca:expr, $what:literal, |$broker:ident| $call:expr, $shape:expr) => {{
        let paper_outcome = {
            let $broker: &mut dyn Broker = &mut $paper;
            outcome($call.await, $shape)
        };
        let alpaca_outcome = {
            let $broker: &mut dyn Broker = &mut $alpaca;
            outcome($call.await, $shape)
        };
        assert_eq!(
            paper_outcome, alpaca_outcome,
            "{}: paper vs alpaca-paper",
            $what
        );
        paper_outcome
    }};
}

#[tokio::test]
async fn the_order_lifecycle_agrees_between_paper_and_alpaca_paper_on_the_stand_in() {
    let standin = StandIn::start(&[(KEY, SECRET)], Some(SEED));
    let mut paper = PaperBroker::new(PaperConfig {
        seed: SEED,
        ..PaperConfig::default()
    });
    let endpoints = NetworkBroker {
        name: "alpaca-paper".into(),
        trading_url: standin.url(),
        data_url: standin.url(),
    };
    let mut alpaca = AlpacaBroker::new(&endpoints, Duration::from_secs(60)).unwrap();
    let credentials = credentials();
    let creds = &credentials;
    alpaca.login(creds).await.unwrap();

    // Alpaca trades no Indian equities; the two markets both have must agree.
    for market in ["us_equity", "crypto"] {
        both!(
            paper,
            alpaca,
            "a market clock",
            |b| b.market_clock(Some(creds), Some(market)),
            |clocks: &Vec<MarketClock>| {
                json!(
                    clocks
                        .iter()
                        .map(|c| (c.market.clone(), c.is_open, c.next_open.is_some()))
                        .collect::<Vec<_>>()
                )
            }
        );
    }
    both!(
        paper,
        alpaca,
        "symbols",
        |b| b.symbols(Some(creds), Some("BTC")),
        |symbols: &Vec<_>| {
            json!(
                symbols
                    .iter()
                    .map(|s: &bulkhead_worker::broker::model::SymbolInfo| (
                        s.symbol.replace('/', "-"),
                        s.fractionable,
                        s.tradable
                    ))
                    .collect::<Vec<_>>()
            )
        }
    );
    let bars = BarsRequest {
        symbol: "BTC-USD".into(),
        timeframe: Timeframe::OneMinute,
        limit: 5,
        start: None,
        end: None,
    };
    both!(
        paper,
        alpaca,
        "bars",
        |b| b.bars(Some(creds), bars.clone()),
        |bars: &bulkhead_worker::broker::model::Bars| {
            json!({"count": bars.bars.len(), "timeframe": bars.timeframe.as_str(),
               "ordered": bars.bars.windows(2).all(|pair| pair[0].time < pair[1].time)})
        }
    );

    let notional = request(
        "BTC-USD",
        Side::Buy,
        OrderAmount::Notional(decimal("250")),
        "n-1",
    );
    both!(
        paper,
        alpaca,
        "a notional buy",
        |b| b.place_order(creds, notional.clone()),
        |p: &bulkhead_worker::broker::Placement| shape(&p.order)
    );

    let mut resting = request(
        "ETH-USD",
        Side::Buy,
        OrderAmount::Qty(decimal("0.5")),
        "r-1",
    );
    resting.order_type = OrderType::Limit;
    resting.limit_price = Some(decimal("10.00"));
    let placed = both!(
        paper,
        alpaca,
        "a resting limit",
        |b| b.place_order(creds, resting.clone()),
        |p: &bulkhead_worker::broker::Placement| shape(&p.order)
    );
    assert_eq!(placed["status"], "open", "{placed}");

    let replace = ReplaceRequest {
        limit_price: Some(decimal("11.00")),
        client_order_id: Some("r-2".into()),
        ..ReplaceRequest::default()
    };
    let paper_id = paper
        .order(creds, OrderLookup::ClientOrderId("r-1".into()))
        .await
        .unwrap()
        .order_id;
    let alpaca_id = alpaca
        .order(creds, OrderLookup::ClientOrderId("r-1".into()))
        .await
        .unwrap()
        .order_id;
    let replaced_paper = outcome(
        paper.replace_order(creds, &paper_id, replace.clone()).await,
        shape,
    );
    let replaced_alpaca = outcome(
        alpaca
            .replace_order(creds, &alpaca_id, replace.clone())
            .await,
        shape,
    );
    assert_eq!(replaced_paper, replaced_alpaca, "replace");
    assert_eq!(replaced_paper["replaces"], true, "{replaced_paper}");
    both!(
        paper,
        alpaca,
        "the replaced order",
        |b| b.order(creds, OrderLookup::ClientOrderId("r-1".into())),
        shape
    );

    let mut stop = request(
        "BTC-USD",
        Side::Sell,
        OrderAmount::Qty(decimal("0.001")),
        "s-1",
    );
    stop.order_type = OrderType::Stop;
    stop.stop_price = Some(decimal("1.00"));
    both!(
        paper,
        alpaca,
        "a stop sell",
        |b| b.place_order(creds, stop.clone()),
        |p: &bulkhead_worker::broker::Placement| shape(&p.order)
    );

    let quote = paper.quote(None, "BTC-USD").await.unwrap();
    let mut bracket = request(
        "BTC-USD",
        Side::Buy,
        OrderAmount::Qty(decimal("0.01")),
        "b-1",
    );
    bracket.take_profit_price = Some((quote.ask * decimal("1.10")).round_dp(2));
    bracket.stop_loss_price = Some((quote.bid * decimal("0.90")).round_dp(2));
    let entry = both!(
        paper,
        alpaca,
        "a bracket",
        |b| b.place_order(creds, bracket.clone()),
        |p: &bulkhead_worker::broker::Placement| shape(&p.order)
    );
    assert_eq!(entry["legs"].as_array().map(Vec::len), Some(2), "{entry}");
    both!(
        paper,
        alpaca,
        "the bracket by client id",
        |b| b.order(creds, OrderLookup::ClientOrderId("b-1".into())),
        shape
    );

    both!(
        paper,
        alpaca,
        "cancel ETH orders",
        |b| b.cancel_all(creds, Some("ETH-USD")),
        |orders: &Vec<Order>| { json!(orders.iter().map(shape).collect::<Vec<_>>()) }
    );
    both!(
        paper,
        alpaca,
        "cancel everything",
        |b| b.cancel_all(creds, None),
        |orders: &Vec<Order>| { json!(orders.len()) }
    );
    let half = CloseRequest {
        symbol: "BTC-USD".into(),
        amount: CloseAmount::Percent(decimal("50")),
        client_order_id: "c-1".into(),
    };
    both!(
        paper,
        alpaca,
        "close half",
        |b| b.close_position(creds, half.clone()),
        shape
    );
    let none = CloseRequest {
        symbol: "SOL-USD".into(),
        amount: CloseAmount::All,
        client_order_id: "c-2".into(),
    };
    both!(
        paper,
        alpaca,
        "close a position never held",
        |b| b.close_position(creds, none.clone()),
        shape
    );
    both!(
        paper,
        alpaca,
        "an unknown client id",
        |b| b.order(creds, OrderLookup::ClientOrderId("nope".into())),
        shape
    );
    both!(
        paper,
        alpaca,
        "positions",
        |b| b.positions(creds),
        |positions: &Vec<bulkhead_worker::broker::Position>| {
            json!(
                positions
                    .iter()
                    .map(|p| (p.symbol.replace('/', "-"), p.qty.normalize().to_string()))
                    .collect::<Vec<_>>()
            )
        }
    );
}

/// Below the tools (which look a caller's id up first), Alpaca's own refusal of a reused id
/// (422) is what keeps an order single: the adapter turns it into the original order or a
/// refusal, exactly as paper does.
#[tokio::test]
async fn alpacas_duplicate_id_refusal_replays_or_refuses_like_paper() {
    let standin = StandIn::start(&[(KEY, SECRET)], Some(SEED));
    let mut paper = PaperBroker::new(PaperConfig {
        seed: SEED,
        ..PaperConfig::default()
    });
    let endpoints = NetworkBroker {
        name: "alpaca-paper".into(),
        trading_url: standin.url(),
        data_url: standin.url(),
    };
    let mut alpaca = AlpacaBroker::new(&endpoints, Duration::from_secs(60)).unwrap();
    let credentials = credentials();
    let creds = &credentials;
    let order = request(
        "SOL-USD",
        Side::Buy,
        OrderAmount::Qty(decimal("2")),
        "dup-1",
    );
    let replayed = |p: &bulkhead_worker::broker::Placement| json!([shape(&p.order), p.replayed]);
    both!(
        paper,
        alpaca,
        "the first",
        |b| b.place_order(creds, order.clone()),
        replayed
    );
    let again = both!(
        paper,
        alpaca,
        "the same again",
        |b| b.place_order(creds, order.clone()),
        replayed
    );
    assert_eq!(again[1], true, "{again}");
    let more = OrderRequest {
        amount: OrderAmount::Qty(decimal("3")),
        ..order.clone()
    };
    let refused = both!(
        paper,
        alpaca,
        "more under the same id",
        |b| b.place_order(creds, more.clone()),
        replayed
    );
    assert_eq!(refused["error"], "client_order_id_reused", "{refused}");
}
