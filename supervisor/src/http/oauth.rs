//! Bulkhead as an OAuth 2.1 resource server (the MCP authorization specification): access
//! tokens from trusted issuers become principals, and clients learn where to get one.
//!
//! The HTTP front door asks four things of [`ResourceServer`]: is this path the protected-
//! resource metadata ([`ResourceServer::serves_metadata`], [`ResourceServer::metadata`]), who
//! does this bearer token name ([`ResourceServer::authenticate`]: a principal and its scopes,
//! or the 401/403 challenge to send), what to answer a request without a usable token
//! ([`ResourceServer::unauthorized`]), and may this caller call this tool
//! ([`ResourceServer::check_tool`]). How a token is checked is in `validate`, where keys
//! come from in `jwks`, the metadata and challenges in `metadata`, the principal's name in
//! `principal`, the validated configuration in `config` (its flags are the configuration
//! layer's).
//!
//! Tokens are JWTs only. Opaque tokens would need token introspection (RFC 7662): a client
//! secret for Bulkhead at every issuer and a round trip per request (or a cache that delays
//! revocation); every identity provider MCP clients use can issue JWT access tokens for a
//! resource, so introspection is not offered. The token itself goes nowhere: it is verified
//! here and dropped, only the principal reaches sessions, workers and logs.

mod cache;
mod config;
mod fetch;
mod jwks;
mod metadata;
pub mod principal;
mod validate;

use std::collections::BTreeSet;
use std::sync::Arc;

use hyper::{Response, StatusCode};

pub use config::{DEFAULT_ALGORITHMS, Issuer, OAuthConfig, RequiredClaim, is_secure_or_loopback};

use crate::http::Body;
use crate::principal::Principal;
use metadata::{ChallengeError, Metadata, challenge_response};
use validate::{Invalid, Refusal};

/// The scopes an OAuth caller's token carries.
pub type Scopes = Arc<BTreeSet<String>>;

/// The query parameter RFC 6750 §2.3 defines for tokens, which MCP forbids.
const QUERY_TOKEN_PARAMETER: &str = "access_token";

/// Verifies access tokens and answers for the protected resource.
pub struct ResourceServer {
    config: OAuthConfig,
    /// One per configured issuer, in the same order.
    keys: Vec<jwks::IssuerKeys>,
    fetcher: fetch::Fetcher,
    metadata: Metadata,
    verified: cache::VerifiedTokens,
}

impl ResourceServer {
    pub fn new(config: OAuthConfig) -> Self {
        let keys = config
            .issuers
            .iter()
            .map(|issuer| jwks::IssuerKeys::new(issuer.url.clone(), config.jwks_refresh_interval))
            .collect();
        Self {
            metadata: Metadata::new(&config),
            keys,
            fetcher: fetch::Fetcher::default(),
            verified: cache::VerifiedTokens::default(),
            config,
        }
    }

    /// Fetch every issuer's keys in the background, so the first caller does not wait and a
    /// misconfigured issuer is reported at start.
    pub fn warm_up(self: &Arc<Self>) {
        for (index, issuer) in self.config.issuers.iter().enumerate() {
            tracing::info!(issuer = %issuer.url, label = %issuer.label, "accepting OAuth access tokens; principals are named {}_<{}>", issuer.label, self.config.principal_claim);
            let server = self.clone();
            tokio::spawn(async move {
                server.keys[index].prefetch(&server.fetcher).await;
            });
        }
    }

    pub fn serves_metadata(&self, path: &str) -> bool {
        self.metadata.serves(path)
    }

    /// The protected-resource metadata document.
    pub fn metadata(&self) -> Response<Body> {
        self.metadata.response()
    }

    /// The principal and scopes of a bearer token, or the response refusing it.
    #[allow(clippy::result_large_err, reason = "the error is the response to send")]
    pub async fn authenticate(&self, token: &str) -> Result<(Principal, Scopes), Response<Body>> {
        match self.verify(token).await {
            Ok(grant) => Ok((grant.principal, Arc::new(grant.scopes))),
            Err(Refusal::Invalid(invalid)) => {
                tracing::debug!(reason = %invalid, "access token refused");
                Err(self.invalid_token(&invalid))
            }
            Err(Refusal::InsufficientScope) => {
                tracing::debug!("access token refused: it lacks a required scope");
                Err(self.insufficient_scope(&BTreeSet::new()))
            }
        }
    }

    /// A token's grant: from the cache if it was verified under the current keys and is still
    /// in its time window, else by the full check (see `validate`).
    async fn verify(&self, token: &str) -> Result<validate::Grant, Refusal> {
        let digest = cache::digest(token);
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(grant) = self
            .verified
            .get(&digest, now, |issuer| self.keys[issuer].generation())
        {
            return Ok(grant);
        }
        let unverified = validate::unverified(&self.config, token)?;
        let index = self
            .config
            .issuers
            .iter()
            .position(|issuer| issuer.url == unverified.issuer)
            .ok_or(Invalid::Issuer)?;
        let issuer = &self.config.issuers[index];
        let algorithm = unverified.header.alg;
        // Read before the key: a refresh during this check makes the entry miss, never the
        // reverse.
        let generation = self.keys[index].generation();
        let key = self.keys[index]
            .key(&self.fetcher, unverified.header.kid.as_deref(), algorithm)
            .await
            .ok_or(Invalid::UnknownKey)?;
        let claims = validate::verified_claims(&self.config, issuer, token, &key, algorithm)?;
        let grant = validate::grant(&self.config, issuer, &claims)?;
        self.verified
            .insert(digest, grant.clone(), index, generation, now);
        Ok(grant)
    }

    /// `401` for a request without a token, or with one where tokens may not be.
    pub fn unauthorized(&self, query_token: bool) -> Response<Body> {
        let error = query_token.then_some(ChallengeError {
            code: "invalid_request",
            description: QUERY_TOKEN_REFUSED,
        });
        challenge_response(
            StatusCode::UNAUTHORIZED,
            self.metadata.challenge(&BTreeSet::new(), error),
            if query_token {
                QUERY_TOKEN_REFUSED
            } else {
                "unauthorized: send Authorization: Bearer <access token>; the WWW-Authenticate header says where to get one"
            },
        )
    }

    fn invalid_token(&self, invalid: &Invalid) -> Response<Body> {
        let description = invalid.to_string();
        challenge_response(
            StatusCode::UNAUTHORIZED,
            self.metadata.challenge(
                &BTreeSet::new(),
                Some(ChallengeError {
                    code: "invalid_token",
                    description: &description,
                }),
            ),
            &format!("unauthorized: {description}"),
        )
    }

    fn insufficient_scope(&self, tool_scopes: &BTreeSet<String>) -> Response<Body> {
        challenge_response(
            StatusCode::FORBIDDEN,
            self.metadata.challenge(
                tool_scopes,
                Some(ChallengeError {
                    code: "insufficient_scope",
                    description: "the access token lacks a scope this request needs",
                }),
            ),
            "forbidden: the access token lacks a scope this request needs (see the WWW-Authenticate header)",
        )
    }

    /// The `403` for calling `tool` without the scopes it needs, if it needs some the caller
    /// lacks.
    pub fn check_tool(&self, scopes: &Scopes, tool: &str) -> Option<Response<Body>> {
        let needed = self.config.tool_scopes.get(tool)?;
        (!needed.is_subset(scopes)).then(|| self.insufficient_scope(needed))
    }

    /// Report every tool named in `--oauth-tool-scope` that the catalog lacks: each is a typo
    /// that leaves the tool it meant unprotected.
    pub fn check_catalog(&self, catalog: &crate::catalog::CatalogData) {
        for tool in self.config.tool_scopes.keys() {
            if !catalog
                .tools
                .iter()
                .any(|known| known["name"] == tool.as_str())
            {
                tracing::error!(
                    "--oauth-tool-scope names {tool:?}, which is not a tool of this server; check the spelling (tools/list names them all)"
                );
            }
        }
    }
}

const QUERY_TOKEN_REFUSED: &str =
    "access tokens are accepted only in the Authorization header, never in the query string";

/// Whether a request's query string carries an access token.
pub fn has_query_token(uri: &hyper::Uri) -> bool {
    uri.query().is_some_and(|query| {
        query.split('&').any(|pair| {
            pair.split('=')
                .next()
                .is_some_and(|name| name.eq_ignore_ascii_case(QUERY_TOKEN_PARAMETER))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_tokens_are_found_wherever_they_are() {
        let has = |uri: &str| has_query_token(&uri.parse().unwrap());
        assert!(has("/mcp?access_token=abc"));
        assert!(has("/mcp?x=1&access_token=abc"));
        assert!(has("/mcp?access_token"));
        assert!(!has("/mcp"));
        assert!(!has("/mcp?token=abc"));
        assert!(!has("/mcp?x=access_token"));
    }
}
