//! The values brokers exchange with sessions: quotes, bars, accounts, positions, orders, market
//! clocks, symbols and the broker's own description.
//!
//! Every amount of money and every quantity is a [`Decimal`], so sums are exact; serialized to
//! JSON, a decimal is a string ("123.45"), which no client will round through a binary float.
//! Times serialize as RFC 3339 strings in UTC. These types are the contract between the tools
//! and every [`super::Broker`]: a REST adapter maps its API onto them, and the names of their
//! fields are part of the product's interface (they reach clients in tool results).

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
    /// The price `market_value` is computed at.
    pub current_price: Decimal,
    pub market_value: Decimal,
    pub unrealized_pnl: Decimal,
}

/// Which kind of money a broker trades: a model must always be able to tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// A simulated market inside Bulkhead (`paper`): nothing leaves the process.
    Simulated,
    /// A broker's own paper-trading account: a real API, play money.
    Paper,
    /// Real money. Every order needs the user's confirmation.
    Live,
}

/// What `broker_list` says about a broker beyond its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokerDescription {
    pub environment: Environment,
    /// The order types it accepts.
    pub order_types: Vec<OrderType>,
    /// The times in force it accepts.
    pub time_in_force: Vec<TimeInForce>,
    /// Whether it takes `notional` (a money amount) instead of `qty` for market orders.
    pub notional_orders: bool,
    /// Whether it takes `take_profit_price` / `stop_loss_price` (bracket and OTO orders).
    pub bracket_orders: bool,
    /// The markets it trades (see `market_clock`).
    pub markets: Vec<String>,
    /// The currency its account is kept in.
    pub account_currency: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Buy,
    Sell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderType {
    /// Fills at once at the market price.
    Market,
    /// Rests until the market reaches `limit_price`.
    Limit,
    /// Becomes a market order once the market reaches `stop_price`.
    Stop,
    /// Becomes a limit order at `limit_price` once the market reaches `stop_price`.
    StopLimit,
}

/// How long an order stays working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TimeInForce {
    /// Until the end of the trading day it works in; expires then.
    Day,
    /// Good till cancelled.
    Gtc,
    /// Immediate or cancel: what fills at once fills, the rest is cancelled.
    Ioc,
    /// Fill or kill: fills completely at once, or is cancelled.
    Fok,
}

/// Where an order stands. Brokers map their own statuses onto these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Received, not yet acknowledged by the market.
    Pending,
    /// Acknowledged but not working yet: queued for the next market open.
    Accepted,
    /// Working at the market.
    Open,
    /// A bracket or OTO leg waiting for its entry order to fill.
    Held,
    PartiallyFilled,
    Filled,
    /// A cancellation was requested and is not confirmed yet.
    PendingCancel,
    /// A replacement was requested and is not confirmed yet.
    PendingReplace,
    Cancelled,
    /// A day order past its trading day, or an unfilled IOC/FOK remainder.
    Expired,
    Rejected,
    /// Replaced by another order (see `replaced_by`).
    Replaced,
}

/// How an order relates to others.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderClass {
    /// One order on its own.
    #[default]
    Simple,
    /// An entry with a take-profit and a stop-loss leg; when one leg fills the other is
    /// cancelled.
    Bracket,
    /// An entry with one exit leg (one-triggers-other).
    Oto,
}

/// Which orders the `orders` tool lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderFilter {
    /// Only orders still working or waiting to work.
    Open,
    /// Only orders that are done (filled, cancelled, expired, rejected, replaced).
    Closed,
    /// Every order, newest last.
    #[default]
    All,
}

/// How much an order is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderAmount {
    /// A quantity of the symbol (fractional where the symbol allows it).
    Qty(Decimal),
    /// A sum of money in the account's currency; the broker works out the (fractional)
    /// quantity when it fills. Market orders only.
    Notional(Decimal),
}

/// What a caller asks a broker to place; checked by the broker, not here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    pub symbol: String,
    pub side: Side,
    pub amount: OrderAmount,
    pub order_type: OrderType,
    /// `None`: the broker's default for the symbol (day for equities, gtc for crypto).
    pub time_in_force: Option<TimeInForce>,
    pub limit_price: Option<Decimal>,
    pub stop_price: Option<Decimal>,
    /// A take-profit leg: a limit order on the other side at this price.
    pub take_profit_price: Option<Decimal>,
    /// A stop-loss leg: a stop order on the other side at this price.
    pub stop_loss_price: Option<Decimal>,
    /// Always set: the tools generate one when the caller gave none. A broker must place at
    /// most one order per id (see [`super::Broker::place_order`]).
    pub client_order_id: String,
}

/// What `order_replace` may change; `None` keeps the order's value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplaceRequest {
    pub qty: Option<Decimal>,
    pub limit_price: Option<Decimal>,
    pub stop_price: Option<Decimal>,
    pub time_in_force: Option<TimeInForce>,
    /// The replacement's own id; the tools always set one.
    pub client_order_id: Option<String>,
}

/// How an order is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderLookup {
    OrderId(String),
    ClientOrderId(String),
}

/// How much of a position `position_close` sells (or buys back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseAmount {
    All,
    Qty(Decimal),
    /// A percentage of the position, above 0 and at most 100.
    Percent(Decimal),
}

/// A request to close all or part of a position with a market order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseRequest {
    pub symbol: String,
    pub amount: CloseAmount,
    /// The closing order's id; the tools always set one.
    pub client_order_id: String,
}

/// One execution of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fill {
    pub qty: Decimal,
    pub price: Decimal,
    #[serde(serialize_with = "rfc3339")]
    pub time: DateTime<Utc>,
}

/// An order as the broker keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Order {
    pub order_id: String,
    pub client_order_id: String,
    pub symbol: String,
    pub side: Side,
    #[serde(rename = "type")]
    pub order_type: OrderType,
    pub time_in_force: TimeInForce,
    pub order_class: OrderClass,
    /// `None` for a notional order until it fills.
    pub qty: Option<Decimal>,
    /// The money amount of a notional order.
    pub notional: Option<Decimal>,
    pub limit_price: Option<Decimal>,
    pub stop_price: Option<Decimal>,
    pub status: OrderStatus,
    pub filled_qty: Decimal,
    /// Quantity-weighted average price of the fills so far.
    pub avg_fill_price: Option<Decimal>,
    pub fills: Vec<Fill>,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339_option")]
    pub filled_at: Option<DateTime<Utc>>,
    /// The entry order of a bracket or OTO leg.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_order_id: Option<String>,
    /// The legs of a bracket or OTO entry.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub legs: Vec<Order>,
    /// The order this one replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// The order that replaced this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
    /// Why the broker rejected, expired or cancelled it, when it says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
}

/// The answer to `place_order`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub order: Order,
    /// True when the `client_order_id` was already used: `order` is the original order and
    /// nothing new was placed.
    pub replayed: bool,
    /// How the broker knows the order was placed, when it took more than an answer: e.g. the
    /// answer was lost and the order was then found by its `client_order_id`.
    pub note: Option<String>,
}

/// The width of one bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Timeframe {
    #[serde(rename = "1m")]
    OneMinute,
    #[serde(rename = "5m")]
    FiveMinutes,
    #[serde(rename = "15m")]
    FifteenMinutes,
    #[serde(rename = "1h")]
    OneHour,
    #[serde(rename = "1d")]
    OneDay,
}

/// Which bars to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BarsRequest {
    pub symbol: String,
    pub timeframe: Timeframe,
    /// At most this many bars; the tools bound it.
    pub limit: usize,
    /// With `start`: the first `limit` bars from `start` on (up to `end`); without: the last
    /// `limit` bars up to `end` (or now).
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

/// One open-high-low-close-volume bar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bar {
    /// The bar's start.
    #[serde(serialize_with = "rfc3339")]
    pub time: DateTime<Utc>,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub close: Decimal,
    pub volume: Decimal,
}

/// Completed bars of one symbol, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bars {
    pub symbol: String,
    pub timeframe: Timeframe,
    pub bars: Vec<Bar>,
}

/// Whether a market is open, and when it next opens and closes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarketClock {
    /// e.g. `us_equity`, `crypto`.
    pub market: String,
    pub is_open: bool,
    #[serde(serialize_with = "rfc3339")]
    pub time: DateTime<Utc>,
    /// `None` for a market that never closes.
    #[serde(serialize_with = "rfc3339_option")]
    pub next_open: Option<DateTime<Utc>>,
    #[serde(serialize_with = "rfc3339_option")]
    pub next_close: Option<DateTime<Utc>>,
}

/// One tradable symbol and the sizes its orders may take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SymbolInfo {
    pub symbol: String,
    pub name: String,
    /// The market it trades on (see `market_clock`).
    pub market: String,
    /// The currency it is quoted in.
    pub currency: String,
    pub tradable: bool,
    /// The smallest price step.
    pub price_increment: Decimal,
    /// The smallest quantity step of an order.
    pub qty_increment: Decimal,
    /// Whether fractional quantities and notional orders are accepted.
    pub fractionable: bool,
    /// The smallest quantity an order may have.
    pub min_qty: Decimal,
    /// The smallest notional (money amount) an order may have, when the broker has one.
    pub min_notional: Option<Decimal>,
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

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Simulated => "simulated",
            Environment::Paper => "paper",
            Environment::Live => "live",
        }
    }
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }

    /// The side that closes a position opened on this side.
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

impl OrderType {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderType::Market => "market",
            OrderType::Limit => "limit",
            OrderType::Stop => "stop",
            OrderType::StopLimit => "stop_limit",
        }
    }

    /// Every order type, in the order brokers list them.
    pub const ALL: [OrderType; 4] = [
        OrderType::Market,
        OrderType::Limit,
        OrderType::Stop,
        OrderType::StopLimit,
    ];

    pub fn needs_limit_price(self) -> bool {
        matches!(self, OrderType::Limit | OrderType::StopLimit)
    }

    pub fn needs_stop_price(self) -> bool {
        matches!(self, OrderType::Stop | OrderType::StopLimit)
    }
}

impl TimeInForce {
    pub fn as_str(self) -> &'static str {
        match self {
            TimeInForce::Day => "day",
            TimeInForce::Gtc => "gtc",
            TimeInForce::Ioc => "ioc",
            TimeInForce::Fok => "fok",
        }
    }

    /// Every time in force, in the order brokers list them.
    pub const ALL: [TimeInForce; 4] = [
        TimeInForce::Day,
        TimeInForce::Gtc,
        TimeInForce::Ioc,
        TimeInForce::Fok,
    ];
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Accepted => "accepted",
            OrderStatus::Open => "open",
            OrderStatus::Held => "held",
            OrderStatus::PartiallyFilled => "partially_filled",
            OrderStatus::Filled => "filled",
            OrderStatus::PendingCancel => "pending_cancel",
            OrderStatus::PendingReplace => "pending_replace",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Expired => "expired",
            OrderStatus::Rejected => "rejected",
            OrderStatus::Replaced => "replaced",
        }
    }

    /// Whether the order is done: nothing more will fill, and it cannot be cancelled.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OrderStatus::Filled
                | OrderStatus::Cancelled
                | OrderStatus::Expired
                | OrderStatus::Rejected
                | OrderStatus::Replaced
        )
    }
}

impl OrderFilter {
    /// Whether an order of `status` belongs in this list.
    pub fn admits(self, status: OrderStatus) -> bool {
        match self {
            OrderFilter::Open => !status.is_final(),
            OrderFilter::Closed => status.is_final(),
            OrderFilter::All => true,
        }
    }
}

impl OrderAmount {
    /// The quantity, for a quantity order.
    pub fn qty(self) -> Option<Decimal> {
        match self {
            OrderAmount::Qty(qty) => Some(qty),
            OrderAmount::Notional(_) => None,
        }
    }

    /// The money amount, for a notional order.
    pub fn notional(self) -> Option<Decimal> {
        match self {
            OrderAmount::Qty(_) => None,
            OrderAmount::Notional(notional) => Some(notional),
        }
    }
}

impl Timeframe {
    pub fn as_str(self) -> &'static str {
        match self {
            Timeframe::OneMinute => "1m",
            Timeframe::FiveMinutes => "5m",
            Timeframe::FifteenMinutes => "15m",
            Timeframe::OneHour => "1h",
            Timeframe::OneDay => "1d",
        }
    }

    /// The bar's width in seconds (a day bar of an equity covers its trading session).
    pub fn seconds(self) -> i64 {
        match self {
            Timeframe::OneMinute => 60,
            Timeframe::FiveMinutes => 300,
            Timeframe::FifteenMinutes => 900,
            Timeframe::OneHour => 3_600,
            Timeframe::OneDay => 86_400,
        }
    }
}

impl Order {
    /// Whether the order may still fill or be cancelled.
    pub fn is_open(&self) -> bool {
        !self.status.is_final()
    }

    /// One line for a tool's text: `buy 5 AAPL limit 190.00 day, open`.
    pub fn summary(&self) -> String {
        let amount = match (self.qty, self.notional) {
            (Some(qty), _) => qty.to_string(),
            (None, Some(notional)) => format!("{notional} worth of"),
            (None, None) => "?".to_owned(),
        };
        let mut text = format!(
            "{} {amount} {} {}",
            self.side.as_str(),
            self.symbol,
            self.order_type.as_str()
        );
        if let Some(price) = self.limit_price {
            text.push_str(&format!(" limit {price}"));
        }
        if let Some(price) = self.stop_price {
            text.push_str(&format!(" stop {price}"));
        }
        text.push_str(&format!(
            " {}, {}",
            self.time_in_force.as_str(),
            self.status.as_str()
        ));
        if let Some(price) = self.avg_fill_price {
            text.push_str(&format!(" {} at {price}", self.filled_qty));
        }
        text
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

    #[test]
    fn enums_use_the_interface_spelling() {
        let as_json = |value: serde_json::Value| value.as_str().unwrap().to_owned();
        assert_eq!(
            as_json(serde_json::to_value(OrderType::StopLimit).unwrap()),
            "stop_limit"
        );
        assert_eq!(
            as_json(serde_json::to_value(OrderStatus::PartiallyFilled).unwrap()),
            OrderStatus::PartiallyFilled.as_str()
        );
        assert_eq!(
            as_json(serde_json::to_value(Timeframe::FifteenMinutes).unwrap()),
            "15m"
        );
        assert_eq!(
            serde_json::from_value::<TimeInForce>("ioc".into()).unwrap(),
            TimeInForce::Ioc
        );
        assert!(OrderFilter::Open.admits(OrderStatus::Held));
        assert!(OrderFilter::Closed.admits(OrderStatus::Replaced));
    }
}
