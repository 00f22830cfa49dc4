//! Operations endpoints: health, readiness, Prometheus metrics and the admin API.
//!
//! `/healthz` answers while the process serves at all; `/readyz` only once the listeners are
//! bound and the tool catalog is loaded, and no longer once the node drains or stops. `/metrics` needs
//! the metrics token when one is configured, and is otherwise served only on local listeners. The admin API
//! (`/admin/sessions`, `/admin/sessions/<handle>`, `/admin/node`, `POST /admin/drain`) needs
//! the admin token and shows safe fields only — handle, principal, times, worker pid, calls in
//! flight, the node's drain state — never arguments or credentials.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::{Body, HttpState, auth, json_response, plain};
use crate::drain::{Begun, Trigger};
use crate::metrics::METRICS;
use crate::session::{Ended, Session};

pub fn healthz() -> Response<Body> {
    plain(StatusCode::OK, "ok\n")
}

pub fn readyz(state: &HttpState) -> Response<Body> {
    if state.frontend.registry.drain().is_draining() {
        plain(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else if state.ready.load(Ordering::Relaxed) {
        plain(StatusCode::OK, "ready\n")
    } else {
        plain(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// Prometheus text. With a metrics token, only for a caller that presents it; without one,
/// only through a loopback or Unix-socket listener: a Prometheus on the same machine scrapes
/// without setup, and a listener others can reach shows nothing to strangers (session counts
/// and call rates are the operator's business).
pub fn metrics(
    state: &HttpState,
    local_listener: bool,
    request: &Request<Incoming>,
) -> Response<Body> {
    match state.config.metrics_token {
        Some(expected) if !presents_token(request, &expected) => {
            return unauthorized(
                "metrics token required\n",
                "Bearer realm=\"bulkhead-metrics\"",
            );
        }
        None if !local_listener => {
            return plain(
                StatusCode::FORBIDDEN,
                "/metrics is served only on loopback and Unix-socket listeners unless --metrics-token-file is set\n",
            );
        }
        _ => {}
    }
    let registry = &state.frontend.registry;
    let mut text = METRICS.render(registry.live_count());
    registry.drain().render_metrics(&state.node, &mut text);
    let mut response = Response::new(Body::full(text.into()));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// The admin API.
pub async fn admin(state: &Arc<HttpState>, request: Request<Incoming>) -> Response<Body> {
    let Some(expected) = state.config.admin_token else {
        return plain(
            StatusCode::NOT_FOUND,
            "the admin API is disabled (no admin token configured)\n",
        );
    };
    if !presents_token(&request, &expected) {
        return unauthorized("admin token required\n", "Bearer realm=\"bulkhead-admin\"");
    }
    let registry = &state.frontend.registry;
    let path = request.uri().path();
    match (request.method(), path) {
        (&Method::GET, "/admin/node") => {
            let described = registry
                .drain()
                .describe(&state.node, registry.live_count());
            return json_response(StatusCode::OK, &described);
        }
        (&Method::POST, "/admin/drain") => {
            let begun = registry
                .drain()
                .begin(Trigger::AdminApi, state.config.drain_deadline);
            let status = match begun {
                Begun::Started => StatusCode::ACCEPTED,
                Begun::AlreadyDraining => StatusCode::OK,
            };
            let described = registry
                .drain()
                .describe(&state.node, registry.live_count());
            return json_response(status, &described);
        }
        (_, "/admin/node" | "/admin/drain") => {
            return plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "GET /admin/node, POST /admin/drain\n",
            );
        }
        (_, "/admin/sessions") => {}
        (_, path) if path.starts_with("/admin/sessions/") => {}
        _ => return plain(StatusCode::NOT_FOUND, "not found\n"),
    }
    let handle = path
        .strip_prefix("/admin/sessions/")
        .filter(|rest| !rest.is_empty());
    match (request.method(), handle) {
        (&Method::GET, None) => {
            let sessions: Vec<Value> = registry.list().iter().map(|s| describe(state, s)).collect();
            json_response(StatusCode::OK, &json!({"sessions": sessions}))
        }
        (&Method::GET, Some(handle)) => match registry.find(handle) {
            Some(session) => json_response(StatusCode::OK, &describe(state, &session)),
            None => plain(StatusCode::NOT_FOUND, "no such session\n"),
        },
        (&Method::DELETE, Some(handle)) => match registry.find(handle) {
            Some(session) => {
                tracing::info!(session = %session.tag, "session ended by the admin API");
                registry.end(&session, Ended::Closed).await;
                json_response(StatusCode::OK, &json!({"session": handle, "ended": true}))
            }
            None => plain(StatusCode::NOT_FOUND, "no such session\n"),
        },
        _ => plain(StatusCode::METHOD_NOT_ALLOWED, "use GET or DELETE\n"),
    }
}

/// Whether the request's bearer token has the SHA-256 digest `expected` (constant time).
fn presents_token(request: &Request<Incoming>, expected: &[u8; 32]) -> bool {
    request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(auth::bearer)
        .map(auth::digest)
        .is_some_and(|digest| auth::constant_time_eq(&digest, expected))
}

fn unauthorized(text: &'static str, challenge: &'static str) -> Response<Body> {
    let mut response = plain(StatusCode::UNAUTHORIZED, text);
    response.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

fn describe(state: &HttpState, session: &Session) -> Value {
    let mut fields = session.safe_fields(&state.frontend.registry.limits);
    fields.insert("tag".into(), session.tag.clone().into());
    fields.insert("principal".into(), session.principal.to_string().into());
    Value::Object(fields)
}
