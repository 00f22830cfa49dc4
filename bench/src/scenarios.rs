//! The measurements, one function each. Every function starts the processes it needs, warms
//! them up, measures, and stops them, so one measurement's leftovers never load the next.
//!
//! Latency figures use the `echo` tool (a few microseconds of work in the worker), so they
//! show the cost of the path — transport, supervisor, socket, worker — rather than of a tool.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::launch::{Binaries, HttpSupervisor};
use crate::rpc::opened_session;
use crate::stats::{Samples, Summary};
use crate::system;

/// Calls made and thrown away before a latency measurement (caches, allocator, branch
/// predictors and lazily initialized code paths warm up).
const WARMUP_CALLS: usize = 500;
/// Time for a fresh supervisor to read its catalog and fill its pool before measuring.
const SETTLE: Duration = Duration::from_millis(500);
/// Idle TTL and maximum age of the supervisors under test: far beyond a bench run.
const LONG_SECS: &str = "86400";

/// How much of each measurement to do.
#[derive(Debug, Clone)]
pub struct Plan {
    pub calls: usize,
    pub session_starts: usize,
    pub pool_size: usize,
    pub concurrency: Vec<usize>,
    pub throughput_time: Duration,
    pub max_sessions: usize,
    pub checkpoints: Vec<usize>,
    pub probe_calls: usize,
    pub openers: usize,
    /// Pause between two measured session starts: the previous session's worker is stopped
    /// and (with a pool) a replacement is spawned in the background; the pause keeps that work
    /// out of the next measurement, as for sessions that arrive at a human pace.
    pub session_gap: Duration,
}

/// Which transport a measurement went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// No Bulkhead at all: a 200-byte line to `cat` and back over two pipes, the machine's
    /// cost of one round trip between two processes.
    Floor,
    Direct,
    Stdio,
    Http,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Floor => "floor: 200 B round trip to `cat`",
            Transport::Direct => "direct to a worker",
            Transport::Stdio => "stdio",
            Transport::Http => "HTTP",
        }
    }
}

/// Session start latency of one transport, cold or from the pool: the whole start, and its
/// two parts (`session_open`'s reply; the first `echo` in the new session).
#[derive(Debug, Clone)]
pub struct SessionStart {
    pub transport: Transport,
    pub pooled: bool,
    /// Not a session start: two `echo` calls in an open session after the same pause.
    pub reference: bool,
    pub summary: Summary,
    pub open: Summary,
    pub first_call: Summary,
}

/// Warm tool-call latency on one path, and the CPU time each process spent per call.
#[derive(Debug, Clone)]
pub struct CallLatency {
    pub transport: Transport,
    pub summary: Summary,
    /// Supervisor CPU per call, in µs (none for the direct path).
    pub supervisor_cpu: Option<f64>,
    /// Worker CPU per call, in µs.
    pub worker_cpu: Option<f64>,
}

/// CPU time of the processes on a call path, read before and after the measured calls.
pub(crate) struct CpuMeter {
    supervisor: Option<u32>,
    worker: u32,
    before: (Option<u64>, Option<u64>),
}

impl CpuMeter {
    pub(crate) fn start(supervisor: Option<u32>, worker: u32) -> Self {
        Self {
            supervisor,
            worker,
            before: (
                supervisor.and_then(system::cpu_time_ns),
                system::cpu_time_ns(worker),
            ),
        }
    }

    /// CPU (supervisor, worker) spent since `start`, in nanoseconds.
    pub(crate) fn spent_ns(&self) -> (Option<u64>, Option<u64>) {
        let spent = |before: Option<u64>, pid: Option<u32>| {
            pid.and_then(system::cpu_time_ns)?.checked_sub(before?)
        };
        (
            spent(self.before.0, self.supervisor),
            spent(self.before.1, Some(self.worker)),
        )
    }
}

/// HTTP throughput at one concurrency.
#[derive(Debug, Clone)]
pub struct Throughput {
    pub sessions: usize,
    pub calls_per_second: f64,
    pub summary: Summary,
}

/// What the supervisor looked like with `sessions` open.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub sessions: usize,
    /// Echo latency over randomly chosen open sessions, most of them idle since they opened.
    pub call: Summary,
    /// The same right after (the sessions just used), to tell a first call after a long
    /// idle time from a steady one.
    pub call_again: Summary,
    /// Session start → first tool result while opening this step's sessions.
    pub open: Option<Summary>,
    pub open_seconds: f64,
    pub workers_pss_kib: Option<u64>,
    pub supervisor_pss_kib: Option<u64>,
    pub supervisor_fds: Option<usize>,
    pub supervisor_threads: Option<u64>,
    pub mem_available_kib: Option<u64>,
}

/// The scale run: sessions opened step by step up to the target.
#[derive(Debug, Clone)]
pub struct Scale {
    pub target: usize,
    pub reached: usize,
    pub checkpoints: Vec<Checkpoint>,
    /// Why opening stopped short of the target, if it did.
    pub stopped_by: Option<String>,
    /// The supervisor's PSS with no session open.
    pub idle_supervisor_pss_kib: Option<u64>,
}

pub(crate) fn common_args(max_sessions: usize, pool_size: usize) -> Vec<String> {
    let max = max_sessions.to_string();
    [
        "--max-sessions",
        &max,
        "--max-sessions-per-principal",
        &max,
        "--idle-ttl",
        LONG_SECS,
        "--max-age",
        LONG_SECS,
        "--pool-size",
        &pool_size.to_string(),
    ]
    .map(String::from)
    .to_vec()
}

/// Calls per second over HTTP with `n` sessions busy at once, each on its own keep-alive
/// connection and thread, calling `echo` back to back.
pub fn throughput_http(binaries: &Binaries, plan: &Plan) -> io::Result<Vec<Throughput>> {
    let most = plan.concurrency.iter().copied().max().unwrap_or(1);
    let mut server = HttpSupervisor::start(binaries, &common_args(most * 2 + 10, 0), "throughput")?;
    let mut rows = Vec::new();
    for &sessions in &plan.concurrency {
        rows.push(throughput_at(&server, sessions, plan.throughput_time)?);
    }
    server.stop()?;
    Ok(rows)
}

fn throughput_at(
    server: &HttpSupervisor,
    sessions: usize,
    time: Duration,
) -> io::Result<Throughput> {
    let barrier = Barrier::new(sessions);
    let results: Vec<io::Result<(usize, Samples)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..sessions)
            .map(|_| {
                scope.spawn(|| {
                    let prepared = server.connect().and_then(|mut client| {
                        let opened = client.tool("session_open", json!({}), None)?;
                        let (handle, _) = opened_session(&opened)?;
                        for _ in 0..WARMUP_CALLS / 10 {
                            client.tool("echo", json!({"text": "hello"}), Some(&handle))?;
                        }
                        Ok((client, handle))
                    });
                    barrier.wait();
                    let (mut client, handle) = prepared?;
                    let mut samples = Samples::with_capacity(10_000);
                    let deadline = Instant::now() + time;
                    let mut calls = 0;
                    while Instant::now() < deadline {
                        let started = Instant::now();
                        client.tool("echo", json!({"text": "hello"}), Some(&handle))?;
                        samples.push(started.elapsed());
                        calls += 1;
                    }
                    client.tool("session_close", json!({}), Some(&handle))?;
                    Ok((calls, samples))
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("a client thread panicked")))
            })
            .collect()
    });
    let mut total = 0;
    let mut all = Samples::default();
    for result in results {
        let (calls, samples) = result?;
        total += calls;
        all.extend(samples);
    }
    let summary = all
        .summary()
        .ok_or_else(|| io::Error::other("no calls in the throughput run"))?;
    Ok(Throughput {
        sessions,
        calls_per_second: total as f64 / time.as_secs_f64(),
        summary,
    })
}

/// Open sessions over HTTP step by step up to the target, measuring at each checkpoint; stop
/// early, and say why, when the supervisor refuses a session.
pub fn scale_http(binaries: &Binaries, plan: &Plan) -> io::Result<Scale> {
    let mut server = HttpSupervisor::start(binaries, &common_args(plan.max_sessions, 0), "scale")?;
    std::thread::sleep(SETTLE);
    let supervisor_pid = server.pid();
    let idle_supervisor_pss_kib = system::pss_kib(supervisor_pid);
    let mut sessions: Vec<(String, u32)> = Vec::new();
    let mut checkpoints = Vec::new();
    let mut stopped_by = None;
    for &target in &plan.checkpoints {
        let started = Instant::now();
        let opened = open_sessions(&server, target - sessions.len(), plan.openers);
        let open_seconds = started.elapsed().as_secs_f64();
        sessions.extend(opened.sessions);
        eprintln!(
            "bulkhead-bench:   {} sessions open ({open_seconds:.1} s for this step)",
            sessions.len()
        );
        if let Some(failure) = opened.failure {
            stopped_by = Some(format!(
                "session {} could not be opened: {failure}",
                sessions.len() + 1
            ));
        }
        if sessions.is_empty() {
            break;
        }
        let call = probe(&server, &sessions, plan.probe_calls)?;
        let call_again = probe(&server, &sessions, plan.probe_calls)?;
        checkpoints.push(Checkpoint {
            sessions: sessions.len(),
            call,
            call_again,
            open: opened.latency.summary(),
            open_seconds,
            workers_pss_kib: sessions.iter().map(|(_, pid)| system::pss_kib(*pid)).sum(),
            supervisor_pss_kib: system::pss_kib(supervisor_pid),
            supervisor_fds: system::open_fds(supervisor_pid),
            supervisor_threads: system::threads(supervisor_pid),
            mem_available_kib: system::meminfo_kib("MemAvailable"),
        });
        if stopped_by.is_some() {
            break;
        }
    }
    eprintln!("bulkhead-bench:   stopping {} sessions", sessions.len());
    server.stop()?;
    Ok(Scale {
        target: plan.max_sessions,
        reached: sessions.len(),
        checkpoints,
        stopped_by,
        idle_supervisor_pss_kib,
    })
}

struct Opened {
    sessions: Vec<(String, u32)>,
    latency: Samples,
    failure: Option<String>,
}

/// Open `count` sessions from `openers` connections at once; each gets one `echo` call, so
/// it has served a call before it sits idle.
fn open_sessions(server: &HttpSupervisor, count: usize, openers: usize) -> Opened {
    let remaining = AtomicUsize::new(count);
    let failure = Mutex::new(None);
    let per_thread: Vec<(Vec<(String, u32)>, Samples)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..openers.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    let mut latency = Samples::default();
                    let mut client = match server.connect() {
                        Ok(client) => client,
                        Err(error) => {
                            record_failure(&failure, format!("connect: {error}"));
                            return (mine, latency);
                        }
                    };
                    while remaining
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                            left.checked_sub(1)
                        })
                        .is_ok()
                    {
                        if failure
                            .lock()
                            .map(|failure| failure.is_some())
                            .unwrap_or(true)
                        {
                            break;
                        }
                        let started = Instant::now();
                        let opened = client
                            .tool("session_open", json!({}), None)
                            .and_then(|result| opened_session(&result))
                            .and_then(|(handle, pid)| {
                                client.tool("echo", json!({"text": "hello"}), Some(&handle))?;
                                Ok((handle, pid))
                            });
                        match opened {
                            Ok(session) => {
                                latency.push(started.elapsed());
                                mine.push(session);
                            }
                            Err(error) => {
                                record_failure(&failure, error.to_string());
                                break;
                            }
                        }
                    }
                    (mine, latency)
                })
            })
            .collect();
        threads
            .into_iter()
            .filter_map(|thread| thread.join().ok())
            .collect()
    });
    let mut opened = Opened {
        sessions: Vec::new(),
        latency: Samples::default(),
        failure: failure.into_inner().unwrap_or(None),
    };
    for (sessions, latency) in per_thread {
        opened.sessions.extend(sessions);
        opened.latency.extend(latency);
    }
    opened
}

fn record_failure(failure: &Mutex<Option<String>>, message: String) {
    if let Ok(mut failure) = failure.lock() {
        failure.get_or_insert(message);
    }
}

/// `calls` sequential `echo` calls, each to a session picked at random from `sessions`.
fn probe(server: &HttpSupervisor, sessions: &[(String, u32)], calls: usize) -> io::Result<Summary> {
    let mut client = server.connect()?;
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut samples = Samples::with_capacity(calls);
    let warmup = (calls / 10).min(WARMUP_CALLS);
    for round in 0..warmup + calls {
        // xorshift64: a cheap, fixed pseudo-random sequence, the same on every run.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let index = usize::try_from(state % sessions.len() as u64).unwrap_or(0);
        let handle = &sessions[index].0;
        let started = Instant::now();
        client.tool("echo", json!({"text": "hello"}), Some(handle))?;
        if round >= warmup {
            samples.push(started.elapsed());
        }
    }
    samples
        .summary()
        .ok_or_else(|| io::Error::other("no probe calls"))
}
