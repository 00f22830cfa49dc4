//! The arguments of the broker tools: their field names are the product's interface.
//!
//! Each struct's JSON schema (from `schemars`) is what clients see as the tool's input
//! schema, so every field's doc comment is written for the caller.

use rust_decimal::Decimal;
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;

use super::ToolError;
use crate::broker::indicators::IndicatorKind;
use crate::broker::{
    BrokerError, CloseAmount, CredentialSource, Credentials, OrderAmount, OrderFilter, OrderLookup,
    OrderType, Side, TimeInForce, Timeframe,
};

/// Arguments of `broker_login`. `Debug` shows no secret: `SecretString` redacts itself.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct LoginArgs {
    /// The broker to log in to, e.g. `paper` (see broker_list).
    pub broker: String,
    /// API key; pass it with api_secret, or use credential_ref instead.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub api_key: Option<SecretString>,
    /// API secret; pass it with api_key, or use credential_ref instead.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub api_secret: Option<SecretString>,
    /// Name of a credential your operator provisioned for you, instead of api_key and
    /// api_secret: the secret then never passes through this conversation.
    #[serde(default)]
    pub credential_ref: Option<String>,
}

impl LoginArgs {
    /// The broker and where its credentials come from: a key and secret, or a reference.
    pub fn into_source(self) -> Result<(String, CredentialSource), BrokerError> {
        let source = match (self.api_key, self.api_secret, self.credential_ref) {
            (Some(api_key), Some(api_secret), None) => {
                CredentialSource::Direct(Credentials::new(api_key, api_secret))
            }
            (None, None, Some(reference)) => CredentialSource::Reference(reference),
            (_, _, Some(_)) => return Err(BrokerError::AmbiguousLoginCredentials),
            (_, _, None) => return Err(BrokerError::MissingLoginCredentials),
        };
        Ok((self.broker, source))
    }
}

/// Arguments of `broker_logout` and `broker_use`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct BrokerNameArgs {
    /// The broker, e.g. `paper` (see broker_list).
    pub broker: String,
}

/// Arguments of `account` and `positions`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct BrokerArgs {
    /// The broker to ask; the active broker (see broker_use) if omitted.
    #[serde(default)]
    pub broker: Option<String>,
}

/// Arguments of `quote`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct QuoteArgs {
    /// The symbol, e.g. `BTC-USD`, `AAPL` or `RELIANCE.NS` (case does not matter).
    pub symbol: String,
    /// The broker to ask; the active broker (see broker_use) if omitted.
    #[serde(default)]
    pub broker: Option<String>,
}

/// Arguments of `orders`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct OrdersArgs {
    /// `open` for orders still working or waiting to work, `closed` for finished ones, `all`
    /// (the default) for every order.
    #[serde(default)]
    pub status: Option<OrderFilter>,
    /// The broker to ask; the active broker (see broker_use) if omitted.
    #[serde(default)]
    pub broker: Option<String>,
}

/// Arguments of `order_get`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct OrderGetArgs {
    /// The order's id, as order_place or orders gave it; or pass client_order_id.
    #[serde(default)]
    pub order_id: Option<String>,
    /// The client_order_id the order was placed with; or pass order_id.
    #[serde(default)]
    pub client_order_id: Option<String>,
    /// The broker holding the order; the active broker (see broker_use) if omitted.
    #[serde(default)]
    pub broker: Option<String>,
}

impl OrderGetArgs {
    pub fn lookup(&self) -> Result<OrderLookup, ToolError> {
        match (&self.order_id, &self.client_order_id) {
            (Some(id), None) => Ok(OrderLookup::OrderId(id.clone())),
            (None, Some(id)) => Ok(OrderLookup::ClientOrderId(id.clone())),
            _ => Err(ToolError::Invalid(
                "pass order_id or client_order_id (one of the two)".to_owned(),
            )),
        }
    }
}

/// Arguments of `order_place`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct OrderPlaceArgs {
    /// The symbol, e.g. `AAPL` or `BTC-USD` (see symbols).
    pub symbol: String,
    /// `buy` or `sell`.
    pub side: Side,
    /// How many, as a decimal string (e.g. "0.5") or a number; or pass notional instead.
    #[serde(default)]
    pub qty: Option<Decimal>,
    /// How much money to spend (buy) or raise (sell), in the account's currency, instead of
    /// qty: a fractional market order, on symbols whose `fractionable` is true.
    #[serde(default)]
    pub notional: Option<Decimal>,
    /// `market` (the default: fills now), `limit` (at limit_price or better), `stop` (a market
    /// order once the price reaches stop_price) or `stop_limit` (a limit order at limit_price
    /// once the price reaches stop_price).
    #[serde(rename = "type", default = "market")]
    pub order_type: OrderType,
    /// `day` (until the session's close; the default for equities), `gtc` (until cancelled;
    /// the default for crypto), `ioc` (what fills at once, the rest cancelled) or `fok` (all at
    /// once or nothing).
    #[serde(default)]
    pub time_in_force: Option<TimeInForce>,
    /// For limit and stop_limit orders.
    #[serde(default)]
    pub limit_price: Option<Decimal>,
    /// For stop and stop_limit orders.
    #[serde(default)]
    pub stop_price: Option<Decimal>,
    /// Adds a take-profit leg: a limit order on the other side at this price once this order
    /// fills. With stop_loss_price it makes a bracket order, alone an OTO order.
    #[serde(default)]
    pub take_profit_price: Option<Decimal>,
    /// Adds a stop-loss leg: a stop order on the other side at this price once this order
    /// fills; when one leg fills the other is cancelled.
    #[serde(default)]
    pub stop_loss_price: Option<Decimal>,
    /// Your own unique id for this order, up to 128 characters: a retry with the same id
    /// returns the original order and places nothing new. One is generated when omitted; the
    /// result always says which was used.
    #[serde(default)]
    pub client_order_id: Option<String>,
    /// true: check the order and return what would be sent, its estimated notional and the
    /// buying power after it, placing nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// The broker to trade with; the active broker (see broker_use) if omitted.
    #[serde(default)]
    pub broker: Option<String>,
}

fn market() -> OrderType {
    OrderType::Market
}

impl OrderPlaceArgs {
    /// The amount: qty or notional, exactly one.
    pub fn amount(&self) -> Result<OrderAmount, BrokerError> {
        match (self.qty, self.notional) {
            (Some(qty), None) => Ok(OrderAmount::Qty(qty)),
            (None, Some(notional)) => Ok(OrderAmount::Notional(notional)),
            (Some(_), Some(_)) => Err(BrokerError::QtyAndNotional),
            (None, None) => Err(BrokerError::MissingQtyOrNotional),
        }
    }
}

/// Arguments of `order_replace`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct OrderReplaceArgs {
    /// The open order to replace.
    pub order_id: String,
    /// A new quantity.
    #[serde(default)]
    pub qty: Option<Decimal>,
    /// A new limit price (limit and stop_limit orders).
    #[serde(default)]
    pub limit_price: Option<Decimal>,
    /// A new stop price (stop and stop_limit orders).
    #[serde(default)]
    pub stop_price: Option<Decimal>,
    /// A new time in force.
    #[serde(default)]
    pub time_in_force: Option<TimeInForce>,
    /// The replacement's own client_order_id; generated when omitted.
    #[serde(default)]
    pub client_order_id: Option<String>,
    /// The broker holding the order; the active broker (see broker_use) if omitted.
    #[serde(default)]
    pub broker: Option<String>,
}

/// Arguments of `order_cancel`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct OrderCancelArgs {
    /// The order's id, as order_place or orders gave it.
    pub order_id: String,
    /// The broker holding the order; the active broker (see broker_use) if omitted.
    #[serde(default)]
    pub broker: Option<String>,
}

/// Arguments of `orders_cancel_all`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct OrdersCancelAllArgs {
    /// Cancel only the orders in this symbol; every open order if omitted.
    #[serde(default)]
    pub symbol: Option<String>,
    /// The broker holding the orders; the active broker (see broker_use) if omitted.
    #[serde(default)]
    pub broker: Option<String>,
}

/// Arguments of `position_close`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct PositionCloseArgs {
    /// The position's symbol.
    pub symbol: String,
    /// Close this quantity; the whole position if neither qty nor percent is given.
    #[serde(default)]
    pub qty: Option<Decimal>,
    /// Close this percentage of the position (above 0, at most 100).
    #[serde(default)]
    pub percent: Option<Decimal>,
    /// The closing order's client_order_id; generated when omitted.
    #[serde(default)]
    pub client_order_id: Option<String>,
    /// The broker holding the position; the active broker (see broker_use) if omitted.
    #[serde(default)]
    pub broker: Option<String>,
}

impl PositionCloseArgs {
    pub fn amount(&self) -> Result<CloseAmount, ToolError> {
        match (self.qty, self.percent) {
            (None, None) => Ok(CloseAmount::All),
            (Some(qty), None) => Ok(CloseAmount::Qty(qty)),
            (None, Some(percent)) => Ok(CloseAmount::Percent(percent)),
            (Some(_), Some(_)) => Err(ToolError::Invalid(
                "pass qty or percent, not both (or neither, to close the whole position)"
                    .to_owned(),
            )),
        }
    }
}

/// Arguments of `bars`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct BarsArgs {
    /// The symbol, e.g. `AAPL` or `BTC-USD`.
    pub symbol: String,
    /// The width of a bar: `1m`, `5m`, `15m`, `1h` or `1d`.
    pub timeframe: Timeframe,
    /// How many bars, 1 to 1000 (default 100): the latest ones, or the first ones from start.
    #[serde(default)]
    pub limit: Option<usize>,
    /// RFC 3339 time, e.g. `2026-01-05T14:30:00Z`: bars from this time on.
    #[serde(default)]
    pub start: Option<String>,
    /// RFC 3339 time: bars up to this time (default now).
    #[serde(default)]
    pub end: Option<String>,
    /// The broker whose data to use; the active broker (see broker_use) if omitted.
    #[serde(default)]
    pub broker: Option<String>,
}

/// Arguments of `market_clock`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct MarketClockArgs {
    /// A market (e.g. `us_equity`, `crypto`) or a symbol; every market the broker trades if
    /// omitted.
    #[serde(default)]
    pub market: Option<String>,
    /// The broker to ask; the active broker (see broker_use) if omitted.
    #[serde(default)]
    pub broker: Option<String>,
}

/// Arguments of `symbols`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct SymbolsArgs {
    /// Only symbols whose symbol or name contains this text (any case); all if omitted.
    #[serde(default)]
    pub query: Option<String>,
    /// The broker to ask; the active broker (see broker_use) if omitted.
    #[serde(default)]
    pub broker: Option<String>,
}

/// Arguments of `indicator`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct IndicatorArgs {
    /// The symbol, e.g. `ETH-USD`.
    pub symbol: String,
    /// `rsi`, `sma` or `ema`.
    pub kind: IndicatorKind,
    /// The indicator's period, in bars: 1 to 100 (14 is usual for RSI).
    pub period: u32,
    /// The bars' width: `1m` (the default), `5m`, `15m`, `1h` or `1d`.
    #[serde(default)]
    pub timeframe: Option<Timeframe>,
    /// The broker whose prices to use; the active broker (see broker_use) if omitted.
    #[serde(default)]
    pub broker: Option<String>,
}
