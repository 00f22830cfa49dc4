//! One owner per worker process: a cloneable [`WorkerHandle`] and the actor task that owns the
//! process and the supervisor's end of its private socket.
//!
//! Start-up ([`start`]) spawns the process, runs the versioned handshake (the worker must
//! report the pid we spawned), then initializes MCP on the socket with the supervisor as
//! client. After that the actor ([`actor`]) multiplexes calls: each [`handle::Call`] gets a fresh
//! numeric JSON-RPC id on the socket, and its reply (plus progress notifications, whose tokens
//! are rewritten to the call id on the way in and restored on the way out) comes back on the
//! call's own bounded queue ([`outbox`]; [`delivery`] routes and, for a slow client, holds the
//! worker back or drops what may be dropped). Dropping an unfinished call cancels it: the
//! actor sends `notifications/cancelled` and gives the worker [`WorkerTimeouts::hard_cancel`]
//! to show that the call stopped ([`cancellation`] says what counts as evidence); a worker that
//! shows nothing by then is killed, with crash semantics.
//!
//! Stop sequence ([`stop`]): close the socket (the worker exits on EOF) → wait `close_grace` →
//! SIGTERM to the worker and its process group → wait `term_grace` → SIGKILL → reap.
//! Signalling the pid as well as the group reaches a worker that left its group. A worker that
//! dies on its own fails every call in flight with [`CallEvent::Died`]; nothing else is
//! touched.
//!
//! The two kinds of worker — the built-in `bulkhead-worker` and a wrapped stdio server
//! (external worker mode, [`crate::wrap`]) — differ only where [`Flavor`] says: how a
//! connection comes up, how calls are bridged between eras, what proves a cancelled call
//! stopped, who answers the worker's `bulkhead/` requests, and how much of a process tree a
//! stop reaches. The actor is generic over its socket's two halves and over a small
//! `Process` trait, whose only production implementation is a spawned child and its lease
//! ([`process`]); the unit tests drive it over `tokio::io::duplex` with a fake process, under
//! paused time. [`Launcher`] is the one place that starts workers.

mod actor;
mod adopt;
mod cancellation;
mod delivery;
mod flavor;
mod handle;
mod launcher;
mod messages;
mod outbox;
mod process;
mod reply;
mod start;
mod stop;

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use adopt::{HandOver, Paused};
pub use flavor::{Builtin, Flavor};
pub use handle::{CallEvent, WorkerExit, WorkerHandle};
pub use launcher::{Launcher, PoolFit};
pub use reply::Reply;

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
#[derive(Clone)]
pub struct WorkerSpec {
    /// The built-in worker and its hello, or a wrapped server.
    pub flavor: Flavor,
    /// Short session tag the worker puts on its log lines.
    pub session_tag: String,
    /// Largest frame accepted from the worker.
    pub max_frame_bytes: usize,
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
