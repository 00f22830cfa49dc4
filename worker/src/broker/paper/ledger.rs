//! The paper account's books: cash, holdings and every order with its matching state, exact.
//!
//! Every cash movement is a notional — quantity times price — rounded to the cent (banker's
//! rounding) before it touches the balance, so the cash balance is always a whole number of
//! cents. A holding keeps its cost basis (the cash paid for it) rather than an average price,
//! so selling all of it releases exactly what was paid; the average price is derived.
//!
//! Working orders (accepted or open) set aside what they may use: a buy reserves cash (its
//! notional at the worst price it may fill: the limit, the stop, or the ask when it was
//! placed), a sell reserves quantity. The two legs of a bracket sell (or buy back) the same
//! quantity and only one of them can fill, so a leg group reserves once, the larger of its
//! legs. Held legs reserve nothing until their entry fills.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};

use super::calendar::Market;
use crate::broker::model::Fill;
use crate::broker::{BrokerError, Order, OrderFilter, OrderStatus, Side};

/// Decimal places of the account currency: cash is kept in whole cents.
pub const CASH_DECIMALS: u32 = 2;

/// A holding in one symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    pub qty: Decimal,
    /// Cash paid for the current quantity, in whole cents.
    pub cost_basis: Decimal,
}

/// One order and what the matching engine knows about it beyond what clients see.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The order as clients see it (its `legs` are filled in only when it is read).
    pub order: Order,
    pub market: Market,
    /// The first instant it may work (its placement, or its entry's fill for a leg).
    pub active_from: DateTime<Utc>,
    /// Whether it has been checked at its first working instant.
    pub activated: bool,
    /// When it expires: the close of a day order's session.
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether a stop or stop-limit order's stop price has been reached.
    pub triggered: bool,
    /// The last instant it was checked against the market.
    pub last_checked: Option<DateTime<Utc>>,
    /// Cash a working buy sets aside.
    pub reserve_cash: Decimal,
    /// Quantity a working sell sets aside.
    pub reserve_qty: Decimal,
}

impl Entry {
    /// Whether it is working at the market or queued for it (not held, not final).
    pub fn is_working(&self) -> bool {
        matches!(self.order.status, OrderStatus::Accepted | OrderStatus::Open)
    }

    /// The group whose members can fill only one of: a bracket's legs, or the order alone.
    fn reservation_group(&self) -> &str {
        self.order
            .parent_order_id
            .as_deref()
            .unwrap_or(&self.order.order_id)
    }
}

/// The books of one paper account.
#[derive(Debug)]
pub struct Ledger {
    cash: Decimal,
    holdings: BTreeMap<String, Holding>,
    /// Every order of the session, oldest first; an order's id is its position plus one.
    entries: Vec<Entry>,
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
            entries: Vec::new(),
            by_client_id: HashMap::new(),
        }
    }

    pub fn cash(&self) -> Decimal {
        self.cash
    }

    pub fn holdings(&self) -> &BTreeMap<String, Holding> {
        &self.holdings
    }

    pub fn held(&self, symbol: &str) -> Decimal {
        self.holdings
            .get(symbol)
            .map_or(Decimal::ZERO, |holding| holding.qty)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The largest reservation of each group of working orders matching `keep`.
    fn reserved(&self, keep: impl Fn(&Entry) -> Option<Decimal>) -> Decimal {
        let mut groups: HashMap<&str, Decimal> = HashMap::new();
        for entry in self.entries.iter().filter(|entry| entry.is_working()) {
            if let Some(amount) = keep(entry) {
                let slot = groups.entry(entry.reservation_group()).or_default();
                *slot = (*slot).max(amount);
            }
        }
        groups.values().sum()
    }

    /// Cash not set aside for working buy orders.
    pub fn buying_power(&self) -> Decimal {
        self.cash
            - self.reserved(|entry| (entry.order.side == Side::Buy).then_some(entry.reserve_cash))
    }

    /// Quantity of `symbol` held and not promised to working sell orders.
    pub fn available_to_sell(&self, symbol: &str) -> Decimal {
        let promised = self.reserved(|entry| {
            (entry.order.side == Side::Sell && entry.order.symbol == symbol)
                .then_some(entry.reserve_qty)
        });
        self.held(symbol) - promised
    }

    /// Whether the account can take on a buy that sets aside `cash`, or a sell of `qty`.
    pub fn check_funds(
        &self,
        symbol: &str,
        side: Side,
        cash: Decimal,
        qty: Decimal,
        currency: &str,
    ) -> Result<(), BrokerError> {
        match side {
            Side::Buy => {
                let available = self.buying_power();
                if cash > available {
                    return Err(BrokerError::InsufficientCash {
                        needed: cash,
                        available,
                        currency: currency.to_owned(),
                    });
                }
            }
            Side::Sell => {
                let available = self.available_to_sell(symbol);
                if qty > available {
                    return Err(BrokerError::InsufficientPosition {
                        symbol: symbol.to_owned(),
                        requested: qty,
                        available,
                    });
                }
            }
        }
        Ok(())
    }

    /// Records a new order; returns its index. The caller checked the funds.
    pub fn push(&mut self, entry: Entry) -> usize {
        let index = self.entries.len();
        self.by_client_id
            .insert(entry.order.client_order_id.clone(), index);
        self.entries.push(entry);
        index
    }

    pub fn entry(&self, index: usize) -> &Entry {
        &self.entries[index]
    }

    pub fn entry_mut(&mut self, index: usize) -> &mut Entry {
        &mut self.entries[index]
    }

    /// The index of the order `order_id` (`paper-<n>` is at `n − 1`).
    pub fn index_of(&self, order_id: &str) -> Option<usize> {
        let number: usize = order_id.strip_prefix("paper-")?.parse().ok()?;
        let index = number.checked_sub(1)?;
        (self.entries.get(index)?.order.order_id == order_id).then_some(index)
    }

    /// The index of the order placed with `client_order_id`, if any.
    pub fn index_of_client_id(&self, client_order_id: &str) -> Option<usize> {
        self.by_client_id.get(client_order_id).copied()
    }

    /// Indices of the legs of the order at `index` that were not replaced, oldest first.
    pub fn legs_of(&self, index: usize) -> Vec<usize> {
        let id = &self.entries[index].order.order_id;
        (index + 1..self.entries.len())
            .filter(|&leg| {
                let order = &self.entries[leg].order;
                order.parent_order_id.as_ref() == Some(id) && order.status != OrderStatus::Replaced
            })
            .collect()
    }

    /// The order at `index` with its legs, as `order_get` shows it.
    pub fn order_with_legs(&self, index: usize) -> Order {
        let mut order = self.entries[index].order.clone();
        order.legs = self
            .legs_of(index)
            .into_iter()
            .map(|leg| self.entries[leg].order.clone())
            .collect();
        order
    }

    /// Every order matching `filter`, oldest first, legs listed on their own.
    pub fn orders(&self, filter: OrderFilter) -> Vec<Order> {
        self.entries
            .iter()
            .map(|entry| &entry.order)
            .filter(|order| filter.admits(order.status))
            .cloned()
            .collect()
    }

    /// Sets the status of the order at `index`, with a reason when there is one.
    pub fn set_status(
        &mut self,
        index: usize,
        status: OrderStatus,
        reason: Option<&str>,
        time: DateTime<Utc>,
    ) {
        let order = &mut self.entries[index].order;
        order.status = status;
        order.updated_at = time;
        if let Some(reason) = reason {
            order.status_reason = Some(reason.to_owned());
        }
    }

    /// Fills the order at `index` completely: `qty` at `price`, moving cash and holdings.
    /// Refuses (changing nothing) a buy the cash cannot pay for or a sell of more than is
    /// held: a queued order's price at the open may differ from the price it was sized at.
    pub fn fill(
        &mut self,
        index: usize,
        qty: Decimal,
        price: Decimal,
        time: DateTime<Utc>,
    ) -> Result<(), BrokerError> {
        let (symbol, side) = {
            let order = &self.entries[index].order;
            (order.symbol.clone(), order.side)
        };
        let amount = notional(qty, price).ok_or(BrokerError::OrderTooLarge { qty, price })?;
        let holding = self.holdings.entry(symbol.clone()).or_insert(Holding {
            qty: Decimal::ZERO,
            cost_basis: Decimal::ZERO,
        });
        match side {
            Side::Buy => {
                if amount > self.cash {
                    if holding.qty.is_zero() {
                        self.holdings.remove(&symbol);
                    }
                    return Err(BrokerError::InsufficientCash {
                        needed: amount,
                        available: self.cash,
                        currency: String::new(),
                    });
                }
                self.cash -= amount;
                holding.qty += qty;
                holding.cost_basis += amount;
            }
            Side::Sell => {
                if qty > holding.qty {
                    let available = holding.qty;
                    if holding.qty.is_zero() {
                        self.holdings.remove(&symbol);
                    }
                    return Err(BrokerError::InsufficientPosition {
                        symbol,
                        requested: qty,
                        available,
                    });
                }
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
            self.holdings.remove(&symbol);
        }
        let order = &mut self.entries[index].order;
        order.status = OrderStatus::Filled;
        if order.qty.is_none() {
            order.qty = Some(qty);
        }
        order.filled_qty = qty;
        order.avg_fill_price = Some(price);
        order.fills.push(Fill { qty, price, time });
        order.filled_at = Some(time);
        order.updated_at = time;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::model::OrderClass;
    use crate::broker::{OrderType, TimeInForce};

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    fn entry(number: usize, side: Side, qty: &str, reserve: &str, parent: Option<&str>) -> Entry {
        let order = Order {
            order_id: format!("paper-{number}"),
            client_order_id: format!("c-{number}"),
            symbol: "BTC-USD".into(),
            side,
            order_type: OrderType::Limit,
            time_in_force: TimeInForce::Gtc,
            order_class: OrderClass::Simple,
            qty: Some(d(qty)),
            notional: None,
            limit_price: Some(d(reserve)),
            stop_price: None,
            status: OrderStatus::Open,
            filled_qty: Decimal::ZERO,
            avg_fill_price: None,
            fills: Vec::new(),
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
            filled_at: None,
            parent_order_id: parent.map(str::to_owned),
            legs: Vec::new(),
            replaces: None,
            replaced_by: None,
            status_reason: None,
        };
        Entry {
            reserve_cash: notional(d(qty), d(reserve)).unwrap(),
            reserve_qty: d(qty),
            order,
            market: Market::Crypto,
            active_from: DateTime::UNIX_EPOCH,
            activated: true,
            expires_at: None,
            triggered: false,
            last_checked: None,
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
        let buy = ledger.push(entry(1, Side::Buy, "3", "0", None));
        ledger
            .fill(buy, d("3"), d("10.01"), DateTime::UNIX_EPOCH)
            .unwrap();
        let sell = ledger.push(entry(2, Side::Sell, "1", "0", None));
        ledger
            .fill(sell, d("1"), d("10.00"), DateTime::UNIX_EPOCH)
            .unwrap();
        assert_eq!(
            ledger.holdings()["BTC-USD"],
            Holding {
                qty: d("2"),
                cost_basis: d("20.02")
            }
        );
        let sell = ledger.push(entry(3, Side::Sell, "2", "0", None));
        ledger
            .fill(sell, d("2"), d("10.00"), DateTime::UNIX_EPOCH)
            .unwrap();
        assert!(ledger.holdings().is_empty());
        assert_eq!(ledger.cash(), d("999.97"));
        let too_much = ledger.push(entry(4, Side::Sell, "1", "0", None));
        assert!(
            ledger
                .fill(too_much, d("1"), d("10"), DateTime::UNIX_EPOCH)
                .is_err()
        );
        assert!(
            ledger.holdings().is_empty(),
            "a refused fill changes nothing"
        );
    }

    #[test]
    fn working_orders_reserve_cash_and_quantity_once_per_leg_group() {
        let mut ledger = Ledger::new(d("1000.00"));
        let buy = ledger.push(entry(1, Side::Buy, "5", "0", None));
        ledger
            .fill(buy, d("5"), d("10.00"), DateTime::UNIX_EPOCH)
            .unwrap();
        ledger.push(entry(2, Side::Buy, "2", "100.00", None));
        ledger.push(entry(3, Side::Sell, "3", "20.00", None));
        assert_eq!(ledger.buying_power(), d("750.00"));
        assert_eq!(ledger.available_to_sell("BTC-USD"), d("2"));
        // A take-profit and a stop-loss leg of the same entry sell the same 2 units.
        ledger.push(entry(4, Side::Sell, "2", "30.00", Some("paper-9")));
        ledger.push(entry(5, Side::Sell, "2", "5.00", Some("paper-9")));
        assert_eq!(ledger.available_to_sell("BTC-USD"), d("0"));
        ledger.set_status(1, OrderStatus::Cancelled, None, DateTime::UNIX_EPOCH);
        assert_eq!(ledger.buying_power(), d("950.00"));
    }

    #[test]
    fn ids_index_the_books() {
        let mut ledger = Ledger::new(d("1000.00"));
        ledger.push(entry(1, Side::Buy, "1", "1", None));
        ledger.push(entry(2, Side::Sell, "1", "1", Some("paper-1")));
        assert_eq!(ledger.index_of("paper-2"), Some(1));
        assert_eq!(ledger.index_of("paper-3"), None);
        assert_eq!(ledger.index_of("paper-0"), None);
        assert_eq!(ledger.index_of_client_id("c-2"), Some(1));
        assert_eq!(ledger.order_with_legs(0).legs.len(), 1);
    }
}
