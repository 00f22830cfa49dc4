//! The MCP front door, shared by every transport: one [`Connection`] per client conversation —
//! a stdio stream, a legacy HTTP session, or the 2026-07-28 context every HTTP client of one
//! principal shares.
//!
//! Each message is parsed first ([`request`], pure) and then applied ([`dispatch`]). A request's era is
//! decided on its own ([`era`]), never by assuming the first message was `initialize`.
//! Requests that need a worker or the catalog run as tasks of their own, tracked
//! ([`tasks`]) so shutdown drains them with a deadline; a slow session never holds up another.
//! Each such task owns its worker call, so a deadline, a client's `notifications/cancelled`
//! ([`queue`]) or a closed response stream simply drops the call, which cancels it in the
//! worker. The pieces: [`default_session`], the session tools ([`session_tools`]), forwarding
//! to workers ([`forward`]) and the answers themselves ([`reply`]). Replies go out through a
//! bounded [`Sink`].

mod default_session;
mod dispatch;
pub mod era;
mod forward;
mod queue;
pub mod reply;
pub mod request;
mod session_tools;
pub mod tasks;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulkhead_protocol::codes;
use bulkhead_protocol::frame::Frame;
use bulkhead_protocol::jsonrpc;
use bulkhead_protocol::writer::FrameWriter;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::catalog::{Catalog, CatalogData};
use crate::credentials::CredentialStore;
use crate::principal::Principal;
use crate::session::{Registry, Session, SessionError};

use default_session::DefaultSession;
use queue::RequestQueue;
use reply::{Outgoing, RpcError};
use request::{Incoming, Notification};
use tasks::Tasks;

/// Where a request's notifications, relayed server requests and final response go: stdout for
/// stdio, the request's own response stream for HTTP. A closed sink means the client went away,
/// which cancels the request. It is bounded: a client that reads slowly makes the request's
/// task wait, which leaves the worker's messages in the call's own bounded queue
/// (`worker/outbox.rs`), which holds the worker back, then drops what may be dropped.
#[derive(Clone)]
pub enum Sink {
    /// A transport's one output stream (stdio): each message is written by the task that
    /// produced it, which waits while the reader is behind.
    Stream(Arc<FrameWriter>),
    /// One request's own response (HTTP): a bounded queue its body reads.
    Request(mpsc::Sender<Outgoing>),
}

impl Sink {
    /// Send `message`; false if the client went away.
    pub async fn send(&self, message: Outgoing) -> bool {
        match self {
            Sink::Stream(writer) => writer.send(message.into_frame()).await.is_ok(),
            Sink::Request(queue) => queue.send(message).await.is_ok(),
        }
    }

    /// Resolves when the client went away.
    pub async fn closed(&self) {
        match self {
            Sink::Stream(writer) => writer.closed().await,
            Sink::Request(queue) => queue.closed().await,
        }
    }
}

/// State shared by every connection of one supervisor.
pub struct Frontend {
    pub registry: Arc<Registry>,
    pub catalog: Catalog,
    /// Per-call deadline for calls forwarded to a worker.
    pub call_timeout: Duration,
    /// Operator-provisioned credentials for `credential_ref`.
    pub credentials: CredentialStore,
    /// Every task answering a request, for the drain at shutdown.
    pub tasks: Tasks,
    /// Fired when a reload's drain deadline passes: every call still waiting for its worker is
    /// answered with the retryable `RELOADING` error and cancelled in the worker.
    pub reload_cutoff: tokio::sync::Notify,
}

/// What `initialize` settled for a client of the older lifecycle.
#[derive(Default)]
struct Lifecycle {
    /// The version `initialize` negotiated, if the client used it.
    negotiated: Option<&'static str>,
    /// The capabilities the client declared (sampling, elicitation, roots).
    client_capabilities: Value,
}

/// One client conversation.
pub struct Connection {
    frontend: Arc<Frontend>,
    principal: Principal,
    lifecycle: Mutex<Lifecycle>,
    default_session: DefaultSession,
    queue: RequestQueue,
    /// Where messages with no request of their own go (stdout for stdio).
    out: Sink,
}

impl Connection {
    /// One client's conversation (a stdio stream, a legacy HTTP session): its request ids are
    /// its own, so `notifications/cancelled` cancels by id.
    pub fn new(frontend: Arc<Frontend>, principal: Principal, out: Sink) -> Arc<Self> {
        Self::build(frontend, principal, out, RequestQueue::new(true))
    }

    /// The context every 2026-07-28 HTTP request of one principal shares (its default
    /// session). Any number of clients speak through it, each numbering its requests its own
    /// way, so an id names no request here: a request is cancelled only by closing its own
    /// response stream — which is what 2026-07-28 Streamable HTTP prescribes, defining no
    /// `notifications/cancelled` for that transport — and such a notification is ignored.
    pub fn shared(frontend: Arc<Frontend>, principal: Principal, out: Sink) -> Arc<Self> {
        Self::build(frontend, principal, out, RequestQueue::new(false))
    }

    fn build(
        frontend: Arc<Frontend>,
        principal: Principal,
        out: Sink,
        queue: RequestQueue,
    ) -> Arc<Self> {
        Arc::new(Self {
            frontend,
            principal,
            lifecycle: Mutex::default(),
            default_session: DefaultSession::default(),
            queue,
            out,
        })
    }

    /// Handle one frame from the client. Waits while the client's output is full, so a client
    /// that does not read is not read either.
    pub async fn on_frame(self: &Arc<Self>, frame: Frame) {
        let message = match frame {
            Frame::Oversized { bytes, limit } => jsonrpc::error_response(
                &Value::Null,
                codes::INVALID_REQUEST,
                &format!(
                    "message of {bytes} bytes exceeds the frame limit of {limit} bytes (--max-frame-bytes) and was discarded"
                ),
                Some(json!({"limit": limit, "size": bytes})),
            ),
            Frame::Line(line) => match Incoming::parse(&line) {
                Ok(incoming) => return self.on_incoming(incoming, &self.out).await,
                Err(error) => error.to_response(),
            },
        };
        self.out.send(Outgoing::from_value(&message)).await;
    }

    /// Apply one parsed message; anything it produces for the client goes to `sink`. Requests
    /// that need a worker run as tasks of their own; this waits only to hand over an answer it
    /// has at once.
    pub async fn on_incoming(self: &Arc<Self>, incoming: Incoming, sink: &Sink) {
        match incoming {
            Incoming::Request { id, request } => self.on_request(id, request, sink).await,
            Incoming::Notification(Notification::Cancelled { request_id, .. }) => {
                self.queue.cancel(request_id.as_ref());
            }
            Incoming::Notification(Notification::Other { .. }) => {}
            Incoming::Answer { id, answer } => self.queue.answer(&id, answer),
        }
    }

    async fn catalog(&self) -> Result<Arc<CatalogData>, RpcError> {
        self.frontend.catalog.data().await.map_err(|error| {
            RpcError::new(
                codes::WORKER_UNAVAILABLE,
                format!("cannot read the tool catalog from a worker: {error}"),
            )
        })
    }

    fn lifecycle(&self) -> std::sync::MutexGuard<'_, Lifecycle> {
        self.lifecycle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The era of one request of this connection.
    fn era(&self, params: Option<&Value>) -> Result<bulkhead_protocol::Era, RpcError> {
        era::of_request(params, self.lifecycle().negotiated.is_some())
    }

    /// Negotiate the `initialize` version now, so requests that follow at once see it.
    fn negotiate(&self, params: Option<&Value>) -> Result<&'static str, RpcError> {
        let version = era::negotiate(params)?;
        let mut lifecycle = self.lifecycle();
        lifecycle.negotiated = Some(version);
        lifecycle.client_capabilities = params
            .and_then(|params| params.get("capabilities"))
            .cloned()
            .unwrap_or(Value::Null);
        Ok(version)
    }

    /// Whether the client declared `capability` in `initialize`.
    fn declared(&self, capability: &str) -> bool {
        self.lifecycle()
            .client_capabilities
            .get(capability)
            .is_some_and(|value| !value.is_null())
    }

    /// The session a call goes to, and a notice if the default session had to be replaced.
    async fn resolve(
        &self,
        handle: Option<&str>,
    ) -> Result<(Arc<Session>, Option<String>), SessionError> {
        let registry = &self.frontend.registry;
        match handle {
            Some(handle) => Ok((registry.get(handle, &self.principal)?, None)),
            None => self.default_session.get(registry, &self.principal).await,
        }
    }

    /// Start this connection's default session now (a legacy HTTP session gets its worker at
    /// `initialize`).
    pub async fn open_default_session(&self) -> Result<(), SessionError> {
        self.resolve(None).await.map(|_| ())
    }

    /// End this connection's default session, if it has one (legacy HTTP `DELETE`).
    pub async fn close_default_session(&self) {
        self.default_session.close(&self.frontend.registry).await;
    }

    /// Whether the default session ended for good (closed, expired, evicted) rather than
    /// crashed; a legacy HTTP session whose worker ended so is over.
    pub async fn default_session_ended(&self) -> bool {
        self.default_session
            .ended(&self.frontend.registry, &self.principal)
            .await
    }

    /// The principal this connection acts for.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }
}

/// What one connection settled, as the next image takes it over on a reload
/// (ARCHITECTURE.md, *Upgrading in place*).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ConnectionRecord {
    /// The version `initialize` negotiated, if the client used it.
    pub negotiated: Option<String>,
    pub client_capabilities: Value,
    /// The handle of the connection's default session, if it has one.
    pub default_session: Option<String>,
}

impl Connection {
    /// This connection's state, for a reload; taken while no request of it runs.
    pub fn record(&self) -> ConnectionRecord {
        let lifecycle = self.lifecycle();
        ConnectionRecord {
            negotiated: lifecycle.negotiated.map(str::to_string),
            client_capabilities: lifecycle.client_capabilities.clone(),
            default_session: self.default_session.handle(),
        }
    }

    /// Take over `record` (a reload): the negotiated version, the client's capabilities and
    /// the default session, if it is still live.
    pub fn restore(&self, record: &ConnectionRecord) {
        {
            let mut lifecycle = self.lifecycle();
            lifecycle.negotiated = record.negotiated.as_deref().and_then(|version| {
                bulkhead_protocol::SUPPORTED_PROTOCOL_VERSIONS
                    .iter()
                    .copied()
                    .find(|supported| *supported == version)
            });
            lifecycle.client_capabilities = record.client_capabilities.clone();
        }
        if let Some(handle) = &record.default_session
            && let Some(session) = self.frontend.registry.find(handle)
        {
            self.default_session.set(session);
        }
    }
}
