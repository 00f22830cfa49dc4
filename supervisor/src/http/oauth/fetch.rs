//! The supervisor's only outbound HTTP: GETs of an issuer's metadata and JWKS, bounded in time
//! and size, never following redirects, never carrying a caller's token.
//!
//! The client (reqwest with rustls and the webpki roots, the same stack as the worker's broker
//! client) is built on first use, so a supervisor without OAuth never creates one.

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use url::Url;

use super::config::is_secure_or_loopback;

/// Time one fetch may take, connection included: an issuer slower than this is treated as
/// down, and the callers waiting on it get a 401 rather than a hung request.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest metadata or JWKS document read: real ones are a few KiB; this bounds memory if an
/// issuer (or something impersonating it) sends an endless body.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Why a document could not be fetched. Messages name the URL, never a token (none is sent).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url} is not https (plain http only on loopback)")]
    Insecure { url: String },
    #[error("cannot create the HTTP client: {0}")]
    Client(String),
    #[error("GET {url}: {source}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {url}: status {status}")]
    Status { url: String, status: u16 },
    #[error("GET {url}: the document exceeds {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge { url: String },
    #[error("GET {url}: not a JSON object: {source}")]
    NotJson {
        url: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Fetches JSON documents from issuers.
#[derive(Default)]
pub struct Fetcher {
    client: OnceLock<Result<reqwest::Client, String>>,
}

impl Fetcher {
    fn client(&self) -> Result<&reqwest::Client, FetchError> {
        self.client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .timeout(FETCH_TIMEOUT)
                    .redirect(reqwest::redirect::Policy::none())
                    .user_agent(concat!("bulkhead/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|error| error.to_string())
            })
            .as_ref()
            .map_err(|error| FetchError::Client(error.clone()))
    }

    /// GET `url` and parse its body as a JSON object.
    pub async fn json(&self, url: &Url) -> Result<Value, FetchError> {
        let name = url.to_string();
        if !is_secure_or_loopback(url) {
            return Err(FetchError::Insecure { url: name });
        }
        let request_error = |source| FetchError::Request {
            url: name.clone(),
            source,
        };
        let mut response = self
            .client()?
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(request_error)?;
        if !response.status().is_success() {
            return Err(FetchError::Status {
                url: name,
                status: response.status().as_u16(),
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(request_error)? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(FetchError::TooLarge { url: name });
            }
            body.extend_from_slice(&chunk);
        }
        let value: Value = serde_json::from_slice(&body).map_err(|source| FetchError::NotJson {
            url: name.clone(),
            source,
        })?;
        if !value.is_object() {
            return Err(FetchError::NotJson {
                url: name,
                source: serde::de::Error::custom("expected an object"),
            });
        }
        Ok(value)
    }
}
