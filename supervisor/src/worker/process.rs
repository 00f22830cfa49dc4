//! The process behind a worker, as the actor sees it: a pid to signal, an exit to wait for and
//! publish, and what to clean up once it is reaped.
//!
//! The only production implementation is [`Spawned`]: the spawner's [`Child`] (reaped by the
//! one reaper thread, which publishes the status *before* it reaps, so a handle reports the
//! exit as soon as the pid is gone) and the [`WorkerLease`] of the resources it holds. The
//! unit tests use a fake with the same promises, so the actor's deadlines, crashes and stop
//! sequence are tested without processes.

use std::future::Future;
use std::io;
use std::process::ExitStatus;

use nix::sys::signal::Signal;
use tokio::sync::watch;

use crate::spawn::{Child, WorkerLease};

/// A worker's process.
pub trait Process: Send + 'static {
    /// Its process id (what the worker's `ready` must name).
    fn pid(&self) -> u32;

    /// Send `signal` to the process and its process group — and, for a process that owns a
    /// tree, to every descendant — unless it has been reaped: never to a pid that may have been
    /// reused.
    fn signal(&self, signal: Signal);

    /// Wait until the process has exited and been reaped. Cancel-safe.
    fn wait(&mut self) -> impl Future<Output = io::Result<ExitStatus>> + Send;

    /// The exit status, published the moment the process is collected — before the reap and
    /// before its owner has noticed — for observers that must never see a dead process alive.
    fn status(&self) -> watch::Receiver<Option<ExitStatus>>;

    /// After the reap: kill what is left of its tree, then free what it held (cgroup, uid,
    /// private home), so an ended session has left nothing behind by the time anyone hears of
    /// it. Never signals the process or its group: their ids may belong to others by now.
    fn cleanup_after_reap(&mut self) -> impl Future<Output = ()> + Send;
}

/// A worker started by the spawner.
pub(super) struct Spawned {
    child: Child,
    /// Released by [`Process::cleanup_after_reap`].
    lease: Option<WorkerLease>,
    /// A wrapped server may start processes, which may leave its group: its signals reach
    /// every descendant, and its tree is swept after the reap.
    whole_tree: bool,
}

impl Spawned {
    pub(super) fn new(child: Child, lease: WorkerLease, whole_tree: bool) -> Self {
        Self {
            child,
            lease: Some(lease),
            whole_tree,
        }
    }
}

impl Process for Spawned {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The worker itself and its process group — both, since a worker may leave its group —
    /// and, for a tree, every descendant wherever its group (found before the server dies,
    /// while the parent links still lead to it).
    fn signal(&self, signal: Signal) {
        if self.whole_tree
            && let Some(lease) = &self.lease
        {
            lease.signal_descendants(self.child.id(), signal);
        }
        self.child.signal(signal);
    }

    async fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child.wait().await
    }

    fn status(&self) -> watch::Receiver<Option<ExitStatus>> {
        self.child.status_watch()
    }

    /// What was left in the group was killed by the reaper just before the reap, while the
    /// group's id could not yet belong to anyone else; what is left in the cgroup is killed
    /// here, and the supervisor's orphans are swept.
    async fn cleanup_after_reap(&mut self) {
        if self.whole_tree {
            if let Some(lease) = &self.lease {
                lease.kill_cgroup();
            }
            crate::spawn::sweep().await;
        }
        drop(self.lease.take());
    }
}
