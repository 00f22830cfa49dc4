//! One owner per worker process: a cloneable [`WorkerHandle`] and the actor task that owns the
//! `Child` and the supervisor's end of the private socket.
//!
//! Start-up ([`WorkerHandle::start`]) spawns the process, runs the versioned handshake (the
//! worker must report the pid we spawned), then initializes MCP on the socket with the
//! supervisor as client. After that the actor multiplexes calls: each [`Call`] gets a fresh
//! numeric JSON-RPC id on the socket, and its reply (plus progress notifications, whose tokens
//! are rewritten to the call id on the way in and restored on the way out) comes back on the
//! call's own bounded queue ([`outbox`]; [`delivery`] routes and, for a slow client, holds the
//! worker back or drops what may be dropped). Dropping an unfinished `Call` cancels it: the actor sends
//! `notifications/cancelled` and gives the worker [`WorkerTimeouts::hard_cancel`] to show that
//! the call stopped ([`cancellation`] says what counts as evidence); a worker that shows
//! nothing by then is killed, with crash semantics.
//!
//! Stop sequence: close the socket (the worker exits on EOF) → wait `close_grace` → SIGTERM to
//! the worker and its process group → wait `term_grace` → SIGKILL → reap. Signalling the pid as
//! well as the group reaches a worker that left its group. A worker that dies on its
//! own fails every call in flight with [`CallEvent::Died`]; nothing else is touched.
//!
//! A wrapped server (external worker mode, [`crate::wrap`]) differs in three places: start-up
//! is the [`bridge`]'s era detection instead of the Bulkhead handshake, and every call and reply
//! passes through the bridge; its stderr is read into a redacted tail that is logged when it
//! crashes or fails to start; and stopping it stops its whole tree — the signals reach every
//! descendant wherever its process group (and the cgroup, with SIGKILL); the reaper kills its
//! group's remnants just before the reap, and after it the supervisor's orphans are swept
//! ([`crate::spawn::sweep`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bulkhead_protocol::frame::{Frame, LineReader};
use bulkhead_protocol::handshake::{Control, Hello, SandboxPolicy};
use bulkhead_protocol::jsonrpc::{self, Message};
use bulkhead_protocol::{Era, NEWEST_INITIALIZE_VERSION, WORKER_PROTOCOL_VERSION};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::principal::Principal;
use crate::spawn::{Child, Spawned, Spawner, WorkerCommand, WorkerLease};
use crate::trading::desk::{Binding, TradingDesk};
use crate::wrap::WrappedServer;
use crate::wrap::bridge::{self, ReplyFix};
use crate::wrap::stderr::SharedTail;

mod cancellation;
mod delivery;
mod launcher;
mod outbox;
use cancellation::Abandoned;
use delivery::{InFlight, Stall};
pub use launcher::Launcher;

/// How long to keep reading a dead worker's socket for replies it wrote before exiting.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(100);

/// Timings of one worker's life.
#[derive(Debug, Clone, Copy)]
pub struct WorkerTimeouts {
    /// Spawn to MCP-ready, after which the start counts as failed.
    pub handshake: Duration,
    /// How long a cancelled call may keep running before the worker is killed.
    pub hard_cancel: Duration,
    /// How long a worker gets to exit after its socket is closed.
    pub close_grace: Duration,
    /// How long a worker gets to exit after SIGTERM.
    pub term_grace: Duration,
}

/// What to start.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    pub command: WorkerCommand,
    /// Short session tag the worker puts on its log lines.
    pub session_tag: String,
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
    /// Largest frame accepted from the worker.
    pub max_frame_bytes: usize,
    /// External worker mode: the stdio server to run instead of the built-in worker.
    pub wrapped: Option<Arc<WrappedServer>>,
    /// The trading desk: the policy in each hello, and the answers to `bulkhead/` requests
    /// (`None` for a wrapped server, whose requests in that namespace are refused).
    pub trading: Option<Arc<TradingDesk>>,
}

/// Why a worker is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitCause {
    /// Stopped by the supervisor (session closed, expired, or shutdown).
    Stopped,
    /// Exited or closed its socket without being asked.
    Crashed,
    /// Killed by the supervisor for misbehaving; the reason says how.
    Killed(&'static str),
}

/// How a worker ended: the cause and the exit status as the OS reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerExit {
    pub cause: ExitCause,
    pub status: String,
}

impl WorkerExit {
    /// Whether the session's state was lost involuntarily.
    pub fn is_crash(&self) -> bool {
        !matches!(self.cause, ExitCause::Stopped)
    }
}

impl fmt::Display for WorkerExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            ExitCause::Stopped => write!(f, "stopped ({})", self.status),
            ExitCause::Crashed => write!(f, "died unexpectedly ({})", self.status),
            ExitCause::Killed(reason) => {
                write!(f, "was killed because it {reason} ({})", self.status)
            }
        }
    }
}

/// Why a worker could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot spawn worker {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("worker pid {pid} failed its handshake: {reason}")]
    Handshake { pid: u32, reason: String },
    #[error("cannot prepare the wrapped server's environment: {0}")]
    Environment(String),
}

/// Something a call receives.
#[derive(Debug)]
pub enum CallEvent {
    /// A notification the worker sent about this call (progress), token restored.
    Notification(Value),
    /// A request the worker sent to the client (sampling, elicitation, roots) while this call
    /// was in flight, still carrying the worker-side id; answer it with
    /// [`WorkerHandle::respond`].
    Request(Value),
    /// The final JSON-RPC response (result or error), still carrying the worker-side id.
    Reply(Value),
    /// The worker died before replying.
    Died(WorkerExit),
}

enum Command {
    Call {
        id: u64,
        frame: Vec<u8>,
        progress_token: Option<Value>,
        outbox: outbox::Sender,
    },
    Cancel {
        id: u64,
    },
    /// The client's answer to request `id` of the worker.
    Respond {
        id: Value,
        frame: Vec<u8>,
    },
    Stop,
}

struct Shared {
    pid: u32,
    /// The era a wrapped server speaks; `None` for the built-in worker (no bridging).
    era: Option<Era>,
    /// The worker's `initialize` result (its capabilities and server info).
    initialize_result: Value,
    tag: String,
    next_id: AtomicU64,
    commands: mpsc::UnboundedSender<Command>,
    exit: watch::Receiver<Option<WorkerExit>>,
    /// The process's exit status the moment the reaper collects it, before the actor has
    /// finished with the worker: from then on the worker is dead to callers.
    reaped: watch::Receiver<Option<std::process::ExitStatus>>,
    /// Why the actor is ending the worker, once it has decided.
    planned: Arc<OnceLock<ExitCause>>,
    /// The session the worker serves, once bound: its `bulkhead/` requests act for it.
    binding: Arc<OnceLock<Binding>>,
}

/// Cloneable handle to one worker process.
#[derive(Clone)]
pub struct WorkerHandle {
    shared: Arc<Shared>,
}

impl fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerHandle")
            .field("pid", &self.shared.pid)
            .field("tag", &self.shared.tag)
            .finish()
    }
}

/// A call in flight. Dropping it before its reply cancels it in the worker.
pub struct Call {
    id: u64,
    events: outbox::Receiver,
    shared: Arc<Shared>,
    finished: bool,
    /// How the bridge fixes the reply (wrapped servers only).
    fix: Option<ReplyFix>,
}

impl Call {
    /// The next event; after a `Reply` or `Died` the call is finished.
    pub async fn next_event(&mut self) -> CallEvent {
        let mut event = match self.events.next().await {
            Some(event) => event,
            None => CallEvent::Died(self.exit_now()),
        };
        if let (CallEvent::Reply(reply), Some(fix)) = (&mut event, self.fix) {
            bridge::inbound(fix, reply);
        }
        if !matches!(event, CallEvent::Notification(_)) {
            self.finished = true;
        }
        event
    }

    fn exit_now(&self) -> WorkerExit {
        self.shared.exit.borrow().clone().unwrap_or(WorkerExit {
            cause: ExitCause::Crashed,
            status: "worker task ended".into(),
        })
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.shared.commands.send(Command::Cancel { id: self.id });
        }
    }
}

impl WorkerHandle {
    /// Spawn a worker, run the handshake and MCP initialization, and start its actor. With a
    /// `principal` (a session's worker), a wrapped server gets that principal's provisioned
    /// environment; without one (the catalog's, a pool worker) it gets none.
    pub(super) async fn start(
        spawner: &Spawner,
        spec: WorkerSpec,
        timeouts: WorkerTimeouts,
        principal: Option<&str>,
    ) -> Result<Self, StartError> {
        let (command, redactor) = match &spec.wrapped {
            None => (spec.command.clone(), None),
            Some(server) => {
                let launch = server.launch(principal).map_err(StartError::Environment)?;
                (launch.command, Some(launch.redactor))
            }
        };
        let program = command.program.display().to_string();
        let Spawned {
            mut child,
            stderr,
            socket,
            sandbox,
            lease,
        } = spawner
            .spawn(command)
            .await
            .map_err(|source| StartError::Spawn { program, source })?;
        let pid = child.id();
        let stderr = match (stderr, redactor) {
            (Some(stderr), Some(redactor)) => Some(crate::wrap::stderr::collect(
                stderr,
                spec.session_tag.clone(),
                pid,
                redactor,
            )),
            _ => None,
        };
        let (read_half, mut write_half) = socket.into_split();
        let mut reader = LineReader::new(read_half, spec.max_frame_bytes);
        let (limit, started) = match &spec.wrapped {
            None => (
                timeouts.handshake,
                tokio::time::timeout(
                    timeouts.handshake,
                    handshake(&mut reader, &mut write_half, &spec, sandbox, pid, principal),
                )
                .await
                .map(|result| result.map(|initialize| (initialize, None))),
            ),
            Some(server) => (
                server.start_timeout(),
                tokio::time::timeout(
                    server.start_timeout(),
                    bridge::connect(&mut reader, &mut write_half, server.detected()),
                )
                .await
                .map(|result| {
                    result.map(|detected| {
                        server.remember(&detected);
                        (detected.initialize_result, Some(detected.era))
                    })
                }),
            ),
        };
        let started =
            started.unwrap_or_else(|_| Err(format!("not ready within {} ms", limit.as_millis())));
        let (initialize_result, era) = match started {
            Ok(started) => started,
            Err(reason) => {
                let wrapped = spec.wrapped.is_some();
                let reason = abandon_start(&mut child, &lease, pid, wrapped, reason).await;
                if let Some((tail, reader_task)) = stderr {
                    log_stderr_tail(
                        &spec.session_tag,
                        pid,
                        "failed to start",
                        &tail,
                        reader_task,
                    )
                    .await;
                }
                return Err(StartError::Handshake { pid, reason });
            }
        };

        let (commands, inbox) = mpsc::unbounded_channel();
        let (exit_tx, exit) = watch::channel(None);
        let reaped = child.status_watch();
        let planned = Arc::new(OnceLock::new());
        let binding = Arc::new(OnceLock::new());
        let (frames, outbox) = mpsc::unbounded_channel();
        tokio::spawn(write_frames(write_half, outbox));
        let actor = Actor {
            tag: spec.session_tag.clone(),
            pid,
            child,
            reader,
            writer: Some(frames),
            in_flight: HashMap::new(),
            relayed: HashMap::new(),
            stalled: None,
            draining: false,
            abandoned: Abandoned::new(timeouts.hard_cancel, era),
            inbox,
            exit_tx,
            planned: planned.clone(),
            timeouts,
            lease,
            wrapped: spec.wrapped.is_some(),
            stderr,
            desk: spec.trading.clone().filter(|_| spec.wrapped.is_none()),
            binding: binding.clone(),
        };
        tokio::spawn(actor.run());
        Ok(Self {
            shared: Arc::new(Shared {
                pid,
                era,
                initialize_result,
                tag: spec.session_tag,
                next_id: AtomicU64::new(1),
                commands,
                exit,
                reaped,
                planned,
                binding,
            }),
        })
    }

    /// Binds the worker to its session: its `bulkhead/` requests act for `principal` from now
    /// on. A worker is bound once, when its session opens, and never rebound.
    pub fn bind(&self, principal: &Principal, session_tag: &str) {
        let _ = self.shared.binding.set(Binding {
            principal: principal.clone(),
            session_tag: session_tag.to_owned(),
        });
    }

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.shared.pid
    }

    /// The worker's answer to `initialize`.
    pub fn initialize_result(&self) -> &Value {
        &self.shared.initialize_result
    }

    /// How the worker ended, if it has: the actor's final word, or, between the reaper
    /// collecting the process and the actor finishing with it, the status with the cause the
    /// actor had decided on (an unplanned death is a crash).
    pub fn exit(&self) -> Option<WorkerExit> {
        if let Some(exit) = self.shared.exit.borrow().clone() {
            return Some(exit);
        }
        let status = (*self.shared.reaped.borrow())?;
        let cause = self
            .shared
            .planned
            .get()
            .cloned()
            .unwrap_or(ExitCause::Crashed);
        Some(WorkerExit {
            cause,
            status: describe_status(status),
        })
    }

    /// Wait until the worker is gone (reaped).
    pub async fn exited(&self) -> WorkerExit {
        let mut exit = self.shared.exit.clone();
        loop {
            if let Some(exit) = exit.borrow_and_update().clone() {
                return exit;
            }
            if exit.changed().await.is_err() {
                return WorkerExit {
                    cause: ExitCause::Crashed,
                    status: "worker task ended".into(),
                };
            }
        }
    }

    /// Send a request to the worker. `params` is forwarded as given, except that a
    /// `_meta.progressToken` is swapped for the call id so replies can be routed.
    pub fn call(&self, method: &str, mut params: Option<Value>) -> Result<Call, WorkerExit> {
        if let Some(exit) = self.exit() {
            return Err(exit);
        }
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let fix = self.shared.era.map(|era| {
            let (bridged, fix) = bridge::outbound(era, method, params.take());
            params = bridged;
            fix
        });
        let progress_token = params
            .as_mut()
            .and_then(|params| params.get_mut("_meta"))
            .and_then(|meta| meta.get_mut("progressToken"))
            .map(|token| std::mem::replace(token, json!(id)));
        let frame = jsonrpc::to_frame(&jsonrpc::request(&json!(id), method, params));
        let (outbox, events) = outbox::outbox();
        let command = Command::Call {
            id,
            frame,
            progress_token,
            outbox,
        };
        if self.shared.commands.send(command).is_err() {
            return Err(self.exit().unwrap_or(WorkerExit {
                cause: ExitCause::Crashed,
                status: "worker task ended".into(),
            }));
        }
        Ok(Call {
            id,
            events,
            shared: self.shared.clone(),
            finished: false,
            fix,
        })
    }

    /// Pass the client's answer to a request this worker sent (its id already restored).
    pub fn respond(&self, answer: Value) {
        let frame = jsonrpc::to_frame(&answer);
        let id = answer.get("id").cloned().unwrap_or(Value::Null);
        let _ = self.shared.commands.send(Command::Respond { id, frame });
    }

    /// Run the stop sequence and wait until the worker is reaped.
    pub async fn stop(&self) -> WorkerExit {
        let _ = self.shared.commands.send(Command::Stop);
        self.exited().await
    }
}

/// Kill a worker whose start failed (a wrapped server's whole tree), reap it, and say how it
/// ended.
async fn abandon_start(
    child: &mut Child,
    lease: &WorkerLease,
    pid: u32,
    wrapped: bool,
    reason: String,
) -> String {
    if wrapped {
        lease.signal_descendants(pid, Signal::SIGKILL);
    }
    child.start_kill();
    // The reaper kills what is left in the worker's group just before the reap.
    let status = child.wait().await;
    if wrapped {
        crate::spawn::sweep().await;
    }
    match status {
        Ok(status) if !status.success() && status.code().is_some() => {
            format!("{reason}; worker exited with {status}")
        }
        _ => reason,
    }
}

/// How long, after a wrapped server ended, its stderr reader gets to collect the last lines.
const STDERR_SETTLE: Duration = Duration::from_millis(200);

/// Log what happened to a wrapped server with the redacted tail of its stderr.
async fn log_stderr_tail(
    tag: &str,
    pid: u32,
    what: &str,
    tail: &SharedTail,
    reader: tokio::task::JoinHandle<()>,
) {
    // The reader ends when every process holding the pipe is gone.
    let _ = tokio::time::timeout(STDERR_SETTLE, reader).await;
    let text = tail.lock().map(|tail| tail.text()).unwrap_or_default();
    if text.is_empty() {
        tracing::warn!(session = %tag, pid, "wrapped server {what}; it wrote nothing to stderr");
    } else {
        tracing::warn!(
            session = %tag,
            pid,
            "wrapped server {what}; the last lines of its stderr (redacted):\n{text}"
        );
    }
}

async fn handshake(
    reader: &mut LineReader<OwnedReadHalf>,
    writer: &mut OwnedWriteHalf,
    spec: &WorkerSpec,
    sandbox: SandboxPolicy,
    pid: u32,
    principal: Option<&str>,
) -> Result<Value, String> {
    let hello = Control::Hello(Hello {
        protocol: WORKER_PROTOCOL_VERSION,
        session_tag: spec.session_tag.clone(),
        log_filter: spec.log_filter.clone(),
        log_format: spec.log_format.clone(),
        test_tools: spec.test_tools,
        paper_seed: spec.paper_seed,
        sandbox,
        fixtures: spec.fixtures,
        trading: spec
            .trading
            .as_ref()
            .map(|desk| desk.policy_for(principal))
            .unwrap_or_default(),
    });
    let io_error = |error: std::io::Error| format!("socket error: {error}");
    writer.write_all(&hello.to_line()).await.map_err(io_error)?;
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

async fn read_line(reader: &mut LineReader<OwnedReadHalf>) -> Result<Vec<u8>, String> {
    match reader.next_frame().await {
        Ok(Some(Frame::Line(line))) => Ok(line),
        Ok(Some(Frame::Oversized { .. })) => Err("oversized handshake frame".into()),
        Ok(None) => Err("worker closed its socket".into()),
        Err(error) => Err(format!("socket error: {error}")),
    }
}

async fn write_frames(mut writer: OwnedWriteHalf, mut frames: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(frame) = frames.recv().await {
        if writer.write_all(&frame).await.is_err() {
            break;
        }
    }
    let _ = writer.shutdown().await;
}

struct Actor {
    tag: String,
    pid: u32,
    child: Child,
    reader: LineReader<OwnedReadHalf>,
    writer: Option<mpsc::UnboundedSender<Vec<u8>>>,
    in_flight: HashMap<u64, InFlight>,
    /// Requests the worker sent that a client has yet to answer: their id (as JSON text) and
    /// the call they were relayed on.
    relayed: HashMap<String, u64>,
    /// A notification waiting for room in its call's queue; the socket is not read meanwhile.
    stalled: Option<Stall>,
    /// Reading what a dead worker left in its socket: never stall then.
    draining: bool,
    /// Cancelled calls that may still run in the worker, with the instant it gets killed.
    abandoned: Abandoned,
    inbox: mpsc::UnboundedReceiver<Command>,
    exit_tx: watch::Sender<Option<WorkerExit>>,
    /// Shared with the handles: the cause, set as soon as the main loop ends.
    planned: Arc<OnceLock<ExitCause>>,
    timeouts: WorkerTimeouts,
    /// The worker's cgroup and uid, released when the actor ends, after the worker is reaped.
    lease: WorkerLease,
    /// Whether this is a wrapped server (external worker mode) with a tree to look after.
    wrapped: bool,
    /// A wrapped server's stderr tail and its reader task; `None` for the built-in worker.
    stderr: Option<(SharedTail, tokio::task::JoinHandle<()>)>,
    /// Answers the worker's `bulkhead/` requests (the built-in worker only).
    desk: Option<Arc<TradingDesk>>,
    binding: Arc<OnceLock<Binding>>,
}

/// How the actor's main loop ended.
enum LoopEnd {
    StopRequested,
    SocketClosed,
    Exited(std::process::ExitStatus),
    Kill(&'static str),
}

impl Actor {
    async fn run(mut self) {
        let end = self.serve().await;
        let exit = self.finish(end).await;
        let stderr = self.stderr.take();
        if exit.is_crash() && !self.wrapped {
            tracing::warn!(session = %self.tag, pid = self.pid, "worker {exit}");
        } else if !exit.is_crash() {
            tracing::debug!(session = %self.tag, pid = self.pid, "worker {exit}");
        }
        for (_, call) in self.in_flight.drain() {
            call.outbox.push(CallEvent::Died(exit.clone()));
        }
        let crashed = exit.is_crash().then(|| exit.to_string());
        // Release the cgroup, uid and private home before anyone hears the worker is gone, so
        // a closed session has left nothing behind by the time its close is answered.
        drop(std::mem::take(&mut self.lease));
        let _ = self.exit_tx.send(Some(exit));
        if let (Some(what), Some((tail, reader))) = (crashed, stderr) {
            log_stderr_tail(&self.tag, self.pid, &what, &tail, reader).await;
        }
    }

    /// Signal the worker itself and its process group — both, since a worker may leave its
    /// group — and, for a wrapped server, every descendant wherever its group (found before
    /// the server dies, while the parent links still lead to it).
    fn signal(&self, signal: Signal) {
        if self.wrapped {
            self.lease.signal_descendants(self.pid, signal);
        }
        self.child.signal(signal);
    }

    /// After a wrapped server is reaped: kill what is left of its cgroup and sweep the orphans
    /// that left it. (What was left in its process group was killed by the reaper just before
    /// the reap, while the group's id could not yet belong to anyone else; never signal the
    /// group after the reap.)
    async fn clear_tree(&self) {
        self.lease.kill_cgroup();
        crate::spawn::sweep().await;
    }

    async fn serve(&mut self) -> LoopEnd {
        loop {
            let kill_at = self.abandoned.next_deadline();
            let stall = self.stall_wait();
            tokio::select! {
                frame = self.reader.next_frame(), if self.reading() => match frame {
                    Ok(Some(Frame::Line(line))) => self.on_worker_line(&line),
                    Ok(Some(Frame::Oversized { .. })) => return LoopEnd::Kill("sent a frame over the size limit"),
                    Ok(None) | Err(_) => return LoopEnd::SocketClosed,
                },
                end = async { match stall {
                    Some(stall) => stall.wait().await,
                    None => std::future::pending().await,
                } } => self.end_stall(end),
                command = self.inbox.recv() => match command {
                    Some(Command::Call { id, frame, progress_token, outbox }) => {
                        self.in_flight.insert(id, InFlight::new(outbox, progress_token));
                        self.write(frame);
                    }
                    Some(Command::Cancel { id }) => self.cancel(id),
                    Some(Command::Respond { id, frame }) => {
                        self.on_answer(&id);
                        self.write(frame);
                    }
                    Some(Command::Stop) | None => return LoopEnd::StopRequested,
                },
                () = sleep_until_opt(kill_at) => {
                    return LoopEnd::Kill("ignored a cancellation past the hard limit");
                }
                status = self.child.wait() => match status {
                    Ok(status) => {
                        self.drain_replies().await;
                        return LoopEnd::Exited(status);
                    }
                    Err(_) => return LoopEnd::SocketClosed,
                },
            }
        }
    }

    /// The process exited; replies it wrote just before may still sit in the socket.
    async fn drain_replies(&mut self) {
        self.draining = true;
        self.stalled = None;
        let drain = async {
            while let Ok(Some(Frame::Line(line))) = self.reader.next_frame().await {
                self.on_worker_line(&line);
            }
        };
        let _ = tokio::time::timeout(DRAIN_AFTER_EXIT, drain).await;
    }

    fn write(&self, frame: Vec<u8>) {
        if let Some(writer) = &self.writer {
            let _ = writer.send(frame);
        }
    }

    fn cancel(&mut self, id: u64) {
        if self.remove_call(id).is_none() {
            return;
        }
        self.end_stall(delivery::StallEnd::Interrupted);
        for frame in self.abandoned.cancel(id, Instant::now()) {
            self.write(frame);
        }
    }

    /// Make sure the process is gone and reaped, following the stop sequence as needed.
    async fn finish(&mut self, end: LoopEnd) -> WorkerExit {
        let cause = match &end {
            LoopEnd::StopRequested => ExitCause::Stopped,
            LoopEnd::SocketClosed | LoopEnd::Exited(_) => ExitCause::Crashed,
            LoopEnd::Kill(reason) => ExitCause::Killed(reason),
        };
        let _ = self.planned.set(cause.clone());
        // Closing our end of the socket is the first, polite step of every stop.
        self.writer = None;
        let status = match end {
            LoopEnd::Exited(status) => status,
            LoopEnd::Kill(_) => {
                self.signal(Signal::SIGKILL);
                self.reap().await
            }
            LoopEnd::StopRequested | LoopEnd::SocketClosed => self.stop_sequence().await,
        };
        if self.wrapped {
            self.clear_tree().await;
        }
        WorkerExit {
            cause,
            status: describe_status(status),
        }
    }

    async fn stop_sequence(&mut self) -> std::process::ExitStatus {
        if let Ok(Ok(status)) =
            tokio::time::timeout(self.timeouts.close_grace, self.child.wait()).await
        {
            return status;
        }
        self.signal(Signal::SIGTERM);
        if let Ok(Ok(status)) =
            tokio::time::timeout(self.timeouts.term_grace, self.child.wait()).await
        {
            return status;
        }
        tracing::warn!(session = %self.tag, pid = self.pid, "worker ignored SIGTERM; killing it");
        self.signal(Signal::SIGKILL);
        self.reap().await
    }

    async fn reap(&mut self) -> std::process::ExitStatus {
        loop {
            match self.child.wait().await {
                Ok(status) => return status,
                Err(error) => {
                    tracing::error!(session = %self.tag, pid = self.pid, "waiting for worker: {error}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn describe_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => {
            let name = Signal::try_from(signal).map_or("unknown", Signal::as_str);
            format!("killed by signal {signal} ({name})")
        }
        _ => status.to_string(),
    }
}
