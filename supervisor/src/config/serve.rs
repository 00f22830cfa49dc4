//! The flags of `bulkhead serve` beyond the common ones — listeners, authentication, the
//! connection limits and shares, rate limits, timeouts, the admin and metrics tokens, OAuth —
//! and their resolution into an [`HttpConfig`], reporting every problem.

use std::path::PathBuf;
use std::time::Duration;

use bulkhead_protocol::frame::DEFAULT_MAX_FRAME_BYTES;
use clap::Args;

use super::{Config, ENV_CREDENTIALS_DIRECTORY, Options, oauth};
use crate::http::auth::Tokens;
use crate::http::{AuthMode, HttpConfig};

/// Name of the tokens file in `$CREDENTIALS_DIRECTORY` (`LoadCredential=tokens:…`), used
/// when `--tokens` is not given.
pub const TOKENS_CREDENTIAL: &str = "tokens";
/// Name of the admin token in `$CREDENTIALS_DIRECTORY`, used when `--admin-token-file` is not
/// given.
pub const ADMIN_TOKEN_CREDENTIAL: &str = "admin-token";
/// Name of the metrics token in `$CREDENTIALS_DIRECTORY`, used when `--metrics-token-file` is
/// not given.
pub const METRICS_TOKEN_CREDENTIAL: &str = "metrics-token";
/// Shortest admin or metrics token: a guessable one would protect nothing.
const MIN_TOKEN_LEN: usize = 16;

/// A file systemd passed in `$CREDENTIALS_DIRECTORY`, if it exists.
fn credential_file(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os(ENV_CREDENTIALS_DIRECTORY)?).join(name);
    path.is_file().then_some(path)
}

/// Default listener when neither `--http` nor `--unix` is given: loopback only.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";
/// Largest request body: the same as the stdio frame limit.
pub const DEFAULT_MAX_BODY_BYTES: usize = DEFAULT_MAX_FRAME_BYTES;
/// Time a client gets to send a request's headers; closes slow-header (slowloris) connections.
pub const DEFAULT_HEADER_TIMEOUT_SECS: f64 = 10.0;
/// Open HTTP connections at once; each costs a task and a buffer, so this bounds memory.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Time a client gets to send a request's whole body once its headers are in: room for the
/// 4 MiB body limit at about 1 Mbit/s, and no longer can a trickling body hold a connection.
pub const DEFAULT_BODY_TIMEOUT_SECS: f64 = 30.0;
/// The default share of `--max-connections` one principal may keep busy (`1/N`): never all of
/// them, so another principal always finds a slot.
pub const DEFAULT_PRINCIPAL_SHARE_DIVISOR: usize = 2;
/// `subscriptions/listen` streams one principal may hold open: a client needs one; a few more
/// cover several clients under one token, and each holds a connection for as long as it lives.
pub const DEFAULT_MAX_LISTEN_PER_PRINCIPAL: usize = 8;
/// Requests per second per authenticated principal, sustained: far above an agent's pace, far
/// below a flood. With `--no-auth` there is no limit unless one is given: every caller is the
/// one principal `anonymous` on a trusted local machine, so a per-principal bucket would only
/// throttle the local user's own clients (a test suite's bursts tripped it), while the
/// connection limit and the header timeout still bound what a local flood can take.
pub const DEFAULT_RATE_PER_SECOND: f64 = 50.0;
/// Requests an authenticated principal may send in a burst.
pub const DEFAULT_RATE_BURST: f64 = 100.0;
/// Seconds between SSE keep-alive comments: under common 30 s proxy idle timeouts, and how
/// soon a vanished client's call is noticed and cancelled.
pub const DEFAULT_SSE_KEEPALIVE_SECS: f64 = 15.0;

#[derive(Debug, Clone, Args)]
pub struct ServeOptions {
    #[command(flatten)]
    pub common: Options,
    /// TCP address to listen on [default: 127.0.0.1:8080 when --unix is not given].
    #[arg(long, value_name = "ADDR")]
    pub http: Option<std::net::SocketAddr>,
    /// Unix socket path to listen on.
    #[arg(long, value_name = "PATH")]
    pub unix: Option<PathBuf>,
    /// Bearer tokens: one `principal:token` or `principal:sha256:<hex>` per line.
    #[arg(long, value_name = "FILE")]
    pub tokens: Option<PathBuf>,
    /// Accept every caller as the principal `anonymous`; refused unless every listener is
    /// loopback or a Unix socket.
    #[arg(long)]
    pub no_auth: bool,
    /// Over --unix, name callers without a token by their uid (`uid-<n>`).
    #[arg(long)]
    pub unix_peer_uid: bool,
    /// An Origin allowed besides loopback origins (repeatable), e.g. https://app.example.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub allow_origins: Vec<String>,
    /// A Host name allowed besides loopback names (repeatable), e.g. mcp.internal.
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_hosts: Vec<String>,
    /// Largest request body, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Seconds a client gets to send a request's headers.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_HEADER_TIMEOUT_SECS)]
    pub header_timeout: f64,
    /// Most open HTTP connections.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Connections one principal may keep busy with requests (SSE streams included)
    /// [default: half of --max-connections, at least 1]; past it, 503 and the connection closes.
    #[arg(long, value_name = "N")]
    pub max_connections_per_principal: Option<usize>,
    /// `subscriptions/listen` streams one principal may hold open.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_LISTEN_PER_PRINCIPAL)]
    pub max_listen_per_principal: usize,
    /// Seconds a client gets to send a request's body once its headers are in (408 after).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_BODY_TIMEOUT_SECS)]
    pub body_timeout: f64,
    /// Sustained requests per second per principal [default: 50; none with --no-auth].
    #[arg(long, value_name = "N")]
    pub rate_limit: Option<f64>,
    /// Burst of requests per principal [default: 100; none with --no-auth].
    #[arg(long, value_name = "N")]
    pub rate_burst: Option<f64>,
    /// File holding the admin API's bearer token; without it the admin API is disabled.
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// File holding the bearer token `/metrics` requires. Without it, `/metrics` is served
    /// only on loopback and Unix-socket listeners (a local Prometheus scrapes without setup;
    /// a public listener shows nothing to strangers).
    #[arg(long, value_name = "FILE")]
    pub metrics_token_file: Option<PathBuf>,
    /// Seconds between SSE keep-alive comments.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_SSE_KEEPALIVE_SECS)]
    pub sse_keepalive: f64,
    /// Seconds a draining node (SIGUSR1 or POST /admin/drain) waits for its last session to
    /// end before it exits anyway.
    #[arg(long, value_name = "SECS", default_value_t = crate::drain::DEFAULT_DRAIN_DEADLINE_SECS)]
    pub drain_deadline: f64,
    /// OAuth 2.1 access tokens: `--oauth-issuer`, `--public-url` and their `--oauth-*` flags.
    #[command(flatten)]
    pub oauth: oauth::OAuthOptions,
}

/// The SHA-256 digest of the token in `path` (trimmed); every problem goes to `problems`.
fn read_token_file(
    what: &str,
    path: &std::path::Path,
    problems: &mut Vec<String>,
) -> Option<[u8; 32]> {
    match std::fs::read_to_string(path) {
        Ok(token) if token.trim().len() >= MIN_TOKEN_LEN => {
            Some(crate::http::auth::digest(token.trim()))
        }
        Ok(_) => {
            problems.push(format!(
                "{what} token in {} must be at least {MIN_TOKEN_LEN} characters",
                path.display()
            ));
            None
        }
        Err(error) => {
            problems.push(format!(
                "cannot read {what} token file {}: {error}",
                path.display()
            ));
            None
        }
    }
}

impl ServeOptions {
    /// Validate the common options and the HTTP ones together, reporting every problem.
    pub fn resolve(&self) -> Result<(Config, HttpConfig), Vec<String>> {
        let common = self.common.resolve();
        let http = self.resolve_http();
        match (common, http) {
            (Ok(config), Ok(http)) => Ok((config, http)),
            (common, http) => Err(common
                .err()
                .into_iter()
                .flatten()
                .chain(http.err().into_iter().flatten())
                .collect()),
        }
    }

    fn resolve_http(&self) -> Result<HttpConfig, Vec<String>> {
        let mut problems = Vec::new();
        let http = match (self.http, &self.unix) {
            (None, None) => Some(DEFAULT_HTTP_ADDR.parse().expect("valid default address")),
            (http, _) => http,
        };
        let oauth = self.oauth.resolve(&mut problems);
        let auth = if self.no_auth {
            if self.tokens.is_some() {
                problems.push("--no-auth and --tokens exclude each other".into());
            }
            if !self.oauth.oauth_issuers.is_empty() {
                problems.push("--no-auth and --oauth-issuer exclude each other".into());
            }
            if let Some(addr) = http
                && !addr.ip().is_loopback()
            {
                problems.push(format!(
                    "--no-auth is refused on {addr}: it is not a loopback address; use --tokens"
                ));
            }
            AuthMode::None
        } else if let Some(path) = self
            .tokens
            .clone()
            .or_else(|| credential_file(TOKENS_CREDENTIAL))
            .as_ref()
        {
            let tokens = Tokens::load(path).unwrap_or_else(|found| {
                problems.extend(found);
                Tokens::default()
            });
            if let Some(oauth) = &oauth {
                oauth.check_static_principals(&tokens.principals(), &mut problems);
            }
            AuthMode::Tokens {
                tokens,
                unix_peer_uid: self.unix_peer_uid,
            }
        } else if !self.oauth.oauth_issuers.is_empty() {
            // Access tokens alone (and peer uids over --unix): no static token matches.
            AuthMode::Tokens {
                tokens: Tokens::default(),
                unix_peer_uid: self.unix_peer_uid,
            }
        } else if self.unix_peer_uid && http.is_none() {
            AuthMode::UnixPeerUid
        } else {
            problems.push("choose how callers authenticate: --tokens FILE, --oauth-issuer URL, --unix-peer-uid (with --unix only), or --no-auth (loopback and Unix sockets only)".into());
            AuthMode::None
        };
        if self.unix_peer_uid && self.unix.is_none() {
            problems.push("--unix-peer-uid needs --unix".into());
        }
        let admin_token = self
            .admin_token_file
            .clone()
            .or_else(|| credential_file(ADMIN_TOKEN_CREDENTIAL))
            .and_then(|path| read_token_file("admin", &path, &mut problems));
        let metrics_token = self
            .metrics_token_file
            .clone()
            .or_else(|| credential_file(METRICS_TOKEN_CREDENTIAL))
            .and_then(|path| read_token_file("metrics", &path, &mut problems));
        if self.max_body_bytes < 1024 {
            problems.push("--max-body-bytes must be at least 1024".into());
        }
        if self.max_connections == 0 {
            problems.push("--max-connections must be at least 1".into());
        }
        let principal_share = self
            .max_connections_per_principal
            .unwrap_or_else(|| (self.max_connections / DEFAULT_PRINCIPAL_SHARE_DIVISOR).max(1));
        if principal_share == 0 || principal_share > self.max_connections {
            problems.push(format!(
                "--max-connections-per-principal must be between 1 and --max-connections ({}), got {principal_share}",
                self.max_connections
            ));
        }
        if self.max_listen_per_principal == 0 {
            problems.push("--max-listen-per-principal must be at least 1".into());
        }
        let rate = match (self.rate_limit, self.rate_burst, self.no_auth) {
            (None, None, true) => None,
            (limit, burst, _) => Some((
                limit.unwrap_or(DEFAULT_RATE_PER_SECOND),
                burst.unwrap_or(DEFAULT_RATE_BURST),
            )),
        };
        if let Some((limit, burst)) = rate
            && (limit.is_nan() || limit <= 0.0 || burst.is_nan() || burst < 1.0)
        {
            problems.push("--rate-limit must be positive and --rate-burst at least 1".into());
        }
        let mut seconds = |name: &str, value: f64| match Duration::try_from_secs_f64(value) {
            Ok(duration) if !duration.is_zero() => duration,
            _ => {
                problems.push(format!(
                    "{name} must be a positive number of seconds, got {value}"
                ));
                Duration::from_secs(1)
            }
        };
        let header_timeout = seconds("--header-timeout", self.header_timeout);
        let body_timeout = seconds("--body-timeout", self.body_timeout);
        let sse_keepalive = seconds("--sse-keepalive", self.sse_keepalive);
        let drain_deadline = seconds("--drain-deadline", self.drain_deadline);
        if !problems.is_empty() {
            return Err(problems);
        }
        // The public URL's host is one this server answers to by definition.
        let mut allowed_hosts = self.allow_hosts.clone();
        allowed_hosts.extend(oauth.as_ref().and_then(|oauth| oauth.public_host()));
        Ok(HttpConfig {
            http,
            unix: self.unix.clone(),
            auth,
            allowed_origins: self.allow_origins.clone(),
            allowed_hosts,
            max_body_bytes: self.max_body_bytes,
            header_timeout,
            max_connections: self.max_connections,
            principal_share,
            listen_share: self.max_listen_per_principal,
            body_timeout,
            rate,
            admin_token,
            metrics_token,
            sse_keepalive,
            drain_deadline,
            oauth,
        })
    }
}
