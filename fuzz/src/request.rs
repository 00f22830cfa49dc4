//! `request`: the front door's parse of one client frame (`mcp::request`): `Incoming::parse`
//! into the closed `Request` enum, the notifications it acts on and the answers to relayed
//! requests, and `ToolCall::parse` of a `tools/call`'s parameters.
//!
//! Input: one frame. Oracles, each against the protocol crate's classification of the same
//! frame or a small model written here:
//!
//! - `Incoming::parse` accepts exactly the frames `jsonrpc::parse_message` accepts, with the
//!   same answer to the others;
//! - a request keeps its id, its method's name and its params; a known method is never
//!   `Unknown`, a forwarded one names its capability; only a `tools/call` of a tool that is not
//!   a session tool goes to a worker, and `tool_name` is its string `name`;
//! - `notifications/cancelled` names the `requestId` it carries; other notifications keep
//!   method and params; an answer keeps its id and is itself a response that classifies as the
//!   client's result or error;
//! - `method_and_params` says what the message says (what the HTTP headers must mirror);
//! - `ToolCall::parse` accepts exactly params with a string `name`, `arguments` absent, null
//!   or an object, and `session` absent, null or a string; it takes `session` out of the
//!   arguments and `arguments` out of the params and keeps everything else; a refusal is
//!   invalid params.

use bulkhead_protocol::codes;
use bulkhead_protocol::jsonrpc::{self, Message};
use bulkhead_protocol::names::{SESSION_ARGUMENT, SESSION_TOOLS};
use bulkhead_supervisor::fuzzing::{Incoming, Method, Notification, Request, ToolCall};
use serde_json::{Map, Value};

/// Every method name the front door serves itself or forwards to the default session's worker.
const KNOWN: [&str; 15] = [
    "initialize",
    "ping",
    "server/discover",
    "subscriptions/listen",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "completion/complete",
    "logging/setLevel",
];

pub fn check(frame: &[u8]) {
    let incoming = Incoming::parse(frame);
    let message = jsonrpc::parse_message(frame);
    match (incoming, message) {
        (Ok(incoming), Ok(message)) => classified(&incoming, &message),
        (Err(error), Err(expected)) => assert_eq!(
            error.to_response(),
            expected.to_response(),
            "the front door answers a bad frame unlike the protocol crate"
        ),
        (incoming, message) => panic!("the front door read {incoming:?}, the protocol {message:?}"),
    }
}

fn classified(incoming: &Incoming, message: &Message) {
    match (incoming, message) {
        (
            Incoming::Request { id, request },
            Message::Request {
                id: sent,
                method,
                params,
            },
        ) => {
            assert_eq!(id, sent);
            assert_eq!(&request.params, params);
            a_request(request, method);
        }
        (
            Incoming::Notification(Notification::Cancelled { request_id, params }),
            Message::Notification {
                method,
                params: sent,
            },
        ) => {
            assert_eq!(method, "notifications/cancelled");
            assert_eq!(params, sent);
            let named = sent.as_ref().and_then(|params| params.get("requestId"));
            assert_eq!(request_id.as_ref(), named);
        }
        (
            Incoming::Notification(Notification::Other { method, params }),
            Message::Notification {
                method: sent,
                params: sent_params,
            },
        ) => {
            assert_ne!(method, "notifications/cancelled");
            assert_eq!((method, params), (sent, sent_params));
        }
        (Incoming::Answer { id, answer }, Message::Response { id: sent, .. })
        | (Incoming::Answer { id, answer }, Message::Error { id: sent, .. }) => {
            assert_eq!(id, sent);
            let line = serde_json::to_vec(answer).expect("a JSON value");
            let again = jsonrpc::parse_message(&line);
            assert_eq!(again.as_ref(), Ok(message), "the answer became {answer}");
        }
        (incoming, message) => panic!("{message:?} was read as {incoming:?}"),
    }
    let expected = match message {
        Message::Request { method, params, .. } => Some((method.as_str(), params.as_ref(), true)),
        Message::Notification { method, params } => Some((method.as_str(), params.as_ref(), false)),
        Message::Response { .. } | Message::Error { .. } => None,
    };
    assert_eq!(incoming.method_and_params(), expected);
}

fn a_request(request: &Request, method: &str) {
    assert_eq!(request.method.name(), method, "{:?}", request.method);
    match &request.method {
        Method::Unknown(name) => assert!(!KNOWN.contains(&name.as_str()), "{name} is known"),
        Method::Forwarded(forwarded) => assert!(!forwarded.capability().is_empty()),
        _ => assert!(KNOWN.contains(&method)),
    }
    let name = request
        .params
        .as_ref()
        .and_then(|params| params.get("name"))
        .and_then(Value::as_str);
    let is_call = method == "tools/call";
    assert_eq!(request.tool_name(), name.filter(|_| is_call));
    assert_eq!(
        request.goes_to_a_worker(),
        is_call && !name.is_some_and(|name| SESSION_TOOLS.contains(&name))
    );
    if is_call {
        tool_call(request.params.clone());
    }
}

fn tool_call(params: Option<Value>) {
    let expected = model(params.as_ref());
    match (ToolCall::parse(params), expected) {
        (Ok(call), Some(expected)) => {
            assert_eq!(
                (call.name, call.arguments, call.session, call.params),
                expected
            );
        }
        (Err(error), None) => assert_eq!(error.code, codes::INVALID_PARAMS, "{}", error.message),
        (call, expected) => panic!("parsed {call:?}, expected {expected:?}"),
    }
}

/// What `ToolCall::parse` should make of `params`: name, arguments without `session`, the
/// session, the other params.
type Expected = (
    String,
    Map<String, Value>,
    Option<String>,
    Map<String, Value>,
);

fn model(params: Option<&Value>) -> Option<Expected> {
    let params = params?.as_object()?;
    let name = params.get("name")?.as_str()?.to_string();
    let mut arguments = match params.get("arguments") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(arguments)) => arguments.clone(),
        Some(_) => return None,
    };
    let session = match arguments.remove(SESSION_ARGUMENT) {
        None | Some(Value::Null) => None,
        Some(Value::String(handle)) => Some(handle),
        Some(_) => return None,
    };
    let mut rest = params.clone();
    rest.remove("arguments");
    Some((name, arguments, session, rest))
}
