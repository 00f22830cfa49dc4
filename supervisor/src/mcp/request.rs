//! What a client sent, parsed before anything is applied: a closed set of requests, the
//! notifications the front door acts on, and the answers to requests a worker relayed.
//!
//! [`Incoming::parse`] is pure and total: any bytes give a message or the envelope error to
//! answer with. Every transport asks it — stdio for each line, the HTTP endpoint for each body,
//! which also asks it whether a request goes to a worker, which tool it calls and what its
//! headers must mirror, instead of re-reading method strings. A `tools/call`'s own parameters
//! are parsed by [`ToolCall::parse`] once its era is known, so an era error is reported before
//! a parameter error.

use bulkhead_protocol::jsonrpc::{self, EnvelopeError, Message, json_type};
use bulkhead_protocol::names::{SESSION_ARGUMENT, SESSION_TOOLS};
use serde_json::{Map, Value, json};

use super::reply::RpcError;

/// One message from a client.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A request, to be answered under `id`.
    Request { id: Value, request: Request },
    /// A notification the front door acts on, or ignores.
    Notification(Notification),
    /// The client's answer (a whole response, result or error) to a request a worker relayed
    /// under an id of the supervisor's.
    Answer { id: Value, answer: Value },
}

/// A notification from a client.
#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    /// `notifications/cancelled` naming the request to cancel (if it names one).
    Cancelled {
        request_id: Option<Value>,
        params: Option<Value>,
    },
    /// Anything else (`notifications/initialized`, …): nothing to do.
    Other {
        method: String,
        params: Option<Value>,
    },
}

/// A request: its method, from a closed set, and its parameters as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: Method,
    pub params: Option<Value>,
}

/// Every method the front door knows, and the rest.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    Initialize,
    Ping,
    Discover,
    Listen,
    ToolsList,
    ToolsCall,
    /// Served by the default session's worker when it declares the capability.
    Forwarded(Forwarded),
    /// Not a method of ours: method-not-found.
    Unknown(String),
}

/// Methods passed to the default session's worker when it declares their capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarded {
    PromptsList,
    PromptsGet,
    ResourcesList,
    ResourcesRead,
    ResourcesTemplatesList,
    ResourcesSubscribe,
    ResourcesUnsubscribe,
    CompletionComplete,
    LoggingSetLevel,
}

/// Every forwarded method: its name and the worker capability it needs.
const FORWARDED: [(Forwarded, &str, &str); 9] = [
    (Forwarded::PromptsList, "prompts/list", "prompts"),
    (Forwarded::PromptsGet, "prompts/get", "prompts"),
    (Forwarded::ResourcesList, "resources/list", "resources"),
    (Forwarded::ResourcesRead, "resources/read", "resources"),
    (
        Forwarded::ResourcesTemplatesList,
        "resources/templates/list",
        "resources",
    ),
    (
        Forwarded::ResourcesSubscribe,
        "resources/subscribe",
        "resources",
    ),
    (
        Forwarded::ResourcesUnsubscribe,
        "resources/unsubscribe",
        "resources",
    ),
    (
        Forwarded::CompletionComplete,
        "completion/complete",
        "completions",
    ),
    (Forwarded::LoggingSetLevel, "logging/setLevel", "logging"),
];

impl Forwarded {
    fn of(method: &str) -> Option<Self> {
        FORWARDED
            .iter()
            .find(|(_, name, _)| *name == method)
            .map(|(forwarded, _, _)| *forwarded)
    }

    fn entry(self) -> (&'static str, &'static str) {
        FORWARDED
            .iter()
            .find(|(forwarded, _, _)| *forwarded == self)
            .map(|(_, name, capability)| (*name, *capability))
            .unwrap_or(("", ""))
    }

    /// The method's name on the wire.
    pub fn name(self) -> &'static str {
        self.entry().0
    }

    /// The worker capability that must be declared for it (`prompts`, `resources`, …).
    pub fn capability(self) -> &'static str {
        self.entry().1
    }
}

impl Method {
    fn of(method: String) -> Self {
        match method.as_str() {
            "initialize" => Method::Initialize,
            "ping" => Method::Ping,
            "server/discover" => Method::Discover,
            "subscriptions/listen" => Method::Listen,
            "tools/list" => Method::ToolsList,
            "tools/call" => Method::ToolsCall,
            other => match Forwarded::of(other) {
                Some(forwarded) => Method::Forwarded(forwarded),
                None => Method::Unknown(method),
            },
        }
    }

    /// The method's name on the wire.
    pub fn name(&self) -> &str {
        match self {
            Method::Initialize => "initialize",
            Method::Ping => "ping",
            Method::Discover => "server/discover",
            Method::Listen => "subscriptions/listen",
            Method::ToolsList => "tools/list",
            Method::ToolsCall => "tools/call",
            Method::Forwarded(forwarded) => forwarded.name(),
            Method::Unknown(method) => method,
        }
    }
}

impl Incoming {
    /// Parse and classify one frame (a stdio line, an HTTP body).
    pub fn parse(frame: &[u8]) -> Result<Self, EnvelopeError> {
        jsonrpc::parse_message(frame).map(Self::from_message)
    }

    fn from_message(message: Message) -> Self {
        match message {
            Message::Request { id, method, params } => Incoming::Request {
                id,
                request: Request {
                    method: Method::of(method),
                    params,
                },
            },
            Message::Notification { method, params } if method == "notifications/cancelled" => {
                let request_id = params
                    .as_ref()
                    .and_then(|params| params.get("requestId"))
                    .cloned();
                Incoming::Notification(Notification::Cancelled { request_id, params })
            }
            Message::Notification { method, params } => {
                Incoming::Notification(Notification::Other { method, params })
            }
            Message::Response { id, result } => Incoming::Answer {
                answer: jsonrpc::response(&id, result),
                id,
            },
            Message::Error { id, error } => Incoming::Answer {
                answer: json!({"jsonrpc": "2.0", "id": id, "error": error}),
                id,
            },
        }
    }

    /// The method and parameters of a request or notification (for the headers that must
    /// mirror them), and whether it is a request.
    pub fn method_and_params(&self) -> Option<(&str, Option<&Value>, bool)> {
        match self {
            Incoming::Request { request, .. } => {
                Some((request.method.name(), request.params.as_ref(), true))
            }
            Incoming::Notification(Notification::Other { method, params }) => {
                Some((method, params.as_ref(), false))
            }
            Incoming::Notification(Notification::Cancelled { params, .. }) => {
                Some(("notifications/cancelled", params.as_ref(), false))
            }
            Incoming::Answer { .. } => None,
        }
    }
}

impl Request {
    /// The tool a `tools/call` names, if it names one as a string.
    pub fn tool_name(&self) -> Option<&str> {
        match self.method {
            Method::ToolsCall => self.params.as_ref()?.get("name")?.as_str(),
            _ => None,
        }
    }

    /// Whether answering it takes a worker call (a `tools/call` of a worker's tool), so the
    /// reply may come with progress and server requests.
    pub fn goes_to_a_worker(&self) -> bool {
        matches!(self.method, Method::ToolsCall)
            && !self
                .tool_name()
                .is_some_and(|name| SESSION_TOOLS.contains(&name))
    }
}

/// A `tools/call`'s parameters, checked: the tool, its arguments without `session`, the
/// session they route to, and the other parameters (`_meta`, …) as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub name: String,
    pub arguments: Map<String, Value>,
    /// The `session` argument: a handle from `session_open`, or none for the default session.
    pub session: Option<String>,
    /// Every parameter but `arguments`.
    pub params: Map<String, Value>,
}

impl ToolCall {
    pub fn parse(params: Option<Value>) -> Result<Self, RpcError> {
        let Some(Value::Object(mut params)) = params else {
            return Err(RpcError::invalid_params(
                "tools/call needs params with a `name`",
            ));
        };
        let name = match params.get("name") {
            Some(Value::String(name)) => name.clone(),
            _ => {
                return Err(RpcError::invalid_params(
                    "tools/call needs params.name (a string)",
                ));
            }
        };
        let mut arguments = match params.remove("arguments") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(arguments)) => arguments,
            Some(other) => {
                return Err(RpcError::invalid_params(format!(
                    "params.arguments must be an object, got {}",
                    json_type(&other)
                )));
            }
        };
        let session = match arguments.remove(SESSION_ARGUMENT) {
            None | Some(Value::Null) => None,
            Some(Value::String(handle)) => Some(handle),
            Some(other) => {
                return Err(RpcError::invalid_params(format!(
                    "the `session` argument must be a string handle from session_open, got {}",
                    json_type(&other)
                )));
            }
        };
        Ok(Self {
            name,
            arguments,
            session,
            params,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_protocol::codes;

    fn request(frame: &str) -> Request {
        match Incoming::parse(frame.as_bytes()) {
            Ok(Incoming::Request { request, .. }) => request,
            other => panic!("not a request: {other:?}"),
        }
    }

    #[test]
    fn every_method_is_classified() {
        let call =
            request(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#);
        assert_eq!(call.method, Method::ToolsCall);
        assert!(call.goes_to_a_worker());
        let open = request(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"session_open"}}"#,
        );
        assert!(!open.goes_to_a_worker());
        assert_eq!(open.tool_name(), Some("session_open"));
        let read = request(r#"{"jsonrpc":"2.0","id":"r","method":"resources/read","params":{}}"#);
        assert_eq!(read.method, Method::Forwarded(Forwarded::ResourcesRead));
        assert_eq!(Forwarded::ResourcesRead.capability(), "resources");
        assert_eq!(read.method.name(), "resources/read");
        let unknown = request(r#"{"jsonrpc":"2.0","id":2,"method":"tools/frobnicate"}"#);
        assert_eq!(unknown.method, Method::Unknown("tools/frobnicate".into()));
        for (_, name, _) in FORWARDED {
            let frame = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{name}"}}"#);
            assert_eq!(request(&frame).method.name(), name);
        }
    }

    #[test]
    fn cancellations_and_answers_are_told_apart_from_requests() {
        let cancelled = Incoming::parse(
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7}}"#,
        )
        .unwrap();
        assert_eq!(
            cancelled,
            Incoming::Notification(Notification::Cancelled {
                request_id: Some(json!(7)),
                params: Some(json!({"requestId": 7})),
            })
        );
        let answer =
            Incoming::parse(br#"{"jsonrpc":"2.0","id":"bulkhead-1","result":{"action":"accept"}}"#)
                .unwrap();
        let Incoming::Answer { id, answer } = answer else {
            panic!("an answer");
        };
        assert_eq!(id, "bulkhead-1");
        assert_eq!(answer["result"]["action"], "accept");
        let refused = Incoming::parse(
            br#"{"jsonrpc":"2.0","id":"bulkhead-2","error":{"code":-1,"message":"no"}}"#,
        )
        .unwrap();
        assert!(
            matches!(refused, Incoming::Answer { answer, .. } if answer["error"]["code"] == -1)
        );
        assert!(Incoming::parse(b"{not json").is_err());
    }

    #[test]
    fn a_tool_calls_parameters_are_checked_and_its_session_taken_out() {
        let call = ToolCall::parse(Some(json!({"name": "echo", "arguments": {"text": "hi", "session": "n.1"}, "_meta": {"progressToken": 3}}))).unwrap();
        assert_eq!(call.session.as_deref(), Some("n.1"));
        assert_eq!(Value::Object(call.arguments), json!({"text": "hi"}));
        assert_eq!(call.params["_meta"]["progressToken"], 3);
        for bad in [
            None,
            Some(json!({})),
            Some(json!({"name": 5})),
            Some(json!({"name": "echo", "arguments": [1]})),
            Some(json!({"name": "echo", "arguments": {"session": 1}})),
        ] {
            assert_eq!(
                ToolCall::parse(bad).unwrap_err().code,
                codes::INVALID_PARAMS
            );
        }
    }
}
