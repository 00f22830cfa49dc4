//! Planning an order: turning `order_place`, `order_replace` or `position_close` arguments into
//! what would be sent, passing it through the rails, and sizing it from the broker's prices.
//!
//! A plan is made with the registry locked and re-made after a live order's confirmation (the
//! lock is released while the user decides): the order is checked against the rails at the
//! moment it is sent, and a plan whose order changed meanwhile (its fingerprint) is not sent.

use bulkhead_protocol::trading::{OrderAction, OrderRecord, Rails};
use rmcp::model::CallToolResult;
use rust_decimal::Decimal;
use serde_json::json;

use super::args::{OrderPlaceArgs, OrderReplaceArgs, PositionCloseArgs};
use super::trading::new_client_order_id;
use super::{ToolError, success};
use crate::broker::rails::{check_order_notional, check_symbol, estimate_notional};
use crate::broker::{
    BrokerDescription, BrokerError, BrokerRegistry, CloseAmount, CloseRequest, Order, OrderAmount,
    OrderLookup, OrderRequest, RailRefusal, ReplaceRequest, Side,
};

/// What a trading tool asked for.
#[derive(Debug, Clone)]
pub enum Ask {
    Place(OrderPlaceArgs),
    Replace(OrderReplaceArgs),
    Close(PositionCloseArgs),
}

/// What is sent to the broker.
#[derive(Debug, Clone)]
pub enum Outgoing {
    Place(OrderRequest),
    Replace {
        order_id: String,
        request: ReplaceRequest,
    },
    Close(CloseRequest),
}

/// An order the rails passed, ready to be confirmed (if live) and sent.
#[derive(Debug, Clone)]
pub struct Plan {
    pub action: OrderAction,
    pub broker: String,
    pub description: BrokerDescription,
    pub outgoing: Outgoing,
    /// What the journal records about it.
    pub record: OrderRecord,
    /// Its notional sized from the broker's prices.
    pub estimated: Decimal,
    /// What it adds to the principal's daily notional.
    pub counted: Decimal,
    pub client_order_id: String,
    /// The order in words, for the confirmation and the results.
    pub summary: String,
    /// Identifies the order (not its prices, which move): a confirmation is for this order.
    pub fingerprint: String,
}

/// A plan, or the answer to a request that needs none (a replayed `client_order_id`).
pub enum Planned {
    Plan(Box<Plan>),
    Replay(CallToolResult),
}

impl Ask {
    /// The tool's name.
    pub fn tool(&self) -> &'static str {
        match self {
            Ask::Place(_) => "order_place",
            Ask::Replace(_) => "order_replace",
            Ask::Close(_) => "position_close",
        }
    }

    pub fn dry_run(&self) -> bool {
        matches!(self, Ask::Place(args) if args.dry_run)
    }

    /// Plans the order; `client_order_id` overrides the arguments' (a confirmed 2026-07-28
    /// retry restores the first round's).
    pub async fn plan(
        &self,
        registry: &mut BrokerRegistry,
        rails: &Rails,
        client_order_id: Option<String>,
    ) -> Result<Planned, ToolError> {
        match self {
            Ask::Place(args) => plan_place(registry, rails, args, client_order_id).await,
            Ask::Replace(args) => plan_replace(registry, rails, args, client_order_id).await,
            Ask::Close(args) => plan_close(registry, rails, args, client_order_id).await,
        }
    }
}

async fn plan_place(
    registry: &mut BrokerRegistry,
    rails: &Rails,
    args: &OrderPlaceArgs,
    client_order_id: Option<String>,
) -> Result<Planned, ToolError> {
    let broker = registry.target(args.broker.as_deref())?;
    let description = registry.describe(Some(&broker))?;
    let amount = args.amount()?;
    let caller_gave_id = args.client_order_id.is_some();
    let client_order_id = client_order_id
        .or_else(|| args.client_order_id.clone())
        .unwrap_or_else(new_client_order_id);
    if caller_gave_id && !args.dry_run {
        let lookup = OrderLookup::ClientOrderId(client_order_id.clone());
        if let Ok(original) = registry.order(Some(&broker), lookup).await {
            return replay(&broker, original, args, amount);
        }
    }
    check_symbol(rails, &args.symbol)?;
    let quote = registry.quote(Some(&broker), &args.symbol).await?;
    let prices = [args.limit_price, args.stop_price];
    let estimated = estimate_notional(args.side, amount, &quote, &prices)?;
    check_order_notional(rails, estimated, &description.account_currency)?;
    let request = OrderRequest {
        symbol: quote.symbol.clone(),
        side: args.side,
        amount,
        order_type: args.order_type,
        time_in_force: args.time_in_force,
        limit_price: args.limit_price,
        stop_price: args.stop_price,
        take_profit_price: args.take_profit_price,
        stop_loss_price: args.stop_loss_price,
        client_order_id: client_order_id.clone(),
    };
    let record = OrderRecord {
        broker: broker.clone(),
        environment: description.environment.as_str().to_owned(),
        client_order_id: Some(client_order_id.clone()),
        order_id: None,
        symbol: Some(request.symbol.clone()),
        side: Some(request.side.as_str().to_owned()),
        qty: amount.qty(),
        notional: amount.notional(),
        order_type: Some(request.order_type.as_str().to_owned()),
        time_in_force: request.time_in_force.map(|tif| tif.as_str().to_owned()),
        limit_price: request.limit_price,
        stop_price: request.stop_price,
        take_profit_price: request.take_profit_price,
        stop_loss_price: request.stop_loss_price,
        estimated_notional: Some(estimated),
    };
    let summary = describe_request(&request);
    let id_part = if caller_gave_id {
        client_order_id.as_str()
    } else {
        "generated"
    };
    let fingerprint = format!("place {broker} {summary} id {id_part}");
    Ok(Planned::Plan(Box::new(Plan {
        action: OrderAction::Place,
        broker,
        description,
        outgoing: Outgoing::Place(request),
        record,
        estimated,
        counted: estimated,
        client_order_id,
        summary,
        fingerprint,
    })))
}

/// The original order for a reused `client_order_id` when it asks for the same thing.
fn replay(
    broker: &str,
    original: Order,
    args: &OrderPlaceArgs,
    amount: OrderAmount,
) -> Result<Planned, ToolError> {
    let same_amount = match amount {
        OrderAmount::Qty(qty) => original.qty.map(|held| held.normalize()) == Some(qty.normalize()),
        OrderAmount::Notional(notional) => original.notional == Some(notional),
    };
    // A broker may spell the pair its own way (Alpaca answers `BTC/USD` for `BTC-USD`).
    let spelling = |symbol: &str| symbol.trim().replace(['/', '-'], "").to_ascii_uppercase();
    let same = spelling(&original.symbol) == spelling(&args.symbol)
        && original.side == args.side
        && same_amount;
    if !same {
        return Err(BrokerError::ClientOrderIdReused {
            client_order_id: original.client_order_id.clone(),
            original: format!("{} {}", original.order_id, original.summary()),
        }
        .into());
    }
    let text = format!(
        "{broker} order {}: {} (client_order_id {} already used: this is the original order; \
         nothing new was placed)",
        original.order_id,
        original.summary(),
        original.client_order_id
    );
    let structured = json!({
        "broker": broker,
        "client_order_id": original.client_order_id,
        "order": original,
        "replayed": true,
    });
    Ok(Planned::Replay(success(structured, text)))
}

async fn plan_replace(
    registry: &mut BrokerRegistry,
    rails: &Rails,
    args: &OrderReplaceArgs,
    client_order_id: Option<String>,
) -> Result<Planned, ToolError> {
    let broker = registry.target(args.broker.as_deref())?;
    let description = registry.describe(Some(&broker))?;
    if rails.read_only {
        return Err(RailRefusal::ReadOnly.into());
    }
    let existing = registry
        .order(Some(&broker), OrderLookup::OrderId(args.order_id.clone()))
        .await?;
    check_symbol(rails, &existing.symbol)?;
    let quote = registry.quote(Some(&broker), &existing.symbol).await?;
    let old_amount = amount_of(&existing);
    let new_amount = args.qty.map_or(old_amount, OrderAmount::Qty);
    let limit_price = args.limit_price.or(existing.limit_price);
    let stop_price = args.stop_price.or(existing.stop_price);
    let old_prices = [existing.limit_price, existing.stop_price];
    let old = estimate_notional(existing.side, old_amount, &quote, &old_prices)?;
    let estimated = estimate_notional(
        existing.side,
        new_amount,
        &quote,
        &[limit_price, stop_price],
    )?;
    check_order_notional(rails, estimated, &description.account_currency)?;
    let client_order_id = client_order_id
        .or_else(|| args.client_order_id.clone())
        .unwrap_or_else(new_client_order_id);
    let request = ReplaceRequest {
        qty: args.qty,
        limit_price: args.limit_price,
        stop_price: args.stop_price,
        time_in_force: args.time_in_force,
        client_order_id: Some(client_order_id.clone()),
    };
    let time_in_force = args.time_in_force.unwrap_or(existing.time_in_force);
    let record = OrderRecord {
        broker: broker.clone(),
        environment: description.environment.as_str().to_owned(),
        client_order_id: Some(client_order_id.clone()),
        order_id: Some(existing.order_id.clone()),
        symbol: Some(existing.symbol.clone()),
        side: Some(existing.side.as_str().to_owned()),
        qty: new_amount.qty(),
        notional: new_amount.notional(),
        order_type: Some(existing.order_type.as_str().to_owned()),
        time_in_force: Some(time_in_force.as_str().to_owned()),
        limit_price,
        stop_price,
        take_profit_price: None,
        stop_loss_price: None,
        estimated_notional: Some(estimated),
    };
    let summary = format!(
        "replace {} ({}) with {} {} {}{}{} {}",
        existing.order_id,
        existing.summary(),
        existing.side.as_str(),
        amount_text(new_amount),
        existing.symbol,
        limit_price
            .map(|price| format!(" limit {price}"))
            .unwrap_or_default(),
        stop_price
            .map(|price| format!(" stop {price}"))
            .unwrap_or_default(),
        time_in_force.as_str()
    );
    let fingerprint = format!("replace {broker} {summary}");
    Ok(Planned::Plan(Box::new(Plan {
        action: OrderAction::Replace,
        broker,
        description,
        outgoing: Outgoing::Replace {
            order_id: existing.order_id.clone(),
            request,
        },
        record,
        estimated,
        counted: (estimated - old).max(Decimal::ZERO),
        client_order_id,
        summary,
        fingerprint,
    })))
}

async fn plan_close(
    registry: &mut BrokerRegistry,
    rails: &Rails,
    args: &PositionCloseArgs,
    client_order_id: Option<String>,
) -> Result<Planned, ToolError> {
    let broker = registry.target(args.broker.as_deref())?;
    let description = registry.describe(Some(&broker))?;
    let amount = args.amount()?;
    check_symbol(rails, &args.symbol)?;
    let positions = registry.positions(Some(&broker)).await?;
    let position = positions
        .iter()
        .find(|position| position.symbol.eq_ignore_ascii_case(args.symbol.trim()))
        .ok_or_else(|| BrokerError::NoPosition {
            broker: broker.clone(),
            symbol: args.symbol.trim().to_ascii_uppercase(),
        })?;
    let side = if position.qty > Decimal::ZERO {
        Side::Sell
    } else {
        Side::Buy
    };
    let held = position.qty.abs();
    let qty = match amount {
        CloseAmount::All => held,
        CloseAmount::Qty(qty) => qty,
        CloseAmount::Percent(percent) => held * percent / Decimal::ONE_HUNDRED,
    };
    let quote = registry.quote(Some(&broker), &position.symbol).await?;
    let estimated = estimate_notional(side, OrderAmount::Qty(qty), &quote, &[])?;
    check_order_notional(rails, estimated, &description.account_currency)?;
    let client_order_id = client_order_id
        .or_else(|| args.client_order_id.clone())
        .unwrap_or_else(new_client_order_id);
    let record = OrderRecord {
        broker: broker.clone(),
        environment: description.environment.as_str().to_owned(),
        client_order_id: Some(client_order_id.clone()),
        symbol: Some(position.symbol.clone()),
        side: Some(side.as_str().to_owned()),
        qty: Some(qty.normalize()),
        order_type: Some("market".to_owned()),
        estimated_notional: Some(estimated),
        ..OrderRecord::default()
    };
    let summary = format!(
        "close {} of the {} {} position: {} {} market",
        match amount {
            CloseAmount::All => "all".to_owned(),
            CloseAmount::Qty(qty) => qty.to_string(),
            CloseAmount::Percent(percent) => format!("{percent}%"),
        },
        held,
        position.symbol,
        side.as_str(),
        qty.normalize()
    );
    let fingerprint = format!("close {broker} {summary}");
    Ok(Planned::Plan(Box::new(Plan {
        action: OrderAction::Close,
        broker,
        description,
        outgoing: Outgoing::Close(CloseRequest {
            symbol: position.symbol.clone(),
            amount,
            client_order_id: client_order_id.clone(),
        }),
        record,
        estimated,
        counted: estimated,
        client_order_id,
        summary,
        fingerprint,
    })))
}

/// A quantity order's quantity, else its notional.
fn amount_of(order: &Order) -> OrderAmount {
    match (order.qty, order.notional) {
        (Some(qty), _) => OrderAmount::Qty(qty),
        (None, Some(notional)) => OrderAmount::Notional(notional),
        (None, None) => OrderAmount::Qty(Decimal::ZERO),
    }
}

fn amount_text(amount: OrderAmount) -> String {
    match amount {
        OrderAmount::Qty(qty) => qty.normalize().to_string(),
        OrderAmount::Notional(notional) => format!("{notional} worth of"),
    }
}

/// `buy 5 AAPL limit 190.00 day, take profit 200.00, stop loss 180.00`.
fn describe_request(request: &OrderRequest) -> String {
    let mut text = format!(
        "{} {} {} {}",
        request.side.as_str(),
        amount_text(request.amount),
        request.symbol,
        request.order_type.as_str()
    );
    if let Some(price) = request.limit_price {
        text.push_str(&format!(" limit {price}"));
    }
    if let Some(price) = request.stop_price {
        text.push_str(&format!(" stop {price}"));
    }
    if let Some(tif) = request.time_in_force {
        text.push_str(&format!(" {}", tif.as_str()));
    }
    if let Some(price) = request.take_profit_price {
        text.push_str(&format!(", take profit {price}"));
    }
    if let Some(price) = request.stop_loss_price {
        text.push_str(&format!(", stop loss {price}"));
    }
    text
}
