//! What a trading host can attach to a conversation besides tools: resources (the active
//! broker's account, positions and open orders, and a quote per symbol), prompts (a portfolio
//! review, a trade plan), completions of their symbol arguments, and log messages about orders.
//!
//! Resources are read live from the session's broker each time; they are JSON documents. A
//! resource of an account the session is not logged in to reads as a JSON error saying what to
//! do, rather than failing, so a host that attaches resources by itself shows something
//! useful. Unknown URIs are `resource not found` (`-32002`, which rmcp turns into `-32602` for
//! 2026-07-28 requests as SEP-2164 asks).
//!
//! Log messages follow each era's rule: in 2026-07-28 only when the request opted in with
//! `io.modelcontextprotocol/logLevel`; before that once the client chose a level with
//! `logging/setLevel` (a client that never did gets none).

// Logging is deprecated by SEP-2577 but still part of every protocol version Bulkhead serves,
// and hosts use it.
#![allow(deprecated)]

use std::sync::{Arc, Mutex};

use rmcp::model::{
    CompleteResult, GetPromptResult, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, LoggingLevel, LoggingMessageNotificationParam, ProtocolVersion,
    ReadResourceResult,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::broker::tools::{BrokerTools, Snapshot};

/// The logger name of the worker's log messages.
const LOGGER: &str = "bulkhead.orders";

/// Most completion values returned (MCP's limit per response).
const MAX_COMPLETIONS: usize = 100;

const ACCOUNT_URI: &str = "bulkhead://broker/account";
const POSITIONS_URI: &str = "bulkhead://broker/positions";
const ORDERS_URI: &str = "bulkhead://broker/orders/open";
const QUOTE_PREFIX: &str = "bulkhead://quote/";
const QUOTE_TEMPLATE: &str = "bulkhead://quote/{symbol}";

const PORTFOLIO_REVIEW: &str = "portfolio_review";
const TRADE_PLAN: &str = "trade_plan";

/// The level a client chose with `logging/setLevel` (older protocols), shared by the session.
#[derive(Clone, Default)]
pub struct LogLevel(Arc<Mutex<Option<LoggingLevel>>>);

impl LogLevel {
    pub fn set(&self, level: LoggingLevel) {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(level);
    }

    fn get(&self) -> Option<LoggingLevel> {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Sends `message` as an `info` log message if this request's client wants it.
pub async fn log(level: &LogLevel, context: &RequestContext<RoleServer>, message: &str) {
    let modern = context
        .protocol_version()
        .is_some_and(|version| version >= ProtocolVersion::V_2026_07_28);
    let threshold = if modern {
        context.meta.log_level()
    } else {
        level.get()
    };
    let wanted =
        threshold.is_some_and(|threshold| severity(LoggingLevel::Info) >= severity(threshold));
    if !wanted {
        return;
    }
    let param = json!({ "level": "info", "logger": LOGGER, "data": message });
    if let Ok(param) = serde_json::from_value::<LoggingMessageNotificationParam>(param) {
        // A client that went away cannot be told anything; the call still completes.
        let _ = context.peer.notify_logging_message(param).await;
    }
}

fn severity(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

pub fn list_resources() -> Result<ListResourcesResult, ErrorData> {
    let resource = |uri: &str, name: &str, title: &str, description: &str| {
        json!({
            "uri": uri, "name": name, "title": title, "description": description,
            "mimeType": "application/json",
        })
    };
    complete_result(json!({ "resources": [
        resource(ACCOUNT_URI, "account", "Account", "Cash, equity and buying power of the active broker's account."),
        resource(POSITIONS_URI, "positions", "Positions", "Every position of the active broker's account, valued at market."),
        resource(ORDERS_URI, "open_orders", "Open orders", "The active broker's orders still working or waiting to."),
    ]}))
}

pub fn list_resource_templates() -> Result<ListResourceTemplatesResult, ErrorData> {
    complete_result(json!({ "resourceTemplates": [{
        "uriTemplate": QUOTE_TEMPLATE,
        "name": "quote",
        "title": "Quote",
        "description": "The current bid, ask and last price of a symbol on the active broker.",
        "mimeType": "application/json",
    }]}))
}

/// Reads `uri` from the session's broker.
pub async fn read_resource(
    broker: &BrokerTools,
    uri: &str,
) -> Result<ReadResourceResult, ErrorData> {
    let snapshot = match uri {
        ACCOUNT_URI => broker.snapshot(Snapshot::Account).await,
        POSITIONS_URI => broker.snapshot(Snapshot::Positions).await,
        ORDERS_URI => broker.snapshot(Snapshot::OpenOrders).await,
        _ => match uri
            .strip_prefix(QUOTE_PREFIX)
            .filter(|symbol| !symbol.is_empty())
        {
            Some(symbol) => match broker.quote_value(symbol).await {
                Err(error) if error.kind() == "unknown_symbol" => return Err(not_found(uri)),
                other => other,
            },
            None => return Err(not_found(uri)),
        },
    };
    let document = snapshot.unwrap_or_else(
        |error| json!({ "error": { "kind": error.kind(), "message": error.to_string() } }),
    );
    complete_result(json!({ "contents": [{
        "uri": uri,
        "mimeType": "application/json",
        "text": serde_json::to_string_pretty(&document).unwrap_or_default(),
    }]}))
}

fn not_found(uri: &str) -> ErrorData {
    ErrorData::resource_not_found(
        format!("Resource not found: {uri}"),
        Some(json!({ "uri": uri })),
    )
}

pub fn list_prompts() -> Result<ListPromptsResult, ErrorData> {
    complete_result(json!({ "prompts": [
        {
            "name": PORTFOLIO_REVIEW,
            "title": "Portfolio review",
            "description": "Review the active broker's account, positions and open orders, with the current figures attached.",
            "arguments": [{ "name": "focus", "description": "What to look at most: risk, performance, concentration…", "required": false }],
        },
        {
            "name": TRADE_PLAN,
            "title": "Trade plan",
            "description": "Plan a bracket trade in one symbol within your rails, shown as a dry run before anything is placed.",
            "arguments": [
                { "name": "symbol", "description": "The symbol, e.g. AAPL or BTC-USD.", "required": true },
                { "name": "side", "description": "buy or sell (buy if omitted).", "required": false },
            ],
        },
    ]}))
}

/// Builds prompt `name` with `arguments`, attaching the current account and positions to the
/// portfolio review.
pub async fn get_prompt(
    broker: &BrokerTools,
    name: &str,
    arguments: Option<&serde_json::Map<String, Value>>,
) -> Result<GetPromptResult, ErrorData> {
    let argument = |key: &str| {
        arguments
            .and_then(|arguments| arguments.get(key))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|value| !value.is_empty())
    };
    let messages = match name {
        PORTFOLIO_REVIEW => {
            let focus = argument("focus")
                .map(|focus| format!(" Pay most attention to: {focus}."))
                .unwrap_or_default();
            let mut messages = vec![text_message(&format!(
                "Review my portfolio on the active broker. Use the account, positions and open \
                 orders attached below (call account, positions and orders to refresh them, and \
                 quote or bars for prices). Summarize exposure, unrealized P&L, concentration and \
                 what the open orders would change, then suggest adjustments.{focus} Place, \
                 replace or cancel no order without my explicit go-ahead."
            ))];
            for uri in [ACCOUNT_URI, POSITIONS_URI, ORDERS_URI] {
                let read = read_resource(broker, uri).await?;
                let contents =
                    serde_json::to_value(&read).unwrap_or(Value::Null)["contents"][0].clone();
                messages.push(json!({ "role": "user", "content": { "type": "resource", "resource": contents } }));
            }
            messages
        }
        TRADE_PLAN => {
            let symbol = argument("symbol").ok_or_else(|| {
                ErrorData::invalid_params("trade_plan needs the symbol argument", None)
            })?;
            let side = argument("side").unwrap_or("buy");
            vec![text_message(&format!(
                "Plan a {side} trade in {symbol}. Check market_clock and symbols (sizes, \
                 fractionability), quote it, read bars (1h, the last 24) and the RSI(14) \
                 indicator. Propose an entry, a take-profit and a stop-loss as one bracket order \
                 sized within my trading rails, and show it with order_place and dry_run: true. \
                 Do not place it until I confirm."
            ))]
        }
        other => {
            return Err(ErrorData::invalid_params(
                format!("unknown prompt: {other}; prompts/list names them"),
                None,
            ));
        }
    };
    complete_result(json!({ "messages": messages }))
}

fn text_message(text: &str) -> Value {
    json!({ "role": "user", "content": { "type": "text", "text": text } })
}

/// Completes a symbol argument (the trade plan's, the quote template's) from the broker's
/// symbols; nothing for anything else.
pub async fn complete(broker: &BrokerTools, request: &Value) -> Result<CompleteResult, ErrorData> {
    let reference = &request["ref"];
    let argument = request["argument"]["name"].as_str().unwrap_or_default();
    let symbol_argument = argument == "symbol"
        && ((reference["type"] == "ref/prompt" && reference["name"] == TRADE_PLAN)
            || (reference["type"] == "ref/resource" && reference["uri"] == QUOTE_TEMPLATE));
    let prefix = request["argument"]["value"]
        .as_str()
        .unwrap_or("")
        .to_ascii_uppercase();
    let mut values: Vec<String> = if symbol_argument {
        broker
            .symbol_names()
            .await
            .into_iter()
            .filter(|symbol| symbol.starts_with(&prefix))
            .collect()
    } else {
        Vec::new()
    };
    let total = values.len();
    values.truncate(MAX_COMPLETIONS);
    complete_result(json!({
        "completion": { "values": values, "total": total, "hasMore": total > MAX_COMPLETIONS },
    }))
}

/// Parses a result, marked `resultType: "complete"`: 2026-07-28 requires the field and rmcp
/// does not add it to a deserialized result (it strips it again for older peers).
fn complete_result<T: DeserializeOwned>(mut value: Value) -> Result<T, ErrorData> {
    if let Value::Object(fields) = &mut value {
        fields.insert("resultType".to_owned(), json!("complete"));
    }
    serde_json::from_value(value)
        .map_err(|error| ErrorData::internal_error(format!("malformed result: {error}"), None))
}
