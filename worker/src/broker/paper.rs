//! `paper`: the built-in broker, trading against a simulated market with no network.
//!
//! Prices come from [`market::PaperMarket`] at the time a [`market::Clock`] gives (the wall
//! clock, or a test's). Market orders fill at once, buys at the ask and sells at the bid.
//! Limit orders rest until the market crosses them; the paper broker has no background task,
//! so it checks resting orders each time the session touches it (any call: quote, account,
//! positions, orders, placing or cancelling), against the price at that moment. The books
//! are kept by [`ledger::Ledger`].
//!
//! To keep it simple the account has one currency, USD, and every symbol settles in it at
//! face value: a quote still says a symbol is priced in INR, but buying 1 RELIANCE.NS at
//! 2900.00 costs 2900.00 USD — there is no currency conversion. There are no fees, no short
//! selling and no partial fills. Any non-empty `api_key` and `api_secret` log in (there is
//! no account behind them to check); a real broker adapter verifies them. The account lives
//! as long as the session: logging out and in again finds the same cash and positions.

pub mod ledger;
pub mod market;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use secrecy::ExposeSecret;

use self::ledger::{Ledger, crossing_price, notional};
use self::market::{Clock, DEFAULT_SEED, PaperMarket, SymbolSpec, SystemClock, default_symbols};
use super::indicators;
use super::model::OrderClass;
use super::{
    Account, Bars, BarsRequest, Broker, BrokerDescription, BrokerError, BrokerFuture, CloseRequest,
    Credentials, Environment, MarketClock, Order, OrderAmount, OrderFilter, OrderLookup,
    OrderRequest, OrderStatus, OrderType, Placement, Position, Quote, ReplaceRequest, Side,
    SymbolInfo, TimeInForce, ready,
};

/// The name of the built-in broker.
pub const PAPER_BROKER: &str = "paper";

/// The currency of every paper account (see the module documentation on settlement).
pub const ACCOUNT_CURRENCY: &str = "USD";

/// Cash a new paper account starts with: 100000.00 USD, a round sum that buys some of anything.
pub const DEFAULT_STARTING_CASH: Decimal = Decimal::from_parts(10_000_000, 0, 0, false, 2);

/// Orders one session may place with `paper`: bounds the memory a session's books take.
pub const MAX_ORDERS_PER_SESSION: usize = 10_000;

/// Longest `client_order_id` accepted: long enough for a UUID with a prefix, short enough to
/// keep the idempotency index small.
pub const MAX_CLIENT_ORDER_ID_LEN: usize = 128;

/// How a session's paper broker is set up.
#[derive(Debug, Clone)]
pub struct PaperConfig {
    /// Seeds the simulated prices: the same seed gives the same prices at the same time.
    pub seed: u64,
    pub starting_cash: Decimal,
    pub symbols: Vec<SymbolSpec>,
}

impl Default for PaperConfig {
    fn default() -> Self {
        Self {
            seed: DEFAULT_SEED,
            starting_cash: DEFAULT_STARTING_CASH,
            symbols: default_symbols(),
        }
    }
}

/// The paper broker of one session.
pub struct PaperBroker {
    market: PaperMarket,
    clock: Arc<dyn Clock>,
    ledger: Ledger,
}

impl PaperBroker {
    /// A paper broker on the wall clock.
    pub fn new(config: PaperConfig) -> Self {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// A paper broker on `clock`, so tests can move its prices.
    pub fn with_clock(config: PaperConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            market: PaperMarket::new(config.seed, config.symbols),
            clock,
            ledger: Ledger::new(config.starting_cash),
        }
    }

    /// The current time, after filling every resting order the market now crosses.
    fn settle(&mut self) -> DateTime<Utc> {
        let now = self.clock.now();
        for index in self.ledger.open_indices() {
            let order = self.ledger.order(index);
            let Some(spec) = self.market.spec(&order.symbol) else {
                continue;
            };
            let quote = self.market.quote_at(spec, now);
            if let Some(price) = crossing_price(order, quote.bid, quote.ask) {
                self.ledger.fill(index, price, now);
            }
        }
        now
    }

    fn spec(&self, symbol: &str) -> Result<&SymbolSpec, BrokerError> {
        self.market
            .spec(symbol)
            .ok_or_else(|| BrokerError::UnknownSymbol {
                broker: PAPER_BROKER.to_owned(),
                symbol: symbol.to_owned(),
                known: self.market.symbol_list(),
            })
    }

    fn quote_now(&mut self, symbol: &str) -> Result<Quote, BrokerError> {
        let now = self.settle();
        let spec = self.spec(symbol)?;
        Ok(self.market.quote_at(spec, now))
    }

    fn bars_now(&mut self, request: &BarsRequest) -> Result<Bars, BrokerError> {
        let now = self.settle();
        let spec = self.spec(&request.symbol)?;
        let series = indicators::recent_prices(&self.market, spec, now, request.limit + 1);
        let bars = series
            .prices
            .windows(2)
            .enumerate()
            .map(|(index, pair)| {
                let back = i64::try_from(series.prices.len() - 1 - index).unwrap_or(0);
                super::model::Bar {
                    time: series.end - chrono::TimeDelta::seconds(back * series.interval_seconds),
                    open: pair[0],
                    high: pair[0].max(pair[1]),
                    low: pair[0].min(pair[1]),
                    close: pair[1],
                    volume: Decimal::ZERO,
                }
            })
            .collect();
        Ok(Bars {
            symbol: spec.symbol.clone(),
            timeframe: request.timeframe,
            bars,
        })
    }

    fn positions_now(&mut self) -> Result<Vec<Position>, BrokerError> {
        let now = self.settle();
        let mut positions = Vec::new();
        for (symbol, holding) in self.ledger.holdings() {
            let spec = self.spec(symbol)?;
            let last = self.market.mid_at(spec, now);
            let market_value = notional(holding.qty, last).ok_or(BrokerError::OrderTooLarge {
                qty: holding.qty,
                price: last,
            })?;
            let avg_price = tidy(holding.cost_basis / holding.qty, spec.price_decimals);
            positions.push(Position {
                symbol: symbol.clone(),
                qty: holding.qty,
                avg_price,
                current_price: last,
                market_value,
                unrealized_pnl: market_value - holding.cost_basis,
            });
        }
        Ok(positions)
    }

    fn account_now(&mut self) -> Result<Account, BrokerError> {
        let market_value: Decimal = self
            .positions_now()?
            .iter()
            .map(|position| position.market_value)
            .sum();
        Ok(Account {
            cash: self.ledger.cash(),
            equity: self.ledger.cash() + market_value,
            buying_power: self.ledger.buying_power(),
            currency: ACCOUNT_CURRENCY.to_owned(),
        })
    }

    fn place_now(&mut self, request: OrderRequest) -> Result<Placement, BrokerError> {
        let now = self.settle();
        let client_order_id = &request.client_order_id;
        if client_order_id.is_empty() || client_order_id.len() > MAX_CLIENT_ORDER_ID_LEN {
            return Err(BrokerError::InvalidClientOrderId {
                max: MAX_CLIENT_ORDER_ID_LEN,
            });
        }
        if let Some(original) = self.ledger.by_client_id(client_order_id) {
            return replay(original, &request);
        }
        if self.ledger.order_count() >= MAX_ORDERS_PER_SESSION {
            let broker = PAPER_BROKER.to_owned();
            return Err(BrokerError::TooManyOrders {
                broker,
                max: MAX_ORDERS_PER_SESSION,
            });
        }
        let spec = self.spec(&request.symbol)?;
        validate(spec, &request)?;
        let quote = self.market.quote_at(spec, now);
        let order = new_order(self.ledger.order_count() + 1, spec, request, now);
        let funds_price = order.limit_price.unwrap_or(match order.side {
            Side::Buy => quote.ask,
            Side::Sell => quote.bid,
        });
        self.ledger.check_funds(
            &order.symbol,
            order.side,
            order.qty.unwrap_or_default(),
            funds_price,
            ACCOUNT_CURRENCY,
        )?;
        let fill_price = crossing_price(&order, quote.bid, quote.ask);
        let index = self.ledger.open(order);
        if let Some(price) = fill_price {
            self.ledger.fill(index, price, now);
        }
        Ok(Placement {
            order: self.ledger.order(index).clone(),
            replayed: false,
            note: None,
        })
    }
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

/// Checks what a request asks for, against its symbol.
fn validate(spec: &SymbolSpec, request: &OrderRequest) -> Result<(), BrokerError> {
    let not_yet = |what: &str| BrokerError::NotSupported {
        broker: PAPER_BROKER.to_owned(),
        what: what.to_owned(),
        advice: "not supported yet".to_owned(),
    };
    let OrderAmount::Qty(qty) = request.amount else {
        return Err(not_yet("notional orders"));
    };
    if request.stop_price.is_some()
        || request.take_profit_price.is_some()
        || request.stop_loss_price.is_some()
        || matches!(request.order_type, OrderType::Stop | OrderType::StopLimit)
        || request
            .time_in_force
            .is_some_and(|tif| tif != TimeInForce::Gtc)
    {
        return Err(not_yet("stop, bracket or time-in-force orders"));
    }
    if qty <= Decimal::ZERO {
        return Err(BrokerError::NonPositiveQuantity { qty });
    }
    if qty.normalize().scale() > spec.qty_decimals {
        let symbol = spec.symbol.clone();
        return Err(BrokerError::QuantityPrecision {
            symbol,
            qty,
            max_decimals: spec.qty_decimals,
        });
    }
    match (request.order_type, request.limit_price) {
        (OrderType::Market, Some(_)) => Err(BrokerError::UnexpectedLimitPrice),
        (OrderType::Limit, None) => Err(BrokerError::MissingLimitPrice {
            order_type: "limit",
        }),
        (OrderType::Limit, Some(price)) if price <= Decimal::ZERO => {
            Err(BrokerError::NonPositivePrice {
                field: "limit_price",
                price,
            })
        }
        _ => Ok(()),
    }
}

fn new_order(number: usize, spec: &SymbolSpec, request: OrderRequest, now: DateTime<Utc>) -> Order {
    Order {
        order_id: format!("{PAPER_BROKER}-{number}"),
        client_order_id: request.client_order_id,
        symbol: spec.symbol.clone(),
        side: request.side,
        order_type: request.order_type,
        time_in_force: TimeInForce::Gtc,
        order_class: OrderClass::Simple,
        qty: request.amount.qty().map(|qty| qty.normalize()),
        notional: None,
        limit_price: request.limit_price,
        stop_price: None,
        status: OrderStatus::Open,
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

/// `value` to eight decimal places without trailing zeros, but with at least `min_scale`
/// places, so an average price reads like a price ("190.10", not "190.1").
fn tidy(value: Decimal, min_scale: u32) -> Decimal {
    let mut tidied = value.round_dp(8).normalize();
    if tidied.scale() < min_scale {
        tidied.rescale(min_scale);
    }
    tidied
}

impl Broker for PaperBroker {
    fn name(&self) -> &str {
        PAPER_BROKER
    }

    fn describe(&self) -> BrokerDescription {
        BrokerDescription {
            environment: Environment::Simulated,
            order_types: vec![OrderType::Market, OrderType::Limit],
            time_in_force: vec![TimeInForce::Gtc],
            notional_orders: false,
            bracket_orders: false,
            markets: Vec::new(),
            account_currency: ACCOUNT_CURRENCY.to_owned(),
        }
    }

    fn login<'a>(&'a mut self, credentials: &'a Credentials) -> BrokerFuture<'a, ()> {
        let key = credentials.api_key().expose_secret();
        let secret = credentials.api_secret().expose_secret();
        ready(if key.is_empty() || secret.is_empty() {
            Err(BrokerError::CredentialsRefused {
                broker: PAPER_BROKER.to_owned(),
                reason: "api_key and api_secret must both be non-empty (any values will do)"
                    .to_owned(),
            })
        } else {
            Ok(())
        })
    }

    fn logout(&mut self) -> BrokerFuture<'_, ()> {
        ready(Ok(()))
    }

    fn quote<'a>(
        &'a mut self,
        _: Option<&'a Credentials>,
        symbol: &'a str,
    ) -> BrokerFuture<'a, Quote> {
        ready(self.quote_now(symbol))
    }

    fn bars<'a>(
        &'a mut self,
        _: Option<&'a Credentials>,
        request: BarsRequest,
    ) -> BrokerFuture<'a, Bars> {
        ready(self.bars_now(&request))
    }

    fn market_clock<'a>(
        &'a mut self,
        _: Option<&'a Credentials>,
        _: Option<&'a str>,
    ) -> BrokerFuture<'a, Vec<MarketClock>> {
        ready(Err(not_supported_yet("market_clock")))
    }

    fn symbols<'a>(
        &'a mut self,
        _: Option<&'a Credentials>,
        _: Option<&'a str>,
    ) -> BrokerFuture<'a, Vec<SymbolInfo>> {
        ready(Err(not_supported_yet("symbols")))
    }

    fn account<'a>(&'a mut self, _: &'a Credentials) -> BrokerFuture<'a, Account> {
        ready(self.account_now())
    }

    fn positions<'a>(&'a mut self, _: &'a Credentials) -> BrokerFuture<'a, Vec<Position>> {
        ready(self.positions_now())
    }

    fn orders<'a>(
        &'a mut self,
        _: &'a Credentials,
        filter: OrderFilter,
    ) -> BrokerFuture<'a, Vec<Order>> {
        self.settle();
        ready(Ok(self.ledger.orders(filter)))
    }

    fn place_order<'a>(
        &'a mut self,
        _: &'a Credentials,
        request: OrderRequest,
    ) -> BrokerFuture<'a, Placement> {
        ready(self.place_now(request))
    }

    fn order<'a>(&'a mut self, _: &'a Credentials, lookup: OrderLookup) -> BrokerFuture<'a, Order> {
        self.settle();
        let found = match &lookup {
            OrderLookup::OrderId(id) => self.ledger.by_order_id(id),
            OrderLookup::ClientOrderId(id) => self.ledger.by_client_id(id),
        };
        ready(found.cloned().ok_or_else(|| {
            let (OrderLookup::OrderId(id) | OrderLookup::ClientOrderId(id)) = lookup;
            BrokerError::UnknownOrder {
                broker: PAPER_BROKER.to_owned(),
                order_id: id,
            }
        }))
    }

    fn replace_order<'a>(
        &'a mut self,
        _: &'a Credentials,
        _: &'a str,
        _: ReplaceRequest,
    ) -> BrokerFuture<'a, Order> {
        ready(Err(not_supported_yet("order_replace")))
    }

    fn cancel_order<'a>(
        &'a mut self,
        _: &'a Credentials,
        order_id: &'a str,
    ) -> BrokerFuture<'a, Order> {
        self.settle();
        ready(self.ledger.cancel(PAPER_BROKER, order_id))
    }

    fn cancel_all<'a>(
        &'a mut self,
        _: &'a Credentials,
        _: Option<&'a str>,
    ) -> BrokerFuture<'a, Vec<Order>> {
        ready(Err(not_supported_yet("orders_cancel_all")))
    }

    fn close_position<'a>(
        &'a mut self,
        _: &'a Credentials,
        _: CloseRequest,
    ) -> BrokerFuture<'a, Order> {
        ready(Err(not_supported_yet("position_close")))
    }
}

/// The answer of a call `paper` does not implement yet (transitional).
fn not_supported_yet(what: &str) -> BrokerError {
    BrokerError::NotSupported {
        broker: PAPER_BROKER.to_owned(),
        what: what.to_owned(),
        advice: "not supported yet".to_owned(),
    }
}

#[cfg(test)]
mod tests;
