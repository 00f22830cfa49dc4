//! What the front door answers, built by pure functions: JSON-RPC errors, the results of
//! `initialize`, `server/discover`, `tools/list` and the session tools, and the notices a
//! result may carry. Nothing here reads or writes state.

use bulkhead_protocol::names::{META_SERVER_INFO, META_SUBSCRIPTION_ID};
use bulkhead_protocol::{Era, SUPPORTED_PROTOCOL_VERSIONS, codes, jsonrpc};
use serde_json::{Value, json};

use crate::catalog::CatalogData;
use crate::session::SessionError;
use crate::worker::Reply;

/// Result `_meta` key under which Bulkhead tells a caller something about its session.
pub const META_NOTICE: &str = "io.bulkhead/notice";

/// How long a 2026-07-28 client may cache `tools/list` and `server/discover`: the catalog is
/// fixed for the supervisor's lifetime, but a restart with another worker may change it.
const CATALOG_TTL_MS: u64 = 5 * 60 * 1000;

const INSTRUCTIONS: &str = "Every session runs in its own process. Calls without a `session` argument use this connection's default session; call session_open for another isolated session and pass its handle as `session`.";

/// A JSON-RPC error to send back.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_PARAMS, message)
    }

    pub fn method_not_found(method: &str) -> Self {
        Self::new(
            codes::METHOD_NOT_FOUND,
            format!("method not found: {method}"),
        )
    }

    /// A version Bulkhead does not serve, with the ones it does in `data`.
    pub fn unsupported_version(version: &str) -> Self {
        Self {
            code: codes::UNSUPPORTED_PROTOCOL_VERSION,
            message: format!(
                "unsupported protocol version {version}; supported: {}",
                SUPPORTED_PROTOCOL_VERSIONS.join(", ")
            ),
            data: Some(json!({"supported": SUPPORTED_PROTOCOL_VERSIONS, "requested": version})),
        }
    }
}

impl From<SessionError> for RpcError {
    fn from(error: SessionError) -> Self {
        Self {
            code: error.code(),
            message: error.to_string(),
            data: error.data(),
        }
    }
}

/// What an outgoing message is, for transports that treat a request's final response apart
/// (HTTP: its status, the end of its stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A notification (progress, a log message).
    Notification,
    /// A request for the client (sampling, elicitation, roots).
    Request,
    /// A response, with its error code if it is an error.
    Response { error: Option<i64> },
}

/// One message for a client, serialized once, where it is produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// Its JSON text (no newline; [`Outgoing::into_frame`] adds one without copying).
    pub json: Vec<u8>,
    pub kind: Kind,
}

impl Outgoing {
    /// A message built or received as a value.
    pub fn from_value(message: &Value) -> Self {
        let kind = match (message.get("method"), message.get("id")) {
            (Some(_), Some(_)) => Kind::Request,
            (Some(_), None) => Kind::Notification,
            (None, _) => Kind::Response {
                error: message
                    .get("error")
                    .map(|error| error["code"].as_i64().unwrap_or(codes::INTERNAL_ERROR)),
            },
        };
        let mut json = Vec::with_capacity(128);
        // Serializing a Value cannot fail.
        let _ = serde_json::to_writer(&mut json, message);
        json.reserve_exact(1);
        Self { json, kind }
    }

    /// The error code of a response that is an error.
    pub fn error_code(&self) -> Option<i64> {
        match self.kind {
            Kind::Response { error } => error,
            Kind::Notification | Kind::Request => None,
        }
    }

    /// The message as one newline-terminated frame.
    pub fn into_frame(mut self) -> Vec<u8> {
        self.json.push(b'\n');
        self.json
    }
}

/// A request's result: built by the supervisor, or a worker's, passed on as the bytes the
/// worker sent.
#[derive(Debug)]
pub enum Answer {
    Built(Value),
    /// A worker's result ([`Reply::result_json`] is its text).
    Forwarded(Reply),
}

impl From<Value> for Answer {
    fn from(value: Value) -> Self {
        Answer::Built(value)
    }
}

impl Answer {
    /// The result as a value (parsed, for a forwarded one).
    pub fn into_value(self) -> Value {
        match self {
            Answer::Built(value) => value,
            Answer::Forwarded(reply) => reply
                .result_json()
                .and_then(|json| serde_json::from_slice(json).ok())
                .unwrap_or(Value::Null),
        }
    }

    /// Whether it is a tool's error result (`isError: true`), which the audit line records.
    pub fn is_tool_error(&self) -> bool {
        /// Of a result, only `isError` is read; everything else is skipped.
        #[derive(serde::Deserialize)]
        struct Flag {
            #[serde(rename = "isError")]
            is_error: Option<Value>,
        }
        match self {
            Answer::Built(value) => value["isError"] == true,
            Answer::Forwarded(reply) => reply
                .result_json()
                .and_then(|json| serde_json::from_slice::<Flag>(json).ok())
                .and_then(|flag| flag.is_error)
                .is_some_and(|flag| flag == true),
        }
    }
}

/// A worker's reply as the answer to a request: its result forwarded as it is, or its error.
pub fn answer(reply: Reply) -> Result<Answer, RpcError> {
    if reply.result_json().is_some() {
        return Ok(Answer::Forwarded(reply));
    }
    unwrap_reply(reply.into_value()).map(Answer::Built)
}

/// The response to request `id`: its result or its error. A forwarded result is spliced in as
/// the worker wrote it.
pub fn response(id: &Value, result: Result<impl Into<Answer>, RpcError>) -> Outgoing {
    let message = match result.map(Into::into) {
        Ok(Answer::Forwarded(reply)) => {
            if let Some(result) = reply.result_json() {
                return forwarded(id, result);
            }
            jsonrpc::response(id, Answer::Forwarded(reply).into_value())
        }
        Ok(Answer::Built(result)) => jsonrpc::response(id, result),
        Err(error) => jsonrpc::error_response(id, error.code, &error.message, error.data),
    };
    Outgoing::from_value(&message)
}

/// `{"jsonrpc":"2.0","id":…,"result":…}` around a result's JSON text.
fn forwarded(id: &Value, result: &[u8]) -> Outgoing {
    const HEAD: &[u8] = br#"{"jsonrpc":"2.0","id":"#;
    const MIDDLE: &[u8] = br#","result":"#;
    let mut json = Vec::with_capacity(HEAD.len() + MIDDLE.len() + result.len() + 32);
    json.extend_from_slice(HEAD);
    // Serializing a Value cannot fail.
    let _ = serde_json::to_writer(&mut json, id);
    json.extend_from_slice(MIDDLE);
    json.extend_from_slice(result);
    json.extend_from_slice(b"}");
    Outgoing {
        json,
        kind: Kind::Response { error: None },
    }
}

/// Turn a worker's JSON-RPC reply into our result or error, unchanged.
pub fn unwrap_reply(mut reply: Value) -> Result<Value, RpcError> {
    if let Some(result) = reply.get_mut("result") {
        return Ok(result.take());
    }
    let error = reply
        .get_mut("error")
        .map(Value::take)
        .unwrap_or(Value::Null);
    Err(RpcError {
        code: error["code"].as_i64().unwrap_or(codes::INTERNAL_ERROR),
        message: error["message"]
            .as_str()
            .unwrap_or("the worker returned a malformed error")
            .to_string(),
        data: error.get("data").cloned(),
    })
}

fn server_info() -> Value {
    json!({"name": "bulkhead", "title": "Bulkhead", "version": crate::release::version()})
}

pub fn initialize_result(version: &str, catalog: &CatalogData) -> Value {
    json!({
        "protocolVersion": version,
        "capabilities": catalog.legacy_capabilities,
        "serverInfo": server_info(),
        "instructions": INSTRUCTIONS,
    })
}

pub fn discover_result(catalog: &CatalogData) -> Value {
    json!({
        "resultType": "complete",
        "supportedVersions": SUPPORTED_PROTOCOL_VERSIONS,
        "capabilities": catalog.modern_capabilities,
        "instructions": INSTRUCTIONS,
        "ttlMs": CATALOG_TTL_MS,
        "cacheScope": "public",
        "_meta": {META_SERVER_INFO: server_info()},
    })
}

pub fn tools_list_result(catalog: &CatalogData, era: Era) -> Value {
    let mut result = json!({"tools": catalog.tools});
    if era.is_inline() {
        result["resultType"] = json!("complete");
        result["ttlMs"] = json!(CATALOG_TTL_MS);
        result["cacheScope"] = json!("public");
    }
    result
}

/// `subscriptions/listen`'s acknowledgement: no kinds, since the catalog never changes.
pub fn listen_acknowledged(id: &Value) -> Value {
    jsonrpc::notification(
        "notifications/subscriptions/acknowledged",
        Some(json!({
            "_meta": {META_SUBSCRIPTION_ID: id},
            "notifications": {},
        })),
    )
}

/// A successful result of one of the supervisor's own tools.
pub fn tool_result(structured: Value, text: String, era: Era) -> Value {
    let mut result = json!({
        "content": [{"type": "text", "text": text}],
        "structuredContent": structured,
        "isError": false,
    });
    if era.is_inline() {
        result["resultType"] = json!("complete");
    }
    result
}

/// A tool error the model can act on (`isError: true`), not a JSON-RPC error.
pub fn tool_error(text: String, era: Era) -> Value {
    let mut result = json!({
        "content": [{"type": "text", "text": text}],
        "isError": true,
    });
    if era.is_inline() {
        result["resultType"] = json!("complete");
    }
    result
}

/// Tell the caller something about its session, in `_meta` and as a text block.
pub fn attach_notice(result: &mut Value, notice: &str) {
    let Some(result) = result.as_object_mut() else {
        return;
    };
    let meta = result.entry("_meta").or_insert_with(|| json!({}));
    if let Some(meta) = meta.as_object_mut() {
        meta.insert(META_NOTICE.into(), json!(notice));
    }
    if let Some(Value::Array(content)) = result.get_mut("content") {
        content.push(json!({"type": "text", "text": format!("Note from bulkhead: {notice}.")}));
    }
}

/// The refusal of a worker's request for a capability the client did not declare.
pub fn undeclared(request: &Value, method: &str, capability: &str) -> Value {
    jsonrpc::error_response(
        &request["id"],
        codes::METHOD_NOT_FOUND,
        &format!("{method}: the client did not declare the {capability} capability"),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_error_passes_unchanged_and_a_malformed_one_is_named() {
        let error = unwrap_reply(
            json!({"id": 3, "error": {"code": -32602, "message": "bad", "data": [1]}}),
        );
        assert_eq!(
            error,
            Err(RpcError {
                code: -32602,
                message: "bad".into(),
                data: Some(json!([1]))
            })
        );
        let malformed = unwrap_reply(json!({"id": 3})).unwrap_err();
        assert_eq!(malformed.code, codes::INTERNAL_ERROR);
        assert_eq!(
            unwrap_reply(json!({"id": 3, "result": {"x": 1}})),
            Ok(json!({"x": 1}))
        );
    }

    #[test]
    fn a_notice_goes_in_meta_and_in_the_content() {
        let mut result = tool_result(json!({}), "done".into(), Era::Inline);
        attach_notice(&mut result, "the previous default session was lost");
        assert_eq!(
            result["_meta"][META_NOTICE],
            "the previous default session was lost"
        );
        assert_eq!(
            result["content"][1]["text"],
            "Note from bulkhead: the previous default session was lost."
        );
        assert_eq!(result["resultType"], "complete");
        let legacy = tool_error("no".into(), Era::Initialize);
        assert!(legacy.get("resultType").is_none());
    }
}
