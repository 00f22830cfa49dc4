//! Tests of the paper broker through the [`Broker`] trait, on a hand-moved clock: books,
//! validation and idempotency here, the order lifecycle in `lifecycle_tests`.

use std::sync::Arc;

use chrono::DateTime;
use secrecy::SecretString;

use super::market::test_clock::ManualClock;
use super::market::{DEFAULT_SEED, default_symbols};
use super::*;
use crate::broker::{OrderAmount, OrderStatus, Side};

/// A fixed moment when New York and crypto trade: Monday 2026-01-05 10:00 in New York
/// (15:00 UTC). NSE has closed by then; see [`NSE_OPEN`].
pub(super) const T0: i64 = 1_767_625_200;

/// Monday 2026-01-05 05:00 UTC: NSE open, New York closed.
pub(super) const NSE_OPEN: i64 = 1_767_589_200;

pub(super) fn d(text: &str) -> Decimal {
    text.parse().unwrap()
}

pub(super) fn keys() -> Credentials {
    Credentials::new(SecretString::from("key"), SecretString::from("secret"))
}

pub(super) fn paper_at(unix_seconds: i64) -> (PaperBroker, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::at(unix_seconds));
    (
        PaperBroker::with_clock(PaperConfig::default(), clock.clone()),
        clock,
    )
}

pub(super) fn request(
    symbol: &str,
    side: Side,
    qty: &str,
    limit_price: Option<&str>,
) -> OrderRequest {
    OrderRequest {
        symbol: symbol.to_owned(),
        side,
        amount: OrderAmount::Qty(d(qty)),
        order_type: if limit_price.is_some() {
            OrderType::Limit
        } else {
            OrderType::Market
        },
        time_in_force: None,
        limit_price: limit_price.map(d),
        stop_price: None,
        take_profit_price: None,
        stop_loss_price: None,
        client_order_id: super::super::tools::new_client_order_id(),
    }
}

/// The market the default paper broker trades on, to look prices up independently.
pub(super) fn reference_quote(symbol: &str, unix_seconds: i64) -> Quote {
    let market = PaperMarket::new(DEFAULT_SEED, default_symbols());
    let spec = market.spec(symbol).unwrap().clone();
    market.quote_at(&spec, DateTime::from_timestamp(unix_seconds, 0).unwrap())
}

pub(super) async fn place(
    paper: &mut PaperBroker,
    order: OrderRequest,
) -> Result<Placement, BrokerError> {
    paper.place_order(&keys(), order).await
}

#[test]
fn starting_cash_is_a_hundred_thousand_to_the_cent() {
    assert_eq!(DEFAULT_STARTING_CASH.to_string(), "100000.00");
}

#[tokio::test]
async fn a_buy_and_sell_round_trip_is_right_to_the_cent() {
    let (mut paper, clock) = paper_at(T0);
    let buy = place(&mut paper, request("AAPL", Side::Buy, "10", None))
        .await
        .unwrap();
    let ask = reference_quote("AAPL", T0).ask;
    assert_eq!(buy.order.status, OrderStatus::Filled);
    assert_eq!(buy.order.avg_fill_price, Some(ask));

    clock.advance(90);
    let sell = place(&mut paper, request("AAPL", Side::Sell, "10", None))
        .await
        .unwrap();
    let bid = reference_quote("AAPL", T0 + 90).bid;
    assert_eq!(sell.order.avg_fill_price, Some(bid));

    let account = paper.account(&keys()).await.unwrap();
    let expected = DEFAULT_STARTING_CASH - ask * d("10") + bid * d("10");
    assert_eq!(account.cash, expected);
    assert_eq!(account.cash.scale(), 2);
    assert_eq!(account.equity, account.cash);
    assert!(paper.positions(&keys()).await.unwrap().is_empty());
}

#[tokio::test]
async fn fractional_crypto_costs_whole_cents_and_values_the_position() {
    let (mut paper, _clock) = paper_at(T0);
    place(
        &mut paper,
        request("btc-usd", Side::Buy, "0.12345678", None),
    )
    .await
    .unwrap();
    let quote = reference_quote("BTC-USD", T0);
    let cost = (d("0.12345678") * quote.ask).round_dp(2);

    let account = paper.account(&keys()).await.unwrap();
    assert_eq!(account.cash, DEFAULT_STARTING_CASH - cost);
    assert_eq!(account.cash.scale(), 2);
    let positions = paper.positions(&keys()).await.unwrap();
    let [position] = positions.as_slice() else {
        panic!("one position: {positions:?}")
    };
    assert_eq!(position.symbol, "BTC-USD");
    assert_eq!(
        position.market_value,
        (d("0.12345678") * quote.last).round_dp(2)
    );
    assert_eq!(position.unrealized_pnl, position.market_value - cost);
    assert_eq!(account.equity, account.cash + position.market_value);
}

#[tokio::test]
async fn buying_beyond_the_cash_is_refused_and_changes_nothing() {
    let (mut paper, _clock) = paper_at(T0);
    let error = place(&mut paper, request("BTC-USD", Side::Buy, "2", None))
        .await
        .unwrap_err();
    let BrokerError::InsufficientCash {
        needed, available, ..
    } = &error
    else {
        panic!("unexpected error: {error}");
    };
    assert_eq!(*available, DEFAULT_STARTING_CASH);
    assert!(*needed > *available);
    assert!(error.to_string().contains("reduce qty"));
    assert_eq!(
        paper.account(&keys()).await.unwrap().cash,
        DEFAULT_STARTING_CASH
    );
    assert!(
        paper
            .orders(&keys(), OrderFilter::All)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn selling_more_than_is_held_is_refused() {
    let (mut paper, _clock) = paper_at(T0);
    let nothing_held = place(&mut paper, request("MSFT", Side::Sell, "1", None)).await;
    assert!(matches!(
        nothing_held,
        Err(BrokerError::InsufficientPosition { .. })
    ));

    place(&mut paper, request("MSFT", Side::Buy, "3", None))
        .await
        .unwrap();
    let error = place(&mut paper, request("MSFT", Side::Sell, "4", None))
        .await
        .unwrap_err();
    let expected = BrokerError::InsufficientPosition {
        symbol: "MSFT".into(),
        requested: d("4"),
        available: d("3"),
    };
    assert_eq!(error, expected);
    assert!(error.to_string().contains("short selling is not supported"));
}

#[tokio::test]
async fn a_resting_sell_limit_holds_back_its_quantity() {
    let (mut paper, _clock) = paper_at(T0);
    place(&mut paper, request("NVDA", Side::Buy, "5", None))
        .await
        .unwrap();
    place(
        &mut paper,
        request("NVDA", Side::Sell, "4", Some("100000.00")),
    )
    .await
    .unwrap();
    let error = place(&mut paper, request("NVDA", Side::Sell, "2", None))
        .await
        .unwrap_err();
    assert!(
        matches!(error, BrokerError::InsufficientPosition { available, .. } if available == d("1"))
    );
}

#[tokio::test]
async fn a_buy_limit_rests_until_the_price_crosses_it() {
    // The limit is the lowest ask of the next six hours, so the order must rest until then.
    let ask_at = |second: i64| reference_quote("BTC-USD", T0 + second).ask;
    let (crossing, limit) = (1..6 * 3_600)
        .map(|second| (second, ask_at(second)))
        .min_by_key(|&(second, ask)| (ask, second))
        .unwrap();
    assert!(
        limit < ask_at(0),
        "the market dips below today's opening ask"
    );
    let (mut paper, clock) = paper_at(T0);
    let limit_text = limit.to_string();
    let placed = place(
        &mut paper,
        request("BTC-USD", Side::Buy, "0.5", Some(&limit_text)),
    )
    .await;
    let order_id = placed.unwrap().order.order_id;
    let reserved = (d("0.5") * limit).round_dp(2);
    let account = paper.account(&keys()).await.unwrap();
    assert_eq!(account.buying_power, DEFAULT_STARTING_CASH - reserved);

    clock.advance(crossing - 1);
    let open = paper.orders(&keys(), OrderFilter::Open).await.unwrap();
    assert_eq!(
        open.len(),
        1,
        "still resting one second before the price crosses"
    );

    clock.advance(1);
    let positions = paper.positions(&keys()).await.unwrap();
    assert_eq!(positions[0].qty, d("0.5"));
    let orders = paper.orders(&keys(), OrderFilter::All).await.unwrap();
    let fill_price = reference_quote("BTC-USD", T0 + crossing).ask;
    assert_eq!(
        (orders[0].order_id.as_str(), orders[0].status),
        (order_id.as_str(), OrderStatus::Filled)
    );
    assert_eq!(orders[0].avg_fill_price, Some(fill_price));
    let account = paper.account(&keys()).await.unwrap();
    assert_eq!(
        account.cash,
        DEFAULT_STARTING_CASH - (d("0.5") * fill_price).round_dp(2)
    );
    assert_eq!(account.buying_power, account.cash);
}

#[tokio::test]
async fn a_reused_client_order_id_returns_the_original_order() {
    let (mut paper, clock) = paper_at(T0);
    let mut first = request("AAPL", Side::Buy, "2", None);
    first.client_order_id = "retry-me".into();
    let original = place(&mut paper, first.clone()).await.unwrap();
    assert!(!original.replayed);

    clock.advance(30);
    let replay = place(&mut paper, first.clone()).await.unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.order, original.order);
    let mut different = request("AAPL", Side::Buy, "7", None);
    different.client_order_id = first.client_order_id.clone();
    let refused = place(&mut paper, different).await.unwrap_err();
    assert!(
        matches!(&refused, BrokerError::ClientOrderIdReused { original: summary, .. } if summary.starts_with("paper-1 buy 2 AAPL")),
        "{refused}"
    );
    assert_eq!(
        paper.orders(&keys(), OrderFilter::All).await.unwrap().len(),
        1
    );
    assert_eq!(paper.positions(&keys()).await.unwrap()[0].qty, d("2"));
}

#[tokio::test]
async fn malformed_orders_are_refused_with_advice() {
    let (mut paper, _clock) = paper_at(T0);
    let cases = [
        (
            request("DOGE-USD", Side::Buy, "1", None),
            "unknown symbol DOGE-USD on paper: it trades AAPL",
        ),
        (
            request("AAPL", Side::Buy, "0", None),
            "qty must be positive",
        ),
        (
            request("AAPL", Side::Buy, "-3", None),
            "qty must be positive",
        ),
        (
            request("AAPL", Side::Buy, "1.1234567", None),
            "more decimal places than AAPL allows (6)",
        ),
        (
            request("TCS.NS", Side::Buy, "1.5", None),
            "more decimal places than TCS.NS allows (0)",
        ),
        (
            request("AAPL", Side::Buy, "1", Some("-1")),
            "limit_price must be positive",
        ),
    ];
    for (order, message) in cases {
        let error = place(&mut paper, order).await.unwrap_err();
        assert!(error.to_string().contains(message), "{error}");
    }
    let mut no_limit = request("AAPL", Side::Buy, "1", None);
    no_limit.order_type = OrderType::Limit;
    assert_eq!(
        place(&mut paper, no_limit).await,
        Err(BrokerError::MissingLimitPrice {
            order_type: "limit"
        })
    );
    let mut too_long = request("AAPL", Side::Buy, "1", None);
    too_long.client_order_id = "x".repeat(MAX_CLIENT_ORDER_ID_LEN + 1);
    assert!(matches!(
        place(&mut paper, too_long).await,
        Err(BrokerError::InvalidClientOrderId { .. })
    ));
}

#[tokio::test]
async fn cancelling_releases_the_reservation_once() {
    let (mut paper, _clock) = paper_at(NSE_OPEN);
    let placed = place(&mut paper, request("TCS.NS", Side::Buy, "3", Some("1.00")))
        .await
        .unwrap();
    let order_id = placed.order.order_id;
    assert_eq!(order_id, "paper-1");
    let cancelled = paper.cancel_order(&keys(), &order_id).await.unwrap();
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(
        paper.account(&keys()).await.unwrap().buying_power,
        DEFAULT_STARTING_CASH
    );

    let again = paper.cancel_order(&keys(), &order_id).await.unwrap_err();
    assert_eq!(
        again.to_string(),
        "order paper-1 is cancelled: only open orders can be cancelled"
    );
    let unknown = paper.cancel_order(&keys(), "paper-9").await.unwrap_err();
    assert!(unknown.to_string().contains("call orders to list them"));
}

#[tokio::test]
async fn a_limit_price_off_the_tick_and_a_missing_stop_price_are_refused() {
    let (mut paper, _clock) = paper_at(T0);
    let off_tick = place(&mut paper, request("AAPL", Side::Buy, "1", Some("100.001"))).await;
    assert!(matches!(
        off_tick,
        Err(BrokerError::PricePrecision {
            max_decimals: 2,
            ..
        })
    ));
    let mut stop = request("AAPL", Side::Buy, "1", None);
    stop.order_type = OrderType::Stop;
    let error = place(&mut paper, stop).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "a stop order needs stop_price: pass stop_price, or change type"
    );
}

#[tokio::test]
async fn empty_credentials_are_refused() {
    let (mut paper, _clock) = paper_at(T0);
    let empty = Credentials::new(SecretString::from(""), SecretString::from("secret"));
    assert!(matches!(
        paper.login(&empty).await,
        Err(BrokerError::CredentialsRefused { .. })
    ));
    paper.login(&keys()).await.unwrap();
}

#[tokio::test]
async fn orders_are_found_by_id_and_by_client_order_id() {
    let (mut paper, _clock) = paper_at(T0);
    let mut order = request("MSFT", Side::Buy, "1", None);
    order.client_order_id = "mine-1".into();
    let placed = place(&mut paper, order).await.unwrap().order;
    let by_id = paper
        .order(&keys(), OrderLookup::OrderId(placed.order_id.clone()))
        .await
        .unwrap();
    let by_client = paper
        .order(&keys(), OrderLookup::ClientOrderId("mine-1".into()))
        .await
        .unwrap();
    assert_eq!(by_id, by_client);
    assert_eq!(by_id.status, OrderStatus::Filled);
    assert_eq!(by_id.filled_qty, d("1"));
    assert_eq!(by_id.fills.len(), 1);
    let unknown = paper
        .order(&keys(), OrderLookup::ClientOrderId("nope".into()))
        .await
        .unwrap_err();
    assert_eq!(unknown.kind(), "unknown_order");
}

#[test]
fn average_prices_keep_the_price_scale() {
    assert_eq!(tidy(d("190.1"), 2).to_string(), "190.10");
    assert_eq!(tidy(d("10") / d("3"), 2).to_string(), "3.33333333");
}
