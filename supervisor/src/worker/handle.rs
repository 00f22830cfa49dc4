//! The cloneable handle to one worker, the calls made through it, and how a worker ends.
//!
//! A handle never touches the process: it sends [`Command`]s to the actor. It reads two things
//! the actor does not control, so that no caller ever sees a dead worker alive: the process's
//! exit status, which the reaper publishes before it reaps, and the cause the actor decided
//! on, which the actor sets before it lets the process go. Between the two, [`WorkerHandle::exit`]
//! already reports the exit.

use std::fmt;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bulkhead_protocol::Era;
use bulkhead_protocol::jsonrpc;
use bulkhead_protocol::writer::FrameWriter;
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::principal::Principal;
use crate::trading::desk::Binding;
use crate::wrap::bridge::{self, ReplyFix};

use super::messages::Command;
use super::outbox;
use super::reply::Reply;

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

    /// What a caller hears when the actor is gone without a word (it cannot happen while the
    /// runtime runs).
    pub(super) fn actor_gone() -> Self {
        WorkerExit {
            cause: ExitCause::Crashed,
            status: "worker task ended".into(),
        }
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

/// An exit status in words: `exit code 3`, `killed by signal 9 (SIGKILL)`.
pub(super) fn describe_status(status: ExitStatus) -> String {
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

/// Something a call receives.
#[derive(Debug)]
pub enum CallEvent {
    /// A notification the worker sent about this call (progress), token restored.
    Notification(Value),
    /// A request the worker sent to the client (sampling, elicitation, roots) while this call
    /// was in flight, still carrying the worker-side id; answer it with
    /// [`WorkerHandle::respond`].
    Request(Value),
    /// The final JSON-RPC response (result or error), still carrying the worker-side id; a
    /// result as the bytes the worker sent.
    Reply(Reply),
    /// The worker died before replying.
    Died(WorkerExit),
}

/// What the handles of one worker share with each other and with its actor.
pub(super) struct Shared {
    pub(super) pid: u32,
    /// The era a wrapped server speaks, to which calls are bridged; `None` for the built-in
    /// worker.
    pub(super) bridge: Option<Era>,
    /// The worker's `initialize` result (its capabilities and server info).
    pub(super) initialize_result: Value,
    pub(super) tag: String,
    pub(super) next_id: AtomicU64,
    pub(super) commands: mpsc::UnboundedSender<Command>,
    /// The worker's socket, which a call writes its request to.
    pub(super) writer: Arc<FrameWriter>,
    /// The actor's final word.
    pub(super) exit: watch::Receiver<Option<WorkerExit>>,
    /// The process's exit status the moment the reaper collects it, before the actor has
    /// finished with the worker: from then on the worker is dead to callers.
    pub(super) reaped: watch::Receiver<Option<ExitStatus>>,
    /// Why the actor is ending the worker, once it has decided.
    pub(super) planned: Arc<OnceLock<ExitCause>>,
    /// The session the worker serves, once bound: its `bulkhead/` requests act for it.
    pub(super) binding: Arc<OnceLock<Binding>>,
    /// What a reload must pass on; nothing without a real socket.
    pub(super) holdings: super::adopt::Holdings,
}

/// Cloneable handle to one worker process.
#[derive(Clone)]
pub struct WorkerHandle {
    pub(super) shared: Arc<Shared>,
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
            let mut value = std::mem::replace(reply, Reply::Value(Value::Null)).into_value();
            bridge::inbound(fix, &mut value);
            *reply = Reply::Value(value);
        }
        if !matches!(event, CallEvent::Notification(_)) {
            self.finished = true;
        }
        event
    }

    fn exit_now(&self) -> WorkerExit {
        self.shared
            .exit
            .borrow()
            .clone()
            .unwrap_or_else(WorkerExit::actor_gone)
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.shared.commands.send(Command::Cancel { id: self.id });
        }
    }
}

/// `{"jsonrpc":"2.0","id":<id>,"method":<method>,"params":<params>}` and its newline, written
/// straight into the frame.
fn request_frame(id: u64, method: &str, params: Option<&Value>) -> Vec<u8> {
    let mut frame = Vec::with_capacity(128);
    frame.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    frame.extend_from_slice(id.to_string().as_bytes());
    frame.extend_from_slice(br#","method":"#);
    // Serializing a string or a value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut frame, method);
    if let Some(params) = params {
        frame.extend_from_slice(br#","params":"#);
        let _ = serde_json::to_writer(&mut frame, params);
    }
    frame.extend_from_slice(b"}\n");
    frame
}

impl WorkerHandle {
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
                return WorkerExit::actor_gone();
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
        let fix = self.shared.bridge.map(|era| {
            let (bridged, fix) = bridge::outbound(era, method, params.take());
            params = bridged;
            fix
        });
        let progress_token = params
            .as_mut()
            .and_then(|params| params.get_mut("_meta"))
            .and_then(|meta| meta.get_mut("progressToken"))
            .map(|token| std::mem::replace(token, json!(id)));
        let frame = request_frame(id, method, params.as_ref());
        let (outbox, events) = outbox::outbox();
        let command = Command::Call {
            id,
            progress_token,
            outbox,
        };
        if self.shared.commands.send(command).is_err() {
            return Err(self.exit().unwrap_or_else(WorkerExit::actor_gone));
        }
        // Written from here, not by the actor: no hand-off on the request's path. The command
        // above is in the actor's inbox before the worker can answer, and the actor takes its
        // commands before it routes anything the worker says. A socket already closed means
        // the worker is being stopped: the call hears of its end from the actor.
        let _ = self.shared.writer.push(frame);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_frame_is_the_request_it_stands_for() {
        for params in [
            None,
            Some(json!({"name": "e\"cho", "arguments": {"x": [1, 2]}})),
        ] {
            let frame = request_frame(7, "tools/call", params.as_ref());
            assert_eq!(frame.iter().filter(|&&byte| byte == b'\n').count(), 1);
            assert_eq!(frame.last(), Some(&b'\n'));
            let parsed: Value = serde_json::from_slice(&frame).unwrap();
            assert_eq!(parsed, jsonrpc::request(&json!(7), "tools/call", params));
        }
    }
}
