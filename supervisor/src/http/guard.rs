//! Who may ask, checked before any body is read: the `Host` allow-list (TCP only: DNS
//! rebinding) and the `Origin` allow-list on every endpoint; for `/mcp`, the caller's principal
//! (a static token, a Unix peer's uid, or an OAuth access token — never one in the query
//! string) and its rate limit.

use hyper::body::Incoming;
use hyper::header::{HeaderValue, ORIGIN};
use hyper::{Request, Response, StatusCode};

use super::{AuthMode, Body, HttpConfig, HttpState, Peer, auth, oauth, rpc_error_response};
use crate::metrics::{METRICS, Rejection};
use crate::principal::Principal;

/// The `Host` allow-list (TCP only) and the `Origin` allow-list, for every endpoint.
#[allow(clippy::result_large_err, reason = "the error is the response to send")]
pub(super) fn check_host_and_origin(
    state: &HttpState,
    peer: Peer,
    request: &Request<Incoming>,
) -> Result<(), Response<Body>> {
    let headers = request.headers();
    if matches!(peer, Peer::Tcp { .. })
        && !host_allowed(&state.config, headers.get(hyper::header::HOST))
    {
        METRICS.reject(Rejection::Host);
        return Err(rpc_error_response(
            StatusCode::FORBIDDEN,
            bulkhead_protocol::codes::INVALID_REQUEST,
            "forbidden: the Host header is not one this server answers to (DNS rebinding protection)",
        ));
    }
    if let Some(origin) = headers.get(ORIGIN)
        && !origin_allowed(&state.config, origin)
    {
        METRICS.reject(Rejection::Origin);
        return Err(rpc_error_response(
            StatusCode::FORBIDDEN,
            bulkhead_protocol::codes::INVALID_REQUEST,
            "forbidden: this Origin is not allowed",
        ));
    }
    Ok(())
}

/// Authentication and rate limit, in that order. Returns the principal, and the scopes of an
/// OAuth caller.
pub(super) async fn check_principal(
    state: &HttpState,
    peer: Peer,
    request: &Request<Incoming>,
) -> Result<(Principal, Option<oauth::Scopes>), Response<Body>> {
    let (principal, scopes) = authenticate(state, peer, request).await?;
    if let Some(retry_after) = state.rate.as_ref().and_then(|rate| rate.check(&principal)) {
        METRICS.reject(Rejection::RateLimited);
        let mut response = rpc_error_response(
            StatusCode::TOO_MANY_REQUESTS,
            bulkhead_protocol::codes::INVALID_REQUEST,
            "rate limit exceeded for this principal; retry later",
        );
        response
            .headers_mut()
            .insert(hyper::header::RETRY_AFTER, HeaderValue::from(retry_after));
        return Err(response);
    }
    Ok((principal, scopes))
}

/// The caller's principal: a static token, else the Unix peer's uid where allowed, else an
/// OAuth access token. A token in the query string is refused whatever else is sent.
async fn authenticate(
    state: &HttpState,
    peer: Peer,
    request: &Request<Incoming>,
) -> Result<(Principal, Option<oauth::Scopes>), Response<Body>> {
    if oauth::has_query_token(request.uri()) {
        METRICS.reject(Rejection::Unauthorized);
        return Err(match &state.oauth {
            Some(oauth) => oauth.unauthorized(true),
            None => unauthorized(Some("invalid_request")),
        });
    }
    let token = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(auth::bearer);
    let peer_uid = match peer {
        Peer::Unix { uid } => uid,
        Peer::Tcp { .. } => None,
    };
    let principal = match &state.config.auth {
        AuthMode::None => Some(Principal::from(auth::ANONYMOUS)),
        AuthMode::UnixPeerUid => peer_uid.map(auth::uid_principal),
        AuthMode::Tokens {
            tokens,
            unix_peer_uid,
        } => match token {
            Some(token) => tokens.authenticate(token),
            None if *unix_peer_uid => peer_uid.map(auth::uid_principal),
            None => None,
        },
    };
    if let Some(principal) = principal {
        return Ok((principal, None));
    }
    let refused = match (&state.oauth, token) {
        (Some(oauth), Some(token)) => match oauth.authenticate(token).await {
            Ok((principal, scopes)) => return Ok((principal, Some(scopes))),
            Err(response) => response,
        },
        (Some(oauth), None) => oauth.unauthorized(false),
        (None, token) => unauthorized(token.map(|_| "invalid_token")),
    };
    METRICS.reject(Rejection::Unauthorized);
    Err(refused)
}

/// `401` when only static tokens are accepted, with the RFC 6750 error code if there is one.
fn unauthorized(error: Option<&'static str>) -> Response<Body> {
    let mut response = rpc_error_response(
        StatusCode::UNAUTHORIZED,
        bulkhead_protocol::codes::INVALID_REQUEST,
        "unauthorized: send Authorization: Bearer <token>",
    );
    let challenge = match error {
        Some(error) => format!("Bearer realm=\"bulkhead\", error=\"{error}\""),
        None => "Bearer realm=\"bulkhead\"".to_string(),
    };
    if let Ok(challenge) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(hyper::header::WWW_AUTHENTICATE, challenge);
    }
    response
}

const LOOPBACK_HOSTS: [&str; 4] = ["localhost", "127.0.0.1", "[::1]", "::1"];

fn host_name(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .split_once(']')
            .map_or(authority, |(host, _)| &authority[..=host.len()]);
    }
    authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
}

fn host_allowed(config: &HttpConfig, host: Option<&HeaderValue>) -> bool {
    let Some(host) = host.and_then(|host| host.to_str().ok()) else {
        return false;
    };
    let name = host_name(host).to_ascii_lowercase();
    LOOPBACK_HOSTS.contains(&name.as_str())
        || config
            .allowed_hosts
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(&name))
}

fn origin_allowed(config: &HttpConfig, origin: &HeaderValue) -> bool {
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if config
        .allowed_origins
        .iter()
        .any(|allowed| allowed == origin)
    {
        return true;
    }
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    LOOPBACK_HOSTS.contains(&host_name(rest).to_ascii_lowercase().as_str())
}
