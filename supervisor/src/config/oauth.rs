//! The OAuth flags of `bulkhead serve` and their resolution into an [`OAuthConfig`].
//!
//! OAuth is on when at least one `--oauth-issuer` is given; every other OAuth flag then
//! refines it, and is refused without one. `--public-url` is required with it: it is the
//! resource the protected-resource metadata names and the audience a token must carry, and
//! the server cannot learn it from requests (a `Host` header is the client's to choose).

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::time::Duration;

use clap::Args;
use jsonwebtoken::Algorithm;
use url::Url;

use crate::http::oauth::{
    DEFAULT_ALGORITHMS, Issuer, OAuthConfig, RequiredClaim, is_secure_or_loopback, principal,
};

/// The claim that names a caller when none is configured: the subject, which RFC 9068 makes
/// the resource owner (or the client, for client credentials).
pub const DEFAULT_PRINCIPAL_CLAIM: &str = "sub";
/// Least seconds between two JWKS fetches that an unknown key id triggers: a real rotation is
/// noticed within a minute of its first token, and a flood of made-up key ids costs the issuer
/// one request a minute.
pub const DEFAULT_JWKS_REFRESH_INTERVAL_SECS: f64 = 60.0;

/// The scope that asks an authorization server for refresh tokens: not a resource's
/// requirement, so the MCP specification says a resource should not name it.
const OFFLINE_ACCESS: &str = "offline_access";

#[derive(Debug, Clone, Default, Args)]
pub struct OAuthOptions {
    /// Accept access tokens from this OAuth authorization server (repeatable): its issuer URL
    /// (https, or http on loopback), optionally labelled `LABEL=URL` — the label begins its
    /// users' principal names [default label: o + 8 hex digits of the URL's SHA-256].
    #[arg(long = "oauth-issuer", value_name = "[LABEL=]URL")]
    pub oauth_issuers: Vec<String>,
    /// The externally visible URL of /mcp (e.g. https://mcp.example.com/mcp): the resource in
    /// the protected-resource metadata, and an audience every token must name.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Another accepted `aud` value (repeatable), for identity providers that put a client id
    /// or a custom value there; the public URL stays accepted.
    #[arg(long = "oauth-audience", value_name = "VALUE")]
    pub oauth_audiences: Vec<String>,
    /// The token claim that names the caller within its issuer (a string).
    #[arg(long, value_name = "CLAIM", default_value = DEFAULT_PRINCIPAL_CLAIM)]
    pub oauth_principal_claim: String,
    /// A scope every token must carry (repeatable).
    #[arg(long = "oauth-scope", value_name = "SCOPE")]
    pub oauth_scopes: Vec<String>,
    /// A scope a token must carry to call one tool (repeatable), e.g. order_place=trade.
    #[arg(long = "oauth-tool-scope", value_name = "TOOL=SCOPE")]
    pub oauth_tool_scopes: Vec<String>,
    /// A claim every token must carry (repeatable): NAME, or NAME=VALUE for a string claim
    /// equal to VALUE or an array claim containing it.
    #[arg(long = "oauth-required-claim", value_name = "NAME[=VALUE]")]
    pub oauth_required_claims: Vec<String>,
    /// A JWS algorithm to accept (repeatable) [default: RS256 RS384 RS512 PS256 PS384 PS512
    /// ES256 ES384 EdDSA]; HMAC and none are refused.
    #[arg(long = "oauth-algorithm", value_name = "ALG")]
    pub oauth_algorithms: Vec<String>,
    /// Least seconds between two JWKS fetches triggered by a token with an unknown key id.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_JWKS_REFRESH_INTERVAL_SECS)]
    pub oauth_jwks_refresh_interval: f64,
}

impl OAuthOptions {
    /// The OAuth configuration, `None` when no issuer is configured; problems are added to
    /// `problems`, all of them.
    pub fn resolve(&self, problems: &mut Vec<String>) -> Option<OAuthConfig> {
        if self.oauth_issuers.is_empty() {
            self.refuse_without_issuer(problems);
            return None;
        }
        let before = problems.len();
        let issuers = self.issuers(problems);
        let public_url = match &self.public_url {
            Some(url) => check_url("--public-url", url, problems),
            None => {
                problems.push("--oauth-issuer needs --public-url, the externally visible URL of /mcp (it is the audience tokens must name)".into());
                String::new()
            }
        };
        let mut audiences = BTreeSet::from([public_url.clone()]);
        for audience in &self.oauth_audiences {
            if audience.trim().is_empty() || audience.trim() != audience {
                problems.push(format!(
                    "--oauth-audience {audience:?} must be non-empty, without surrounding spaces"
                ));
            }
            audiences.insert(audience.clone());
        }
        if self.oauth_principal_claim.trim().is_empty() {
            problems.push("--oauth-principal-claim must name a claim".into());
        }
        let scopes = self
            .oauth_scopes
            .iter()
            .filter(|scope| check_scope("--oauth-scope", scope, problems))
            .cloned()
            .collect();
        let tool_scopes = self.tool_scopes(problems);
        let required_claims = self.required_claims(problems);
        let algorithms = self.algorithms(problems);
        let jwks_refresh_interval =
            match Duration::try_from_secs_f64(self.oauth_jwks_refresh_interval) {
                Ok(interval) if !interval.is_zero() => interval,
                _ => {
                    problems.push(format!(
                    "--oauth-jwks-refresh-interval must be a positive number of seconds, got {}",
                    self.oauth_jwks_refresh_interval
                ));
                    Duration::from_secs(1)
                }
            };
        (problems.len() == before).then(|| OAuthConfig {
            issuers,
            public_url,
            audiences,
            principal_claim: self.oauth_principal_claim.clone(),
            scopes,
            tool_scopes,
            required_claims,
            algorithms,
            jwks_refresh_interval,
        })
    }

    /// OAuth refinements without an issuer mean an operator believes OAuth is on.
    fn refuse_without_issuer(&self, problems: &mut Vec<String>) {
        let given = [
            ("--public-url", self.public_url.is_some()),
            ("--oauth-audience", !self.oauth_audiences.is_empty()),
            ("--oauth-scope", !self.oauth_scopes.is_empty()),
            ("--oauth-tool-scope", !self.oauth_tool_scopes.is_empty()),
            (
                "--oauth-required-claim",
                !self.oauth_required_claims.is_empty(),
            ),
            ("--oauth-algorithm", !self.oauth_algorithms.is_empty()),
        ];
        for (flag, _) in given.iter().filter(|(_, given)| *given) {
            problems.push(format!("{flag} needs --oauth-issuer"));
        }
    }

    fn issuers(&self, problems: &mut Vec<String>) -> Vec<Issuer> {
        let mut issuers: Vec<Issuer> = Vec::new();
        for value in &self.oauth_issuers {
            let (label, url) = match value.split_once('=') {
                Some((label, url)) if !label.contains(':') => (Some(label), url),
                _ => (None, value.as_str()),
            };
            let url = check_url("--oauth-issuer", url, problems);
            let label = label.map_or_else(|| principal::default_label(&url), str::to_string);
            if !principal::is_valid_label(&label) {
                problems.push(format!(
                    "--oauth-issuer label {label:?} must be 1-{} of a-z 0-9 -",
                    principal::MAX_LABEL_LEN
                ));
            }
            if issuers.iter().any(|known| known.url == url) {
                problems.push(format!("--oauth-issuer {url} is given twice"));
            }
            if issuers.iter().any(|known| known.label == label) {
                problems.push(format!(
                    "--oauth-issuer label {label:?} is used twice; give each issuer its own LABEL=URL"
                ));
            }
            issuers.push(Issuer { url, label });
        }
        issuers
    }

    fn tool_scopes(&self, problems: &mut Vec<String>) -> BTreeMap<String, BTreeSet<String>> {
        let mut tool_scopes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for value in &self.oauth_tool_scopes {
            match value.split_once('=') {
                Some((tool, scope))
                    if !tool.is_empty() && check_scope("--oauth-tool-scope", scope, problems) =>
                {
                    tool_scopes
                        .entry(tool.to_string())
                        .or_default()
                        .insert(scope.to_string());
                }
                Some(_) => {}
                None => problems.push(format!("--oauth-tool-scope {value:?} must be TOOL=SCOPE")),
            }
        }
        tool_scopes
    }

    fn required_claims(&self, problems: &mut Vec<String>) -> Vec<RequiredClaim> {
        self.oauth_required_claims
            .iter()
            .filter_map(|value| {
                let (name, expected) = match value.split_once('=') {
                    Some((name, expected)) => (name, Some(expected.to_string())),
                    None => (value.as_str(), None),
                };
                if name.is_empty() {
                    problems.push(format!(
                        "--oauth-required-claim {value:?} must be NAME or NAME=VALUE"
                    ));
                    return None;
                }
                Some(RequiredClaim {
                    name: name.to_string(),
                    value: expected,
                })
            })
            .collect()
    }

    fn algorithms(&self, problems: &mut Vec<String>) -> Vec<Algorithm> {
        if self.oauth_algorithms.is_empty() {
            return DEFAULT_ALGORITHMS.to_vec();
        }
        self.oauth_algorithms
            .iter()
            .filter_map(|name| match Algorithm::from_str(name) {
                Ok(algorithm) if DEFAULT_ALGORITHMS.contains(&algorithm) => Some(algorithm),
                _ => {
                    problems.push(format!(
                        "--oauth-algorithm {name:?} is not accepted: choose among RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA (HMAC and none never are)"
                    ));
                    None
                }
            })
            .collect()
    }
}

/// Check an issuer or public URL: absolute, https (http only for a loopback host), no query or
/// fragment. Returns it unchanged: issuers are compared as exact strings.
fn check_url(flag: &str, url: &str, problems: &mut Vec<String>) -> String {
    match Url::parse(url) {
        Ok(parsed) if parsed.query().is_some() || parsed.fragment().is_some() => {
            problems.push(format!("{flag} {url} must have no query or fragment"));
        }
        Ok(parsed) if !is_secure_or_loopback(&parsed) => problems.push(format!(
            "{flag} {url} must use https (plain http only for a loopback address)"
        )),
        Ok(_) => {}
        Err(error) => problems.push(format!("{flag} {url:?} is not a URL: {error}")),
    }
    url.to_string()
}

/// An RFC 6749 scope token (printable ASCII but space, `"` and `\`), and not `offline_access`.
fn check_scope(flag: &str, scope: &str, problems: &mut Vec<String>) -> bool {
    let valid = !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
    if !valid {
        problems.push(format!(
            "{flag} {scope:?} is not a scope (printable ASCII without spaces, quotes or backslashes)"
        ));
    } else if scope == OFFLINE_ACCESS {
        problems.push(format!(
            "{flag} {OFFLINE_ACCESS}: a resource does not require refresh tokens; leave it to clients"
        ));
        return false;
    }
    valid
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(issuers: &[&str], public_url: Option<&str>) -> OAuthOptions {
        OAuthOptions {
            oauth_issuers: issuers.iter().map(|s| s.to_string()).collect(),
            public_url: public_url.map(str::to_string),
            oauth_principal_claim: DEFAULT_PRINCIPAL_CLAIM.into(),
            oauth_jwks_refresh_interval: DEFAULT_JWKS_REFRESH_INTERVAL_SECS,
            ..Default::default()
        }
    }

    #[test]
    fn a_minimal_configuration_accepts_the_public_url_as_audience() {
        let mut problems = Vec::new();
        let config = options(
            &["corp=https://login.example/tenant"],
            Some("https://mcp.example/mcp"),
        )
        .resolve(&mut problems)
        .unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(config.issuers[0].label, "corp");
        assert_eq!(config.issuers[0].url, "https://login.example/tenant");
        assert_eq!(
            config.audiences.iter().collect::<Vec<_>>(),
            ["https://mcp.example/mcp"]
        );
        assert_eq!(config.algorithms, DEFAULT_ALGORITHMS);
        assert_eq!(config.public_host().as_deref(), Some("mcp.example"));
    }

    #[test]
    fn every_problem_is_reported() {
        let mut options = options(
            &[
                "http://login.example",
                "Bad_Label=https://a.example",
                "x=https://b.example",
                "x=https://c.example",
            ],
            None,
        );
        options.oauth_scopes = vec!["offline_access".into(), "two words".into()];
        options.oauth_tool_scopes = vec!["order_place".into()];
        options.oauth_algorithms = vec!["HS256".into(), "none".into()];
        options.oauth_jwks_refresh_interval = 0.0;
        let mut problems = Vec::new();
        assert!(options.resolve(&mut problems).is_none());
        let report = problems.join("\n");
        for expected in [
            "http://login.example must use https",
            "label \"Bad_Label\"",
            "label \"x\" is used twice",
            "needs --public-url",
            "offline_access",
            "\"two words\" is not a scope",
            "\"order_place\" must be TOOL=SCOPE",
            "\"HS256\" is not accepted",
            "\"none\" is not accepted",
            "--oauth-jwks-refresh-interval",
        ] {
            assert!(
                report.contains(expected),
                "{expected:?} missing from:\n{report}"
            );
        }
    }

    #[test]
    fn plain_http_only_on_loopback() {
        for (url, ok) in [
            ("http://127.0.0.1:9000", true),
            ("http://[::1]:9000/realm", true),
            ("http://localhost:9000", true),
            ("http://10.0.0.1", false),
            ("https://login.example", true),
            ("ftp://login.example", false),
            ("https://login.example?x=1", false),
        ] {
            let mut problems = Vec::new();
            check_url("--oauth-issuer", url, &mut problems);
            assert_eq!(problems.is_empty(), ok, "{url}: {problems:?}");
        }
    }

    #[test]
    fn refinements_without_an_issuer_are_refused() {
        let mut options = options(&[], Some("https://mcp.example/mcp"));
        options.oauth_scopes = vec!["mcp".into()];
        let mut problems = Vec::new();
        assert!(options.resolve(&mut problems).is_none());
        assert_eq!(
            problems,
            [
                "--public-url needs --oauth-issuer",
                "--oauth-scope needs --oauth-issuer"
            ]
        );
    }

    #[test]
    fn static_principals_in_an_issuers_form_are_refused() {
        let mut problems = Vec::new();
        let config = options(
            &["corp=https://login.example"],
            Some("https://mcp.example/mcp"),
        )
        .resolve(&mut problems)
        .unwrap();
        config.check_static_principals(
            &["alice".into(), "corp_alice".into(), "corporate".into()],
            &mut problems,
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("\"corp_alice\""));
    }
}
