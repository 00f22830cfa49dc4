//! What the bench reads from `/proc`: the machine it runs on, the load on it, and the memory,
//! descriptors and threads of the processes under test.
//!
//! Memory is PSS (proportional set size) from `/proc/<pid>/smaps_rollup`: a page shared by n
//! processes counts 1/n to each, so the sum over every worker is what the workers really cost
//! together. Workers are not dumpable, so reading their `smaps_rollup` needs root (or
//! `CAP_SYS_PTRACE`); without it the figure is reported as unavailable.

use std::fs;

/// The machine the figures were measured on.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub open_files_soft: u64,
    pub open_files_hard: u64,
    pub pid_max: u64,
    pub threads_max: u64,
}

impl Machine {
    pub fn describe() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map_or_else(|| "unknown".into(), |(_, model)| model.trim().to_string());
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let memory_gib = meminfo_kib("MemTotal").unwrap_or(0) as f64 / (1024.0 * 1024.0);
        let kernel = read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into());
        let (open_files_soft, open_files_hard) = open_file_limit();
        Self {
            cpu_model,
            cores,
            memory_gib,
            kernel,
            open_files_soft,
            open_files_hard,
            pid_max: read_number("/proc/sys/kernel/pid_max").unwrap_or(0),
            threads_max: read_number("/proc/sys/kernel/threads-max").unwrap_or(0),
        }
    }
}

/// The 1-minute load average and the number of runnable tasks, e.g. `1.23 (3 running)`.
pub fn load_average() -> String {
    let text = read_trimmed("/proc/loadavg").unwrap_or_default();
    let fields: Vec<&str> = text.split_whitespace().collect();
    match fields.as_slice() {
        [one, _, _, running, ..] => {
            let running = running.split('/').next().unwrap_or("?");
            format!("{one} ({running} running)")
        }
        _ => "unknown".into(),
    }
}

/// PSS of one process, in KiB.
pub fn pss_kib(pid: u32) -> Option<u64> {
    let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    rollup
        .lines()
        .find_map(|line| line.strip_prefix("Pss:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// Direct children of `pid` (through each process's parent in `/proc/<pid>/stat`).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&candidate| parent(candidate) == Some(pid))
        .collect()
}

fn parent(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// PSS of `pid` and every descendant together, in KiB (`None` when `pid`'s own cannot be
/// read; a descendant that cannot be read counts as nothing).
pub fn tree_pss_kib(pid: u32) -> Option<u64> {
    let mut total = pss_kib(pid)?;
    let mut queue = children(pid);
    while let Some(child) = queue.pop() {
        total += pss_kib(child).unwrap_or(0);
        queue.extend(children(child));
    }
    Some(total)
}

/// CPU time one process has used so far, every live thread together, in nanoseconds
/// (`/proc/<pid>/task/*/schedstat`, which counts to the nanosecond where `stat` counts ticks).
pub fn cpu_time_ns(pid: u32) -> Option<u64> {
    let mut total = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let schedstat = fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += schedstat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// Open descriptors of one process.
pub fn open_fds(pid: u32) -> Option<usize> {
    Some(fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// Threads of one process.
pub fn threads(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|rest| rest.trim().parse().ok())
}

/// A field of `/proc/meminfo`, in KiB.
pub fn meminfo_kib(field: &str) -> Option<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// This process's open-file limit (soft, hard).
pub fn open_file_limit() -> (u64, u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into the struct we own and reads nothing else.
    let result = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if result == 0 {
        (limit.rlim_cur, limit.rlim_max)
    } else {
        (0, 0)
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    Some(fs::read_to_string(path).ok()?.trim().to_string())
}

fn read_number(path: &str) -> Option<u64> {
    read_trimmed(path)?.parse().ok()
}
