//! `jsonrpc`: classification of one frame as request, notification, response or error.
//!
//! Input: one frame. Oracles: a frame that classifies serializes (with the crate's own
//! builders) to a frame that classifies the same — what the relay relies on when it parses and
//! re-serializes a message; a frame that does not is answered by an error response that is
//! itself a well-formed JSON-RPC error, carrying the request's id whenever the frame had a
//! usable one, so the client can match the answer to its request.

use bulkhead_protocol::jsonrpc::{self, EnvelopeError, Message};
use serde_json::{Value, json};

pub fn check(frame: &[u8]) {
    match jsonrpc::parse_message(frame) {
        Ok(message) => round_trips(&message),
        Err(error) => is_answerable(frame, &error),
    }
}

/// The message as the crate's builders write it.
pub fn serialize(message: &Message) -> Value {
    match message {
        Message::Request { id, method, params } => jsonrpc::request(id, method, params.clone()),
        Message::Notification { method, params } => jsonrpc::notification(method, params.clone()),
        Message::Response { id, result } => jsonrpc::response(id, result.clone()),
        Message::Error { id, error } => json!({"jsonrpc": "2.0", "id": id, "error": error}),
    }
}

fn round_trips(message: &Message) {
    let frame = jsonrpc::to_frame(&serialize(message));
    let (last, line) = frame.split_last().expect("a frame is never empty");
    assert_eq!(*last, b'\n');
    assert!(!line.contains(&b'\n'), "a serialized message spans lines");
    match jsonrpc::parse_message(line) {
        Ok(again) => assert_eq!(&again, message, "{}", String::from_utf8_lossy(line)),
        Err(error) => panic!(
            "{message:?} serialized as {} does not classify: {error}",
            String::from_utf8_lossy(line)
        ),
    }
}

fn is_answerable(frame: &[u8], error: &EnvelopeError) {
    let reply = error.to_response();
    let Ok(Message::Error { id, error: body }) = jsonrpc::classify(reply.clone()) else {
        panic!("the answer to {error:?} is not an error response: {reply}");
    };
    assert!(
        body["code"].is_i64() && body["message"].is_string(),
        "{reply}"
    );
    assert!(
        id.is_null() || id.is_string() || id.is_i64() || id.is_u64(),
        "{reply}"
    );
    // A single object with a string or integer id gets its answer under that id.
    if let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(frame)
        && let Some(sent) = object
            .get("id")
            .filter(|id| id.is_string() || id.is_i64() || id.is_u64())
    {
        assert_eq!(&id, sent, "the answer to {error:?} lost the request's id");
    }
}
