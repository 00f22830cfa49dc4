//! Latency measurements that compare paths: warm tool calls (the machine's floor, direct to a
//! worker, through `bulkhead stdio`, through `bulkhead serve`) and session starts (stdio and
//! HTTP, cold and from the pool).
//!
//! **Interleaved.** On a shared or virtualized machine the cost of waking a process drifts by
//! several times within minutes (other jobs, idle states of the CPUs), so measuring one path
//! after another compares conditions, not paths. Every path's processes are started first and
//! kept alive; then the measurement runs in rounds, each round taking one block of samples from
//! every path in turn. A drift affects all paths alike, and the ratios hold.

use std::io::{self, BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout};
use std::time::Instant;

use serde_json::json;

use crate::http::HttpClient;
use crate::launch::{Binaries, DirectWorker, HttpSupervisor, StdioSupervisor};
use crate::rpc::opened_session;
use crate::scenarios::{CallLatency, CpuMeter, Plan, SessionStart, Transport, common_args};
use crate::stats::Samples;

/// Calls made and thrown away on every path before measuring (caches, allocator, lazily
/// initialized code paths).
const WARMUP_CALLS: usize = 500;
/// Calls per path per round.
const CALL_BLOCK: usize = 250;
/// Session starts thrown away on every path before measuring.
const WARMUP_SESSIONS: usize = 3;
/// Session starts per path per round: consecutive starts on one supervisor are one pause
/// apart, so the pause is the idle time each start follows.
const START_BLOCK: usize = 10;
/// Time for fresh supervisors to read their catalogs and fill their pools.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(500);

/// `cat` with a pipe each way: the floor of a round trip between two processes.
struct Cat {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    line: Vec<u8>,
    echoed: Vec<u8>,
}

impl Cat {
    fn start() -> io::Result<Self> {
        #[allow(
            clippy::disallowed_methods,
            reason = "the bench measures the machine's process round trip with cat, no Bulkhead involved"
        )]
        let mut child = std::process::Command::new("cat")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let (Some(input), Some(output)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(io::Error::other("cat's pipes are missing"));
        };
        let mut line = vec![b'x'; 199];
        line.push(b'\n');
        Ok(Self {
            child,
            input,
            output: BufReader::new(output),
            line,
            echoed: Vec::with_capacity(256),
        })
    }

    fn round_trip(&mut self) -> io::Result<()> {
        self.input.write_all(&self.line)?;
        self.echoed.clear();
        self.output.read_until(b'\n', &mut self.echoed)?;
        Ok(())
    }
}

/// One path a warm call can take, with its processes running.
enum CallPath {
    Floor(Cat),
    Direct(DirectWorker),
    Stdio(StdioSupervisor),
    Http {
        server: HttpSupervisor,
        client: HttpClient,
        handle: String,
        worker: u32,
    },
}

impl CallPath {
    fn start(transport: Transport, binaries: &Binaries) -> io::Result<Self> {
        Ok(match transport {
            Transport::Floor => CallPath::Floor(Cat::start()?),
            Transport::Direct => CallPath::Direct(DirectWorker::start(binaries)?),
            Transport::Stdio => CallPath::Stdio(StdioSupervisor::start(
                binaries,
                &common_args(100, 0),
                "calls-stdio",
            )?),
            Transport::Http => {
                let server = HttpSupervisor::start(binaries, &common_args(100, 0), "calls-http")?;
                let mut client = server.connect()?;
                let (handle, worker) =
                    opened_session(&client.tool("session_open", json!({}), None)?)?;
                CallPath::Http {
                    server,
                    client,
                    handle,
                    worker,
                }
            }
        })
    }

    fn transport(&self) -> Transport {
        match self {
            CallPath::Floor(_) => Transport::Floor,
            CallPath::Direct(_) => Transport::Direct,
            CallPath::Stdio(_) => Transport::Stdio,
            CallPath::Http { .. } => Transport::Http,
        }
    }

    /// One `echo` (a 200-byte line for the floor), the same request on every Bulkhead path:
    /// over stdio it goes to the connection's default session.
    fn call(&mut self) -> io::Result<()> {
        match self {
            CallPath::Floor(cat) => cat.round_trip(),
            CallPath::Direct(worker) => worker
                .client
                .tool("echo", json!({"text": "hello"}))
                .map(drop),
            CallPath::Stdio(supervisor) => supervisor
                .client
                .tool("echo", json!({"text": "hello"}))
                .map(drop),
            CallPath::Http { client, handle, .. } => client
                .tool("echo", json!({"text": "hello"}), Some(handle))
                .map(drop),
        }
    }

    /// (supervisor pid, worker pid) of the path; `cat` stands in for the worker.
    fn pids(&mut self) -> io::Result<(Option<u32>, u32)> {
        Ok(match self {
            CallPath::Floor(cat) => (None, cat.child.id()),
            CallPath::Direct(worker) => (None, worker.pid()),
            CallPath::Stdio(supervisor) => {
                let info = supervisor.client.tool("session_info", json!({}))?;
                let worker = info["structuredContent"]["pid"]
                    .as_u64()
                    .and_then(|pid| u32::try_from(pid).ok())
                    .ok_or_else(|| io::Error::other(format!("no pid in {info}")))?;
                (Some(supervisor.pid()), worker)
            }
            CallPath::Http { server, worker, .. } => (Some(server.pid()), *worker),
        })
    }

    fn stop(self) -> io::Result<()> {
        match self {
            CallPath::Floor(mut cat) => {
                drop(cat.input);
                cat.child.wait().map(drop)
            }
            CallPath::Direct(worker) => worker.stop(),
            CallPath::Stdio(supervisor) => supervisor.stop(),
            CallPath::Http {
                mut server, client, ..
            } => {
                drop(client);
                server.stop()
            }
        }
    }
}

/// A path being measured: its samples and CPU so far.
struct Measured {
    path: CallPath,
    samples: Samples,
    supervisor_cpu_ns: Option<u64>,
    worker_cpu_ns: Option<u64>,
    pids: (Option<u32>, u32),
}

/// Warm call latency on every path, interleaved; a path that cannot start is reported as an
/// error and the others go on.
pub fn call_latencies(binaries: &Binaries, plan: &Plan) -> Vec<Result<CallLatency, String>> {
    let mut results = Vec::new();
    let mut measured = Vec::new();
    for transport in [
        Transport::Floor,
        Transport::Direct,
        Transport::Stdio,
        Transport::Http,
    ] {
        let started = CallPath::start(transport, binaries).and_then(|mut path| {
            for _ in 0..WARMUP_CALLS {
                path.call()?;
            }
            let pids = path.pids()?;
            Ok(Measured {
                path,
                samples: Samples::with_capacity(plan.calls),
                supervisor_cpu_ns: Some(0),
                worker_cpu_ns: Some(0),
                pids,
            })
        });
        match started {
            Ok(path) => measured.push(path),
            Err(error) => results.push(Err(format!("{}: {error}", transport.name()))),
        }
    }
    let rounds = plan.calls.div_ceil(CALL_BLOCK);
    let mut failed = Vec::new();
    for _ in 0..rounds {
        for (index, path) in measured.iter_mut().enumerate() {
            if failed.contains(&index) {
                continue;
            }
            let meter = CpuMeter::start(path.pids.0, path.pids.1);
            let block = CALL_BLOCK.min(plan.calls - path.samples.count());
            let outcome = (0..block).try_for_each(|_| {
                let started = Instant::now();
                path.path.call()?;
                path.samples.push(started.elapsed());
                Ok::<(), io::Error>(())
            });
            let (supervisor, worker) = meter.spent_ns();
            path.supervisor_cpu_ns = path.supervisor_cpu_ns.zip(supervisor).map(|(a, b)| a + b);
            path.worker_cpu_ns = path.worker_cpu_ns.zip(worker).map(|(a, b)| a + b);
            if let Err(error) = outcome {
                results.push(Err(format!("{}: {error}", path.path.transport().name())));
                failed.push(index);
            }
        }
    }
    for (index, path) in measured.into_iter().enumerate() {
        let transport = path.path.transport();
        let stopped = path.path.stop();
        if failed.contains(&index) {
            continue;
        }
        if let Err(error) = stopped {
            results.push(Err(format!("{}: stopping: {error}", transport.name())));
        }
        let calls = path.samples.count().max(1) as f64;
        let per_call = |ns: Option<u64>| ns.map(|ns| ns as f64 / 1000.0 / calls);
        let supervisor_cpu = if path.pids.0.is_some() {
            per_call(path.supervisor_cpu_ns)
        } else {
            None
        };
        match path.samples.summary() {
            Some(summary) => results.push(Ok(CallLatency {
                transport,
                summary,
                supervisor_cpu,
                worker_cpu: per_call(path.worker_cpu_ns),
            })),
            None => results.push(Err(format!("{}: no calls measured", transport.name()))),
        }
    }
    results
}

/// One transport's supervisor, cold or pooled, for session starts; or the reference: two
/// calls in a session that is already open, after the same pause.
enum StartPath {
    Reference(StdioSupervisor, String),
    Stdio(StdioSupervisor),
    Http {
        server: HttpSupervisor,
        client: HttpClient,
    },
}

struct Starting {
    path: StartPath,
    transport: Transport,
    pooled: bool,
    reference: bool,
    total: Samples,
    open: Samples,
    first_call: Samples,
}

impl Starting {
    fn start(
        binaries: &Binaries,
        plan: &Plan,
        transport: Transport,
        pooled: bool,
        reference: bool,
    ) -> io::Result<Self> {
        let pool = if pooled { plan.pool_size } else { 0 };
        let log = format!(
            "session-start-{}-{}",
            if transport == Transport::Http {
                "http"
            } else {
                "stdio"
            },
            if pooled { "pool" } else { "cold" }
        );
        let path = if reference {
            let mut supervisor =
                StdioSupervisor::start(binaries, &common_args(100, 0), "session-start-reference")?;
            let (handle, _) = opened_session(&supervisor.client.tool("session_open", json!({}))?)?;
            StartPath::Reference(supervisor, handle)
        } else if transport == Transport::Http {
            let server = HttpSupervisor::start(binaries, &common_args(100, pool), &log)?;
            let client = server.connect()?;
            StartPath::Http { server, client }
        } else {
            StartPath::Stdio(StdioSupervisor::start(
                binaries,
                &common_args(100, pool),
                &log,
            )?)
        };
        Ok(Self {
            path,
            transport,
            pooled,
            reference,
            total: Samples::default(),
            open: Samples::default(),
            first_call: Samples::default(),
        })
    }

    /// `session_open`, `echo` in the new session (timed), then `session_close` (not timed).
    fn start_session(&mut self, record: bool) -> io::Result<()> {
        let started = Instant::now();
        let (opened_at, handle) = match &mut self.path {
            StartPath::Reference(supervisor, handle) => {
                let echo = json!({"text": "hello", "session": handle});
                supervisor.client.tool("echo", echo.clone())?;
                let opened_at = Instant::now();
                supervisor.client.tool("echo", echo)?;
                (opened_at, String::new())
            }
            StartPath::Stdio(supervisor) => {
                let opened = supervisor.client.tool("session_open", json!({}))?;
                let opened_at = Instant::now();
                let (handle, _) = opened_session(&opened)?;
                supervisor
                    .client
                    .tool("echo", json!({"text": "hello", "session": handle}))?;
                (opened_at, handle)
            }
            StartPath::Http { client, .. } => {
                let opened = client.tool("session_open", json!({}), None)?;
                let opened_at = Instant::now();
                let (handle, _) = opened_session(&opened)?;
                client.tool("echo", json!({"text": "hello"}), Some(&handle))?;
                (opened_at, handle)
            }
        };
        let answered = Instant::now();
        if record {
            self.total.push(answered - started);
            self.open.push(opened_at - started);
            self.first_call.push(answered - opened_at);
        }
        match &mut self.path {
            StartPath::Reference(..) => Ok(()),
            StartPath::Stdio(supervisor) => supervisor
                .client
                .tool("session_close", json!({"session": handle}))
                .map(drop),
            StartPath::Http { client, .. } => client
                .tool("session_close", json!({}), Some(&handle))
                .map(drop),
        }
    }

    fn stop(self) -> io::Result<()> {
        match self.path {
            StartPath::Reference(supervisor, _) | StartPath::Stdio(supervisor) => supervisor.stop(),
            StartPath::Http { mut server, client } => {
                drop(client);
                server.stop()
            }
        }
    }
}

/// New session → first tool result on stdio and HTTP, cold and from the pool, interleaved:
/// each round starts a block of sessions on every supervisor in turn, with a pause before each. The
/// reference makes two calls in a session that is already open, after the same pause: what any
/// two calls cost on this machine after the same idle time, new session or not.
pub fn session_starts(binaries: &Binaries, plan: &Plan) -> Vec<Result<SessionStart, String>> {
    let mut results = Vec::new();
    let mut paths = Vec::new();
    for (transport, pooled, reference) in [
        (Transport::Stdio, false, false),
        (Transport::Stdio, true, false),
        (Transport::Http, false, false),
        (Transport::Http, true, false),
        (Transport::Stdio, false, true),
    ] {
        match Starting::start(binaries, plan, transport, pooled, reference) {
            Ok(path) => paths.push(path),
            Err(error) => results.push(Err(format!(
                "session start {} {}: {error}",
                transport.name(),
                if pooled { "pool" } else { "cold" }
            ))),
        }
    }
    std::thread::sleep(SETTLE);
    let mut failed = vec![false; paths.len()];
    let total = WARMUP_SESSIONS + plan.session_starts;
    for round in 0..total.div_ceil(START_BLOCK) {
        for (index, path) in paths.iter_mut().enumerate() {
            for start in round * START_BLOCK..((round + 1) * START_BLOCK).min(total) {
                if failed[index] {
                    break;
                }
                std::thread::sleep(plan.session_gap);
                if let Err(error) = path.start_session(start >= WARMUP_SESSIONS) {
                    results.push(Err(format!(
                        "session start {} {}: {error}",
                        path.transport.name(),
                        if path.pooled { "pool" } else { "cold" }
                    )));
                    failed[index] = true;
                }
            }
        }
    }
    for (index, path) in paths.into_iter().enumerate() {
        let (transport, pooled, reference) = (path.transport, path.pooled, path.reference);
        let summaries = (
            path.total.summary(),
            path.open.summary(),
            path.first_call.summary(),
        );
        let stopped = path.stop();
        if failed[index] {
            continue;
        }
        if let Err(error) = stopped {
            results.push(Err(format!(
                "session start {}: stopping: {error}",
                transport.name()
            )));
        }
        match summaries {
            (Some(summary), Some(open), Some(first_call)) => results.push(Ok(SessionStart {
                transport,
                pooled,
                reference,
                summary,
                open,
                first_call,
            })),
            _ => results.push(Err(format!(
                "session start {}: nothing measured",
                transport.name()
            ))),
        }
    }
    results
}
