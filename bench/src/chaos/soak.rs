//! The soak: many short sessions, one after another, against one supervisor — open, one
//! `echo`, close — watching the supervisor for anything a session leaves behind (descriptors,
//! memory, threads, children, zombies).
//!
//! Over stdio every cycle goes through the one pipe; over HTTP every cycle also opens and drops
//! its own TCP connection, so a connection's leftovers would show as well.

use std::io;
use std::time::{Duration, Instant};

use serde_json::json;

use super::probe::{self, Sample};
use crate::launch::{Binaries, HttpSupervisor, StdioSupervisor};
use crate::rpc::opened_session;
use crate::scenarios::common_args;

/// Time for a fresh supervisor to start up before the first sample.
const SETTLE: Duration = Duration::from_millis(500);
/// Samples taken over a soak (the maximum is over these).
pub(super) const SAMPLES: usize = 50;
/// How long the supervisor gets to reap the last session's worker (and close the last
/// connection) before the final sample.
const REAP_WAIT: Duration = Duration::from_secs(5);
/// Failures whose message is kept for the report.
const KEPT_FAILURES: usize = 3;
/// Session limit of the soak's supervisor: one session at a time is open, so any small number.
const SOAK_MAX_SESSIONS: usize = 16;

/// The figures of one soak.
#[derive(Debug, Clone)]
pub struct Soak {
    pub transport: &'static str,
    pub cycles: usize,
    pub completed: usize,
    /// Cycles where open, call or close failed.
    pub failed: usize,
    pub failures: Vec<String>,
    pub seconds: f64,
    /// Right after start, before any session.
    pub before: Sample,
    /// After the first tenth of the cycles (allocator arenas and caches filled).
    pub warm: Sample,
    /// After half the cycles.
    pub half: Sample,
    /// After the last cycle, once its worker is reaped.
    pub after: Sample,
    pub max: Sample,
}

impl Soak {
    pub fn cycles_per_second(&self) -> f64 {
        self.completed as f64 / self.seconds
    }
}

/// Progress of one soak: counts, failures and samples.
struct Tally {
    transport: &'static str,
    cycles: usize,
    pid: u32,
    completed: usize,
    failures: Vec<String>,
    failed: usize,
    before: Sample,
    warm: Sample,
    half: Sample,
    max: Sample,
}

impl Tally {
    fn new(transport: &'static str, cycles: usize, pid: u32) -> Self {
        let before = Sample::of(pid);
        Self {
            transport,
            cycles,
            pid,
            completed: 0,
            failures: Vec::new(),
            failed: 0,
            before,
            warm: before,
            half: before,
            max: before,
        }
    }

    fn record(&mut self, cycle: usize, outcome: io::Result<()>) {
        match outcome {
            Ok(()) => self.completed += 1,
            Err(error) => {
                self.failed += 1;
                if self.failures.len() < KEPT_FAILURES {
                    self.failures.push(format!("cycle {cycle}: {error}"));
                }
            }
        }
        let done = cycle + 1;
        let tenth = (self.cycles / 10).max(1);
        let half = (self.cycles / 2).max(1);
        if done.is_multiple_of((self.cycles / SAMPLES).max(1)) || done == tenth || done == half {
            let sample = Sample::of(self.pid);
            self.max = self.max.max(sample);
            if done == tenth {
                self.warm = sample;
            }
            if done == half {
                self.half = sample;
            }
        }
    }

    fn finish(self, started: Instant) -> Soak {
        let seconds = started.elapsed().as_secs_f64();
        let after = probe::settled(self.pid, &self.before, REAP_WAIT);
        Soak {
            transport: self.transport,
            cycles: self.cycles,
            completed: self.completed,
            failed: self.failed,
            failures: self.failures,
            seconds,
            before: self.before,
            warm: self.warm,
            half: self.half,
            max: self.max.max(after),
            after,
        }
    }
}

/// `cycles` sessions over `bulkhead stdio`, one at a time.
pub fn stdio(binaries: &Binaries, cycles: usize) -> io::Result<Soak> {
    let mut supervisor = StdioSupervisor::start(
        binaries,
        &common_args(SOAK_MAX_SESSIONS, 0),
        "chaos-soak-stdio",
    )?;
    std::thread::sleep(SETTLE);
    let mut tally = Tally::new("stdio", cycles, supervisor.pid());
    let started = Instant::now();
    for cycle in 0..cycles {
        let client = &mut supervisor.client;
        let outcome = client
            .tool("session_open", json!({}))
            .and_then(|opened| opened_session(&opened))
            .and_then(|(handle, _)| {
                client.tool("echo", json!({"text": "soak", "session": handle}))?;
                client.tool("session_close", json!({"session": handle}))
            })
            .map(drop);
        let broken = matches!(&outcome, Err(error) if error.kind() == io::ErrorKind::UnexpectedEof);
        tally.record(cycle, outcome);
        if broken {
            break;
        }
    }
    let soak = tally.finish(started);
    supervisor.stop()?;
    Ok(soak)
}

/// `cycles` sessions over `bulkhead serve`, one at a time, each on a new TCP connection.
pub fn http(binaries: &Binaries, cycles: usize) -> io::Result<Soak> {
    let mut server = HttpSupervisor::start(
        binaries,
        &common_args(SOAK_MAX_SESSIONS, 0),
        "chaos-soak-http",
    )?;
    std::thread::sleep(SETTLE);
    let mut tally = Tally::new("HTTP, a connection per cycle", cycles, server.pid());
    let started = Instant::now();
    for cycle in 0..cycles {
        let outcome = server.connect().and_then(|mut client| {
            let opened = client.tool("session_open", json!({}), None)?;
            let (handle, _) = opened_session(&opened)?;
            client.tool("echo", json!({"text": "soak"}), Some(&handle))?;
            client.tool("session_close", json!({}), Some(&handle))?;
            Ok(())
        });
        tally.record(cycle, outcome);
    }
    let soak = tally.finish(started);
    server.stop()?;
    Ok(soak)
}
