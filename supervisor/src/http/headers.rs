//! The HTTP header rules of the `/mcp` endpoint, pure: a header's value (with the
//! `=?base64?…?=` form for non-ASCII values, decoded strictly), and the 2026-07-28 rules by
//! which `Mcp-Method`, `Mcp-Name`, the `_meta` version and every `Mcp-Param-<Name>` a tool's
//! schema marks `x-mcp-header` must mirror the body. A header sent more than once is refused.

use bulkhead_protocol::names::META_PROTOCOL_VERSION;
use hyper::header::HeaderMap;
use serde_json::Value;

use crate::mcp::request::Incoming as Message;

pub(crate) const HEADER_PROTOCOL_VERSION: &str = "mcp-protocol-version";
pub(super) const HEADER_SESSION_ID: &str = "mcp-session-id";
const HEADER_METHOD: &str = "mcp-method";
const HEADER_NAME: &str = "mcp-name";

/// A header's value, decoding the `=?base64?…?=` form used for non-ASCII values. A header
/// sent more than once is refused: a proxy may route on any one of the values, so the one
/// checked against the body must be the only one.
pub(crate) fn header(headers: &HeaderMap, name: &str) -> Result<Option<String>, String> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(format!("the {name} header is sent more than once"));
    }
    let text = value
        .to_str()
        .map_err(|_| format!("the {name} header has invalid characters"))?
        .trim_matches([' ', '\t']);
    match text
        .strip_prefix("=?base64?")
        .and_then(|rest| rest.strip_suffix("?="))
    {
        Some(encoded) => base64_decode(encoded)
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .map(Some)
            .ok_or_else(|| format!("the {name} header has a malformed base64 value")),
        None => Ok(Some(text.to_string())),
    }
}

/// The 2026-07-28 header rules: each header that mirrors the body must agree with it.
/// `header_params` are the called tool's `x-mcp-header` arguments.
pub(crate) fn check_modern_headers(
    headers: &HeaderMap,
    message: &Message,
    version: &str,
    header_params: &[(String, String)],
) -> Result<(), String> {
    let Some((method, params, is_request)) = message.method_and_params() else {
        return Ok(());
    };
    match header(headers, HEADER_METHOD)? {
        None if is_request => return Err("missing Mcp-Method header".into()),
        Some(value) if value != method => {
            return Err(format!(
                "Mcp-Method header {value:?} does not match the body's method {method:?}"
            ));
        }
        _ => {}
    }
    let meta_version = params
        .and_then(|params| params.get("_meta"))
        .and_then(|meta| meta.get(META_PROTOCOL_VERSION))
        .and_then(Value::as_str);
    if let Some(meta_version) = meta_version
        && meta_version != version
    {
        return Err(format!(
            "MCP-Protocol-Version header {version:?} does not match the request's _meta version {meta_version:?}"
        ));
    }
    if !is_request {
        return Ok(());
    }
    let named = match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    };
    if let Some(field) = named {
        let body_name = params
            .and_then(|params| params.get(field))
            .and_then(Value::as_str);
        match (header(headers, HEADER_NAME)?, body_name) {
            (None, _) => return Err("missing Mcp-Name header".into()),
            (Some(value), Some(body)) if value == body => {}
            (Some(value), _) => {
                return Err(format!(
                    "Mcp-Name header {value:?} does not match the body's {field}"
                ));
            }
        }
    }
    let arguments = params.and_then(|params| params.get("arguments"));
    for (argument, header_name) in header_params {
        let name = format!("mcp-param-{}", header_name.to_ascii_lowercase());
        let body = arguments.and_then(|arguments| arguments.get(argument));
        let body_text = match body {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(value @ (Value::Number(_) | Value::Bool(_))) => Some(value.to_string()),
            // A structured value cannot be mirrored; the argument's own validation reports it.
            Some(_) => continue,
        };
        match (header(headers, &name)?, body_text) {
            (None, None) => {}
            (Some(value), Some(body)) if value == body => {}
            (None, Some(_)) => {
                return Err(format!(
                    "the {argument} argument needs the Mcp-Param-{header_name} header"
                ));
            }
            (Some(_), _) => {
                return Err(format!(
                    "Mcp-Param-{header_name} header does not match the {argument} argument"
                ));
            }
        }
    }
    Ok(())
}

/// Standard base64 with its padding to bytes; anything malformed is `None`.
pub(crate) fn base64_decode(encoded: &str) -> Option<Vec<u8>> {
    if !encoded.len().is_multiple_of(4) {
        return None;
    }
    let data = encoded.trim_end_matches('=');
    if encoded.len() - data.len() > 2 {
        return None;
    }
    let mut bytes = Vec::with_capacity(encoded.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for character in data.bytes() {
        let value = match character {
            b'A'..=b'Z' => character - b'A',
            b'a'..=b'z' => character - b'a' + 26,
            b'0'..=b'9' => character - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;
    use serde_json::json;

    #[test]
    fn base64_header_values_decode() {
        assert_eq!(base64_decode("aGVsbG8=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(base64_decode("w6k=").as_deref(), Some("é".as_bytes()));
        assert_eq!(base64_decode("SGVsbG8"), None, "missing padding");
        assert_eq!(base64_decode("SGVs!!!bG8="), None);
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    /// Found by the `http_headers` fuzz target: only the first of a repeated mirrored header
    /// was checked, so a proxy routing on the second routed on a value the server never saw.
    #[test]
    fn a_repeated_mirrored_header_is_refused() {
        let params = [("session".to_string(), "Session".to_string())];
        let repeated = headers(&[
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
            ("mcp-param-session", "n.1"),
            ("mcp-param-session", "n.2"),
        ]);
        let verdict = check_modern_headers(
            &repeated,
            &call(json!({"session": "n.1"})),
            "2026-07-28",
            &params,
        );
        assert!(verdict.is_err_and(|problem| problem.contains("more than once")));
        let versions = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-protocol-version", "2025-03-26"),
        ]);
        assert!(header(&versions, HEADER_PROTOCOL_VERSION).is_err());
        let methods = headers(&[("mcp-method", "tools/call"), ("mcp-method", "tools/list")]);
        assert!(check_modern_headers(&methods, &call(json!({})), "2026-07-28", &[]).is_err());
    }

    fn call(arguments: Value) -> Message {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": arguments, "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}});
        Message::parse(&serde_json::to_vec(&body).unwrap()).unwrap()
    }

    #[test]
    fn modern_headers_must_mirror_the_body() {
        let params = [("session".to_string(), "Session".to_string())];
        let good = headers(&[
            ("mcp-method", "tools/call"),
            ("mcp-name", " echo "),
            ("mcp-param-session", "n.1"),
        ]);
        assert!(
            check_modern_headers(
                &good,
                &call(json!({"session": "n.1"})),
                "2026-07-28",
                &params
            )
            .is_ok()
        );
        let encoded = headers(&[
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?ZWNobw==?="),
            ("mcp-param-session", "n.1"),
        ]);
        assert!(
            check_modern_headers(
                &encoded,
                &call(json!({"session": "n.1"})),
                "2026-07-28",
                &params
            )
            .is_ok()
        );
        for (bad, arguments) in [
            (headers(&[("mcp-name", "echo")]), json!({})),
            (
                headers(&[("mcp-method", "tools/list"), ("mcp-name", "echo")]),
                json!({}),
            ),
            (headers(&[("mcp-method", "tools/call")]), json!({})),
            (
                headers(&[("mcp-method", "tools/call"), ("mcp-name", "other")]),
                json!({}),
            ),
            (
                headers(&[("mcp-method", "tools/call"), ("mcp-name", "echo")]),
                json!({"session": "n.1"}),
            ),
            (
                headers(&[
                    ("mcp-method", "tools/call"),
                    ("mcp-name", "echo"),
                    ("mcp-param-session", "n.2"),
                ]),
                json!({"session": "n.1"}),
            ),
            (
                headers(&[
                    ("mcp-method", "tools/call"),
                    ("mcp-name", "echo"),
                    ("mcp-param-session", "n.2"),
                ]),
                json!({}),
            ),
        ] {
            assert!(
                check_modern_headers(&bad, &call(arguments.clone()), "2026-07-28", &params)
                    .is_err(),
                "{bad:?} {arguments}"
            );
        }
        let wrong_version = headers(&[("mcp-method", "tools/call"), ("mcp-name", "echo")]);
        assert!(
            check_modern_headers(&wrong_version, &call(json!({})), "2025-11-25", &params).is_err()
        );
    }
}
