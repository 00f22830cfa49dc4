//! The tool catalog every caller sees: the supervisor's session tools plus the worker's tools,
//! each with the optional `session` argument, in a deterministic order (sorted by name).
//!
//! The worker's part is read once, from a worker that belongs to no session, and cached for
//! the supervisor's lifetime: `tools/list` is the same for everyone (MCP 2026-07-28 requires
//! it), so no session is ever spawned just to answer it.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;

use crate::session::Registry;

/// Names of the tools the supervisor itself implements.
pub const SESSION_OPEN: &str = "session_open";
pub const SESSION_CLOSE: &str = "session_close";
pub const SESSION_INFO: &str = "session_info";

/// The argument that routes a call to a session, mirrored into the `Mcp-Param-Session` header
/// by 2026-07-28 HTTP clients.
pub const SESSION_ARGUMENT: &str = "session";

/// The lazily-read catalog.
#[derive(Default)]
pub struct Catalog {
    tools: OnceCell<Arc<Vec<Value>>>,
}

impl Catalog {
    /// The full tool list, reading the worker's tools on first use.
    pub async fn tools(&self, registry: &Registry) -> Result<Arc<Vec<Value>>, String> {
        self.tools
            .get_or_try_init(|| async {
                let worker_tools = read_worker_tools(registry).await?;
                Ok(Arc::new(compose(worker_tools)))
            })
            .await
            .cloned()
    }
}

async fn read_worker_tools(registry: &Registry) -> Result<Vec<Value>, String> {
    let worker = registry
        .start_unbound_worker("catalog")
        .await
        .map_err(|error| error.to_string())?;
    let listed = list_all_tools(&worker).await;
    worker.stop().await;
    listed
}

async fn list_all_tools(worker: &crate::worker::WorkerHandle) -> Result<Vec<Value>, String> {
    let mut tools = Vec::new();
    let mut cursor: Option<Value> = None;
    loop {
        let params = cursor.take().map(|cursor| json!({"cursor": cursor}));
        let mut call = worker
            .call("tools/list", params)
            .map_err(|exit| format!("catalog worker {exit}"))?;
        let reply = match call.next_event().await {
            crate::worker::CallEvent::Reply(reply) => reply,
            crate::worker::CallEvent::Died(exit) => return Err(format!("catalog worker {exit}")),
            crate::worker::CallEvent::Notification(_) => continue,
        };
        let result = reply
            .get("result")
            .ok_or_else(|| format!("worker refused tools/list: {}", reply["error"]))?;
        if let Some(page) = result.get("tools").and_then(Value::as_array) {
            tools.extend(page.iter().cloned());
        }
        match result.get("nextCursor") {
            Some(next) if !next.is_null() => cursor = Some(next.clone()),
            _ => return Ok(tools),
        }
    }
}

/// Merge the worker's tools with the session tools, add `session` everywhere, sort by name.
/// A worker tool with a session tool's name is replaced by the supervisor's definition.
pub fn compose(worker_tools: Vec<Value>) -> Vec<Value> {
    let session_names = [SESSION_OPEN, SESSION_CLOSE, SESSION_INFO];
    let mut tools: Vec<Value> = worker_tools
        .into_iter()
        .filter(|tool| {
            tool.get("name")
                .and_then(Value::as_str)
                .is_some_and(|name| !session_names.contains(&name))
        })
        .map(add_session_argument)
        .collect();
    tools.extend(session_tools());
    tools.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    tools
}

fn session_property(description: &str) -> Value {
    json!({
        "type": "string",
        "description": description,
        "x-mcp-header": "Session",
    })
}

const SESSION_ARGUMENT_DESCRIPTION: &str =
    "Session handle from session_open. Omit to use this connection's default session.";

fn add_session_argument(mut tool: Value) -> Value {
    let schema = &mut tool["inputSchema"];
    if !schema.is_object() {
        *schema = json!({"type": "object"});
    }
    let properties = schema
        .as_object_mut()
        .map(|schema| schema.entry("properties").or_insert_with(|| json!({})));
    if let Some(Value::Object(properties)) = properties {
        properties.insert(
            SESSION_ARGUMENT.into(),
            session_property(SESSION_ARGUMENT_DESCRIPTION),
        );
    }
    tool
}

fn session_tools() -> Vec<Value> {
    let mut close_properties = Map::new();
    close_properties.insert(
        SESSION_ARGUMENT.into(),
        session_property("Handle of the session to close."),
    );
    vec![
        json!({
            "name": SESSION_OPEN,
            "title": "Open a session",
            "description": "Open a new isolated session (its own worker process, credentials and broker state) and return its handle. Pass the handle as `session` to other tools to use it.",
            "inputSchema": {"type": "object", "properties": {
                SESSION_ARGUMENT: session_property("Ignored by session_open; accepted so every tool takes the same argument."),
            }},
            "annotations": {"readOnlyHint": false, "destructiveHint": false, "idempotentHint": false, "openWorldHint": false},
        }),
        json!({
            "name": SESSION_CLOSE,
            "title": "Close a session",
            "description": "Close a session: its worker process ends and its state and credentials are wiped. The handle is unknown afterwards.",
            "inputSchema": {"type": "object", "properties": close_properties, "required": [SESSION_ARGUMENT]},
            "annotations": {"readOnlyHint": false, "destructiveHint": true, "idempotentHint": true, "openWorldHint": false},
        }),
        json!({
            "name": SESSION_INFO,
            "title": "Describe a session",
            "description": "Describe a session (default: this connection's default session): handle, worker pid, created, last activity, expiry, requests in flight.",
            "inputSchema": {"type": "object", "properties": {
                SESSION_ARGUMENT: session_property("Handle of the session to describe. Omit for this connection's default session."),
            }},
            "annotations": {"readOnlyHint": true, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false},
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_gets_the_session_header_and_order_is_by_name() {
        let worker_tools = vec![
            json!({"name": "zeta", "inputSchema": {"type": "object", "properties": {"x": {"type": "integer"}}}}),
            json!({"name": "alpha", "inputSchema": {"type": "object"}}),
            json!({"name": "session_info", "inputSchema": {"type": "object"}, "description": "worker's own"}),
        ];
        let tools = compose(worker_tools);
        let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "alpha",
                "session_close",
                "session_info",
                "session_open",
                "zeta"
            ]
        );
        for tool in &tools {
            let session = &tool["inputSchema"]["properties"]["session"];
            assert_eq!(session["x-mcp-header"], "Session", "{}", tool["name"]);
            assert_eq!(session["type"], "string");
        }
        assert_eq!(
            tools[4]["inputSchema"]["properties"]["x"]["type"],
            "integer"
        );
        assert_ne!(tools[2]["description"], "worker's own");
    }
}
