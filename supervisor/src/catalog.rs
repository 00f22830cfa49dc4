//! The tool catalog every caller sees: the supervisor's session tools plus the worker's tools,
//! each with the optional `session` argument, in a deterministic order (sorted by name).
//!
//! The worker's part is read once, from a worker that belongs to no session, and cached for
//! the supervisor's lifetime: `tools/list` is the same for everyone (MCP 2026-07-28 requires
//! it), so no session is ever spawned just to answer it.
//!
//! The built-in worker has tools named like the session tools (its `session_info` reports
//! broker state, which the supervisor merges in); the supervisor's definitions replace them. A
//! wrapped server's tools are another matter: they are renamed as configured, and a collision
//! with a session tool or the `session` argument is a [`CatalogError::Collision`], which stops
//! the supervisor at start ([`crate::wrap::names`]).

use std::sync::Arc;

use bulkhead_protocol::Era;
use bulkhead_protocol::names::{
    META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_PROTOCOL_VERSION, SESSION_ARGUMENT,
    SESSION_CLOSE, SESSION_HEADER, SESSION_INFO, SESSION_OPEN, SESSION_TOOLS,
};
use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;

use crate::worker::{CallEvent, Launcher, WorkerHandle};

/// What every caller is told about the server, read once from a worker.
pub struct CatalogData {
    /// Every tool, sorted by name, each with the `session` argument.
    pub tools: Vec<Value>,
    /// Capabilities for `initialize` (legacy era): the worker's, with Bulkhead's tools.
    pub legacy_capabilities: Value,
    /// Capabilities for `server/discover` (2026-07-28).
    pub modern_capabilities: Value,
}

impl CatalogData {
    /// The `x-mcp-header` arguments of a tool: `(argument, header name)` pairs, which a
    /// 2026-07-28 HTTP client mirrors into `Mcp-Param-<name>` headers.
    pub fn header_params(&self, tool: &str) -> Vec<(String, String)> {
        let Some(tool) = self
            .tools
            .iter()
            .find(|candidate| candidate["name"] == tool)
        else {
            return Vec::new();
        };
        let Some(properties) = tool["inputSchema"]["properties"].as_object() else {
            return Vec::new();
        };
        properties
            .iter()
            .filter_map(|(argument, schema)| {
                let header = schema.get("x-mcp-header")?.as_str()?;
                Some((argument.clone(), header.to_string()))
            })
            .collect()
    }

    /// Whether the worker serves `capability` (e.g. `prompts`) in the given era.
    pub fn has_capability(&self, capability: &str, era: Era) -> bool {
        let capabilities = match era {
            Era::Inline => &self.modern_capabilities,
            Era::Initialize => &self.legacy_capabilities,
        };
        capabilities
            .get(capability)
            .is_some_and(|value| !value.is_null())
    }
}

/// Why the catalog could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CatalogError {
    /// No worker could be started or asked.
    #[error("{0}")]
    Unavailable(String),
    /// A wrapped server's tools collide with Bulkhead's names (a configuration error).
    #[error("{}", .0.join("; "))]
    Collision(Vec<String>),
}

/// The lazily-read catalog.
pub struct Catalog {
    /// Starts the worker the catalog is read from.
    launcher: Launcher,
    data: OnceCell<Arc<CatalogData>>,
}

impl Catalog {
    pub fn new(launcher: Launcher) -> Self {
        Self {
            launcher,
            data: OnceCell::new(),
        }
    }

    /// The catalog, reading it from a worker on first use.
    pub async fn data(&self) -> Result<Arc<CatalogData>, CatalogError> {
        self.data
            .get_or_try_init(|| async { read_catalog(&self.launcher).await.map(Arc::new) })
            .await
            .cloned()
    }

    /// The catalog if it has been read already.
    pub fn loaded(&self) -> Option<Arc<CatalogData>> {
        self.data.get().cloned()
    }
}

async fn read_catalog(launcher: &Launcher) -> Result<CatalogData, CatalogError> {
    let worker = launcher
        .start_for_catalog()
        .await
        .map_err(|error| CatalogError::Unavailable(error.to_string()))?;
    let listed = list_all_tools(&worker).await;
    let discovered = request(
        &worker,
        "server/discover",
        Some(json!({"_meta": MODERN_META.clone()})),
    )
    .await;
    let legacy = worker.initialize_result()["capabilities"].clone();
    worker.stop().await;
    let modern = discovered
        .ok()
        .and_then(|result| result.get("capabilities").cloned())
        .unwrap_or_else(|| legacy.clone());
    let listed = listed.map_err(CatalogError::Unavailable)?;
    let tools = match launcher.wrapped() {
        None => compose(listed),
        Some(server) => {
            compose_wrapped(listed, server.renames()).map_err(CatalogError::Collision)?
        }
    };
    Ok(CatalogData {
        tools,
        legacy_capabilities: with_our_tools(legacy),
        modern_capabilities: with_our_tools(modern),
    })
}

/// The worker's capabilities with Bulkhead's tool list (which never changes while it runs).
fn with_our_tools(capabilities: Value) -> Value {
    let mut capabilities = match capabilities {
        Value::Object(map) => Value::Object(map),
        _ => json!({}),
    };
    capabilities["tools"] = json!({"listChanged": false});
    capabilities
}

/// Metadata the catalog's own 2026-07-28 requests carry.
static MODERN_META: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
    json!({
        META_PROTOCOL_VERSION: bulkhead_protocol::PROTOCOL_NO_INITIALIZE,
        META_CLIENT_CAPABILITIES: {},
        META_CLIENT_INFO: {"name": "bulkhead-catalog", "version": env!("CARGO_PKG_VERSION")},
    })
});

/// One request to a worker, returning its result.
async fn request(
    worker: &WorkerHandle,
    method: &str,
    params: Option<Value>,
) -> Result<Value, String> {
    let mut call = worker
        .call(method, params)
        .map_err(|exit| format!("catalog worker {exit}"))?;
    let reply = loop {
        match call.next_event().await {
            CallEvent::Reply(reply) => break reply.into_value(),
            CallEvent::Died(exit) => return Err(format!("catalog worker {exit}")),
            CallEvent::Notification(_) | CallEvent::Request(_) => {}
        }
    };
    match reply.get("result") {
        Some(result) => Ok(result.clone()),
        None => Err(format!("worker refused {method}: {}", reply["error"])),
    }
}

async fn list_all_tools(worker: &WorkerHandle) -> Result<Vec<Value>, String> {
    let mut tools = Vec::new();
    let mut cursor: Option<Value> = None;
    loop {
        let params = cursor.take().map(|cursor| json!({"cursor": cursor}));
        let result = request(worker, "tools/list", params).await?;
        let result = &result;
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
    let mut tools: Vec<Value> = worker_tools
        .into_iter()
        .filter(|tool| {
            tool.get("name")
                .and_then(Value::as_str)
                .is_some_and(|name| !SESSION_TOOLS.contains(&name))
        })
        .map(add_session_argument)
        .collect();
    tools.extend(session_tools());
    tools.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    tools
}

/// A wrapped server's tools, renamed as configured, with the session tools and the `session`
/// argument added; every collision left is reported.
pub fn compose_wrapped(
    server_tools: Vec<Value>,
    renames: &crate::wrap::Renames,
) -> Result<Vec<Value>, Vec<String>> {
    let mut tools: Vec<Value> = renames
        .apply(server_tools)?
        .into_iter()
        .map(add_session_argument)
        .collect();
    tools.extend(session_tools());
    tools.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(tools)
}

fn session_property(description: &str) -> Value {
    json!({
        "type": "string",
        "description": description,
        "x-mcp-header": SESSION_HEADER,
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
            "description": "Open a new isolated session (its own worker process, with its own credentials and state) and return its handle. Pass the handle as `session` to other tools to use it.",
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
