//! The values brokers exchange with sessions: quotes, accounts, positions, orders and price series.
//!
//! Every amount of money and every quantity is a [`Decimal`], so sums are exact; serialized to
//! JSON, a decimal is a string ("123.45"), which no client will round through a binary float.
//! Times serialize as RFC 3339 strings in UTC.

use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize, Serializer};

/// A broker's current price for one symbol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quote {
    pub symbol: String,
    pub bid: Decimal,
    pub ask: Decimal,
    pub last: Decimal,
    /// The currency the symbol is quoted in.
    pub currency: String,
    #[serde(serialize_with = "rfc3339")]
    pub time: DateTime<Utc>,
}

/// The balances of a broker account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    pub cash: Decimal,
    /// Cash plus the market value of every position.
    pub equity: Decimal,
    /// Cash not set aside for open buy orders.
    pub buying_power: Decimal,
    pub currency: String,
}

/// A holding in one symbol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Position {
    pub symbol: String,
    pub qty: Decimal,
    pub avg_price: Decimal,
    pub market_value: Decimal,
    pub unrealized_pnl: Decimal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Buy,
    Sell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderType {
    Market,
    Limit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    Open,
    Filled,
    Cancelled,
}

/// Which orders the `orders` tool lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderFilter {
    /// Only orders still waiting to fill.
    Open,
    /// Every order of this session, newest last.
    #[default]
    All,
}

/// What a caller asks a broker to do; checked by the broker, not here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    pub symbol: String,
    pub side: Side,
    pub qty: Decimal,
    pub order_type: OrderType,
    pub limit_price: Option<Decimal>,
    pub client_order_id: Option<String>,
}

/// An order as the broker keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Order {
    pub order_id: String,
    pub client_order_id: Option<String>,
    pub symbol: String,
    pub side: Side,
    #[serde(rename = "type")]
    pub order_type: OrderType,
    pub qty: Decimal,
    pub limit_price: Option<Decimal>,
    pub status: OrderStatus,
    pub fill_price: Option<Decimal>,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339_option")]
    pub filled_at: Option<DateTime<Utc>>,
}

/// The answer to `place_order`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub order: Order,
    /// True when the `client_order_id` was already used: `order` is the original order and
    /// nothing new was placed.
    pub replayed: bool,
}

/// Prices of one symbol sampled at a fixed interval, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PriceSeries {
    pub symbol: String,
    pub interval_seconds: i64,
    /// Time of the last sample.
    #[serde(serialize_with = "rfc3339")]
    pub end: DateTime<Utc>,
    pub prices: Vec<Decimal>,
}

/// `time` as RFC 3339 in UTC with whole seconds, e.g. `2026-01-02T03:04:05Z`.
pub fn format_time(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn rfc3339<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_time(time))
}

fn rfc3339_option<S: Serializer>(
    time: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => rfc3339(time, serializer),
        None => serializer.serialize_none(),
    }
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

impl OrderType {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderType::Market => "market",
            OrderType::Limit => "limit",
        }
    }
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Open => "open",
            OrderStatus::Filled => "filled",
            OrderStatus::Cancelled => "cancelled",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_and_times_serialize_as_exact_strings() {
        let quote = Quote {
            symbol: "AAPL".into(),
            bid: Decimal::new(19_012, 2),
            ask: Decimal::new(19_020, 2),
            last: Decimal::new(19_016, 2),
            currency: "USD".into(),
            time: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        };
        let json = serde_json::to_value(&quote).unwrap();
        assert_eq!(json["bid"], "190.12");
        assert_eq!(json["ask"], "190.20");
        assert_eq!(json["time"], "2023-11-14T22:13:20Z");
    }
}
