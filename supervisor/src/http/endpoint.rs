//! The `/mcp` endpoint: one JSON-RPC message per POST, in either protocol era.
//!
//! The era comes from the `MCP-Protocol-Version` header (absent: 2025-03-26, as the
//! specification allows). A 2026-07-28 request is validated against its headers (`Mcp-Method`,
//! `Mcp-Name`, `Mcp-Param-Session`, and the version in `_meta`; any disagreement is `400` +
//! `-32020`) and runs in its principal's context, whose default session is the principal's. A
//! legacy request belongs to the `Mcp-Session-Id` that `initialize` minted — a session with its
//! own worker — bound to the principal that created it; an unknown id, an ended one and another
//! principal's all get the same `404`. Replies are JSON, or a request-scoped SSE stream for
//! tool calls that go to a worker (so progress and server requests can reach the client, and a
//! closed stream cancels the call) and for `subscriptions/listen`.

use std::sync::Arc;
use std::time::Duration;

use bulkhead_protocol::jsonrpc;
use bulkhead_protocol::{Era, codes};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;
use tokio::sync::mpsc;

use super::headers::{HEADER_PROTOCOL_VERSION, HEADER_SESSION_ID, check_modern_headers, header};
use super::oauth::Scopes;
use super::response::{accepted, event_stream, is_final, json_final, json_reply, retry_after};
use super::{
    Body, HttpState, LegacySession, discard_sink, json_response, json_text_response,
    rpc_error_response,
};
use crate::mcp::era;
use crate::mcp::request::{Incoming as Message, Method as RpcMethod, Request as RpcRequest};
use crate::mcp::{Connection, Sink};
use crate::metrics::{METRICS, Rejection};
use crate::node::OtherNode;
use crate::principal::Principal;
use crate::session::SessionError;

/// Messages of one request (notifications, the final response) waiting for its response
/// stream, which holds 16 encoded chunks of its own: a few per stream keep it flowing, and a
/// client that does not read holds back its request's task, not the supervisor's memory.
const REQUEST_QUEUE: usize = 16;

/// Handle one request to `/mcp` from an authenticated principal (with its scopes, if it came
/// with an OAuth access token).
pub async fn handle(
    state: Arc<HttpState>,
    principal: Principal,
    scopes: Option<Scopes>,
    request: Request<Incoming>,
) -> Response<Body> {
    let unread_body = super::has_body(&request);
    if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return super::before_body(unread_body, shutting_down());
    }
    if state.is_reloading() {
        return super::before_body(unread_body, reloading());
    }
    match *request.method() {
        Method::POST => post(state, principal, scopes, request).await,
        Method::DELETE if request.headers().contains_key(HEADER_SESSION_ID) => super::before_body(
            unread_body,
            delete(&state, &principal, request.headers()).await,
        ),
        _ => super::before_body(unread_body, method_not_allowed()),
    }
}

/// `503` while the server upgrades in place: nothing ran, every session survives, so the
/// client retries the same request in a moment.
fn reloading() -> Response<Body> {
    let mut response = rpc_error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        codes::RELOADING,
        "the server is upgrading in place; retry this request in a moment (every session is kept)",
    );
    response
        .headers_mut()
        .insert(hyper::header::RETRY_AFTER, HeaderValue::from(1u32));
    response
}

/// `503` while the server shuts down: nothing ran, so the client may retry elsewhere.
fn shutting_down() -> Response<Body> {
    let mut response = rpc_error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        codes::SHUTTING_DOWN,
        "the server is shutting down",
    );
    response
        .headers_mut()
        .insert(hyper::header::RETRY_AFTER, HeaderValue::from(1u32));
    response
}

fn method_not_allowed() -> Response<Body> {
    let mut response = rpc_error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        codes::INVALID_REQUEST,
        "method not allowed: send each JSON-RPC message as its own POST (DELETE ends a legacy session)",
    );
    response.headers_mut().insert(
        hyper::header::ALLOW,
        HeaderValue::from_static("POST, DELETE"),
    );
    response
}

async fn post(
    state: Arc<HttpState>,
    principal: Principal,
    scopes: Option<Scopes>,
    request: Request<Incoming>,
) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let bytes = match read_body(body, state.config.max_body_bytes, state.config.body_timeout).await
    {
        Ok(bytes) => bytes,
        Err(response) => return response,
    };
    let message = match Message::parse(&bytes) {
        Ok(message) => message,
        Err(error) => {
            METRICS.reject(Rejection::BadRequest);
            return json_response(StatusCode::BAD_REQUEST, &error.to_response());
        }
    };
    if let Some(refused) = check_tool_scope(&state, scopes.as_ref(), &message) {
        return refused;
    }
    let headers = &parts.headers;
    let id = request_id(&message);
    let header_version = match header(headers, HEADER_PROTOCOL_VERSION) {
        Ok(version) => version,
        Err(problem) => return header_mismatch(&id, &problem),
    };
    match era::of_header(header_version) {
        Ok((version, Era::Inline)) => modern(&state, &principal, headers, message, &version).await,
        Ok((_, Era::Initialize)) => legacy(&state, &principal, headers, message).await,
        Err(error) => {
            METRICS.reject(Rejection::BadRequest);
            json_response(
                StatusCode::BAD_REQUEST,
                &jsonrpc::error_response(&id, error.code, &error.message, error.data),
            )
        }
    }
}

/// The `403` for an OAuth caller calling a tool whose scopes its token lacks.
fn check_tool_scope(
    state: &HttpState,
    scopes: Option<&Scopes>,
    message: &Message,
) -> Option<Response<Body>> {
    let (Some(oauth), Some(scopes)) = (&state.oauth, scopes) else {
        return None;
    };
    let Message::Request { request, .. } = message else {
        return None;
    };
    oauth.check_tool(scopes, request.tool_name()?)
}

/// How much of an oversized body is read and thrown away before the `413` goes out: a client
/// that writes its whole request before it reads (most do) then sees the answer instead of a
/// connection reset. A body declared larger than the limit plus this is refused at once.
const OVERSIZED_DRAIN_BYTES: usize = 16 * 1024 * 1024;

/// Why a body was not read whole.
enum BodyRefusal {
    TooLarge,
    Unreadable,
}

/// The whole body, up to `limit` bytes, within `timeout`: a body that trickles in holds a
/// connection and a principal's share, so it gets `408` and the connection is closed. A body
/// over the limit gets `413` once the rest of it (up to [`OVERSIZED_DRAIN_BYTES`]) has been
/// read and discarded, and the connection is closed too.
#[allow(clippy::result_large_err, reason = "the error is the response to send")]
async fn read_body(
    body: Incoming,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, Response<Body>> {
    let Ok(collected) = tokio::time::timeout(timeout, collect_within(body, limit)).await else {
        METRICS.reject(Rejection::BodyTimeout);
        let response = rpc_error_response(
            StatusCode::REQUEST_TIMEOUT,
            codes::INVALID_REQUEST,
            &format!(
                "the request body did not arrive within {} s",
                timeout.as_secs_f64()
            ),
        );
        return Err(super::before_body(true, response));
    };
    match collected {
        Ok(collected) => Ok(collected),
        Err(BodyRefusal::TooLarge) => {
            METRICS.reject(Rejection::BodyTooLarge);
            let response = rpc_error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                codes::INVALID_REQUEST,
                &format!("request body exceeds the limit of {limit} bytes"),
            );
            Err(super::before_body(true, response))
        }
        Err(BodyRefusal::Unreadable) => Err(super::before_body(
            true,
            rpc_error_response(
                StatusCode::BAD_REQUEST,
                codes::INVALID_REQUEST,
                "the request body could not be read",
            ),
        )),
    }
}

/// Read `body` whole if it fits in `limit` bytes; past the limit, read on and discard up to
/// [`OVERSIZED_DRAIN_BYTES`] more before refusing it.
async fn collect_within(mut body: Incoming, limit: usize) -> Result<Bytes, BodyRefusal> {
    let declared = hyper::body::Body::size_hint(&body).exact();
    if declared.is_some_and(|size| size > (limit + OVERSIZED_DRAIN_BYTES) as u64) {
        return Err(BodyRefusal::TooLarge);
    }
    let mut kept = bytes::BytesMut::new();
    let mut discarded = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| BodyRefusal::Unreadable)?.into_data() else {
            continue; // trailers
        };
        if discarded == 0 && kept.len() + data.len() <= limit {
            kept.extend_from_slice(&data);
            continue;
        }
        discarded += kept.len() + data.len();
        kept = bytes::BytesMut::new();
        if discarded > limit + OVERSIZED_DRAIN_BYTES {
            break;
        }
    }
    if discarded > 0 {
        return Err(BodyRefusal::TooLarge);
    }
    Ok(kept.freeze())
}

async fn modern(
    state: &Arc<HttpState>,
    principal: &Principal,
    headers: &HeaderMap,
    message: Message,
    version: &str,
) -> Response<Body> {
    let id = request_id(&message);
    if let Message::Request { request, .. } = &message
        && let Err(error) = era::check_inline_meta(request.params.as_ref())
    {
        METRICS.reject(Rejection::BadRequest);
        return json_response(
            StatusCode::BAD_REQUEST,
            &jsonrpc::error_response(&id, error.code, &error.message, None),
        );
    }
    let header_params = match &message {
        Message::Request { request, .. } if request.method == RpcMethod::ToolsCall => {
            let tool = request.tool_name().unwrap_or("");
            match state.frontend.catalog.data().await {
                Ok(catalog) => catalog.header_params(tool),
                Err(_) => Vec::new(),
            }
        }
        _ => Vec::new(),
    };
    if let Err(problem) = check_modern_headers(headers, &message, version, &header_params) {
        return header_mismatch(&id, &problem);
    }
    let connection = state.modern_connection(principal);
    match message {
        Message::Request { id, request } => {
            dispatch(state, &connection, headers, id, request, Era::Inline).await
        }
        other => {
            connection.on_incoming(other, &discard_sink()).await;
            accepted()
        }
    }
}

async fn legacy(
    state: &Arc<HttpState>,
    principal: &Principal,
    headers: &HeaderMap,
    message: Message,
) -> Response<Body> {
    if let Message::Request { id, request } = &message
        && request.method == RpcMethod::Initialize
    {
        return initialize(state, principal, id, request.clone()).await;
    }
    let session_id = match header(headers, HEADER_SESSION_ID) {
        Ok(Some(session_id)) => session_id,
        _ => {
            METRICS.reject(Rejection::BadRequest);
            return rpc_error_response(
                StatusCode::BAD_REQUEST,
                codes::INVALID_REQUEST,
                "bad request: missing Mcp-Session-Id header; send initialize first, or use protocol 2026-07-28",
            );
        }
    };
    let Some(connection) = legacy_connection(state, &session_id, principal).await else {
        return session_id_not_here(state, &session_id);
    };
    match message {
        Message::Request { id, request } => {
            dispatch(state, &connection, headers, id, request, Era::Initialize).await
        }
        other => {
            connection.on_incoming(other, &discard_sink()).await;
            accepted()
        }
    }
}

/// `initialize`: a new legacy session with its own worker, named by a fresh `Mcp-Session-Id`.
async fn initialize(
    state: &Arc<HttpState>,
    principal: &Principal,
    id: &Value,
    request: RpcRequest,
) -> Response<Body> {
    let connection = Connection::new(state.frontend.clone(), principal.clone(), discard_sink());
    let (sink, mut replies) = mpsc::channel(REQUEST_QUEUE);
    let request = Message::Request {
        id: id.clone(),
        request,
    };
    connection.on_incoming(request, &Sink::Request(sink)).await;
    let Some(reply) = replies.recv().await else {
        return rpc_error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL_ERROR,
            "initialize produced no reply",
        );
    };
    if reply.error_code().is_some() {
        return json_text_response(StatusCode::BAD_REQUEST, reply.json);
    }
    if let Err(error) = connection.open_default_session().await {
        return session_error_response(id, &error);
    }
    let session_id = crate::session::mint_handle(&state.node);
    state
        .legacy
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(session_id.clone(), LegacySession { connection });
    let mut response = json_text_response(StatusCode::OK, reply.json);
    if let Ok(value) = HeaderValue::from_str(&session_id) {
        response.headers_mut().insert(HEADER_SESSION_ID, value);
    }
    response
}

fn session_error_response(id: &Value, error: &SessionError) -> Response<Body> {
    let status = match error {
        SessionError::Limit { .. } | SessionError::PrincipalLimit { .. } => {
            METRICS.reject(Rejection::SessionLimit);
            StatusCode::SERVICE_UNAVAILABLE
        }
        SessionError::Draining { .. } => {
            METRICS.reject(Rejection::Draining);
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut response = json_response(
        status,
        &jsonrpc::error_response(id, error.code(), &error.to_string(), None),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            HeaderValue::from(retry_after(error.code())),
        );
    }
    response
}

/// The legacy session `session_id` if `principal` owns it and it has not ended.
async fn legacy_connection(
    state: &HttpState,
    session_id: &str,
    principal: &Principal,
) -> Option<Arc<Connection>> {
    let connection = {
        let legacy = state
            .legacy
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let session = legacy.get(session_id)?;
        (session.connection.principal() == principal).then(|| session.connection.clone())?
    };
    if connection.default_session_ended().await {
        state
            .legacy
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(session_id);
        return None;
    }
    Some(connection)
}

/// `DELETE` with `Mcp-Session-Id`: end the legacy session and stop its worker.
async fn delete(state: &HttpState, principal: &Principal, headers: &HeaderMap) -> Response<Body> {
    let Ok(Some(session_id)) = header(headers, HEADER_SESSION_ID) else {
        return session_not_found();
    };
    let Some(connection) = legacy_connection(state, &session_id, principal).await else {
        return session_id_not_here(state, &session_id);
    };
    state
        .legacy
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .remove(&session_id);
    connection.close_default_session().await;
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::OK;
    response
}

/// A session id this node does not hold: another node's gets `404` naming that node (see
/// [`crate::node`]); any other is simply not found.
fn session_id_not_here(state: &HttpState, session_id: &str) -> Response<Body> {
    match OtherNode::of(session_id, &state.node) {
        Some(other) => json_response(
            StatusCode::NOT_FOUND,
            &jsonrpc::error_response(
                &Value::Null,
                codes::SESSION_LOST,
                &other.message("send initialize to start a new session"),
                Some(other.data()),
            ),
        ),
        None => session_not_found(),
    }
}

/// Unknown, ended and other principals' session ids all get exactly this.
fn session_not_found() -> Response<Body> {
    METRICS.reject(Rejection::UnknownSession);
    rpc_error_response(
        StatusCode::NOT_FOUND,
        codes::SESSION_NOT_FOUND,
        "session not found: it never existed or has ended; send initialize to start a new one",
    )
}

/// Run one request and answer it as JSON or as a request-scoped SSE stream.
async fn dispatch(
    state: &HttpState,
    connection: &Arc<Connection>,
    headers: &HeaderMap,
    id: Value,
    request: RpcRequest,
    era: Era,
) -> Response<Body> {
    let listens = request.method == RpcMethod::Listen;
    // A listen stream holds its connection for as long as the client likes: a share of its own.
    let listen_share = if listens {
        match state.slots.admit_listen(connection.principal()) {
            Some(share) => Some(share),
            None => {
                return super::share_refused(
                    Rejection::ListenShare,
                    &format!(
                        "this principal already holds {} subscriptions/listen streams, its share; close one first",
                        state.slots.shares().1
                    ),
                );
            }
        }
    } else {
        None
    };
    let streaming = listens || (request.goes_to_a_worker() && accepts_event_stream(headers));
    let (sink, mut replies) = mpsc::channel(REQUEST_QUEUE);
    connection
        .on_incoming(
            Message::Request {
                id: id.clone(),
                request,
            },
            &Sink::Request(sink),
        )
        .await;
    if !streaming {
        return json_reply(replies, era).await;
    }
    // Answer as JSON (with the status the reply deserves) when the reply comes quickly and
    // alone; commit to SSE once anything else arrives or the keep-alive interval passes, so
    // progress reaches the client and a vanished client is noticed.
    let keepalive = state.config.sse_keepalive;
    let response = match tokio::time::timeout(keepalive, replies.recv()).await {
        Ok(Some(message)) if is_final(&message) => json_final(message, era),
        Ok(Some(message)) => event_stream(replies, keepalive, Some(message)),
        Ok(None) => accepted(),
        Err(_) => event_stream(replies, keepalive, None),
    };
    match listen_share {
        Some(share) => response.map(|body| body.hold(share)),
        None => response,
    }
}

fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(hyper::header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains("text/event-stream"))
}

fn header_mismatch(id: &Value, problem: &str) -> Response<Body> {
    METRICS.reject(Rejection::BadRequest);
    json_response(
        StatusCode::BAD_REQUEST,
        &jsonrpc::error_response(id, codes::HEADER_MISMATCH, problem, None),
    )
}

fn request_id(message: &Message) -> Value {
    match message {
        Message::Request { id, .. } => id.clone(),
        _ => Value::Null,
    }
}
