//! Handing a live worker over to the next image of the supervisor (ARCHITECTURE.md, *Upgrading
//! in place*), and taking one over.
//!
//! The old image pauses each worker's actor ([`WorkerHandle::pause`]): the actor stops reading
//! the socket and hands back the bytes its reader holds past the last whole frame. With the
//! worker's pid, socket descriptor, `initialize` result and next call id they make a
//! [`HandOver`], which the new image turns back into a worker ([`attach`]): a fresh actor on the
//! same socket, its reader seeded with those bytes, and no new `initialize`.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use bulkhead_protocol::Era;
use bulkhead_protocol::frame::LineReader;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::oneshot;

use super::flavor::Connected;
use super::messages::Command;
use super::{WorkerHandle, WorkerSpec, WorkerTimeouts, process, start};
use crate::spawn::{Child, WorkerLease};

/// What a paused actor hands back; dropping `resume` lets it read again.
pub struct Paused {
    pub pending: Vec<u8>,
    /// Dropping it resumes reading.
    pub _resume: oneshot::Sender<()>,
}

/// What a worker holds that a reload must pass on: its socket, and a wrapped server's stderr
/// pipe and private home.
#[derive(Debug, Clone, Default)]
pub struct Holdings {
    pub socket_fd: Option<RawFd>,
    pub stderr_fd: Option<RawFd>,
    pub home: Option<PathBuf>,
}

/// Everything the next image needs to take one worker over.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HandOver {
    pub pid: u32,
    /// The supervisor's end of the worker's socket, kept open across the exec.
    pub socket_fd: RawFd,
    /// A wrapped server's stderr pipe, kept open across the exec.
    pub stderr_fd: Option<RawFd>,
    /// A wrapped server's private home.
    pub home: Option<PathBuf>,
    /// Bytes the worker wrote that no frame has consumed yet.
    pub pending: Vec<u8>,
    pub initialize_result: Value,
    /// A wrapped server's era (`true`: the inline era); `None` for the built-in worker.
    pub bridge_inline: Option<bool>,
    pub next_id: u64,
}

/// Runs in the actor: hand back what the reader holds, then wait until the reload is over
/// (refused: the sender is dropped; done: this image is gone).
pub(super) async fn pause(pending: Vec<u8>, reply: oneshot::Sender<Paused>) {
    let (resume, resumed) = oneshot::channel();
    let paused = Paused {
        pending,
        _resume: resume,
    };
    if reply.send(paused).is_ok() {
        let _ = resumed.await;
    }
}

impl WorkerHandle {
    /// Pause the actor for a hand-over; `None` if the worker is gone.
    pub async fn pause(&self) -> Option<Paused> {
        let (reply, paused) = oneshot::channel();
        self.shared.commands.send(Command::Pause { reply }).ok()?;
        paused.await.ok()
    }

    /// The hand-over record of a paused worker; `None` for a worker without a real socket.
    pub fn hand_over(&self, paused: &Paused) -> Option<HandOver> {
        Some(HandOver {
            pid: self.shared.pid,
            socket_fd: self.shared.holdings.socket_fd?,
            stderr_fd: self.shared.holdings.stderr_fd,
            home: self.shared.holdings.home.clone(),
            pending: paused.pending.clone(),
            initialize_result: self.shared.initialize_result.clone(),
            bridge_inline: self.shared.bridge.map(|era| era == Era::Inline),
            next_id: self
                .shared
                .next_id
                .load(std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// Wait until every frame queued for the worker is written.
    pub async fn flushed(&self) {
        self.shared.writer.flushed().await;
    }
}

/// Take over a worker: `taken` is its re-recorded process and what it holds; its socket (and a
/// wrapped server's stderr pipe) are the descriptors the hand-over names.
pub(super) fn attach(
    hand_over: &HandOver,
    (child, lease): (Child, WorkerLease),
    spec: WorkerSpec,
    timeouts: WorkerTimeouts,
    principal: &str,
) -> std::io::Result<WorkerHandle> {
    let raw = hand_over.socket_fd;
    crate::spawn::reexec::keep_private(raw)?;
    // SAFETY: the previous image left this descriptor (its end of the worker's socket) open for
    // this one, and nothing else here owns it.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    let stderr = match hand_over.stderr_fd {
        Some(fd) => {
            crate::spawn::reexec::keep_private(fd)?;
            // SAFETY: as above, for a wrapped server's stderr pipe.
            let pipe = unsafe { OwnedFd::from_raw_fd(fd) };
            let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(pipe)?;
            let (_, redactor, _) = spec
                .flavor
                .command(Some(principal))
                .map_err(std::io::Error::other)?;
            redactor.map(|redactor| {
                crate::wrap::stderr::collect(
                    pipe,
                    spec.session_tag.clone(),
                    hand_over.pid,
                    redactor,
                )
            })
        }
        None => None,
    };
    let socket = std::os::unix::net::UnixStream::from(socket);
    socket.set_nonblocking(true)?;
    let socket = tokio::net::UnixStream::from_std(socket)?;
    let (reader, writer) = socket.into_split();
    let reader =
        tokio::io::AsyncReadExt::chain(std::io::Cursor::new(hand_over.pending.clone()), reader);
    let process = process::Spawned::new(child, lease, spec.flavor.owns_a_tree());
    let connected = Connected {
        initialize_result: hand_over.initialize_result.clone(),
        bridge: hand_over
            .bridge_inline
            .map(|inline| if inline { Era::Inline } else { Era::Initialize }),
    };
    let reader = LineReader::new(reader, spec.max_frame_bytes);
    Ok(start::run_actor(
        start::Running {
            process,
            reader,
            writer,
            stderr,
            holdings: Holdings {
                socket_fd: Some(raw),
                stderr_fd: hand_over.stderr_fd,
                home: hand_over.home.clone(),
            },
            next_id: hand_over.next_id,
        },
        connected,
        spec,
        timeouts,
    ))
}

impl super::WorkerExit {
    /// How a worker that ended unasked reads when only its status is known (a session lost
    /// before a reload, or in the hand-over itself).
    pub fn crashed(status: String) -> Self {
        Self {
            cause: super::handle::ExitCause::Crashed,
            status,
        }
    }
}
