//! The checks an access token passes, in order, before it names a principal.
//!
//! 1. Shape: at most [`MAX_TOKEN_BYTES`], a compact JWS whose header parses (`alg: none` does
//!    not: it is no algorithm here) and has no `crit` (no extension is understood).
//! 2. Algorithm: one of the configured asymmetric algorithms.
//! 3. Issuer: the unverified `iss` picks one configured issuer by exact string; any other
//!    issuer is refused before anything is fetched, so a token cannot make the server connect
//!    anywhere.
//! 4. Key: that issuer's key for the `kid` and `alg` (see `jwks`): same family, same curve,
//!    the JWK's own `alg` if it names one.
//! 5. Signature, then `iss` (exactly, and as a string), `aud` (one accepted audience), `exp`
//!    (required) and `nbf` with [`LEEWAY_SECS`] of clock skew — by `jsonwebtoken`.
//! 6. Claims: the principal claim (a non-empty string or a number), the required claims, and
//!    the required scopes (from `scope`, space-separated, or `scp`, a string or an array).

use std::collections::BTreeSet;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde_json::Value;

use super::config::{Issuer, OAuthConfig};
use super::principal::principal_name;
use crate::principal::Principal;

/// Longest token considered: real access tokens are 1-4 KiB; larger ones are refused before
/// any parsing.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Clock skew tolerated on `exp` and `nbf`: hosts kept by NTP differ by far less, a suspended
/// VM's clock by more until it resynchronises.
pub const LEEWAY_SECS: u64 = 30;

/// Why a token was refused: logged at debug, and the class becomes the challenge's
/// `error_description`. No variant carries any part of the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("the access token is not a well-formed JWT")]
    Malformed,
    #[error("the access token's signature algorithm is not accepted")]
    Algorithm,
    #[error("the access token's issuer is not trusted")]
    Issuer,
    #[error("no signing key of the issuer matches the access token")]
    UnknownKey,
    #[error("the access token's signature is invalid")]
    Signature,
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid yet")]
    NotYetValid,
    #[error("the access token was not issued for this resource")]
    Audience,
    #[error("the access token lacks the claim {0}")]
    MissingClaim(String),
    #[error("the access token's claim {0} does not have the required value")]
    ClaimValue(String),
}

/// What a valid token grants: its principal and its scopes, until its `exp` (from its `nbf`).
#[derive(Debug, Clone)]
pub struct Grant {
    pub principal: Principal,
    pub scopes: BTreeSet<String>,
    pub expires_at: u64,
    pub not_before: Option<u64>,
}

/// A token refused: invalid (401), or valid without the scopes required at all (403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Invalid(Invalid),
    InsufficientScope,
}

impl From<Invalid> for Refusal {
    fn from(invalid: Invalid) -> Self {
        Refusal::Invalid(invalid)
    }
}

/// A token's header and claims, before any verification.
pub struct Unverified {
    pub header: Header,
    pub issuer: String,
}

/// Steps 1 and 2, and the unverified `iss` for step 3.
pub fn unverified(config: &OAuthConfig, token: &str) -> Result<Unverified, Invalid> {
    if token.len() > MAX_TOKEN_BYTES || token.split('.').count() != 3 {
        return Err(Invalid::Malformed);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| Invalid::Malformed)?;
    // No JWS extension is understood here, so none may be critical (RFC 7515 §4.1.11).
    if header.crit.is_some() {
        return Err(Invalid::Malformed);
    }
    if !config.algorithms.contains(&header.alg) {
        return Err(Invalid::Algorithm);
    }
    let claims: Value =
        jsonwebtoken::dangerous::insecure_decode_claims(token).map_err(|_| Invalid::Malformed)?;
    let issuer = claims["iss"].as_str().ok_or(Invalid::Issuer)?.to_string();
    Ok(Unverified { header, issuer })
}

/// Step 5: the signature and the registered claims; returns the verified claims.
pub fn verified_claims(
    config: &OAuthConfig,
    issuer: &Issuer,
    token: &str,
    key: &DecodingKey,
    algorithm: Algorithm,
) -> Result<Value, Invalid> {
    if key.family() != algorithm.family() {
        return Err(Invalid::UnknownKey);
    }
    let mut validation = Validation::new(algorithm);
    validation.algorithms = vec![algorithm];
    validation.set_issuer(&[&issuer.url]);
    validation.set_audience(&config.audiences.iter().collect::<Vec<_>>());
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.validate_nbf = true;
    validation.leeway = LEEWAY_SECS;
    let data =
        jsonwebtoken::decode::<Value>(token, key, &validation).map_err(|error| {
            match error.kind() {
                ErrorKind::InvalidSignature => Invalid::Signature,
                ErrorKind::ExpiredSignature => Invalid::Expired,
                ErrorKind::ImmatureSignature => Invalid::NotYetValid,
                ErrorKind::InvalidAudience => Invalid::Audience,
                ErrorKind::InvalidIssuer => Invalid::Issuer,
                ErrorKind::MissingRequiredClaim(claim) => Invalid::MissingClaim(claim.clone()),
                ErrorKind::InvalidAlgorithm => Invalid::Algorithm,
                _ => Invalid::Malformed,
            }
        })?;
    // jsonwebtoken accepts an array `iss` containing the issuer; a token has one issuer.
    if data.claims["iss"].as_str() != Some(issuer.url.as_str()) {
        return Err(Invalid::Issuer);
    }
    Ok(data.claims)
}

/// Step 6: the principal, the required claims and the required scopes.
pub fn grant(config: &OAuthConfig, issuer: &Issuer, claims: &Value) -> Result<Grant, Refusal> {
    let claim = &config.principal_claim;
    let subject = match &claims[claim] {
        Value::String(subject) if !subject.is_empty() => subject.clone(),
        Value::Number(number) => number.to_string(),
        _ => return Err(Invalid::MissingClaim(claim.clone()).into()),
    };
    for required in &config.required_claims {
        let value = &claims[&required.name];
        if value.is_null() {
            return Err(Invalid::MissingClaim(required.name.clone()).into());
        }
        if let Some(expected) = &required.value {
            let matches = |item: &Value| item.as_str() == Some(expected);
            let found = matches(value)
                || value
                    .as_array()
                    .is_some_and(|items| items.iter().any(matches));
            if !found {
                return Err(Invalid::ClaimValue(required.name.clone()).into());
            }
        }
    }
    let scopes = scopes(claims);
    if !config.scopes.is_subset(&scopes) {
        return Err(Refusal::InsufficientScope);
    }
    Ok(Grant {
        principal: Principal::from(principal_name(&issuer.label, &subject)),
        scopes,
        // Verification required `exp` and checked both as numbers.
        expires_at: seconds(&claims["exp"]).unwrap_or(0),
        not_before: seconds(&claims["nbf"]),
    })
}

/// A NumericDate claim as whole seconds (it may be a float).
fn seconds(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|secs| *secs >= 0.0)
            .map(|secs| secs as u64)
    })
}

/// The scopes a token carries: `scope` (RFC 9068, space-separated) and `scp` (a string or an
/// array, as several identity providers write it).
fn scopes(claims: &Value) -> BTreeSet<String> {
    let mut scopes = BTreeSet::new();
    for value in [&claims["scope"], &claims["scp"]] {
        match value {
            Value::String(text) => scopes.extend(text.split_whitespace().map(str::to_string)),
            Value::Array(items) => {
                scopes.extend(items.iter().filter_map(Value::as_str).map(str::to_string))
            }
            _ => {}
        }
    }
    scopes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::oauth::RequiredClaim;
    use serde_json::json;

    fn config() -> OAuthConfig {
        let mut config =
            OAuthConfig::example("corp", "https://login.example", "https://mcp.example/mcp");
        config.scopes.insert("mcp".into());
        config.required_claims = vec![RequiredClaim {
            name: "tid".into(),
            value: Some("t1".into()),
        }];
        config
    }

    #[test]
    fn a_grant_names_the_issuer_and_subject_and_reads_both_scope_claims() {
        let config = config();
        let issuer = &config.issuers[0];
        let grant = grant(
            &config,
            issuer,
            &json!({"sub": "ann@example.com", "scope": "mcp read", "scp": ["trade"], "tid": "t1", "exp": 1_000, "nbf": 10.5}),
        )
        .unwrap();
        assert_eq!(&*grant.principal, "corp_ann_40example_2Ecom");
        assert_eq!(
            grant.scopes.iter().collect::<Vec<_>>(),
            ["mcp", "read", "trade"]
        );
        assert_eq!((grant.expires_at, grant.not_before), (1_000, Some(10)));
    }

    #[test]
    fn missing_principal_claims_and_scopes_are_refused() {
        let config = config();
        let issuer = &config.issuers[0];
        let refusal = |claims: Value| grant(&config, issuer, &claims).unwrap_err();
        assert_eq!(
            refusal(json!({"scope": "mcp", "tid": "t1"})),
            Refusal::Invalid(Invalid::MissingClaim("sub".into()))
        );
        assert_eq!(
            refusal(json!({"sub": "", "scope": "mcp", "tid": "t1"})),
            Refusal::Invalid(Invalid::MissingClaim("sub".into()))
        );
        assert_eq!(
            refusal(json!({"sub": "a", "scope": "mcp"})),
            Refusal::Invalid(Invalid::MissingClaim("tid".into()))
        );
        assert_eq!(
            refusal(json!({"sub": "a", "scope": "mcp", "tid": ["t2"]})),
            Refusal::Invalid(Invalid::ClaimValue("tid".into()))
        );
        assert_eq!(
            refusal(json!({"sub": "a", "scope": "mcpx", "tid": "t1"})),
            Refusal::InsufficientScope
        );
        assert!(
            grant(
                &config,
                issuer,
                &json!({"sub": 42, "scope": "mcp", "tid": ["t0", "t1"]})
            )
            .is_ok()
        );
    }

    /// Unpadded base64url (RFC 4648 §5), enough to build test headers.
    fn base64url(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let bits = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[((bits >> (18 - 6 * i)) & 63) as usize]));
            }
        }
        out
    }

    #[test]
    fn shapes_and_algorithms_are_refused_before_any_key_is_sought() {
        let config = config();
        let encode = |value: Value| base64url(value.to_string().as_bytes());
        let claims = encode(json!({"iss": "https://login.example"}));
        let token = |header: Value| format!("{}.{claims}.c2ln", encode(header));
        assert_eq!(unverified(&config, "abc").err(), Some(Invalid::Malformed));
        assert_eq!(
            unverified(&config, &"a".repeat(MAX_TOKEN_BYTES + 1)).err(),
            Some(Invalid::Malformed)
        );
        assert_eq!(
            unverified(&config, &token(json!({"alg": "none"}))).err(),
            Some(Invalid::Malformed),
            "alg none"
        );
        assert_eq!(
            unverified(&config, &token(json!({"alg": "HS256"}))).err(),
            Some(Invalid::Algorithm),
            "HMAC"
        );
        assert_eq!(
            unverified(&config, &token(json!({"alg": "RS256", "crit": ["b64"]}))).err(),
            Some(Invalid::Malformed),
            "unknown critical header"
        );
        let accepted = unverified(&config, &token(json!({"alg": "RS256", "kid": "k"}))).unwrap();
        assert_eq!(accepted.issuer, "https://login.example");
        assert_eq!(accepted.header.kid.as_deref(), Some("k"));
    }
}
