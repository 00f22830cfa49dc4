//! The MCP front door, shared by every transport: lifecycle and version negotiation, the tool
//! catalog, the session tools, and routing `tools/call` to the right session's worker.
//!
//! A [`Connection`] is one client conversation (one stdio stream). It never assumes the first
//! message is `initialize`: each request's protocol era is decided on its own
//! ([`Connection::era`]) — a 2026-07-28 request carries its version in `_meta`, a legacy request
//! relies on the version `initialize` negotiated, and a request with neither gets an error
//! saying which to send. Requests that need a worker run as their own task, so a slow session
//! never holds up another; each such task owns its [`crate::worker::Call`], so a deadline or a
//! client's `notifications/cancelled` simply drops the call, which cancels it in the worker.
//! Replies go out through one bounded channel ([`Sink`]) to the transport's writer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulkhead_protocol::frame::Frame;
use bulkhead_protocol::jsonrpc::{self, Message, json_type};
use bulkhead_protocol::names::{
    META_CLIENT_CAPABILITIES, META_PROTOCOL_VERSION, META_SERVER_INFO, META_SUBSCRIPTION_ID,
    SESSION_ARGUMENT, SESSION_CLOSE, SESSION_INFO, SESSION_OPEN,
};
use bulkhead_protocol::{
    Era, META_PREFIX, META_RESOLVED_CREDENTIAL, NEWEST_INITIALIZE_VERSION,
    SUPPORTED_PROTOCOL_VERSIONS, codes, is_supported_protocol_version,
};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::catalog::{Catalog, CatalogData};
use crate::credentials::CredentialStore;
use crate::metrics::{CallOutcome, METRICS};
use crate::principal::Principal;
use crate::session::{Registry, Session, SessionError};
use crate::worker::{CallEvent, WorkerHandle};
use bulkhead_protocol::clock::rfc3339;
use std::sync::atomic::Ordering;

/// Result `_meta` key under which Bulkhead tells a caller something about its session.
pub const META_NOTICE: &str = "io.bulkhead/notice";

/// The built-in worker's login tool: its `credential_ref` is resolved here, for the caller's
/// principal, so the secret never passes through the model.
const BROKER_LOGIN: &str = "broker_login";
const CREDENTIAL_REF: &str = "credential_ref";

/// How long a 2026-07-28 client may cache `tools/list` and `server/discover`: the catalog is
/// fixed for the supervisor's lifetime, but a restart with another worker may change it.
const CATALOG_TTL_MS: u64 = 5 * 60 * 1000;

const INSTRUCTIONS: &str = "Every session runs in its own process. Calls without a `session` argument use this connection's default session; call session_open for another isolated session and pass its handle as `session`.";

/// Where a request's notifications, relayed server requests and final response go: stdout for
/// stdio, the request's own response stream for HTTP. A closed sink means the client went away,
/// which cancels the request. It is bounded: a client that reads slowly makes the request's
/// task wait, which leaves the worker's messages in the call's own bounded queue
/// (`worker/outbox.rs`), which holds the worker back, then drops what may be dropped.
pub type Sink = mpsc::Sender<Value>;

/// State shared by every connection of one supervisor.
pub struct Frontend {
    pub registry: Arc<Registry>,
    pub catalog: Catalog,
    /// Per-call deadline for calls forwarded to a worker.
    pub call_timeout: Duration,
    /// Operator-provisioned credentials for `credential_ref`.
    pub credentials: CredentialStore,
}

/// The right to have one request in flight in a session's worker (`--max-in-flight`).
type InFlightPermit = tokio::sync::OwnedSemaphorePermit;

/// A JSON-RPC error to send back.
#[derive(Debug)]
struct RpcError {
    code: i64,
    message: String,
    data: Option<Value>,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_PARAMS, message)
    }
}

impl From<SessionError> for RpcError {
    fn from(error: SessionError) -> Self {
        Self::new(error.code(), error.to_string())
    }
}

/// One client conversation.
pub struct Connection {
    frontend: Arc<Frontend>,
    principal: Principal,
    /// The version `initialize` negotiated, if the client used it.
    negotiated: Mutex<Option<String>>,
    /// The capabilities the client declared in `initialize` (sampling, elicitation, roots).
    client_capabilities: Mutex<Value>,
    default_session: tokio::sync::Mutex<Option<Arc<Session>>>,
    /// Whether one client speaks on this connection, so its request ids name its requests
    /// and `notifications/cancelled` may cancel by id (see [`Connection::shared`]).
    cancel_by_id: bool,
    /// Forwarded requests in flight, by the client's id (as JSON text), for cancellation; only
    /// when `cancel_by_id`.
    pending: Mutex<HashMap<String, CancellationToken>>,
    /// Requests a worker sent to the client, by the id the client sees, awaiting its answer.
    relayed: Mutex<HashMap<String, Relayed>>,
    next_relay_id: std::sync::atomic::AtomicU64,
    /// Where messages with no request of their own go (stdout for stdio).
    out: Sink,
}

/// A worker's request that was relayed to the client.
struct Relayed {
    worker: WorkerHandle,
    worker_request_id: Value,
}

impl Connection {
    /// One client's conversation (a stdio stream, a legacy HTTP session): its request ids are
    /// its own, so `notifications/cancelled` cancels by id.
    pub fn new(frontend: Arc<Frontend>, principal: Principal, out: Sink) -> Arc<Self> {
        Self::build(frontend, principal, out, true)
    }

    /// The context every 2026-07-28 HTTP request of one principal shares (its default
    /// session). Any number of clients speak through it, each numbering its requests its own
    /// way, so an id names no request here: a request is cancelled only by closing its own
    /// response stream — which is what 2026-07-28 Streamable HTTP prescribes, defining no
    /// `notifications/cancelled` for that transport — and such a notification is ignored.
    pub fn shared(frontend: Arc<Frontend>, principal: Principal, out: Sink) -> Arc<Self> {
        Self::build(frontend, principal, out, false)
    }

    fn build(
        frontend: Arc<Frontend>,
        principal: Principal,
        out: Sink,
        cancel_by_id: bool,
    ) -> Arc<Self> {
        Arc::new(Self {
            frontend,
            principal,
            negotiated: Mutex::new(None),
            client_capabilities: Mutex::new(Value::Null),
            default_session: tokio::sync::Mutex::new(None),
            cancel_by_id,
            pending: Mutex::new(HashMap::new()),
            relayed: Mutex::new(HashMap::new()),
            next_relay_id: std::sync::atomic::AtomicU64::new(1),
            out,
        })
    }

    /// Handle one frame from the client. Waits while the client's output is full, so a client
    /// that does not read is not read either.
    pub async fn on_frame(self: &Arc<Self>, frame: Frame) {
        match frame {
            Frame::Oversized { bytes, limit } => {
                self.send_out(jsonrpc::error_response(
                    &Value::Null,
                    codes::INVALID_REQUEST,
                    &format!(
                        "message of {bytes} bytes exceeds the frame limit of {limit} bytes (--max-frame-bytes) and was discarded"
                    ),
                    Some(json!({"limit": limit, "size": bytes})),
                ))
                .await;
            }
            Frame::Line(line) => match jsonrpc::parse_message(&line) {
                Ok(message) => self.on_message(message, &self.out).await,
                Err(error) => self.send_out(error.to_response()).await,
            },
        }
    }

    /// Handle one message; anything it produces for the client goes to `sink`. Requests that
    /// need a worker run as tasks of their own; this waits only to hand over an answer it has
    /// at once.
    pub async fn on_message(self: &Arc<Self>, message: Message, sink: &Sink) {
        match message {
            Message::Request { id, method, params } => {
                self.on_request(id, &method, params, sink).await;
            }
            Message::Notification { method, params } => self.on_notification(&method, params),
            Message::Response { id, result } => {
                self.relay_answer(&id, jsonrpc::response(&id, result));
            }
            Message::Error { id, error } => {
                let mut answer = json!({"jsonrpc": "2.0", "id": id, "error": error});
                answer["id"] = id.clone();
                self.relay_answer(&id, answer);
            }
        }
    }

    /// Pass the client's answer to a relayed request back to the worker that asked.
    fn relay_answer(&self, id: &Value, mut answer: Value) {
        let key = id.to_string();
        let relayed = self
            .relayed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&key);
        match relayed {
            Some(relayed) => {
                answer["id"] = relayed.worker_request_id;
                relayed.worker.respond(answer);
            }
            None => tracing::debug!(%id, "ignoring a response to a request this server never sent"),
        }
    }

    /// Relay a worker's request to the client under an id of our own. Returns the key under
    /// which the client's answer is awaited, and the request as the client is to see it.
    fn relay_request(&self, worker: &WorkerHandle, mut request: Value) -> (String, Value) {
        let number = self
            .next_relay_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let outward_id = json!(format!("bulkhead-{number}"));
        let worker_request_id = std::mem::replace(&mut request["id"], outward_id.clone());
        let key = outward_id.to_string();
        self.relayed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(
                key.clone(),
                Relayed {
                    worker: worker.clone(),
                    worker_request_id,
                },
            );
        (key, request)
    }

    async fn on_request(
        self: &Arc<Self>,
        id: Value,
        method: &str,
        params: Option<Value>,
        sink: &Sink,
    ) {
        let inline = request_version(params.as_ref())
            .is_some_and(|version| Era::of_version(version).is_inline());
        let result = match method {
            // Removed in 2026-07-28: a request in that era gets method-not-found.
            "initialize"
            | "ping"
            | "logging/setLevel"
            | "resources/subscribe"
            | "resources/unsubscribe"
                if inline =>
            {
                Err(method_not_found(method))
            }
            "initialize" => match self.negotiate(params.as_ref()) {
                Ok(version) => {
                    self.spawn_answer(id, sink.clone(), move |catalog| {
                        Ok(initialize_result(&version, catalog))
                    })
                    .await;
                    return;
                }
                Err(error) => Err(error),
            },
            "ping" => Ok(json!({})),
            "server/discover" => match self.discover_check(params.as_ref()) {
                Ok(()) => {
                    self.spawn_answer(id, sink.clone(), |catalog| Ok(discover_result(catalog)))
                        .await;
                    return;
                }
                Err(error) => Err(error),
            },
            "subscriptions/listen" => match self.era(params.as_ref()) {
                Ok(_) => {
                    self.spawn_listen(id, sink.clone());
                    return;
                }
                Err(error) => Err(error),
            },
            "tools/list" => match self.era(params.as_ref()) {
                Ok(era) => {
                    self.spawn_answer(id, sink.clone(), move |catalog| {
                        Ok(tools_list_result(catalog, &era))
                    })
                    .await;
                    return;
                }
                Err(error) => Err(error),
            },
            "tools/call" => match self.era(params.as_ref()) {
                Ok(era) => {
                    self.spawn_call(id, None, params, era, sink.clone());
                    return;
                }
                Err(error) => Err(error),
            },
            method if forwarded_capability(method).is_some() => match self.era(params.as_ref()) {
                Ok(era) => {
                    self.spawn_call(id, Some(method.to_string()), params, era, sink.clone());
                    return;
                }
                Err(error) => Err(error),
            },
            _ => Err(method_not_found(method)),
        };
        reply(sink, &id, result).await;
    }

    /// Answer from the catalog, at once if it is loaded, else once a worker has supplied it.
    async fn spawn_answer<F>(self: &Arc<Self>, id: Value, sink: Sink, answer: F)
    where
        F: FnOnce(&CatalogData) -> Result<Value, RpcError> + Send + 'static,
    {
        if let Some(catalog) = self.frontend.catalog.loaded() {
            reply(&sink, &id, answer(&catalog)).await;
            return;
        }
        let connection = self.clone();
        tokio::spawn(async move {
            let result = connection
                .catalog()
                .await
                .and_then(|catalog| answer(&catalog));
            reply(&sink, &id, result).await;
        });
    }

    async fn catalog(&self) -> Result<Arc<CatalogData>, RpcError> {
        self.frontend.catalog.data().await.map_err(|error| {
            RpcError::new(
                codes::WORKER_UNAVAILABLE,
                format!("cannot read the tool catalog from a worker: {error}"),
            )
        })
    }

    fn on_notification(&self, method: &str, params: Option<Value>) {
        if method == "notifications/cancelled" && self.cancel_by_id {
            let key = params
                .as_ref()
                .and_then(|params| params.get("requestId"))
                .map(Value::to_string);
            let token = key.and_then(|key| self.pending_lock().remove(&key));
            if let Some(token) = token {
                token.cancel();
            }
        }
    }

    async fn send_out(&self, message: Value) {
        let _ = self.out.send(message).await;
    }

    /// Requests of this connection still being answered (tool calls, forwarded methods,
    /// subscriptions).
    pub fn requests_in_flight(&self) -> usize {
        self.pending_lock().len()
    }

    fn pending_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn negotiated_version(&self) -> Option<String> {
        self.negotiated
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Decide the protocol era of one request.
    fn era(&self, params: Option<&Value>) -> Result<Era, RpcError> {
        let meta = params.and_then(|params| params.get("_meta"));
        match meta.and_then(|meta| meta.get(META_PROTOCOL_VERSION)) {
            Some(Value::String(version)) => {
                check_supported(version)?;
                let era = Era::of_version(version);
                if era.is_inline()
                    && meta
                        .and_then(|meta| meta.get(META_CLIENT_CAPABILITIES))
                        .is_none()
                {
                    return Err(RpcError::invalid_params(format!(
                        "request _meta is missing {META_CLIENT_CAPABILITIES}, which protocol {version} requires"
                    )));
                }
                Ok(era)
            }
            Some(other) => Err(RpcError::invalid_params(format!(
                "{META_PROTOCOL_VERSION} must be a string, got {}",
                json_type(other)
            ))),
            None if self.negotiated_version().is_some() => Ok(Era::Initialize),
            None => Err(RpcError::invalid_params(format!(
                "no protocol version for this request: send `initialize` first (protocol 2025-11-25 and older), or put {META_PROTOCOL_VERSION} and {META_CLIENT_CAPABILITIES} in params._meta (protocol 2026-07-28)"
            ))),
        }
    }

    /// Negotiate the `initialize` version now, so requests that follow at once see it.
    fn negotiate(&self, params: Option<&Value>) -> Result<String, RpcError> {
        let requested = params
            .and_then(|params| params.get("protocolVersion"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                RpcError::invalid_params("initialize needs params.protocolVersion (a string)")
            })?;
        // Answer with the client's version when we serve it over `initialize`; otherwise with
        // our newest handshake version, and the client decides whether it can live with that.
        let version = if is_supported_protocol_version(requested)
            && !Era::of_version(requested).is_inline()
        {
            requested
        } else {
            NEWEST_INITIALIZE_VERSION
        };
        *self
            .negotiated
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(version.to_string());
        *self
            .client_capabilities
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = params
            .and_then(|params| params.get("capabilities"))
            .cloned()
            .unwrap_or(Value::Null);
        Ok(version.to_string())
    }

    /// `server/discover` is a 2026-07-28 request: it needs that era's metadata, and a version
    /// in it that we serve.
    fn discover_check(&self, params: Option<&Value>) -> Result<(), RpcError> {
        let meta = params.and_then(|params| params.get("_meta"));
        if let Some(Value::String(version)) = meta.and_then(|meta| meta.get(META_PROTOCOL_VERSION))
        {
            check_supported(version)?;
        }
        for key in [META_PROTOCOL_VERSION, META_CLIENT_CAPABILITIES] {
            if meta.and_then(|meta| meta.get(key)).is_none() {
                return Err(RpcError::invalid_params(format!(
                    "server/discover needs {key} in params._meta"
                )));
            }
        }
        Ok(())
    }

    /// `subscriptions/listen`: acknowledge with the kinds we will send — none, since the tool
    /// catalog never changes while the supervisor runs — then hold the stream open until the
    /// client cancels it or goes away.
    fn spawn_listen(self: &Arc<Self>, id: Value, sink: Sink) {
        let token = self.cancellable(&id);
        let acknowledged = jsonrpc::notification(
            "notifications/subscriptions/acknowledged",
            Some(json!({
                "_meta": {META_SUBSCRIPTION_ID: id},
                "notifications": {},
            })),
        );
        let connection = self.clone();
        tokio::spawn(async move {
            let _ = sink.send(acknowledged).await;
            tokio::select! {
                () = token.cancelled() => {}
                () = sink.closed() => {}
            }
            connection.forget(&id);
        });
    }

    /// A token that cancels request `id`, findable by its id when this connection cancels by
    /// id; [`Connection::forget`] it when the request ends.
    fn cancellable(&self, id: &Value) -> CancellationToken {
        let token = CancellationToken::new();
        if self.cancel_by_id {
            self.pending_lock().insert(id.to_string(), token.clone());
        }
        token
    }

    fn forget(&self, id: &Value) {
        if self.cancel_by_id {
            self.pending_lock().remove(&id.to_string());
        }
    }

    /// Start this connection's default session now (a legacy HTTP session gets its worker at
    /// `initialize`).
    pub async fn open_default_session(&self) -> Result<(), SessionError> {
        self.default_session().await.map(|_| ())
    }

    /// End this connection's default session, if it has one (legacy HTTP `DELETE`).
    pub async fn close_default_session(&self) {
        let session = self.default_session.lock().await.take();
        if let Some(session) = session {
            self.frontend
                .registry
                .end(&session, crate::session::Ended::Closed)
                .await;
        }
    }

    /// Whether the default session ended for good (closed, expired, evicted) rather than
    /// crashed; a legacy HTTP session whose worker ended so is over.
    pub async fn default_session_ended(&self) -> bool {
        let slot = self.default_session.lock().await;
        let Some(session) = slot.as_ref() else {
            return false;
        };
        matches!(
            self.frontend.registry.get(&session.handle, &self.principal),
            Err(SessionError::Closed { .. }
                | SessionError::Expired { .. }
                | SessionError::Evicted { .. }
                | SessionError::NotFound)
        )
    }

    /// The principal this connection acts for.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Run a request that needs a worker as its own task: `tools/call` (`method` = `None`) or
    /// a forwarded method. The client cancels it with `notifications/cancelled` or by closing
    /// its response stream; a cancelled request gets no response, as MCP specifies.
    fn spawn_call(
        self: &Arc<Self>,
        id: Value,
        method: Option<String>,
        params: Option<Value>,
        era: Era,
        sink: Sink,
    ) {
        let token = self.cancellable(&id);
        let connection = self.clone();
        tokio::spawn(async move {
            let work = async {
                match &method {
                    None => connection.call_tool(params, &era, &sink).await,
                    Some(method) => connection.forward_method(method, params, &era, &sink).await,
                }
            };
            let result = tokio::select! {
                result = work => Some(result),
                () = token.cancelled() => None,
                () = sink.closed() => None,
            };
            connection.forget(&id);
            if let Some(result) = result {
                reply(&sink, &id, result).await;
            }
        });
    }

    /// A method the worker serves if it declares the capability (prompts, resources,
    /// completions, logging), run in the default session.
    async fn forward_method(
        &self,
        method: &str,
        params: Option<Value>,
        era: &Era,
        sink: &Sink,
    ) -> Result<Value, RpcError> {
        let catalog = self.catalog().await?;
        let capability = forwarded_capability(method).unwrap_or_default();
        if !catalog.has_capability(capability, *era) {
            return Err(method_not_found(method));
        }
        let mut params = match params {
            Some(Value::Object(params)) => params,
            _ => Map::new(),
        };
        strip_bulkhead_meta(&mut params);
        let (session, _) = self.resolve(None).await?;
        let permit = self.in_flight_permit(&session)?;
        session.touch();
        let result = self
            .run_request(&session, permit, method, Value::Object(params), sink)
            .await;
        session.touch();
        result
    }

    async fn call_tool(
        &self,
        params: Option<Value>,
        era: &Era,
        sink: &Sink,
    ) -> Result<Value, RpcError> {
        let Some(Value::Object(mut params)) = params else {
            return Err(RpcError::invalid_params(
                "tools/call needs params with a `name`",
            ));
        };
        let name = match params.get("name") {
            Some(Value::String(name)) => name.clone(),
            _ => {
                return Err(RpcError::invalid_params(
                    "tools/call needs params.name (a string)",
                ));
            }
        };
        let mut arguments = match params.remove("arguments") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(arguments)) => arguments,
            Some(other) => {
                return Err(RpcError::invalid_params(format!(
                    "params.arguments must be an object, got {}",
                    json_type(&other)
                )));
            }
        };
        let handle = match arguments.remove(SESSION_ARGUMENT) {
            None | Some(Value::Null) => None,
            Some(Value::String(handle)) => Some(handle),
            Some(other) => {
                return Err(RpcError::invalid_params(format!(
                    "the `session` argument must be a string handle from session_open, got {}",
                    json_type(&other)
                )));
            }
        };
        match name.as_str() {
            SESSION_OPEN => self.session_open(era).await,
            SESSION_CLOSE => self.session_close(handle, era).await,
            SESSION_INFO => self.session_info(handle, era, sink).await,
            _ => {
                strip_bulkhead_meta(&mut params);
                if let Some(server) = self.frontend.registry.wrapped() {
                    // A wrapped server's tools may be renamed; it never gets credentials
                    // resolved here (its principal's environment is its credentials).
                    let server_name = server
                        .renames()
                        .to_server(&name, &mut arguments)
                        .map_err(RpcError::invalid_params)?;
                    params.insert("name".into(), Value::String(server_name));
                } else if name == BROKER_LOGIN
                    && let Some(Value::String(reference)) = arguments.get(CREDENTIAL_REF)
                {
                    let broker = arguments
                        .get("broker")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    let Some(credential) = self.resolve_credential(broker, reference) else {
                        return Ok(tool_error(
                            format!(
                                "unknown credential reference {reference:?} for {broker:?}: ask your operator which credential references you may use, or pass api_key and api_secret"
                            ),
                            era,
                        ));
                    };
                    let meta = params.entry("_meta").or_insert_with(|| json!({}));
                    if let Some(meta) = meta.as_object_mut() {
                        meta.insert(META_RESOLVED_CREDENTIAL.into(), credential);
                    }
                }
                params.insert("arguments".into(), Value::Object(arguments));
                self.forward(handle.as_deref(), Value::Object(params), sink)
                    .await
            }
        }
    }

    /// The credential `reference` of this connection's principal, as the worker receives it.
    fn resolve_credential(&self, broker: &str, reference: &str) -> Option<Value> {
        let resolved = self
            .frontend
            .credentials
            .resolve(&self.principal, broker, reference)?;
        tracing::info!(%broker, "resolved a credential reference for broker_login");
        Some(json!({
            "api_key": resolved.api_key.as_str(),
            "api_secret": resolved.api_secret.as_str(),
        }))
    }

    async fn session_open(&self, era: &Era) -> Result<Value, RpcError> {
        let session = self.frontend.registry.open(&self.principal, false).await?;
        let limits = &self.frontend.registry.limits;
        let structured = json!({
            "session": session.handle,
            "pid": session.worker.pid(),
            "created_at": rfc3339(session.created_at),
            "expires_at": rfc3339(session.expires_at(limits)),
        });
        let text = format!(
            "Opened session {}. Pass it as `session` to other tools; close it with session_close.",
            session.handle
        );
        Ok(tool_result(structured, text, era))
    }

    async fn session_close(&self, handle: Option<String>, era: &Era) -> Result<Value, RpcError> {
        let handle = handle.ok_or_else(|| {
            RpcError::invalid_params(
                "session_close needs the `session` argument: the handle to close",
            )
        })?;
        self.frontend
            .registry
            .close(&handle, &self.principal)
            .await?;
        let structured = json!({"session": handle, "closed": true});
        Ok(tool_result(
            structured,
            format!("Closed session {handle}."),
            era,
        ))
    }

    async fn session_info(
        &self,
        handle: Option<String>,
        era: &Era,
        sink: &Sink,
    ) -> Result<Value, RpcError> {
        let (session, notice) = self.resolve(handle.as_deref()).await?;
        let limits = &self.frontend.registry.limits;
        // The built-in worker knows the broker state; the supervisor knows the session. Merge
        // both. A wrapped server has no such tool (its own `session_info`, if any, is renamed).
        let mut structured = Map::new();
        if self.frontend.registry.wrapped().is_none() {
            let permit = self.in_flight_permit(&session)?;
            let worker_part = self
                .run_request(
                    &session,
                    permit,
                    "tools/call",
                    json!({"name": SESSION_INFO, "arguments": {}}),
                    sink,
                )
                .await?;
            if let Some(Value::Object(fields)) = worker_part.get("structuredContent") {
                structured = fields.clone();
            }
        }
        structured.extend(session.safe_fields(limits));
        let structured = Value::Object(structured);
        let text = format!(
            "Session {} (worker pid {}), created {}, expires {}.",
            session.handle,
            session.worker.pid(),
            structured["created_at"].as_str().unwrap_or_default(),
            structured["expires_at"].as_str().unwrap_or_default(),
        );
        let mut result = tool_result(structured, text, era);
        if let Some(notice) = notice {
            attach_notice(&mut result, &notice);
        }
        Ok(result)
    }

    /// The session a call goes to, and a notice if the default session had to be replaced.
    async fn resolve(
        &self,
        handle: Option<&str>,
    ) -> Result<(Arc<Session>, Option<String>), RpcError> {
        match handle {
            Some(handle) => Ok((self.frontend.registry.get(handle, &self.principal)?, None)),
            None => Ok(self.default_session().await?),
        }
    }

    async fn default_session(&self) -> Result<(Arc<Session>, Option<String>), SessionError> {
        let registry = &self.frontend.registry;
        let mut slot = self.default_session.lock().await;
        let mut notice = None;
        if let Some(current) = slot.as_ref() {
            match registry.get(&current.handle, &self.principal) {
                Ok(session) => return Ok((session, None)),
                Err(SessionError::Lost { exit, .. }) => {
                    notice = Some(format!(
                        "the previous default session was lost (its worker {exit}); its state was lost and this call ran in a fresh default session"
                    ));
                }
                Err(SessionError::Expired { why, .. }) => {
                    notice = Some(format!(
                        "the previous default session {why}; its state was lost and this call ran in a fresh default session"
                    ));
                }
                Err(SessionError::Evicted { .. }) => {
                    notice = Some("the previous default session was evicted at the session limit; its state was lost and this call ran in a fresh default session".to_string());
                }
                Err(_) => {}
            }
        }
        let session = registry.open(&self.principal, true).await?;
        *slot = Some(session.clone());
        if let Some(notice) = &notice {
            tracing::info!(session = %session.tag, "default session replaced: {notice}");
        }
        Ok((session, notice))
    }

    /// Send a `tools/call` to a session's worker and wait for its reply or the deadline.
    async fn forward(
        &self,
        handle: Option<&str>,
        params: Value,
        sink: &Sink,
    ) -> Result<Value, RpcError> {
        let (session, notice) = self.resolve(handle).await?;
        let permit = self.in_flight_permit(&session)?;
        let mut record = CallRecord::start(&self.principal, &session, &params);
        let outcome = self
            .run_request(&session, permit, "tools/call", params, sink)
            .await;
        record.finish(&outcome);
        let mut reply = outcome?;
        if let Some(notice) = notice {
            attach_notice(&mut reply, &notice);
        }
        Ok(reply)
    }

    /// One of `session`'s in-flight permits, or the error that says there is none left.
    fn in_flight_permit(&self, session: &Session) -> Result<InFlightPermit, RpcError> {
        session.in_flight.clone().try_acquire_owned().map_err(|_| {
            RpcError::new(
                codes::TOO_MANY_IN_FLIGHT,
                format!(
                    "session {} already has {} requests in flight (the limit); wait for one to finish",
                    session.tag, self.frontend.registry.limits.max_in_flight
                ),
            )
        })
    }

    /// Send one request to `session`'s worker and wait for its reply or the deadline. Every
    /// path to a worker comes through here, and it takes an in-flight permit by value, so no
    /// request reaches a worker beyond `--max-in-flight`; the permit is freed when the request
    /// ends (answered, failed or cancelled).
    async fn run_request(
        &self,
        session: &Session,
        _permit: InFlightPermit,
        method: &str,
        params: Value,
        sink: &Sink,
    ) -> Result<Value, RpcError> {
        let died = |exit: crate::worker::WorkerExit| {
            RpcError::new(
                codes::WORKER_DIED,
                format!(
                    "session {}'s worker {exit} while handling this request; the session is lost",
                    session.tag
                ),
            )
        };
        let mut call = session.worker.call(method, Some(params)).map_err(died)?;
        // Requests relayed for this call are forgotten when it ends, answered or not.
        let mut relayed = RelayedForCall {
            relayed: &self.relayed,
            keys: Vec::new(),
        };
        let deadline = tokio::time::sleep(self.frontend.call_timeout);
        tokio::pin!(deadline);
        // The deadline runs while waiting for the worker and while waiting for the client to
        // take what the worker sent.
        let missed = || {
            tracing::warn!(session = %session.tag, "call exceeded its deadline; cancelling it in the worker");
            RpcError::new(
                codes::DEADLINE_EXCEEDED,
                format!(
                    "the call did not finish within the {} ms deadline and was cancelled; the session stays usable once its worker has stopped the call (a worker that keeps running past the hard-cancel limit is killed)",
                    self.frontend.call_timeout.as_millis()
                ),
            )
        };
        loop {
            let event = tokio::select! {
                event = call.next_event() => event,
                () = &mut deadline => return Err(missed()),
            };
            let message = match event {
                CallEvent::Notification(notification) => notification,
                CallEvent::Request(request) => match self.undeclared(&request) {
                    // MCP forbids asking a client for what it did not declare; answering at
                    // once also spares the worker a wait for an answer never coming.
                    Some(refusal) => {
                        session.worker.respond(refusal);
                        continue;
                    }
                    None => {
                        let (key, request) = self.relay_request(&session.worker, request);
                        relayed.keys.push(key);
                        request
                    }
                },
                CallEvent::Reply(reply) => return unwrap_reply(reply),
                CallEvent::Died(exit) => return Err(died(exit)),
            };
            tokio::select! {
                _ = sink.send(message) => {}
                () = &mut deadline => return Err(missed()),
            }
        }
    }
}

impl Connection {
    /// The refusal of a worker's request for a capability this client did not declare in
    /// `initialize` (sampling, elicitation, roots), if it is one.
    fn undeclared(&self, request: &Value) -> Option<Value> {
        let method = request["method"].as_str().unwrap_or_default();
        let capability = CLIENT_CAPABILITY_METHODS
            .iter()
            .find(|(name, _)| *name == method)
            .map(|(_, capability)| *capability)?;
        let declared = self
            .client_capabilities
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(capability)
            .is_some_and(|value| !value.is_null());
        (!declared).then(|| {
            jsonrpc::error_response(
                &request["id"],
                codes::METHOD_NOT_FOUND,
                &format!("{method}: the client did not declare the {capability} capability"),
                None,
            )
        })
    }
}

/// Server-to-client requests and the client capability each needs.
const CLIENT_CAPABILITY_METHODS: [(&str, &str); 3] = [
    ("elicitation/create", "elicitation"),
    ("sampling/createMessage", "sampling"),
    ("roots/list", "roots"),
];

/// The relayed requests of one call; dropping it forgets those still unanswered, so a client that
/// never answers leaves nothing behind.
struct RelayedForCall<'a> {
    relayed: &'a Mutex<HashMap<String, Relayed>>,
    keys: Vec<String>,
}

impl Drop for RelayedForCall<'_> {
    fn drop(&mut self) {
        if self.keys.is_empty() {
            return;
        }
        let mut relayed = self
            .relayed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for key in &self.keys {
            relayed.remove(key);
        }
    }
}

/// One forwarded tool call, for the in-flight gauge, the latency histogram and the audit
/// line: who, which session, what, how it ended, how long — never the arguments, which may hold
/// secrets. A call dropped before it finished (cancelled by the client or a closed stream) is
/// recorded as `cancelled` when the record is dropped.
struct CallRecord<'a> {
    principal: &'a Principal,
    session: &'a Session,
    tool: String,
    started: std::time::Instant,
    finished: bool,
}

impl<'a> CallRecord<'a> {
    fn start(principal: &'a Principal, session: &'a Session, params: &Value) -> Self {
        session.touch();
        METRICS.calls_in_flight.fetch_add(1, Ordering::Relaxed);
        Self {
            principal,
            session,
            tool: params["name"].as_str().unwrap_or_default().to_string(),
            started: std::time::Instant::now(),
            finished: false,
        }
    }

    fn finish(&mut self, outcome: &Result<Value, RpcError>) {
        let outcome = match outcome {
            Ok(result) if result["isError"] == true => CallOutcome::ToolError,
            Ok(_) => CallOutcome::Ok,
            Err(error) if error.code == codes::DEADLINE_EXCEEDED => CallOutcome::Deadline,
            Err(error) if error.code == codes::WORKER_DIED => CallOutcome::WorkerDied,
            Err(_) => CallOutcome::Error,
        };
        self.record(outcome);
    }

    fn record(&mut self, outcome: CallOutcome) {
        self.finished = true;
        self.session.touch();
        METRICS.calls_in_flight.fetch_sub(1, Ordering::Relaxed);
        let elapsed = self.started.elapsed();
        METRICS.call_finished(outcome, elapsed);
        tracing::info!(
            target: "bulkhead::audit",
            principal = %self.principal,
            session = %self.session.tag,
            tool = %self.tool,
            outcome = outcome.as_str(),
            duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            "tool call"
        );
    }
}

impl Drop for CallRecord<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.record(CallOutcome::Cancelled);
        }
    }
}

/// Methods passed to the worker when it declares the capability, with that capability.
const FORWARDED_METHODS: [(&str, &str); 9] = [
    ("prompts/list", "prompts"),
    ("prompts/get", "prompts"),
    ("resources/list", "resources"),
    ("resources/read", "resources"),
    ("resources/templates/list", "resources"),
    ("resources/subscribe", "resources"),
    ("resources/unsubscribe", "resources"),
    ("completion/complete", "completions"),
    ("logging/setLevel", "logging"),
];

fn forwarded_capability(method: &str) -> Option<&'static str> {
    FORWARDED_METHODS
        .iter()
        .find(|(name, _)| *name == method)
        .map(|(_, capability)| *capability)
}

fn method_not_found(method: &str) -> RpcError {
    RpcError::new(
        codes::METHOD_NOT_FOUND,
        format!("method not found: {method}"),
    )
}

/// The protocol version a request names in its `_meta`, if any.
fn request_version(params: Option<&Value>) -> Option<&str> {
    params?.get("_meta")?.get(META_PROTOCOL_VERSION)?.as_str()
}

fn initialize_result(version: &str, catalog: &CatalogData) -> Value {
    json!({
        "protocolVersion": version,
        "capabilities": catalog.legacy_capabilities,
        "serverInfo": server_info(),
        "instructions": INSTRUCTIONS,
    })
}

fn discover_result(catalog: &CatalogData) -> Value {
    json!({
        "resultType": "complete",
        "supportedVersions": SUPPORTED_PROTOCOL_VERSIONS,
        "capabilities": catalog.modern_capabilities,
        "instructions": INSTRUCTIONS,
        "ttlMs": CATALOG_TTL_MS,
        "cacheScope": "public",
        "_meta": {META_SERVER_INFO: server_info()},
    })
}

fn tools_list_result(catalog: &CatalogData, era: &Era) -> Value {
    let mut result = json!({"tools": catalog.tools});
    if era.is_inline() {
        result["resultType"] = json!("complete");
        result["ttlMs"] = json!(CATALOG_TTL_MS);
        result["cacheScope"] = json!("public");
    }
    result
}

async fn reply(sink: &Sink, id: &Value, result: Result<Value, RpcError>) {
    let message = match result {
        Ok(result) => jsonrpc::response(id, result),
        Err(error) => jsonrpc::error_response(id, error.code, &error.message, error.data),
    };
    let _ = sink.send(message).await;
}

/// Turn a worker's JSON-RPC reply into our result or error, unchanged.
fn unwrap_reply(mut reply: Value) -> Result<Value, RpcError> {
    if let Some(result) = reply.get_mut("result") {
        return Ok(result.take());
    }
    let error = reply
        .get_mut("error")
        .map(Value::take)
        .unwrap_or(Value::Null);
    Err(RpcError {
        code: error["code"].as_i64().unwrap_or(codes::INTERNAL_ERROR),
        message: error["message"]
            .as_str()
            .unwrap_or("the worker returned a malformed error")
            .to_string(),
        data: error.get("data").cloned(),
    })
}

fn check_supported(version: &str) -> Result<(), RpcError> {
    if is_supported_protocol_version(version) {
        return Ok(());
    }
    Err(RpcError {
        code: codes::UNSUPPORTED_PROTOCOL_VERSION,
        message: format!(
            "unsupported protocol version {version}; supported: {}",
            SUPPORTED_PROTOCOL_VERSIONS.join(", ")
        ),
        data: Some(json!({"supported": SUPPORTED_PROTOCOL_VERSIONS, "requested": version})),
    })
}

fn server_info() -> Value {
    json!({"name": "bulkhead", "title": "Bulkhead", "version": env!("CARGO_PKG_VERSION")})
}

fn tool_result(structured: Value, text: String, era: &Era) -> Value {
    let mut result = json!({
        "content": [{"type": "text", "text": text}],
        "structuredContent": structured,
        "isError": false,
    });
    if era.is_inline() {
        result["resultType"] = json!("complete");
    }
    result
}

fn tool_error(text: String, era: &Era) -> Value {
    let mut result = json!({
        "content": [{"type": "text", "text": text}],
        "isError": true,
    });
    if era.is_inline() {
        result["resultType"] = json!("complete");
    }
    result
}

/// Drop any `_meta` key in Bulkhead's namespace that a client sent: only the supervisor sets
/// those, on the private socket.
fn strip_bulkhead_meta(params: &mut Map<String, Value>) {
    if let Some(Value::Object(meta)) = params.get_mut("_meta") {
        meta.retain(|key, _| !key.starts_with(META_PREFIX));
    }
}

/// Tell the caller something about its session, in `_meta` and as a text block.
fn attach_notice(result: &mut Value, notice: &str) {
    let Some(result) = result.as_object_mut() else {
        return;
    };
    let meta = result.entry("_meta").or_insert_with(|| json!({}));
    if let Some(meta) = meta.as_object_mut() {
        meta.insert(META_NOTICE.into(), json!(notice));
    }
    if let Some(Value::Array(content)) = result.get_mut("content") {
        content.push(json!({"type": "text", "text": format!("Note from bulkhead: {notice}.")}));
    }
}
