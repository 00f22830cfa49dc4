//! Brokers: the trading back ends one session talks to, behind one [`Broker`] trait.
//!
//! A session holds a [`BrokerRegistry`]: the brokers it can use, the credentials it logged in
//! with for each, and which one is active. Session code (the tools) only ever talks to the
//! registry and the trait, so a new back end — a REST adapter with API keys, say — is one more
//! `impl Broker` handed to the registry. The built-in back end is [`paper::PaperBroker`], a
//! deterministic simulated market that needs no network.
//!
//! Broker calls are asynchronous (a real adapter waits on the network) and return boxed `Send`
//! futures, so the trait stays object-safe and the registry can hold `Box<dyn Broker>`.
//! Credentials are passed by reference into every call that needs them rather than kept by
//! the broker: the registry owns them and wipes them on logout and when it is dropped.

#![forbid(unsafe_code)]

pub mod credentials;
pub mod indicators;
pub mod model;
pub mod paper;
pub mod registry;
pub mod tools;

use std::future::Future;
use std::pin::Pin;

use rust_decimal::Decimal;

pub use credentials::{CredentialSource, Credentials, ResolveError};
pub use model::{
    Account, Order, OrderFilter, OrderRequest, OrderType, Placement, Position, PriceSeries, Quote,
    Side,
};
pub use registry::BrokerRegistry;

/// What every broker call returns: a boxed future, so `dyn Broker` works.
pub type BrokerFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BrokerError>> + Send + 'a>>;

/// One trading back end, as a session sees it.
///
/// Implementations validate requests themselves and answer with [`BrokerError`]s whose
/// messages tell the caller what to do. `place_order` must be idempotent on
/// `client_order_id`: a second request with an id already used in this session returns the
/// original order with `replayed` set, and places nothing.
pub trait Broker: Send {
    /// The name sessions use for this broker, e.g. `paper`.
    fn name(&self) -> &str;

    /// Checks `credentials` (a real adapter asks its API whom they belong to). The registry,
    /// not the broker, keeps them afterwards.
    fn login<'a>(&'a mut self, credentials: &'a Credentials) -> BrokerFuture<'a, ()>;

    /// Forgets anything derived from the credentials (a session token, say).
    fn logout(&mut self) -> BrokerFuture<'_, ()>;

    /// The current price of `symbol`. Credentials are passed when the session has them; a
    /// broker whose market data needs them answers [`BrokerError::NotLoggedIn`] without.
    fn quote<'a>(
        &'a mut self,
        credentials: Option<&'a Credentials>,
        symbol: &'a str,
    ) -> BrokerFuture<'a, Quote>;

    /// The last `count` prices of `symbol` at the broker's sampling interval, oldest first.
    fn recent_prices<'a>(
        &'a mut self,
        credentials: Option<&'a Credentials>,
        symbol: &'a str,
        count: usize,
    ) -> BrokerFuture<'a, PriceSeries>;

    fn account<'a>(&'a mut self, credentials: &'a Credentials) -> BrokerFuture<'a, Account>;

    fn positions<'a>(&'a mut self, credentials: &'a Credentials)
    -> BrokerFuture<'a, Vec<Position>>;

    fn orders<'a>(
        &'a mut self,
        credentials: &'a Credentials,
        filter: OrderFilter,
    ) -> BrokerFuture<'a, Vec<Order>>;

    fn place_order<'a>(
        &'a mut self,
        credentials: &'a Credentials,
        request: OrderRequest,
    ) -> BrokerFuture<'a, Placement>;

    fn cancel_order<'a>(
        &'a mut self,
        credentials: &'a Credentials,
        order_id: &'a str,
    ) -> BrokerFuture<'a, Order>;
}

/// A broker call that failed, worded for the caller: each message says what to do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    #[error("unknown broker {broker}: call broker_list to see the brokers available")]
    UnknownBroker { broker: String },
    #[error("no active broker: call broker_use, or pass broker")]
    NoActiveBroker,
    #[error("not logged in to {broker}: call broker_login first")]
    NotLoggedIn { broker: String },
    #[error("{broker} refused the credentials: {reason}")]
    CredentialsRefused { broker: String, reason: String },
    #[error("broker_login takes api_key and api_secret, or credential_ref: pass one of the two")]
    MissingLoginCredentials,
    #[error("broker_login takes api_key and api_secret, or credential_ref, not both: pass one")]
    AmbiguousLoginCredentials,
    #[error(transparent)]
    CredentialRef(#[from] ResolveError),
    #[error("unknown symbol {symbol} on {broker}: it trades {known}")]
    UnknownSymbol {
        broker: String,
        symbol: String,
        known: String,
    },
    #[error("qty must be positive, got {qty}: pass a quantity above zero")]
    NonPositiveQuantity { qty: Decimal },
    #[error("qty {qty} has more decimal places than {symbol} allows ({max_decimals}): round it")]
    QuantityPrecision {
        symbol: String,
        qty: Decimal,
        max_decimals: u32,
    },
    #[error("limit_price must be positive, got {price}: pass a price above zero")]
    NonPositivePrice { price: Decimal },
    #[error("a limit order needs limit_price: pass limit_price, or use type market")]
    MissingLimitPrice,
    #[error("limit_price applies only to limit orders: drop it, or use type limit")]
    UnexpectedLimitPrice,
    #[error("order too large: {qty} at {price} is beyond what an account can hold; reduce qty")]
    OrderTooLarge { qty: Decimal, price: Decimal },
    #[error(
        "insufficient cash: the order needs {needed} {currency} but buying power is \
         {available} {currency}; reduce qty or cancel open buy orders"
    )]
    InsufficientCash {
        needed: Decimal,
        available: Decimal,
        currency: String,
    },
    #[error(
        "cannot sell {requested} {symbol}: {available} is held and not already in open sell \
         orders, and short selling is not supported; reduce qty"
    )]
    InsufficientPosition {
        symbol: String,
        requested: Decimal,
        available: Decimal,
    },
    #[error("client_order_id must be 1 to {max} characters long: shorten it")]
    InvalidClientOrderId { max: usize },
    #[error("this session has placed the most orders {broker} allows ({max}): open a new session")]
    TooManyOrders { broker: String, max: usize },
    #[error("no order {order_id} on {broker} in this session: call orders to list them")]
    UnknownOrder { broker: String, order_id: String },
    #[error("order {order_id} is {status}: only open orders can be cancelled")]
    OrderNotOpen {
        order_id: String,
        status: &'static str,
    },
    #[error("period must be between 1 and {max}, got {period}: pass a period in that range")]
    InvalidPeriod { period: u32, max: u32 },
    #[error("the indicator needs {needed} prices but {got} are available: use a shorter period")]
    NotEnoughPrices { needed: usize, got: usize },
    /// For network adapters (a REST broker that is down); the paper broker never fails so.
    #[allow(dead_code, reason = "no network adapter exists yet")]
    #[error("{broker} is unavailable ({reason}): try again later")]
    Unavailable { broker: String, reason: String },
}

/// A broker answer that is already known: the synchronous brokers' way to fill [`BrokerFuture`].
pub fn ready<'a, T: Send + 'a>(result: Result<T, BrokerError>) -> BrokerFuture<'a, T> {
    Box::pin(std::future::ready(result))
}
