//! JSON-RPC 2.0 envelopes: classify a frame as request, notification or response, and build
//! the replies Bulkhead writes itself.
//!
//! Only the envelope is interpreted here (`jsonrpc`, `id`, `method`, `params`, `result`,
//! `error`); payloads stay opaque [`Value`]s. Parsing goes through `serde_json`, whose recursion
//! limit (128 levels) turns absurdly deep nesting into a parse error instead of a stack
//! overflow.

use serde_json::{Map, Value, json};

use crate::codes;

/// One classified JSON-RPC message. `id` is kept as the peer sent it (string or number).
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A call that expects exactly one response with the same `id`.
    Request {
        id: Value,
        method: String,
        params: Option<Value>,
    },
    /// A one-way message.
    Notification {
        method: String,
        params: Option<Value>,
    },
    /// A successful response.
    Response { id: Value, result: Value },
    /// An error response; `id` is `null` when the request could not be identified.
    Error { id: Value, error: Value },
}

/// Why a frame is not a usable JSON-RPC message. Each maps to one error response.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("parse error: {0}")]
    Json(String),
    #[error("invalid request: JSON-RPC batches are not supported; send one message per line")]
    Batch,
    #[error("invalid request: {reason}")]
    Invalid { reason: String, id: Value },
}

impl EnvelopeError {
    /// The error response to send back for this frame.
    pub fn to_response(&self) -> Value {
        match self {
            EnvelopeError::Json(_) => {
                error_response(&Value::Null, codes::PARSE_ERROR, &self.to_string(), None)
            }
            EnvelopeError::Batch => error_response(
                &Value::Null,
                codes::INVALID_REQUEST,
                &self.to_string(),
                None,
            ),
            EnvelopeError::Invalid { id, .. } => {
                error_response(id, codes::INVALID_REQUEST, &self.to_string(), None)
            }
        }
    }
}

/// Parse and classify one frame.
pub fn parse_message(frame: &[u8]) -> Result<Message, EnvelopeError> {
    let value: Value =
        serde_json::from_slice(frame).map_err(|error| EnvelopeError::Json(error.to_string()))?;
    classify(value)
}

/// Classify an already-parsed JSON value.
pub fn classify(value: Value) -> Result<Message, EnvelopeError> {
    let mut object = match value {
        Value::Object(object) => object,
        Value::Array(_) => return Err(EnvelopeError::Batch),
        other => {
            return Err(invalid(
                format!("expected a JSON object, got {}", json_type(&other)),
                Value::Null,
            ));
        }
    };
    let id = object.remove("id");
    let id_for_errors = id.clone().filter(is_valid_id).unwrap_or(Value::Null);
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid(
            "the \"jsonrpc\" member must be \"2.0\"".into(),
            id_for_errors,
        ));
    }
    // An error response may carry `"id": null` (its request could not be identified); every
    // other message with an id needs a string or an integer.
    let null_id_allowed = object.contains_key("error") && id == Some(Value::Null);
    if let Some(id) = &id
        && !is_valid_id(id)
        && !null_id_allowed
    {
        return Err(invalid(
            format!(
                "\"id\" must be a string or an integer, got {}",
                json_type(id)
            ),
            Value::Null,
        ));
    }
    if let Some(method) = object.remove("method") {
        let Value::String(method) = method else {
            return Err(invalid("\"method\" must be a string".into(), id_for_errors));
        };
        let params = object.remove("params");
        if let Some(params) = &params
            && !params.is_object()
            && !params.is_array()
        {
            return Err(invalid(
                format!("\"params\" must be an object, got {}", json_type(params)),
                id_for_errors,
            ));
        }
        return Ok(match id {
            Some(id) => Message::Request { id, method, params },
            None => Message::Notification { method, params },
        });
    }
    if let Some(result) = object.remove("result") {
        let Some(id) = id else {
            return Err(invalid(
                "a response needs the \"id\" of its request".into(),
                Value::Null,
            ));
        };
        return Ok(Message::Response { id, result });
    }
    let id = id.unwrap_or(Value::Null);
    if let Some(error) = object.remove("error") {
        return Ok(Message::Error { id, error });
    }
    Err(invalid(
        "a message needs \"method\", \"result\" or \"error\"".into(),
        id_for_errors,
    ))
}

fn invalid(reason: String, id: Value) -> EnvelopeError {
    EnvelopeError::Invalid { reason, id }
}

fn is_valid_id(id: &Value) -> bool {
    id.is_string() || id.is_i64() || id.is_u64()
}

/// The JSON type name of a value, for error messages.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A success response.
pub fn response(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// An error response with a stable code and a human sentence.
pub fn error_response(id: &Value, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut error = Map::new();
    error.insert("code".into(), code.into());
    error.insert("message".into(), message.into());
    if let Some(data) = data {
        error.insert("data".into(), data);
    }
    json!({"jsonrpc": "2.0", "id": id, "error": error})
}

/// A request.
pub fn request(id: &Value, method: &str, params: Option<Value>) -> Value {
    let mut message = json!({"jsonrpc": "2.0", "id": id, "method": method});
    if let Some(params) = params {
        message["params"] = params;
    }
    message
}

/// A notification.
pub fn notification(method: &str, params: Option<Value>) -> Value {
    let mut message = json!({"jsonrpc": "2.0", "method": method});
    if let Some(params) = params {
        message["params"] = params;
    }
    message
}

/// Serialize a message as one newline-terminated frame.
pub fn to_frame(message: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(message).unwrap_or_else(|_| b"null".to_vec());
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_four_kinds() {
        let request = parse_message(br#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#).unwrap();
        assert_eq!(
            request,
            Message::Request {
                id: json!(7),
                method: "ping".into(),
                params: None
            }
        );
        let notification =
            parse_message(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert!(matches!(notification, Message::Notification { .. }));
        let response = parse_message(br#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap();
        assert!(matches!(response, Message::Response { .. }));
        let error =
            parse_message(br#"{"jsonrpc":"2.0","id":null,"error":{"code":1,"message":"x"}}"#)
                .unwrap();
        assert!(matches!(error, Message::Error { .. }));
    }

    #[test]
    fn malformed_json_is_a_parse_error_with_null_id() {
        let error = parse_message(b"{not json").unwrap_err();
        let reply = error.to_response();
        assert_eq!(reply["error"]["code"], codes::PARSE_ERROR);
        assert_eq!(reply["id"], Value::Null);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let depth = 100_000;
        let mut frame = "[".repeat(depth);
        frame.push_str(&"]".repeat(depth));
        let error = parse_message(frame.as_bytes()).unwrap_err();
        assert!(matches!(error, EnvelopeError::Json(ref m) if m.contains("recursion limit")));
    }

    #[test]
    fn wrong_shapes_are_invalid_requests_that_keep_the_id() {
        let error = parse_message(br#"{"jsonrpc":"2.0","id":3,"method":5}"#).unwrap_err();
        assert_eq!(error.to_response()["id"], json!(3));
        assert_eq!(error.to_response()["error"]["code"], codes::INVALID_REQUEST);
        let error = parse_message(br#"{"id":3,"method":"ping"}"#).unwrap_err();
        assert!(error.to_string().contains("jsonrpc"));
        let error = parse_message(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#).unwrap_err();
        assert_eq!(error, EnvelopeError::Batch);
        let error =
            parse_message(br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":3}"#).unwrap_err();
        assert!(error.to_string().contains("params"));
        let error =
            parse_message(br#"{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}"#).unwrap_err();
        assert_eq!(error.to_response()["id"], Value::Null);
    }

    /// Found by the `jsonrpc` fuzz target: a result without an id was classified as a
    /// response to `null`, which no writer can produce again (`"id": null` is an error's only)
    /// and no request can match. JSON-RPC requires the id; an error may still lack it.
    #[test]
    fn a_result_without_an_id_is_invalid() {
        let error =
            parse_message(br#"{"jsonrpc":"2.0","result":{"action":"accept"}}"#).unwrap_err();
        assert_eq!(error.to_response()["error"]["code"], codes::INVALID_REQUEST);
        assert!(error.to_string().contains("id"), "{error}");
        let error = parse_message(br#"{"jsonrpc":"2.0","error":{"code":1,"message":"x"}}"#);
        assert!(matches!(
            error,
            Ok(Message::Error {
                id: Value::Null,
                ..
            })
        ));
    }

    /// Found by the `jsonrpc` fuzz target: a number the supervisor parses and writes again
    /// (every relayed request and reply) must reach the other side as the same number.
    #[test]
    fn numbers_survive_a_parse_and_write() {
        let frame = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"n":-922337203685474073709551616}}"#;
        let message = parse_message(frame).unwrap();
        let Message::Request { id, method, params } = &message else {
            panic!("not a request: {message:?}");
        };
        let written = to_frame(&request(id, method, params.clone()));
        assert_eq!(
            parse_message(&written[..written.len() - 1]).unwrap(),
            message
        );
    }

    #[test]
    fn frames_end_with_exactly_one_newline() {
        let frame = to_frame(&response(&json!(1), json!({})));
        assert_eq!(frame.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(frame.last(), Some(&b'\n'));
    }
}
