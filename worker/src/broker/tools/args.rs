//! The arguments of the broker tools: their field names are the product's interface.
//!
//! Each struct's JSON schema (from `schemars`) is what clients see as the tool's input
//! schema, so every field's doc comment is written for the caller.

use rust_decimal::Decimal;
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;

use crate::broker::indicators::IndicatorKind;
use crate::broker::{BrokerError, CredentialSource, Credentials, OrderFilter, OrderType, Side};

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
    /// `open` for orders still waiting to fill, `all` (the default) for every order of this
    /// session.
    #[serde(default)]
    pub status: Option<OrderFilter>,
    /// The broker to ask; the active broker (see broker_use) if omitted.
    #[serde(default)]
    pub broker: Option<String>,
}

/// Arguments of `order_place`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct OrderPlaceArgs {
    /// The symbol, e.g. `AAPL`.
    pub symbol: String,
    /// `buy` or `sell`.
    pub side: Side,
    /// How much, as a decimal string (e.g. "0.5") or a number; must be positive.
    pub qty: Decimal,
    /// `market` (fills now) or `limit` (rests until the market reaches limit_price).
    #[serde(rename = "type")]
    pub order_type: OrderType,
    /// Required for limit orders, not allowed for market orders; a decimal string or number.
    #[serde(default)]
    pub limit_price: Option<Decimal>,
    /// Your own unique id for this order: a retry with the same id returns the original
    /// order and places nothing new.
    #[serde(default)]
    pub client_order_id: Option<String>,
    /// The broker to trade with; the active broker (see broker_use) if omitted.
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

/// Arguments of `indicator`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct IndicatorArgs {
    /// The symbol, e.g. `ETH-USD`.
    pub symbol: String,
    /// `rsi`, `sma` or `ema`.
    pub kind: IndicatorKind,
    /// The indicator's period, in one-minute prices: 1 to 100 (14 is usual for RSI).
    pub period: u32,
    /// The broker whose prices to use; the active broker (see broker_use) if omitted.
    #[serde(default)]
    pub broker: Option<String>,
}
