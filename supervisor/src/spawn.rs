//! The one place that starts processes, and the outer half of every worker's sandbox.
//!
//! Every worker is started here, so every worker gets the same treatment: a cleared
//! environment with only the protocol variable, stdin and stdout on `/dev/null` (stdout is the
//! client's protocol stream and must never be shared), stderr inherited for logs, its end of a
//! fresh `socketpair` on descriptor 3 and no other descriptor (everything else the supervisor
//! holds is close-on-exec), its own process group, and `PR_SET_PDEATHSIG = SIGKILL`.
//!
//! Between fork and exec the child also takes on its [`Confinement`], in this order: it joins
//! its own cgroup v2 directory when the supervisor has a delegated cgroup ([`cgroup`]); it
//! empties its capability bounding set (when it may); it becomes a uid and gid of its own when
//! a range is configured ([`identity`], root only);
//! then it sets its resource limits (`RLIMIT_AS`, `RLIMIT_CPU`, `RLIMIT_NOFILE`, `RLIMIT_CORE`
//! 0, and `RLIMIT_NPROC` with a uid of its own). Doing this here rather than in the worker
//! means the limits bind from the worker's first instruction whatever the worker binary does.
//! The worker then applies the inner half itself (no_new_privs, not dumpable, capabilities
//! dropped, Landlock, seccomp) before it reads its hello, which repeats the limits so the
//! worker can check them. Every step here uses only async-signal-safe calls on values
//! prepared before the fork.
//!
//! The parent-death signal fires when the *thread* that forked the child exits, not the
//! process. Tokio's blocking-pool threads come and go, so spawning from one of them would kill
//! workers at random. All spawns therefore run on one thread, the host (`host.rs`), that lives as long
//! as the supervisor process: it enters the tokio runtime (to register the sockets it returns)
//! and forks on request. In the supervisor the host is the process's main thread (`main` runs
//! the runtime on a thread of its own), because the main thread is also the one that survives
//! an `execve` (ARCHITECTURE.md, *Upgrading in place*): a worker forked by any other thread
//! would be killed when that thread ends at the exec. Exited workers are reaped by one thread for all of them
//! ([`reaper`]), so a worker costs the supervisor one descriptor, its socket.
//!
//! A wrapped stdio server (external worker mode, [`WrappedLaunch`]) is started the same way
//! with three differences: the program is `bulkhead-worker --exec`, the shim that confines
//! itself and then executes the server; the socket is the child's stdin and stdout (descriptors
//! 0 and 1) instead of descriptor 3, and stderr is a pipe the worker's actor reads; and the
//! environment is exactly the one the caller built for the session, plus `HOME` and `TMPDIR`
//! pointing at a private directory ([`home`]). Because wrapped servers start processes of their
//! own, the supervisor becomes a child subreaper on the first such spawn and keeps track of
//! every worker it started ([`tree`]), so a session's whole tree can be found and stopped.

mod cgroup;
mod home;
mod host;
mod identity;
mod reaper;
pub mod reexec;
mod tree;

use std::collections::HashSet;
use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, IntoRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use bulkhead_protocol::exec::{ENV_EXEC_POLICY, ExecPolicy, ExecReport, MAX_EXEC_REPORT_BYTES};
use bulkhead_protocol::handshake::SandboxPolicy;
use bulkhead_protocol::{ENV_WORKER_PROTOCOL, WORKER_PROTOCOL_VERSION, WORKER_SOCKET_FD};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::signal::Signal;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Pid, Uid, getppid};
use tokio::sync::oneshot;
use zeroize::Zeroizing;

pub use cgroup::CgroupMode;
pub use host::{HostLink, Spawner, host};
pub use identity::UidRange;
pub use reaper::Child;
pub use tree::{sweep, tree_pss_bytes};

/// What to start for one worker.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    /// The worker executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// External worker mode: how to start a wrapped stdio server through the exec shim
    /// (`program` is then `bulkhead-worker`, `args` start with `--exec`). `None`: the built-in
    /// worker.
    pub wrapped: Option<WrappedLaunch>,
}

/// The parts of a wrapped server's start that differ from the built-in worker's.
#[derive(Clone)]
pub struct WrappedLaunch {
    /// The server's whole environment (besides the shim's two variables, and `HOME` and
    /// `TMPDIR` when absent here), which may hold the principal's provisioned secrets.
    pub env: Vec<(OsString, Zeroizing<Vec<u8>>)>,
    /// The shim's policy; the server's private home is added to its write paths.
    pub policy: ExecPolicy,
    /// `RLIMIT_AS` for the server instead of the worker's (JIT runtimes reserve far more
    /// address space than they use); clamped to the supervisor's own hard limit.
    pub max_address_space: u64,
}

impl std::fmt::Debug for WrappedLaunch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: values may be secrets.
        let names: Vec<_> = self.env.iter().map(|(name, _)| name).collect();
        f.debug_struct("WrappedLaunch")
            .field("env", &names)
            .field("policy", &self.policy)
            .field("max_address_space", &self.max_address_space)
            .finish()
    }
}

/// How every worker of this supervisor is confined from the outside.
#[derive(Debug, Clone, Default)]
pub struct Confinement {
    /// Resource limits: rlimits, and the cgroup's values when there is one.
    pub sandbox: SandboxPolicy,
    /// Give each worker a uid and gid of its own from this range (needs root). Off by default.
    pub uid_range: Option<UidRange>,
    /// Where per-worker cgroups go.
    pub cgroup: CgroupMode,
}

/// A freshly started worker: the child (owned and reaped by its caller), the supervisor's
/// end of its private socket, the limits it runs under (for its hello), and what it holds
/// while it lives.
#[derive(Debug)]
pub struct Spawned {
    pub child: Child,
    /// A wrapped server's stderr pipe; `None` for the built-in worker.
    pub stderr: Option<tokio::net::unix::pipe::Receiver>,
    pub socket: tokio::net::UnixStream,
    pub sandbox: SandboxPolicy,
    pub lease: WorkerLease,
}

/// Resources one worker holds: its cgroup directory, its uid, its place among the live
/// workers and (wrapped servers) its private home. Dropping the lease removes, frees and
/// forgets them, so drop it only after the child is reaped.
#[derive(Debug, Default)]
pub struct WorkerLease {
    cgroup: Option<cgroup::WorkerCgroup>,
    _uid: Option<identity::UidLease>,
    _home: Option<home::PrivateHome>,
    _tracked: Option<tree::Tracked>,
}

impl WorkerLease {
    /// A wrapped server's private home, which a reload hands over.
    pub fn home(&self) -> Option<PathBuf> {
        self._home.as_ref().map(|home| home.path().to_path_buf())
    }

    /// Signal what worker `pid` started: with SIGKILL, everything in its cgroup at once
    /// (`cgroup.kill`, which also catches processes that left its process group); then every
    /// descendant, wherever its group. The worker itself and its group are signalled through
    /// its [`Child`].
    pub fn signal_descendants(&self, pid: u32, signal: Signal) {
        if signal == Signal::SIGKILL
            && let Some(cgroup) = &self.cgroup
        {
            cgroup.kill();
        }
        tree::signal_descendants(pid, signal);
    }

    /// SIGKILL everything left in the worker's cgroup, if it has one (safe after reaping: the
    /// cgroup is the worker's until the lease is dropped).
    pub fn kill_cgroup(&self) {
        if let Some(cgroup) = &self.cgroup {
            cgroup.kill();
        }
    }
}

struct SpawnRequest {
    command: WorkerCommand,
    reply: oneshot::Sender<io::Result<Spawned>>,
}

/// Everything the spawner thread prepared once: the limits (clamped to what the supervisor
/// may grant), the uid pool and the cgroup parent.
struct Jail {
    sandbox: SandboxPolicy,
    rlimits: Vec<(Resource, u64)>,
    uids: Option<identity::UidPool>,
    cgroups: Option<cgroup::WorkerCgroups>,
}

impl Jail {
    fn prepare(confinement: &Confinement) -> io::Result<Self> {
        let uids = confinement
            .uid_range
            .map(identity::UidPool::new)
            .transpose()?;
        let cgroups = cgroup::prepare(&confinement.cgroup).map_err(io::Error::other)?;
        let mut sandbox = confinement.sandbox;
        let mut rlimits = vec![(Resource::RLIMIT_CORE, 0)];
        for (resource, name, value) in [
            (
                Resource::RLIMIT_AS,
                "RLIMIT_AS",
                &mut sandbox.max_memory_bytes,
            ),
            (
                Resource::RLIMIT_CPU,
                "RLIMIT_CPU",
                &mut sandbox.max_cpu_seconds,
            ),
            (
                Resource::RLIMIT_NOFILE,
                "RLIMIT_NOFILE",
                &mut sandbox.max_open_files,
            ),
        ] {
            // An unprivileged supervisor cannot grant more than its own hard limit.
            let (_, hard) = getrlimit(resource).map_err(io::Error::from)?;
            if *value > hard {
                tracing::warn!(
                    "worker {name} lowered from {value} to {hard}, the supervisor's own hard limit"
                );
                *value = hard;
            }
            rlimits.push((resource, *value));
        }
        // RLIMIT_NPROC counts every process of the real uid, so with the supervisor's uid it
        // would count the supervisor's threads and every other worker; it is meaningful only
        // with a uid of the worker's own. Otherwise seccomp forbids new processes and the
        // cgroup's pids.max bounds threads.
        if uids.is_some() {
            rlimits.push((Resource::RLIMIT_NPROC, sandbox.max_tasks));
        }
        Ok(Self {
            sandbox,
            rlimits,
            uids,
            cgroups,
        })
    }
}

/// A worker the previous image of this process started, as a reload hands it over.
pub struct AdoptedWorker {
    pub pid: u32,
    /// A wrapped server's private home.
    pub home: Option<PathBuf>,
}

/// Take over workers the previous image started (ARCHITECTURE.md, *Upgrading in place*): each
/// is recorded with the reaper and among the live workers (so no orphan sweep mistakes it for
/// an escaped process), and keeps its private home until it is reaped. Call before anything is
/// spawned, inside the runtime.
pub fn adopt(workers: &[AdoptedWorker]) -> io::Result<Vec<(Child, WorkerLease)>> {
    if workers.iter().any(|worker| worker.home.is_some()) {
        tree::adopt_orphans();
    }
    let pids: Vec<u32> = workers.iter().map(|worker| worker.pid).collect();
    let mut live = tree::workers();
    let children = reaper::adopt(&pids)?;
    Ok(children
        .into_iter()
        .zip(workers)
        .map(|(child, worker)| {
            live.insert(worker.pid);
            let lease = WorkerLease {
                _home: worker.home.clone().map(home::PrivateHome::adopt),
                _tracked: Some(tree::Tracked(worker.pid)),
                ..WorkerLease::default()
            };
            (child, lease)
        })
        .collect())
}

/// What the child does between fork and exec, all prepared before the fork.
struct ChildPlan {
    cgroup_procs: Option<CString>,
    ids: Option<(Uid, Gid)>,
    rlimits: Vec<(Resource, u64)>,
    /// The descriptor to place on descriptor 3: the built-in worker's socket, or the write end
    /// of a wrapped server's report pipe (its socket is on 0 and 1 through `Stdio`).
    fd_3: Option<i32>,
    supervisor_pid: Pid,
}

fn spawn_worker(
    command: &WorkerCommand,
    supervisor_pid: Pid,
    jail: &mut Jail,
) -> io::Result<Spawned> {
    let uid = jail
        .uids
        .as_ref()
        .map(identity::UidPool::lease)
        .transpose()?;
    let cgroup = match &mut jail.cgroups {
        Some(cgroups) => Some(cgroups.create(&jail.sandbox)?),
        None => None,
    };
    let (parent_end, child_end) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    let ids = uid.as_ref().map(identity::UidLease::ids);
    let mut rlimits = jail.rlimits.clone();
    if let Some(launch) = &command.wrapped {
        let (_, hard) = getrlimit(Resource::RLIMIT_AS).map_err(io::Error::from)?;
        for (resource, limit) in &mut rlimits {
            if *resource == Resource::RLIMIT_AS {
                *limit = launch.max_address_space.min(hard);
            }
        }
    }
    // A wrapped server's exec shim reports on a pipe of its own, which it closes before it
    // executes the server: nothing the server writes can pass for the shim's report.
    let report_pipe = match &command.wrapped {
        Some(_) => Some(nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from)?),
        None => None,
    };
    let plan = ChildPlan {
        cgroup_procs: cgroup.as_ref().map(cgroup::WorkerCgroup::procs_path),
        ids,
        rlimits,
        fd_3: match &report_pipe {
            Some((_, write_end)) => Some(write_end.as_raw_fd()),
            None => Some(child_end.as_raw_fd()),
        },
        supervisor_pid,
    };

    #[allow(clippy::disallowed_methods, reason = "this is the one spawn function")]
    let mut process = std::process::Command::new(&command.program);
    process
        .args(&command.args)
        .env_clear()
        .env(ENV_WORKER_PROTOCOL, WORKER_PROTOCOL_VERSION.to_string())
        .process_group(0);
    let home = match &command.wrapped {
        None => {
            process
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::inherit());
            None
        }
        Some(launch) => {
            tree::adopt_orphans();
            let home = home::PrivateHome::create(ids)?;
            configure_wrapped(&mut process, launch, &home, supervisor_pid)?;
            process
                .stdin(std::process::Stdio::from(child_end.try_clone()?))
                .stdout(std::process::Stdio::from(child_end.try_clone()?))
                .stderr(std::process::Stdio::piped());
            Some(home)
        }
    };
    // SAFETY: the closure runs in the forked child before exec and calls only async-signal-safe
    // system calls (open, write, prctl, setgroups, setresgid, setresuid, setrlimit, getppid,
    // dup2, fcntl) through nix's thin wrappers on values prepared before the fork, allocating
    // nothing. `plan.fd_3` stays open in the child because `child_end` and `report_pipe` are
    // still alive in the parent at fork time.
    unsafe {
        process.pre_exec(move || prepare_child(&plan));
    }
    let (child, stderr, tracked) = {
        // Recorded under both locks, so an orphan sweep never mistakes it for an escaped
        // process and the reaper never mistakes its exit for an orphan's.
        let mut workers = tree::workers();
        let recording = reaper::recording()?;
        let mut std_child = process.spawn()?;
        let pid = std_child.id();
        let child = recording.record(pid);
        workers.insert(pid);
        (child, std_child.stderr.take(), tree::Tracked(pid))
    };
    drop(process);
    drop(child_end);
    if let Some((read_end, write_end)) = report_pipe {
        // Only the child may hold the write end, so the pipe ends when the shim closes it.
        drop(write_end);
        read_exec_report(read_end, child.id())?;
    }
    let stderr = stderr
        .map(|pipe| tokio::net::unix::pipe::Receiver::from_owned_fd(pipe.into()))
        .transpose()?;

    let socket = std::os::unix::net::UnixStream::from(parent_end);
    socket.set_nonblocking(true)?;
    let socket = tokio::net::UnixStream::from_std(socket)?;
    Ok(Spawned {
        child,
        stderr,
        socket,
        sandbox: jail.sandbox,
        lease: WorkerLease {
            cgroup,
            _uid: uid,
            _home: home,
            _tracked: Some(tracked),
        },
    })
}

/// Start `program --reload-preflight 3 ARGS…` with `state` on descriptor 3, the new image's
/// environment, stdout a pipe for its answer and stderr shared, recorded with the reaper. Runs
/// on the host.
fn start_preflight(
    program: &std::path::Path,
    state: std::os::fd::RawFd,
    args: &[OsString],
    env: &[(OsString, OsString)],
) -> io::Result<Preflight> {
    #[allow(clippy::disallowed_methods, reason = "spawn starts every process")]
    let mut command = std::process::Command::new(program);
    command
        .arg(reexec::PREFLIGHT_FLAG)
        .arg(reexec::PREFLIGHT_STATE_FD.to_string())
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(name, value)| (name, value)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .process_group(0);
    // SAFETY: runs in the forked child before exec; dup2 and fcntl are async-signal-safe and
    // use only `state`, a descriptor open in the parent at fork time.
    unsafe {
        command.pre_exec(move || {
            if libc::dup2(state, reexec::PREFLIGHT_STATE_FD) < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::fcntl(reexec::PREFLIGHT_STATE_FD, libc::F_SETFD, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // Recorded among the live workers too, so an orphan sweep (external worker mode) never
    // takes it for an escaped process and reaps it behind the reaper's back.
    let (child, mut started, tracked) = {
        let mut workers = tree::workers();
        let recording = reaper::recording()?;
        let started = command.spawn()?;
        let pid = started.id();
        let child = recording.record(pid);
        workers.insert(pid);
        (child, started, tree::Tracked(pid))
    };
    let stdout = started
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("the pre-flight run has no stdout"))?;
    let answer =
        tokio::net::unix::pipe::Receiver::from_owned_fd(std::os::fd::OwnedFd::from(stdout))?;
    Ok(Preflight {
        child,
        answer,
        _tracked: tracked,
    })
}

/// A pre-flight run: the child, the pipe its answer comes on, and its place among the live
/// workers (dropped once it is reaped).
pub struct Preflight {
    pub child: Child,
    pub answer: tokio::net::unix::pipe::Receiver,
    _tracked: tree::Tracked,
}

/// The environment of a wrapped server: the shim's policy (with the private home writable),
/// the session's variables, and `HOME`/`TMPDIR` at the private home unless the session's
/// variables name them.
fn configure_wrapped(
    process: &mut std::process::Command,
    launch: &WrappedLaunch,
    home: &home::PrivateHome,
    supervisor_pid: Pid,
) -> io::Result<()> {
    let mut policy = launch.policy.clone();
    policy.write.push(home.path().to_path_buf());
    policy.supervisor_pid = u32::try_from(supervisor_pid.as_raw()).unwrap_or(0);
    let policy = serde_json::to_string(&policy).map_err(io::Error::other)?;
    process.env(ENV_EXEC_POLICY, policy);
    for name in ["HOME", "TMPDIR"] {
        if !launch.env.iter().any(|(key, _)| key == name) {
            process.env(name, home.path());
        }
    }
    for (name, value) in &launch.env {
        process.env(name, std::ffi::OsStr::from_bytes(value));
    }
    Ok(())
}

/// Runs in the child between fork and exec. Errors travel back to `spawn` as an errno only.
fn prepare_child(plan: &ChildPlan) -> io::Result<()> {
    // First, while still the supervisor's uid and before RLIMIT_NOFILE (the forked copy still
    // holds every close-on-exec descriptor of the supervisor, so a low limit could leave no
    // number free for this open).
    if let Some(procs) = &plan.cgroup_procs {
        let file = nix::fcntl::open(
            procs.as_c_str(),
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        // "0" moves the writing process itself.
        nix::unistd::write(&file, b"0")?;
    }
    drop_capability_bounding_set()?;
    if let Some((uid, gid)) = plan.ids {
        nix::unistd::setgroups(&[])?;
        nix::unistd::setresgid(gid, gid, gid)?;
        nix::unistd::setresuid(uid, uid, uid)?;
    }
    for &(resource, limit) in &plan.rlimits {
        setrlimit(resource, limit, limit)?;
    }
    // After any uid change, which clears the parent-death signal.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    // The supervisor may have died between fork and prctl; then nothing would kill us later.
    if getppid() != plan.supervisor_pid {
        return Err(Errno::ESRCH.into());
    }
    let Some(socket_fd) = plan.fd_3 else {
        return Ok(());
    };
    if socket_fd != WORKER_SOCKET_FD {
        // SAFETY: `socket_fd` is open in this (child) process; `dup2_raw` makes descriptor 3 a
        // copy of it, closing whatever 3 was (at most a close-on-exec descriptor the exec would
        // close anyway). The returned OwnedFd is converted back to a raw fd so it is not closed.
        let socket = unsafe { BorrowedFd::borrow_raw(socket_fd) };
        // SAFETY: see above; descriptor 3 is handed to the exec'd worker, never closed here.
        let _handed_to_worker =
            unsafe { nix::unistd::dup2_raw(socket, WORKER_SOCKET_FD) }?.into_raw_fd();
    }
    // dup2 clears close-on-exec on the new descriptor, but not when old and new are the same
    // descriptor, so clear it explicitly.
    // SAFETY: descriptor 3 is open (it is the socket) for the rest of this function.
    let socket = unsafe { BorrowedFd::borrow_raw(WORKER_SOCKET_FD) };
    fcntl(socket, FcntlArg::F_SETFD(FdFlag::empty()))?;
    Ok(())
}

/// Empty the capability bounding set, so no capability can come back through exec, whatever
/// uid the worker runs as. Needs CAP_SETPCAP; a child of an unprivileged supervisor has no
/// capability to lose and leaves the set alone (the worker's no_new_privs covers exec).
fn drop_capability_bounding_set() -> io::Result<()> {
    for capability in 0..64 {
        // SAFETY: prctl with integer arguments only; async-signal-safe.
        let result = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, capability, 0, 0, 0) };
        if result != 0 {
            return match Errno::last() {
                // Past the kernel's last capability: done.
                Errno::EINVAL => Ok(()),
                Errno::EPERM if capability == 0 => Ok(()),
                errno => Err(errno.into()),
            };
        }
    }
    Ok(())
}

/// Read a wrapped server's exec shim report (bounded) in the background, until the shim closes
/// its end before it executes the server (or exits), and log it.
fn read_exec_report(read_end: std::os::fd::OwnedFd, pid: u32) -> io::Result<()> {
    use tokio::io::AsyncReadExt;
    let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(read_end)?;
    tokio::spawn(async move {
        let mut text = Vec::new();
        let limit = u64::try_from(MAX_EXEC_REPORT_BYTES).unwrap_or(u64::MAX);
        if pipe.take(limit).read_to_end(&mut text).await.is_err() {
            return;
        }
        let degraded: Vec<String> = ExecReport::parse_all(&String::from_utf8_lossy(&text))
            .into_iter()
            .map(|ExecReport::Degraded(sentence)| sentence)
            .collect();
        report_worker_sandbox(pid, &degraded);
    });
    Ok(())
}

/// Most distinct sandbox sentences remembered: a kernel lacks a handful of protections; the set
/// must stay bounded whatever a worker's `ready` says.
const MAX_REMEMBERED_SENTENCES: usize = 64;

/// Log what a worker's own sandbox could not apply on this kernel: each distinct sentence once
/// at `warn` (it is the same for every worker of this supervisor), repeats at `debug`. Once
/// [`MAX_REMEMBERED_SENTENCES`] are remembered, new ones are logged at `debug` only.
pub fn report_worker_sandbox(pid: u32, degraded: &[String]) {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    for sentence in degraded {
        let first = seen
            .lock()
            .map(|mut seen| seen.len() < MAX_REMEMBERED_SENTENCES && seen.insert(sentence.clone()))
            .unwrap_or(false);
        if first {
            tracing::warn!(pid, "worker sandbox degraded: {sentence}");
        } else {
            tracing::debug!(pid, "worker sandbox degraded: {sentence}");
        }
    }
}

/// Run a one-off tool of the supervisor's own — a package installer, at start — and wait for
/// it: the supervisor's environment plus `env`, stdin from `/dev/null`, stdout and stderr
/// captured (never the supervisor's stdout, which is the protocol stream). Not a worker: no
/// sandbox, since it does what the operator's own command line would have done.
pub fn run_tool(
    program: &std::path::Path,
    args: &[OsString],
    env: &[(OsString, OsString)],
) -> io::Result<std::process::Output> {
    #[allow(
        clippy::disallowed_methods,
        reason = "the spawn module's one-off tools (package installers)"
    )]
    let mut command = std::process::Command::new(program);
    command
        .args(args)
        .envs(env.iter().map(|(name, value)| (name, value)))
        .stdin(std::process::Stdio::null())
        .output()
}

#[cfg(test)]
mod tests;
