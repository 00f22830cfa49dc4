//! What the system lets the supervisor run, and a clear sentence when a system limit stops it.
//!
//! Every session is a process, and each one holds [`DESCRIPTORS_PER_SESSION`] descriptor in
//! the supervisor: its end of the socketpair (exits are collected by one reaper thread, with no
//! descriptor per worker); a wrapped server holds its stderr pipe too
//! ([`DESCRIPTORS_PER_WRAPPED_SESSION`]). So 10,000 sessions need over 10,000 open files in the
//! supervisor, 10,000 tasks under every task limit
//! that counts them (`RLIMIT_NPROC` of the uid, the cgroup's `pids.max` — systemd's
//! `TasksMax=` —, `kernel.threads-max`, `kernel.pid_max`), and about a megabyte of memory each.
//!
//! At start, [`prepare`] raises the soft open-file limit to the hard one (always allowed), and
//! the hard one too, up to `fs.nr_open`, when the configured sessions need more and the
//! supervisor may (root or `CAP_SYS_RESOURCE`); it raises the soft `RLIMIT_NPROC` the same way.
//! Then it logs one warning for each limit that cannot hold `--max-sessions` plus the pool,
//! naming the limit and how to raise it. When a spawn fails on one anyway,
//! [`explain_spawn_error`] turns the bare errno (`EMFILE`, `ENFILE`, `EAGAIN`, `ENOMEM`) into a
//! sentence naming the limit — the session's caller gets it in the error, and the log gets it
//! at `error`, at most once per [`REPEAT_LOG_AFTER`] per cause.

use std::io;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Descriptors one session of the built-in worker holds in the supervisor: the socketpair end.
pub const DESCRIPTORS_PER_SESSION: u64 = 1;
/// Descriptors one session of a wrapped server holds: the socketpair end and its stderr pipe.
pub const DESCRIPTORS_PER_WRAPPED_SESSION: u64 = 2;
/// Descriptors the supervisor needs besides sessions and connections: stdio, the runtime's
/// epoll and wake-ups, listeners, the spawner's transient exec-status pipe, files read at start.
const RESERVED_DESCRIPTORS: u64 = 256;
/// Tasks of the supervisor itself (runtime workers, the spawner thread, the blocking pool)
/// and a margin for the user's other processes under the same limits.
const RESERVED_TASKS: u64 = 600;
/// Memory an idle session costs, for the warning only: a worker's PSS is about 0.7 MB and
/// the supervisor's share about 25 KB (`scripts/bench`); a megabyte leaves room for use.
const BYTES_PER_SESSION: u64 = 1 << 20;
/// Highest `fs.nr_open` assumed when it cannot be read (the kernel's default).
const DEFAULT_NR_OPEN: u64 = 1 << 20;
/// How often the same exhausted limit is logged again while spawns keep failing on it.
pub const REPEAT_LOG_AFTER: Duration = Duration::from_secs(10);

/// What the configuration asks of the system.
#[derive(Debug, Clone, Copy)]
pub struct Demand {
    /// Sessions open at once (`--max-sessions`).
    pub sessions: usize,
    /// Pre-spawned idle workers (`--pool-size`).
    pub pool: usize,
    /// HTTP connections at once (`--max-connections`; 0 for stdio).
    pub connections: usize,
    /// External worker mode (`--wrap`): each session also holds its server's stderr pipe.
    pub wrapped: bool,
}

impl Demand {
    /// Worker processes at once: sessions, the pool, and the catalog reader at start.
    fn workers(&self) -> u64 {
        (self.sessions + self.pool + 1) as u64
    }

    fn descriptors_per_session(&self) -> u64 {
        if self.wrapped {
            DESCRIPTORS_PER_WRAPPED_SESSION
        } else {
            DESCRIPTORS_PER_SESSION
        }
    }

    fn descriptors(&self) -> u64 {
        self.workers() * self.descriptors_per_session()
            + self.connections as u64
            + RESERVED_DESCRIPTORS
    }
}

/// Raise what may be raised, and warn about every limit that cannot hold `demand`.
pub fn prepare(demand: Demand) {
    raise_open_files(demand);
    check_tasks(demand);
    check_memory(demand);
}

fn raise_open_files(demand: Demand) {
    let wanted = demand.descriptors();
    let Ok((soft, mut hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if hard < wanted {
        let ceiling = read_number("/proc/sys/fs/nr_open").unwrap_or(DEFAULT_NR_OPEN);
        let raised = wanted.min(ceiling);
        // Succeeds only with CAP_SYS_RESOURCE; otherwise the hard limit is the operator's.
        if raised > hard && setrlimit(Resource::RLIMIT_NOFILE, raised, raised).is_ok() {
            tracing::info!("raised the hard open-file limit from {hard} to {raised}");
            hard = raised;
        }
    }
    let mut limit = soft;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        tracing::info!("raised the open-file limit from {soft} to {hard}");
        limit = hard;
    }
    if limit < wanted {
        let each = demand.descriptors_per_session();
        let fits = limit.saturating_sub(RESERVED_DESCRIPTORS + demand.connections as u64) / each;
        tracing::warn!(
            "the open-file limit ({limit}) holds about {fits} sessions, fewer than the {} configured (--max-sessions {} and --pool-size {}); each session holds {each} descriptor(s) in the supervisor: raise LimitNOFILE= in the unit or `ulimit -n` (the hard limit) to at least {wanted}",
            demand.sessions + demand.pool,
            demand.sessions,
            demand.pool
        );
    }
}

fn check_tasks(demand: Demand) {
    let wanted = demand.workers() + RESERVED_TASKS;
    let privileged = nix::unistd::geteuid().is_root();
    // RLIMIT_NPROC counts every process and thread of the real uid, workers included (they
    // share the supervisor's uid unless a uid range is configured); root is exempt.
    if !privileged && let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NPROC) {
        let mut limit = soft;
        if soft < hard && setrlimit(Resource::RLIMIT_NPROC, hard, hard).is_ok() {
            limit = hard;
        }
        if limit < wanted {
            tracing::warn!(
                "RLIMIT_NPROC ({limit}) counts every process and thread of this uid, workers included, and is below the {wanted} that --max-sessions {} needs: raise LimitNPROC= in the unit or `ulimit -u`",
                demand.sessions
            );
        }
    }
    for (path, name, how) in [
        (
            "/proc/sys/kernel/pid_max",
            "kernel.pid_max",
            "sysctl kernel.pid_max",
        ),
        (
            "/proc/sys/kernel/threads-max",
            "kernel.threads-max",
            "sysctl kernel.threads-max",
        ),
    ] {
        if let Some(limit) = read_number(path)
            && limit < wanted
        {
            tracing::warn!(
                "{name} ({limit}) is below the {wanted} tasks --max-sessions {} needs: raise it with {how}",
                demand.sessions
            );
        }
    }
    if let Some(limit) = cgroup_pids_max()
        && limit < wanted
    {
        tracing::warn!(
            "the cgroup's pids.max ({limit}) is below the {wanted} tasks --max-sessions {} needs: raise TasksMax= in the unit",
            demand.sessions
        );
    }
}

fn check_memory(demand: Demand) {
    let Some(available) = meminfo_bytes("MemAvailable") else {
        return;
    };
    let wanted = demand.workers() * BYTES_PER_SESSION;
    if available < wanted {
        tracing::warn!(
            "{} MiB of memory is available; --max-sessions {} idle sessions need about {} MiB (about {} MiB each)",
            available >> 20,
            demand.sessions,
            wanted >> 20,
            BYTES_PER_SESSION >> 20
        );
    }
}

/// The tightest `pids.max` on the way from this process's cgroup (v2) to the root.
fn cgroup_pids_max() -> Option<u64> {
    let membership = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = membership
        .lines()
        .find_map(|line| line.strip_prefix("0::"))?;
    let mut dir = std::path::PathBuf::from("/sys/fs/cgroup").join(path.trim_start_matches('/'));
    let mut tightest: Option<u64> = None;
    loop {
        if let Some(limit) = read_number(&dir.join("pids.max").to_string_lossy()) {
            tightest = Some(tightest.map_or(limit, |tightest| tightest.min(limit)));
        }
        if dir == std::path::Path::new("/sys/fs/cgroup") || !dir.pop() {
            return tightest;
        }
    }
}

/// Name the system limit behind a failed spawn, log it, and return an error that says it.
/// Errors that are not about a limit pass through unchanged.
pub fn explain_spawn_error(error: io::Error) -> io::Error {
    let Some(errno) = error.raw_os_error().map(Errno::from_raw) else {
        return error;
    };
    let explanation = match errno {
        Errno::EMFILE => {
            let limit = getrlimit(Resource::RLIMIT_NOFILE).map_or(0, |(soft, _)| soft);
            format!(
                "the supervisor's open-file limit ({limit}, RLIMIT_NOFILE) is exhausted; each session holds {DESCRIPTORS_PER_SESSION} descriptor ({DESCRIPTORS_PER_WRAPPED_SESSION} for a wrapped server): raise LimitNOFILE= or `ulimit -n`, or lower --max-sessions"
            )
        }
        Errno::ENFILE => "the system-wide open-file table (fs.file-max) is full: raise it with sysctl, or lower --max-sessions".to_string(),
        Errno::EAGAIN => "no process can be created: a task limit is exhausted — RLIMIT_NPROC of the supervisor's uid, the cgroup's pids.max (TasksMax=), kernel.threads-max or kernel.pid_max".to_string(),
        Errno::ENOMEM => "the kernel could not find memory (or a free pid) for a new process".to_string(),
        _ => return error,
    };
    log_limit(errno, &explanation);
    io::Error::new(error.kind(), format!("{error}: {explanation}"))
}

/// Log an exhausted limit at `error`, once per [`REPEAT_LOG_AFTER`] per errno, with how many
/// spawns failed on it in between.
fn log_limit(errno: Errno, explanation: &str) {
    static LAST: Mutex<Vec<(Errno, Instant, u64)>> = Mutex::new(Vec::new());
    let mut last = LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let now = Instant::now();
    let entry = match last.iter_mut().position(|(seen, _, _)| *seen == errno) {
        Some(index) => &mut last[index],
        None => {
            last.push((errno, now - REPEAT_LOG_AFTER, 0));
            let index = last.len() - 1;
            &mut last[index]
        }
    };
    entry.2 += 1;
    if now.duration_since(entry.1) >= REPEAT_LOG_AFTER {
        tracing::error!(
            failed_spawns = entry.2,
            "cannot start a worker: {explanation}"
        );
        entry.1 = now;
        entry.2 = 0;
    }
}

fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn meminfo_bytes(field: &str) -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_errno_is_explained_and_others_pass_through() {
        let explained = explain_spawn_error(io::Error::from_raw_os_error(libc::EMFILE));
        assert!(
            explained.to_string().contains("RLIMIT_NOFILE"),
            "{explained}"
        );
        assert!(
            explained.to_string().contains("LimitNOFILE="),
            "{explained}"
        );
        let explained = explain_spawn_error(io::Error::from_raw_os_error(libc::EAGAIN));
        assert!(explained.to_string().contains("pids.max"), "{explained}");
        let other = explain_spawn_error(io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(other.raw_os_error(), Some(libc::ENOENT));
        let plain = explain_spawn_error(io::Error::other("no errno"));
        assert_eq!(plain.to_string(), "no errno");
    }

    #[test]
    fn demand_counts_descriptors_per_worker() {
        let mut demand = Demand {
            sessions: 10_000,
            pool: 8,
            connections: 1024,
            wrapped: false,
        };
        assert_eq!(demand.workers(), 10_009);
        assert_eq!(demand.descriptors(), 10_009 + 1024 + RESERVED_DESCRIPTORS);
        demand.wrapped = true;
        assert_eq!(
            demand.descriptors(),
            10_009 * 2 + 1024 + RESERVED_DESCRIPTORS
        );
    }
}
