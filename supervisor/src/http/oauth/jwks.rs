//! One trusted issuer's signing keys: discovered from its metadata, cached, and refreshed when
//! a token names a key the cache lacks — at most once per interval.
//!
//! Discovery tries, in order, RFC 8414's `/.well-known/oauth-authorization-server` (inserted
//! before the issuer's path), OpenID Connect's `<issuer>/.well-known/openid-configuration`, and
//! the OpenID path-inserted variant; the first document whose `issuer` is exactly the
//! configured one and that names a `jwks_uri` wins. Keys are read from the JWKS one by one
//! (a malformed or unsupported key is skipped, not fatal) and only signature keys of an
//! asymmetric type are kept: an `oct` (HMAC) key is never loaded, so no token can be checked
//! against a shared secret, or against an RSA key's bytes taken as one.
//!
//! The cache is read without waiting. A miss (unknown `kid`) or an old set (older than
//! [`MAX_KEYS_AGE`]) takes the refresh lock — one refresh at a time per issuer, and every
//! caller that queued behind it sees its result — and fetches only if the last attempt,
//! successful or not, is at least the configured interval old. A failed refresh keeps the keys
//! it had.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use url::Url;

use super::fetch::{FetchError, Fetcher};

/// Age after which a key set is fetched again even if every token names a known key, so a key
/// the issuer withdrew stops being accepted within this time.
pub const MAX_KEYS_AGE: Duration = Duration::from_secs(3600);

/// Why discovery or a key fetch failed (logged; the caller sees an invalid token).
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("no metadata document of issuer {issuer} names it and a jwks_uri ({tried})")]
    NoMetadata { issuer: String, tried: String },
    #[error("{url} holds no usable signature key")]
    NoKeys { url: String },
}

/// A verification key from the JWKS, with what it may verify.
struct Key {
    kid: Option<String>,
    /// The JWK's own `alg`, if it names one: then only that algorithm.
    algorithm: Option<Algorithm>,
    curve: Option<EllipticCurve>,
    decoding: DecodingKey,
}

impl Key {
    /// Read one JWK; `None` for anything that is not an asymmetric signature key.
    fn from_jwk(jwk: &Jwk) -> Option<Self> {
        if !matches!(
            jwk.common.public_key_use,
            None | Some(PublicKeyUse::Signature)
        ) {
            return None;
        }
        let curve = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => None,
            AlgorithmParameters::EllipticCurve(params) => Some(params.curve.clone()),
            AlgorithmParameters::OctetKeyPair(params) => Some(params.curve.clone()),
            // Never a shared secret: see the module documentation.
            _ => return None,
        };
        let algorithm = match jwk.common.key_algorithm {
            None => None,
            Some(KeyAlgorithm::HS256 | KeyAlgorithm::HS384 | KeyAlgorithm::HS512) => return None,
            Some(named) => Some(Algorithm::try_from(named).ok()?),
        };
        Some(Self {
            kid: jwk.common.key_id.clone(),
            algorithm,
            curve,
            decoding: DecodingKey::from_jwk(jwk).ok()?,
        })
    }

    /// Whether this key may verify a token signed with `algorithm`.
    fn verifies(&self, algorithm: Algorithm) -> bool {
        let curve_fits = match algorithm {
            Algorithm::ES256 => self.curve == Some(EllipticCurve::P256),
            Algorithm::ES384 => self.curve == Some(EllipticCurve::P384),
            Algorithm::EdDSA => self.curve == Some(EllipticCurve::Ed25519),
            _ => self.curve.is_none(),
        };
        curve_fits
            && self.decoding.family() == algorithm.family()
            && self.algorithm.is_none_or(|named| named == algorithm)
    }
}

/// The keys of one fetch.
#[derive(Default)]
struct KeySet {
    keys: Vec<Key>,
    fetched: Option<Instant>,
}

impl KeySet {
    fn is_fresh(&self) -> bool {
        self.fetched
            .is_some_and(|fetched| fetched.elapsed() < MAX_KEYS_AGE)
    }

    /// The key for a token's `kid` and `alg`. A token without a `kid` is accepted only when
    /// exactly one key fits, so no token makes the server try several.
    fn select(&self, kid: Option<&str>, algorithm: Algorithm) -> Option<DecodingKey> {
        let mut fitting = self
            .keys
            .iter()
            .filter(|key| kid.is_none() || key.kid.as_deref() == kid)
            .filter(|key| key.verifies(algorithm));
        let first = fitting.next()?;
        if kid.is_none() && fitting.next().is_some() {
            return None;
        }
        Some(first.decoding.clone())
    }
}

/// Refresh bookkeeping, under the refresh lock.
#[derive(Default)]
struct Refresh {
    jwks_uri: Option<Url>,
    last_attempt: Option<Instant>,
}

/// One issuer's keys.
pub struct IssuerKeys {
    issuer: String,
    min_refresh_interval: Duration,
    keys: RwLock<Arc<KeySet>>,
    /// Counts successful fetches, so what was verified under older keys can tell.
    generation: AtomicU64,
    refresh: tokio::sync::Mutex<Refresh>,
}

impl IssuerKeys {
    pub fn new(issuer: String, min_refresh_interval: Duration) -> Self {
        Self {
            issuer,
            min_refresh_interval,
            keys: RwLock::default(),
            generation: AtomicU64::new(0),
            refresh: tokio::sync::Mutex::default(),
        }
    }

    /// Which key set is current: it changes with every successful fetch.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn current(&self) -> Arc<KeySet> {
        self.keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The key that verifies a token of this issuer with this `kid` and `alg`, fetching the
    /// keys when they are unknown or old and the interval allows.
    pub async fn key(
        &self,
        fetcher: &Fetcher,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Option<DecodingKey> {
        let current = self.current();
        if current.is_fresh()
            && let Some(key) = current.select(kid, alg)
        {
            return Some(key);
        }
        let mut refresh = self.refresh.lock().await;
        // Whoever held the lock before may have fetched what this caller needs.
        let current = self.current();
        if current.is_fresh()
            && let Some(key) = current.select(kid, alg)
        {
            return Some(key);
        }
        self.refresh_if_due(fetcher, &mut refresh).await;
        self.current().select(kid, alg)
    }

    /// Fetch the keys now if none were fetched yet (at start, so the first caller does not
    /// wait and a misconfigured issuer is reported at once).
    pub async fn prefetch(&self, fetcher: &Fetcher) {
        let mut refresh = self.refresh.lock().await;
        if self.current().fetched.is_none() {
            self.refresh_if_due(fetcher, &mut refresh).await;
        }
    }

    /// Fetch the keys if the last attempt is at least the interval old; keep the old keys if
    /// the fetch fails.
    async fn refresh_if_due(&self, fetcher: &Fetcher, refresh: &mut Refresh) {
        let due = refresh
            .last_attempt
            .is_none_or(|last| last.elapsed() >= self.min_refresh_interval);
        if !due {
            return;
        }
        refresh.last_attempt = Some(Instant::now());
        match self.fetch(fetcher, refresh).await {
            Ok(keys) => {
                tracing::debug!(issuer = %self.issuer, keys = keys.keys.len(), "fetched the issuer's signing keys");
                *self
                    .keys
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(keys);
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
            Err(error) => tracing::warn!(
                issuer = %self.issuer,
                "cannot fetch the issuer's signing keys: {error}"
            ),
        }
    }

    async fn fetch(&self, fetcher: &Fetcher, refresh: &mut Refresh) -> Result<KeySet, KeysError> {
        let jwks_uri = match refresh.jwks_uri.clone() {
            Some(uri) => uri,
            None => self.discover(fetcher).await?,
        };
        let document = match fetcher.json(&jwks_uri).await {
            Ok(document) => document,
            Err(error) => {
                // The issuer may have moved its keys; look them up again next time.
                refresh.jwks_uri = None;
                return Err(error.into());
            }
        };
        refresh.jwks_uri = Some(jwks_uri.clone());
        let keys: Vec<Key> = document["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|jwk| serde_json::from_value::<Jwk>(jwk.clone()).ok())
            .filter_map(|jwk| Key::from_jwk(&jwk))
            .collect();
        if keys.is_empty() {
            return Err(KeysError::NoKeys {
                url: jwks_uri.to_string(),
            });
        }
        Ok(KeySet {
            keys,
            fetched: Some(Instant::now()),
        })
    }

    /// The `jwks_uri` of the first metadata document that names this issuer exactly.
    async fn discover(&self, fetcher: &Fetcher) -> Result<Url, KeysError> {
        let candidates = metadata_urls(&self.issuer);
        let mut tried = Vec::new();
        for url in &candidates {
            match fetcher.json(url).await {
                Ok(document) => {
                    if let Some(jwks_uri) = jwks_uri_of(&document, &self.issuer) {
                        return Ok(jwks_uri);
                    }
                    tried.push(format!("{url}: names another issuer or no jwks_uri"));
                }
                Err(error) => tried.push(error.to_string()),
            }
        }
        Err(KeysError::NoMetadata {
            issuer: self.issuer.clone(),
            tried: tried.join("; "),
        })
    }
}

/// Where an issuer's metadata may be, in the order to try.
fn metadata_urls(issuer: &str) -> Vec<Url> {
    let Ok(parsed) = Url::parse(issuer) else {
        return Vec::new();
    };
    let path = parsed.path().trim_end_matches('/');
    let origin = parsed.origin().ascii_serialization();
    let mut urls = vec![format!(
        "{origin}/.well-known/oauth-authorization-server{path}"
    )];
    urls.push(format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    ));
    if !path.is_empty() {
        urls.push(format!("{origin}/.well-known/openid-configuration{path}"));
    }
    urls.iter().filter_map(|url| Url::parse(url).ok()).collect()
}

/// The `jwks_uri` of a metadata document, if the document is this issuer's.
fn jwks_uri_of(document: &Value, issuer: &str) -> Option<Url> {
    (document["issuer"].as_str() == Some(issuer))
        .then(|| document["jwks_uri"].as_str())
        .flatten()
        .and_then(|uri| Url::parse(uri).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_is_looked_for_where_rfc_8414_and_openid_put_it() {
        let urls = |issuer| {
            metadata_urls(issuer)
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            urls("https://login.example"),
            [
                "https://login.example/.well-known/oauth-authorization-server",
                "https://login.example/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            urls("https://login.example/tenant/"),
            [
                "https://login.example/.well-known/oauth-authorization-server/tenant",
                "https://login.example/tenant/.well-known/openid-configuration",
                "https://login.example/.well-known/openid-configuration/tenant",
            ]
        );
    }

    #[test]
    fn a_document_counts_only_for_its_exact_issuer() {
        let document =
            json!({"issuer": "https://login.example", "jwks_uri": "https://login.example/jwks"});
        assert!(jwks_uri_of(&document, "https://login.example").is_some());
        assert!(jwks_uri_of(&document, "https://login.example/").is_none());
        assert!(jwks_uri_of(&document, "https://evil.example").is_none());
        assert!(
            jwks_uri_of(
                &json!({"issuer": "https://login.example"}),
                "https://login.example"
            )
            .is_none()
        );
    }

    fn jwk(value: Value) -> Option<Key> {
        Key::from_jwk(&serde_json::from_value(value).unwrap())
    }

    /// A real P-256 public key (RFC 7515 appendix A.3).
    fn p256(extra: Value) -> Value {
        let mut key = json!({
            "kty": "EC", "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
        });
        key.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        key
    }

    #[test]
    fn shared_secrets_and_encryption_keys_are_never_loaded() {
        assert!(jwk(json!({"kty": "oct", "k": "c2VjcmV0", "kid": "h"})).is_none());
        assert!(jwk(p256(json!({"use": "enc"}))).is_none());
        assert!(jwk(p256(json!({"alg": "HS256"}))).is_none());
        assert!(jwk(p256(json!({"use": "sig"}))).is_some());
    }

    #[test]
    fn a_key_verifies_only_its_own_family_curve_and_algorithm() {
        let ec = jwk(p256(json!({}))).unwrap();
        assert!(ec.verifies(Algorithm::ES256));
        assert!(!ec.verifies(Algorithm::ES384), "another curve");
        assert!(!ec.verifies(Algorithm::RS256), "another family");
        assert!(!ec.verifies(Algorithm::HS256), "never HMAC");
        let pinned = jwk(p256(json!({"alg": "ES256"}))).unwrap();
        assert!(pinned.verifies(Algorithm::ES256));
    }

    #[test]
    fn a_token_without_kid_needs_exactly_one_fitting_key() {
        let one = KeySet {
            keys: vec![jwk(p256(json!({"kid": "a"}))).unwrap()],
            fetched: Some(Instant::now()),
        };
        assert!(one.select(None, Algorithm::ES256).is_some());
        assert!(one.select(Some("a"), Algorithm::ES256).is_some());
        assert!(one.select(Some("b"), Algorithm::ES256).is_none());
        let two = KeySet {
            keys: vec![
                jwk(p256(json!({"kid": "a"}))).unwrap(),
                jwk(p256(json!({"kid": "b"}))).unwrap(),
            ],
            fetched: Some(Instant::now()),
        };
        assert!(two.select(None, Algorithm::ES256).is_none());
        assert!(two.select(Some("b"), Algorithm::ES256).is_some());
    }
}
