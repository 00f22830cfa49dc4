//! The two kinds of worker and every place they differ, one method each.
//!
//! - **Built-in** (`bulkhead-worker`): the versioned Bulkhead hello (its sandbox limits, log
//!   settings, its principal's trading policy), then MCP `initialize`; its `bulkhead/trading/*`
//!   requests are answered by the trading desk; it acknowledges cancellations; it never starts
//!   processes.
//! - **Wrapped** (external worker mode): a foreign stdio server behind the exec shim, with its
//!   principal's environment; no hello — its era is detected instead ([`bridge::connect`]) and
//!   every call and reply is bridged; a ping after a cancellation proves its loop alive; its
//!   stderr is read into a redacted tail; its signals reach its whole tree.

use std::sync::Arc;
use std::time::Duration;

use bulkhead_protocol::Era;
use bulkhead_protocol::brokers::NetworkBroker;
use bulkhead_protocol::frame::{Frame, LineReader};
use bulkhead_protocol::handshake::{Control, Hello, SandboxPolicy};
use bulkhead_protocol::jsonrpc::{self, Message};
use bulkhead_protocol::{NEWEST_INITIALIZE_VERSION, WORKER_PROTOCOL_VERSION};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::credentials::EnvStamp;
use crate::spawn::WorkerCommand;
use crate::trading::desk::TradingDesk;
use crate::wrap::WrappedServer;
use crate::wrap::bridge;
use crate::wrap::stderr::Redactor;

use super::{StartError, WorkerTimeouts};

/// The built-in worker: its command and what its hello tells it.
#[derive(Debug, Clone)]
pub struct Builtin {
    pub command: WorkerCommand,
    /// Log filter handed to the worker (its environment is cleared).
    pub log_filter: String,
    /// Log format handed to the worker, the supervisor's own.
    pub log_format: String,
    /// Whether the worker exposes its test-only tools.
    pub test_tools: bool,
    /// Seed of the paper market (`None`: the worker's default).
    pub paper_seed: Option<u64>,
    /// Serve the conformance suite's fixtures instead of the broker tools (test only).
    pub fixtures: bool,
    /// The network brokers the worker offers besides `paper`, with their endpoints. The
    /// worker's command carries the matching `--network` policy (see `network_brokers`).
    pub brokers: Vec<NetworkBroker>,
    /// The per-call deadline, told to the worker so its brokers answer within it.
    pub call_timeout: Duration,
    /// The trading desk: the policy in each hello, and the answers to `bulkhead/` requests.
    pub trading: Option<Arc<TradingDesk>>,
}

/// Which kind of worker to start.
#[derive(Clone)]
pub enum Flavor {
    Builtin(Arc<Builtin>),
    Wrapped(Arc<WrappedServer>),
}

/// What a connection that came up learned: the worker's `initialize` result (its capabilities
/// and server info) and, for a wrapped server, the era its connection speaks, to which every
/// call is bridged.
pub(super) struct Connected {
    pub(super) initialize_result: Value,
    pub(super) bridge: Option<Era>,
}

impl Flavor {
    /// The command that starts one process for a session of `principal` (`None`: a worker of
    /// no session), for a wrapped server what to redact from its stderr, and the stamp of the
    /// provisioned environment it was built from.
    pub(super) fn command(
        &self,
        principal: Option<&str>,
    ) -> Result<(WorkerCommand, Option<Redactor>, Option<EnvStamp>), StartError> {
        match self {
            Flavor::Builtin(builtin) => Ok((builtin.command.clone(), None, None)),
            Flavor::Wrapped(server) => {
                let launch = server.launch(principal).map_err(StartError::Environment)?;
                Ok((launch.command, Some(launch.redactor), launch.stamp))
            }
        }
    }

    /// How long a start may take before it counts as failed.
    pub(super) fn start_timeout(&self, timeouts: &WorkerTimeouts) -> Duration {
        match self {
            Flavor::Builtin(_) => timeouts.handshake,
            Flavor::Wrapped(server) => server.start_timeout(),
        }
    }

    /// Bring a fresh connection up: the Bulkhead hello and MCP `initialize`, or a wrapped
    /// server's era detection.
    #[allow(clippy::too_many_arguments, reason = "one start's facts, passed once")]
    pub(super) async fn connect<R, W>(
        &self,
        reader: &mut LineReader<R>,
        writer: &mut W,
        session_tag: &str,
        sandbox: SandboxPolicy,
        pid: u32,
        principal: Option<&str>,
    ) -> Result<Connected, String>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        match self {
            Flavor::Builtin(builtin) => {
                let hello = builtin.hello(session_tag, sandbox, principal);
                let initialize_result = handshake(reader, writer, hello, pid).await?;
                Ok(Connected {
                    initialize_result,
                    bridge: None,
                })
            }
            Flavor::Wrapped(server) => {
                let detected = bridge::connect(reader, writer, server.detected()).await?;
                server.remember(&detected);
                Ok(Connected {
                    initialize_result: detected.initialize_result,
                    bridge: Some(detected.era),
                })
            }
        }
    }

    /// Who answers the worker's `bulkhead/` requests: the desk, for the built-in worker only
    /// (a wrapped server's requests in that namespace are refused).
    pub(super) fn desk(&self) -> Option<Arc<TradingDesk>> {
        match self {
            Flavor::Builtin(builtin) => builtin.trading.clone(),
            Flavor::Wrapped(_) => None,
        }
    }

    /// Whether the process may start others, so stopping it must reach its whole tree.
    pub(super) fn owns_a_tree(&self) -> bool {
        matches!(self, Flavor::Wrapped(_))
    }

    /// Whether a notification the worker sends reaches its client. A wrapped server's own
    /// `*/list_changed` would only confuse clients: the catalog is fixed for the supervisor's
    /// lifetime.
    pub(super) fn relays(&self, method: &str) -> bool {
        match self {
            Flavor::Builtin(_) => true,
            Flavor::Wrapped(_) => !method.ends_with("/list_changed"),
        }
    }

    /// Whether the actor logs a crash itself: a wrapped server's crash is logged with the tail
    /// of its stderr instead.
    pub(super) fn logs_crash_itself(&self) -> bool {
        matches!(self, Flavor::Builtin(_))
    }
}

impl Builtin {
    fn hello(&self, session_tag: &str, sandbox: SandboxPolicy, principal: Option<&str>) -> Hello {
        Hello {
            protocol: WORKER_PROTOCOL_VERSION,
            session_tag: session_tag.to_string(),
            log_filter: self.log_filter.clone(),
            log_format: self.log_format.clone(),
            test_tools: self.test_tools,
            paper_seed: self.paper_seed,
            sandbox,
            fixtures: self.fixtures,
            brokers: self.brokers.clone(),
            call_timeout_ms: u64::try_from(self.call_timeout.as_millis()).ok(),
            trading: self
                .trading
                .as_ref()
                .map(|desk| desk.policy_for(principal))
                .unwrap_or_default(),
        }
    }
}

/// The Bulkhead hello (`ready` must name the pid we spawned and our protocol), then MCP
/// `initialize` and `notifications/initialized`. Returns the `initialize` result.
async fn handshake<R, W>(
    reader: &mut LineReader<R>,
    writer: &mut W,
    hello: Hello,
    pid: u32,
) -> Result<Value, String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let io_error = |error: std::io::Error| format!("socket error: {error}");
    writer
        .write_all(&Control::Hello(hello).to_line())
        .await
        .map_err(io_error)?;
    let line = read_line(reader).await?;
    match Control::from_line(&line) {
        Ok(Control::Ready(ready))
            if ready.protocol == WORKER_PROTOCOL_VERSION && ready.pid == pid =>
        {
            crate::spawn::report_worker_sandbox(pid, &ready.sandbox_degraded);
        }
        Ok(Control::Ready(ready)) => {
            return Err(format!(
                "ready from pid {} speaking protocol {} (expected pid {pid}, protocol {WORKER_PROTOCOL_VERSION})",
                ready.pid, ready.protocol
            ));
        }
        Ok(Control::Refused { reason }) => return Err(format!("worker refused: {reason}")),
        Ok(Control::Hello(_)) | Err(_) => return Err("malformed ready line".into()),
    }
    let initialize = jsonrpc::request(
        &json!(0),
        "initialize",
        Some(json!({
            "protocolVersion": NEWEST_INITIALIZE_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "bulkhead-supervisor", "version": env!("CARGO_PKG_VERSION")},
        })),
    );
    writer
        .write_all(&jsonrpc::to_frame(&initialize))
        .await
        .map_err(io_error)?;
    let result = loop {
        let line = read_line(reader).await?;
        match jsonrpc::parse_message(&line) {
            Ok(Message::Response { id, result }) if id == json!(0) => break result,
            Ok(Message::Error { error, .. }) => {
                return Err(format!("initialize failed: {error}"));
            }
            Ok(Message::Notification { .. }) => continue,
            _ => return Err("unexpected message before the initialize result".into()),
        }
    };
    let initialized = jsonrpc::notification("notifications/initialized", None);
    writer
        .write_all(&jsonrpc::to_frame(&initialized))
        .await
        .map_err(io_error)?;
    Ok(result)
}

async fn read_line<R: AsyncRead + Unpin>(reader: &mut LineReader<R>) -> Result<Vec<u8>, String> {
    match reader.next_frame().await {
        Ok(Some(Frame::Line(line))) => Ok(line),
        Ok(Some(Frame::Oversized { .. })) => Err("oversized handshake frame".into()),
        Ok(None) => Err("worker closed its socket".into()),
        Err(error) => Err(format!("socket error: {error}")),
    }
}
