//! Every era and version check of the front door, pure, one definition for stdio and HTTP.
//!
//! A request's era is decided on its own: a 2026-07-28 request names its version (and client
//! capabilities) in `_meta`; a request of the older lifecycle relies on the version its
//! connection's `initialize` negotiated; a request with neither gets an error saying which to
//! send. Over HTTP the `MCP-Protocol-Version` header decides first ([`of_header`]); a 2026-07-28
//! request's `_meta` must then be complete ([`check_inline_meta`]).

use bulkhead_protocol::jsonrpc::json_type;
use bulkhead_protocol::names::{META_CLIENT_CAPABILITIES, META_PROTOCOL_VERSION};
use bulkhead_protocol::{Era, NEWEST_INITIALIZE_VERSION, is_supported_protocol_version};
use serde_json::Value;

use super::reply::RpcError;

/// The version an HTTP request without `MCP-Protocol-Version` is taken to speak, as the
/// specification allows.
pub const VERSION_WITHOUT_HEADER: &str = "2025-03-26";

/// Methods 2026-07-28 removed: a request of that era naming one gets method-not-found.
const REMOVED_IN_INLINE: [&str; 5] = [
    "initialize",
    "ping",
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
];

/// The protocol version a request names in its `_meta`, if any.
pub fn request_version(params: Option<&Value>) -> Option<&str> {
    params?.get("_meta")?.get(META_PROTOCOL_VERSION)?.as_str()
}

/// Whether `method` does not exist in the era the request names.
pub fn removed(method: &str, params: Option<&Value>) -> bool {
    REMOVED_IN_INLINE.contains(&method)
        && request_version(params).is_some_and(|version| Era::of_version(version).is_inline())
}

/// A version we serve, or the error that lists those we do.
pub fn check_supported(version: &str) -> Result<(), RpcError> {
    if is_supported_protocol_version(version) {
        Ok(())
    } else {
        Err(RpcError::unsupported_version(version))
    }
}

/// The era of one request: what its `_meta` names, else the older lifecycle when the
/// connection negotiated a version with `initialize`.
pub fn of_request(params: Option<&Value>, negotiated: bool) -> Result<Era, RpcError> {
    let meta = params.and_then(|params| params.get("_meta"));
    match meta.and_then(|meta| meta.get(META_PROTOCOL_VERSION)) {
        Some(Value::String(version)) => {
            check_supported(version)?;
            let era = Era::of_version(version);
            if era.is_inline()
                && meta
                    .and_then(|meta| meta.get(META_CLIENT_CAPABILITIES))
                    .is_none()
            {
                return Err(RpcError::invalid_params(format!(
                    "request _meta is missing {META_CLIENT_CAPABILITIES}, which protocol {version} requires"
                )));
            }
            Ok(era)
        }
        Some(other) => Err(RpcError::invalid_params(format!(
            "{META_PROTOCOL_VERSION} must be a string, got {}",
            json_type(other)
        ))),
        None if negotiated => Ok(Era::Initialize),
        None => Err(RpcError::invalid_params(format!(
            "no protocol version for this request: send `initialize` first (protocol 2025-11-25 and older), or put {META_PROTOCOL_VERSION} and {META_CLIENT_CAPABILITIES} in params._meta (protocol 2026-07-28)"
        ))),
    }
}

/// The version to answer `initialize` with: the client's when we serve it over `initialize`;
/// otherwise our newest handshake version, and the client decides whether it can live with
/// that.
pub fn negotiate(params: Option<&Value>) -> Result<&'static str, RpcError> {
    let requested = params
        .and_then(|params| params.get("protocolVersion"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            RpcError::invalid_params("initialize needs params.protocolVersion (a string)")
        })?;
    Ok(bulkhead_protocol::SUPPORTED_PROTOCOL_VERSIONS
        .into_iter()
        .find(|version| *version == requested && !Era::of_version(version).is_inline())
        .unwrap_or(NEWEST_INITIALIZE_VERSION))
}

/// `server/discover` is a 2026-07-28 request: it needs that era's metadata, and a version in
/// it that we serve.
pub fn check_discover(params: Option<&Value>) -> Result<(), RpcError> {
    if let Some(version) = request_version(params) {
        check_supported(version)?;
    }
    let meta = params.and_then(|params| params.get("_meta"));
    for key in [META_PROTOCOL_VERSION, META_CLIENT_CAPABILITIES] {
        if meta.and_then(|meta| meta.get(key)).is_none() {
            return Err(RpcError::invalid_params(format!(
                "server/discover needs {key} in params._meta"
            )));
        }
    }
    Ok(())
}

/// A 2026-07-28 HTTP request must carry its protocol version and client capabilities in
/// `_meta` (checked before anything else, answered `400`).
pub fn check_inline_meta(params: Option<&Value>) -> Result<(), RpcError> {
    let meta = params.and_then(|params| params.get("_meta"));
    for key in [META_PROTOCOL_VERSION, META_CLIENT_CAPABILITIES] {
        if meta.and_then(|meta| meta.get(key)).is_none() {
            return Err(RpcError::invalid_params(format!(
                "request _meta is missing {key}, which protocol 2026-07-28 requires"
            )));
        }
    }
    Ok(())
}

/// An HTTP request's version and era from its `MCP-Protocol-Version` header (absent:
/// [`VERSION_WITHOUT_HEADER`]).
pub fn of_header(header: Option<String>) -> Result<(String, Era), RpcError> {
    let version = header.unwrap_or_else(|| VERSION_WITHOUT_HEADER.to_string());
    check_supported(&version)?;
    let era = Era::of_version(&version);
    Ok((version, era))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_protocol::codes;
    use serde_json::json;

    fn meta(meta: Value) -> Value {
        json!({"_meta": meta})
    }

    #[test]
    fn a_request_names_its_era_or_relies_on_initialize() {
        let modern =
            meta(json!({META_PROTOCOL_VERSION: "2026-07-28", META_CLIENT_CAPABILITIES: {}}));
        assert_eq!(of_request(Some(&modern), false), Ok(Era::Inline));
        let legacy = meta(json!({META_PROTOCOL_VERSION: "2025-06-18"}));
        assert_eq!(of_request(Some(&legacy), false), Ok(Era::Initialize));
        assert_eq!(of_request(None, true), Ok(Era::Initialize));
        assert_eq!(
            of_request(None, false).unwrap_err().code,
            codes::INVALID_PARAMS
        );
        let incomplete = meta(json!({META_PROTOCOL_VERSION: "2026-07-28"}));
        assert_eq!(
            of_request(Some(&incomplete), true).unwrap_err().code,
            codes::INVALID_PARAMS
        );
        let unknown = meta(json!({META_PROTOCOL_VERSION: "1999-01-01"}));
        assert_eq!(
            of_request(Some(&unknown), true).unwrap_err().code,
            codes::UNSUPPORTED_PROTOCOL_VERSION
        );
        let number = meta(json!({META_PROTOCOL_VERSION: 5}));
        assert!(
            of_request(Some(&number), true)
                .unwrap_err()
                .message
                .contains("a number")
        );
    }

    #[test]
    fn initialize_answers_an_initialize_version_only() {
        let ask = |version: &str| negotiate(Some(&json!({"protocolVersion": version})));
        assert_eq!(ask("2025-06-18"), Ok("2025-06-18"));
        assert_eq!(ask("2026-07-28"), Ok(NEWEST_INITIALIZE_VERSION));
        assert_eq!(ask("1999-01-01"), Ok(NEWEST_INITIALIZE_VERSION));
        assert!(negotiate(None).is_err());
    }

    #[test]
    fn removed_methods_are_removed_only_in_the_era_that_removed_them() {
        let modern = meta(json!({META_PROTOCOL_VERSION: "2026-07-28"}));
        assert!(removed("ping", Some(&modern)));
        assert!(!removed("ping", None));
        assert!(!removed("tools/list", Some(&modern)));
    }

    #[test]
    fn the_header_decides_over_http() {
        assert_eq!(
            of_header(None),
            Ok((VERSION_WITHOUT_HEADER.to_string(), Era::Initialize))
        );
        assert_eq!(
            of_header(Some("2026-07-28".into())),
            Ok(("2026-07-28".to_string(), Era::Inline))
        );
        assert!(of_header(Some("2027-01-01".into())).is_err());
        assert!(
            check_inline_meta(Some(&meta(json!({META_PROTOCOL_VERSION: "2026-07-28"})))).is_err()
        );
        assert!(
            check_discover(Some(&meta(
                json!({META_PROTOCOL_VERSION: "2026-07-28", META_CLIENT_CAPABILITIES: {}})
            )))
            .is_ok()
        );
    }
}
