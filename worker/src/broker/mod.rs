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

pub mod alpaca;
pub mod confirm;
pub mod credentials;
pub mod desk;
pub mod indicators;
pub mod model;
pub mod paper;
pub mod rails;
pub mod registry;
pub mod tools;

use std::future::Future;
use std::pin::Pin;

use rust_decimal::Decimal;

pub use credentials::{CredentialSource, Credentials, ResolveError};
pub use model::{
    Account, Bars, BarsRequest, BrokerDescription, CloseAmount, CloseRequest, Environment,
    MarketClock, Order, OrderAmount, OrderFilter, OrderLookup, OrderRequest, OrderStatus,
    OrderType, Placement, Position, Quote, ReplaceRequest, Side, SymbolInfo, TimeInForce,
    Timeframe,
};
pub use rails::RailRefusal;
pub use registry::BrokerRegistry;

/// What every broker call returns: a boxed future, so `dyn Broker` works.
pub type BrokerFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BrokerError>> + Send + 'a>>;

/// One trading back end, as a session sees it.
///
/// Implementations validate requests themselves and answer with [`BrokerError`]s whose
/// messages tell the caller what to do. Market data calls (`quote`, `bars`, `market_clock`,
/// `symbols`) get the credentials when the session has them; a broker whose data needs them
/// answers [`BrokerError::NotLoggedIn`] without. Account and order calls always get them.
///
/// **Idempotency.** `place_order` must place at most one order per `client_order_id`: a
/// request whose id was already used returns the original order with `replayed` set when
/// symbol, side and amount match, and [`BrokerError::ClientOrderIdReused`] otherwise. On a
/// real broker this holds across the whole account (every session of every principal using
/// those keys), and an adapter that cannot tell whether a request reached the broker (a
/// timeout, a dropped connection) looks the id up before answering rather than sending again.
///
/// **Rails are not the broker's business.** Trading limits, `dry_run` and the live-order
/// confirmation are enforced by the tools above this trait, for every broker alike.
pub trait Broker: Send {
    /// The name sessions use for this broker, e.g. `paper`.
    fn name(&self) -> &str;

    /// The environment and capabilities `broker_list` reports.
    fn describe(&self) -> BrokerDescription;

    /// Checks `credentials` (a real adapter asks its API whom they belong to). The registry,
    /// not the broker, keeps them afterwards.
    fn login<'a>(&'a mut self, credentials: &'a Credentials) -> BrokerFuture<'a, ()>;

    /// Forgets anything derived from the credentials (a session token, say).
    fn logout(&mut self) -> BrokerFuture<'_, ()>;

    /// The current price of `symbol`.
    fn quote<'a>(
        &'a mut self,
        credentials: Option<&'a Credentials>,
        symbol: &'a str,
    ) -> BrokerFuture<'a, Quote>;

    /// Completed OHLCV bars of a symbol, oldest first.
    fn bars<'a>(
        &'a mut self,
        credentials: Option<&'a Credentials>,
        request: BarsRequest,
    ) -> BrokerFuture<'a, Bars>;

    /// The clock of `market` (e.g. `us_equity`), or of every market the broker trades.
    fn market_clock<'a>(
        &'a mut self,
        credentials: Option<&'a Credentials>,
        market: Option<&'a str>,
    ) -> BrokerFuture<'a, Vec<MarketClock>>;

    /// Tradable symbols whose symbol or name contains `query` (case-insensitive), or all.
    fn symbols<'a>(
        &'a mut self,
        credentials: Option<&'a Credentials>,
        query: Option<&'a str>,
    ) -> BrokerFuture<'a, Vec<SymbolInfo>>;

    fn account<'a>(&'a mut self, credentials: &'a Credentials) -> BrokerFuture<'a, Account>;

    fn positions<'a>(&'a mut self, credentials: &'a Credentials)
    -> BrokerFuture<'a, Vec<Position>>;

    fn orders<'a>(
        &'a mut self,
        credentials: &'a Credentials,
        filter: OrderFilter,
    ) -> BrokerFuture<'a, Vec<Order>>;

    /// One order by its id or its `client_order_id`, with its legs.
    fn order<'a>(
        &'a mut self,
        credentials: &'a Credentials,
        lookup: OrderLookup,
    ) -> BrokerFuture<'a, Order>;

    fn place_order<'a>(
        &'a mut self,
        credentials: &'a Credentials,
        request: OrderRequest,
    ) -> BrokerFuture<'a, Placement>;

    /// Replaces an open order with a new one carrying the changes; returns the new order
    /// (whose `replaces` names the old one).
    fn replace_order<'a>(
        &'a mut self,
        credentials: &'a Credentials,
        order_id: &'a str,
        request: ReplaceRequest,
    ) -> BrokerFuture<'a, Order>;

    fn cancel_order<'a>(
        &'a mut self,
        credentials: &'a Credentials,
        order_id: &'a str,
    ) -> BrokerFuture<'a, Order>;

    /// Cancels every open order, or those in `symbol`; returns the orders it cancelled.
    fn cancel_all<'a>(
        &'a mut self,
        credentials: &'a Credentials,
        symbol: Option<&'a str>,
    ) -> BrokerFuture<'a, Vec<Order>>;

    /// Closes all or part of a position with a market order on the other side; returns it.
    fn close_position<'a>(
        &'a mut self,
        credentials: &'a Credentials,
        request: CloseRequest,
    ) -> BrokerFuture<'a, Order>;
}

/// A broker call that failed, worded for the caller: each message says what to do next.
///
/// [`BrokerError::kind`] names the variant in a stable, machine-readable way (tool errors
/// carry it in `structuredContent.error.kind`), so a model can branch on it without parsing
/// the sentence.
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
    #[error("notional must be positive, got {notional}: pass an amount above zero")]
    NonPositiveNotional { notional: Decimal },
    #[error("pass either qty or notional, not both")]
    QtyAndNotional,
    #[error("pass qty (how many) or notional (how much money)")]
    MissingQtyOrNotional,
    #[error("qty {qty} has more decimal places than {symbol} allows ({max_decimals}): round it")]
    QuantityPrecision {
        symbol: String,
        qty: Decimal,
        max_decimals: u32,
    },
    #[error(
        "{field} {price} has more decimal places than {symbol} allows ({max_decimals}): round it"
    )]
    PricePrecision {
        symbol: String,
        field: &'static str,
        price: Decimal,
        max_decimals: u32,
    },
    #[error("{symbol} is not fractionable: {what} needs whole quantities")]
    NotFractionable { symbol: String, what: String },
    #[error("the order is below the minimum of {minimum} for {symbol}: increase it")]
    BelowMinimum { symbol: String, minimum: String },
    #[error("{field} must be positive, got {price}: pass a price above zero")]
    NonPositivePrice { field: &'static str, price: Decimal },
    #[error("a {order_type} order needs limit_price: pass limit_price, or change type")]
    MissingLimitPrice { order_type: &'static str },
    #[error("limit_price applies only to limit and stop_limit orders: drop it, or change type")]
    UnexpectedLimitPrice,
    #[error("a {order_type} order needs stop_price: pass stop_price, or change type")]
    MissingStopPrice { order_type: &'static str },
    #[error("stop_price applies only to stop and stop_limit orders: drop it, or change type")]
    UnexpectedStopPrice,
    #[error("{broker} does not accept {what}: {advice}")]
    NotSupported {
        broker: String,
        what: String,
        advice: String,
    },
    #[error("invalid bracket: {reason}")]
    InvalidBracket { reason: String },
    #[error("order too large: {qty} at {price} is beyond what an account can hold; reduce qty")]
    OrderTooLarge { qty: Decimal, price: Decimal },
    #[error(
        "insufficient buying power: the order needs {needed} {currency} but buying power is \
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
    #[error("no position in {symbol} on {broker}: call positions to list them")]
    NoPosition { broker: String, symbol: String },
    #[error("client_order_id must be 1 to {max} characters long: shorten it")]
    InvalidClientOrderId { max: usize },
    #[error(
        "client_order_id {client_order_id} was already used for another order ({original}): \
         use a new client_order_id for a new order"
    )]
    ClientOrderIdReused {
        client_order_id: String,
        original: String,
    },
    #[error("this session has placed the most orders {broker} allows ({max}): open a new session")]
    TooManyOrders { broker: String, max: usize },
    #[error("no order {order_id} on {broker}: call orders to list them")]
    UnknownOrder { broker: String, order_id: String },
    #[error("order {order_id} is {status}: only open orders can be {action}")]
    OrderNotOpen {
        order_id: String,
        status: &'static str,
        action: &'static str,
    },
    #[error("the {market} market is closed and {broker} does not queue {what}: {advice}")]
    MarketClosed {
        broker: String,
        market: String,
        what: String,
        advice: String,
    },
    #[allow(
        dead_code,
        reason = "network adapters construct it; paper never fails so"
    )]
    #[error("{broker} refused the order: {reason}")]
    Rejected { broker: String, reason: String },
    #[allow(
        dead_code,
        reason = "network adapters construct it; paper never fails so"
    )]
    #[error("{broker} is rate-limiting requests: retry in {retry_after_seconds} s")]
    RateLimited {
        broker: String,
        retry_after_seconds: u64,
    },
    #[allow(
        dead_code,
        reason = "network adapters construct it; paper never fails so"
    )]
    #[error("{broker} is unreachable ({reason}): try again later")]
    Unreachable { broker: String, reason: String },
    #[error(
        "{broker} refused the order for lack of buying power ({reason}): reduce qty or cancel open buy orders"
    )]
    InsufficientBuyingPower { broker: String, reason: String },
    #[error(
        "the order was not placed on {broker} ({reason}); placing it again with client_order_id \
         {client_order_id} is safe"
    )]
    NotPlaced {
        broker: String,
        client_order_id: String,
        reason: String,
    },
    #[error(
        "nobody knows yet whether {broker} placed the order ({reason}): call order_get with \
         client_order_id {client_order_id} before placing anything; placing it again with that \
         same client_order_id is safe"
    )]
    PlacementUnknown {
        broker: String,
        client_order_id: String,
        reason: String,
    },
    #[error("{what} must be {range}, got {got}: pass a value in that range")]
    OutOfRange {
        what: &'static str,
        range: String,
        got: String,
    },
    #[error("period must be between 1 and {max}, got {period}: pass a period in that range")]
    InvalidPeriod { period: u32, max: u32 },
    #[error("the indicator needs {needed} prices but {got} are available: use a shorter period")]
    NotEnoughPrices { needed: usize, got: usize },
}

impl BrokerError {
    /// A stable, machine-readable name for the error's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            BrokerError::UnknownBroker { .. } => "unknown_broker",
            BrokerError::NoActiveBroker => "no_active_broker",
            BrokerError::NotLoggedIn { .. } => "not_logged_in",
            BrokerError::CredentialsRefused { .. } => "credentials_refused",
            BrokerError::MissingLoginCredentials
            | BrokerError::AmbiguousLoginCredentials
            | BrokerError::CredentialRef(_) => "invalid_login",
            BrokerError::UnknownSymbol { .. } => "unknown_symbol",
            BrokerError::InsufficientCash { .. } | BrokerError::InsufficientBuyingPower { .. } => {
                "insufficient_buying_power"
            }
            BrokerError::NotPlaced { .. } => "not_placed",
            BrokerError::PlacementUnknown { .. } => "placement_unknown",
            BrokerError::InsufficientPosition { .. } | BrokerError::NoPosition { .. } => {
                "insufficient_position"
            }
            BrokerError::ClientOrderIdReused { .. } => "client_order_id_reused",
            BrokerError::UnknownOrder { .. } => "unknown_order",
            BrokerError::OrderNotOpen { .. } => "order_not_open",
            BrokerError::MarketClosed { .. } => "market_closed",
            BrokerError::Rejected { .. } => "rejected",
            BrokerError::RateLimited { .. } => "rate_limited",
            BrokerError::Unreachable { .. } => "unreachable",
            BrokerError::NotSupported { .. } => "not_supported",
            BrokerError::TooManyOrders { .. } => "too_many_orders",
            _ => "invalid_request",
        }
    }

    /// Seconds after which a retry may succeed, for a rate-limited call.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            BrokerError::RateLimited {
                retry_after_seconds,
                ..
            } => Some(*retry_after_seconds),
            _ => None,
        }
    }
}

/// A broker answer that is already known: the synchronous brokers' way to fill [`BrokerFuture`].
pub fn ready<'a, T: Send + 'a>(result: Result<T, BrokerError>) -> BrokerFuture<'a, T> {
    Box::pin(std::future::ready(result))
}
