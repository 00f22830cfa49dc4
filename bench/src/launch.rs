//! Starting the processes under test: `bulkhead stdio`, `bulkhead serve`, and — for the
//! bench-only direct mode — a `bulkhead-worker` with no supervisor in front of it.
//!
//! The product crates start processes only through `supervisor::spawn`; the bench is a test
//! harness for those binaries and starts them itself (each `Command::new` below says so).
//! The direct mode reproduces what `supervisor::spawn` does for a worker — cleared environment
//! with only the protocol variable, stdin and stdout on `/dev/null`, its end of a socketpair on
//! descriptor 3, the default resource limits, its own process group and a parent-death signal —
//! then runs the versioned hello and MCP `initialize` itself, so the worker serves exactly as
//! it does behind the supervisor.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use bulkhead_protocol::handshake::{Control, SandboxPolicy};
use bulkhead_protocol::{
    ENV_WORKER_PROTOCOL, NEWEST_INITIALIZE_VERSION, WORKER_PROTOCOL_VERSION, WORKER_SOCKET_FD,
};
use serde_json::{Value, json};

use crate::http::HttpClient;
use crate::rpc::LineClient;

/// How long a supervisor gets to exit after its stdin closes or SIGTERM, before SIGKILL.
const EXIT_GRACE: Duration = Duration::from_secs(15);
/// How long `bulkhead serve` gets to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Where the binaries under test are, and where their logs go.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub dir: PathBuf,
    pub log_dir: PathBuf,
    /// `RUST_LOG` for the supervisor (and, through the hello, its workers).
    pub log_filter: String,
}

impl Binaries {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn log_file(&self, name: &str) -> io::Result<File> {
        File::create(self.log_dir.join(format!("{name}.log")))
    }

    fn supervisor(&self, args: &[String], log: &str) -> io::Result<Command> {
        #[allow(
            clippy::disallowed_methods,
            reason = "the bench launches the supervisor under test"
        )]
        let mut command = Command::new(self.path("bulkhead"));
        command
            .args(args)
            .env("RUST_LOG", &self.log_filter)
            .stderr(Stdio::from(self.log_file(log)?));
        Ok(command)
    }
}

/// A running `bulkhead stdio`, initialized in the 2025-11-25 era (one line per message).
pub struct StdioSupervisor {
    child: Child,
    pub client: LineClient<ChildStdout, ChildStdin>,
}

impl StdioSupervisor {
    pub fn start(binaries: &Binaries, extra_args: &[String], log: &str) -> io::Result<Self> {
        let mut args = vec!["stdio".to_string()];
        args.extend_from_slice(extra_args);
        let mut child = binaries
            .supervisor(&args, log)?
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(io::Error::other("the supervisor's pipes are missing"));
        };
        let mut client = LineClient::new(stdout, stdin);
        initialize(&mut client, "supervisor")?;
        Ok(Self { child, client })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Close stdin (which ends every session) and wait for the supervisor to exit.
    pub fn stop(self) -> io::Result<()> {
        let Self { mut child, client } = self;
        drop(client.into_parts());
        wait_or_kill(&mut child)
    }
}

/// A running `bulkhead serve` on a loopback port, with authentication off (the bench's
/// callers are all the principal `anonymous`) or bearer tokens, and the rate limit out of the
/// way.
pub struct HttpSupervisor {
    child: Child,
    pub addr: SocketAddr,
}

impl HttpSupervisor {
    pub fn start(binaries: &Binaries, extra_args: &[String], log: &str) -> io::Result<Self> {
        Self::start_as(binaries, &["--no-auth".to_string()], extra_args, log)
    }

    /// The same with bearer tokens (`principal:token` lines in `tokens`) instead of
    /// `--no-auth`, for measurements with several principals.
    pub fn start_with_tokens(
        binaries: &Binaries,
        tokens: &Path,
        extra_args: &[String],
        log: &str,
    ) -> io::Result<Self> {
        let auth = ["--tokens".to_string(), tokens.display().to_string()];
        Self::start_as(binaries, &auth, extra_args, log)
    }

    fn start_as(
        binaries: &Binaries,
        auth: &[String],
        extra_args: &[String],
        log: &str,
    ) -> io::Result<Self> {
        // A free port, chosen here so the address need not be read back from the log.
        let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let mut args: Vec<String> = [
            "serve",
            "--http",
            &addr.to_string(),
            "--rate-limit",
            "1000000000",
            "--rate-burst",
            "1000000000",
        ]
        .map(String::from)
        .to_vec();
        args.extend_from_slice(auth);
        args.extend_from_slice(extra_args);
        let child = binaries
            .supervisor(&args, log)?
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()?;
        let mut server = Self { child, addr };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let ready = HttpClient::connect(addr).and_then(|mut client| client.get("/readyz"));
            if matches!(ready, Ok(200)) {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "bulkhead serve exited with {status}; see its log {log}.log"
                )));
            }
            if Instant::now() >= deadline {
                let _ = server.stop();
                return Err(io::Error::other("bulkhead serve never became ready"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn connect(&self) -> io::Result<HttpClient> {
        HttpClient::connect(self.addr)
    }

    /// SIGTERM (drain, stop every worker) and wait for the supervisor to exit.
    pub fn stop(&mut self) -> io::Result<()> {
        let pid = i32::try_from(self.child.id()).map_err(io::Error::other)?;
        // SAFETY: kill with a pid we spawned and have not yet reaped, and a valid signal.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        wait_or_kill(&mut self.child)
    }
}

impl Drop for HttpSupervisor {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.stop();
        }
    }
}

fn wait_or_kill(child: &mut Child) -> io::Result<()> {
    let deadline = Instant::now() + EXIT_GRACE;
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill()?;
    child.wait()?;
    Err(io::Error::other(
        "the supervisor did not exit in time and was killed",
    ))
}

/// The 2025-11-25 `initialize` handshake over a line client: request, check, `initialized`.
fn initialize<R: Read, W: Write>(client: &mut LineClient<R, W>, who: &str) -> io::Result<()> {
    let init = client.request("initialize", initialize_params())?;
    if init.get("result").is_none() {
        return Err(io::Error::other(format!("{who} initialize failed: {init}")));
    }
    client.notify("notifications/initialized")
}

fn initialize_params() -> Value {
    json!({
        "protocolVersion": NEWEST_INITIALIZE_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "bulkhead-bench", "version": env!("CARGO_PKG_VERSION")},
    })
}

/// A worker started by the bench itself, with no supervisor in between: the baseline that
/// the supervisor's hop is measured against.
pub struct DirectWorker {
    child: Child,
    pub client: LineClient<UnixStream, UnixStream>,
}

impl DirectWorker {
    pub fn start(binaries: &Binaries) -> io::Result<Self> {
        let (ours, theirs) = UnixStream::pair()?;
        let policy = SandboxPolicy::default();
        let child = spawn_worker(&binaries.path("bulkhead-worker"), &theirs, policy, binaries)?;
        drop(theirs);
        let pid = child.id();
        let mut client = LineClient::new(ours.try_clone()?, ours);
        // Written as JSON rather than through `Hello` so that fields the handshake gains later
        // (all `#[serde(default)]`) need no change here; the worker parses it as a `Hello`.
        client.send(&json!({
            "bulkhead": "hello",
            "protocol": WORKER_PROTOCOL_VERSION,
            "session_tag": "bench",
            "log_filter": binaries.log_filter,
            "log_format": "text",
            "sandbox": policy,
        }))?;
        let ready = client.read_message()?;
        match serde_json::from_value::<Control>(ready.clone()) {
            Ok(Control::Ready(ready)) if ready.pid == pid => {}
            _ => {
                return Err(io::Error::other(format!(
                    "worker handshake failed: {ready}"
                )));
            }
        }
        initialize(&mut client, "worker")?;
        Ok(Self { child, client })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Close the socket (the worker exits on EOF) and reap it.
    pub fn stop(self) -> io::Result<()> {
        let Self { mut child, client } = self;
        drop(client);
        wait_or_kill(&mut child)
    }
}

/// Start `program` as a worker, the way `supervisor::spawn` does.
fn spawn_worker(
    program: &Path,
    socket: &UnixStream,
    policy: SandboxPolicy,
    binaries: &Binaries,
) -> io::Result<Child> {
    let socket_fd = socket.as_raw_fd();
    let rlimits = [
        (libc::RLIMIT_AS, policy.max_memory_bytes),
        (libc::RLIMIT_CPU, policy.max_cpu_seconds),
        (libc::RLIMIT_NOFILE, policy.max_open_files),
        (libc::RLIMIT_CORE, 0),
    ];
    #[allow(
        clippy::disallowed_methods,
        reason = "bench-only direct mode: the bench starts a worker without a supervisor to measure the supervisor's hop"
    )]
    let mut command = Command::new(program);
    command
        .env_clear()
        .env(ENV_WORKER_PROTOCOL, WORKER_PROTOCOL_VERSION.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(binaries.log_file("direct-worker")?))
        .process_group(0);
    // SAFETY: the closure runs in the forked child before exec and makes only
    // async-signal-safe system calls (setrlimit, prctl, dup2, fcntl) on values copied before
    // the fork, allocating nothing. `socket_fd` is open in the child because `socket` is still
    // open in the parent at fork time.
    unsafe {
        command.pre_exec(move || prepare_child(socket_fd, &rlimits));
    }
    command.spawn()
}

/// Runs in the forked child: limits, parent-death signal, the socket on descriptor 3.
fn prepare_child(socket_fd: i32, rlimits: &[(libc::__rlimit_resource_t, u64)]) -> io::Result<()> {
    for &(resource, value) in rlimits {
        let limit = libc::rlimit {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: setrlimit reads the struct we pass; async-signal-safe.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: prctl with integer arguments only; async-signal-safe.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if socket_fd != WORKER_SOCKET_FD {
        // SAFETY: `socket_fd` is open in this process; dup2 makes descriptor 3 a copy of it
        // (and clears close-on-exec on the copy).
        if unsafe { libc::dup2(socket_fd, WORKER_SOCKET_FD) } < 0 {
            return Err(io::Error::last_os_error());
        }
    } else {
        // SAFETY: descriptor 3 is the open socket; clearing its flags keeps it across exec.
        if unsafe { libc::fcntl(WORKER_SOCKET_FD, libc::F_SETFD, 0) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
