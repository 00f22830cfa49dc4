//! The paper account's books: cash, holdings and orders, kept exact.
//!
//! Every cash movement is a notional — quantity times price — rounded to the cent (banker's
//! rounding) before it touches the balance, so the cash balance is always a whole number of
//! cents. A holding keeps its cost basis (the cash paid for it) rather than an average price,
//! so selling all of it releases exactly what was paid; the average price is derived.
//! Open orders set aside what they may use: a buy limit reserves its notional at the limit
//! price from buying power, a sell reserves its quantity from what can be sold.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};

use crate::broker::model::Fill;
use crate::broker::{BrokerError, Order, OrderFilter, OrderStatus, OrderType, Side};

/// Decimal places of the account currency: cash is kept in whole cents.
pub const CASH_DECIMALS: u32 = 2;

/// A holding in one symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    pub qty: Decimal,
    /// Cash paid for the current quantity, in whole cents.
    pub cost_basis: Decimal,
}

/// The books of one paper account.
#[derive(Debug)]
pub struct Ledger {
    cash: Decimal,
    holdings: BTreeMap<String, Holding>,
    /// Every order of the session, oldest first; an order's id is its position plus one.
    orders: Vec<Order>,
    /// `client_order_id` → index in `orders`.
    by_client_id: HashMap<String, usize>,
}

/// `qty × price` rounded to the cent; `None` past what a decimal can hold.
pub fn notional(qty: Decimal, price: Decimal) -> Option<Decimal> {
    let exact = qty.checked_mul(price)?;
    Some(exact.round_dp_with_strategy(CASH_DECIMALS, RoundingStrategy::MidpointNearestEven))
}

impl Ledger {
    pub fn new(starting_cash: Decimal) -> Self {
        Self {
            cash: starting_cash,
            holdings: BTreeMap::new(),
            orders: Vec::new(),
            by_client_id: HashMap::new(),
        }
    }

    pub fn cash(&self) -> Decimal {
        self.cash
    }

    pub fn holdings(&self) -> &BTreeMap<String, Holding> {
        &self.holdings
    }

    pub fn order_count(&self) -> usize {
        self.orders.len()
    }

    /// Cash not reserved by open buy limit orders.
    pub fn buying_power(&self) -> Decimal {
        let reserved: Decimal = self
            .open_orders()
            .filter(|order| order.side == Side::Buy)
            .filter_map(|order| notional(order.qty?, order.limit_price?))
            .sum();
        self.cash - reserved
    }

    /// Quantity of `symbol` held and not promised to open sell orders.
    pub fn available_to_sell(&self, symbol: &str) -> Decimal {
        let held = self
            .holdings
            .get(symbol)
            .map_or(Decimal::ZERO, |holding| holding.qty);
        let promised: Decimal = self
            .open_orders()
            .filter(|order| order.side == Side::Sell && order.symbol == symbol)
            .filter_map(|order| order.qty)
            .sum();
        held - promised
    }

    /// The order placed earlier with `client_order_id`, if any.
    pub fn by_client_id(&self, client_order_id: &str) -> Option<&Order> {
        self.by_client_id
            .get(client_order_id)
            .map(|&index| &self.orders[index])
    }

    /// Whether the account can take on an order of `qty` at `price` (for a sell, only the
    /// quantity matters).
    pub fn check_funds(
        &self,
        symbol: &str,
        side: Side,
        qty: Decimal,
        price: Decimal,
        currency: &str,
    ) -> Result<(), BrokerError> {
        match side {
            Side::Buy => {
                let needed =
                    notional(qty, price).ok_or(BrokerError::OrderTooLarge { qty, price })?;
                let available = self.buying_power();
                if needed > available {
                    let currency = currency.to_owned();
                    return Err(BrokerError::InsufficientCash {
                        needed,
                        available,
                        currency,
                    });
                }
            }
            Side::Sell => {
                let available = self.available_to_sell(symbol);
                if qty > available {
                    let symbol = symbol.to_owned();
                    return Err(BrokerError::InsufficientPosition {
                        symbol,
                        requested: qty,
                        available,
                    });
                }
            }
        }
        Ok(())
    }

    /// Records a new open order; returns its index. The caller checked the funds.
    pub fn open(&mut self, order: Order) -> usize {
        let index = self.orders.len();
        self.by_client_id
            .insert(order.client_order_id.clone(), index);
        self.orders.push(order);
        index
    }

    /// The order `order_id`, if any.
    pub fn by_order_id(&self, order_id: &str) -> Option<&Order> {
        self.orders.iter().find(|order| order.order_id == order_id)
    }

    pub fn order(&self, index: usize) -> &Order {
        &self.orders[index]
    }

    /// Indices of the open orders, oldest first.
    pub fn open_indices(&self) -> Vec<usize> {
        (0..self.orders.len())
            .filter(|&index| self.orders[index].status == OrderStatus::Open)
            .collect()
    }

    /// Fills the open order at `index` at `price`, moving cash and holdings.
    pub fn fill(&mut self, index: usize, price: Decimal, time: DateTime<Utc>) {
        let order = &mut self.orders[index];
        debug_assert_eq!(order.status, OrderStatus::Open);
        let qty = order.qty.unwrap_or_default();
        // The funds check bounded qty × price for buys and qty by the holding for sells.
        let amount = notional(qty, price).unwrap_or(Decimal::ZERO);
        let holding = self
            .holdings
            .entry(order.symbol.clone())
            .or_insert(Holding {
                qty: Decimal::ZERO,
                cost_basis: Decimal::ZERO,
            });
        match order.side {
            Side::Buy => {
                self.cash -= amount;
                holding.qty += qty;
                holding.cost_basis += amount;
            }
            Side::Sell => {
                self.cash += amount;
                let released = if qty == holding.qty {
                    holding.cost_basis
                } else {
                    (holding.cost_basis * qty / holding.qty).round_dp(CASH_DECIMALS)
                };
                holding.qty -= qty;
                holding.cost_basis -= released;
            }
        }
        if holding.qty.is_zero() {
            self.holdings.remove(&order.symbol);
        }
        order.status = OrderStatus::Filled;
        order.filled_qty = qty;
        order.avg_fill_price = Some(price);
        order.fills.push(Fill { qty, price, time });
        order.filled_at = Some(time);
        order.updated_at = time;
    }

    /// Cancels the open order `order_id`.
    pub fn cancel(&mut self, broker: &str, order_id: &str) -> Result<Order, BrokerError> {
        let unknown = || BrokerError::UnknownOrder {
            broker: broker.to_owned(),
            order_id: order_id.to_owned(),
        };
        let order = self
            .orders
            .iter_mut()
            .find(|order| order.order_id == order_id)
            .ok_or_else(unknown)?;
        if order.status != OrderStatus::Open {
            let status = order.status.as_str();
            return Err(BrokerError::OrderNotOpen {
                order_id: order_id.to_owned(),
                status,
                action: "cancelled",
            });
        }
        order.status = OrderStatus::Cancelled;
        Ok(order.clone())
    }

    pub fn orders(&self, filter: OrderFilter) -> Vec<Order> {
        self.orders
            .iter()
            .filter(|order| filter.admits(order.status))
            .cloned()
            .collect()
    }

    fn open_orders(&self) -> impl Iterator<Item = &Order> {
        self.orders
            .iter()
            .filter(|order| order.status == OrderStatus::Open)
    }
}

/// The price `order` fills at against a market of `bid`/`ask`, if it fills now: market orders
/// always; a buy limit once the ask is at or below its limit, a sell limit once the bid is at
/// or above it — at the market price, which is at least as good as the limit.
pub fn crossing_price(order: &Order, bid: Decimal, ask: Decimal) -> Option<Decimal> {
    let market_price = match order.side {
        Side::Buy => ask,
        Side::Sell => bid,
    };
    match (order.order_type, order.side, order.limit_price) {
        (OrderType::Market, _, _) => Some(market_price),
        (OrderType::Limit, Side::Buy, Some(limit)) => (ask <= limit).then_some(ask),
        (OrderType::Limit, Side::Sell, Some(limit)) => (bid >= limit).then_some(bid),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    fn order(side: Side, qty: &str, limit_price: Option<&str>) -> Order {
        Order {
            order_id: "paper-1".into(),
            client_order_id: "c-1".into(),
            symbol: "BTC-USD".into(),
            side,
            order_type: if limit_price.is_some() {
                OrderType::Limit
            } else {
                OrderType::Market
            },
            time_in_force: crate::broker::TimeInForce::Gtc,
            order_class: crate::broker::model::OrderClass::Simple,
            qty: Some(d(qty)),
            notional: None,
            limit_price: limit_price.map(d),
            stop_price: None,
            status: OrderStatus::Open,
            filled_qty: Decimal::ZERO,
            avg_fill_price: None,
            fills: Vec::new(),
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
            filled_at: None,
            parent_order_id: None,
            legs: Vec::new(),
            replaces: None,
            replaced_by: None,
            status_reason: None,
        }
    }

    #[test]
    fn notional_rounds_to_the_cent_half_to_even() {
        assert_eq!(notional(d("0.001"), d("65000.125")), Some(d("65.00")));
        assert_eq!(notional(d("0.1"), d("650.05")), Some(d("65.00")));
        assert_eq!(notional(d("0.1"), d("650.15")), Some(d("65.02")));
        assert_eq!(notional(d("0.003"), d("65005.00")), Some(d("195.02")));
        assert_eq!(notional(Decimal::MAX, d("2")), None);
    }

    #[test]
    fn partial_sells_release_a_share_of_the_cost_and_full_sells_all_of_it() {
        let mut ledger = Ledger::new(d("1000.00"));
        let buy = ledger.open(order(Side::Buy, "3", None));
        ledger.fill(buy, d("10.01"), DateTime::UNIX_EPOCH);
        let sell = ledger.open(order(Side::Sell, "1", None));
        ledger.fill(sell, d("10.00"), DateTime::UNIX_EPOCH);
        assert_eq!(
            ledger.holdings()["BTC-USD"],
            Holding {
                qty: d("2"),
                cost_basis: d("20.02")
            }
        );
        let sell = ledger.open(order(Side::Sell, "2", None));
        ledger.fill(sell, d("10.00"), DateTime::UNIX_EPOCH);
        assert!(ledger.holdings().is_empty());
        assert_eq!(ledger.cash(), d("999.97"));
    }

    #[test]
    fn open_orders_reserve_cash_and_quantity() {
        let mut ledger = Ledger::new(d("1000.00"));
        let buy = ledger.open(order(Side::Buy, "5", None));
        ledger.fill(buy, d("10.00"), DateTime::UNIX_EPOCH);
        ledger.open(order(Side::Buy, "2", Some("100.00")));
        ledger.open(order(Side::Sell, "3", Some("20.00")));
        assert_eq!(ledger.buying_power(), d("750.00"));
        assert_eq!(ledger.available_to_sell("BTC-USD"), d("2"));
    }

    #[test]
    fn limits_cross_at_the_market_price() {
        let buy = order(Side::Buy, "1", Some("100.00"));
        assert_eq!(crossing_price(&buy, d("99.00"), d("100.01")), None);
        assert_eq!(
            crossing_price(&buy, d("98.00"), d("99.50")),
            Some(d("99.50"))
        );
        let sell = order(Side::Sell, "1", Some("100.00"));
        assert_eq!(crossing_price(&sell, d("99.99"), d("101.00")), None);
        assert_eq!(
            crossing_price(&sell, d("100.20"), d("101.00")),
            Some(d("100.20"))
        );
    }
}
