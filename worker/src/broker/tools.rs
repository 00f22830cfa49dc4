//! The broker tools of one session, as plain async methods ready for the rmcp router.
//!
//! [`BrokerTools`] wraps the session's [`BrokerRegistry`]; each method takes its tool's
//! argument struct and answers a `CallToolResult` with `structuredContent` and a one-line
//! text. Failures a caller can act on (not logged in, unknown symbol, insufficient cash…)
//! are tool errors (`isError: true`) whose text says what to do. Decimals in results are
//! JSON strings so that no client rounds money through a binary float.
//!
//! Calls take the registry's lock for their whole duration, including any await on a broker:
//! a session's calls then apply one at a time, which is what makes `client_order_id`
//! idempotency and cash checks hold under concurrent calls. Only one session uses a registry.
//!
//! Wiring into `crate::tools::SessionServer` (one tool shown; the others follow the same
//! shape, with the names and descriptions in [`descriptions`]):
//!
//! ```ignore
//! #[tool(name = "quote", description = broker::tools::descriptions::QUOTE,
//!        annotations(read_only_hint = true, open_world_hint = false))]
//! async fn quote(&self, Parameters(args): Parameters<QuoteArgs>) -> Result<CallToolResult, ErrorData> {
//!     Ok(self.broker.quote(args).await)
//! }
//! ```

use std::sync::Arc;

use rmcp::model::{CallToolResult, ContentBlock};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::model::format_time;
use super::{BarsRequest, BrokerError, BrokerRegistry, OrderAmount, OrderRequest, Timeframe};

mod args;
pub mod descriptions;

pub use args::{
    BrokerArgs, BrokerNameArgs, IndicatorArgs, LoginArgs, OrderCancelArgs, OrderPlaceArgs,
    OrdersArgs, QuoteArgs,
};

/// Decimal places of an indicator's value: finer than any price tick.
const INDICATOR_DECIMALS: u32 = 8;

/// The broker tools of one session.
#[derive(Clone)]
pub struct BrokerTools {
    registry: Arc<Mutex<BrokerRegistry>>,
}

type Reply = Result<CallToolResult, BrokerError>;

impl BrokerTools {
    pub fn new(registry: BrokerRegistry) -> Self {
        Self {
            registry: Arc::new(Mutex::new(registry)),
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
                format!("{} ({login}{active})", status.name)
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
            Err(error) => return failure(&error),
        };
        let mut registry = self.registry.lock().await;
        if let Err(error) = registry.login(&broker, source).await {
            return failure(&error);
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
            Err(error) => failure(&error),
        }
    }

    /// `broker_use`.
    pub async fn broker_use(&self, args: BrokerNameArgs) -> CallToolResult {
        match self.registry.lock().await.use_broker(&args.broker) {
            Ok(()) => success(
                json!({ "active_broker": args.broker }),
                format!("active broker is now {}", args.broker),
            ),
            Err(error) => failure(&error),
        }
    }

    /// `quote`.
    pub async fn quote(&self, args: QuoteArgs) -> CallToolResult {
        respond(quote(&mut *self.registry.lock().await, args).await)
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

    /// `order_place`.
    pub async fn order_place(&self, args: OrderPlaceArgs) -> CallToolResult {
        respond(order_place(&mut *self.registry.lock().await, args).await)
    }

    /// `order_cancel`.
    pub async fn order_cancel(&self, args: OrderCancelArgs) -> CallToolResult {
        respond(order_cancel(&mut *self.registry.lock().await, args).await)
    }

    /// `indicator`.
    pub async fn indicator(&self, args: IndicatorArgs) -> CallToolResult {
        respond(indicator(&mut *self.registry.lock().await, args).await)
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

async fn quote(registry: &mut BrokerRegistry, args: QuoteArgs) -> Reply {
    let broker = registry.target(args.broker.as_deref())?;
    let quote = registry.quote(Some(&broker), &args.symbol).await?;
    let text = format!(
        "{} on {broker}: bid {} ask {} last {} {} at {}",
        quote.symbol,
        quote.bid,
        quote.ask,
        quote.last,
        quote.currency,
        format_time(&quote.time)
    );
    Ok(success(with_broker(&broker, &quote), text))
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

async fn order_place(registry: &mut BrokerRegistry, args: OrderPlaceArgs) -> Reply {
    let broker = registry.target(args.broker.as_deref())?;
    let request = OrderRequest {
        symbol: args.symbol,
        side: args.side,
        amount: OrderAmount::Qty(args.qty),
        order_type: args.order_type,
        time_in_force: None,
        limit_price: args.limit_price,
        stop_price: None,
        take_profit_price: None,
        stop_loss_price: None,
        client_order_id: args.client_order_id.unwrap_or_else(new_client_order_id),
    };
    let placement = registry.place_order(Some(&broker), request).await?;
    let order = &placement.order;
    let mut text = format!("{broker} order {}: {}", order.order_id, order.summary());
    if placement.replayed {
        text.push_str(
            " (client_order_id already used: this is the original order; nothing new was placed)",
        );
    }
    if let Some(note) = &placement.note {
        text.push_str(&format!(" ({note})"));
    }
    let mut structured =
        json!({ "broker": broker, "order": order, "replayed": placement.replayed });
    if let Some(note) = &placement.note {
        structured["note"] = json!(note);
    }
    Ok(success(structured, text))
}

async fn order_cancel(registry: &mut BrokerRegistry, args: OrderCancelArgs) -> Reply {
    let broker = registry.target(args.broker.as_deref())?;
    let order = registry.cancel_order(Some(&broker), &args.order_id).await?;
    let text = format!("{broker}: cancelled order {}", order.order_id);
    Ok(success(json!({ "broker": broker, "order": order }), text))
}

async fn indicator(registry: &mut BrokerRegistry, args: IndicatorArgs) -> Reply {
    let broker = registry.target(args.broker.as_deref())?;
    let needed = args.kind.prices_needed(args.period)?;
    let timeframe = Timeframe::OneMinute;
    let request = BarsRequest {
        symbol: args.symbol,
        timeframe,
        limit: needed,
        start: None,
        end: None,
    };
    let bars = registry.bars(Some(&broker), request).await?;
    let prices: Vec<Decimal> = bars.bars.iter().map(|bar| bar.close).collect();
    let value = args.kind.compute(&prices, needed_period(args.period))?;
    let value: Decimal = value.round_dp(INDICATOR_DECIMALS).normalize();
    let end = bars
        .bars
        .last()
        .map(|bar| bar.time + chrono::TimeDelta::seconds(timeframe.seconds()));
    let end = end.as_ref().map(format_time).unwrap_or_default();
    let text = format!(
        "{}({}) of {} on {broker}: {value}, over {} {} closes ending {end}",
        args.kind.label(),
        args.period,
        bars.symbol,
        prices.len(),
        timeframe.as_str(),
    );
    let structured = json!({
        "broker": broker,
        "symbol": bars.symbol,
        "kind": args.kind,
        "period": args.period,
        "value": value,
        "prices": prices,
        "timeframe": timeframe,
        "interval_seconds": timeframe.seconds(),
        "end": end,
    });
    Ok(success(structured, text))
}

/// A fresh `client_order_id`: `bh-` and 128 bits from the OS random source in hex, so ids
/// never collide across sessions on one account.
pub fn new_client_order_id() -> String {
    let mut random = [0u8; 16];
    // The OS random source failing is not recoverable: a guessable id would be worse.
    getrandom::fill(&mut random).expect("the OS random number source failed");
    let hex: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("bh-{hex}")
}

/// `period` as an index; `prices_needed` has already bounded it.
fn needed_period(period: u32) -> usize {
    usize::try_from(period).unwrap_or(usize::MAX)
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

fn failure(error: &BrokerError) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(error.to_string())])
}

fn respond(reply: Reply) -> CallToolResult {
    reply.unwrap_or_else(|error| failure(&error))
}

#[cfg(test)]
mod tests;
