//! Requests that go to a session's worker: `tools/call` of a worker's tool, the methods
//! forwarded to the default session's worker, and the worker half of `session_info`.
//!
//! Every path to a worker comes through [`Connection::run_request`], which takes an in-flight
//! permit by value, so no request reaches a worker beyond `--max-in-flight`. It waits for the
//! worker's reply, the deadline, or the client going away, and ends in a typed [`CallError`]
//! that the audit line matches on. What the worker sends meanwhile (progress, log messages, its
//! requests for the client) goes to the request's sink; a request for a capability the client
//! did not declare is refused on the client's behalf.

use std::time::{Duration, Instant};

use bulkhead_protocol::names::SESSION_INFO;
use bulkhead_protocol::{Era, META_PREFIX, META_RESOLVED_CREDENTIAL, codes};
use serde_json::{Map, Value, json};

use crate::metrics::{CallOutcome, METRICS};
use crate::principal::Principal;
use crate::session::{InFlightPermit, Session, SessionError};
use crate::worker::{CallEvent, WorkerExit};

use super::queue::RelayedForCall;
use super::reply::{self, Answer, Outgoing, RpcError};
use super::request::{Forwarded, ToolCall};
use super::{Connection, Sink};

/// The built-in worker's login tool: its `credential_ref` is resolved here, for the caller's
/// principal, so the secret never passes through the model.
const BROKER_LOGIN: &str = "broker_login";
const CREDENTIAL_REF: &str = "credential_ref";

/// Server-to-client requests and the client capability each needs.
const CLIENT_CAPABILITY_METHODS: [(&str, &str); 3] = [
    ("elicitation/create", "elicitation"),
    ("sampling/createMessage", "sampling"),
    ("roots/list", "roots"),
];

/// Why a request to a worker did not end in a reply.
#[derive(Debug)]
pub(super) enum CallError {
    /// It did not finish within its deadline, and was cancelled in the worker.
    Deadline { timeout: Duration },
    /// The session's worker died while handling it.
    WorkerDied { session: String, exit: WorkerExit },
    /// The session could not take it (unknown, ended, at its in-flight limit, …).
    Session(SessionError),
    /// The worker answered with a JSON-RPC error, passed on unchanged.
    Worker(RpcError),
    /// A reload's drain deadline passed first; the call was cancelled in the worker.
    Reloading,
}

impl From<SessionError> for CallError {
    fn from(error: SessionError) -> Self {
        CallError::Session(error)
    }
}

impl From<CallError> for RpcError {
    fn from(error: CallError) -> Self {
        match error {
            CallError::Deadline { timeout } => RpcError::new(
                codes::DEADLINE_EXCEEDED,
                format!(
                    "the call did not finish within the {} ms deadline and was cancelled; the session stays usable once its worker has stopped the call (a worker that keeps running past the hard-cancel limit is killed)",
                    timeout.as_millis()
                ),
            ),
            CallError::WorkerDied { session, exit } => RpcError::new(
                codes::WORKER_DIED,
                format!(
                    "session {session}'s worker {exit} while handling this request; the session is lost"
                ),
            ),
            CallError::Session(error) => error.into(),
            CallError::Worker(error) => error,
            CallError::Reloading => RpcError::new(
                codes::RELOADING,
                "the server is upgrading in place and this call was still running at the reload deadline, so it was cancelled; the session is kept: retry the call".to_string(),
            ),
        }
    }
}

impl Connection {
    /// `tools/call`: the session tools are answered here, every other tool goes to a session's
    /// worker.
    pub(super) async fn call_tool(
        &self,
        params: Option<Value>,
        era: Era,
        sink: &Sink,
    ) -> Result<Answer, RpcError> {
        let call = ToolCall::parse(params)?;
        let built = match call.name.as_str() {
            bulkhead_protocol::names::SESSION_OPEN => self.session_open(era).await,
            bulkhead_protocol::names::SESSION_CLOSE => self.session_close(call.session, era).await,
            SESSION_INFO => self.session_info(call.session, era, sink).await,
            _ => return self.forward_tool(call, era, sink).await,
        };
        built.map(Answer::Built)
    }

    /// A worker's tool: renamed for a wrapped server, its `credential_ref` resolved for the
    /// built-in worker's `broker_login`, then sent to the session the call names.
    async fn forward_tool(
        &self,
        call: ToolCall,
        era: Era,
        sink: &Sink,
    ) -> Result<Answer, RpcError> {
        let ToolCall {
            name,
            mut arguments,
            session,
            mut params,
        } = call;
        strip_bulkhead_meta(&mut params);
        if let Some(server) = self.frontend.registry.wrapped() {
            // A wrapped server's tools may be renamed; it never gets credentials resolved
            // here (its principal's environment is its credentials).
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
                return Ok(Answer::Built(reply::tool_error(
                    format!(
                        "unknown credential reference {reference:?} for {broker:?}: ask your operator which credential references you may use, or pass api_key and api_secret"
                    ),
                    era,
                )));
            };
            let meta = params.entry("_meta").or_insert_with(|| json!({}));
            if let Some(meta) = meta.as_object_mut() {
                meta.insert(META_RESOLVED_CREDENTIAL.into(), credential);
            }
        }
        params.insert("arguments".into(), Value::Object(arguments));
        self.forward(session.as_deref(), Value::Object(params), sink)
            .await
            .map_err(RpcError::from)
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

    /// Send a `tools/call` to a session's worker and wait for its reply or the deadline; one
    /// audit line records how it ended.
    async fn forward(
        &self,
        handle: Option<&str>,
        params: Value,
        sink: &Sink,
    ) -> Result<Answer, CallError> {
        let (session, notice) = self.resolve(handle).await?;
        let permit = session.in_flight_permit(self.frontend.registry.limits.max_in_flight)?;
        let mut record = CallRecord::start(&self.principal, &session, &params);
        let outcome = self
            .run_request(&session, permit, "tools/call", params, sink)
            .await;
        record.finish(&outcome);
        let answer = outcome?;
        let Some(notice) = notice else {
            return Ok(answer);
        };
        let mut result = answer.into_value();
        reply::attach_notice(&mut result, &notice);
        Ok(Answer::Built(result))
    }

    /// A method the worker serves if it declares the capability (prompts, resources,
    /// completions, logging), run in the default session.
    pub(super) async fn forward_method(
        &self,
        method: Forwarded,
        params: Option<Value>,
        era: Era,
        sink: &Sink,
    ) -> Result<Answer, RpcError> {
        let catalog = self.catalog().await?;
        if !catalog.has_capability(method.capability(), era) {
            return Err(RpcError::method_not_found(method.name()));
        }
        let mut params = match params {
            Some(Value::Object(params)) => params,
            _ => Map::new(),
        };
        strip_bulkhead_meta(&mut params);
        let (session, _) = self.resolve(None).await?;
        let permit = session.in_flight_permit(self.frontend.registry.limits.max_in_flight)?;
        session.touch();
        let result = self
            .run_request(&session, permit, method.name(), Value::Object(params), sink)
            .await;
        session.touch();
        Ok(result?)
    }

    /// Send one request to `session`'s worker and wait for its reply or the deadline. Every
    /// path to a worker comes through here, and it takes an in-flight permit by value, so no
    /// request reaches a worker beyond `--max-in-flight`; the permit is freed when the request
    /// ends (answered, failed or cancelled).
    pub(super) async fn run_request(
        &self,
        session: &Session,
        _permit: InFlightPermit,
        method: &str,
        params: Value,
        sink: &Sink,
    ) -> Result<Answer, CallError> {
        let died = |exit: WorkerExit| CallError::WorkerDied {
            session: session.tag.clone(),
            exit,
        };
        let mut call = session.worker.call(method, Some(params)).map_err(died)?;
        // Requests relayed for this call are forgotten when it ends, answered or not.
        let mut relayed = RelayedForCall::new(&self.queue);
        let timeout = self.frontend.call_timeout;
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        // The deadline runs while waiting for the worker and while waiting for the client to
        // take what the worker sent.
        let missed = || {
            tracing::warn!(session = %session.tag, "call exceeded its deadline; cancelling it in the worker");
            CallError::Deadline { timeout }
        };
        loop {
            let event = tokio::select! {
                event = call.next_event() => event,
                () = &mut deadline => return Err(missed()),
                () = self.frontend.reload_cutoff.notified() => return Err(CallError::Reloading),
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
                    None => relayed.relay(&session.worker, request),
                },
                CallEvent::Reply(reply) => {
                    return reply::answer(reply).map_err(CallError::Worker);
                }
                CallEvent::Died(exit) => return Err(died(exit)),
            };
            tokio::select! {
                _ = sink.send(Outgoing::from_value(&message)) => {}
                () = &mut deadline => return Err(missed()),
                () = self.frontend.reload_cutoff.notified() => return Err(CallError::Reloading),
            }
        }
    }

    /// The refusal of a worker's request for a capability this client did not declare in
    /// `initialize` (sampling, elicitation, roots), if it is one.
    fn undeclared(&self, request: &Value) -> Option<Value> {
        let method = request["method"].as_str().unwrap_or_default();
        let capability = CLIENT_CAPABILITY_METHODS
            .iter()
            .find(|(name, _)| *name == method)
            .map(|(_, capability)| *capability)?;
        (!self.declared(capability)).then(|| reply::undeclared(request, method, capability))
    }
}

/// Drop any `_meta` key in Bulkhead's namespace that a client sent: only the supervisor sets
/// those, on the private socket.
fn strip_bulkhead_meta(params: &mut Map<String, Value>) {
    if let Some(Value::Object(meta)) = params.get_mut("_meta") {
        meta.retain(|key, _| !key.starts_with(META_PREFIX));
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
    started: Instant,
    finished: bool,
}

impl<'a> CallRecord<'a> {
    fn start(principal: &'a Principal, session: &'a Session, params: &Value) -> Self {
        session.touch();
        METRICS
            .calls_in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self {
            principal,
            session,
            tool: params["name"].as_str().unwrap_or_default().to_string(),
            started: Instant::now(),
            finished: false,
        }
    }

    fn finish(&mut self, outcome: &Result<Answer, CallError>) {
        let outcome = match outcome {
            Ok(answer) if answer.is_tool_error() => CallOutcome::ToolError,
            Ok(_) => CallOutcome::Ok,
            Err(CallError::Deadline { .. }) => CallOutcome::Deadline,
            Err(CallError::WorkerDied { .. }) => CallOutcome::WorkerDied,
            Err(CallError::Session(_) | CallError::Worker(_) | CallError::Reloading) => {
                CallOutcome::Error
            }
        };
        self.record(outcome);
    }

    fn record(&mut self, outcome: CallOutcome) {
        self.finished = true;
        self.session.touch();
        METRICS
            .calls_in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        let elapsed = self.started.elapsed();
        METRICS.call_finished(outcome, elapsed);
        // Formatted and written on the log thread: the call's reply does not wait for it.
        let (principal, session, tool) = (
            self.principal.clone(),
            self.session.tag.clone(),
            std::mem::take(&mut self.tool),
        );
        let duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        bulkhead_logging::buffered::defer(move || {
            tracing::info!(
                target: "bulkhead::audit",
                principal = %principal,
                session = %session,
                tool = %tool,
                outcome = outcome.as_str(),
                duration_us,
                "tool call"
            );
        });
    }
}

impl Drop for CallRecord<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.record(CallOutcome::Cancelled);
        }
    }
}
