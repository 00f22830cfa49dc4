//! Operations endpoints: health, readiness, Prometheus metrics and the admin API.
//!
//! `/healthz` answers while the process serves at all; `/readyz` only once the listeners are
//! bound and the tool catalog is loaded, and no longer once draining starts. The admin API
//! (`/admin/sessions`, `/admin/sessions/<handle>`) needs the admin token and shows safe fields
//! only — handle, principal, times, worker pid, calls in flight — never arguments or
//! credentials.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::{Body, HttpState, auth, json_response, plain};
use crate::metrics::METRICS;
use crate::session::{Ended, Session};

pub fn healthz() -> Response<Body> {
    plain(StatusCode::OK, "ok\n")
}

pub fn readyz(state: &HttpState) -> Response<Body> {
    if state.ready.load(Ordering::Relaxed) {
        plain(StatusCode::OK, "ready\n")
    } else {
        plain(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

pub fn metrics(state: &HttpState) -> Response<Body> {
    let text = METRICS.render(state.frontend.registry.live_count());
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
    let presented = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(auth::bearer)
        .map(auth::digest);
    if !presented.is_some_and(|digest| auth::constant_time_eq(&digest, &expected)) {
        let mut response = plain(StatusCode::UNAUTHORIZED, "admin token required\n");
        response.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"bulkhead-admin\""),
        );
        return response;
    }
    let registry = &state.frontend.registry;
    let path = request.uri().path();
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

fn describe(state: &HttpState, session: &Session) -> Value {
    let mut fields = session.safe_fields(&state.frontend.registry.limits);
    fields.insert("tag".into(), session.tag.clone().into());
    fields.insert("principal".into(), session.principal.to_string().into());
    Value::Object(fields)
}
