//! One Alpaca broker's HTTPS client: requests with the session's keys, bounded in time and size,
//! and every failure turned into a [`BrokerError`] with the keys scrubbed out of it.
//!
//! The client is built once per broker per session (connections are pooled and reused), with
//! rustls and compiled-in root certificates (the sandbox denies `/etc/ssl`), redirects off (a
//! redirect would carry the key and secret headers to wherever it points), no proxy, and
//! timeouts below the call deadline so the worker always answers before the supervisor gives
//! up on the call: connect within [`Timeouts::connect`], whole request within
//! [`Timeouts::request`], which leaves room for a second request — the look-up that follows
//! an order whose fate is unknown.
//!
//! Alpaca authenticates every request with two headers, `APCA-API-KEY-ID` and
//! `APCA-API-SECRET-KEY`. Whatever Alpaca sends back in an error body passes through
//! [`Scrubber`] before it is logged or put in an error: an error that echoes the request would
//! otherwise carry the secret to the model.

use std::time::Duration;

use chrono::Utc;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;

use super::wire::ErrorBody;
use crate::broker::{BrokerError, Credentials, Environment};

/// Header carrying the API key id.
const KEY_HEADER: &str = "APCA-API-KEY-ID";
/// Header carrying the API secret.
const SECRET_HEADER: &str = "APCA-API-SECRET-KEY";
/// Header with the UNIX time at which the rate limit's quota refills.
const RATE_LIMIT_RESET_HEADER: &str = "X-RateLimit-Reset";

/// Largest response read: the full list of US equities (`GET /v2/assets`, about 12,000
/// entries) is a few MiB; anything much larger is not an answer Bulkhead asked for.
const MAX_RESPONSE_BYTES: usize = 32 << 20;
/// Longest piece of an error body put into a message: enough for Alpaca's sentences.
const MAX_REASON_CHARS: usize = 300;
/// What a scrubbed secret reads as.
const REDACTED: &str = "[REDACTED]";
/// Retry delay when a 429 names no reset time: Alpaca's quotas are per minute.
const DEFAULT_RETRY_AFTER_SECS: u64 = 60;
/// Idle pooled connections kept per host: one session makes one call at a time.
const MAX_IDLE_PER_HOST: usize = 2;
/// How long an idle pooled connection is kept: under the 60 s idle cut-off of common load
/// balancers, so a reused connection is rarely already closed.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// Time limits of one broker's requests, derived from the call deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a connection (TCP and TLS).
    pub connect: Duration,
    /// A whole request, connection to last byte.
    pub request: Duration,
}

/// Longest request timeout: a healthy Alpaca answers in well under a second.
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest connect timeout.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Timeouts {
    /// Two requests (an order and the look-up after it) must fit in the deadline with room to
    /// answer: each gets two fifths of it, at most [`MAX_REQUEST_TIMEOUT`]; connecting gets at
    /// most half of a request's time.
    pub fn within(deadline: Duration) -> Self {
        let request = (deadline * 2 / 5).min(MAX_REQUEST_TIMEOUT);
        Self {
            connect: (request / 2).min(MAX_CONNECT_TIMEOUT),
            request,
        }
    }
}

/// Which of a broker's two APIs a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Trading,
    Data,
}

/// What a request failed with, before it is worded for the caller. Placement needs to know
/// whether a request may have reached Alpaca; everything else only needs [`Failure::into_error`].
#[derive(Debug)]
pub enum Failure {
    /// Alpaca answered with an error status; `reason` is its message, already scrubbed.
    Status {
        status: StatusCode,
        code: Option<u64>,
        reason: String,
        retry_after_seconds: u64,
    },
    /// No connection could be made: the request was certainly not sent.
    NotSent { reason: String },
    /// The request may have been sent and acted on, but no answer came back: a timeout, a
    /// connection dropped mid-request, an unreadable answer.
    NoAnswer { reason: String },
    /// The session's keys cannot be put in a request at all (characters a header cannot
    /// carry): nothing was sent.
    UnusableKeys,
}

/// Replaces a session's key and secret wherever they appear in text from outside.
pub struct Scrubber<'a> {
    secrets: [&'a str; 2],
}

impl<'a> Scrubber<'a> {
    pub fn new(credentials: &'a Credentials) -> Self {
        Self {
            secrets: [
                credentials.api_key().expose_secret(),
                credentials.api_secret().expose_secret(),
            ],
        }
    }

    /// `text` with every occurrence of the key and the secret replaced.
    pub fn scrub(&self, text: &str) -> String {
        let mut clean = text.to_owned();
        for secret in self.secrets {
            if !secret.is_empty() {
                clean = clean.replace(secret, REDACTED);
            }
        }
        clean
    }
}

/// One Alpaca broker's client: its name, environment, endpoints and connection pool.
pub struct AlpacaHttp {
    broker: String,
    environment: Environment,
    client: reqwest::Client,
    trading_url: String,
    data_url: String,
}

impl AlpacaHttp {
    pub fn new(
        broker: &str,
        environment: Environment,
        trading_url: &str,
        data_url: &str,
        timeouts: Timeouts,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .user_agent(concat!("bulkhead/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            broker: broker.to_owned(),
            environment,
            client,
            trading_url: trading_url.trim_end_matches('/').to_owned(),
            data_url: data_url.trim_end_matches('/').to_owned(),
        })
    }

    pub fn environment(&self) -> Environment {
        self.environment
    }

    /// Sends one request and reads its JSON answer (`T = ()` for an empty one).
    pub async fn send<T: DeserializeOwned>(
        &self,
        credentials: &Credentials,
        request: Request<'_>,
    ) -> Result<T, Failure> {
        let scrubber = Scrubber::new(credentials);
        let base = match request.api {
            Api::Trading => &self.trading_url,
            Api::Data => &self.data_url,
        };
        let url = format!("{base}{}", request.path);
        let mut builder = self
            .client
            .request(request.method.clone(), &url)
            .header(KEY_HEADER, secret_header(credentials.api_key())?)
            .header(SECRET_HEADER, secret_header(credentials.api_secret())?)
            .query(&request.query);
        if let Some(body) = request.body {
            builder = builder.json(&body);
        }
        let response = builder
            .send()
            .await
            .map_err(|error| transport_failure(&error, &scrubber))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = read_capped(response)
            .await
            .map_err(|reason| Failure::NoAnswer {
                reason: scrubber.scrub(&reason),
            })?;
        if status.is_success() {
            let body = if body.is_empty() {
                b"null".as_slice()
            } else {
                &body
            };
            // A decoding error may quote the body, so it is scrubbed like one.
            return serde_json::from_slice(body).map_err(|error| Failure::NoAnswer {
                reason: scrubber
                    .scrub(&format!("unreadable answer from {}: {error}", request.path)),
            });
        }
        let failure = status_failure(status, &headers, &body, &scrubber);
        if let Failure::Status { code, reason, .. } = &failure {
            tracing::debug!(
                broker = %self.broker,
                method = %request.method,
                path = %request.path,
                status = status.as_u16(),
                code = ?code,
                %reason,
                "broker refused a request"
            );
        }
        Err(failure)
    }

    /// The error a failure means to a caller, where nothing more specific applies.
    pub fn error(&self, failure: Failure) -> BrokerError {
        let broker = self.broker.clone();
        match failure {
            Failure::NotSent { reason } | Failure::NoAnswer { reason } => {
                BrokerError::Unreachable { broker, reason }
            }
            Failure::UnusableKeys => BrokerError::CredentialsRefused {
                broker,
                reason: "the key or secret holds characters an HTTP header cannot carry; check \
                         that it was copied whole"
                    .to_owned(),
            },
            Failure::Status {
                status,
                reason,
                retry_after_seconds,
                ..
            } => match status.as_u16() {
                401 => self.keys_refused(),
                429 => BrokerError::RateLimited {
                    broker,
                    retry_after_seconds,
                },
                500..=599 => BrokerError::Unreachable {
                    broker,
                    reason: format!("it answered {status}: {reason}"),
                },
                _ => refusal(broker, &reason, None),
            },
        }
    }

    /// The sentence for keys Alpaca does not know in this broker's environment.
    pub fn keys_refused(&self) -> BrokerError {
        BrokerError::CredentialsRefused {
            broker: self.broker.clone(),
            reason: format!(
                "check that the keys belong to the {} environment you chose ({} takes keys \
                 from Alpaca's {} dashboard) and have not been regenerated",
                self.environment.as_str(),
                self.broker,
                self.environment.as_str(),
            ),
        }
    }
}

/// A refusal by its reason: market hours, an unknown asset, buying power or position, or a
/// validation Alpaca states in its own words. `symbol` is the order's, when there is one.
pub fn refusal(broker: String, reason: &str, symbol: Option<&str>) -> BrokerError {
    let lower = reason.to_ascii_lowercase();
    if lower.contains("market") && (lower.contains("closed") || lower.contains("hours")) {
        return BrokerError::MarketClosed {
            broker,
            market: "us_equity".to_owned(),
            what: "this order".to_owned(),
            advice: format!(
                "{reason}; use a limit order with time_in_force day or gtc, or wait for the \
                 next open (market_clock)"
            ),
        };
    }
    if lower.contains("asset") && (lower.contains("not found") || lower.contains("not tradable"))
        || lower.contains("could not find asset")
        || lower.contains("invalid symbol")
    {
        return BrokerError::UnknownSymbol {
            broker,
            symbol: symbol_in(reason).unwrap_or_else(|| "requested".to_owned()),
            known: "what the symbols tool lists (call symbols with a query to search)".to_owned(),
        };
    }
    if lower.contains("buying power") {
        return BrokerError::InsufficientBuyingPower {
            broker,
            reason: reason.to_owned(),
        };
    }
    if lower.contains("insufficient qty")
        && let (Some(requested), Some(available)) = (
            number_after(reason, "requested:"),
            number_after(reason, "available:"),
        )
    {
        return BrokerError::InsufficientPosition {
            symbol: symbol.unwrap_or("the symbol").to_owned(),
            requested,
            available,
        };
    }
    if lower.contains("insufficient qty")
        || (lower.contains("position") && lower.contains("insufficient"))
    {
        return BrokerError::Rejected {
            broker,
            reason: format!("insufficient position ({reason}); reduce qty"),
        };
    }
    BrokerError::Rejected {
        broker,
        reason: format!("{reason}; correct the request and try again"),
    }
}

/// The number after `label` in an Alpaca sentence such as `(requested: 10, available: 5)`.
fn number_after(reason: &str, label: &str) -> Option<rust_decimal::Decimal> {
    let start = reason.find(label)? + label.len();
    let number: String = reason[start..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
        .collect();
    number.parse().ok()
}

/// A quoted symbol in an Alpaca sentence such as `asset "XYZ" not found`.
fn symbol_in(reason: &str) -> Option<String> {
    let start = reason.find('"')? + 1;
    let length = reason[start..].find('"')?;
    Some(reason[start..start + length].to_owned())
}

/// One request to an Alpaca API.
#[derive(Debug)]
pub struct Request<'a> {
    pub method: Method,
    pub api: Api,
    pub path: String,
    pub query: Vec<(&'a str, String)>,
    pub body: Option<serde_json::Value>,
}

impl<'a> Request<'a> {
    pub fn get(api: Api, path: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            api,
            path: path.into(),
            query: Vec::new(),
            body: None,
        }
    }

    pub fn query(mut self, name: &'a str, value: impl Into<String>) -> Self {
        self.query.push((name, value.into()));
        self
    }

    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    pub fn body(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }
}

/// A key or secret as a header value marked sensitive, so no `Debug` of the request shows it.
fn secret_header(secret: &secrecy::SecretString) -> Result<HeaderValue, Failure> {
    let mut value =
        HeaderValue::from_str(secret.expose_secret()).map_err(|_| Failure::UnusableKeys)?;
    value.set_sensitive(true);
    Ok(value)
}

/// A failure of the transport, by whether the request can have reached Alpaca.
fn transport_failure(error: &reqwest::Error, scrubber: &Scrubber<'_>) -> Failure {
    let mut reason = if error.is_timeout() {
        "no answer before the request timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "the connection was lost before the answer arrived".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    let reason = scrubber.scrub(&reason);
    if error.is_connect() {
        Failure::NotSent { reason }
    } else {
        Failure::NoAnswer { reason }
    }
}

/// An error status with its (scrubbed) reason and, for 429, the seconds until the quota refills.
fn status_failure(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    scrubber: &Scrubber<'_>,
) -> Failure {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let code = parsed.as_ref().and_then(|body| body.code);
    let message = parsed
        .and_then(|body| body.message)
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let message = message.trim();
    let message = if message.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no reason given")
            .to_ascii_lowercase()
    } else {
        message.chars().take(MAX_REASON_CHARS).collect()
    };
    Failure::Status {
        status,
        code,
        reason: scrubber.scrub(&message),
        retry_after_seconds: retry_after(headers),
    }
}

/// Seconds until `X-RateLimit-Reset` (a UNIX time), at least one; or `Retry-After`; or a minute.
fn retry_after(headers: &HeaderMap) -> u64 {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<i64>().ok())
    };
    if let Some(reset) = number(RATE_LIMIT_RESET_HEADER) {
        let seconds = reset - Utc::now().timestamp();
        return u64::try_from(seconds).unwrap_or(0).max(1);
    }
    if let Some(seconds) = number(reqwest::header::RETRY_AFTER.as_str()) {
        return u64::try_from(seconds).unwrap_or(0).max(1);
    }
    DEFAULT_RETRY_AFTER_SECS
}

/// The whole body, refusing one past [`MAX_RESPONSE_BYTES`].
async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| format!("the answer was cut off: {error}"))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(format!(
                "the answer exceeds {MAX_RESPONSE_BYTES} bytes; refusing to read more"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
