//! The validated OAuth configuration the resource server runs on: trusted issuers, the public
//! URL and accepted audiences, the principal claim, required scopes and claims, algorithms.
//!
//! Its flags and their resolution are the configuration layer's (`config::oauth`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use url::Url;

use super::principal;

/// Algorithms accepted when none are configured: every asymmetric JWS algorithm the crypto
/// backend verifies. HMAC (`HS*`) is never accepted — its key would be the issuer's public
/// key or a secret shared with every other resource — and `none` is not an algorithm here.
pub const DEFAULT_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// A trusted issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    /// The issuer identifier, exactly as tokens and metadata must carry it.
    pub url: String,
    /// The first part of its callers' principal names.
    pub label: String,
}

/// A claim every token must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredClaim {
    pub name: String,
    pub value: Option<String>,
}

/// The validated OAuth configuration.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    pub issuers: Vec<Issuer>,
    pub public_url: String,
    /// Every accepted `aud` value: the public URL and each `--oauth-audience`.
    pub audiences: BTreeSet<String>,
    pub principal_claim: String,
    pub scopes: BTreeSet<String>,
    /// Tool name → the scopes needed to call it (besides `scopes`).
    pub tool_scopes: BTreeMap<String, BTreeSet<String>>,
    pub required_claims: Vec<RequiredClaim>,
    pub algorithms: Vec<Algorithm>,
    pub jwks_refresh_interval: Duration,
}

/// https, or http to this machine only (loopback addresses and `localhost`).
pub fn is_secure_or_loopback(url: &Url) -> bool {
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" => match url.host() {
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(address)) => address.is_loopback(),
            Some(url::Host::Ipv6(address)) => address.is_loopback(),
            None => false,
        },
        _ => false,
    }
}

impl OAuthConfig {
    /// The host of the public URL, which the `Host` allow-list must admit.
    pub fn public_host(&self) -> Option<String> {
        Url::parse(&self.public_url)
            .ok()?
            .host_str()
            .map(str::to_ascii_lowercase)
    }

    /// Problems with static-token principals that could be taken for OAuth principals.
    pub fn check_static_principals(&self, principals: &[String], problems: &mut Vec<String>) {
        for name in principals {
            if let Some(issuer) = self
                .issuers
                .iter()
                .find(|issuer| principal::collides_with_label(name, &issuer.label))
            {
                problems.push(format!(
                    "tokens file principal {name:?} begins with \"{}_\", the form of issuer {}'s principals; rename it",
                    issuer.label, issuer.url
                ));
            }
        }
    }

    /// What `check-config` shows (nothing here is secret).
    pub fn summary(&self) -> Value {
        json!({
            "issuers": self.issuers.iter().map(|issuer| json!({"url": issuer.url, "label": issuer.label})).collect::<Vec<_>>(),
            "public_url": self.public_url,
            "audiences": self.audiences,
            "principal_claim": self.principal_claim,
            "scopes": self.scopes,
            "tool_scopes": self.tool_scopes,
            "required_claims": self.required_claims.iter().map(|claim| match &claim.value {
                Some(value) => format!("{}={value}", claim.name),
                None => claim.name.clone(),
            }).collect::<Vec<_>>(),
            "algorithms": self.algorithms.iter().map(|algorithm| format!("{algorithm:?}")).collect::<Vec<_>>(),
            "jwks_refresh_interval_secs": self.jwks_refresh_interval.as_secs_f64(),
        })
    }
}

#[cfg(test)]
impl OAuthConfig {
    /// One issuer (`label`, `url`), `public_url` as the only audience, `sub` as the principal
    /// claim, the default algorithms: what the flags `--oauth-issuer label=url --public-url …`
    /// resolve to.
    pub fn example(label: &str, url: &str, public_url: &str) -> Self {
        Self {
            issuers: vec![Issuer {
                url: url.into(),
                label: label.into(),
            }],
            public_url: public_url.into(),
            audiences: BTreeSet::from([public_url.to_string()]),
            principal_claim: "sub".into(),
            scopes: BTreeSet::new(),
            tool_scopes: BTreeMap::new(),
            required_claims: Vec::new(),
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            jwks_refresh_interval: Duration::from_secs(60),
        }
    }
}
