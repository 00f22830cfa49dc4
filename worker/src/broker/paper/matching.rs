//! The paper matching engine: when working orders trigger, fill, expire, and what their fills
//! do to bracket legs.
//!
//! The paper broker has no background task. Each time the session touches it, every working
//! order is brought up to date ([`settle`]) by checking it against the market at two
//! instants: its first working instant (when it was placed, or the next open if it was
//! queued while its market was closed), and the latest instant up to now at which it was
//! still working and its market open (now; or, after its market closed or a day order
//! expired, the close). So a queued market order fills at the opening price, and a limit
//! order resting through a session is checked at least at that session's close — but price
//! moves between touches are not replayed.
//!
//! At an instant with bid and ask: a market order fills at once (buys at the ask, sells at the
//! bid). A stop triggers once the ask reaches its stop (buy) or the bid falls to it (sell) and
//! then fills as a market order; a stop-limit becomes a limit order at its limit. A buy limit
//! fills at the ask once the ask is at or below its limit, a sell limit at the bid once the
//! bid is at or above it. Fills are complete (no partial fills). A notional order's quantity
//! is the amount divided by the fill price, rounded down to the symbol's finest step. An IOC or
//! FOK order not filled at its first check expires. When an entry fills, its legs start
//! working; when a leg fills, its sibling is cancelled; when an entry ends unfilled, its legs
//! are cancelled.

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};

use super::ledger::Ledger;
use super::market::PaperMarket;
use crate::broker::{BrokerError, Order, OrderStatus, OrderType, Side, TimeInForce};

/// Brings every working order up to `now`, oldest first (so an entry fills before its legs
/// are looked at).
pub fn settle(market: &PaperMarket, ledger: &mut Ledger, now: DateTime<Utc>) {
    settle_from(market, ledger, 0, now);
}

/// [`settle`] for the orders from `first` on: a new order and its legs.
pub fn settle_from(market: &PaperMarket, ledger: &mut Ledger, first: usize, now: DateTime<Utc>) {
    for index in first..ledger.len() {
        if ledger.entry(index).is_working() {
            step(market, ledger, index, now);
        }
    }
}

/// Brings the working order at `index` up to `now`.
fn step(market: &PaperMarket, ledger: &mut Ledger, index: usize, now: DateTime<Utc>) {
    let entry = ledger.entry(index);
    let calendar = entry.market;
    let cutoff = entry.expires_at.map_or(now, |expiry| expiry.min(now));
    if !entry.activated {
        let first = calendar.next_open_instant(entry.active_from);
        match first {
            Some(first) if first <= cutoff => {
                let entry = ledger.entry_mut(index);
                entry.activated = true;
                entry.order.status = OrderStatus::Open;
                entry.order.updated_at = first;
                check_at(market, ledger, index, first);
            }
            _ => {
                expire_if_due(ledger, index, now);
                return;
            }
        }
    }
    let entry = ledger.entry(index);
    if entry.is_working()
        && let Some(last) = calendar.last_open_instant(entry.active_from, cutoff)
        && entry.last_checked.is_none_or(|checked| last > checked)
    {
        check_at(market, ledger, index, last);
    }
    expire_if_due(ledger, index, now);
}

/// A day order past its session's close expires (and its held legs are cancelled).
fn expire_if_due(ledger: &mut Ledger, index: usize, now: DateTime<Utc>) {
    let entry = ledger.entry(index);
    if entry.is_working()
        && let Some(expiry) = entry.expires_at
        && expiry <= now
    {
        let reason = "the trading day of this day order ended";
        ledger.set_status(index, OrderStatus::Expired, Some(reason), expiry);
        cancel_held_legs(ledger, index, expiry);
    }
}

/// Checks the order at `index` against the market at `time`, filling it if it crosses.
pub fn check_at(market: &PaperMarket, ledger: &mut Ledger, index: usize, time: DateTime<Utc>) {
    let Some(spec) = market.spec(&ledger.entry(index).order.symbol).cloned() else {
        return;
    };
    let quote = market.quote_at(&spec, time);
    let entry = ledger.entry_mut(index);
    entry.last_checked = Some(time);
    entry.triggered = entry.triggered || stop_reached(&entry.order, quote.bid, quote.ask);
    let price = crossing_price(&entry.order, entry.triggered, quote.bid, quote.ask);
    let Some(price) = price else {
        if matches!(
            entry.order.time_in_force,
            TimeInForce::Ioc | TimeInForce::Fok
        ) {
            let reason = "it could not fill at once";
            ledger.set_status(index, OrderStatus::Expired, Some(reason), time);
            cancel_held_legs(ledger, index, time);
        }
        return;
    };
    let order = &ledger.entry(index).order;
    let qty = match (order.qty, order.notional) {
        (Some(qty), _) => qty,
        (None, Some(amount)) => (amount / price)
            .round_dp_with_strategy(spec.finest_qty_decimals(), RoundingStrategy::ToZero)
            .normalize(),
        (None, None) => Decimal::ZERO,
    };
    if qty <= Decimal::ZERO {
        let reason = "the notional amount buys less than the smallest quantity at this price";
        reject(ledger, index, reason, time);
        return;
    }
    match ledger.fill(index, qty, price, time) {
        Ok(()) => on_filled(ledger, index, time),
        Err(error) => reject(ledger, index, &fill_refusal(&error), time),
    }
}

/// Why a fill the books could not take was rejected, in a sentence.
fn fill_refusal(error: &BrokerError) -> String {
    match error {
        BrokerError::InsufficientCash {
            needed, available, ..
        } => format!("at the fill it needed {needed} but the cash was {available}"),
        BrokerError::InsufficientPosition {
            requested,
            available,
            ..
        } => format!("at the fill it sold {requested} but {available} was held"),
        other => other.to_string(),
    }
}

fn reject(ledger: &mut Ledger, index: usize, reason: &str, time: DateTime<Utc>) {
    ledger.set_status(index, OrderStatus::Rejected, Some(reason), time);
    cancel_held_legs(ledger, index, time);
}

/// An entry filled: its legs start working. A leg filled: its siblings are cancelled.
fn on_filled(ledger: &mut Ledger, index: usize, time: DateTime<Utc>) {
    for leg in ledger.legs_of(index) {
        let entry = ledger.entry_mut(leg);
        if entry.order.status == OrderStatus::Held {
            entry.order.status = OrderStatus::Open;
            entry.order.updated_at = time;
            entry.active_from = time;
        }
    }
    let Some(parent) = ledger.entry(index).order.parent_order_id.clone() else {
        return;
    };
    let Some(parent) = ledger.index_of(&parent) else {
        return;
    };
    for sibling in ledger.legs_of(parent) {
        if sibling != index && ledger.entry(sibling).order.is_open() {
            let reason = "the other leg of the bracket filled";
            ledger.set_status(sibling, OrderStatus::Cancelled, Some(reason), time);
        }
    }
}

/// An entry ended without filling: its legs will never work.
pub fn cancel_held_legs(ledger: &mut Ledger, index: usize, time: DateTime<Utc>) {
    for leg in ledger.legs_of(index) {
        if ledger.entry(leg).order.status == OrderStatus::Held {
            let reason = "its entry order did not fill";
            ledger.set_status(leg, OrderStatus::Cancelled, Some(reason), time);
        }
    }
}

/// Whether a stop or stop-limit order's stop price is reached at `bid`/`ask`.
fn stop_reached(order: &Order, bid: Decimal, ask: Decimal) -> bool {
    let Some(stop) = order.stop_price else {
        return false;
    };
    match order.side {
        Side::Buy => ask >= stop,
        Side::Sell => bid <= stop,
    }
}

/// The price `order` fills at against a market of `bid`/`ask`, if it fills now; `triggered`
/// says whether its stop has been reached. Limits fill at the market price, which is at least
/// as good as the limit.
pub fn crossing_price(
    order: &Order,
    triggered: bool,
    bid: Decimal,
    ask: Decimal,
) -> Option<Decimal> {
    let market_price = match order.side {
        Side::Buy => ask,
        Side::Sell => bid,
    };
    let limit_crossed = |limit: Decimal| match order.side {
        Side::Buy => (ask <= limit).then_some(ask),
        Side::Sell => (bid >= limit).then_some(bid),
    };
    match order.order_type {
        OrderType::Market => Some(market_price),
        OrderType::Stop => triggered.then_some(market_price),
        OrderType::Limit => order.limit_price.and_then(limit_crossed),
        OrderType::StopLimit if triggered => order.limit_price.and_then(limit_crossed),
        OrderType::StopLimit => None,
    }
}
