//! Trading rails and the order journal's control requests: the part of the supervisor⇄worker
//! contract that concerns money.
//!
//! The supervisor puts a session principal's [`TradingPolicy`] in the worker's hello: its
//! [`Rails`] (which the worker enforces inside every order it executes) and the live brokers
//! it may list. While executing an order the worker asks the supervisor, over its private
//! socket, with JSON-RPC requests in the [`CONTROL_METHOD_PREFIX`] namespace that the
//! supervisor answers itself and never relays to the client:
//!
//! 1. [`METHOD_ORDER_INTENT`] with an [`OrderIntent`] before the order is sent: the supervisor
//!    checks the principal's daily notional across all its sessions, reserves the amount,
//!    writes the intent to the order journal (flushed to disk) and answers an [`IntentAnswer`];
//!    a refused intent places nothing.
//! 2. [`METHOD_ORDER_OUTCOME`] with an [`OrderOutcome`] once the broker answered: the
//!    supervisor writes the outcome and keeps the reservation (placed, or unknown) or releases
//!    it (refused, not confirmed, replayed).
//! 3. [`METHOD_ORDER_EVENT`] with an [`OrderEvent`] for what needs one line only
//!    (cancellations).
//!
//! Every record names the broker and what was asked — never a credential.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Methods a worker sends the supervisor, which answers them itself.
pub const CONTROL_METHOD_PREFIX: &str = "bulkhead/";
/// Before an order is sent: check and reserve the daily notional, journal the intent.
pub const METHOD_ORDER_INTENT: &str = "bulkhead/trading/intent";
/// After the broker answered: journal the outcome, keep or release the reservation.
pub const METHOD_ORDER_OUTCOME: &str = "bulkhead/trading/outcome";
/// A one-line journal record (cancellations).
pub const METHOD_ORDER_EVENT: &str = "bulkhead/trading/event";

/// The live-money brokers an operator can enable (`--allow-live-broker`).
pub const LIVE_BROKERS: [&str; 1] = ["alpaca"];

/// A test-only flavour of the paper broker that calls itself live: the live-order rules are
/// tested end to end with it (only with `--test-tools`).
pub const TEST_LIVE_BROKER: &str = "paper-live";

/// What a worker may do with money for one principal: sent in the hello.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TradingPolicy {
    pub rails: Rails,
    /// Live-money brokers this session may list and use: enabled by the operator for the
    /// principal, with a maximum order notional or an explicit opt-out of one.
    pub live_brokers: Vec<String>,
}

/// The operator's limits on one principal's orders. `None` means no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rails {
    /// Largest estimated notional of one order, in the account's currency.
    pub max_order_notional: Option<Decimal>,
    /// Largest sum of order notionals per UTC day, across all of the principal's sessions
    /// (enforced by the supervisor, which sees them all; here for the worker to report).
    pub max_daily_notional: Option<Decimal>,
    /// The only symbols orders may be for (upper case), when set.
    pub allowed_symbols: Option<Vec<String>>,
    /// No orders at all (cancelling stays allowed: it only reduces risk).
    pub read_only: bool,
}

impl Rails {
    /// Whether orders in `symbol` are allowed.
    pub fn allows_symbol(&self, symbol: &str) -> bool {
        self.allowed_symbols.as_ref().is_none_or(|allowed| {
            allowed
                .iter()
                .any(|candidate| candidate.eq_ignore_ascii_case(symbol.trim()))
        })
    }
}

/// What a worker did or is about to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderAction {
    Place,
    Replace,
    Close,
    Cancel,
    CancelAll,
}

/// An order as the journal records it: what was asked, never a credential.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OrderRecord {
    pub broker: String,
    /// `simulated`, `paper` or `live`.
    pub environment: String,
    pub client_order_id: Option<String>,
    /// The order acted on (replace, cancel), or the order placed.
    pub order_id: Option<String>,
    pub symbol: Option<String>,
    pub side: Option<String>,
    pub qty: Option<Decimal>,
    pub notional: Option<Decimal>,
    #[serde(rename = "type")]
    pub order_type: Option<String>,
    pub time_in_force: Option<String>,
    pub limit_price: Option<Decimal>,
    pub stop_price: Option<Decimal>,
    pub take_profit_price: Option<Decimal>,
    pub stop_loss_price: Option<Decimal>,
    /// The order's notional sized from the broker's prices.
    pub estimated_notional: Option<Decimal>,
}

/// [`METHOD_ORDER_INTENT`]'s parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderIntent {
    pub action: OrderAction,
    #[serde(flatten)]
    pub order: OrderRecord,
    /// What the order adds to the principal's daily notional.
    pub counted_notional: Decimal,
}

/// The supervisor's answer to an intent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentAnswer {
    pub accepted: bool,
    /// Names the intent in its outcome (and in the journal); set when accepted.
    #[serde(default)]
    pub intent_id: Option<String>,
    /// Why the order may not be sent, in a sentence for the caller; set when refused.
    #[serde(default)]
    pub refusal: Option<String>,
}

/// How an order ended, as far as the worker knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderResult {
    /// The broker has the order (whatever its status).
    Accepted,
    /// The `client_order_id` was used before: nothing new was placed.
    Replayed,
    /// The broker refused it, or it was never sent.
    Refused,
    /// A live order the user did not confirm.
    NotConfirmed,
    /// The broker may or may not have it (counted against the daily notional).
    Unknown,
}

impl OrderResult {
    /// Whether the intent's notional stays counted against the day.
    pub fn counts(self) -> bool {
        matches!(self, OrderResult::Accepted | OrderResult::Unknown)
    }
}

/// [`METHOD_ORDER_OUTCOME`]'s parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderOutcome {
    pub intent_id: String,
    pub result: OrderResult,
    #[serde(default)]
    pub order_id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub filled_qty: Option<Decimal>,
    #[serde(default)]
    pub avg_fill_price: Option<Decimal>,
    /// The broker's or the worker's reason, when refused.
    #[serde(default)]
    pub reason: Option<String>,
}

/// [`METHOD_ORDER_EVENT`]'s parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEvent {
    pub action: OrderAction,
    #[serde(flatten)]
    pub order: OrderRecord,
    pub result: OrderResult,
    /// The orders affected (e.g. every order `orders_cancel_all` cancelled).
    #[serde(default)]
    pub order_ids: Vec<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// The answer to an outcome or an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub recorded: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_intent_is_flat_and_amounts_are_strings() {
        let intent = OrderIntent {
            action: OrderAction::Place,
            order: OrderRecord {
                broker: "paper".into(),
                symbol: Some("AAPL".into()),
                qty: Some(Decimal::new(5, 0)),
                order_type: Some("limit".into()),
                ..OrderRecord::default()
            },
            counted_notional: Decimal::new(95_000, 2),
        };
        let json = serde_json::to_value(&intent).unwrap();
        assert_eq!(json["action"], "place");
        assert_eq!(json["symbol"], "AAPL");
        assert_eq!(json["type"], "limit");
        assert_eq!(json["counted_notional"], "950.00");
        assert_eq!(serde_json::from_value::<OrderIntent>(json).unwrap(), intent);
    }

    #[test]
    fn allowed_symbols_ignore_case_and_none_allows_all() {
        let rails = Rails {
            allowed_symbols: Some(vec!["AAPL".into(), "BTC-USD".into()]),
            ..Rails::default()
        };
        assert!(rails.allows_symbol("btc-usd"));
        assert!(!rails.allows_symbol("MSFT"));
        assert!(Rails::default().allows_symbol("MSFT"));
        assert!(OrderResult::Unknown.counts() && !OrderResult::Replayed.counts());
    }
}
