//! Test doubles for the worker layer: a fake process with the real one's promises, the far
//! end of a worker's socket, and a spawner of fake built-in workers for a [`Launcher`].
//!
//! The fake process keeps the reaper's ordering: its exit closes its end of the socket, then
//! publishes the status, which `wait` and `status` see; a signal after the exit is counted,
//! never acted on (the real `Child` ignores it, and the actor must not send one). Everything
//! runs on tokio's clock, so tests run under paused time and take milliseconds.

use std::collections::BTreeSet;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulkhead_protocol::frame::{Frame, LineReader};
use bulkhead_protocol::handshake::{Control, Ready, SandboxPolicy};
use bulkhead_protocol::jsonrpc;
use bulkhead_protocol::{NOTIFICATION_CANCEL_ACKNOWLEDGED, WORKER_PROTOCOL_VERSION};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tokio::io::{AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::sync::{Notify, watch};
use tokio::task::AbortHandle;

use super::flavor::{Builtin, Flavor};
use super::process::Process;
use super::start::{self, Spawned};
use super::{Launcher, StartError, WorkerHandle, WorkerSpec, WorkerTimeouts};
use crate::spawn::WorkerCommand;

/// Bytes the fake socket buffers in each direction, like a socketpair's.
const SOCKET_BUFFER: usize = 64 * 1024;
/// Largest frame in tests.
const MAX_FRAME: usize = 1 << 20;

/// Timings short enough for tests, distinct enough to tell apart.
pub(crate) const TIMEOUTS: WorkerTimeouts = WorkerTimeouts {
    handshake: Duration::from_secs(10),
    hard_cancel: Duration::from_secs(10),
    close_grace: Duration::from_millis(500),
    term_grace: Duration::from_secs(1),
};

/// The status of a process that exited with `code`.
pub(crate) fn exited(code: i32) -> ExitStatus {
    ExitStatus::from_raw(code << 8)
}

/// The status of a process killed by `signal`.
pub(crate) fn killed(signal: Signal) -> ExitStatus {
    ExitStatus::from_raw(signal as i32)
}

/// The fake kernel's view of one process.
pub(crate) struct Kernel {
    pid: u32,
    status: watch::Sender<Option<ExitStatus>>,
    signals: Mutex<Vec<Signal>>,
    signals_after_exit: AtomicUsize,
    /// Whether SIGTERM ends it (SIGKILL always does).
    obeys_sigterm: AtomicBool,
    /// The task that plays the worker, aborted at the exit so its end of the socket closes.
    peer: Mutex<Option<AbortHandle>>,
    /// The test's end of the socket, when the test plays the worker: dropped at the exit.
    cleaned: AtomicBool,
    /// Held closed, `cleanup_after_reap` waits until the test opens it.
    cleanup_gate: Mutex<Option<Arc<Notify>>>,
}

impl Kernel {
    fn new(pid: u32) -> Arc<Self> {
        Arc::new(Self {
            pid,
            status: watch::Sender::new(None),
            signals: Mutex::new(Vec::new()),
            signals_after_exit: AtomicUsize::new(0),
            obeys_sigterm: AtomicBool::new(true),
            peer: Mutex::new(None),
            cleaned: AtomicBool::new(false),
            cleanup_gate: Mutex::new(None),
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// The process ends: its end of the socket closes, then its status is published.
    pub(crate) fn exit(&self, status: ExitStatus) {
        if self.status.borrow().is_some() {
            return;
        }
        if let Some(peer) = self.peer.lock().unwrap().take() {
            peer.abort();
        }
        self.status.send_replace(Some(status));
    }

    /// Whether the process has exited.
    pub(crate) fn has_exited(&self) -> bool {
        self.status.borrow().is_some()
    }

    /// The signals it received while alive, in order.
    pub(crate) fn signals(&self) -> Vec<Signal> {
        self.signals.lock().unwrap().clone()
    }

    /// Signals sent after it exited (there must be none).
    pub(crate) fn signals_after_exit(&self) -> usize {
        self.signals_after_exit.load(Ordering::Relaxed)
    }

    pub(crate) fn ignore_sigterm(&self) {
        self.obeys_sigterm.store(false, Ordering::Relaxed);
    }

    /// Whether its resources were released (after the reap).
    pub(crate) fn cleaned(&self) -> bool {
        self.cleaned.load(Ordering::Relaxed)
    }

    /// Hold the clean-up after the reap until the returned gate is opened (`notify_one`).
    pub(crate) fn hold_cleanup(&self) -> Arc<Notify> {
        let gate = Arc::new(Notify::new());
        *self.cleanup_gate.lock().unwrap() = Some(gate.clone());
        gate
    }

    fn signal(&self, signal: Signal) {
        if self.has_exited() {
            self.signals_after_exit.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.signals.lock().unwrap().push(signal);
        match signal {
            Signal::SIGKILL => self.exit(killed(signal)),
            Signal::SIGTERM if self.obeys_sigterm.load(Ordering::Relaxed) => {
                self.exit(killed(signal));
            }
            _ => {}
        }
    }
}

/// A fake worker process.
pub(crate) struct FakeProcess {
    kernel: Arc<Kernel>,
}

impl Process for FakeProcess {
    fn pid(&self) -> u32 {
        self.kernel.pid
    }

    fn signal(&self, signal: Signal) {
        self.kernel.signal(signal);
    }

    async fn wait(&mut self) -> io::Result<ExitStatus> {
        let mut status = self.kernel.status.subscribe();
        let status = *status
            .wait_for(Option::is_some)
            .await
            .map_err(|_| io::Error::other("kernel gone"))?;
        Ok(status.expect("wait_for(Option::is_some) yields Some"))
    }

    fn status(&self) -> watch::Receiver<Option<ExitStatus>> {
        self.kernel.status.subscribe()
    }

    async fn cleanup_after_reap(&mut self) {
        let gate = self.kernel.cleanup_gate.lock().unwrap().clone();
        if let Some(gate) = gate {
            gate.notified().await;
        }
        self.kernel.cleaned.store(true, Ordering::Relaxed);
    }
}

/// The worker's end of the socket, played by a test or by [`serve_echo`].
pub(crate) struct Peer {
    reader: LineReader<ReadHalf<DuplexStream>>,
    writer: WriteHalf<DuplexStream>,
}

impl Peer {
    /// The next message the supervisor sent; `None` once it closed the socket.
    pub(crate) async fn recv(&mut self) -> Option<Value> {
        match self.reader.next_frame().await.ok()?? {
            Frame::Line(line) => Some(serde_json::from_slice(&line).expect("JSON from the actor")),
            Frame::Oversized { .. } => panic!("the actor sent an oversized frame"),
        }
    }

    /// Send a message to the supervisor.
    pub(crate) async fn send(&mut self, message: &Value) {
        self.writer
            .write_all(&jsonrpc::to_frame(message))
            .await
            .expect("the actor's end is open");
    }

    /// Play the built-in worker's side of the start: `ready` for the hello, then answer
    /// `initialize` and read `notifications/initialized`.
    pub(crate) async fn accept_start(&mut self, pid: u32) {
        let Some(Frame::Line(hello)) = self.reader.next_frame().await.unwrap() else {
            panic!("no hello");
        };
        assert!(matches!(Control::from_line(&hello), Ok(Control::Hello(_))));
        let ready = Control::Ready(Ready {
            protocol: WORKER_PROTOCOL_VERSION,
            pid,
            version: "fake".into(),
            sandbox_degraded: Vec::new(),
        });
        self.writer.write_all(&ready.to_line()).await.unwrap();
        let initialize = self.recv().await.expect("initialize");
        assert_eq!(initialize["method"], "initialize");
        self.send(&jsonrpc::response(
            &initialize["id"],
            json!({"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}, "serverInfo": {"name": "fake"}}),
        ))
        .await;
        let initialized = self.recv().await.expect("initialized");
        assert_eq!(initialized["method"], "notifications/initialized");
    }
}

/// A fake worker as the start-up code receives it.
pub(super) type FakeSpawned = Spawned<FakeProcess, ReadHalf<DuplexStream>, WriteHalf<DuplexStream>>;

/// A fake process and both ends of its socket: the actor's halves and the worker's.
pub(super) fn process(pid: u32) -> (Arc<Kernel>, FakeSpawned, Peer) {
    let kernel = Kernel::new(pid);
    let (ours, theirs) = tokio::io::duplex(SOCKET_BUFFER);
    let (reader, writer) = tokio::io::split(ours);
    let (their_reader, their_writer) = tokio::io::split(theirs);
    let spawned = Spawned {
        process: FakeProcess {
            kernel: kernel.clone(),
        },
        reader,
        writer,
        stderr: None,
        sandbox: SandboxPolicy::default(),
        holdings: Default::default(),
    };
    let peer = Peer {
        reader: LineReader::new(their_reader, MAX_FRAME),
        writer: their_writer,
    };
    (kernel, spawned, peer)
}

/// The built-in flavor with a command that is never run.
pub(crate) fn builtin() -> Flavor {
    Flavor::Builtin(Arc::new(Builtin {
        command: WorkerCommand {
            program: "/nonexistent/bulkhead-worker".into(),
            args: Vec::new(),
            wrapped: None,
        },
        log_filter: "info".into(),
        log_format: "text".into(),
        test_tools: false,
        paper_seed: None,
        fixtures: false,
        brokers: Vec::new(),
        call_timeout: Duration::from_secs(60),
        trading: None,
    }))
}

fn spec(tag: &str) -> WorkerSpec {
    WorkerSpec {
        flavor: builtin(),
        session_tag: tag.into(),
        max_frame_bytes: MAX_FRAME,
    }
}

/// A worker started through the real start-up code on a fake process, with the test playing
/// the worker's end.
pub(crate) async fn started(timeouts: WorkerTimeouts) -> (WorkerHandle, Peer, Arc<Kernel>) {
    let (kernel, spawned, mut peer) = process(4242);
    let (handle, ()) = tokio::join!(
        start::start(spawned, spec("test"), timeouts, None),
        peer.accept_start(4242),
    );
    (handle.expect("the start succeeds"), peer, kernel)
}

/// Play a well-behaved built-in worker until the supervisor closes the socket, then exit 0:
/// `tools/list` lists `echo` and `hang`; `echo` answers at once, `hang` never; cancellations
/// are acknowledged.
async fn serve_echo(mut peer: Peer, kernel: Arc<Kernel>) {
    peer.accept_start(kernel.pid).await;
    while let Some(message) = peer.recv().await {
        let id = message["id"].clone();
        match message["method"].as_str() {
            Some("tools/list") => {
                let tools = json!({"tools": [
                    {"name": "echo", "inputSchema": {"type": "object"}},
                    {"name": "hang", "inputSchema": {"type": "object"}},
                ]});
                peer.send(&jsonrpc::response(&id, tools)).await;
            }
            Some("tools/call") if message["params"]["name"] == "hang" => {}
            Some("tools/call") => {
                let text = message["params"]["arguments"].to_string();
                let result = json!({"content": [{"type": "text", "text": text}], "isError": false});
                peer.send(&jsonrpc::response(&id, result)).await;
            }
            Some("notifications/cancelled") => {
                let acknowledgement = jsonrpc::notification(
                    NOTIFICATION_CANCEL_ACKNOWLEDGED,
                    Some(json!({"requestId": message["params"]["requestId"]})),
                );
                peer.send(&acknowledgement).await;
            }
            Some(method) if !id.is_null() => {
                let error = jsonrpc::error_response(&id, -32601, method, None);
                peer.send(&error).await;
            }
            _ => {}
        }
    }
    // EOF on the socket: a built-in worker exits.
    kernel.exit(exited(0));
}

/// Starts fake built-in workers for a [`Launcher`], each played by [`serve_echo`] on a fake
/// process the test can reach by pid.
#[derive(Clone, Default)]
pub(crate) struct FakeSpawner {
    next_pid: Arc<AtomicU32>,
    kernels: Arc<Mutex<Vec<Arc<Kernel>>>>,
    failures: Arc<AtomicUsize>,
    /// The provisioned environment each principal has "on disk" (none unless set).
    stamps: Arc<Mutex<std::collections::HashMap<String, crate::credentials::EnvStamp>>>,
}

impl FakeSpawner {
    /// A launcher whose workers this spawner fakes.
    pub(crate) fn launcher(&self) -> Launcher {
        Launcher::fake(self.clone(), spec(""), TIMEOUTS)
    }

    /// The next `count` spawns fail as a system limit would make them.
    pub(crate) fn fail_next(&self, count: usize) {
        self.failures.store(count, Ordering::Relaxed);
    }

    /// Give `principal` a provisioned environment of `contents` (empty: none), as its
    /// environment file would.
    pub(crate) fn provision(&self, principal: &str, contents: &str) {
        let mut stamps = self.stamps.lock().unwrap();
        if contents.is_empty() {
            stamps.remove(principal);
        } else {
            stamps.insert(
                principal.to_string(),
                crate::credentials::EnvStamp::of(contents.as_bytes()),
            );
        }
    }

    /// The stamp of `principal`'s provisioned environment now.
    pub(crate) fn stamp_of(&self, principal: &str) -> Option<crate::credentials::EnvStamp> {
        self.stamps.lock().unwrap().get(principal).copied()
    }

    /// Every process started so far, oldest first.
    pub(crate) fn kernels(&self) -> Vec<Arc<Kernel>> {
        self.kernels.lock().unwrap().clone()
    }

    /// The process with `pid`.
    pub(crate) fn kernel(&self, pid: u32) -> Arc<Kernel> {
        self.kernels()
            .into_iter()
            .find(|kernel| kernel.pid == pid)
            .expect("a process of this spawner")
    }

    /// Processes alive now.
    pub(crate) fn alive(&self) -> BTreeSet<u32> {
        self.kernels()
            .iter()
            .filter(|kernel| !kernel.has_exited())
            .map(|kernel| kernel.pid)
            .collect()
    }

    pub(super) fn spawn(&self) -> Result<FakeSpawned, StartError> {
        if self
            .failures
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(1)
            })
            .is_ok()
        {
            return Err(StartError::Spawn {
                program: "fake".into(),
                source: io::Error::from_raw_os_error(libc::EAGAIN),
            });
        }
        let pid = 1000 + self.next_pid.fetch_add(1, Ordering::Relaxed);
        let (kernel, spawned, peer) = process(pid);
        let task = tokio::spawn(serve_echo(peer, kernel.clone()));
        *kernel.peer.lock().unwrap() = Some(task.abort_handle());
        self.kernels.lock().unwrap().push(kernel);
        Ok(spawned)
    }
}

/// Wait (in tokio time) until `condition` holds, checking every millisecond; panics after
/// `within`.
pub(crate) async fn eventually(within: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// `future`'s output, or a panic if it takes longer than `within` (in tokio time): under
/// paused time a test that would hang fails at once instead.
pub(crate) async fn within<T>(within: Duration, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(within, future)
        .await
        .unwrap_or_else(|_| panic!("not done within {within:?}"))
}
