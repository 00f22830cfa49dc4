//! The one place that starts processes.
//!
//! Every worker is started here, so every worker gets the same treatment: a cleared
//! environment with only the protocol variable, stdin and stdout on `/dev/null` (stdout is the
//! client's protocol stream and must never be shared), stderr inherited for logs, its end of a
//! fresh `socketpair` on descriptor 3 and no other descriptor (everything else the supervisor
//! holds is close-on-exec), its own process group, and `PR_SET_PDEATHSIG = SIGKILL`.
//!
//! The parent-death signal fires when the *thread* that forked the child exits, not the
//! process. Tokio's blocking-pool threads come and go, so spawning from one of them would kill
//! workers at random. All spawns therefore run on one dedicated thread ([`Spawner`]) that lives
//! as long as the supervisor process: it enters the tokio runtime (so the returned
//! `tokio::process::Child` is reaped by tokio's SIGCHLD driver) and forks on request.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, IntoRawFd};
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;

use bulkhead_protocol::{ENV_WORKER_PROTOCOL, WORKER_PROTOCOL_VERSION, WORKER_SOCKET_FD};
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::signal::Signal;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::unistd::{Pid, getppid};
use tokio::sync::oneshot;

/// What to start for one worker.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    /// The worker executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
}

/// A freshly started worker: the child (owned and reaped by its caller) and the supervisor's
/// end of its private socket.
#[derive(Debug)]
pub struct Spawned {
    pub child: tokio::process::Child,
    pub socket: tokio::net::UnixStream,
}

struct SpawnRequest {
    command: WorkerCommand,
    reply: oneshot::Sender<io::Result<Spawned>>,
}

/// Handle to the long-lived spawning thread. Cloning shares the thread.
#[derive(Clone)]
pub struct Spawner {
    requests: std_mpsc::Sender<SpawnRequest>,
}

impl Spawner {
    /// Start the spawning thread. It runs until every `Spawner` clone is dropped, which in
    /// practice is the end of the process: workers whose parent thread exits are killed.
    pub fn start(runtime: tokio::runtime::Handle) -> io::Result<Self> {
        let (requests, inbox) = std_mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("bulkhead-spawner".into())
            .spawn(move || {
                let _runtime = runtime.enter();
                let supervisor_pid = nix::unistd::getpid();
                for request in inbox {
                    let result = spawn_worker(&request.command, supervisor_pid);
                    // The requester may have given up (e.g. shutdown); the child is then
                    // dropped here and killed by `kill_on_drop`.
                    let _ = request.reply.send(result);
                }
            })?;
        Ok(Self { requests })
    }

    /// Start one worker.
    pub async fn spawn(&self, command: WorkerCommand) -> io::Result<Spawned> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(SpawnRequest { command, reply })
            .map_err(|_| io::Error::other("the spawner thread has stopped"))?;
        answer
            .await
            .map_err(|_| io::Error::other("the spawner thread has stopped"))?
    }
}

fn spawn_worker(command: &WorkerCommand, supervisor_pid: Pid) -> io::Result<Spawned> {
    let (parent_end, child_end) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    let child_fd = child_end.as_raw_fd();

    #[allow(clippy::disallowed_methods, reason = "this is the one spawn function")]
    let mut process = tokio::process::Command::new(&command.program);
    process
        .args(&command.args)
        .env_clear()
        .env(ENV_WORKER_PROTOCOL, WORKER_PROTOCOL_VERSION.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: the closure runs in the forked child before exec and calls only async-signal-safe
    // system calls (prctl, getppid, dup2, fcntl) through nix's thin wrappers, allocating
    // nothing. `child_fd` stays open in the child because `child_end` is still alive in the
    // parent at fork time.
    unsafe {
        process.pre_exec(move || prepare_child(child_fd, supervisor_pid));
    }
    let child = process.spawn()?;
    drop(child_end);

    let socket = std::os::unix::net::UnixStream::from(parent_end);
    socket.set_nonblocking(true)?;
    let socket = tokio::net::UnixStream::from_std(socket)?;
    Ok(Spawned { child, socket })
}

/// Runs in the child between fork and exec.
fn prepare_child(child_fd: i32, supervisor_pid: Pid) -> io::Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
    // The supervisor may have died between fork and prctl; then nothing would kill us later.
    if getppid() != supervisor_pid {
        return Err(io::Error::other("the supervisor exited during spawn"));
    }
    if child_fd != WORKER_SOCKET_FD {
        // SAFETY: `child_fd` is open in this (child) process; `dup2_raw` makes descriptor 3 a
        // copy of it, closing whatever 3 was (at most a close-on-exec descriptor the exec would
        // close anyway). The returned OwnedFd is converted back to a raw fd so it is not closed.
        let socket = unsafe { BorrowedFd::borrow_raw(child_fd) };
        // SAFETY: see above; descriptor 3 is handed to the exec'd worker, never closed here.
        let _handed_to_worker = unsafe { nix::unistd::dup2_raw(socket, WORKER_SOCKET_FD) }
            .map_err(io::Error::from)?
            .into_raw_fd();
    }
    // dup2 clears close-on-exec on the new descriptor, but not when old and new are the same
    // descriptor, so clear it explicitly.
    // SAFETY: descriptor 3 is open (it is the socket) for the rest of this function.
    let socket = unsafe { BorrowedFd::borrow_raw(WORKER_SOCKET_FD) };
    fcntl(socket, FcntlArg::F_SETFD(FdFlag::empty())).map_err(io::Error::from)?;
    Ok(())
}

/// Send `signal` to the process group led by worker `pid` (the worker and anything it started).
pub fn signal_group(pid: u32, signal: Signal) -> nix::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| nix::errno::Errno::ESRCH)?;
    nix::sys::signal::killpg(Pid::from_raw(pid), signal)
}
