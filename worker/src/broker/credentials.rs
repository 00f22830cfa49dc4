//! Broker credentials: how a session holds them, and how a `credential_ref` becomes them.
//!
//! [`Credentials`] keeps the API key and secret in [`SecretString`]s: their memory is zeroized
//! when they are dropped (on logout, on re-login, and when the session's registry goes away),
//! and neither this type nor `SecretString` has a `Debug` that shows them. The only way to
//! read them is `expose_secret`, which a broker calls to verify or sign a request; nothing
//! here serializes them, so they cannot reach a tool result.
//!
//! A `credential_ref` names a credential the operator provisioned for the caller's principal.
//! The worker cannot read those itself: the supervisor resolves the reference for the
//! session's principal only and sends the secret over the private socket. That path plugs in
//! as a [`CredentialResolver`]; until it does, [`UnavailableResolver`] refuses every reference.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use secrecy::SecretString;

/// An API key and secret for one broker.
pub struct Credentials {
    api_key: SecretString,
    api_secret: SecretString,
}

impl Credentials {
    pub fn new(api_key: SecretString, api_secret: SecretString) -> Self {
        Self {
            api_key,
            api_secret,
        }
    }

    pub fn api_key(&self) -> &SecretString {
        &self.api_key
    }

    pub fn api_secret(&self) -> &SecretString {
        &self.api_secret
    }
}

impl fmt::Debug for Credentials {
    // Written by hand so that no future field can leak through a derived impl.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Credentials { api_key: [REDACTED], api_secret: [REDACTED] }")
    }
}

/// Where `broker_login` gets its credentials.
#[derive(Debug)]
pub enum CredentialSource {
    /// Given in the call itself.
    Direct(Credentials),
    /// The name of an operator-provisioned credential, resolved by a [`CredentialResolver`].
    Reference(String),
}

/// Why a `credential_ref` did not resolve. The messages say nothing about which references
/// exist, for this principal or any other.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "credential references are not available in this worker: pass api_key and api_secret \
         to broker_login instead"
    )]
    Unavailable,
}

/// The future a [`CredentialResolver`] returns.
pub type ResolveFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Credentials, ResolveError>> + Send + 'a>>;

/// Turns a `credential_ref` into credentials for this session's principal.
///
/// The supervisor side implements it (asking the supervisor over the private socket); it must
/// only ever resolve references provisioned for the principal that owns this session.
pub trait CredentialResolver: Send + Sync {
    fn resolve<'a>(&'a self, broker: &'a str, credential_ref: &'a str) -> ResolveFuture<'a>;
}

/// The resolver of a worker that has no way to resolve references: refuses them all.
#[derive(Debug, Default, Clone, Copy)]
pub struct UnavailableResolver;

impl CredentialResolver for UnavailableResolver {
    fn resolve<'a>(&'a self, _broker: &'a str, _credential_ref: &'a str) -> ResolveFuture<'a> {
        Box::pin(std::future::ready(Err(ResolveError::Unavailable)))
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    const SENTINEL: &str = "sentinel-secret-7f3a9c";

    fn sentinel_credentials() -> Credentials {
        Credentials::new(SecretString::from(SENTINEL), SecretString::from(SENTINEL))
    }

    #[test]
    fn debug_never_shows_the_secrets() {
        let credentials = sentinel_credentials();
        assert!(!format!("{credentials:?}").contains(SENTINEL));
        assert!(!format!("{credentials:#?}").contains(SENTINEL));
        let source = CredentialSource::Direct(credentials);
        assert!(!format!("{source:?}").contains(SENTINEL));
    }

    #[test]
    fn the_secret_is_still_readable_on_purpose() {
        assert_eq!(
            sentinel_credentials().api_secret().expose_secret(),
            SENTINEL
        );
    }

    #[tokio::test]
    async fn the_placeholder_resolver_refuses_with_advice() {
        let error = UnavailableResolver
            .resolve("paper", "prod-keys")
            .await
            .unwrap_err();
        assert_eq!(error, ResolveError::Unavailable);
        assert!(error.to_string().contains("pass api_key and api_secret"));
    }
}
