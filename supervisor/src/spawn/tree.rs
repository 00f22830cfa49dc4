//! Whole process trees: the supervisor as child subreaper, the workers it spawned, and the sweep
//! that kills and reaps whatever escaped a session's tree.
//!
//! A wrapped server may start processes, and those may leave its process group (`setsid`). On
//! the first wrapped spawn the supervisor makes itself a child subreaper
//! (`PR_SET_CHILD_SUBREAPER`), so a process orphaned anywhere below it is reparented to the
//! supervisor rather than to init: nothing a session started can outlive it unseen. Every worker
//! the spawner starts is recorded from fork until its actor has reaped it (its process group is
//! its pid). A child of the supervisor that is not a recorded worker is an orphan from some tree:
//! while it stays in a live worker's process group it dies with that group; otherwise it has
//! escaped its session, and the [`sweep`] kills it. The sweep also reaps every such child, since
//! tokio reaps only the children it spawned. It runs when a session's tree is stopped and
//! whenever SIGCHLD arrives.
//!
//! Stopping a tree signals the worker and its process group (through its `Child`) and, found
//! through `/proc` by [`signal_descendants`], every descendant wherever its group — before the
//! worker itself is gone, while the parent links still lead to it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

/// Rounds of [`sweep`] (10 ms apart) before giving up on a tree that keeps changing.
const SWEEP_ROUNDS: usize = 100;

/// Pids of the workers spawned and not yet reaped.
static WORKERS: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// Lock the set of live workers. The spawner holds it across the fork, so a sweep never sees
/// a fresh worker before it is recorded.
pub(super) fn workers() -> MutexGuard<'static, BTreeSet<u32>> {
    WORKERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A recorded worker pid, forgotten when dropped (after the worker is reaped).
#[derive(Debug)]
pub(super) struct Tracked(pub(super) u32);

impl Drop for Tracked {
    fn drop(&mut self) {
        workers().remove(&self.0);
    }
}

/// Become a child subreaper and start reaping orphans on SIGCHLD; once per process. Must run
/// inside the tokio runtime.
pub(super) fn adopt_orphans() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: prctl with integer arguments only.
        let result = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        if result != 0 {
            tracing::warn!(
                "cannot become a child subreaper ({}): processes that leave a wrapped server's tree are reparented to init and survive its session",
                std::io::Error::last_os_error()
            );
            return;
        }
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()) {
            Ok(mut children) => {
                tokio::spawn(async move {
                    while children.recv().await.is_some() {
                        sweep().await;
                    }
                });
            }
            Err(error) => tracing::warn!("cannot watch SIGCHLD to reap orphans: {error}"),
        }
    });
}

/// One process as `/proc/<pid>/stat` shows it.
#[derive(Debug, Clone, Copy)]
struct Process {
    pid: u32,
    state: char,
    parent: u32,
    group: u32,
}

fn read_process(pid: u32) -> Option<Process> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; the fields follow the last ')'.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    let group = fields.next()?.parse().ok()?;
    Some(Process {
        pid,
        state,
        parent,
        group,
    })
}

fn all_processes() -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(read_process)
        .collect()
}

/// The proportional set size of worker `pid` and (with `whole_tree`) every descendant, in
/// bytes: the sum of
/// `Pss:` in each one's `/proc/<pid>/smaps_rollup`. `None` when the worker's own cannot be read
/// (a built-in worker is not dumpable, so only root or the same uid with `CAP_SYS_PTRACE`
/// reads it); a descendant that cannot be read counts as nothing.
pub fn tree_pss_bytes(pid: u32, whole_tree: bool) -> Option<u64> {
    let own = pss_kib(pid)?;
    let rest: u64 = if whole_tree {
        descendants(pid).into_iter().filter_map(pss_kib).sum()
    } else {
        0
    };
    Some((own + rest) * 1024)
}

fn pss_kib(pid: u32) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    rollup
        .lines()
        .find_map(|line| line.strip_prefix("Pss:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Every descendant of `root` (not `root` itself), found through parent links.
fn descendants(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for process in all_processes() {
        children
            .entry(process.parent)
            .or_default()
            .push(process.pid);
    }
    let mut found = Vec::new();
    let mut queue = vec![root];
    while let Some(pid) = queue.pop() {
        for &child in children.get(&pid).into_iter().flatten() {
            if child != root && !found.contains(&child) {
                found.push(child);
                queue.push(child);
            }
        }
    }
    found
}

/// Signal every descendant of worker `pid`, wherever its process group (the worker itself and
/// its group are signalled through its [`super::Child`]).
///
/// A descendant is not the supervisor's child, so its own parent may reap it, and its pid be
/// reused, between the look at `/proc` and the signal. Each is therefore signalled through a
/// pidfd, which names one process for good, after checking — through `/proc`, once the pidfd
/// is open — that the process still has a parent in the tree: if the pid was reused first, the
/// check sees the newcomer (whose parent is elsewhere, or else it belongs to the tree too); if
/// it is reused after the check, the pidfd still names the dead original and the signal does
/// nothing.
pub(super) fn signal_descendants(pid: u32, signal: Signal) {
    let found = descendants(pid);
    let mut tree: BTreeSet<u32> = found.iter().copied().collect();
    tree.insert(pid);
    for descendant in found {
        signal_if_in_tree(descendant, &tree, signal);
    }
}

fn signal_if_in_tree(pid: u32, tree: &BTreeSet<u32>, signal: Signal) {
    let still_in_tree = || read_process(pid).is_some_and(|process| tree.contains(&process.parent));
    let Ok(pid_t) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid_t, 0) };
    if pidfd < 0 {
        // ESRCH: gone already. ENOSYS (before Linux 5.3): no pidfds, so a plain signal after
        // the same check, which leaves the narrow window a pidfd closes.
        if nix::errno::Errno::last() == nix::errno::Errno::ENOSYS && still_in_tree() {
            let _ = nix::sys::signal::kill(as_pid(pid), signal);
        }
        return;
    }
    let Ok(raw) = std::os::fd::RawFd::try_from(pidfd) else {
        return;
    };
    // SAFETY: `raw` was just returned by pidfd_open and nothing else owns it.
    let pidfd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    if still_in_tree() {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid pidfd, a signal number, a null siginfo (as kill would send) and no
        // flags.
        let _ = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd.as_raw_fd(),
                signal as libc::c_int,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
    }
}

fn as_pid(pid: u32) -> Pid {
    Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX))
}

/// Kill the supervisor's children that escaped their session's tree and reap every child that
/// is not a worker, until none is left (or [`SWEEP_ROUNDS`] pass). Returns how many it handled.
pub async fn sweep() -> usize {
    let mut handled = 0;
    for _ in 0..SWEEP_ROUNDS {
        let (found, waiting) = sweep_once();
        handled += found;
        if waiting == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handled
}

/// One pass: returns (children handled, children still to be reaped).
///
/// The scan of `/proc` runs unlocked; each candidate is then looked at again and handled with
/// the reaper kept from reaping ([`super::reaper::with_children_pinned`]): a child of the
/// supervisor keeps its pid until it is reaped, so what the second look finds is what gets
/// the signal or the reap, never a process that reused the pid meanwhile.
fn sweep_once() -> (usize, usize) {
    let supervisor = std::process::id();
    let workers = workers();
    let candidates: Vec<u32> = all_processes()
        .into_iter()
        .filter(|process| process.parent == supervisor && !workers.contains(&process.pid))
        .map(|process| process.pid)
        .collect();
    let mut handled = 0;
    let mut waiting = 0;
    super::reaper::with_children_pinned(|| {
        for pid in candidates {
            let Some(process) = read_process(pid).filter(|process| process.parent == supervisor)
            else {
                continue;
            };
            if process.state == 'Z' || process.state == 'X' {
                let _ = waitpid(as_pid(process.pid), Some(WaitPidFlag::WNOHANG));
                handled += 1;
            } else if workers.contains(&process.group) {
                // Still in a live worker's process group: it goes when that group is stopped.
            } else {
                tracing::debug!(
                    pid = process.pid,
                    "killing a process that escaped its session's tree"
                );
                let _ = nix::sys::signal::kill(as_pid(process.pid), Signal::SIGKILL);
                handled += 1;
                waiting += 1;
            }
        }
    });
    (handled, waiting)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reads_back_from_proc() {
        let me = read_process(std::process::id()).expect("own stat");
        assert_eq!(me.parent, std::os::unix::process::parent_id());
        assert!(descendants(1).contains(&std::process::id()) || std::process::id() == 1);
    }
}
