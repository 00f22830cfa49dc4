//! `paper`: the built-in broker, trading against a simulated market with no network — the
//! deterministic, offline oracle every other broker is tested against.
//!
//! Prices come from [`market::PaperMarket`] at the time a [`market::Clock`] gives (the wall
//! clock, or a test's); bars are synthesized from the same prices ([`bars`]). Each symbol
//! trades in its market's hours ([`calendar`]): US equities on New York hours, NSE equities on
//! Mumbai hours, crypto around the clock. Orders follow Alpaca's rules ([`validate`]):
//! market, limit, stop and stop-limit orders; day, gtc, ioc and fok; bracket and OTO legs;
//! notional and fractional amounts. An order placed while its market is closed is
//! `accepted` and queued for the open (ioc and fok are refused instead); a day order expires
//! at its session's close. The paper broker has no background task: every call brings the
//! books up to date first ([`matching`] says exactly how orders trigger and fill).
//!
//! To keep it simple the account has one currency, USD, and every symbol settles in it at
//! face value: a quote still says a symbol is priced in INR, but buying 1 RELIANCE.NS at
//! 2900.00 costs 2900.00 USD — there is no currency conversion. There are no fees, no short
//! selling and no partial fills; prices keep moving outside market hours, but nothing fills
//! then. Any non-empty `api_key` and `api_secret` log in (there is no account behind them to
//! check); a real broker adapter verifies them. The account lives as long as the session:
//! logging out and in again finds the same cash and positions.

pub mod bars;
pub mod calendar;
pub mod ledger;
pub mod market;
pub mod matching;
mod orders;
pub mod validate;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use secrecy::ExposeSecret;

use self::calendar::Market;
use self::ledger::{Ledger, notional};
use self::market::{Clock, DEFAULT_SEED, PaperMarket, SymbolSpec, SystemClock, default_symbols};
use super::{
    Account, Bars, BarsRequest, Broker, BrokerDescription, BrokerError, BrokerFuture, CloseRequest,
    Credentials, Environment, MarketClock, Order, OrderFilter, OrderLookup, OrderRequest,
    OrderType, Placement, Position, Quote, ReplaceRequest, SymbolInfo, TimeInForce, ready,
};

/// The name of the built-in broker.
pub const PAPER_BROKER: &str = "paper";

/// The currency of every paper account (see the module documentation on settlement).
pub const ACCOUNT_CURRENCY: &str = "USD";

/// Cash a new paper account starts with: 100000.00 USD, a round sum that buys some of anything.
pub const DEFAULT_STARTING_CASH: Decimal = Decimal::from_parts(10_000_000, 0, 0, false, 2);

/// Orders (legs included) one session may place with `paper`: bounds the memory a session's
/// books take.
pub const MAX_ORDERS_PER_SESSION: usize = 10_000;

/// Longest `client_order_id` accepted: long enough for a UUID with a prefix, short enough to
/// keep the idempotency index small (Alpaca's limit too).
pub const MAX_CLIENT_ORDER_ID_LEN: usize = 128;

/// How a session's paper broker is set up.
#[derive(Debug, Clone)]
pub struct PaperConfig {
    /// The name sessions use for it (`paper`; a test-only live flavour has its own).
    pub name: String,
    /// What `broker_list` says it is: `simulated`, except for the test-only live flavour.
    pub environment: Environment,
    /// Seeds the simulated prices: the same seed gives the same prices at the same time.
    pub seed: u64,
    pub starting_cash: Decimal,
    pub symbols: Vec<SymbolSpec>,
}

impl Default for PaperConfig {
    fn default() -> Self {
        Self {
            name: PAPER_BROKER.to_owned(),
            environment: Environment::Simulated,
            seed: DEFAULT_SEED,
            starting_cash: DEFAULT_STARTING_CASH,
            symbols: default_symbols(),
        }
    }
}

/// The paper broker of one session.
pub struct PaperBroker {
    name: String,
    environment: Environment,
    market: PaperMarket,
    clock: Arc<dyn Clock>,
    ledger: Ledger,
}

impl PaperBroker {
    /// A paper broker on the wall clock.
    pub fn new(config: PaperConfig) -> Self {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// A paper broker on `clock`, so tests can move its prices and its markets' hours.
    pub fn with_clock(config: PaperConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            name: config.name,
            environment: config.environment,
            market: PaperMarket::new(config.seed, config.symbols),
            clock,
            ledger: Ledger::new(config.starting_cash),
        }
    }

    /// The current time, after bringing every working order up to it.
    fn settle(&mut self) -> DateTime<Utc> {
        let now = self.clock.now();
        matching::settle(&self.market, &mut self.ledger, now);
        now
    }

    fn spec(&self, symbol: &str) -> Result<&SymbolSpec, BrokerError> {
        self.market
            .spec(symbol)
            .ok_or_else(|| BrokerError::UnknownSymbol {
                broker: self.name.clone(),
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
        Ok(bars::bars(&self.market, spec, request, now))
    }

    fn clock_now(&mut self, market: Option<&str>) -> Result<Vec<MarketClock>, BrokerError> {
        let now = self.settle();
        let markets = match market {
            None => Market::ALL.to_vec(),
            Some(name) => match Market::from_name(name) {
                Some(market) => vec![market],
                // A symbol names its market.
                None => vec![self.spec(name).map_err(|_| unknown_market(name))?.market],
            },
        };
        Ok(markets
            .into_iter()
            .map(|market| market.clock(now))
            .collect())
    }

    fn symbols_now(&self, query: Option<&str>) -> Vec<SymbolInfo> {
        let query = query.map(|query| query.trim().to_ascii_lowercase());
        self.market
            .specs()
            .filter(|spec| {
                query.as_ref().is_none_or(|query| {
                    spec.symbol.to_ascii_lowercase().contains(query)
                        || spec.name.to_ascii_lowercase().contains(query)
                })
            })
            .map(SymbolSpec::info)
            .collect()
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

    fn order_now(&mut self, lookup: OrderLookup) -> Result<Order, BrokerError> {
        self.settle();
        let index = match &lookup {
            OrderLookup::OrderId(id) => self.ledger.index_of(id),
            OrderLookup::ClientOrderId(id) => self.ledger.index_of_client_id(id),
        };
        match index {
            Some(index) => Ok(self.ledger.order_with_legs(index)),
            None => {
                let (OrderLookup::OrderId(id) | OrderLookup::ClientOrderId(id)) = lookup;
                Err(self.unknown_order(&id))
            }
        }
    }

    fn unknown_order(&self, order_id: &str) -> BrokerError {
        BrokerError::UnknownOrder {
            broker: self.name.clone(),
            order_id: order_id.to_owned(),
        }
    }
}

fn unknown_market(name: &str) -> BrokerError {
    let names: Vec<&str> = Market::ALL.iter().map(|market| market.name()).collect();
    BrokerError::OutOfRange {
        what: "market",
        range: format!("one of {} (or a symbol)", names.join(", ")),
        got: name.to_owned(),
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
        &self.name
    }

    fn describe(&self) -> BrokerDescription {
        BrokerDescription {
            environment: self.environment,
            order_types: OrderType::ALL.to_vec(),
            time_in_force: TimeInForce::ALL.to_vec(),
            notional_orders: true,
            bracket_orders: true,
            markets: Market::ALL
                .iter()
                .map(|market| market.name().to_owned())
                .collect(),
            account_currency: ACCOUNT_CURRENCY.to_owned(),
        }
    }

    fn login<'a>(&'a mut self, credentials: &'a Credentials) -> BrokerFuture<'a, ()> {
        let key = credentials.api_key().expose_secret();
        let secret = credentials.api_secret().expose_secret();
        ready(if key.is_empty() || secret.is_empty() {
            Err(BrokerError::CredentialsRefused {
                broker: self.name.clone(),
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
        market: Option<&'a str>,
    ) -> BrokerFuture<'a, Vec<MarketClock>> {
        ready(self.clock_now(market))
    }

    fn symbols<'a>(
        &'a mut self,
        _: Option<&'a Credentials>,
        query: Option<&'a str>,
    ) -> BrokerFuture<'a, Vec<SymbolInfo>> {
        ready(Ok(self.symbols_now(query)))
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

    fn order<'a>(&'a mut self, _: &'a Credentials, lookup: OrderLookup) -> BrokerFuture<'a, Order> {
        ready(self.order_now(lookup))
    }

    fn place_order<'a>(
        &'a mut self,
        _: &'a Credentials,
        request: OrderRequest,
    ) -> BrokerFuture<'a, Placement> {
        ready(self.place_now(request))
    }

    fn replace_order<'a>(
        &'a mut self,
        _: &'a Credentials,
        order_id: &'a str,
        request: ReplaceRequest,
    ) -> BrokerFuture<'a, Order> {
        ready(self.replace_now(order_id, request))
    }

    fn cancel_order<'a>(
        &'a mut self,
        _: &'a Credentials,
        order_id: &'a str,
    ) -> BrokerFuture<'a, Order> {
        ready(self.cancel_now(order_id))
    }

    fn cancel_all<'a>(
        &'a mut self,
        _: &'a Credentials,
        symbol: Option<&'a str>,
    ) -> BrokerFuture<'a, Vec<Order>> {
        ready(self.cancel_all_now(symbol))
    }

    fn close_position<'a>(
        &'a mut self,
        _: &'a Credentials,
        request: CloseRequest,
    ) -> BrokerFuture<'a, Order> {
        ready(self.close_now(request))
    }
}

#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod tests;
