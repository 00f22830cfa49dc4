//! What the paper broker accepts: an order's amount, prices, time in force and legs, checked
//! against its symbol before anything is booked.
//!
//! The rules follow Alpaca's where they differ between brokers: crypto takes gtc, ioc and fok
//! (not day); fractional quantities and notional amounts are for fractionable symbols only,
//! and on equities only for day market or limit orders without legs (notional: market only);
//! bracket and OTO orders take day or gtc; a take-profit must be on the profitable side of
//! the entry and a stop-loss on the other; ioc and fok cannot wait for a closed market.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::calendar::Market;
use super::market::{MIN_FRACTIONAL_NOTIONAL, SymbolSpec};
use super::{ACCOUNT_CURRENCY, PAPER_BROKER};
use crate::broker::model::format_time;
use crate::broker::{BrokerError, OrderAmount, OrderRequest, OrderType, Quote, Side, TimeInForce};

/// The time in force an order gets when the caller names none.
pub fn default_time_in_force(spec: &SymbolSpec) -> TimeInForce {
    match spec.market {
        Market::Crypto => TimeInForce::Gtc,
        Market::UsEquity | Market::NseEquity => TimeInForce::Day,
    }
}

/// Checks `request` for `spec` at `now`, with the market's `quote` (bracket legs are judged
/// against it when the entry has no price of its own). Returns the time in force to use.
pub fn check_order(
    spec: &SymbolSpec,
    request: &OrderRequest,
    quote: &Quote,
    now: DateTime<Utc>,
) -> Result<TimeInForce, BrokerError> {
    let time_in_force = request
        .time_in_force
        .unwrap_or_else(|| default_time_in_force(spec));
    check_time_in_force(spec, time_in_force)?;
    check_prices(
        spec,
        request.order_type,
        request.limit_price,
        request.stop_price,
    )?;
    let has_legs = request.take_profit_price.is_some() || request.stop_loss_price.is_some();
    check_amount(spec, request, time_in_force, has_legs)?;
    if has_legs {
        check_legs(spec, request, time_in_force, quote)?;
    }
    check_market_open(spec, time_in_force, now)?;
    Ok(time_in_force)
}

/// Crypto never closes, so a day order has no day to last; it takes gtc, ioc or fok.
pub fn check_time_in_force(
    spec: &SymbolSpec,
    time_in_force: TimeInForce,
) -> Result<(), BrokerError> {
    if spec.market == Market::Crypto && time_in_force == TimeInForce::Day {
        return Err(BrokerError::NotSupported {
            broker: PAPER_BROKER.to_owned(),
            what: "day orders for crypto".to_owned(),
            advice: "use time_in_force gtc, ioc or fok (gtc is the default for crypto)".to_owned(),
        });
    }
    Ok(())
}

/// The limit and stop prices an order type needs, positive and on the tick.
pub fn check_prices(
    spec: &SymbolSpec,
    order_type: OrderType,
    limit_price: Option<Decimal>,
    stop_price: Option<Decimal>,
) -> Result<(), BrokerError> {
    match (order_type.needs_limit_price(), limit_price) {
        (true, None) => {
            return Err(BrokerError::MissingLimitPrice {
                order_type: order_type.as_str(),
            });
        }
        (false, Some(_)) => return Err(BrokerError::UnexpectedLimitPrice),
        _ => {}
    }
    match (order_type.needs_stop_price(), stop_price) {
        (true, None) => {
            return Err(BrokerError::MissingStopPrice {
                order_type: order_type.as_str(),
            });
        }
        (false, Some(_)) => return Err(BrokerError::UnexpectedStopPrice),
        _ => {}
    }
    for (field, price) in [("limit_price", limit_price), ("stop_price", stop_price)] {
        if let Some(price) = price {
            check_price(spec, field, price)?;
        }
    }
    Ok(())
}

fn check_price(spec: &SymbolSpec, field: &'static str, price: Decimal) -> Result<(), BrokerError> {
    if price <= Decimal::ZERO {
        return Err(BrokerError::NonPositivePrice { field, price });
    }
    if price.normalize().scale() > spec.price_decimals {
        return Err(BrokerError::PricePrecision {
            symbol: spec.symbol.clone(),
            field,
            price,
            max_decimals: spec.price_decimals,
        });
    }
    Ok(())
}

/// A quantity or notional amount the symbol takes for this kind of order.
fn check_amount(
    spec: &SymbolSpec,
    request: &OrderRequest,
    time_in_force: TimeInForce,
    has_legs: bool,
) -> Result<(), BrokerError> {
    match request.amount {
        OrderAmount::Qty(qty) => check_qty(spec, qty, request.order_type, time_in_force, has_legs),
        OrderAmount::Notional(notional) => {
            check_notional(spec, notional, request.order_type, time_in_force, has_legs)
        }
    }
}

/// A quantity on the symbol's step; fractional equities only for simple day market/limit
/// orders.
pub fn check_qty(
    spec: &SymbolSpec,
    qty: Decimal,
    order_type: OrderType,
    time_in_force: TimeInForce,
    has_legs: bool,
) -> Result<(), BrokerError> {
    if qty <= Decimal::ZERO {
        return Err(BrokerError::NonPositiveQuantity { qty });
    }
    let scale = qty.normalize().scale();
    let finest = spec.finest_qty_decimals();
    if scale > finest {
        return Err(BrokerError::QuantityPrecision {
            symbol: spec.symbol.clone(),
            qty,
            max_decimals: finest,
        });
    }
    let fractional = scale > spec.qty_decimals;
    if fractional
        && spec.market != Market::Crypto
        && (has_legs
            || time_in_force != TimeInForce::Day
            || !matches!(order_type, OrderType::Market | OrderType::Limit))
    {
        return Err(BrokerError::NotFractionable {
            symbol: spec.symbol.clone(),
            what: "anything but a day market or limit order without legs".to_owned(),
        });
    }
    let minimum = spec.info().min_qty;
    if qty < minimum {
        return Err(BrokerError::BelowMinimum {
            symbol: spec.symbol.clone(),
            minimum: format!("{minimum} units"),
        });
    }
    Ok(())
}

/// A money amount, for market orders on fractionable symbols.
fn check_notional(
    spec: &SymbolSpec,
    notional: Decimal,
    order_type: OrderType,
    time_in_force: TimeInForce,
    has_legs: bool,
) -> Result<(), BrokerError> {
    if notional <= Decimal::ZERO {
        return Err(BrokerError::NonPositiveNotional { notional });
    }
    if !spec.fractionable() {
        return Err(BrokerError::NotFractionable {
            symbol: spec.symbol.clone(),
            what: "a notional order".to_owned(),
        });
    }
    let equity_needs_day = spec.market != Market::Crypto && time_in_force != TimeInForce::Day;
    if order_type != OrderType::Market || has_legs || equity_needs_day {
        return Err(BrokerError::NotSupported {
            broker: PAPER_BROKER.to_owned(),
            what: "notional amounts on this order".to_owned(),
            advice: "a notional order is a market order without legs (day for equities); pass \
                     qty instead"
                .to_owned(),
        });
    }
    if notional.normalize().scale() > super::ledger::CASH_DECIMALS {
        return Err(BrokerError::PricePrecision {
            symbol: spec.symbol.clone(),
            field: "notional",
            price: notional,
            max_decimals: super::ledger::CASH_DECIMALS,
        });
    }
    if notional < MIN_FRACTIONAL_NOTIONAL {
        return Err(BrokerError::BelowMinimum {
            symbol: spec.symbol.clone(),
            minimum: format!("{MIN_FRACTIONAL_NOTIONAL} {ACCOUNT_CURRENCY}"),
        });
    }
    Ok(())
}

/// Take-profit and stop-loss prices on the right sides of the entry.
fn check_legs(
    spec: &SymbolSpec,
    request: &OrderRequest,
    time_in_force: TimeInForce,
    quote: &Quote,
) -> Result<(), BrokerError> {
    let invalid = |reason: String| Err(BrokerError::InvalidBracket { reason });
    if !matches!(time_in_force, TimeInForce::Day | TimeInForce::Gtc) {
        return invalid("bracket and OTO orders take time_in_force day or gtc".to_owned());
    }
    for (field, price) in [
        ("take_profit_price", request.take_profit_price),
        ("stop_loss_price", request.stop_loss_price),
    ] {
        if let Some(price) = price {
            check_price(spec, field, price)?;
        }
    }
    let market = match request.side {
        Side::Buy => quote.ask,
        Side::Sell => quote.bid,
    };
    let entry = request.limit_price.or(request.stop_price).unwrap_or(market);
    let (profit_above, word) = match request.side {
        Side::Buy => (true, "above"),
        Side::Sell => (false, "below"),
    };
    let other = if profit_above { "below" } else { "above" };
    if let Some(take_profit) = request.take_profit_price
        && ((take_profit > entry) != profit_above || take_profit == entry)
    {
        return invalid(format!(
            "take_profit_price {take_profit} must be {word} the entry price {entry} for a {}",
            request.side.as_str()
        ));
    }
    if let Some(stop_loss) = request.stop_loss_price
        && ((stop_loss < entry) != profit_above || stop_loss == entry)
    {
        return invalid(format!(
            "stop_loss_price {stop_loss} must be {other} the entry price {entry} for a {}",
            request.side.as_str()
        ));
    }
    Ok(())
}

/// ioc and fok need the market open now: they cannot wait for it.
pub fn check_market_open(
    spec: &SymbolSpec,
    time_in_force: TimeInForce,
    now: DateTime<Utc>,
) -> Result<(), BrokerError> {
    if !matches!(time_in_force, TimeInForce::Ioc | TimeInForce::Fok) || spec.market.is_open(now) {
        return Ok(());
    }
    let next = spec
        .market
        .next_open_instant(now)
        .map_or_else(|| "later".to_owned(), |time| format_time(&time));
    Err(BrokerError::MarketClosed {
        broker: PAPER_BROKER.to_owned(),
        market: spec.market.name().to_owned(),
        what: format!("{} orders", time_in_force.as_str()),
        advice: format!(
            "use time_in_force day or gtc to queue it for the open ({next}), or place it then"
        ),
    })
}
