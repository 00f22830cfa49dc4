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
use bulkhead_protocol::names::META_PROTOCOL_VERSION;
use bulkhead_protocol::{Era, codes};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;
use tokio::sync::mpsc;

use super::oauth::Scopes;
use super::{
    Body, HttpState, LegacySession, discard_sink, json_response, json_text_response,
    rpc_error_response,
};
use crate::mcp::era;
use crate::mcp::reply::{Kind, Outgoing};
use crate::mcp::request::{Incoming as Message, Method as RpcMethod, Request as RpcRequest};
use crate::mcp::{Connection, Sink};
use crate::metrics::{METRICS, Rejection};
use crate::principal::Principal;
use crate::session::SessionError;

const HEADER_PROTOCOL_VERSION: &str = "mcp-protocol-version";
const HEADER_METHOD: &str = "mcp-method";
const HEADER_NAME: &str = "mcp-name";
const HEADER_SESSION_ID: &str = "mcp-session-id";
/// Seconds a client at a session limit is told to wait.
const SESSION_LIMIT_RETRY_AFTER: u32 = 5;
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
    if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
        let mut response = rpc_error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::SHUTTING_DOWN,
            "the server is shutting down",
        );
        response
            .headers_mut()
            .insert(hyper::header::RETRY_AFTER, HeaderValue::from(1u32));
        return response;
    }
    match *request.method() {
        Method::POST => post(state, principal, scopes, request).await,
        Method::DELETE if request.headers().contains_key(HEADER_SESSION_ID) => {
            delete(&state, &principal, request.headers()).await
        }
        _ => {
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
    }
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

/// The whole body, up to `limit` bytes, within `timeout`: a body that trickles in holds a
/// connection and a principal's share, so it gets `408` and the connection is closed.
#[allow(clippy::result_large_err, reason = "the error is the response to send")]
async fn read_body(
    body: Incoming,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, Response<Body>> {
    let Ok(collected) = tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await
    else {
        METRICS.reject(Rejection::BodyTimeout);
        let mut response = rpc_error_response(
            StatusCode::REQUEST_TIMEOUT,
            codes::INVALID_REQUEST,
            &format!(
                "the request body did not arrive within {} s",
                timeout.as_secs_f64()
            ),
        );
        response
            .headers_mut()
            .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
        return Err(response);
    };
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error)
            if error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            METRICS.reject(Rejection::BodyTooLarge);
            Err(rpc_error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                codes::INVALID_REQUEST,
                &format!("request body exceeds the limit of {limit} bytes"),
            ))
        }
        Err(_) => Err(rpc_error_response(
            StatusCode::BAD_REQUEST,
            codes::INVALID_REQUEST,
            "the request body could not be read",
        )),
    }
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
        return session_not_found();
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
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut response = json_response(
        status,
        &jsonrpc::error_response(id, error.code(), &error.to_string(), None),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            HeaderValue::from(SESSION_LIMIT_RETRY_AFTER),
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
        return session_not_found();
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

/// Wait for the final response; notifications cannot travel on a JSON response and are
/// dropped (clients that want them accept `text/event-stream`).
async fn json_reply(mut replies: mpsc::Receiver<Outgoing>, era: Era) -> Response<Body> {
    while let Some(message) = replies.recv().await {
        if is_final(&message) {
            return json_final(message, era);
        }
    }
    // The request was cancelled (legacy `notifications/cancelled`): nothing to answer.
    accepted()
}

fn json_final(message: Outgoing, era: Era) -> Response<Body> {
    let status = status_for(&message, era);
    let mut response = json_text_response(status, message.json);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            HeaderValue::from(SESSION_LIMIT_RETRY_AFTER),
        );
    }
    response
}

/// Whether `message` is the response that ends its request (the sink is the request's own).
fn is_final(message: &Outgoing) -> bool {
    matches!(message.kind, Kind::Response { .. })
}

/// The HTTP status of a JSON-RPC reply. On 2026-07-28 protocol-level errors carry their own
/// status (the specification's table); tool-level errors stay `200`.
fn status_for(message: &Outgoing, era: Era) -> StatusCode {
    let modern = era.is_inline();
    let Some(code) = message.error_code() else {
        return StatusCode::OK;
    };
    match code {
        codes::SESSION_LIMIT => {
            METRICS.reject(Rejection::SessionLimit);
            StatusCode::SERVICE_UNAVAILABLE
        }
        codes::METHOD_NOT_FOUND if modern => StatusCode::NOT_FOUND,
        // `-32602` for missing metadata is answered before dispatch; any other `-32602` is
        // about the call itself and stays 200.
        codes::HEADER_MISMATCH
        | codes::UNSUPPORTED_PROTOCOL_VERSION
        | codes::MISSING_REQUIRED_CLIENT_CAPABILITY
        | codes::INVALID_REQUEST
        | codes::PARSE_ERROR
            if modern =>
        {
            StatusCode::BAD_REQUEST
        }
        _ => StatusCode::OK,
    }
}

/// A request-scoped SSE response: every message for the request as an event, keep-alive
/// comments in between, closed after the final response. When the client goes away the
/// forwarding task stops and drops the reply channel, which cancels the request.
fn event_stream(
    mut replies: mpsc::Receiver<Outgoing>,
    keepalive: Duration,
    first: Option<Outgoing>,
) -> Response<Body> {
    let (chunks, body) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        if let Some(first) = first {
            let last = is_final(&first);
            if chunks.send(sse_event(&first)).await.is_err() || last {
                return;
            }
        }
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
        loop {
            tokio::select! {
                message = replies.recv() => {
                    let Some(message) = message else { break };
                    let last = is_final(&message);
                    if chunks.send(sse_event(&message)).await.is_err() || last {
                        break;
                    }
                }
                _ = ticker.tick() => {
                    if chunks.send(Bytes::from_static(b": keepalive\n\n")).await.is_err() {
                        break;
                    }
                }
                () = chunks.closed() => break,
            }
        }
    });
    let mut response = Response::new(Body::stream(body));
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-transform"),
    );
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

fn sse_event(message: &Outgoing) -> Bytes {
    let mut event = Vec::with_capacity(message.json.len() + 24);
    event.extend_from_slice(b"event: message\ndata: ");
    event.extend_from_slice(&message.json);
    event.extend_from_slice(b"\n\n");
    Bytes::from(event)
}

fn accepted() -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::ACCEPTED;
    response
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

/// A header's value, decoding the `=?base64?…?=` form used for non-ASCII values.
fn header(headers: &HeaderMap, name: &str) -> Result<Option<String>, String> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| format!("the {name} header has invalid characters"))?
        .trim_matches([' ', '\t']);
    match text
        .strip_prefix("=?base64?")
        .and_then(|rest| rest.strip_suffix("?="))
    {
        Some(encoded) => base64_decode(encoded)
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .map(Some)
            .ok_or_else(|| format!("the {name} header has a malformed base64 value")),
        None => Ok(Some(text.to_string())),
    }
}

/// The 2026-07-28 header rules: each header that mirrors the body must agree with it.
/// `header_params` are the called tool's `x-mcp-header` arguments.
fn check_modern_headers(
    headers: &HeaderMap,
    message: &Message,
    version: &str,
    header_params: &[(String, String)],
) -> Result<(), String> {
    let Some((method, params, is_request)) = message.method_and_params() else {
        return Ok(());
    };
    match header(headers, HEADER_METHOD)? {
        None if is_request => return Err("missing Mcp-Method header".into()),
        Some(value) if value != method => {
            return Err(format!(
                "Mcp-Method header {value:?} does not match the body's method {method:?}"
            ));
        }
        _ => {}
    }
    let meta_version = params
        .and_then(|params| params.get("_meta"))
        .and_then(|meta| meta.get(META_PROTOCOL_VERSION))
        .and_then(Value::as_str);
    if let Some(meta_version) = meta_version
        && meta_version != version
    {
        return Err(format!(
            "MCP-Protocol-Version header {version:?} does not match the request's _meta version {meta_version:?}"
        ));
    }
    if !is_request {
        return Ok(());
    }
    let named = match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    };
    if let Some(field) = named {
        let body_name = params
            .and_then(|params| params.get(field))
            .and_then(Value::as_str);
        match (header(headers, HEADER_NAME)?, body_name) {
            (None, _) => return Err("missing Mcp-Name header".into()),
            (Some(value), Some(body)) if value == body => {}
            (Some(value), _) => {
                return Err(format!(
                    "Mcp-Name header {value:?} does not match the body's {field}"
                ));
            }
        }
    }
    let arguments = params.and_then(|params| params.get("arguments"));
    for (argument, header_name) in header_params {
        let name = format!("mcp-param-{}", header_name.to_ascii_lowercase());
        let body = arguments.and_then(|arguments| arguments.get(argument));
        let body_text = match body {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(value @ (Value::Number(_) | Value::Bool(_))) => Some(value.to_string()),
            // A structured value cannot be mirrored; the argument's own validation reports it.
            Some(_) => continue,
        };
        match (header(headers, &name)?, body_text) {
            (None, None) => {}
            (Some(value), Some(body)) if value == body => {}
            (None, Some(_)) => {
                return Err(format!(
                    "the {argument} argument needs the Mcp-Param-{header_name} header"
                ));
            }
            (Some(_), _) => {
                return Err(format!(
                    "Mcp-Param-{header_name} header does not match the {argument} argument"
                ));
            }
        }
    }
    Ok(())
}

/// Standard base64 with its padding to bytes; anything malformed is `None`.
fn base64_decode(encoded: &str) -> Option<Vec<u8>> {
    if !encoded.len().is_multiple_of(4) {
        return None;
    }
    let data = encoded.trim_end_matches('=');
    if encoded.len() - data.len() > 2 {
        return None;
    }
    let mut bytes = Vec::with_capacity(encoded.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for character in data.bytes() {
        let value = match character {
            b'A'..=b'Z' => character - b'A',
            b'a'..=b'z' => character - b'a' + 26,
            b'0'..=b'9' => character - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base64_header_values_decode() {
        assert_eq!(base64_decode("aGVsbG8=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(base64_decode("w6k=").as_deref(), Some("é".as_bytes()));
        assert_eq!(base64_decode("SGVsbG8"), None, "missing padding");
        assert_eq!(base64_decode("SGVs!!!bG8="), None);
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn call(arguments: Value) -> Message {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": arguments, "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}});
        Message::parse(&serde_json::to_vec(&body).unwrap()).unwrap()
    }

    #[test]
    fn modern_headers_must_mirror_the_body() {
        let params = [("session".to_string(), "Session".to_string())];
        let good = headers(&[
            ("mcp-method", "tools/call"),
            ("mcp-name", " echo "),
            ("mcp-param-session", "n.1"),
        ]);
        assert!(
            check_modern_headers(
                &good,
                &call(json!({"session": "n.1"})),
                "2026-07-28",
                &params
            )
            .is_ok()
        );
        let encoded = headers(&[
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?ZWNobw==?="),
            ("mcp-param-session", "n.1"),
        ]);
        assert!(
            check_modern_headers(
                &encoded,
                &call(json!({"session": "n.1"})),
                "2026-07-28",
                &params
            )
            .is_ok()
        );
        for (bad, arguments) in [
            (headers(&[("mcp-name", "echo")]), json!({})),
            (
                headers(&[("mcp-method", "tools/list"), ("mcp-name", "echo")]),
                json!({}),
            ),
            (headers(&[("mcp-method", "tools/call")]), json!({})),
            (
                headers(&[("mcp-method", "tools/call"), ("mcp-name", "other")]),
                json!({}),
            ),
            (
                headers(&[("mcp-method", "tools/call"), ("mcp-name", "echo")]),
                json!({"session": "n.1"}),
            ),
            (
                headers(&[
                    ("mcp-method", "tools/call"),
                    ("mcp-name", "echo"),
                    ("mcp-param-session", "n.2"),
                ]),
                json!({"session": "n.1"}),
            ),
            (
                headers(&[
                    ("mcp-method", "tools/call"),
                    ("mcp-name", "echo"),
                    ("mcp-param-session", "n.2"),
                ]),
                json!({}),
            ),
        ] {
            assert!(
                check_modern_headers(&bad, &call(arguments.clone()), "2026-07-28", &params)
                    .is_err(),
                "{bad:?} {arguments}"
            );
        }
        let wrong_version = headers(&[("mcp-method", "tools/call"), ("mcp-name", "echo")]);
        assert!(
            check_modern_headers(&wrong_version, &call(json!({})), "2025-11-25", &params).is_err()
        );
    }
}
