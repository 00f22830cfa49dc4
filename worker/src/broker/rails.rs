//! Trading rails inside the worker: the operator's limits on one principal's orders, checked
//! as part of executing each order — never as a separate step a caller could skip.
//!
//! Every check is sized from prices the broker reports, never from a price the caller
//! supplies: an order's estimated notional is its quantity times the worst of the broker's
//! current price on its side (the ask for a buy, the bid for a sell) and any limit or stop price
//! it names — a caller's price can only raise the estimate, never lower it. A notional order's
//! estimate is its amount. The per-order cap, the allowed symbols and read-only are checked
//! here; the daily cap spans every session of the principal, so the supervisor checks it when
//! the worker announces the order ([`super::desk`]).

use bulkhead_protocol::trading::Rails;
use rust_decimal::{Decimal, RoundingStrategy};

use super::{OrderAmount, Quote, Side};

/// Decimal places of a notional estimate: cents, rounded up so a cap is never crossed by
/// rounding.
const ESTIMATE_DECIMALS: u32 = 2;

/// Why the rails refuse an order, in a sentence that names the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RailRefusal {
    #[error(
        "orders are not allowed for you: your operator made this account read-only \
         (cancelling orders still works)"
    )]
    ReadOnly,
    #[error("orders in {symbol} are not allowed for you: your operator allows only {allowed}")]
    SymbolNotAllowed { symbol: String, allowed: String },
    #[error(
        "the order's estimated notional of {estimated} {currency} (at the broker's prices) is \
         over your max_order_notional of {limit} {currency}: reduce the quantity"
    )]
    OrderNotionalTooLarge {
        estimated: Decimal,
        limit: Decimal,
        currency: String,
    },
    #[error("the order's notional could not be estimated: {reason}")]
    Unestimable { reason: String },
}

impl RailRefusal {
    pub fn kind(&self) -> &'static str {
        match self {
            RailRefusal::ReadOnly => "read_only",
            RailRefusal::SymbolNotAllowed { .. } => "symbol_not_allowed",
            RailRefusal::OrderNotionalTooLarge { .. } => "max_order_notional",
            RailRefusal::Unestimable { .. } => "invalid_request",
        }
    }
}

/// Refuses any order when the rails are read-only, and orders in symbols not allowed.
pub fn check_symbol(rails: &Rails, symbol: &str) -> Result<(), RailRefusal> {
    if rails.read_only {
        return Err(RailRefusal::ReadOnly);
    }
    if !rails.allows_symbol(symbol) {
        let allowed = rails.allowed_symbols.clone().unwrap_or_default().join(", ");
        return Err(RailRefusal::SymbolNotAllowed {
            symbol: symbol.trim().to_ascii_uppercase(),
            allowed,
        });
    }
    Ok(())
}

/// Refuses an order whose estimate is over the per-order cap.
pub fn check_order_notional(
    rails: &Rails,
    estimated: Decimal,
    currency: &str,
) -> Result<(), RailRefusal> {
    match rails.max_order_notional {
        Some(limit) if estimated > limit => Err(RailRefusal::OrderNotionalTooLarge {
            estimated,
            limit,
            currency: currency.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// The estimated notional of an order for `amount` on `side`, from the broker's `quote` and
/// the caller's `prices` (limit, stop), which can only raise it.
pub fn estimate_notional(
    side: Side,
    amount: OrderAmount,
    quote: &Quote,
    prices: &[Option<Decimal>],
) -> Result<Decimal, RailRefusal> {
    let qty = match amount {
        OrderAmount::Notional(notional) => return Ok(notional),
        OrderAmount::Qty(qty) => qty,
    };
    let market = match side {
        Side::Buy => quote.ask,
        Side::Sell => quote.bid,
    };
    let price = prices.iter().flatten().copied().fold(market, Decimal::max);
    qty.checked_mul(price)
        .map(|exact| {
            exact.round_dp_with_strategy(ESTIMATE_DECIMALS, RoundingStrategy::AwayFromZero)
        })
        .ok_or_else(|| RailRefusal::Unestimable {
            reason: format!("{qty} at {price} is beyond what a decimal holds"),
        })
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    fn quote() -> Quote {
        Quote {
            symbol: "AAPL".into(),
            bid: d("189.90"),
            ask: d("190.10"),
            last: d("190.00"),
            currency: "USD".into(),
            time: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn estimates_use_the_worst_of_the_broker_price_and_the_callers() {
        let qty = OrderAmount::Qty(d("10"));
        let buy = |prices: &[Option<Decimal>]| estimate_notional(Side::Buy, qty, &quote(), prices);
        assert_eq!(buy(&[]), Ok(d("1901.00")), "a market buy at the ask");
        assert_eq!(
            buy(&[Some(d("1.00"))]),
            Ok(d("1901.00")),
            "a low limit cannot shrink the estimate"
        );
        assert_eq!(buy(&[Some(d("200.00")), None]), Ok(d("2000.00")));
        let sell = estimate_notional(Side::Sell, qty, &quote(), &[]);
        assert_eq!(sell, Ok(d("1899.00")), "a market sell at the bid");
        let notional = estimate_notional(Side::Buy, OrderAmount::Notional(d("50")), &quote(), &[]);
        assert_eq!(notional, Ok(d("50")));
        let fraction = estimate_notional(Side::Buy, OrderAmount::Qty(d("0.001")), &quote(), &[]);
        assert_eq!(fraction, Ok(d("0.20")), "rounded up to the cent");
    }

    #[test]
    fn refusals_name_the_limit() {
        let rails = Rails {
            max_order_notional: Some(d("1000")),
            allowed_symbols: Some(vec!["AAPL".into()]),
            ..Rails::default()
        };
        let refused = check_order_notional(&rails, d("1901.00"), "USD").unwrap_err();
        assert_eq!(
            refused.to_string(),
            "the order's estimated notional of 1901.00 USD (at the broker's prices) is over your \
             max_order_notional of 1000 USD: reduce the quantity"
        );
        assert!(check_order_notional(&rails, d("1000"), "USD").is_ok());
        assert!(check_symbol(&rails, "aapl").is_ok());
        assert_eq!(
            check_symbol(&rails, "msft").unwrap_err().to_string(),
            "orders in MSFT are not allowed for you: your operator allows only AAPL"
        );
        let read_only = Rails {
            read_only: true,
            ..Rails::default()
        };
        assert_eq!(check_symbol(&read_only, "AAPL"), Err(RailRefusal::ReadOnly));
    }
}
