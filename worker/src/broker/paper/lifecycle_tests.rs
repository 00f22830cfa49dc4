//! The order lifecycle of the paper broker on a hand-moved clock: market hours and queueing,
//! time in force, stops, brackets, notional and fractional amounts, replace, cancel all,
//! closing positions, the market clock and the symbol list.

use rust_decimal::Decimal;

use super::tests::{NSE_OPEN, T0, d, keys, paper_at, place, reference_quote, request};
use super::*;
use crate::broker::{CloseAmount, OrderAmount, OrderStatus, Quote, Side};

/// Saturday 2026-01-03 15:00 UTC: equities closed, crypto trading.
const SATURDAY: i64 = 1_767_452_400;
/// Monday 2026-01-05 14:30 UTC: New York's open.
const MONDAY_OPEN: i64 = 1_767_623_400;
/// Monday 2026-01-05 21:00 UTC: New York's close.
const MONDAY_CLOSE: i64 = 1_767_646_800;

/// The first second in `(from, from + horizon]` at which `reached` holds for `symbol`'s quote.
fn first_second(symbol: &str, from: i64, horizon: i64, reached: impl Fn(&Quote) -> bool) -> i64 {
    (from + 1..=from + horizon)
        .find(|&second| reached(&reference_quote(symbol, second)))
        .expect("the market gets there within the horizon")
}

/// The highest ask and lowest bid of `symbol` over `(from, from + horizon]`.
fn extremes(symbol: &str, from: i64, horizon: i64) -> (Decimal, Decimal) {
    let quotes: Vec<Quote> = (from + 1..=from + horizon)
        .map(|second| reference_quote(symbol, second))
        .collect();
    let high_ask = quotes.iter().map(|quote| quote.ask).max().unwrap();
    let low_bid = quotes.iter().map(|quote| quote.bid).min().unwrap();
    (high_ask, low_bid)
}

fn at(seconds: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(seconds, 0).unwrap()
}

async fn order(paper: &mut PaperBroker, order_id: &str) -> Order {
    paper
        .order(&keys(), OrderLookup::OrderId(order_id.to_owned()))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_market_order_outside_hours_is_queued_and_fills_at_the_open() {
    let (mut paper, clock) = paper_at(SATURDAY);
    let placed = place(&mut paper, request("AAPL", Side::Buy, "2", None))
        .await
        .unwrap()
        .order;
    assert_eq!(placed.status, OrderStatus::Accepted);
    assert_eq!(placed.time_in_force, TimeInForce::Day);
    let reserved = d("2") * reference_quote("AAPL", SATURDAY).ask;
    let account = paper.account(&keys()).await.unwrap();
    assert_eq!(account.buying_power, DEFAULT_STARTING_CASH - reserved);
    assert_eq!(account.cash, DEFAULT_STARTING_CASH);

    clock.advance(MONDAY_OPEN - SATURDAY + 3_600);
    let filled = order(&mut paper, &placed.order_id).await;
    assert_eq!(filled.status, OrderStatus::Filled);
    assert_eq!(filled.filled_at, Some(at(MONDAY_OPEN)));
    let open_ask = reference_quote("AAPL", MONDAY_OPEN).ask;
    assert_eq!(filled.avg_fill_price, Some(open_ask));
    let account = paper.account(&keys()).await.unwrap();
    assert_eq!(account.cash, DEFAULT_STARTING_CASH - d("2") * open_ask);
    assert_eq!(account.buying_power, account.cash);
}

#[tokio::test]
async fn ioc_and_fok_never_wait() {
    let (mut paper, _clock) = paper_at(SATURDAY);
    let mut ioc = request("AAPL", Side::Buy, "1", None);
    ioc.time_in_force = Some(TimeInForce::Ioc);
    let closed = place(&mut paper, ioc.clone()).await.unwrap_err();
    assert_eq!(closed.kind(), "market_closed");
    assert!(
        closed
            .to_string()
            .contains("queue it for the open (2026-01-05T14:30:00Z)"),
        "{closed}"
    );

    let (mut paper, _clock) = paper_at(T0);
    let mut far_below = request("AAPL", Side::Buy, "1", Some("1.00"));
    far_below.time_in_force = Some(TimeInForce::Ioc);
    let expired = place(&mut paper, far_below).await.unwrap().order;
    assert_eq!(expired.status, OrderStatus::Expired);
    ioc.time_in_force = Some(TimeInForce::Fok);
    let filled = place(&mut paper, ioc).await.unwrap().order;
    assert_eq!(filled.status, OrderStatus::Filled);
    assert_eq!(
        paper.account(&keys()).await.unwrap().buying_power,
        paper.account(&keys()).await.unwrap().cash,
        "an expired order holds nothing back"
    );
}

#[tokio::test]
async fn a_day_limit_expires_at_the_close_and_a_gtc_limit_does_not() {
    let (mut paper, clock) = paper_at(T0);
    let day = place(&mut paper, request("AAPL", Side::Buy, "3", Some("1.00")))
        .await
        .unwrap()
        .order;
    let mut gtc = request("AAPL", Side::Buy, "2", Some("1.00"));
    gtc.time_in_force = Some(TimeInForce::Gtc);
    let gtc = place(&mut paper, gtc).await.unwrap().order;
    assert_eq!(
        (day.status, gtc.status),
        (OrderStatus::Open, OrderStatus::Open)
    );

    clock.advance(MONDAY_CLOSE - T0 - 1);
    assert_eq!(
        order(&mut paper, &day.order_id).await.status,
        OrderStatus::Open
    );
    clock.advance(2);
    let expired = order(&mut paper, &day.order_id).await;
    assert_eq!(expired.status, OrderStatus::Expired);
    assert_eq!(expired.updated_at, at(MONDAY_CLOSE));
    assert_eq!(
        order(&mut paper, &gtc.order_id).await.status,
        OrderStatus::Open
    );
    let account = paper.account(&keys()).await.unwrap();
    assert_eq!(account.buying_power, DEFAULT_STARTING_CASH - d("2.00"));
}

#[tokio::test]
async fn a_stop_triggers_once_the_market_reaches_it() {
    let horizon = 2 * 3_600;
    let (high_ask, _) = extremes("BTC-USD", T0, horizon);
    let (mut paper, clock) = paper_at(T0);
    let mut stop = request("BTC-USD", Side::Buy, "0.1", None);
    stop.order_type = OrderType::Stop;
    stop.stop_price = Some(high_ask);
    let stop = place(&mut paper, stop).await.unwrap().order;
    assert_eq!(stop.status, OrderStatus::Open);
    let crossing = first_second("BTC-USD", T0, horizon, |quote| quote.ask >= high_ask);

    clock.advance(crossing - T0 - 1);
    assert_eq!(
        order(&mut paper, &stop.order_id).await.status,
        OrderStatus::Open
    );
    clock.advance(1);
    let filled = order(&mut paper, &stop.order_id).await;
    assert_eq!(filled.status, OrderStatus::Filled);
    assert_eq!(
        filled.avg_fill_price,
        Some(reference_quote("BTC-USD", crossing).ask)
    );

    // A sell stop-limit below the market, with a limit below its stop, fills once triggered.
    let later = crossing;
    let (_, low_after) = extremes("BTC-USD", later, horizon);
    let mut stop_limit = request("BTC-USD", Side::Sell, "0.1", Some("1000.00"));
    stop_limit.order_type = OrderType::StopLimit;
    stop_limit.stop_price = Some(low_after);
    let stop_limit = place(&mut paper, stop_limit).await.unwrap().order;
    let dip = first_second("BTC-USD", later, horizon, |quote| quote.bid <= low_after);
    clock.advance(dip - later);
    let sold = order(&mut paper, &stop_limit.order_id).await;
    assert_eq!(sold.status, OrderStatus::Filled);
    assert_eq!(
        sold.avg_fill_price,
        Some(reference_quote("BTC-USD", dip).bid)
    );
    assert!(paper.positions(&keys()).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_bracket_entry_fills_then_one_leg_cancels_the_other() {
    let horizon = 6 * 3_600;
    let entry_quote = reference_quote("BTC-USD", T0);
    let high_bid = (T0 + 1..=T0 + horizon)
        .map(|second| reference_quote("BTC-USD", second).bid)
        .max()
        .unwrap();
    let take_profit = high_bid;
    let stop_loss = (entry_quote.ask * d("0.8")).round_dp(2);
    let (mut paper, clock) = paper_at(T0);
    let mut bracket = request("BTC-USD", Side::Buy, "0.1", None);
    bracket.take_profit_price = Some(take_profit);
    bracket.stop_loss_price = Some(stop_loss);
    let placed = place(&mut paper, bracket).await.unwrap().order;
    assert_eq!(
        placed.order_class,
        crate::broker::model::OrderClass::Bracket
    );
    assert_eq!(placed.status, OrderStatus::Filled);
    let legs: Vec<_> = placed
        .legs
        .iter()
        .map(|leg| (leg.order_type, leg.status))
        .collect();
    assert_eq!(
        legs,
        [
            (OrderType::Limit, OrderStatus::Open),
            (OrderType::Stop, OrderStatus::Open)
        ]
    );
    // Both legs would sell the same 0.1: together they set aside 0.1, not 0.2.
    let more = place(&mut paper, request("BTC-USD", Side::Sell, "0.05", None)).await;
    assert!(
        matches!(more, Err(BrokerError::InsufficientPosition { available, .. }) if available.is_zero())
    );

    let crossing = first_second("BTC-USD", T0, horizon, |quote| quote.bid >= take_profit);
    clock.advance(crossing - T0);
    let done = order(&mut paper, &placed.order_id).await;
    let statuses: Vec<_> = done.legs.iter().map(|leg| leg.status).collect();
    assert_eq!(statuses, [OrderStatus::Filled, OrderStatus::Cancelled]);
    assert_eq!(
        done.legs[1].status_reason.as_deref(),
        Some("the other leg of the bracket filled")
    );
    assert!(paper.positions(&keys()).await.unwrap().is_empty());
    let proceeds = (d("0.1") * reference_quote("BTC-USD", crossing).bid).round_dp(2);
    let cost = (d("0.1") * entry_quote.ask).round_dp(2);
    let account = paper.account(&keys()).await.unwrap();
    assert_eq!(account.cash, DEFAULT_STARTING_CASH - cost + proceeds);
}

#[tokio::test]
async fn a_bracket_whose_entry_is_cancelled_cancels_its_legs() {
    let (mut paper, _clock) = paper_at(T0);
    let mut bracket = request("AAPL", Side::Buy, "1", Some("100.00"));
    bracket.take_profit_price = Some(d("300.00"));
    bracket.stop_loss_price = Some(d("50.00"));
    let placed = place(&mut paper, bracket).await.unwrap().order;
    assert!(
        placed
            .legs
            .iter()
            .all(|leg| leg.status == OrderStatus::Held)
    );
    let cancelled = paper.cancel_order(&keys(), &placed.order_id).await.unwrap();
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert!(
        cancelled
            .legs
            .iter()
            .all(|leg| leg.status == OrderStatus::Cancelled)
    );
    let open = paper.orders(&keys(), OrderFilter::Open).await.unwrap();
    assert!(open.is_empty(), "{open:?}");
}

#[tokio::test]
async fn bracket_prices_must_sit_on_the_right_sides_of_the_entry() {
    let (mut paper, _clock) = paper_at(T0);
    let ask = reference_quote("AAPL", T0).ask;
    let mut wrong = request("AAPL", Side::Buy, "1", None);
    wrong.take_profit_price = Some(ask - d("5"));
    let error = place(&mut paper, wrong.clone()).await.unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("invalid bracket: take_profit_price"),
        "{error}"
    );
    wrong.take_profit_price = None;
    wrong.stop_loss_price = Some(ask + d("5"));
    assert!(matches!(
        place(&mut paper, wrong.clone()).await,
        Err(BrokerError::InvalidBracket { .. })
    ));
    wrong.stop_loss_price = Some(ask - d("5"));
    wrong.time_in_force = Some(TimeInForce::Ioc);
    let error = place(&mut paper, wrong).await.unwrap_err();
    assert!(error.to_string().contains("day or gtc"), "{error}");
}

#[tokio::test]
async fn notional_orders_buy_fractions_worth_the_amount() {
    let (mut paper, _clock) = paper_at(T0);
    let mut notional = request("AAPL", Side::Buy, "1", None);
    notional.amount = OrderAmount::Notional(d("1000.00"));
    let bought = place(&mut paper, notional.clone()).await.unwrap().order;
    let ask = reference_quote("AAPL", T0).ask;
    let qty =
        (d("1000.00") / ask).round_dp_with_strategy(6, rust_decimal::RoundingStrategy::ToZero);
    assert_eq!(bought.qty, Some(qty.normalize()));
    assert_eq!(bought.notional, Some(d("1000.00")));
    let spent = DEFAULT_STARTING_CASH - paper.account(&keys()).await.unwrap().cash;
    assert!(spent <= d("1000.00") && spent > d("999.00"), "{spent}");

    let refusals = [
        ("TCS.NS", d("1000.00"), None, "TCS.NS is not fractionable"),
        ("AAPL", d("0.50"), None, "below the minimum of 1.00 USD"),
        (
            "AAPL",
            d("100.00"),
            Some("150.00"),
            "a notional order is a market order",
        ),
    ];
    for (symbol, amount, limit, message) in refusals {
        let mut order = request(symbol, Side::Buy, "1", limit);
        order.amount = OrderAmount::Notional(amount);
        let error = place(&mut paper, order).await.unwrap_err();
        assert!(error.to_string().contains(message), "{error}");
    }

    let mut crypto = request("ETH-USD", Side::Buy, "1", None);
    crypto.amount = OrderAmount::Notional(d("25.00"));
    let crypto = place(&mut paper, crypto).await.unwrap().order;
    assert_eq!(
        crypto.time_in_force,
        TimeInForce::Gtc,
        "crypto defaults to gtc"
    );
    assert_eq!(crypto.status, OrderStatus::Filled);
}

#[tokio::test]
async fn fractional_shares_are_for_day_market_and_limit_orders_and_crypto_has_no_day() {
    let (mut paper, _clock) = paper_at(T0);
    let half = place(&mut paper, request("AAPL", Side::Buy, "0.5", None))
        .await
        .unwrap()
        .order;
    assert_eq!(half.filled_qty, d("0.5"));
    let mut gtc = request("AAPL", Side::Buy, "0.5", None);
    gtc.time_in_force = Some(TimeInForce::Gtc);
    assert!(matches!(
        place(&mut paper, gtc).await,
        Err(BrokerError::NotFractionable { .. })
    ));
    let mut day_crypto = request("BTC-USD", Side::Buy, "0.001", None);
    day_crypto.time_in_force = Some(TimeInForce::Day);
    let error = place(&mut paper, day_crypto).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("use time_in_force gtc, ioc or fok"),
        "{error}"
    );
    let tiny = place(&mut paper, request("BTC-USD", Side::Buy, "0.00001", None)).await;
    assert!(matches!(tiny, Err(BrokerError::BelowMinimum { .. })));
}

#[tokio::test]
async fn replacing_moves_the_order_and_its_reservation() {
    let (mut paper, _clock) = paper_at(T0);
    let resting = place(
        &mut paper,
        request("BTC-USD", Side::Buy, "0.5", Some("1000.00")),
    )
    .await
    .unwrap()
    .order;
    let change = ReplaceRequest {
        limit_price: Some(d("2000.00")),
        client_order_id: Some("replacement-1".into()),
        ..ReplaceRequest::default()
    };
    let new = paper
        .replace_order(&keys(), &resting.order_id, change.clone())
        .await
        .unwrap();
    assert_eq!(new.replaces.as_deref(), Some(resting.order_id.as_str()));
    assert_eq!(
        (new.status, new.limit_price),
        (OrderStatus::Open, Some(d("2000.00")))
    );
    assert_eq!(new.client_order_id, "replacement-1");
    let old = order(&mut paper, &resting.order_id).await;
    assert_eq!(old.status, OrderStatus::Replaced);
    assert_eq!(old.replaced_by.as_deref(), Some(new.order_id.as_str()));
    let account = paper.account(&keys()).await.unwrap();
    assert_eq!(account.buying_power, DEFAULT_STARTING_CASH - d("1000.00"));
    let again = paper
        .replace_order(&keys(), &resting.order_id, ReplaceRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        again.to_string(),
        format!(
            "order {} is replaced: only open orders can be replaced",
            resting.order_id
        )
    );

    let mut bracket = request("AAPL", Side::Buy, "1", Some("100.00"));
    bracket.take_profit_price = Some(d("300.00"));
    bracket.stop_loss_price = Some(d("50.00"));
    let bracket = place(&mut paper, bracket).await.unwrap().order;
    let entry = paper
        .replace_order(&keys(), &bracket.order_id, ReplaceRequest::default())
        .await
        .unwrap_err();
    assert_eq!(entry.kind(), "not_supported");
    let stop_leg = &bracket.legs[1];
    let moved = ReplaceRequest {
        stop_price: Some(d("60.00")),
        ..ReplaceRequest::default()
    };
    let new_leg = paper
        .replace_order(&keys(), &stop_leg.order_id, moved)
        .await
        .unwrap();
    assert_eq!(new_leg.status, OrderStatus::Held);
    let legs = order(&mut paper, &bracket.order_id).await.legs;
    let stops: Vec<_> = legs.iter().map(|leg| leg.stop_price).collect();
    assert_eq!(stops, [None, Some(d("60.00"))]);
}

#[tokio::test]
async fn cancel_all_cancels_every_open_order_or_one_symbols() {
    let (mut paper, _clock) = paper_at(T0);
    for (symbol, limit) in [
        ("BTC-USD", "1000.00"),
        ("BTC-USD", "1001.00"),
        ("ETH-USD", "10.00"),
    ] {
        place(&mut paper, request(symbol, Side::Buy, "0.01", Some(limit)))
            .await
            .unwrap();
    }
    let filled = place(&mut paper, request("ETH-USD", Side::Buy, "0.01", None))
        .await
        .unwrap()
        .order;
    let eth = paper.cancel_all(&keys(), Some("eth-usd")).await.unwrap();
    assert_eq!(eth.len(), 1);
    assert_eq!(eth[0].status, OrderStatus::Cancelled);
    let rest = paper.cancel_all(&keys(), None).await.unwrap();
    assert_eq!(rest.len(), 2);
    assert!(
        paper
            .orders(&keys(), OrderFilter::Open)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        order(&mut paper, &filled.order_id).await.status,
        OrderStatus::Filled
    );
    assert_eq!(
        paper.account(&keys()).await.unwrap().buying_power,
        paper.account(&keys()).await.unwrap().cash
    );
}

#[tokio::test]
async fn closing_a_position_sells_all_or_part_of_it() {
    let (mut paper, _clock) = paper_at(T0);
    place(&mut paper, request("MSFT", Side::Buy, "10", None))
        .await
        .unwrap();
    let close = |amount, id: &str| CloseRequest {
        symbol: "msft".into(),
        amount,
        client_order_id: id.into(),
    };
    let half = paper
        .close_position(&keys(), close(CloseAmount::Percent(d("50")), "close-1"))
        .await
        .unwrap();
    assert_eq!((half.side, half.filled_qty), (Side::Sell, d("5")));
    let rest = paper
        .close_position(&keys(), close(CloseAmount::All, "close-2"))
        .await
        .unwrap();
    assert_eq!(rest.filled_qty, d("5"));
    assert!(paper.positions(&keys()).await.unwrap().is_empty());
    let none = paper
        .close_position(&keys(), close(CloseAmount::All, "close-3"))
        .await
        .unwrap_err();
    assert_eq!(
        none.to_string(),
        "no position in MSFT on paper: call positions to list them"
    );

    place(&mut paper, request("ETH-USD", Side::Buy, "0.3", None))
        .await
        .unwrap();
    let third = paper
        .close_position(
            &keys(),
            CloseRequest {
                symbol: "ETH-USD".into(),
                amount: CloseAmount::Percent(d("33.3")),
                client_order_id: "close-4".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(third.filled_qty, d("0.0999"));
    let zero = CloseRequest {
        symbol: "ETH-USD".into(),
        amount: CloseAmount::Percent(d("0")),
        client_order_id: "close-5".into(),
    };
    assert!(matches!(
        paper.close_position(&keys(), zero).await,
        Err(BrokerError::OutOfRange { .. })
    ));
}

#[tokio::test]
async fn market_clock_and_symbols_describe_the_markets() {
    let (mut paper, _clock) = paper_at(SATURDAY);
    let clocks = paper.market_clock(None, None).await.unwrap();
    let names: Vec<_> = clocks.iter().map(|clock| clock.market.as_str()).collect();
    assert_eq!(names, ["us_equity", "crypto", "nse_equity"]);
    assert!(!clocks[0].is_open && clocks[1].is_open);
    assert_eq!(clocks[0].next_open, Some(at(MONDAY_OPEN)));
    let by_symbol = paper.market_clock(None, Some("AAPL")).await.unwrap();
    assert_eq!(by_symbol[0].market, "us_equity");
    assert!(paper.market_clock(None, Some("lse")).await.is_err());

    let (mut nse, _clock) = paper_at(NSE_OPEN);
    assert!(nse.market_clock(None, Some("nse_equity")).await.unwrap()[0].is_open);

    let bitcoin = paper.symbols(None, Some("bit")).await.unwrap();
    assert_eq!(bitcoin.len(), 1);
    assert_eq!(bitcoin[0].symbol, "BTC-USD");
    assert!(bitcoin[0].fractionable);
    assert_eq!(bitcoin[0].min_notional, Some(d("1.00")));
    let tcs = &paper.symbols(None, Some("tcs")).await.unwrap()[0];
    assert!(!tcs.fractionable);
    assert_eq!((tcs.qty_increment, tcs.currency.as_str()), (d("1"), "INR"));
    assert_eq!(paper.symbols(None, None).await.unwrap().len(), 11);
}
