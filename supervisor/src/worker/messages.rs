//! What reaches a worker's actor: commands from its handles, and how its main loop ended.

use serde_json::Value;

use super::outbox;

/// A command from a handle to the actor. The channel is unbounded but holds a bounded number
/// of these by construction: a call needs an in-flight permit, it yields at most one
/// cancellation, and a relayed request at most one answer.
pub(super) enum Command {
    /// Deliver what comes back for call `id` to `outbox`. Its request is already on its way:
    /// the caller writes it to the socket itself (see `WorkerHandle::call`).
    Call {
        id: u64,
        /// The caller's progress token, restored on the notifications routed to this call.
        progress_token: Option<Value>,
        outbox: outbox::Sender,
    },
    /// The caller dropped call `id` before its reply: cancel it in the worker.
    Cancel { id: u64 },
    /// The client's answer to request `id` of the worker.
    Respond { id: Value, frame: Vec<u8> },
    /// Run the stop sequence.
    Stop,
    /// Stop reading the socket and hand back what the reader holds past its last frame (a
    /// reload is taking the worker over); read again if the reload is refused.
    Pause {
        reply: tokio::sync::oneshot::Sender<super::adopt::Paused>,
    },
}

/// How the actor's main loop ended.
pub(super) enum LoopEnd {
    StopRequested,
    SocketClosed,
    Exited(std::process::ExitStatus),
    Kill(&'static str),
}
