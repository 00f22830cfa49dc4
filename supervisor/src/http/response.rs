//! A request's answer over HTTP: JSON when the final response comes alone and quickly, else a
//! request-scoped SSE stream that carries progress, log messages and (legacy era) the
//! worker's requests for the client, with keep-alive comments in between. On 2026-07-28 a
//! protocol-level error carries its own HTTP status; a session limit is `503` with
//! `Retry-After`.

use std::time::Duration;

use bulkhead_protocol::{Era, codes};
use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};
use tokio::sync::mpsc;

use super::{Body, json_text_response};
use crate::mcp::reply::{Kind, Outgoing};
use crate::metrics::{METRICS, Rejection};

/// Seconds a client at a session limit is told to wait.
const SESSION_LIMIT_RETRY_AFTER: u32 = 5;

/// Seconds a `503` for a refused session (`code`) tells the client to wait.
pub(super) fn retry_after(code: i64) -> u32 {
    if code == codes::NODE_DRAINING {
        crate::drain::DRAINING_RETRY_AFTER
    } else {
        SESSION_LIMIT_RETRY_AFTER
    }
}

/// Wait for the final response; notifications cannot travel on a JSON response and are
/// dropped (clients that want them accept `text/event-stream`).
pub(super) async fn json_reply(mut replies: mpsc::Receiver<Outgoing>, era: Era) -> Response<Body> {
    while let Some(message) = replies.recv().await {
        if is_final(&message) {
            return json_final(message, era);
        }
    }
    // The request was cancelled (legacy `notifications/cancelled`): nothing to answer.
    accepted()
}

pub(super) fn json_final(message: Outgoing, era: Era) -> Response<Body> {
    let status = status_for(&message, era);
    let code = message.error_code().unwrap_or_default();
    let mut response = json_text_response(status, message.json);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            HeaderValue::from(retry_after(code)),
        );
    }
    response
}

/// Whether `message` is the response that ends its request (the sink is the request's own).
pub(super) fn is_final(message: &Outgoing) -> bool {
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
        // Refused before anything ran: retryable, on any node.
        codes::NODE_DRAINING => {
            METRICS.reject(Rejection::Draining);
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
pub(super) fn event_stream(
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

pub(super) fn accepted() -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::ACCEPTED;
    response
}
