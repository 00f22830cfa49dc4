//! What the chaos measurements read of a supervisor from `/proc`: its descriptors, memory and
//! threads, and its child processes — live ones and zombies (exited, not yet reaped).
//!
//! Children are found by scanning `/proc/*/stat` for the supervisor's pid as parent: workers
//! are its direct children, so a worker it failed to reap shows up here as state `Z`.

use std::fs;
use std::time::{Duration, Instant};

use crate::system;

/// How often to look again while waiting for the supervisor to reap its children.
const POLL: Duration = Duration::from_millis(20);

/// One look at a supervisor.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub fds: Option<usize>,
    pub rss_kib: Option<u64>,
    pub pss_kib: Option<u64>,
    pub threads: Option<u64>,
    /// Child processes still running (or stopped), zombies excluded.
    pub children: usize,
    /// Child processes that exited and were not reaped yet.
    pub zombies: usize,
}

impl Sample {
    pub fn of(pid: u32) -> Self {
        let (children, zombies) = children(pid);
        Self {
            fds: system::open_fds(pid),
            rss_kib: rss_kib(pid),
            pss_kib: system::pss_kib(pid),
            threads: system::threads(pid),
            children,
            zombies,
        }
    }

    /// The larger of each figure of `self` and `other`.
    pub fn max(self, other: Sample) -> Sample {
        Sample {
            fds: self.fds.max(other.fds),
            rss_kib: self.rss_kib.max(other.rss_kib),
            pss_kib: self.pss_kib.max(other.pss_kib),
            threads: self.threads.max(other.threads),
            children: self.children.max(other.children),
            zombies: self.zombies.max(other.zombies),
        }
    }
}

/// Wait up to `within` until `pid` has no live child, no zombie and no more descriptors than
/// `baseline` (the supervisor stops and reaps workers, and notices closed connections, in the
/// background), then sample it.
pub fn settled(pid: u32, baseline: &Sample, within: Duration) -> Sample {
    let deadline = Instant::now() + within;
    loop {
        let sample = Sample::of(pid);
        let settled = sample.children == 0 && sample.zombies == 0 && sample.fds <= baseline.fds;
        if settled || Instant::now() >= deadline {
            return sample;
        }
        std::thread::sleep(POLL);
    }
}

/// Resident set size of one process, in KiB (`VmRSS` of `/proc/<pid>/status`).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// (live, zombie) children of `parent`.
fn children(parent: u32) -> (usize, usize) {
    let Ok(entries) = fs::read_dir("/proc") else {
        return (0, 0);
    };
    let mut live = 0;
    let mut zombies = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|name| name.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        match parent_and_state(&stat) {
            Some((ppid, 'Z')) if ppid == parent => zombies += 1,
            Some((ppid, _)) if ppid == parent => live += 1,
            _ => {}
        }
    }
    (live, zombies)
}

/// Parent pid and state letter from a `/proc/<pid>/stat` line: `pid (comm) S ppid …`, where
/// `comm` may itself hold spaces and parentheses, so the fields start after the last `)`.
fn parent_and_state(stat: &str) -> Option<(u32, char)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((ppid, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_names_parse() {
        assert_eq!(
            parent_and_state("42 (bulkhead-worker) Z 7 42 42 0 -1"),
            Some((7, 'Z'))
        );
        assert_eq!(
            parent_and_state("43 (a) b (c) S 9 43 43 0 -1"),
            Some((9, 'S'))
        );
        assert_eq!(parent_and_state("garbage"), None);
    }

    #[test]
    fn this_process_has_descriptors_and_memory() {
        let sample = Sample::of(std::process::id());
        assert!(sample.fds.unwrap_or(0) > 0);
        assert!(sample.rss_kib.unwrap_or(0) > 0);
        assert_eq!(sample.zombies, 0);
    }
}
