//! Bringing a spawned worker up: the connection's first exchange within its start timeout,
//! then the actor and the handle; or, on failure, the process killed and reaped and the reason
//! (with a wrapped server's stderr tail in the log).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

use bulkhead_protocol::frame::LineReader;
use bulkhead_protocol::handshake::SandboxPolicy;
use bulkhead_protocol::writer::FrameWriter;
use nix::sys::signal::Signal;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};

use crate::wrap::stderr::Collected;

use super::actor::Actor;
use super::adopt::Holdings;
use super::cancellation::Abandoned;
use super::flavor::Connected;
use super::handle::{Shared, WorkerHandle};
use super::process::Process;
use super::{Flavor, StartError, WorkerSpec, WorkerTimeouts};

/// A process just spawned for a worker, and its end of the connection.
pub(super) struct Spawned<P, R, W> {
    pub(super) process: P,
    pub(super) reader: R,
    pub(super) writer: W,
    /// A wrapped server's stderr, being read into its tail.
    pub(super) stderr: Option<Collected>,
    /// The limits it runs under, which its hello repeats.
    pub(super) sandbox: SandboxPolicy,
    /// What a reload must pass on; nothing without a real socket.
    pub(super) holdings: Holdings,
}

/// Bring the connection up and start the actor, or kill the process and say why not.
pub(super) async fn start<P, R, W>(
    spawned: Spawned<P, R, W>,
    spec: WorkerSpec,
    timeouts: WorkerTimeouts,
    principal: Option<&str>,
) -> Result<WorkerHandle, StartError>
where
    P: Process,
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let Spawned {
        mut process,
        reader,
        mut writer,
        stderr,
        sandbox,
        holdings,
    } = spawned;
    let pid = process.pid();
    let mut reader = LineReader::new(reader, spec.max_frame_bytes);
    let limit = spec.flavor.start_timeout(&timeouts);
    let connecting = spec.flavor.connect(
        &mut reader,
        &mut writer,
        &spec.session_tag,
        sandbox,
        pid,
        principal,
    );
    let connected = tokio::time::timeout(limit, connecting)
        .await
        .unwrap_or_else(|_| Err(format!("not ready within {} ms", limit.as_millis())));
    let connected = match connected {
        Ok(connected) => connected,
        Err(reason) => {
            let (reason, status) = abandon(&mut process, reason).await;
            if let Some(stderr) = stderr {
                let hint = |tail: &str| match &spec.flavor {
                    Flavor::Wrapped(server) => server.start_hint(tail, status),
                    Flavor::Builtin(_) => None,
                };
                stderr
                    .log_with_hint(&spec.session_tag, pid, "failed to start", hint)
                    .await;
            }
            return Err(StartError::Handshake { pid, reason });
        }
    };

    let reader_writer = Running {
        process,
        reader,
        writer,
        stderr,
        holdings,
        next_id: 1,
    };
    Ok(run_actor(reader_writer, connected, spec, timeouts))
}

/// A worker whose connection is up (just started, or taken over from the previous image).
pub(super) struct Running<P, R, W> {
    pub(super) process: P,
    pub(super) reader: LineReader<R>,
    pub(super) writer: W,
    pub(super) stderr: Option<Collected>,
    /// What a reload must pass on; nothing without a real socket.
    pub(super) holdings: Holdings,
    /// The first call id to use on the socket.
    pub(super) next_id: u64,
}

/// Start the actor of a worker whose connection is up, and return its handle.
pub(super) fn run_actor<P, R, W>(
    running: Running<P, R, W>,
    connected: Connected,
    spec: WorkerSpec,
    timeouts: WorkerTimeouts,
) -> WorkerHandle
where
    P: Process,
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let Running {
        process,
        reader,
        writer,
        stderr,
        holdings,
        next_id,
    } = running;
    let pid = process.pid();
    let (commands, inbox) = mpsc::unbounded_channel();
    let (exit_tx, exit) = watch::channel(None);
    let reaped = process.status();
    let planned = Arc::new(OnceLock::new());
    let binding = Arc::new(OnceLock::new());
    // What goes to a worker is bounded by construction (see ARCHITECTURE.md, *Invariants*),
    // so frames for it never wait for room: the bound is never reached.
    let (writer, drain) = FrameWriter::new(writer, usize::MAX, true);
    tokio::spawn(drain);
    let actor = Actor {
        tag: spec.session_tag.clone(),
        pid,
        process,
        reader,
        writer: Some(writer.clone()),
        in_flight: HashMap::new(),
        relayed: HashMap::new(),
        stalled: None,
        draining: false,
        stop_requested: false,
        abandoned: Abandoned::new(timeouts.hard_cancel, connected.bridge),
        inbox,
        exit_tx,
        planned: planned.clone(),
        timeouts,
        flavor: spec.flavor,
        stderr,
        binding: binding.clone(),
        pausing: None,
    };
    tokio::spawn(actor.run());
    WorkerHandle {
        shared: Arc::new(Shared {
            pid,
            bridge: connected.bridge,
            initialize_result: connected.initialize_result,
            tag: spec.session_tag,
            next_id: AtomicU64::new(next_id),
            commands,
            writer,
            exit,
            reaped,
            planned,
            binding,
            holdings,
        }),
    }
}

/// Kill a worker whose start failed (a wrapped server's whole tree), reap it, clean up, and
/// say how it ended, with its exit status (a server that already died keeps its own).
async fn abandon<P: Process>(
    process: &mut P,
    reason: String,
) -> (String, Option<std::process::ExitStatus>) {
    process.signal(Signal::SIGKILL);
    // The reaper kills what is left in the worker's group just before the reap.
    let status = process.wait().await.ok();
    process.cleanup_after_reap().await;
    match status {
        Some(status) if !status.success() && status.code().is_some() => (
            format!("{reason}; worker exited with {status}"),
            Some(status),
        ),
        _ => (reason, status),
    }
}
