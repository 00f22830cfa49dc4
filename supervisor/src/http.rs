//! `bulkhead serve`: MCP over Streamable HTTP, on loopback TCP and/or a Unix socket, plus the
//! operations endpoints.
//!
//! The accept loop bounds connections ([`slots`]: a slot per connection, a share per principal,
//! connections without complete headers — slowloris or idle keep-alive — reclaimed for new ones)
//! and serves each with hyper's HTTP/1.1 server, whose header-read timeout also closes
//! slow-header connections; a body has its own timeout. Every request
//! is routed here: `/mcp` to [`endpoint`], `/healthz`, `/readyz`, `/metrics` and `/admin/…` to
//! [`ops`], the protected-resource metadata to [`oauth`]. Protection runs before any body is
//! read: `Host` allow-list (TCP only) and `Origin` allow-list on every endpoint; for `/mcp`
//! then bearer token → principal ([`auth`] for static tokens, then [`oauth`] for access tokens)
//! and the per-principal rate limit, then the body is read up to the size limit; `/metrics` and
//! the admin API check their own tokens. rmcp's own HTTP service is not used: it answers 2026-07-28
//! requests without consulting a session manager, so it could not route them to per-session
//! workers.

pub mod auth;
mod body;
mod endpoint;
mod guard;
pub mod handover;
pub(crate) mod headers;
pub mod oauth;
mod ops;
mod rate;
mod response;
mod slots;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::mcp::{Connection, Frontend};
use crate::metrics::{METRICS, Rejection};
use crate::principal::Principal;
use guard::{check_host_and_origin, check_principal};

pub use body::Body;

/// How callers are identified.
#[derive(Debug, Clone)]
pub enum AuthMode {
    /// Bearer tokens; with `unix_peer_uid`, Unix-socket callers without a token are named by
    /// their uid.
    Tokens {
        tokens: auth::Tokens,
        unix_peer_uid: bool,
    },
    /// Unix-socket callers are named by their uid; TCP is not allowed.
    UnixPeerUid,
    /// Everyone is the principal `anonymous` (only on loopback and Unix sockets).
    None,
}

/// The HTTP front door's settings.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub http: Option<SocketAddr>,
    pub unix: Option<PathBuf>,
    pub auth: AuthMode,
    /// Exact `Origin` values allowed besides loopback origins.
    pub allowed_origins: Vec<String>,
    /// Host names (without port) allowed in `Host`; loopback names are always allowed.
    pub allowed_hosts: Vec<String>,
    pub max_body_bytes: usize,
    pub header_timeout: Duration,
    /// Time to receive a request's body once its headers are in.
    pub body_timeout: Duration,
    pub max_connections: usize,
    /// Connections one principal may keep busy with requests.
    pub principal_share: usize,
    /// `subscriptions/listen` streams one principal may hold.
    pub listen_share: usize,
    /// Per-principal requests per second and burst; `None`: no limit.
    pub rate: Option<(f64, f64)>,
    /// SHA-256 of the admin token; `None` disables the admin API.
    pub admin_token: Option<[u8; 32]>,
    /// SHA-256 of the token `/metrics` requires; `None`: served on local listeners only.
    pub metrics_token: Option<[u8; 32]>,
    pub sse_keepalive: Duration,
    /// How long a draining node waits for its sessions (see [`crate::drain`]).
    pub drain_deadline: Duration,
    /// Access tokens from OAuth issuers, beside the static tokens and peer uids of `auth`.
    pub oauth: Option<oauth::OAuthConfig>,
}

/// A legacy (2025-era) HTTP session: an `Mcp-Session-Id` and the connection behind it.
struct LegacySession {
    connection: Arc<Connection>,
}

/// Shared state of the HTTP front door.
pub struct HttpState {
    pub frontend: Arc<Frontend>,
    pub config: HttpConfig,
    pub node: String,
    legacy: Mutex<HashMap<String, LegacySession>>,
    /// The 2026-07-28 context of each principal: its default session.
    modern: Mutex<HashMap<Principal, Arc<Connection>>>,
    rate: Option<rate::Limiter>,
    /// Connection slots and per-principal shares.
    slots: Arc<slots::Slots>,
    oauth: Option<Arc<oauth::ResourceServer>>,
    ready: AtomicBool,
    draining: AtomicBool,
    /// A reload is under way: requests are refused as retryable.
    reloading: AtomicBool,
    /// Every connection's task, so that shutdown can wait for the responses being written.
    connections: TaskTracker,
    /// Cancelled at shutdown: each connection finishes the response it is writing, then closes.
    closing: CancellationToken,
}

/// A bound listener.
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Whether only this machine can reach it: a loopback address or a Unix socket.
    pub fn is_local(&self) -> bool {
        match self {
            Listener::Tcp(listener) => listener
                .local_addr()
                .is_ok_and(|addr| addr.ip().is_loopback()),
            Listener::Unix(..) => true,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(listener) => match listener.local_addr() {
                Ok(addr) => format!("http://{addr}/mcp"),
                Err(_) => "tcp".into(),
            },
            Listener::Unix(_, path) => format!("unix:{}", path.display()),
        }
    }
}

impl HttpState {
    pub fn new(frontend: Arc<Frontend>, config: HttpConfig, node: String) -> Arc<Self> {
        let rate = config
            .rate
            .map(|(per_second, burst)| rate::Limiter::new(per_second, burst));
        let slots = slots::Slots::new(
            config.max_connections,
            config.principal_share,
            config.listen_share,
        );
        let oauth = config
            .oauth
            .clone()
            .map(|oauth| Arc::new(oauth::ResourceServer::new(oauth)));
        Arc::new(Self {
            slots,
            frontend,
            config,
            node,
            legacy: Mutex::new(HashMap::new()),
            modern: Mutex::new(HashMap::new()),
            rate,
            oauth,
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            reloading: AtomicBool::new(false),
            connections: TaskTracker::new(),
            closing: CancellationToken::new(),
        })
    }

    /// After the listeners have stopped: ask every connection to close once the response it is
    /// writing is out (an idle one closes at once), and wait for them up to `within`. False if
    /// some were still open then (a long stream, a client that does not read): they are cut.
    /// Without this, the answer to the request that ended a drained node's last session (a
    /// `DELETE`, a `session_close`) could be lost with the process.
    pub async fn close_connections(&self, within: Duration) -> bool {
        self.closing.cancel();
        self.connections.close();
        tokio::time::timeout(within, self.connections.wait())
            .await
            .is_ok()
    }

    /// Mark the service ready (listeners bound, catalog loaded) or not.
    pub fn set_ready(&self, ready: bool) {
        if ready && let (Some(oauth), Some(catalog)) = (&self.oauth, self.frontend.catalog.loaded())
        {
            oauth.check_catalog(&catalog);
        }
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Stop taking new MCP requests (graceful shutdown has begun).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.ready.store(false, Ordering::Relaxed);
    }

    fn modern_connection(&self, principal: &Principal) -> Arc<Connection> {
        let mut modern = self
            .modern
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        modern
            .entry(principal.clone())
            .or_insert_with(|| {
                Connection::shared(self.frontend.clone(), principal.clone(), discard_sink())
            })
            .clone()
    }
}

/// A sink for messages that belong to no request; HTTP has nowhere to put them.
fn discard_sink() -> crate::mcp::Sink {
    crate::mcp::Sink::Request(tokio::sync::mpsc::channel(1).0)
}

/// Bind the configured listeners (removing a stale Unix socket file first).
pub async fn bind(config: &HttpConfig) -> std::io::Result<Vec<Listener>> {
    let mut listeners = Vec::new();
    if let Some(addr) = config.http {
        listeners.push(Listener::Tcp(TcpListener::bind(addr).await?));
    }
    if let Some(path) = &config.unix {
        if std::fs::symlink_metadata(path).is_ok_and(|meta| {
            use std::os::unix::fs::FileTypeExt;
            meta.file_type().is_socket()
        }) {
            std::fs::remove_file(path)?;
        }
        listeners.push(Listener::Unix(UnixListener::bind(path)?, path.clone()));
    }
    Ok(listeners)
}

/// How often legacy sessions whose worker ended (expired, closed through the admin API) are
/// forgotten, for ids nobody uses again.
const LEGACY_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

impl HttpState {
    /// Forget legacy sessions whose default session has ended for good.
    async fn sweep_legacy(&self) {
        let sessions: Vec<(String, Arc<Connection>)> = self
            .legacy
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|(id, session)| (id.clone(), session.connection.clone()))
            .collect();
        for (id, connection) in sessions {
            if connection.default_session_ended().await {
                self.legacy
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .remove(&id);
            }
        }
    }
}

/// Serve every listener until `shutdown` fires; stop accepting whenever a reload asks on
/// `pauses` (see [`handover`]), and accept again if it is refused.
pub async fn serve(
    state: Arc<HttpState>,
    mut listeners: Vec<Listener>,
    shutdown: CancellationToken,
    mut pauses: tokio::sync::mpsc::Receiver<handover::PauseRequest>,
) {
    let sweeper = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(LEGACY_SWEEP_INTERVAL);
            loop {
                ticker.tick().await;
                state.sweep_legacy().await;
            }
        })
    };
    if let Some(oauth) = &state.oauth {
        oauth.warm_up();
    }
    loop {
        let stop = shutdown.child_token();
        let mut loops = tokio::task::JoinSet::new();
        for listener in listeners.drain(..) {
            loops.spawn(accept_loop(state.clone(), listener, stop.clone()));
        }
        let pause = tokio::select! {
            () = shutdown.cancelled() => None,
            pause = pauses.recv() => pause,
        };
        stop.cancel();
        while let Some(listener) = loops.join_next().await {
            if let Ok(listener) = listener {
                listeners.push(listener);
            }
        }
        match pause {
            Some(reply) => handover::pause(&state, &listeners, reply).await,
            None => break,
        }
    }
    sweeper.abort();
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone, Copy)]
enum Peer {
    /// Through a TCP listener; `local` when that listener is bound to loopback.
    Tcp {
        local: bool,
    },
    Unix {
        uid: Option<u32>,
    },
}

impl Peer {
    /// Whether the connection came through a listener only this machine can reach.
    fn through_local_listener(self) -> bool {
        match self {
            Peer::Tcp { local } => local,
            Peer::Unix { .. } => true,
        }
    }
}

/// Accept connections, each with a connection slot. The slot is taken after `accept`, so that
/// a waiting connection can make the connection that has waited longest for headers give its
/// slot up; at
/// most one accepted connection per listener waits for a slot.
/// Returns the listener once `stop` fires.
async fn accept_loop(
    state: Arc<HttpState>,
    listener: Listener,
    stop: CancellationToken,
) -> Listener {
    loop {
        let accepted = tokio::select! {
            accepted = accept(&listener) => accepted,
            () = stop.cancelled() => return listener,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!("accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let permit = tokio::select! {
            permit = state.slots.acquire() => match permit {
                Some(permit) => permit,
                None => return listener,
            },
            () = stop.cancelled() => return listener,
        };
        // Registered here, in accept order: connections that never send headers are closed in
        // the order they came in.
        let slot = state.slots.connection();
        let state = state.clone();
        let connections = state.connections.clone();
        connections.spawn(async move {
            serve_connection(state, slot, stream, peer).await;
            drop(permit);
        });
    }
}

/// An accepted stream of either kind.
enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> std::io::Result<(Stream, Peer)> {
    match listener {
        Listener::Tcp(listener) => {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            // The listener's address, not the connection's: a listener bound to a public (or
            // unspecified) address is public, whoever connects.
            let local = listener
                .local_addr()
                .is_ok_and(|addr| addr.ip().is_loopback());
            Ok((Stream::Tcp(stream), Peer::Tcp { local }))
        }
        Listener::Unix(listener, _) => {
            let (stream, _) = listener.accept().await?;
            let uid = stream.peer_cred().ok().map(|cred| cred.uid());
            Ok((Stream::Unix(stream), Peer::Unix { uid }))
        }
    }
}

async fn serve_connection(
    state: Arc<HttpState>,
    slot: slots::ConnectionSlot,
    stream: Stream,
    peer: Peer,
) {
    let header_timeout = state.config.header_timeout;
    let closing = state.closing.clone();
    let requests = Arc::new(slot);
    let service = {
        let requests = requests.clone();
        hyper::service::service_fn(move |request| {
            let state = state.clone();
            // Busy until the response is finished; idle (reclaimable) in between.
            let in_progress = requests.request();
            async move {
                let response = route(state, peer, request).await;
                Ok::<_, std::convert::Infallible>(response.map(|body| body.hold(in_progress)))
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let served = match stream {
        Stream::Tcp(stream) => {
            drive(
                builder.serve_connection(TokioIo::new(stream), service),
                &requests,
                &closing,
            )
            .await
        }
        Stream::Unix(stream) => {
            drive(
                builder.serve_connection(TokioIo::new(stream), service),
                &requests,
                &closing,
            )
            .await
        }
    };
    if let Err(error) = served {
        tracing::debug!("http connection ended: {error}");
    }
}

/// Serve one connection to its end; if its slot is reclaimed (it was awaiting a request's
/// headers) or the server shuts down, close it at once when it never had a request, else
/// gracefully (a response may still be flushing; hyper then closes it as soon as it is
/// written, partial next headers or not).
async fn drive<I, S>(
    connection: hyper::server::conn::http1::Connection<I, S>,
    slot: &slots::ConnectionSlot,
    closing: &CancellationToken,
) -> hyper::Result<()>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<Incoming, ResBody = Body>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(connection);
    tokio::select! {
        served = connection.as_mut() => served,
        () = async { tokio::select! {
            () = slot.close_requested() => {}
            () = closing.cancelled() => {}
        } } => {
            // hyper's graceful shutdown waits for the headers of a first request that has
            // started; nothing was ever answered here, so nothing is lost by dropping it.
            if slot.never_served() {
                tracing::debug!("closed a connection that never completed its headers");
                return Ok(());
            }
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    }
}

async fn route(state: Arc<HttpState>, peer: Peer, request: Request<Incoming>) -> Response<Body> {
    let unread_body = has_body(&request);
    // Every endpoint, not only /mcp: a browser tricked by DNS rebinding must not read the
    // metrics or reach the admin API either.
    if let Err(response) = check_host_and_origin(&state, peer, &request) {
        return before_body(unread_body, response);
    }
    let path = request.uri().path().to_string();
    // Only `/mcp` reads bodies (and says itself when it answers before reading one); every
    // other answer here is sent with the body, if any, unread.
    let response = match (request.method(), path.as_str()) {
        (_, "/mcp") => match check_principal(&state, peer, &request).await {
            Ok((principal, scopes)) => match state.slots.admit(&principal) {
                Some(share) => {
                    return endpoint::handle(state, principal, scopes, request)
                        .await
                        .map(|body| body.hold(share));
                }
                None => share_refused(
                    Rejection::PrincipalShare,
                    &format!(
                        "this principal already keeps {} connections busy, its share of the server's; retry when one is done",
                        state.slots.shares().0
                    ),
                ),
            },
            Err(response) => response,
        },
        (&Method::GET, path)
            if state
                .oauth
                .as_ref()
                .is_some_and(|oauth| oauth.serves_metadata(path)) =>
        {
            oauth_metadata(&state)
        }
        (&Method::GET, "/healthz") => ops::healthz(),
        (&Method::GET, "/readyz") => ops::readyz(&state),
        (&Method::GET, "/metrics") => ops::metrics(&state, peer.through_local_listener(), &request),
        (_, path) if path.starts_with("/admin/") => ops::admin(&state, request).await,
        _ => plain(StatusCode::NOT_FOUND, "not found\n"),
    };
    before_body(unread_body, response)
}

/// Whether the request carries a body (one that the handler may not have read).
pub(crate) fn has_body(request: &Request<Incoming>) -> bool {
    !hyper::body::Body::is_end_stream(request.body())
}

/// A response sent without reading the request's body: hyper closes the connection after it
/// (the unread bytes cannot be told from a next request), so say so with `Connection: close`,
/// or a keep-alive client reuses the dead connection and its next request fails with "server
/// disconnected" (an OAuth client's retry after the 401, say).
pub(crate) fn before_body(unread_body: bool, mut response: Response<Body>) -> Response<Body> {
    if unread_body {
        response
            .headers_mut()
            .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The protected-resource metadata (the Host and Origin rules already ran in [`route`]).
fn oauth_metadata(state: &HttpState) -> Response<Body> {
    match &state.oauth {
        Some(oauth) => oauth.metadata(),
        None => plain(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Seconds a principal at its share is told to wait.
const SHARE_RETRY_AFTER: u32 = 1;

/// `503` for a principal at one of its shares, closing the connection (its body is unread, and
/// the slot goes back to everyone).
fn share_refused(reason: Rejection, message: &str) -> Response<Body> {
    METRICS.reject(reason);
    let mut response = rpc_error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        bulkhead_protocol::codes::INVALID_REQUEST,
        message,
    );
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::RETRY_AFTER,
        HeaderValue::from(SHARE_RETRY_AFTER),
    );
    headers.insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A response with a plain-text body.
pub fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::full(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A response whose body is one JSON value.
pub fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(Body::full(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A response whose body is JSON text already serialized.
pub fn json_text_response(status: StatusCode, json: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Body::full(Bytes::from(json)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An HTTP error carrying a JSON-RPC error body with no id.
pub fn rpc_error_response(status: StatusCode, code: i64, message: &str) -> Response<Body> {
    json_response(
        status,
        &json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}}),
    )
}
