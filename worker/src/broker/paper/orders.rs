//! What the paper broker does with order requests: place (with legs), replace, cancel, cancel
//! all, close a position. Every operation first brings the books up to now, checks the
//! request ([`super::validate`]) and the funds, books it, then lets the matching engine look at
//! the new order at once ([`super::matching::settle_from`]).

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};

use super::ledger::{Entry, notional};
use super::market::SymbolSpec;
use super::matching::{cancel_held_legs, settle_from};
use super::validate::{
    check_market_open, check_order, check_prices, check_qty, check_time_in_force,
};
use super::{ACCOUNT_CURRENCY, MAX_CLIENT_ORDER_ID_LEN, MAX_ORDERS_PER_SESSION, PaperBroker};
use crate::broker::model::OrderClass;
use crate::broker::{
    BrokerError, CloseAmount, CloseRequest, Order, OrderAmount, OrderRequest, OrderStatus,
    OrderType, Placement, Quote, ReplaceRequest, Side, TimeInForce,
};

/// Percentages `position_close` takes: above 0, at most 100.
const MAX_CLOSE_PERCENT: Decimal = Decimal::ONE_HUNDRED;

impl PaperBroker {
    pub(super) fn place_now(&mut self, request: OrderRequest) -> Result<Placement, BrokerError> {
        let now = self.settle();
        check_client_order_id(&request.client_order_id)?;
        if let Some(index) = self.ledger.index_of_client_id(&request.client_order_id) {
            return replay(&self.ledger.order_with_legs(index), &request);
        }
        if self.ledger.len() + 3 > MAX_ORDERS_PER_SESSION {
            return Err(BrokerError::TooManyOrders {
                broker: self.name.clone(),
                max: MAX_ORDERS_PER_SESSION,
            });
        }
        let spec = self.spec(&request.symbol)?.clone();
        let quote = self.market.quote_at(&spec, now);
        let time_in_force = check_order(&spec, &request, &quote, now)?;
        let (cash, qty) = reservation(&spec, request.side, request.amount, &request, &quote)?;
        self.ledger
            .check_funds(&spec.symbol, request.side, cash, qty, ACCOUNT_CURRENCY)?;
        let number = self.ledger.len() + 1;
        let order = self.new_order(number, &spec, &request, time_in_force, now);
        let parent = self.ledger.push(Entry {
            expires_at: expiry(&spec, time_in_force, now),
            reserve_cash: cash,
            reserve_qty: qty,
            ..fresh_entry(order, &spec, now)
        });
        self.push_legs(parent, &spec, &request, now);
        settle_from(&self.market, &mut self.ledger, parent, now);
        Ok(Placement {
            order: self.ledger.order_with_legs(parent),
            replayed: false,
            note: None,
        })
    }

    fn new_order(
        &self,
        number: usize,
        spec: &SymbolSpec,
        request: &OrderRequest,
        time_in_force: TimeInForce,
        now: DateTime<Utc>,
    ) -> Order {
        let order_class = match (request.take_profit_price, request.stop_loss_price) {
            (Some(_), Some(_)) => OrderClass::Bracket,
            (Some(_), None) | (None, Some(_)) => OrderClass::Oto,
            (None, None) => OrderClass::Simple,
        };
        let status = if spec.market.is_open(now) {
            OrderStatus::Open
        } else {
            OrderStatus::Accepted
        };
        Order {
            order_id: format!("{}-{number}", super::PAPER_BROKER),
            client_order_id: request.client_order_id.clone(),
            symbol: spec.symbol.clone(),
            side: request.side,
            order_type: request.order_type,
            time_in_force,
            order_class,
            qty: request.amount.qty().map(|qty| qty.normalize()),
            notional: request.amount.notional(),
            limit_price: request.limit_price,
            stop_price: request.stop_price,
            status,
            filled_qty: Decimal::ZERO,
            avg_fill_price: None,
            fills: Vec::new(),
            created_at: now,
            updated_at: now,
            filled_at: None,
            parent_order_id: None,
            legs: Vec::new(),
            replaces: None,
            replaced_by: None,
            status_reason: None,
        }
    }

    /// Books a bracket's or OTO's legs, held until the entry at `parent` fills.
    fn push_legs(
        &mut self,
        parent: usize,
        spec: &SymbolSpec,
        request: &OrderRequest,
        now: DateTime<Utc>,
    ) {
        let entry = self.ledger.entry(parent).clone();
        let legs = [
            ("take_profit", OrderType::Limit, request.take_profit_price),
            ("stop_loss", OrderType::Stop, request.stop_loss_price),
        ];
        for (suffix, order_type, price) in legs {
            let Some(price) = price else { continue };
            let qty = entry.order.qty.unwrap_or_default();
            let mut order = entry.order.clone();
            order.order_id = format!("{}-{}", super::PAPER_BROKER, self.ledger.len() + 1);
            order.client_order_id = format!("{}.{suffix}", entry.order.client_order_id);
            order.side = entry.order.side.opposite();
            order.order_type = order_type;
            order.limit_price = (order_type == OrderType::Limit).then_some(price);
            order.stop_price = (order_type == OrderType::Stop).then_some(price);
            order.status = OrderStatus::Held;
            order.parent_order_id = Some(entry.order.order_id.clone());
            let (cash, reserve_qty) = match order.side {
                Side::Buy => (notional(qty, price).unwrap_or(Decimal::MAX), Decimal::ZERO),
                Side::Sell => (Decimal::ZERO, qty),
            };
            self.ledger.push(Entry {
                expires_at: entry.expires_at,
                reserve_cash: cash,
                reserve_qty,
                ..fresh_entry(order, spec, now)
            });
        }
    }

    pub(super) fn replace_now(
        &mut self,
        order_id: &str,
        request: ReplaceRequest,
    ) -> Result<Order, BrokerError> {
        let now = self.settle();
        let index = self
            .ledger
            .index_of(order_id)
            .ok_or_else(|| self.unknown_order(order_id))?;
        let old = self.ledger.entry(index).clone();
        self.check_replaceable(&old.order)?;
        let spec = self.spec(&old.order.symbol)?.clone();
        let changed = merge(&old.order, &request)?;
        check_prices(
            &spec,
            changed.order_type,
            changed.limit_price,
            changed.stop_price,
        )?;
        check_time_in_force(&spec, changed.time_in_force)?;
        check_market_open(&spec, changed.time_in_force, now)?;
        if let Some(qty) = changed.qty {
            check_qty(&spec, qty, changed.order_type, changed.time_in_force, false)?;
        }
        let client_order_id = request
            .client_order_id
            .unwrap_or_else(|| format!("{}.r{}", old.order.client_order_id, self.ledger.len()));
        check_client_order_id(&client_order_id)?;
        if self.ledger.index_of_client_id(&client_order_id).is_some() {
            return Err(BrokerError::ClientOrderIdReused {
                client_order_id,
                original: "an earlier order".to_owned(),
            });
        }
        let quote = self.market.quote_at(&spec, now);
        let amount = match (changed.qty, changed.notional) {
            (Some(qty), _) => OrderAmount::Qty(qty),
            (None, notional) => OrderAmount::Notional(notional.unwrap_or_default()),
        };
        let as_request = OrderRequest {
            symbol: spec.symbol.clone(),
            side: changed.side,
            amount,
            order_type: changed.order_type,
            time_in_force: Some(changed.time_in_force),
            limit_price: changed.limit_price,
            stop_price: changed.stop_price,
            take_profit_price: None,
            stop_loss_price: None,
            client_order_id: client_order_id.clone(),
        };
        let (cash, qty) = reservation(&spec, changed.side, amount, &as_request, &quote)?;
        // The old order's reservation is released by the replacement: check without it. A
        // held leg sets nothing aside until its entry fills, so it has nothing to check.
        let held = old.order.status == OrderStatus::Held;
        self.ledger
            .set_status(index, OrderStatus::Replaced, None, now);
        let funds = if held {
            Ok(())
        } else {
            self.ledger
                .check_funds(&spec.symbol, changed.side, cash, qty, ACCOUNT_CURRENCY)
        };
        if let Err(error) = funds {
            self.ledger
                .set_status(index, old.order.status, None, old.order.updated_at);
            return Err(error);
        }
        let new_id = format!("{}-{}", super::PAPER_BROKER, self.ledger.len() + 1);
        self.ledger.entry_mut(index).order.replaced_by = Some(new_id.clone());
        let mut order = changed;
        order.order_id = new_id;
        order.client_order_id = client_order_id;
        order.status = match (held, spec.market.is_open(now)) {
            (true, _) => OrderStatus::Held,
            (false, true) => OrderStatus::Open,
            (false, false) => OrderStatus::Accepted,
        };
        order.created_at = now;
        order.updated_at = now;
        order.replaces = Some(old.order.order_id.clone());
        order.replaced_by = None;
        order.status_reason = None;
        let expires_at = if order.time_in_force == TimeInForce::Day {
            old.expires_at
                .filter(|_| old.order.time_in_force == TimeInForce::Day)
                .or_else(|| expiry(&spec, TimeInForce::Day, now))
        } else {
            None
        };
        let active_from = if held { old.active_from } else { now };
        let new = self.ledger.push(Entry {
            expires_at,
            active_from,
            reserve_cash: cash,
            reserve_qty: qty,
            ..fresh_entry(order, &spec, now)
        });
        settle_from(&self.market, &mut self.ledger, new, now);
        Ok(self.ledger.order_with_legs(new))
    }

    /// Only a working or held order that has not filled, and not a bracket's entry, can be
    /// replaced.
    fn check_replaceable(&self, order: &Order) -> Result<(), BrokerError> {
        if !matches!(
            order.status,
            OrderStatus::Accepted | OrderStatus::Open | OrderStatus::Held
        ) {
            return Err(BrokerError::OrderNotOpen {
                order_id: order.order_id.clone(),
                status: order.status.as_str(),
                action: "replaced",
            });
        }
        if order.order_class != OrderClass::Simple && order.parent_order_id.is_none() {
            return Err(BrokerError::NotSupported {
                broker: self.name.clone(),
                what: "replacing the entry of a bracket or OTO order".to_owned(),
                advice: "replace its legs, or cancel it and place a new order".to_owned(),
            });
        }
        Ok(())
    }

    pub(super) fn cancel_now(&mut self, order_id: &str) -> Result<Order, BrokerError> {
        let now = self.settle();
        let index = self
            .ledger
            .index_of(order_id)
            .ok_or_else(|| self.unknown_order(order_id))?;
        let order = &self.ledger.entry(index).order;
        if !is_cancellable(order.status) {
            return Err(BrokerError::OrderNotOpen {
                order_id: order_id.to_owned(),
                status: order.status.as_str(),
                action: "cancelled",
            });
        }
        self.ledger
            .set_status(index, OrderStatus::Cancelled, None, now);
        cancel_held_legs(&mut self.ledger, index, now);
        Ok(self.ledger.order_with_legs(index))
    }

    pub(super) fn cancel_all_now(
        &mut self,
        symbol: Option<&str>,
    ) -> Result<Vec<Order>, BrokerError> {
        let now = self.settle();
        let symbol = match symbol {
            Some(symbol) => Some(self.spec(symbol)?.symbol.clone()),
            None => None,
        };
        let mut cancelled = Vec::new();
        for index in 0..self.ledger.len() {
            let order = &self.ledger.entry(index).order;
            if is_cancellable(order.status)
                && symbol.as_ref().is_none_or(|symbol| *symbol == order.symbol)
            {
                let reason = "cancelled by orders_cancel_all";
                self.ledger
                    .set_status(index, OrderStatus::Cancelled, Some(reason), now);
                cancelled.push(self.ledger.entry(index).order.clone());
            }
        }
        Ok(cancelled)
    }

    pub(super) fn close_now(&mut self, request: CloseRequest) -> Result<Order, BrokerError> {
        self.settle();
        let spec = self.spec(&request.symbol)?.clone();
        let held = self.ledger.held(&spec.symbol);
        if held <= Decimal::ZERO {
            return Err(BrokerError::NoPosition {
                broker: self.name.clone(),
                symbol: spec.symbol.clone(),
            });
        }
        let qty = match request.amount {
            CloseAmount::All => held,
            CloseAmount::Qty(qty) => qty,
            CloseAmount::Percent(percent) => {
                if percent <= Decimal::ZERO || percent > MAX_CLOSE_PERCENT {
                    return Err(BrokerError::OutOfRange {
                        what: "percent",
                        range: "above 0 and at most 100".to_owned(),
                        got: percent.to_string(),
                    });
                }
                (held * percent / MAX_CLOSE_PERCENT)
                    .round_dp_with_strategy(spec.finest_qty_decimals(), RoundingStrategy::ToZero)
                    .normalize()
            }
        };
        let placement = self.place_now(OrderRequest {
            symbol: spec.symbol.clone(),
            side: Side::Sell,
            amount: OrderAmount::Qty(qty),
            order_type: OrderType::Market,
            time_in_force: None,
            limit_price: None,
            stop_price: None,
            take_profit_price: None,
            stop_loss_price: None,
            client_order_id: request.client_order_id,
        })?;
        Ok(placement.order)
    }
}

fn is_cancellable(status: OrderStatus) -> bool {
    matches!(
        status,
        OrderStatus::Accepted | OrderStatus::Open | OrderStatus::Held
    )
}

fn check_client_order_id(client_order_id: &str) -> Result<(), BrokerError> {
    if client_order_id.is_empty() || client_order_id.len() > MAX_CLIENT_ORDER_ID_LEN {
        return Err(BrokerError::InvalidClientOrderId {
            max: MAX_CLIENT_ORDER_ID_LEN,
        });
    }
    Ok(())
}

/// An entry for a new `order`, working from `now`, not yet looked at.
fn fresh_entry(order: Order, spec: &SymbolSpec, now: DateTime<Utc>) -> Entry {
    Entry {
        order,
        market: spec.market,
        active_from: now,
        activated: false,
        expires_at: None,
        triggered: false,
        last_checked: None,
        reserve_cash: Decimal::ZERO,
        reserve_qty: Decimal::ZERO,
    }
}

/// When a day order placed at `now` expires: the close of the session it works in (today's
/// if the market is open, else the next one's).
fn expiry(
    spec: &SymbolSpec,
    time_in_force: TimeInForce,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if time_in_force != TimeInForce::Day || !spec.market.has_hours() {
        return None;
    }
    spec.market
        .current_or_next_session(now)
        .map(|session| session.close)
}

/// What an order sets aside while it works: cash for a buy (its notional at the worst price it
/// may fill: the limit, the stop, or the ask now), quantity for a sell.
fn reservation(
    spec: &SymbolSpec,
    side: Side,
    amount: OrderAmount,
    request: &OrderRequest,
    quote: &Quote,
) -> Result<(Decimal, Decimal), BrokerError> {
    match (side, amount) {
        (Side::Buy, OrderAmount::Notional(amount)) => Ok((amount, Decimal::ZERO)),
        (Side::Buy, OrderAmount::Qty(qty)) => {
            let price = match request.order_type {
                OrderType::Market => quote.ask,
                OrderType::Limit | OrderType::StopLimit => request.limit_price.unwrap_or(quote.ask),
                OrderType::Stop => request.stop_price.unwrap_or(quote.ask).max(quote.ask),
            };
            let cash = notional(qty, price).ok_or(BrokerError::OrderTooLarge { qty, price })?;
            Ok((cash, Decimal::ZERO))
        }
        (Side::Sell, OrderAmount::Qty(qty)) => Ok((Decimal::ZERO, qty)),
        (Side::Sell, OrderAmount::Notional(amount)) => {
            let qty = (amount / quote.bid)
                .round_dp_with_strategy(spec.finest_qty_decimals(), RoundingStrategy::AwayFromZero);
            Ok((Decimal::ZERO, qty))
        }
    }
}

/// The order `order_replace` would create from `order` and `request` (ids and times to set).
fn merge(order: &Order, request: &ReplaceRequest) -> Result<Order, BrokerError> {
    if order.notional.is_some() && request.qty.is_some() {
        return Err(BrokerError::NotSupported {
            broker: super::PAPER_BROKER.to_owned(),
            what: "a qty for a notional order".to_owned(),
            advice: "cancel it and place a new order".to_owned(),
        });
    }
    let mut changed = order.clone();
    changed.qty = request.qty.map(|qty| qty.normalize()).or(order.qty);
    changed.limit_price = request.limit_price.or(order.limit_price);
    changed.stop_price = request.stop_price.or(order.stop_price);
    changed.time_in_force = request.time_in_force.unwrap_or(order.time_in_force);
    changed.legs = Vec::new();
    Ok(changed)
}

/// The answer to a request whose `client_order_id` was used before: the original order when
/// the request asks for the same thing, else a refusal.
fn replay(original: &Order, request: &OrderRequest) -> Result<Placement, BrokerError> {
    let same_symbol = original.symbol.eq_ignore_ascii_case(request.symbol.trim());
    let same_amount = match request.amount {
        OrderAmount::Qty(qty) => original.qty == Some(qty.normalize()),
        OrderAmount::Notional(notional) => original.notional == Some(notional),
    };
    if same_symbol && original.side == request.side && same_amount {
        return Ok(Placement {
            order: original.clone(),
            replayed: true,
            note: None,
        });
    }
    Err(BrokerError::ClientOrderIdReused {
        client_order_id: request.client_order_id.clone(),
        original: format!("{} {}", original.order_id, original.summary()),
    })
}
