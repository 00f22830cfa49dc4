//! Waiting for workers without a descriptor per worker.
//!
//! `tokio::process::Child` waits through a pidfd, one open descriptor per child on top of the
//! worker's socket: at 10,000 sessions that is 10,000 descriptors of the supervisor's
//! `RLIMIT_NOFILE` spent on nothing but exit notification. Here one thread waits for every
//! child instead: it blocks in `waitid(P_ALL, WEXITED | WNOWAIT)`, which reports an exited
//! child without reaping it, hands its status to the worker's [`Child`] through a `watch`
//! channel, and then reaps exactly that pid, both under the lock of the table of live children.
//! Publishing first keeps an ordering the rest of the supervisor relies on: once a worker's pid
//! is gone, its status is known (a call that arrives then is refused as lost, never handed to a
//! dead worker). A child
//! that is not in the table (an orphan adopted as child subreaper, see [`super::tree`]) is
//! reaped and forgotten.
//!
//! **Pid reuse.** A pid is freed only when it is reaped, and reaping happens only under the
//! table's lock, after the entry is removed. [`Child::signal`] signals the pid and its process
//! group under the same lock and only while the entry is present, so it can never reach a
//! process that reused the pid, nor a group created by one. The worker's group is killed once
//! more by the reaper just before the reap (while the zombie still holds the id), never after.
//! The spawner also holds the lock across the fork, so a child that dies before it is recorded
//! is still delivered to its `Child`.
//!
//! Waiting for *any* child is sound because the supervisor starts processes only in
//! [`super`] (clippy's `disallowed-methods` enforces it): every child is a worker, a wrapped
//! server, or an orphan from one of their trees.
//!
//! The thread does not depend on any tokio runtime (the channels it sends on work from any
//! thread), so it serves every runtime of the process, the unit tests' included.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::sync::watch;

/// How long the reaper sleeps when the supervisor has no child at all before it looks again
/// (an orphan may be reparented to it in the meantime without any spawn to wake it).
const IDLE_RECHECK: Duration = Duration::from_secs(1);

/// Live children: pid → where its exit status goes.
struct Table {
    children: BTreeMap<u32, watch::Sender<Option<ExitStatus>>>,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    children: BTreeMap::new(),
});
/// Signalled when a child is recorded, to wake a reaper that found no child to wait for.
static RECORDED: Condvar = Condvar::new();

fn table() -> MutexGuard<'static, Table> {
    TABLE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The lock the spawner holds across a fork, so that the child is recorded before the reaper
/// can see it exit.
pub(super) struct Recording(MutexGuard<'static, Table>);

/// Take the table's lock for one spawn (starting the reaper thread on first use).
pub(super) fn recording() -> io::Result<Recording> {
    start_thread()?;
    Ok(Recording(table()))
}

impl Recording {
    /// Record the child just forked, and release the lock.
    pub(super) fn record(mut self, pid: u32) -> Child {
        let (sender, exit) = watch::channel(None);
        self.0.children.insert(pid, sender);
        drop(self);
        RECORDED.notify_one();
        Child {
            pid,
            exit,
            status: None,
        }
    }
}

/// Take over children the previous image of this process started (ARCHITECTURE.md,
/// *Upgrading in place*): recorded all at once, before the reaper thread may look, so an exit
/// during the hand-over reaches its `Child` like any other.
pub fn adopt(pids: &[u32]) -> io::Result<Vec<Child>> {
    let mut children = Vec::with_capacity(pids.len());
    {
        let mut guard = table();
        for &pid in pids {
            let (sender, exit) = watch::channel(None);
            guard.children.insert(pid, sender);
            children.push(Child {
                pid,
                exit,
                status: None,
            });
        }
    }
    start_thread()?;
    RECORDED.notify_one();
    Ok(children)
}

fn start_thread() -> io::Result<()> {
    // A failed start is retried by the next spawn rather than remembered as done.
    static STARTED: Mutex<bool> = Mutex::new(false);
    let mut started = STARTED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !*started {
        std::thread::Builder::new()
            .name("bulkhead-reaper".into())
            .spawn(reap_forever)?;
        *started = true;
    }
    Ok(())
}

fn reap_forever() {
    loop {
        match next_exited() {
            Ok((pid, status)) => reap(pid, status),
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::ECHILD) => {
                // No child at all: sleep until one is recorded. (Recorded children that are
                // not children any more cannot happen, but must not make this spin.)
                let guard = table();
                let nap = if guard.children.is_empty() {
                    IDLE_RECHECK
                } else {
                    Duration::from_millis(10)
                };
                let _ = RECORDED.wait_timeout(guard, nap);
            }
            Err(error) => {
                tracing::error!("waiting for worker processes: {error}");
                std::thread::sleep(IDLE_RECHECK);
            }
        }
    }
}

/// Block until some child has exited; return its pid and exit status without reaping it.
fn next_exited() -> Result<(u32, ExitStatus), nix::errno::Errno> {
    // SAFETY: siginfo_t is plain data; all-zero is a valid value for waitid to fill in.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid, writable siginfo_t for the duration of the call.
    let result = unsafe { libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOWAIT) };
    if result != 0 {
        return Err(nix::errno::Errno::last());
    }
    // SAFETY: waitid succeeded with WEXITED, so `info` describes a child: si_pid and si_status
    // are set.
    let (pid, value) = unsafe { (info.si_pid(), info.si_status()) };
    // The wait status word the kernel would give waitpid: the exit code in the second byte, or
    // the signal number, with 0x80 when it dumped core.
    let raw = match info.si_code {
        libc::CLD_EXITED => (value & 0xff) << 8,
        libc::CLD_DUMPED => value | 0x80,
        _ => value,
    };
    let pid = u32::try_from(pid).map_err(|_| nix::errno::Errno::EINVAL)?;
    Ok((pid, ExitStatus::from_raw(raw)))
}

/// Deliver `pid`'s status to its `Child`, if it is one of ours, then reap it. The status is
/// published before the pid is released, so anyone who sees the process gone from `/proc`
/// finds its status already there.
///
/// A worker's process group is killed here, just before the reap, so nothing it left in its
/// group outlives it. This is the one moment that signal is safe: the worker is a zombie, so
/// its pid — the group's id — is still allocated and no other process can have created a group
/// with that id. After the reap the pid can be reused, and a process that reused it and made
/// itself a group leader (every new worker does) would own the id; a group signal sent then
/// could kill an unrelated session.
fn reap(pid: u32, status: ExitStatus) {
    let mut guard = table();
    let Ok(pid_t) = libc::pid_t::try_from(pid) else {
        return;
    };
    if let Some(sender) = guard.children.remove(&pid) {
        let _ = nix::sys::signal::killpg(Pid::from_raw(pid_t), Signal::SIGKILL);
        // Nobody may be listening any more (a child dropped before it exited): fine.
        let _ = sender.send(Some(status));
    }
    let mut raw = 0;
    // SAFETY: `raw` is a valid int to write the status to; WNOHANG never blocks with the lock
    // held (the child has exited, so it is reaped at once). Failure means someone else (the
    // orphan sweep) reaped it first, which changes nothing.
    let _ = unsafe { libc::waitpid(pid_t, &mut raw, libc::WNOHANG) };
}

/// Run `f` while no child of the supervisor can be reaped by the reaper thread: a child that
/// `f` finds (parent = the supervisor) keeps its pid until `f` returns, unless `f` reaps it.
/// The orphan sweep kills and reaps under it, so it never signals a pid that was reaped and
/// reused between its look at `/proc` and its signal.
pub(super) fn with_children_pinned<R>(f: impl FnOnce() -> R) -> R {
    let _guard = table();
    f()
}

/// A worker process: its pid and, once reaped, its exit status. Dropping it before the process
/// has exited kills the process (it is then reaped like any other child).
#[derive(Debug)]
pub struct Child {
    pid: u32,
    exit: watch::Receiver<Option<ExitStatus>>,
    status: Option<ExitStatus>,
}

impl Child {
    /// The process id.
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// The exit status as soon as the reaper has it, for observers that must not wait for the
    /// owner of this `Child` to notice.
    pub fn status_watch(&self) -> watch::Receiver<Option<ExitStatus>> {
        self.exit.clone()
    }

    /// Wait until the process has exited and been reaped. Cancel-safe.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let Some(status) = *self
            .exit
            .wait_for(Option::is_some)
            .await
            .map_err(|_| io::Error::other("the reaper forgot this worker"))?
        else {
            unreachable!("wait_for(Option::is_some) yields Some");
        };
        self.status = Some(status);
        Ok(status)
    }

    /// SIGKILL the process and its process group unless it has already been reaped.
    pub fn start_kill(&self) {
        self.signal(Signal::SIGKILL);
    }

    /// Send `signal` to the process itself and to its process group, unless it has already been
    /// reaped. Both, because a process may leave its group (`setpgid`), which a signal to the
    /// group alone would then miss, and its group may hold processes it started.
    ///
    /// Never another process: this runs under the table's lock and only while the child is in
    /// the table, so the child is not reaped yet and its pid is still allocated to it (alive or
    /// a zombie). A process group's id is the pid of the process that created it, so while that
    /// pid is ours no other process can have created a group with this id either.
    pub fn signal(&self, signal: Signal) {
        let guard = table();
        if guard.children.contains_key(&self.pid)
            && let Ok(pid) = i32::try_from(self.pid)
        {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), signal);
            let _ = nix::sys::signal::killpg(Pid::from_raw(pid), signal);
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.status.is_none() && self.exit.borrow().is_none() {
            self.start_kill();
        }
    }
}
