//! `bridge`: external worker mode's era translation of requests and replies.
//!
//! Input: byte 0 picks the server's era and the method; then, up to a newline, the request's
//! params as JSON (anything that is not an object or an array counts as none, as the
//! classifier allows no other params); the rest is the server's reply as JSON. Oracles:
//!
//! - the translated request, framed as the worker writes it, classifies as a request with the
//!   same id and method: the bridge never drops or changes a request's id;
//! - an `initialize`-era server never sees an `io.modelcontextprotocol/*` key, an inline
//!   server always gets a 2026-07-28 envelope; every other key of the client's is kept;
//! - translating twice changes nothing more;
//! - the reply keeps its id and every key the server wrote; a legacy client never gets a
//!   result asking for more input, and a 2026-07-28 client always gets `resultType`.

use bulkhead_protocol::Era;
use bulkhead_protocol::jsonrpc::{self, Message};
use bulkhead_supervisor::fuzzing;
use serde_json::{Map, Value, json};

use crate::input::Cursor;

const METHODS: [&str; 6] = [
    "tools/call",
    "tools/list",
    "resources/read",
    "prompts/list",
    "ping",
    "server/discover",
];
const ENVELOPE_PREFIX: &str = "io.modelcontextprotocol/";
const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

pub fn check(data: &[u8]) {
    let mut input = Cursor::new(data);
    let choice = input.byte();
    let era = if choice & 1 == 0 {
        Era::Initialize
    } else {
        Era::Inline
    };
    let method = METHODS[usize::from(choice >> 1) % METHODS.len()];
    let params = serde_json::from_slice::<Value>(input.until(b'\n'))
        .ok()
        .filter(|params| params.is_object() || params.is_array());
    let reply = serde_json::from_slice::<Value>(input.rest()).ok();

    let modern_request = is_modern(params.as_ref());
    let (bridged, fix) = fuzzing::outbound(era, method, params.clone());
    keeps_the_request(method, bridged.as_ref());
    follows_the_era(era, params.as_ref(), bridged.as_ref());
    let (twice, _) = fuzzing::outbound(era, method, bridged.clone());
    assert_eq!(twice, bridged, "translating again changed the request");

    let Some(original) = reply else { return };
    let mut fixed = original.clone();
    fuzzing::inbound(fix, &mut fixed);
    keeps_the_reply(&original, &fixed);
    if let Some(result) = fixed.get("result").and_then(Value::as_object) {
        let result_type = result.get("resultType").and_then(Value::as_str);
        if !modern_request && era == Era::Inline {
            assert!(
                result_type.is_none_or(|kind| kind == "complete"),
                "a legacy client got {fixed}"
            );
        }
        if modern_request && era == Era::Initialize {
            assert!(
                result.contains_key("resultType"),
                "a 2026-07-28 client got {fixed}"
            );
        }
    }
}

fn is_modern(params: Option<&Value>) -> bool {
    params
        .and_then(|params| params.get("_meta"))
        .and_then(|meta| meta.get(META_VERSION))
        .and_then(Value::as_str)
        .is_some_and(|version| Era::of_version(version).is_inline())
}

/// Framed as the worker frames it, the request is still this request.
fn keeps_the_request(method: &str, params: Option<&Value>) {
    let id = json!(7);
    let frame = jsonrpc::to_frame(&jsonrpc::request(&id, method, params.cloned()));
    match jsonrpc::parse_message(&frame[..frame.len() - 1]) {
        Ok(Message::Request {
            id: sent,
            method: sent_method,
            params: sent_params,
        }) => {
            assert_eq!(sent, id);
            assert_eq!(sent_method, method);
            assert_eq!(sent_params.as_ref(), params);
        }
        other => panic!("the translated request became {other:?}"),
    }
}

fn follows_the_era(era: Era, before: Option<&Value>, after: Option<&Value>) {
    let Some(Value::Object(before_object)) = before else {
        if let Some(array) = before {
            assert_eq!(after, Some(array), "array params are passed as they are");
            return;
        }
        if era == Era::Inline {
            assert!(
                is_modern(after),
                "an inline server got no envelope: {after:?}"
            );
        }
        return;
    };
    let empty = Map::new();
    let after_object = after.and_then(Value::as_object).unwrap_or(&empty);
    for (key, value) in before_object {
        if key != "_meta" {
            assert_eq!(after_object.get(key), Some(value), "{key} was changed");
        }
    }
    let meta_before = before_object.get("_meta");
    let meta_after = after_object.get("_meta").and_then(Value::as_object);
    match era {
        Era::Initialize => {
            if let Some(meta) = meta_after {
                assert!(
                    meta.keys().all(|key| !key.starts_with(ENVELOPE_PREFIX)),
                    "an initialize-era server got the envelope: {meta:?}"
                );
            }
            if let Some(Value::Object(meta)) = meta_before {
                for (key, value) in meta
                    .iter()
                    .filter(|(key, _)| !key.starts_with(ENVELOPE_PREFIX))
                {
                    assert_eq!(meta_after.and_then(|meta| meta.get(key)), Some(value));
                }
            }
        }
        Era::Inline => {
            assert!(
                is_modern(after),
                "an inline server got no envelope: {after:?}"
            );
            if let Some(Value::Object(meta)) = meta_before {
                for (key, value) in meta
                    .iter()
                    .filter(|(key, _)| !key.starts_with(ENVELOPE_PREFIX))
                {
                    assert_eq!(meta_after.and_then(|meta| meta.get(key)), Some(value));
                }
            }
        }
    }
}

/// The reply keeps its id, and either keeps every key of its result or becomes an error.
fn keeps_the_reply(original: &Value, fixed: &Value) {
    let Some(object) = original.as_object() else {
        assert_eq!(fixed, original, "a reply that is not an object was changed");
        return;
    };
    match (object.get("result"), fixed.get("result")) {
        (Some(Value::Object(before)), Some(Value::Object(after))) => {
            assert_eq!(fixed.get("id"), object.get("id"), "the reply's id changed");
            for (key, value) in before {
                assert_eq!(after.get(key), Some(value), "the result lost {key}");
            }
        }
        (Some(Value::Object(_)), None) => {
            assert!(fixed["error"]["code"].is_i64(), "{fixed}");
            assert_eq!(
                fixed.get("id"),
                Some(object.get("id").unwrap_or(&Value::Null))
            );
        }
        _ => assert_eq!(
            fixed, original,
            "a reply without a result object was changed"
        ),
    }
}
