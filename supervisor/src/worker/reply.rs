//! A worker's response to a call, kept as the bytes the worker sent when it is a result, so it
//! reaches the client without being parsed and serialized again.
//!
//! The actor reads only the envelope of a line to route it: whether it names a method, its
//! `id`, and where its `result` is — borrowed from the line, nothing copied. A result keeps the
//! line and the span of its `result`; anything else (an error, a reply a wrapped server's
//! bridge must fix, a line the envelope reader cannot take) is parsed as a value, as before.

use std::ops::Range;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// A worker's final answer to a call.
#[derive(Debug)]
pub enum Reply {
    /// A result: the worker's line and where its `result` is in it.
    Result { line: Vec<u8>, result: Range<usize> },
    /// A whole response, parsed.
    Value(Value),
}

impl Reply {
    /// The JSON text of the result, when the worker answered with one as it sent it.
    pub fn result_json(&self) -> Option<&[u8]> {
        match self {
            Reply::Result { line, result } => line.get(result.clone()),
            Reply::Value(_) => None,
        }
    }

    /// The whole response as a value.
    pub fn into_value(self) -> Value {
        match self {
            Reply::Result { line, result } => serde_json::from_slice(&line).unwrap_or_else(|_| {
                let result: Value = serde_json::from_slice(&line[result]).unwrap_or(Value::Null);
                json!({"jsonrpc": "2.0", "result": result})
            }),
            Reply::Value(value) => value,
        }
    }
}

/// What the actor reads of a line to route it; everything else is skipped, unparsed.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    method: Option<IgnoredAny>,
    #[serde(borrow)]
    result: Option<&'a RawValue>,
    error: Option<IgnoredAny>,
}

/// The id and the span of the result, if `line` is a success response: one pass over the line,
/// nothing allocated but the id.
pub(super) fn result_span(line: &[u8]) -> Option<(Value, Range<usize>)> {
    let envelope: Envelope<'_> = serde_json::from_slice(line).ok()?;
    if envelope.method.is_some() || envelope.error.is_some() {
        return None;
    }
    let id: Value = serde_json::from_str(envelope.id?.get()).ok()?;
    let result = envelope.result?.get();
    // The raw value is borrowed from `line`: its address says where it is.
    let start = (result.as_ptr() as usize).checked_sub(line.as_ptr() as usize)?;
    let end = start.checked_add(result.len())?;
    (end <= line.len()).then_some((id, start..end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_is_found_in_place_and_anything_else_is_left_to_the_value_path() {
        let line = br#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"hi \"there\""}],"isError":false}}"#;
        let (id, span) = result_span(line).unwrap();
        assert_eq!(id, 7);
        let reply = Reply::Result {
            line: line.to_vec(),
            result: span,
        };
        assert_eq!(
            reply.result_json().unwrap(),
            br#"{"content":[{"type":"text","text":"hi \"there\""}],"isError":false}"#
        );
        assert_eq!(reply.into_value()["result"]["isError"], false);
        for other in [
            &br#"{"jsonrpc":"2.0","id":7,"error":{"code":1,"message":"no"}}"#[..],
            br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#,
            br#"{"jsonrpc":"2.0","id":"w-1","method":"roots/list"}"#,
            br#"{"jsonrpc":"2.0","result":{}}"#,
            b"not json",
        ] {
            assert!(
                result_span(other).is_none(),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }
}
