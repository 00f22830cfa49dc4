//! A loopback Alpaca: Alpaca's Trading API v2 and Market Data API, in the shapes its OpenAPI
//! documents give, served from the `paper` engine itself.
//!
//! Each account (an API key and secret) is a [`PaperBroker`]; a request is authenticated by
//! Alpaca's two headers, turned into a call on that broker through the [`Broker`] trait, and
//! its answer (or refusal) written back as Alpaca writes it. So the same scenario run against
//! `paper` and against `alpaca-paper` pointed here exercises the whole Alpaca adapter — its
//! requests, its mapping both ways, its error handling — against the engine it must agree with.
//!
//! Failures are injected one request at a time ([`Injection`]): a status instead of an answer,
//! a rate limit with a reset time, an answer after the order was accepted that is an error, is
//! late or never comes (the connection is dropped), or an error body that echoes the request's
//! secret. Injections are made in-process ([`StandIn::inject`]) or, for the stand-in binary,
//! with `POST /_standin/faults` (and `GET /_standin/orders?key=KEY` counts an account's
//! orders). It listens on 127.0.0.1 only.

mod json;
mod routes;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bulkhead_worker::broker::Credentials;
use bulkhead_worker::broker::paper::{PaperBroker, PaperConfig};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, oneshot};

pub use json::{alpaca_symbol, paper_symbol};

/// Where a test in another process injects a fault.
const CONTROL_FAULTS: &str = "/_standin/faults";
/// Where a test in another process counts an account's orders.
const CONTROL_ORDERS: &str = "/_standin/orders";
/// Largest request body the stand-in reads: orders are a few hundred bytes.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// What goes wrong with one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Answer `status` with Alpaca's error body, without handling the request.
    Status { status: u16, message: String },
    /// Answer 429 with an `X-RateLimit-Reset` this many seconds from now.
    RateLimited { reset_in_secs: i64 },
    /// Handle the request (accept the order), then answer `status` instead of the result.
    StatusAfterHandling { status: u16 },
    /// Handle the request, then wait this long before answering.
    DelayAfterHandling { millis: u64 },
    /// Handle the request, then close the connection without answering.
    DropAfterHandling,
    /// Answer 422 with a message that repeats the request's key and secret headers.
    EchoSecret,
}

/// A fault for the next request with this method and path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Injection {
    pub method: String,
    pub path: String,
    pub fault: Fault,
}

impl Injection {
    /// A fault for the next order placement (`POST /v2/orders`).
    pub fn on_order(fault: Fault) -> Self {
        Self {
            method: "POST".into(),
            path: "/v2/orders".into(),
            fault,
        }
    }
}

/// One account: its secret and its paper books.
struct Account {
    secret: String,
    credentials: Credentials,
    broker: PaperBroker,
}

/// Everything the stand-in holds, behind one lock.
struct State {
    accounts: BTreeMap<String, Account>,
    faults: Vec<Injection>,
}

/// A running stand-in; stops when dropped.
pub struct StandIn {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    runtime: tokio::runtime::Handle,
    _stop: oneshot::Sender<()>,
}

impl StandIn {
    /// Serves the accounts `(key, secret)` on 127.0.0.1, on a port of the kernel's choosing,
    /// each a paper account seeded with `seed` (as `bulkhead --paper-seed`).
    pub fn start(accounts: &[(&str, &str)], seed: Option<u64>) -> Self {
        let mut config = PaperConfig::default();
        if let Some(seed) = seed {
            config.seed = seed;
        }
        let accounts = accounts
            .iter()
            .map(|&(key, secret)| {
                let account = Account {
                    secret: secret.to_owned(),
                    credentials: Credentials::new(
                        SecretString::from(key.to_owned()),
                        SecretString::from(secret.to_owned()),
                    ),
                    broker: PaperBroker::new(config.clone()),
                };
                (key.to_owned(), account)
            })
            .collect();
        let state = Arc::new(Mutex::new(State {
            accounts,
            faults: Vec::new(),
        }));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel();
        let serving = state.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("stand-in runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind the stand-in");
                let addr = listener.local_addr().expect("stand-in address");
                let _ = ready_tx.send((addr, tokio::runtime::Handle::current()));
                tokio::select! {
                    () = accept_loop(listener, serving) => {}
                    _ = stopped => {}
                }
            });
        });
        let (addr, runtime) = ready_rx.recv().expect("the stand-in started");
        Self {
            addr,
            state,
            runtime,
            _stop: stop,
        }
    }

    /// `http://127.0.0.1:PORT`, for `--broker-url alpaca-paper.trading=…` and `.data=…`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `--broker-url` flags that point `alpaca-paper` here.
    pub fn broker_url_args(&self) -> Vec<String> {
        vec![
            format!("--broker-url=alpaca-paper.trading={}", self.url()),
            format!("--broker-url=alpaca-paper.data={}", self.url()),
        ]
    }

    /// Makes the next request matching `injection` fail its way.
    pub fn inject(&self, injection: Injection) {
        let state = self.state.clone();
        self.runtime
            .block_on(async move { state.lock().await.faults.push(injection) });
    }

    /// How many orders (entries, not legs) the account of `key` holds, in every status.
    pub fn order_count(&self, key: &str) -> usize {
        let state = self.state.clone();
        let key = key.to_owned();
        self.runtime
            .block_on(async move { routes::order_count(&mut *state.lock().await, &key).await })
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, state: Arc<Mutex<State>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = state.clone();
                async move { handle(state, request).await }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            // A dropped connection (the fault) ends here with an error, on purpose.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

/// An answer, or a connection to drop without one.
#[derive(Debug)]
pub struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for Dropped {}

/// One parsed request: what the routes need.
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub key: Option<String>,
    pub secret: Option<String>,
    pub body: Vec<u8>,
}

/// An answer: status, body and extra headers.
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
    pub headers: Vec<(&'static str, String)>,
}

impl Answer {
    pub fn ok(body: serde_json::Value) -> Self {
        Self {
            status: 200,
            body,
            headers: Vec::new(),
        }
    }

    /// Alpaca's error body: `{"code": …, "message": …}`.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        let code = u64::from(status) * 100_000;
        Self {
            status,
            body: serde_json::json!({"code": code, "message": message.into()}),
            headers: Vec::new(),
        }
    }
}

async fn handle(
    state: Arc<Mutex<State>>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let call = match read_call(request).await {
        Some(call) => call,
        None => return Ok(respond(Answer::error(400, "unreadable request"))),
    };
    if let Some(answer) = control(&state, &call).await {
        return Ok(respond(answer));
    }
    let fault = take_fault(&state, &call).await;
    let answer = match fault {
        Some(Fault::Status { status, message }) => Answer::error(status, message),
        Some(Fault::RateLimited { reset_in_secs }) => {
            let mut answer = Answer::error(429, "too many requests");
            let reset = chrono::Utc::now().timestamp() + reset_in_secs;
            answer
                .headers
                .push(("X-RateLimit-Reset", reset.to_string()));
            answer.headers.push(("X-RateLimit-Remaining", "0".into()));
            answer
        }
        Some(Fault::EchoSecret) => Answer::error(
            422,
            format!(
                "invalid request with headers APCA-API-KEY-ID: {} APCA-API-SECRET-KEY: {}",
                call.key.as_deref().unwrap_or_default(),
                call.secret.as_deref().unwrap_or_default()
            ),
        ),
        after => {
            let answer = routes::route(&state, &call).await;
            match after {
                Some(Fault::StatusAfterHandling { status }) => {
                    Answer::error(status, "internal server error")
                }
                Some(Fault::DelayAfterHandling { millis }) => {
                    tokio::time::sleep(Duration::from_millis(millis)).await;
                    answer
                }
                Some(Fault::DropAfterHandling) => return Err(Dropped),
                _ => answer,
            }
        }
    };
    Ok(respond(answer))
}

/// The stand-in's own endpoints, for a test in another process: `POST /_standin/faults` with
/// an [`Injection`] as JSON, and `GET /_standin/orders?key=KEY` for an account's order count.
async fn control(state: &Mutex<State>, call: &Call) -> Option<Answer> {
    match (call.method.as_str(), call.path.as_str()) {
        ("POST", CONTROL_FAULTS) => Some(match serde_json::from_slice(&call.body) {
            Ok(injection) => {
                state.lock().await.faults.push(injection);
                Answer::ok(serde_json::json!({"injected": true}))
            }
            Err(error) => Answer::error(400, format!("not an injection: {error}")),
        }),
        ("GET", CONTROL_ORDERS) => {
            let key = call.query.get("key").cloned().unwrap_or_default();
            let count = routes::order_count(&mut *state.lock().await, &key).await;
            Some(Answer::ok(serde_json::json!({"orders": count})))
        }
        _ => None,
    }
}

async fn take_fault(state: &Mutex<State>, call: &Call) -> Option<Fault> {
    let mut state = state.lock().await;
    let index = state
        .faults
        .iter()
        .position(|fault| fault.method == call.method && fault.path == call.path)?;
    Some(state.faults.remove(index).fault)
}

async fn read_call(request: Request<Incoming>) -> Option<Call> {
    let (parts, body) = request.into_parts();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let key = header("APCA-API-KEY-ID");
    let secret = header("APCA-API-SECRET-KEY");
    let body = http_body_util::Limited::new(body, MAX_REQUEST_BYTES)
        .collect()
        .await
        .ok()?
        .to_bytes()
        .to_vec();
    let query = parts
        .uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (percent_decode(name), percent_decode(value)))
        .collect();
    Some(Call {
        method: parts.method.as_str().to_owned(),
        path: percent_decode(parts.uri.path()),
        query,
        key,
        secret,
        body,
    })
}

fn respond(answer: Answer) -> Response<Full<Bytes>> {
    let body = if answer.status == 204 {
        Bytes::new()
    } else {
        Bytes::from(answer.body.to_string())
    };
    let mut response = Response::builder()
        .status(answer.status)
        .header("content-type", "application/json");
    for (name, value) in answer.headers {
        response = response.header(name, value);
    }
    response
        .body(Full::new(body))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// `%2F` → `/`, `+` → space: enough for the stand-in's own clients.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        index += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
