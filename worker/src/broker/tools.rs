//! The broker tools of one session, as plain async methods ready for the rmcp router.
//!
//! [`BrokerTools`] wraps the session's [`BrokerRegistry`], its principal's trading
//! [`Rails`] and the live-order [`Confirmer`]; each method takes its tool's argument struct
//! and answers a `CallToolResult` with `structuredContent` and a one-line text. Failures a
//! caller can act on (not logged in, unknown symbol, insufficient buying power, a rail…) are
//! tool errors (`isError: true`) whose text says what to do and whose
//! `structuredContent.error.kind` names the kind. Decimals in results are JSON strings so that
//! no client rounds money through a binary float.
//!
//! Calls take the registry's lock for their whole duration, including any await on a broker:
//! a session's calls then apply one at a time, which keeps cash checks and the idempotency
//! lookups consistent under concurrent calls. The one exception is the wait for a user's
//! confirmation of a live order, which releases the lock so that `orders_cancel_all` (the kill
//! switch) is never held up by a pending question. Orders themselves go through
//! [`trading`]: rails, confirmation, the desk's intent, the broker, the desk's outcome.

use std::sync::Arc;

use bulkhead_protocol::trading::Rails;
use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::confirm::{ConfirmChannel, Confirmer};
use super::desk::{Desk, DeskError};
use super::rails::RailRefusal;
use super::{BrokerError, BrokerRegistry, OrderFilter};

mod args;
pub mod descriptions;
mod market;
mod plan;
mod trading;

pub use args::{
    BarsArgs, BrokerArgs, BrokerNameArgs, IndicatorArgs, LoginArgs, MarketClockArgs,
    OrderCancelArgs, OrderGetArgs, OrderPlaceArgs, OrderReplaceArgs, OrdersArgs,
    OrdersCancelAllArgs, PositionCloseArgs, QuoteArgs, SymbolsArgs,
};
#[cfg(test)]
pub use trading::new_client_order_id;

/// Why a tool failed, worded for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Rail(#[from] RailRefusal),
    /// The supervisor refused the order against the principal's daily notional.
    #[error("{0}")]
    DailyLimit(String),
    #[error("{0}; nothing was placed")]
    Desk(#[from] DeskError),
    #[error("the live order was not placed: {0}")]
    NotConfirmed(String),
    #[error("{0}")]
    Invalid(String),
}

impl ToolError {
    /// A stable, machine-readable name for the error's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            ToolError::Broker(error) => error.kind(),
            ToolError::Rail(refusal) => refusal.kind(),
            ToolError::DailyLimit(_) => "max_daily_notional",
            ToolError::Desk(_) => "unavailable",
            ToolError::NotConfirmed(_) => "not_confirmed",
            ToolError::Invalid(_) => "invalid_request",
        }
    }
}

/// What one call can use beyond the session's own state: where its orders are announced and
/// how a live order is confirmed.
pub struct TradeContext {
    pub desk: Arc<dyn Desk>,
    pub confirm: ConfirmChannel,
}

/// The broker tools of one session.
#[derive(Clone)]
pub struct BrokerTools {
    registry: Arc<Mutex<BrokerRegistry>>,
    rails: Arc<Rails>,
    confirmer: Arc<Confirmer>,
}

type Reply = Result<CallToolResult, ToolError>;

impl BrokerTools {
    pub fn new(registry: BrokerRegistry, rails: Rails) -> Self {
        Self {
            registry: Arc::new(Mutex::new(registry)),
            rails: Arc::new(rails),
            confirmer: Arc::new(Confirmer::new()),
        }
    }

    /// `broker_list`.
    pub async fn broker_list(&self) -> CallToolResult {
        let brokers = self.registry.lock().await.statuses();
        let summary: Vec<String> = brokers
            .iter()
            .map(|status| {
                let login = if status.authenticated {
                    "logged in"
                } else {
                    "not logged in"
                };
                let active = if status.active { ", active" } else { "" };
                let environment = status.description.environment.as_str();
                format!("{} ({environment}, {login}{active})", status.name)
            })
            .collect();
        success(
            json!({ "brokers": brokers }),
            format!("brokers: {}", summary.join(", ")),
        )
    }

    /// `broker_login`.
    pub async fn broker_login(&self, args: LoginArgs) -> CallToolResult {
        let (broker, source) = match args.into_source() {
            Ok(parts) => parts,
            Err(error) => return failure(&error.into()),
        };
        let mut registry = self.registry.lock().await;
        if let Err(error) = registry.login(&broker, source).await {
            return failure(&error.into());
        }
        let active = registry.active_broker() == Some(broker.as_str());
        let structured = json!({ "broker": broker, "authenticated": true, "active": active });
        success(structured, format!("logged in to {broker}"))
    }

    /// `broker_logout`.
    pub async fn broker_logout(&self, args: BrokerNameArgs) -> CallToolResult {
        let mut registry = self.registry.lock().await;
        match registry.logout(&args.broker).await {
            Ok(was_logged_in) => {
                let broker = &args.broker;
                let text = if was_logged_in {
                    format!("logged out of {broker}; its credentials were wiped")
                } else {
                    format!("was not logged in to {broker}; nothing to do")
                };
                success(json!({ "broker": broker, "authenticated": false }), text)
            }
            Err(error) => failure(&error.into()),
        }
    }

    /// `broker_use`.
    pub async fn broker_use(&self, args: BrokerNameArgs) -> CallToolResult {
        match self.registry.lock().await.use_broker(&args.broker) {
            Ok(()) => success(
                json!({ "active_broker": args.broker }),
                format!("active broker is now {}", args.broker),
            ),
            Err(error) => failure(&error.into()),
        }
    }

    /// `account`.
    pub async fn account(&self, args: BrokerArgs) -> CallToolResult {
        respond(account(&mut *self.registry.lock().await, args).await)
    }

    /// `positions`.
    pub async fn positions(&self, args: BrokerArgs) -> CallToolResult {
        respond(positions(&mut *self.registry.lock().await, args).await)
    }

    /// `orders`.
    pub async fn orders(&self, args: OrdersArgs) -> CallToolResult {
        respond(orders(&mut *self.registry.lock().await, args).await)
    }

    /// `order_get`.
    pub async fn order_get(&self, args: OrderGetArgs) -> CallToolResult {
        respond(order_get(&mut *self.registry.lock().await, args).await)
    }

    /// The account, positions and open orders of the active broker, for resources: `None`
    /// until the session is logged in to it.
    pub async fn snapshot(&self, what: Snapshot) -> Result<Value, ToolError> {
        let mut registry = self.registry.lock().await;
        let broker = registry.target(None)?;
        Ok(match what {
            Snapshot::Account => with_broker(&broker, &registry.account(None).await?),
            Snapshot::Positions => {
                json!({ "broker": broker, "positions": registry.positions(None).await? })
            }
            Snapshot::OpenOrders => {
                let orders = registry.orders(None, OrderFilter::Open).await?;
                json!({ "broker": broker, "orders": orders })
            }
        })
    }

    /// What `session_info` reports about brokers: `{active_broker, brokers: [{name,
    /// authenticated}]}`.
    pub async fn session_state(&self) -> Value {
        let registry = self.registry.lock().await;
        let brokers: Vec<Value> = registry
            .statuses()
            .into_iter()
            .map(|status| json!({ "name": status.name, "authenticated": status.authenticated }))
            .collect();
        json!({ "active_broker": registry.active_broker(), "brokers": brokers })
    }

    /// Logs out of every broker, wiping all credentials; for the end of the session.
    pub async fn end_session(&self) {
        self.registry.lock().await.logout_all().await;
    }
}

/// What a resource of the active broker shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snapshot {
    Account,
    Positions,
    OpenOrders,
}

async fn account(registry: &mut BrokerRegistry, args: BrokerArgs) -> Reply {
    let broker = registry.target(args.broker.as_deref())?;
    let account = registry.account(Some(&broker)).await?;
    let text = format!(
        "{broker} account: cash {cash} {currency}, equity {equity} {currency}, buying power {power} {currency}",
        cash = account.cash,
        equity = account.equity,
        power = account.buying_power,
        currency = account.currency,
    );
    Ok(success(with_broker(&broker, &account), text))
}

async fn positions(registry: &mut BrokerRegistry, args: BrokerArgs) -> Reply {
    let broker = registry.target(args.broker.as_deref())?;
    let positions = registry.positions(Some(&broker)).await?;
    let lines: Vec<String> = positions
        .iter()
        .map(|position| {
            let (symbol, qty, price) = (&position.symbol, position.qty, position.avg_price);
            format!(
                "{symbol} {qty} @ {price} (unrealized {})",
                position.unrealized_pnl
            )
        })
        .collect();
    let text = if lines.is_empty() {
        format!("{broker}: no positions")
    } else {
        format!("{broker}: {}", lines.join("; "))
    };
    Ok(success(
        json!({ "broker": broker, "positions": positions }),
        text,
    ))
}

async fn orders(registry: &mut BrokerRegistry, args: OrdersArgs) -> Reply {
    let broker = registry.target(args.broker.as_deref())?;
    let filter = args.status.unwrap_or_default();
    let orders = registry.orders(Some(&broker), filter).await?;
    let text = format!("{broker}: {} orders", orders.len());
    Ok(success(
        json!({ "broker": broker, "status": filter, "orders": orders }),
        text,
    ))
}

async fn order_get(registry: &mut BrokerRegistry, args: OrderGetArgs) -> Reply {
    let broker = registry.target(args.broker.as_deref())?;
    let order = registry.order(Some(&broker), args.lookup()?).await?;
    let mut text = format!("{broker} order {}: {}", order.order_id, order.summary());
    for leg in &order.legs {
        text.push_str(&format!("; leg {}: {}", leg.order_id, leg.summary()));
    }
    Ok(success(json!({ "broker": broker, "order": order }), text))
}

/// `value`'s JSON object with `broker` added first.
fn with_broker(broker: &str, value: &impl serde::Serialize) -> Value {
    let mut object = serde_json::Map::new();
    object.insert("broker".into(), broker.into());
    if let Ok(Value::Object(fields)) = serde_json::to_value(value) {
        object.extend(fields);
    }
    Value::Object(object)
}

fn success(structured: Value, text: String) -> CallToolResult {
    let mut result = CallToolResult::structured(structured);
    result.content = vec![ContentBlock::text(text)];
    result
}

/// A tool error: the sentence as text, and its kind (and when to retry) as structured content.
fn failure(error: &ToolError) -> CallToolResult {
    let mut detail = json!({ "kind": error.kind(), "message": error.to_string() });
    if let ToolError::Broker(broker) = error
        && let Some(seconds) = broker.retry_after_seconds()
    {
        detail["retry_after_seconds"] = json!(seconds);
    }
    let mut result = CallToolResult::structured_error(json!({ "error": detail }));
    result.content = vec![ContentBlock::text(error.to_string())];
    result
}

fn respond(reply: Reply) -> CallToolResult {
    reply.unwrap_or_else(|error| failure(&error))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod trading_tests;
