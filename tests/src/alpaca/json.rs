//! The broker model in Alpaca's JSON, as its OpenAPI documents spell it: what the stand-in
//! answers. The inverse of the worker's `broker::alpaca::wire`, written separately so that a
//! mistake in one is caught by the other.

use bulkhead_worker::broker::model::{
    Account, Bar, MarketClock, Order, OrderClass, OrderStatus, Position, Quote, SymbolInfo,
};
use bulkhead_worker::broker::{OrderType, Side};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

/// A time as Alpaca writes it: RFC 3339 with nanoseconds, in UTC.
pub fn time(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// A paper symbol in Alpaca's spelling: the pair `BTC-USD` is `BTC/USD`.
pub fn alpaca_symbol(paper: &str) -> String {
    match paper.split_once('-') {
        Some((base, quote)) => format!("{base}/{quote}"),
        None => paper.to_owned(),
    }
}

/// An Alpaca symbol in the paper engine's spelling.
pub fn paper_symbol(alpaca: &str) -> String {
    match alpaca.split_once('/') {
        Some((base, quote)) => format!("{base}-{quote}"),
        None => alpaca.to_owned(),
    }
}

pub fn is_crypto(alpaca: &str) -> bool {
    alpaca.contains('/')
}

fn asset_class(symbol: &str) -> &'static str {
    if is_crypto(symbol) {
        "crypto"
    } else {
        "us_equity"
    }
}

pub fn account(account: &Account, id: &str) -> Value {
    json!({
        "id": id,
        "account_number": "PA0000STANDIN",
        "status": "ACTIVE",
        "crypto_status": "ACTIVE",
        "currency": account.currency,
        "cash": account.cash.to_string(),
        "equity": account.equity.to_string(),
        "portfolio_value": account.equity.to_string(),
        "buying_power": account.buying_power.to_string(),
        "non_marginable_buying_power": account.buying_power.to_string(),
        "pattern_day_trader": false,
        "trading_blocked": false,
        "transfers_blocked": false,
        "account_blocked": false,
        "trade_suspended_by_user": false,
        "shorting_enabled": false,
        "multiplier": "1",
        "created_at": "2026-01-01T00:00:00Z",
    })
}

pub fn position(position: &Position) -> Value {
    let symbol = alpaca_symbol(&position.symbol);
    json!({
        "asset_id": format!("asset-{symbol}"),
        "symbol": symbol,
        "exchange": if is_crypto(&symbol) { "" } else { "NASDAQ" },
        "asset_class": asset_class(&symbol),
        "asset_marginable": false,
        "avg_entry_price": position.avg_price.to_string(),
        "qty": position.qty.to_string(),
        "qty_available": position.qty.to_string(),
        "side": if position.qty.is_sign_negative() { "short" } else { "long" },
        "market_value": position.market_value.to_string(),
        "cost_basis": (position.market_value - position.unrealized_pnl).to_string(),
        "unrealized_pl": position.unrealized_pnl.to_string(),
        "unrealized_plpc": "0",
        "unrealized_intraday_pl": position.unrealized_pnl.to_string(),
        "unrealized_intraday_plpc": "0",
        "current_price": position.current_price.to_string(),
        "lastday_price": position.current_price.to_string(),
        "change_today": "0",
    })
}

fn status(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Pending => "pending_new",
        OrderStatus::Accepted => "accepted",
        OrderStatus::Open => "new",
        OrderStatus::Held => "held",
        OrderStatus::PartiallyFilled => "partially_filled",
        OrderStatus::Filled => "filled",
        OrderStatus::PendingCancel => "pending_cancel",
        OrderStatus::PendingReplace => "pending_replace",
        OrderStatus::Cancelled => "canceled",
        OrderStatus::Expired => "expired",
        OrderStatus::Rejected => "rejected",
        OrderStatus::Replaced => "replaced",
    }
}

fn order_class(class: OrderClass) -> &'static str {
    match class {
        OrderClass::Simple => "simple",
        OrderClass::Bracket => "bracket",
        OrderClass::Oto => "oto",
    }
}

fn side(side: Side) -> &'static str {
    match side {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

fn order_type(order_type: OrderType) -> &'static str {
    match order_type {
        OrderType::Market => "market",
        OrderType::Limit => "limit",
        OrderType::Stop => "stop",
        OrderType::StopLimit => "stop_limit",
    }
}

/// An order, with its legs when `nested` (Alpaca leaves them out otherwise).
pub fn order(order: &Order, nested: bool) -> Value {
    let symbol = alpaca_symbol(&order.symbol);
    let decimal = |value: Option<rust_decimal::Decimal>| value.map(|value| value.to_string());
    let legs: Option<Vec<Value>> = (nested && !order.legs.is_empty()).then(|| {
        order
            .legs
            .iter()
            .map(|leg| self::order(leg, true))
            .collect()
    });
    json!({
        "id": order.order_id,
        "client_order_id": order.client_order_id,
        "created_at": time(&order.created_at),
        "updated_at": time(&order.updated_at),
        "submitted_at": time(&order.created_at),
        "filled_at": order.filled_at.as_ref().map(time),
        "expired_at": null,
        "canceled_at": null,
        "failed_at": null,
        "replaced_at": null,
        "replaced_by": order.replaced_by,
        "replaces": order.replaces,
        "asset_id": format!("asset-{symbol}"),
        "symbol": symbol,
        "asset_class": asset_class(&symbol),
        "notional": decimal(order.notional),
        "qty": decimal(order.qty),
        "filled_qty": order.filled_qty.to_string(),
        "filled_avg_price": decimal(order.avg_fill_price),
        "order_class": order_class(order.order_class),
        "order_type": order_type(order.order_type),
        "type": order_type(order.order_type),
        "side": side(order.side),
        "time_in_force": order.time_in_force.as_str(),
        "limit_price": decimal(order.limit_price),
        "stop_price": decimal(order.stop_price),
        "status": status(order.status),
        "extended_hours": false,
        "legs": legs,
        "trail_percent": null,
        "trail_price": null,
        "hwm": null,
    })
}

/// A quote as `bp`/`ap` numbers (market data prices are JSON numbers, not strings).
pub fn quote(quote: &Quote) -> Value {
    json!({
        "t": time(&quote.time),
        "bp": number(quote.bid),
        "bs": 1,
        "bx": "V",
        "ap": number(quote.ask),
        "as": 1,
        "ax": "V",
        "c": ["R"],
        "z": "C",
    })
}

pub fn bar(bar: &Bar) -> Value {
    json!({
        "t": time(&bar.time),
        "o": number(bar.open),
        "h": number(bar.high),
        "l": number(bar.low),
        "c": number(bar.close),
        "v": number(bar.volume),
        "n": 1,
        "vw": number(bar.close),
    })
}

pub fn clock(clock: &MarketClock) -> Value {
    json!({
        "timestamp": time(&clock.time),
        "is_open": clock.is_open,
        "next_open": clock.next_open.as_ref().map(time),
        "next_close": clock.next_close.as_ref().map(time),
    })
}

pub fn asset(symbol: &SymbolInfo) -> Value {
    let alpaca = alpaca_symbol(&symbol.symbol);
    json!({
        "id": format!("asset-{alpaca}"),
        "class": asset_class(&alpaca),
        "exchange": if is_crypto(&alpaca) { "CRYPTO" } else { "NASDAQ" },
        "symbol": alpaca,
        "name": symbol.name,
        "status": "active",
        "tradable": symbol.tradable,
        "marginable": false,
        "shortable": false,
        "easy_to_borrow": false,
        "fractionable": symbol.fractionable,
        "min_order_size": symbol.min_qty.to_string(),
        "min_trade_increment": symbol.qty_increment.to_string(),
        "price_increment": symbol.price_increment.to_string(),
        "attributes": [],
    })
}

/// A decimal as a JSON number, the way market data sends prices.
fn number(value: rust_decimal::Decimal) -> Value {
    serde_json::from_str(&value.normalize().to_string()).unwrap_or(Value::Null)
}
