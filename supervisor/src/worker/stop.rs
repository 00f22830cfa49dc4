//! The end of a worker: the cause decided first (and published to the handles before the exit
//! can be seen), then the stop sequence as far as needed, the reap, and the clean-up.
//!
//! Stop sequence: close the socket (the worker exits on EOF) → wait `close_grace` → SIGTERM to
//! the process and its group (and, for a tree, every descendant) → wait `term_grace` → SIGKILL
//! → reap. A worker that misbehaved is killed at once; one that exited on its own is only
//! reaped.

use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::AsyncRead;

use super::actor::Actor;
use super::handle::{ExitCause, WorkerExit, describe_status};
use super::messages::LoopEnd;
use super::process::Process;

/// How long to wait before asking the reaper again after it failed to say (it cannot, short
/// of a bug): short enough not to delay a stop, long enough not to spin.
const REAP_RETRY: Duration = Duration::from_millis(10);

impl<P: Process, R: AsyncRead + Unpin> Actor<P, R> {
    /// Make sure the process is gone and reaped, following the stop sequence as needed, then
    /// release what it held.
    pub(super) async fn finish(&mut self, end: LoopEnd) -> WorkerExit {
        let cause = match &end {
            LoopEnd::StopRequested => ExitCause::Stopped,
            LoopEnd::SocketClosed | LoopEnd::Exited(_) => ExitCause::Crashed,
            LoopEnd::Kill(reason) => ExitCause::Killed(reason),
        };
        // Before the process can be seen gone: a handle that sees the exit status reports it
        // with this cause (see `WorkerHandle::exit`).
        let _ = self.planned.set(cause.clone());
        // Closing our end of the socket is the first, polite step of every stop.
        if let Some(writer) = self.writer.take() {
            writer.close();
        }
        let status = match end {
            LoopEnd::Exited(status) => status,
            LoopEnd::Kill(_) => {
                self.process.signal(Signal::SIGKILL);
                self.reap().await
            }
            LoopEnd::StopRequested | LoopEnd::SocketClosed => self.stop_sequence().await,
        };
        // Before anyone hears the worker is gone, so a closed session has left nothing
        // behind by the time its close is answered.
        self.process.cleanup_after_reap().await;
        WorkerExit {
            cause,
            status: describe_status(status),
        }
    }

    async fn stop_sequence(&mut self) -> ExitStatus {
        if let Ok(Ok(status)) =
            tokio::time::timeout(self.timeouts.close_grace, self.process.wait()).await
        {
            return status;
        }
        self.process.signal(Signal::SIGTERM);
        if let Ok(Ok(status)) =
            tokio::time::timeout(self.timeouts.term_grace, self.process.wait()).await
        {
            return status;
        }
        tracing::warn!(session = %self.tag, pid = self.pid, "worker ignored SIGTERM; killing it");
        self.process.signal(Signal::SIGKILL);
        self.reap().await
    }

    async fn reap(&mut self) -> ExitStatus {
        loop {
            match self.process.wait().await {
                Ok(status) => return status,
                Err(error) => {
                    tracing::error!(session = %self.tag, pid = self.pid, "waiting for worker: {error}");
                    tokio::time::sleep(REAP_RETRY).await;
                }
            }
        }
    }
}
