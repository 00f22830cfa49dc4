//! The trading tools: `order_place`, `order_replace`, `position_close`, `order_cancel` and
//! `orders_cancel_all`.
//!
//! An order goes through one pipeline whatever the broker: plan it (the replay of a reused
//! `client_order_id`, the rails, the estimate from the broker's prices: [`super::plan`]); for
//! `dry_run`, answer with the plan and stop; on a live broker, get the user's confirmation
//! ([`crate::broker::confirm`]) and plan again; announce it to the desk, which checks the
//! principal's daily notional and journals the intent; send it; report the outcome to the desk.
//! Nothing reaches a broker that the desk did not accept. Cancelling needs none of this — it
//! only reduces risk — and is journaled in one line.

use bulkhead_protocol::trading::{
    OrderAction, OrderEvent, OrderIntent, OrderOutcome, OrderRecord, OrderResult,
};
use rmcp::model::{CallToolResponse, CallToolResult};
use serde_json::json;

use super::plan::{Ask, Outgoing, Plan, Planned};
use super::{
    BrokerTools, OrderCancelArgs, OrderPlaceArgs, OrderReplaceArgs, OrdersCancelAllArgs,
    PositionCloseArgs, ToolError, TradeContext, failure, respond, success,
};
use crate::broker::confirm::Confirmation;
use crate::broker::desk::Desk;
use crate::broker::{BrokerError, BrokerRegistry, Environment, Order, Side};

/// A fresh `client_order_id`: `bh-` and 128 bits from the OS random source in hex, so ids
/// never collide across sessions on one account.
pub fn new_client_order_id() -> String {
    let mut random = [0u8; 16];
    // The OS random source failing is not recoverable: a guessable id would be worse.
    getrandom::fill(&mut random).expect("the OS random number source failed");
    let hex: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("bh-{hex}")
}

impl BrokerTools {
    /// `order_place`.
    pub async fn order_place(
        &self,
        args: OrderPlaceArgs,
        context: TradeContext,
    ) -> CallToolResponse {
        self.execute(Ask::Place(args), context).await
    }

    /// `order_replace`.
    pub async fn order_replace(
        &self,
        args: OrderReplaceArgs,
        context: TradeContext,
    ) -> CallToolResponse {
        self.execute(Ask::Replace(args), context).await
    }

    /// `position_close`.
    pub async fn position_close(
        &self,
        args: PositionCloseArgs,
        context: TradeContext,
    ) -> CallToolResponse {
        self.execute(Ask::Close(args), context).await
    }

    /// `order_cancel`.
    pub async fn order_cancel(&self, args: OrderCancelArgs, desk: &dyn Desk) -> CallToolResult {
        let mut registry = self.registry.lock().await;
        respond(order_cancel(&mut registry, args, desk).await)
    }

    /// `orders_cancel_all`: the kill switch. Never needs a confirmation, and works read-only.
    pub async fn orders_cancel_all(
        &self,
        args: OrdersCancelAllArgs,
        desk: &dyn Desk,
    ) -> CallToolResult {
        let mut registry = self.registry.lock().await;
        respond(orders_cancel_all(&mut registry, args, desk).await)
    }

    /// The order pipeline (see the module documentation).
    async fn execute(&self, ask: Ask, context: TradeContext) -> CallToolResponse {
        let planned = {
            let mut registry = self.registry.lock().await;
            ask.plan(&mut registry, &self.rails, None).await
        };
        let plan = match planned {
            Ok(Planned::Plan(plan)) => plan,
            Ok(Planned::Replay(result)) => return CallToolResponse::Complete(result),
            Err(error) => return CallToolResponse::Complete(failure(&error)),
        };
        if ask.dry_run() {
            let mut registry = self.registry.lock().await;
            return CallToolResponse::Complete(respond(
                preview(&mut registry, &plan, &self.rails).await,
            ));
        }
        let mut registry = if plan.description.environment == Environment::Live {
            let question = format!(
                "Place a LIVE (real money) order on {}: {} — about {} {}?",
                plan.broker, plan.summary, plan.estimated, plan.description.account_currency
            );
            let confirmation = self
                .confirmer
                .confirm(
                    context.confirm,
                    ask.tool(),
                    &plan.fingerprint,
                    &plan.client_order_id,
                    &question,
                )
                .await;
            let restored = match confirmation {
                Confirmation::Ask(result) => return CallToolResponse::InputRequired(result),
                Confirmation::Refused(reason) => {
                    record_unconfirmed(context.desk.as_ref(), &plan, &reason).await;
                    return CallToolResponse::Complete(failure(&ToolError::NotConfirmed(reason)));
                }
                Confirmation::Confirmed { client_order_id } => client_order_id,
            };
            let client_order_id = restored.unwrap_or_else(|| plan.client_order_id.clone());
            let mut registry = self.registry.lock().await;
            match ask
                .plan(&mut registry, &self.rails, Some(client_order_id))
                .await
            {
                Ok(Planned::Plan(again)) if again.fingerprint == plan.fingerprint => {
                    return CallToolResponse::Complete(respond(
                        send(&mut registry, &again, context.desk.as_ref()).await,
                    ));
                }
                Ok(Planned::Plan(_)) => {
                    let reason = "the order changed while waiting for the confirmation; ask again";
                    return CallToolResponse::Complete(failure(&ToolError::NotConfirmed(
                        reason.to_owned(),
                    )));
                }
                Ok(Planned::Replay(result)) => return CallToolResponse::Complete(result),
                Err(error) => return CallToolResponse::Complete(failure(&error)),
            }
        } else {
            self.registry.lock().await
        };
        CallToolResponse::Complete(respond(
            send(&mut registry, &plan, context.desk.as_ref()).await,
        ))
    }
}

/// Announces the plan to the desk, sends it if the desk accepts, and reports the outcome.
async fn send(
    registry: &mut BrokerRegistry,
    plan: &Plan,
    desk: &dyn Desk,
) -> Result<CallToolResult, ToolError> {
    let intent = OrderIntent {
        action: plan.action,
        order: plan.record.clone(),
        counted_notional: plan.counted,
    };
    let answer = desk.intent(intent).await?;
    if !answer.accepted {
        let refusal = answer
            .refusal
            .unwrap_or_else(|| "the supervisor refused the order".to_owned());
        return Err(ToolError::DailyLimit(refusal));
    }
    let intent_id = answer.intent_id.unwrap_or_default();
    let broker = Some(plan.broker.as_str());
    // (order, replayed, how the broker knows it was placed when an answer was lost)
    let sent: Result<(Order, bool, Option<String>), BrokerError> = match &plan.outgoing {
        Outgoing::Place(request) => registry
            .place_order(broker, request.clone())
            .await
            .map(|placement| (placement.order, placement.replayed, placement.note)),
        Outgoing::Replace { order_id, request } => registry
            .replace_order(broker, order_id, request.clone())
            .await
            .map(|order| (order, false, None)),
        Outgoing::Close(request) => registry
            .close_position(broker, request.clone())
            .await
            .map(|order| (order, false, None)),
    };
    let outcome = match &sent {
        Ok((order, replayed, _)) => OrderOutcome {
            intent_id,
            result: if *replayed {
                OrderResult::Replayed
            } else {
                OrderResult::Accepted
            },
            order_id: Some(order.order_id.clone()),
            status: Some(order.status.as_str().to_owned()),
            filled_qty: Some(order.filled_qty),
            avg_fill_price: order.avg_fill_price,
            reason: order.status_reason.clone(),
        },
        Err(error) => OrderOutcome {
            intent_id,
            // A broker that cannot tell whether it has the order may have it: count it.
            result: if matches!(
                error,
                BrokerError::Unreachable { .. } | BrokerError::PlacementUnknown { .. }
            ) {
                OrderResult::Unknown
            } else {
                OrderResult::Refused
            },
            order_id: None,
            status: None,
            filled_qty: None,
            avg_fill_price: None,
            reason: Some(error.to_string()),
        },
    };
    let recorded = desk.outcome(outcome).await;
    let (order, replayed, note) = sent?;
    let mut result = placed(plan, &order, replayed, note.as_deref());
    if let Err(error) = recorded {
        tracing::warn!(%error, "the outcome of an order could not be journaled");
        result.content.push(rmcp::model::ContentBlock::text(format!(
            "Note: {error}; the order itself went through."
        )));
    }
    Ok(result)
}

/// The result of a sent order.
fn placed(plan: &Plan, order: &Order, replayed: bool, note: Option<&str>) -> CallToolResult {
    let verb = match plan.action {
        bulkhead_protocol::trading::OrderAction::Replace => "replacement order",
        bulkhead_protocol::trading::OrderAction::Close => "closing order",
        _ => "order",
    };
    let mut text = format!(
        "{} {verb} {}: {} (client_order_id {})",
        plan.broker,
        order.order_id,
        order.summary(),
        order.client_order_id
    );
    for leg in &order.legs {
        text.push_str(&format!("; leg {}: {}", leg.order_id, leg.summary()));
    }
    if replayed {
        text.push_str(
            "; client_order_id already used: this is the original order, nothing new was placed",
        );
    }
    if let Some(note) = note {
        text.push_str(&format!("; {note}"));
    }
    let mut structured = json!({
        "broker": plan.broker,
        "environment": plan.description.environment,
        "client_order_id": order.client_order_id,
        "order": order,
        "replayed": replayed,
        "estimated_notional": plan.estimated,
    });
    if let Some(note) = note {
        structured["note"] = json!(note);
    }
    success(structured, text)
}

/// `dry_run`: what would be sent, its estimate and the buying power after it.
async fn preview(
    registry: &mut BrokerRegistry,
    plan: &Plan,
    rails: &bulkhead_protocol::trading::Rails,
) -> Result<CallToolResult, ToolError> {
    let account = registry.account(Some(&plan.broker)).await?;
    let buys = plan.record.side.as_deref() == Some(Side::Buy.as_str());
    let after = if buys {
        account.buying_power - plan.estimated
    } else {
        account.buying_power
    };
    let live = plan.description.environment == Environment::Live;
    let currency = &account.currency;
    let text = format!(
        "dry run on {} ({}): would send {} (client_order_id {}); estimated notional {} {currency}; \
         buying power {} -> {after} {currency}{}; nothing was placed",
        plan.broker,
        plan.description.environment.as_str(),
        plan.summary,
        plan.client_order_id,
        plan.estimated,
        account.buying_power,
        if live {
            "; placing it will ask you to confirm"
        } else {
            ""
        }
    );
    let structured = json!({
        "broker": plan.broker,
        "environment": plan.description.environment,
        "dry_run": true,
        "would_send": plan.record,
        "client_order_id": plan.client_order_id,
        "estimated_notional": plan.estimated,
        "currency": currency,
        "buying_power": account.buying_power,
        "buying_power_after": after,
        "confirmation_required": live,
        "rails": rails_json(rails),
    });
    Ok(success(structured, text))
}

fn rails_json(rails: &bulkhead_protocol::trading::Rails) -> serde_json::Value {
    json!({
        "max_order_notional": rails.max_order_notional,
        "max_daily_notional": rails.max_daily_notional,
        "allowed_symbols": rails.allowed_symbols,
        "read_only": rails.read_only,
    })
}

/// Journals a live order the user did not confirm (nothing was sent).
async fn record_unconfirmed(desk: &dyn Desk, plan: &Plan, reason: &str) {
    let event = OrderEvent {
        action: plan.action,
        order: plan.record.clone(),
        result: OrderResult::NotConfirmed,
        order_ids: Vec::new(),
        reason: Some(reason.to_owned()),
    };
    if let Err(error) = desk.event(event).await {
        tracing::warn!(%error, "an unconfirmed live order could not be journaled");
    }
}

async fn order_cancel(
    registry: &mut BrokerRegistry,
    args: OrderCancelArgs,
    desk: &dyn Desk,
) -> Result<CallToolResult, ToolError> {
    let broker = registry.target(args.broker.as_deref())?;
    let environment = registry.describe(Some(&broker))?.environment;
    let order = registry.cancel_order(Some(&broker), &args.order_id).await?;
    let record = OrderRecord {
        broker: broker.clone(),
        environment: environment.as_str().to_owned(),
        client_order_id: Some(order.client_order_id.clone()),
        order_id: Some(order.order_id.clone()),
        symbol: Some(order.symbol.clone()),
        ..OrderRecord::default()
    };
    journal_cancel(
        desk,
        OrderAction::Cancel,
        record,
        vec![order.order_id.clone()],
    )
    .await;
    let text = format!("{broker}: cancelled order {}", order.order_id);
    Ok(success(json!({ "broker": broker, "order": order }), text))
}

async fn orders_cancel_all(
    registry: &mut BrokerRegistry,
    args: OrdersCancelAllArgs,
    desk: &dyn Desk,
) -> Result<CallToolResult, ToolError> {
    let broker = registry.target(args.broker.as_deref())?;
    let environment = registry.describe(Some(&broker))?.environment;
    let cancelled = registry
        .cancel_all(Some(&broker), args.symbol.as_deref())
        .await?;
    let ids: Vec<String> = cancelled
        .iter()
        .map(|order| order.order_id.clone())
        .collect();
    let record = OrderRecord {
        broker: broker.clone(),
        environment: environment.as_str().to_owned(),
        symbol: args.symbol.clone(),
        ..OrderRecord::default()
    };
    journal_cancel(desk, OrderAction::CancelAll, record, ids.clone()).await;
    let scope = args.symbol.as_deref().map_or_else(
        || "every open order".to_owned(),
        |symbol| format!("open {symbol} orders"),
    );
    let text = format!(
        "{broker}: cancelled {} ({scope}): {}",
        ids.len(),
        ids.join(", ")
    );
    let structured = json!({ "broker": broker, "cancelled": cancelled, "count": ids.len() });
    Ok(success(structured, text))
}

/// Journals a cancellation; a journal that cannot be written does not stop a cancellation.
async fn journal_cancel(
    desk: &dyn Desk,
    action: OrderAction,
    order: OrderRecord,
    ids: Vec<String>,
) {
    let event = OrderEvent {
        action,
        order,
        result: OrderResult::Accepted,
        order_ids: ids,
        reason: None,
    };
    if let Err(error) = desk.event(event).await {
        tracing::warn!(%error, "a cancellation could not be journaled");
    }
}
