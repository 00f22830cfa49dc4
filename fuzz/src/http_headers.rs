//! `http_headers`: the `/mcp` endpoint's header rules — `=?base64?…?=` decoding, era detection
//! from `MCP-Protocol-Version`, and the 2026-07-28 rule that `Mcp-Method`, `Mcp-Name` and
//! `Mcp-Param-*` mirror the body.
//!
//! Input (fields end at a zero byte): a raw header value; then a request — method choice, name,
//! up to three `x-mcp-header` arguments (argument, header name, value kind and value), the
//! version choices and one change to the headers a conforming client would send. Oracles:
//!
//! - decoding agrees with an independent base64 implementation, and a value that decodes
//!   re-encodes (as the specification tells clients to) to one that decodes the same;
//! - era detection serves exactly the supported versions it decodes, 2026-07-28 as inline;
//! - a request whose headers a conforming client wrote is accepted, whatever its values;
//! - an accepted request has every occurrence of every mirrored header equal to the body's
//!   value after decoding (a proxy routing on any of them routes on what the server runs).

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bulkhead_protocol::jsonrpc::{self, Message};
use bulkhead_protocol::{
    Era, PROTOCOL_NO_INITIALIZE, SUPPORTED_PROTOCOL_VERSIONS, is_supported_protocol_version,
};
use bulkhead_supervisor::fuzzing;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

use crate::input::Cursor;

/// Standard base64 with padding, as the endpoint decodes it: canonical padding, trailing bits
/// of the last character ignored.
const REFERENCE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(true),
);

const METHOD: &str = "mcp-method";
const NAME: &str = "mcp-name";
const VERSION: &str = "mcp-protocol-version";
const METHODS: [&str; 5] = [
    "tools/call",
    "prompts/get",
    "resources/read",
    "tools/list",
    "ping",
];

pub fn check(data: &[u8]) {
    let mut input = Cursor::new(data);
    decoding(input.until(0));
    mirroring(&mut input);
}

/// What a header value means to a reader that follows the specification, or `None` if it
/// is not a valid value.
pub fn reference_decode(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?.trim_matches([' ', '\t']);
    match text
        .strip_prefix("=?base64?")
        .and_then(|rest| rest.strip_suffix("?="))
    {
        Some(encoded) => String::from_utf8(REFERENCE.decode(encoded).ok()?).ok(),
        None => Some(text.to_string()),
    }
}

/// A value as a conforming client writes it: plain when it is visible ASCII (with inner
/// spaces and tabs) not shaped like the sentinel, else `=?base64?…?=`.
pub fn client_encode(value: &str) -> String {
    let visible = value
        .bytes()
        .all(|byte| byte == b'\t' || (0x20..=0x7e).contains(&byte));
    let sentinel = value.starts_with("=?base64?") && value.ends_with("?=");
    let plain =
        visible && !value.starts_with([' ', '\t']) && !value.ends_with([' ', '\t']) && !sentinel;
    if plain {
        value.to_string()
    } else {
        format!("=?base64?{}?=", REFERENCE.encode(value))
    }
}

fn decoding(raw: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(raw) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(NAME, value.clone());
    let decoded = fuzzing::header(&headers, NAME);
    assert_eq!(
        decoded.as_ref().ok().cloned().flatten(),
        reference_decode(&value),
        "{value:?} decoded as {decoded:?}"
    );
    if let Ok(Some(text)) = decoded {
        let again = HeaderValue::from_str(&client_encode(&text)).expect("encoded is visible ASCII");
        headers.insert(NAME, again.clone());
        assert_eq!(
            fuzzing::header(&headers, NAME),
            Ok(Some(text)),
            "{value:?} re-encoded as {again:?}"
        );
    }
    // Era detection reads the same way, and no header means 2025-03-26.
    headers.clear();
    assert_eq!(
        fuzzing::requested_version(&headers),
        Ok(("2025-03-26".to_string(), Era::Initialize))
    );
    headers.insert(VERSION, value.clone());
    let detected = fuzzing::requested_version(&headers);
    let served = reference_decode(&value).filter(|version| is_supported_protocol_version(version));
    assert_eq!(
        detected.as_ref().ok().map(|(version, _)| version),
        served.as_ref(),
        "{value:?} detected as {detected:?}"
    );
    if let Ok((version, era)) = detected {
        assert_eq!(era == Era::Inline, version == PROTOCOL_NO_INITIALIZE);
    }
}

/// One `x-mcp-header` argument of the called tool.
struct Argument {
    name: String,
    header: String,
    value: Value,
}

fn mirroring(input: &mut Cursor) {
    let method = match input.below(METHODS.len() + 1) {
        index if index < METHODS.len() => METHODS[index].to_string(),
        _ => input.text_until(0),
    };
    let name = input.text_until(0);
    let arguments: Vec<Argument> = (0..input.below(4))
        .map(|_| Argument {
            name: input.text_until(0),
            header: input.text_until(0),
            value: argument_value(input),
        })
        .collect();
    let version = match input.below(SUPPORTED_PROTOCOL_VERSIONS.len() + 1) {
        index if index < SUPPORTED_PROTOCOL_VERSIONS.len() => {
            SUPPORTED_PROTOCOL_VERSIONS[index].to_string()
        }
        _ => input.text_until(0),
    };
    let meta_version = match input.below(3) {
        0 => Some(version.clone()),
        1 => Some(input.text_until(0)),
        _ => None,
    };
    let change = Change::from(input);

    let message = request(&method, &name, &arguments, meta_version.as_deref());
    let header_params: Vec<(String, String)> = arguments
        .iter()
        .map(|argument| (argument.name.clone(), argument.header.clone()))
        .collect();
    let Some(mut headers) = client_headers(&message, &version, &header_params) else {
        return; // headers no client could send (an invalid header name)
    };
    let conforming = change.apply(&mut headers) && well_defined(&arguments);
    // The header rules are checked for any version text; whether the endpoint serves that
    // version is era detection's business (checked in `decoding`).
    let Ok(requested) = fuzzing::header(&headers, VERSION) else {
        assert!(!conforming, "a conforming version header was refused");
        return;
    };
    let requested = requested.unwrap_or_else(|| "2025-03-26".to_string());
    let verdict =
        fuzzing::check_modern_headers(&headers, &body(&message), &requested, &header_params);
    let agrees = meta_version.is_none_or(|meta| meta == requested);
    if conforming && agrees {
        assert_eq!(verdict, Ok(()), "{headers:?} {message:?}");
    }
    if verdict.is_ok() {
        assert_mirrors(&headers, &message, &requested, &header_params);
    }
}

fn argument_value(input: &mut Cursor) -> Value {
    match input.below(5) {
        0 => Value::Null,
        1 => json!(input.byte().is_multiple_of(2)),
        2 => {
            let bytes: [u8; 8] = std::array::from_fn(|_| input.byte());
            json!(i64::from_le_bytes(bytes))
        }
        3 => json!({"nested": input.text_until(0)}),
        _ => json!(input.text_until(0)),
    }
}

/// The specification's constraints on `x-mcp-header` that the catalog enforces: names unique
/// (ignoring case), arguments unique.
fn well_defined(arguments: &[Argument]) -> bool {
    arguments.iter().enumerate().all(|(index, argument)| {
        arguments[..index].iter().all(|earlier| {
            !earlier.header.eq_ignore_ascii_case(&argument.header) && earlier.name != argument.name
        })
    })
}

fn request(
    method: &str,
    name: &str,
    arguments: &[Argument],
    meta_version: Option<&str>,
) -> Message {
    let mut params = Map::new();
    let field = if method == "resources/read" {
        "uri"
    } else {
        "name"
    };
    params.insert(field.into(), json!(name));
    let values: Map<String, Value> = arguments
        .iter()
        .map(|argument| (argument.name.clone(), argument.value.clone()))
        .collect();
    params.insert("arguments".into(), Value::Object(values));
    if let Some(version) = meta_version {
        params.insert(
            "_meta".into(),
            json!({"io.modelcontextprotocol/protocolVersion": version}),
        );
    }
    Message::Request {
        id: json!(1),
        method: method.into(),
        params: Some(Value::Object(params)),
    }
}

/// `message` as a client sends it: the body of its POST.
fn body(message: &Message) -> Vec<u8> {
    let Message::Request { id, method, params } = message else {
        unreachable!("only requests are built");
    };
    serde_json::to_vec(&jsonrpc::request(id, method, params.clone())).expect("a JSON value")
}

/// The headers a conforming client sends for `message`, or `None` if one cannot be sent.
fn client_headers(
    message: &Message,
    version: &str,
    header_params: &[(String, String)],
) -> Option<HeaderMap> {
    let Message::Request { method, params, .. } = message else {
        return None;
    };
    let mut headers = HeaderMap::new();
    let mut add = |name: &str, value: &str| -> Option<()> {
        let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).ok()?;
        headers.append(name, HeaderValue::from_str(&client_encode(value)).ok()?);
        Some(())
    };
    add(VERSION, version)?;
    add(METHOD, method)?;
    if let Some(field) = named_field(method) {
        add(NAME, params.as_ref()?[field].as_str()?)?;
    }
    for (argument, header) in header_params {
        if let Some(text) = params.as_ref()?["arguments"]
            .get(argument)
            .and_then(body_text)
        {
            add(&format!("mcp-param-{header}"), &text)?;
        }
    }
    Some(headers)
}

fn named_field(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

/// An argument's value as its header carries it; `None` when no header is sent.
fn body_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(_) | Value::Bool(_) => Some(value.to_string()),
        _ => None,
    }
}

/// Accepted: every occurrence of every mirrored header says what the body says.
fn assert_mirrors(
    headers: &HeaderMap,
    message: &Message,
    version: &str,
    header_params: &[(String, String)],
) {
    let Message::Request { method, params, .. } = message else {
        return;
    };
    let says = |name: &str, expected: &str| {
        for value in headers.get_all(name) {
            assert_eq!(
                reference_decode(value).as_deref(),
                Some(expected),
                "accepted with {name}: {value:?}, but the request says {expected:?}: {headers:?}"
            );
        }
    };
    says(VERSION, version);
    says(METHOD, method);
    if let Some(field) = named_field(method)
        && let Some(body) = params.as_ref().and_then(|params| params[field].as_str())
    {
        says(NAME, body);
    }
    for (argument, header) in header_params {
        let name = format!("mcp-param-{}", header.to_ascii_lowercase());
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            continue;
        }
        let body = params
            .as_ref()
            .and_then(|params| params["arguments"].get(argument));
        match body {
            Some(value @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => {
                says(&name, &body_text(value).unwrap_or_default());
            }
            Some(Value::Object(_) | Value::Array(_)) => {}
            None | Some(Value::Null) => assert!(
                headers.get(&name).is_none(),
                "accepted {name} for an argument the body does not have: {headers:?}"
            ),
        }
    }
}

/// One change to a conforming client's headers.
enum Change {
    /// None: the headers as written.
    Keep,
    /// Harmless: a plain value sent base64-encoded anyway, or padded with spaces.
    Encode(usize),
    Pad(usize),
    /// Not conforming: a header dropped, replaced, or repeated with another value.
    Drop(usize),
    Replace(usize, String),
    Repeat(usize, String),
}

impl Change {
    fn from(input: &mut Cursor) -> Self {
        let kind = input.below(6);
        let index = input.below(8);
        match kind {
            0 => Change::Keep,
            1 => Change::Encode(index),
            2 => Change::Pad(index),
            3 => Change::Drop(index),
            4 => Change::Replace(index, input.text_until(0)),
            _ => Change::Repeat(index, input.text_until(0)),
        }
    }

    /// Apply the change; whether the headers still conform.
    fn apply(&self, headers: &mut HeaderMap) -> bool {
        let names: Vec<HeaderName> = headers.keys().cloned().collect();
        let pick = |index: &usize| names.get(index % names.len().max(1)).cloned();
        let set = |headers: &mut HeaderMap, name: HeaderName, value: String| {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        };
        match self {
            Change::Keep => true,
            Change::Encode(index) | Change::Pad(index) => {
                if let Some(name) = pick(index)
                    && let Some(text) = headers.get(&name).and_then(reference_decode)
                {
                    let value = match self {
                        Change::Encode(_) => format!("=?base64?{}?=", REFERENCE.encode(&text)),
                        _ => format!(" {} ", client_encode(&text)),
                    };
                    set(headers, name, value);
                }
                true
            }
            Change::Drop(index) => {
                if let Some(name) = pick(index) {
                    headers.remove(name);
                }
                false
            }
            Change::Replace(index, value) => {
                if let Some(name) = pick(index) {
                    set(headers, name, client_encode(value));
                }
                false
            }
            Change::Repeat(index, value) => {
                if let Some(name) = pick(index)
                    && let Ok(value) = HeaderValue::from_str(&client_encode(value))
                {
                    headers.append(name, value);
                }
                false
            }
        }
    }
}
