//! Wrapped servers: Bulkhead in external worker mode (`serve --wrap`, with and without a
//! pool) beside supergateway 4 `--stateful` (a Node gateway that spawns one child per session),
//! both wrapping the same `@modelcontextprotocol/server-everything` file on the same `node`,
//! driven by the same legacy Streamable HTTP client ([`LegacyClient`]) in one run.
//!
//! - **New session → first tool result**: a new client connects, sends `initialize`,
//!   `notifications/initialized` and one `echo` — timed from the connect to the `echo` result —
//!   then `DELETE` (not timed). A new connection per session, as a new client makes (and Node's
//!   HTTP server closes a keep-alive connection idle for 5 s anyway).
//!   Starts are interleaved in rounds across the three gateways (see `latency.rs` for why), each
//!   after a pause long enough for the previous session's process to stop and, with a pool, a
//!   spare to start: a wrapped Node server needs a few hundred milliseconds of CPU.
//! - **Warm call**: `echo` in an open session, interleaved between Bulkhead and supergateway.
//! - **Memory per session**: `n` sessions open on each gateway at once, each after one `echo`;
//!   then the PSS of each session's whole process tree (`/proc/<pid>/smaps_rollup`, the session's
//!   process and every descendant), averaged. Both gateways' sessions are open together, so
//!   shared pages (the `node` binary, its libraries) are split among the same processes for
//!   both. Each gateway's own process is reported beside it, not in the per-session figure.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::launch::{Binaries, HttpSupervisor};
use crate::legacy::LegacyClient;
use crate::scenarios::common_args;
use crate::stats::{Samples, Summary};
use crate::system;

/// Starts thrown away on every gateway first (Node's code cache, the page cache).
const WARMUP_STARTS: usize = 2;
/// Starts per gateway per round.
const START_BLOCK: usize = 5;
/// Calls thrown away before the warm-call measurement.
const WARMUP_CALLS: usize = 50;
/// Calls per gateway per round.
const CALL_BLOCK: usize = 100;
/// How long supergateway gets to listen.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Time for a fresh gateway to settle (catalog read, pool filled) before measuring.
const SETTLE: Duration = Duration::from_secs(2);
/// Time for opened sessions' processes to finish starting before their memory is read.
const MEMORY_SETTLE: Duration = Duration::from_secs(2);

/// Where the wrapped server and the gateway Bulkhead is compared with are installed
/// (`scripts/bench-servers`).
#[derive(Debug, Clone)]
pub struct WrappedSetup {
    /// `server-everything`'s `dist/index.js`.
    pub everything: PathBuf,
    /// supergateway's `dist/index.js`.
    pub supergateway: PathBuf,
    /// How many wrapped session starts per gateway.
    pub starts: usize,
    /// Warm calls per gateway.
    pub calls: usize,
    /// Sessions open at once for the memory figure.
    pub sessions: usize,
    /// The pause before each measured start.
    pub gap: Duration,
    pub pool_size: usize,
}

/// The three gateways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gateway {
    BulkheadPool,
    BulkheadCold,
    Supergateway,
}

impl Gateway {
    pub fn name(self) -> &'static str {
        match self {
            Gateway::BulkheadPool => "Bulkhead `serve --wrap`, from the pool",
            Gateway::BulkheadCold => "Bulkhead `serve --wrap`, no pool",
            Gateway::Supergateway => "supergateway 4 `--stateful`",
        }
    }
}

/// Memory of `sessions` open sessions on one gateway.
#[derive(Debug, Clone)]
pub struct Memory {
    pub gateway: Gateway,
    pub sessions: usize,
    /// Mean PSS of one session's process tree, KiB.
    pub per_session_kib: f64,
    /// The gateway's own process, KiB.
    pub gateway_kib: Option<u64>,
}

/// Everything the wrapped-server measurement found.
#[derive(Debug, Clone, Default)]
pub struct WrappedFigures {
    pub starts: Vec<(Gateway, Summary)>,
    pub calls: Vec<(Gateway, Summary)>,
    pub memory: Vec<Memory>,
    pub pool_size: usize,
    pub gap_ms: u128,
}

/// A running gateway and a client connected to it.
struct Running {
    gateway: Gateway,
    process: Process,
    addr: SocketAddr,
    samples: Samples,
}

enum Process {
    Bulkhead(HttpSupervisor),
    Node(Child),
}

impl Process {
    fn pid(&self) -> u32 {
        match self {
            Process::Bulkhead(server) => server.pid(),
            Process::Node(child) => child.id(),
        }
    }

    fn stop(self) -> io::Result<()> {
        match self {
            Process::Bulkhead(mut server) => server.stop(),
            Process::Node(mut child) => {
                let pid = child.id();
                let tree = descendants(pid);
                let _ = child.kill();
                let _ = child.wait();
                // supergateway ends its children itself; anything left is killed here.
                for pid in tree {
                    if let Ok(pid) = i32::try_from(pid) {
                        // SAFETY: kill with a pid and a valid signal; a pid that is already
                        // gone gets ESRCH.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
                Ok(())
            }
        }
    }
}

fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut queue = system::children(pid);
    while let Some(child) = queue.pop() {
        found.push(child);
        queue.extend(system::children(child));
    }
    found
}

impl WrappedSetup {
    fn bulkhead(&self, binaries: &Binaries, pool: usize, log: &str) -> io::Result<Process> {
        let node_modules = self
            .everything
            .ancestors()
            .find(|dir| dir.ends_with("node_modules"))
            .map(Path::to_path_buf)
            .ok_or_else(|| io::Error::other("server-everything is not under a node_modules"))?;
        let mut args = common_args(1000, pool);
        args.extend([
            "--wrap-allow-path".to_string(),
            text(&node_modules)?,
            "--wrap".into(),
            "--".into(),
            "node".into(),
            text(&self.everything)?,
            "stdio".into(),
        ]);
        Ok(Process::Bulkhead(HttpSupervisor::start(
            binaries, &args, log,
        )?))
    }

    fn supergateway(&self, binaries: &Binaries) -> io::Result<(Process, SocketAddr)> {
        let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let log = std::fs::File::create(binaries.log_dir.join("wrapped-supergateway.log"))?;
        #[allow(
            clippy::disallowed_methods,
            reason = "the bench launches the gateway Bulkhead is compared with"
        )]
        let child = Command::new("node")
            .arg(&self.supergateway)
            .args([
                "--stdio",
                &format!("node {} stdio", text(&self.everything)?),
                "--outputTransport",
                "streamableHttp",
                "--stateful",
                "--port",
                &addr.port().to_string(),
                "--logLevel",
                "none",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()?;
        let mut process = Process::Node(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        while TcpStream::connect(addr).is_err() {
            if Instant::now() >= deadline {
                let _ = process.stop();
                return Err(io::Error::other(
                    "supergateway never listened; see wrapped-supergateway.log",
                ));
            }
            if let Process::Node(child) = &mut process
                && let Some(status) = child.try_wait()?
            {
                return Err(io::Error::other(format!(
                    "supergateway exited with {status}; see wrapped-supergateway.log"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok((process, addr))
    }

    fn start(&self, binaries: &Binaries, gateway: Gateway) -> io::Result<Running> {
        let (process, addr) = match gateway {
            Gateway::BulkheadPool => {
                let process = self.bulkhead(binaries, self.pool_size, "wrapped-pool")?;
                let addr = bulkhead_addr(&process);
                (process, addr)
            }
            Gateway::BulkheadCold => {
                let process = self.bulkhead(binaries, 0, "wrapped-cold")?;
                let addr = bulkhead_addr(&process);
                (process, addr)
            }
            Gateway::Supergateway => self.supergateway(binaries)?,
        };
        Ok(Running {
            gateway,
            process,
            addr,
            samples: Samples::default(),
        })
    }
}

fn bulkhead_addr(process: &Process) -> SocketAddr {
    match process {
        Process::Bulkhead(server) => server.addr,
        Process::Node(_) => unreachable!("a Bulkhead process"),
    }
}

fn text(path: &Path) -> io::Result<String> {
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| io::Error::other(format!("{} is not UTF-8", path.display())))
}

impl Running {
    /// One timed session start: open, first `echo`; then close, untimed.
    fn session_start(&mut self) -> io::Result<Duration> {
        let started = Instant::now();
        let mut client = LegacyClient::connect(self.addr)?;
        let session = client.open()?;
        client.tool(&session, "echo", json!({"message": "hello"}))?;
        let elapsed = started.elapsed();
        client.close(&session)?;
        Ok(elapsed)
    }
}

/// The whole measurement; a gateway that cannot start fails it (the comparison needs all).
pub fn measure(binaries: &Binaries, setup: &WrappedSetup) -> io::Result<WrappedFigures> {
    for (what, path) in [
        ("server-everything", &setup.everything),
        ("supergateway", &setup.supergateway),
    ] {
        if !path.is_file() {
            return Err(io::Error::other(format!(
                "{what} is not installed at {} (scripts/bench-servers installs it)",
                path.display()
            )));
        }
    }
    let mut figures = WrappedFigures {
        pool_size: setup.pool_size,
        gap_ms: setup.gap.as_millis(),
        ..WrappedFigures::default()
    };
    let mut running = Vec::new();
    for gateway in [
        Gateway::BulkheadPool,
        Gateway::BulkheadCold,
        Gateway::Supergateway,
    ] {
        match setup.start(binaries, gateway) {
            Ok(started) => running.push(started),
            Err(error) => {
                stop_all(running);
                return Err(io::Error::other(format!("{}: {error}", gateway.name())));
            }
        }
    }
    let outcome = run_all(&mut running, setup, &mut figures);
    stop_all(running);
    outcome.map(|()| figures)
}

fn stop_all(running: Vec<Running>) {
    for gateway in running {
        let _ = gateway.process.stop();
    }
}

fn run_all(
    running: &mut [Running],
    setup: &WrappedSetup,
    figures: &mut WrappedFigures,
) -> io::Result<()> {
    std::thread::sleep(SETTLE);
    for gateway in running.iter_mut() {
        for _ in 0..WARMUP_STARTS {
            std::thread::sleep(setup.gap);
            gateway.session_start().map_err(named(gateway.gateway))?;
        }
    }
    let rounds = setup.starts.div_ceil(START_BLOCK);
    for _ in 0..rounds {
        for gateway in running.iter_mut() {
            let block = START_BLOCK.min(setup.starts - gateway.samples.count());
            for _ in 0..block {
                std::thread::sleep(setup.gap);
                let elapsed = gateway.session_start().map_err(named(gateway.gateway))?;
                gateway.samples.push(elapsed);
            }
        }
    }
    for gateway in running.iter_mut() {
        if let Some(summary) = gateway.samples.summary() {
            figures.starts.push((gateway.gateway, summary));
        }
    }
    let compared = |gateway: &Running| gateway.gateway != Gateway::BulkheadPool;
    figures.calls = warm_calls(running.iter_mut().filter(|g| compared(g)), setup.calls)?;
    figures.memory = memory(running.iter_mut().filter(|g| compared(g)), setup.sessions)?;
    Ok(())
}

fn named(gateway: Gateway) -> impl Fn(io::Error) -> io::Error {
    move |error| io::Error::other(format!("{}: {error}", gateway.name()))
}

/// Warm `echo` latency in one open session per gateway, interleaved.
fn warm_calls<'a>(
    gateways: impl Iterator<Item = &'a mut Running>,
    calls: usize,
) -> io::Result<Vec<(Gateway, Summary)>> {
    let mut open = Vec::new();
    for gateway in gateways {
        let mut client = LegacyClient::connect(gateway.addr)?;
        let session = client.open().map_err(named(gateway.gateway))?;
        for _ in 0..WARMUP_CALLS {
            client.tool(&session, "echo", json!({"message": "hello"}))?;
        }
        open.push((
            gateway.gateway,
            client,
            session,
            Samples::with_capacity(calls),
        ));
    }
    for _ in 0..calls.div_ceil(CALL_BLOCK) {
        for (gateway, client, session, samples) in &mut open {
            for _ in 0..CALL_BLOCK.min(calls - samples.count()) {
                let started = Instant::now();
                client
                    .tool(session, "echo", json!({"message": "hello"}))
                    .map_err(named(*gateway))?;
                samples.push(started.elapsed());
            }
        }
    }
    let mut figures = Vec::new();
    for (gateway, mut client, session, samples) in open {
        client.close(&session)?;
        if let Some(summary) = samples.summary() {
            figures.push((gateway, summary));
        }
    }
    Ok(figures)
}

/// PSS per session with `sessions` open on every gateway at once.
fn memory<'a>(
    gateways: impl Iterator<Item = &'a mut Running>,
    sessions: usize,
) -> io::Result<Vec<Memory>> {
    let mut open = Vec::new();
    for gateway in gateways {
        let before: Vec<u32> = system::children(gateway.process.pid());
        let mut handles = Vec::new();
        for _ in 0..sessions {
            let mut client = LegacyClient::connect(gateway.addr)?;
            let session = client.open().map_err(named(gateway.gateway))?;
            client.tool(&session, "echo", json!({"message": "hello"}))?;
            handles.push(session);
        }
        open.push((gateway, before, handles));
    }
    std::thread::sleep(MEMORY_SETTLE);
    let mut figures = Vec::new();
    for (gateway, before, handles) in &mut open {
        let pid = gateway.process.pid();
        // Each session's process is a child of its gateway that was not there before.
        let roots: Vec<u32> = system::children(pid)
            .into_iter()
            .filter(|child| !before.contains(child))
            .collect();
        if roots.len() != handles.len() {
            return Err(io::Error::other(format!(
                "{}: {} new children for {} sessions",
                gateway.gateway.name(),
                roots.len(),
                handles.len()
            )));
        }
        let total: u64 = roots
            .iter()
            .map(|&root| system::tree_pss_kib(root))
            .sum::<Option<u64>>()
            .ok_or_else(|| {
                io::Error::other("cannot read a session's PSS (reading it needs root)")
            })?;
        figures.push(Memory {
            gateway: gateway.gateway,
            sessions: handles.len(),
            per_session_kib: total as f64 / handles.len().max(1) as f64,
            gateway_kib: system::pss_kib(pid),
        });
    }
    for (gateway, _, handles) in open {
        let mut client = LegacyClient::connect(gateway.addr)?;
        for session in handles {
            client.close(&session)?;
        }
    }
    Ok(figures)
}
