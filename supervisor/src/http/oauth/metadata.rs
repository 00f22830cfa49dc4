//! What the resource tells clients: its Protected Resource Metadata (RFC 9728) and the
//! `WWW-Authenticate` challenges (RFC 6750 §3) that point at it.
//!
//! The document is built once from the configuration. It is served at the root well-known
//! path, at the path-suffixed one for `/mcp`, and at the one for the public URL's own path
//! (a proxy that mounts Bulkhead elsewhere forwards that). The challenge's `resource_metadata`
//! is the well-known URL of the public URL, as RFC 9728 §3.1 builds it.

use std::collections::BTreeSet;

use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};
use serde_json::json;
use url::Url;

use super::config::OAuthConfig;
use crate::http::Body;

/// RFC 9728's well-known path for protected-resource metadata.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";
/// The path Bulkhead serves MCP on.
const MCP_PATH: &str = "/mcp";
/// How long clients and proxies may keep the document: it changes only with a restart.
const METADATA_MAX_AGE_SECS: u32 = 300;

/// The metadata document and the pieces of every challenge.
#[derive(Debug)]
pub struct Metadata {
    document: Bytes,
    paths: Vec<String>,
    resource_metadata: String,
    /// The scopes every request needs, for the 401 challenge's `scope`.
    scopes: BTreeSet<String>,
}

/// An RFC 6750 error code with its description.
pub struct ChallengeError<'a> {
    pub code: &'static str,
    pub description: &'a str,
}

impl Metadata {
    pub fn new(config: &OAuthConfig) -> Self {
        let public_path = Url::parse(&config.public_url)
            .map(|url| url.path().trim_end_matches('/').to_string())
            .unwrap_or_default();
        let resource_metadata = Url::parse(&config.public_url)
            .map(|url| {
                format!(
                    "{}{METADATA_PATH}{public_path}",
                    url.origin().ascii_serialization()
                )
            })
            .unwrap_or_default();
        let mut paths = vec![
            METADATA_PATH.to_string(),
            format!("{METADATA_PATH}{MCP_PATH}"),
        ];
        paths.push(format!("{METADATA_PATH}{public_path}"));
        paths.dedup();
        let scopes_supported: BTreeSet<&String> = config
            .scopes
            .iter()
            .chain(config.tool_scopes.values().flatten())
            .collect();
        let document = json!({
            "resource": config.public_url,
            "authorization_servers": config.issuers.iter().map(|issuer| &issuer.url).collect::<Vec<_>>(),
            "scopes_supported": scopes_supported,
            "bearer_methods_supported": ["header"],
            "resource_name": "Bulkhead",
        });
        Self {
            document: Bytes::from(serde_json::to_vec(&document).unwrap_or_default()),
            paths,
            resource_metadata,
            scopes: config.scopes.clone(),
        }
    }

    /// Whether `path` is one the metadata is served at.
    pub fn serves(&self, path: &str) -> bool {
        self.paths.iter().any(|served| served == path)
    }

    /// `200` with the document.
    pub fn response(&self) -> Response<Body> {
        let mut response = Response::new(Body::full(self.document.clone()));
        let headers = response.headers_mut();
        headers.insert(
            hyper::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            hyper::header::CACHE_CONTROL,
            HeaderValue::from_str(&format!("max-age={METADATA_MAX_AGE_SECS}"))
                .unwrap_or(HeaderValue::from_static("no-cache")),
        );
        response
    }

    /// The `WWW-Authenticate` value: `resource_metadata`, the scopes the request needs (the
    /// required ones, plus `extra` for a tool), and the error if there is one.
    pub fn challenge(
        &self,
        extra: &BTreeSet<String>,
        error: Option<ChallengeError>,
    ) -> HeaderValue {
        let mut challenge = format!(
            "Bearer realm=\"bulkhead\", resource_metadata=\"{}\"",
            self.resource_metadata
        );
        let scopes: Vec<&str> = self
            .scopes
            .iter()
            .chain(extra)
            .map(String::as_str)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if !scopes.is_empty() {
            challenge.push_str(&format!(", scope=\"{}\"", scopes.join(" ")));
        }
        if let Some(error) = error {
            challenge.push_str(&format!(
                ", error=\"{}\", error_description=\"{}\"",
                error.code, error.description
            ));
        }
        HeaderValue::from_str(&challenge)
            .unwrap_or(HeaderValue::from_static("Bearer realm=\"bulkhead\""))
    }
}

/// A challenge response: `status`, the header, and a JSON-RPC error body that says the same.
pub fn challenge_response(
    status: StatusCode,
    challenge: HeaderValue,
    message: &str,
) -> Response<Body> {
    let mut response =
        crate::http::rpc_error_response(status, bulkhead_protocol::codes::INVALID_REQUEST, message);
    response
        .headers_mut()
        .insert(hyper::header::WWW_AUTHENTICATE, challenge);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(public_url: &str) -> Metadata {
        let mut config = OAuthConfig::example(
            &super::super::principal::default_label("https://login.example"),
            "https://login.example",
            public_url,
        );
        config.scopes.insert("mcp".into());
        config
            .tool_scopes
            .entry("order_place".into())
            .or_default()
            .insert("trade".into());
        Metadata::new(&config)
    }

    #[test]
    fn the_document_names_the_resource_its_servers_and_scopes() {
        let metadata = metadata("https://mcp.example/mcp");
        let document: serde_json::Value = serde_json::from_slice(&metadata.document).unwrap();
        assert_eq!(document["resource"], "https://mcp.example/mcp");
        assert_eq!(
            document["authorization_servers"],
            json!(["https://login.example"])
        );
        assert_eq!(document["scopes_supported"], json!(["mcp", "trade"]));
        assert_eq!(document["bearer_methods_supported"], json!(["header"]));
        assert!(metadata.serves("/.well-known/oauth-protected-resource"));
        assert!(metadata.serves("/.well-known/oauth-protected-resource/mcp"));
        assert!(!metadata.serves("/.well-known/oauth-protected-resource/other"));
    }

    #[test]
    fn a_proxied_path_is_served_and_named_in_the_challenge() {
        let metadata = metadata("https://gw.example/tenant/mcp");
        assert!(metadata.serves("/.well-known/oauth-protected-resource/tenant/mcp"));
        let challenge = metadata.challenge(
            &BTreeSet::from(["trade".to_string()]),
            Some(ChallengeError {
                code: "insufficient_scope",
                description: "more scope needed",
            }),
        );
        assert_eq!(
            challenge.to_str().unwrap(),
            "Bearer realm=\"bulkhead\", resource_metadata=\"https://gw.example/.well-known/oauth-protected-resource/tenant/mcp\", scope=\"mcp trade\", error=\"insufficient_scope\", error_description=\"more scope needed\""
        );
    }
}
