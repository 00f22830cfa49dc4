//! A cgroup v2 directory per worker, with `memory.max`, `pids.max` and `cpu.weight`, when
//! the supervisor has a delegated cgroup.
//!
//! Layout in the default [`CgroupMode::Auto`]: the supervisor's own cgroup `<own>` (systemd's
//! `Delegate=yes` hands it to the service) gets two children. The supervisor moves itself into
//! `<own>/supervisor`, because cgroup v2 lets only leaves hold processes once controllers are
//! enabled for children; workers go under `<own>/workers/worker-<n>`. All workers together
//! then weigh as much as the supervisor for the CPU, so no number of busy sessions starves
//! routing, and each worker weighs `cpu.weight` against the others. [`CgroupMode::Under`]
//! names a directory prepared for workers instead (the supervisor is not moved).
//!
//! A worker joins its directory between fork and exec (it writes `0` to its `cgroup.procs`),
//! so it is charged from its first page. The directory is removed when the worker's lease is
//! dropped, after the worker is reaped; directories left by a supervisor that died are removed
//! at the next start. When no delegated cgroup exists, one warning says why, and workers are
//! bounded by their rlimits (memory, CPU, descriptors) and by seccomp (no new processes).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use bulkhead_protocol::handshake::SandboxPolicy;
use nix::unistd::AccessFlags;

/// The controllers a worker's cgroup uses, each for one limit.
const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// Where per-worker cgroups go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[allow(
    dead_code,
    reason = "Off and Under are chosen by the configuration once config.rs offers them"
)]
pub enum CgroupMode {
    /// No per-worker cgroups.
    Off,
    /// Under the supervisor's own cgroup when it is delegated; otherwise one warning.
    #[default]
    Auto,
    /// Directly under this cgroup v2 directory, which the operator prepared for workers (it
    /// must be writable and hold no processes). Failing to use it stops the supervisor.
    Under(PathBuf),
}

/// The directory under which workers' cgroups are created, and the controllers it offers.
#[derive(Debug)]
pub(super) struct WorkerCgroups {
    parent: PathBuf,
    controllers: Vec<&'static str>,
    next: u64,
}

/// Set up per-worker cgroups as `mode` asks. `Ok(None)`: none, with the reason logged.
pub(super) fn prepare(mode: &CgroupMode) -> Result<Option<WorkerCgroups>, String> {
    let prepared = match mode {
        CgroupMode::Off => {
            tracing::info!("per-session cgroups are off by configuration");
            return Ok(None);
        }
        CgroupMode::Auto => match prepare_auto() {
            Ok(cgroups) => cgroups,
            Err(reason) => {
                tracing::warn!(
                    "per-session cgroups unavailable: {reason}; workers are bounded by their \
                     rlimits and seccomp only (no memory.max, pids.max or cpu.weight)"
                );
                return Ok(None);
            }
        },
        CgroupMode::Under(dir) => prepare_under(dir).map_err(|reason| {
            format!("cannot use {} for worker cgroups: {reason}", dir.display())
        })?,
    };
    let missing: Vec<_> = CONTROLLERS
        .iter()
        .filter(|controller| !prepared.controllers.contains(controller))
        .collect();
    if missing.is_empty() {
        tracing::info!(parent = %prepared.parent.display(), "per-session cgroups with memory.max, pids.max and cpu.weight");
    } else {
        tracing::warn!(
            parent = %prepared.parent.display(),
            "per-session cgroups without the {missing:?} controllers, which {} does not offer; \
             their limits are not applied",
            prepared.parent.display()
        );
    }
    Ok(Some(prepared))
}

fn prepare_auto() -> Result<WorkerCgroups, String> {
    let (mount, own) = own_cgroup()?;
    if own == mount {
        return Err(format!(
            "the supervisor runs in the root cgroup of {}, which is not delegated (run it as a \
             systemd service with Delegate=yes)",
            mount.display()
        ));
    }
    check_delegated(&own)?;
    let controllers = offered_controllers(&own)?;
    if controllers.is_empty() {
        return Err(format!(
            "{} offers none of the memory, pids and cpu controllers",
            own.display()
        ));
    }
    let leaf = own.join("supervisor");
    create_dir(&leaf)?;
    write(&leaf.join("cgroup.procs"), &std::process::id().to_string())?;
    enable(&own, &controllers)?;
    let workers = own.join("workers");
    create_dir(&workers)?;
    enable(&workers, &controllers)?;
    remove_stale(&workers);
    Ok(WorkerCgroups {
        parent: workers,
        controllers,
        next: 0,
    })
}

fn prepare_under(dir: &Path) -> Result<WorkerCgroups, String> {
    if !dir.join("cgroup.procs").is_file() {
        return Err("not a cgroup v2 directory".into());
    }
    for path in [dir.to_path_buf(), dir.join("cgroup.subtree_control")] {
        nix::unistd::access(&path, AccessFlags::W_OK)
            .map_err(|error| format!("{} is not writable: {error}", path.display()))?;
    }
    let controllers = offered_controllers(dir)?;
    enable(dir, &controllers)?;
    remove_stale(dir);
    Ok(WorkerCgroups {
        parent: dir.to_path_buf(),
        controllers,
        next: 0,
    })
}

impl WorkerCgroups {
    /// Create the next worker's directory and write its limits.
    pub(super) fn create(&mut self, policy: &SandboxPolicy) -> io::Result<WorkerCgroup> {
        let dir = loop {
            let dir = self.parent.join(format!("worker-{}", self.next));
            self.next += 1;
            match std::fs::create_dir(&dir) {
                Ok(()) => break dir,
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(error) => {
                    return Err(io::Error::new(
                        error.kind(),
                        format!("cannot create worker cgroup {}: {error}", dir.display()),
                    ));
                }
            }
        };
        let procs = CString::new(dir.join("cgroup.procs").as_os_str().as_bytes())
            .map_err(io::Error::other)?;
        // From here on, dropping `cgroup` removes the directory again.
        let cgroup = WorkerCgroup { dir, procs };
        let limit = |value: u64| {
            if value == u64::MAX {
                "max".to_string()
            } else {
                value.to_string()
            }
        };
        for controller in &self.controllers {
            let (file, value) = match *controller {
                "memory" => ("memory.max", limit(policy.max_memory_bytes)),
                "pids" => ("pids.max", limit(policy.max_tasks)),
                _ => ("cpu.weight", policy.cpu_weight.to_string()),
            };
            write(&cgroup.dir.join(file), &value).map_err(io::Error::other)?;
        }
        // Without swap accounting the file is absent; with it, a worker must not swap past
        // its memory limit.
        let swap = cgroup.dir.join("memory.swap.max");
        if swap.exists() {
            write(&swap, "0").map_err(io::Error::other)?;
        }
        Ok(cgroup)
    }
}

/// One worker's cgroup directory; removed on drop (after the worker is reaped).
#[derive(Debug)]
pub(crate) struct WorkerCgroup {
    dir: PathBuf,
    procs: CString,
}

impl WorkerCgroup {
    /// Path of its `cgroup.procs`, for the child to write between fork and exec.
    pub(super) fn procs_path(&self) -> CString {
        self.procs.clone()
    }

    /// SIGKILL every process in the cgroup at once, wherever its process group or session
    /// (`cgroup.kill`, Linux 5.14). Returns whether the kernel took the request.
    pub(super) fn kill(&self) -> bool {
        std::fs::write(self.dir.join("cgroup.kill"), "1").is_ok()
    }
}

impl Drop for WorkerCgroup {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir(&self.dir) {
            tracing::warn!(
                "cannot remove worker cgroup {}: {error}",
                self.dir.display()
            );
        }
    }
}

/// The cgroup v2 mount point and the supervisor's own directory under it.
pub(super) fn own_cgroup() -> Result<(PathBuf, PathBuf), String> {
    let membership = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|error| format!("cannot read /proc/self/cgroup: {error}"))?;
    let path = membership
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or("the supervisor is in no cgroup v2 hierarchy (cgroup v1 only)")?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|error| format!("cannot read /proc/self/mountinfo: {error}"))?;
    let (root, mount) = mountinfo
        .lines()
        .find_map(cgroup2_mount)
        .ok_or("no cgroup2 file system is mounted")?;
    let relative = path
        .strip_prefix(root.as_str())
        .ok_or_else(|| format!("the supervisor's cgroup {path} is outside the mounted {root}"))?;
    let own = mount.join(relative.trim_start_matches('/'));
    Ok((mount, own))
}

/// `(root, mount point)` of a mountinfo line describing a cgroup2 mount.
fn cgroup2_mount(line: &str) -> Option<(String, PathBuf)> {
    let (mount, filesystem) = line.split_once(" - ")?;
    if filesystem.split_whitespace().next()? != "cgroup2" {
        return None;
    }
    let mut fields = mount.split_whitespace();
    let root = fields.nth(3)?;
    let point = fields.next()?;
    Some((root.to_string(), PathBuf::from(point)))
}

/// Whether `dir` was handed to this service. Being able to write is no evidence (root may
/// write anywhere, and a desktop user owns every scope its user manager creates), so only
/// systemd's mark counts: the `trusted.delegate` attribute (`user.delegate` from a user
/// manager), set on cgroups of units with `Delegate=yes` since systemd 251.
fn check_delegated(dir: &Path) -> Result<(), String> {
    let marked = ["trusted.delegate", "user.delegate"]
        .iter()
        .any(|name| read_xattr(dir, name).is_some_and(|value| value == b"1"));
    if !marked {
        return Err(format!(
            "{} is not delegated to this service (no trusted.delegate attribute: set \
             Delegate=yes on the unit, or name a cgroup prepared for workers)",
            dir.display()
        ));
    }
    for path in [
        dir.to_path_buf(),
        dir.join("cgroup.procs"),
        dir.join("cgroup.subtree_control"),
    ] {
        nix::unistd::access(&path, AccessFlags::W_OK)
            .map_err(|error| format!("{} is not writable: {error}", path.display()))?;
    }
    Ok(())
}

fn read_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let path = CString::new(path.as_os_str().as_bytes()).ok()?;
    let name = CString::new(name).ok()?;
    let mut value = [0u8; 16];
    // SAFETY: both strings are NUL-terminated and live for the call; the kernel writes at most
    // `value.len()` bytes into `value`.
    let length = unsafe {
        libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    let length = usize::try_from(length).ok()?;
    Some(value[..length].to_vec())
}

/// Which of [`CONTROLLERS`] `dir` can hand to its children.
fn offered_controllers(dir: &Path) -> Result<Vec<&'static str>, String> {
    let path = dir.join("cgroup.controllers");
    let offered = std::fs::read_to_string(&path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    Ok(CONTROLLERS
        .into_iter()
        .filter(|controller| offered.split_whitespace().any(|name| name == *controller))
        .collect())
}

fn enable(dir: &Path, controllers: &[&str]) -> Result<(), String> {
    if controllers.is_empty() {
        return Ok(());
    }
    let request: Vec<String> = controllers.iter().map(|name| format!("+{name}")).collect();
    write(&dir.join("cgroup.subtree_control"), &request.join(" "))
}

fn create_dir(dir: &Path) -> Result<(), String> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(format!("cannot create {}: {error}", dir.display())),
    }
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value)
        .map_err(|error| format!("cannot write {value:?} to {}: {error}", path.display()))
}

/// Remove workers' directories a previous supervisor left behind (only empty ones can go).
fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with("worker-") {
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup2_mount_is_found_in_mountinfo() {
        let v1 =
            "35 25 0:30 / /sys/fs/cgroup/memory rw,relatime shared:14 - cgroup cgroup rw,memory";
        let v2 = "36 25 0:31 / /sys/fs/cgroup/unified rw,relatime shared:15 - cgroup2 cgroup2 rw";
        assert_eq!(cgroup2_mount(v1), None);
        assert_eq!(
            cgroup2_mount(v2),
            Some(("/".to_string(), PathBuf::from("/sys/fs/cgroup/unified")))
        );
    }
}
