//! Crash under load: many sessions busy with calls from several clients each while a chaos
//! thread SIGKILLs one worker after another, then a look at what the supervisor kept.
//!
//! A killed session's calls may fail only as the crash semantics say (`-32042` for a call in
//! flight when the worker died, `-32041` for the lost handle after); a session that was never
//! killed must answer every call. The chaos thread marks a session killed *before* it sends
//! the signal, so no error is blamed on an untouched session by a race. Afterwards: the
//! survivors are closed, and the supervisor's descriptors, memory and children are compared
//! with its state before any session was opened. The default session's replacement after a
//! crash is checked over stdio, where a connection has one.

use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bulkhead_protocol::codes;
use serde_json::{Value, json};

use super::probe::{self, Sample};
use crate::launch::{Binaries, HttpSupervisor, StdioSupervisor};
use crate::rpc::opened_session;
use crate::scenarios::common_args;

/// Time for a fresh supervisor to start up before the baseline sample.
const SETTLE: Duration = Duration::from_millis(500);
/// How long the supervisor gets to stop and reap every worker before the final sample.
const REAP_WAIT: Duration = Duration::from_secs(10);
/// Unexpected failures whose message is kept for the report.
const KEPT_FAILURES: usize = 5;
/// How long a client waits for one reply before it counts the call as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How much chaos.
#[derive(Debug, Clone, Copy)]
pub struct CrashPlan {
    pub sessions: usize,
    pub clients_per_session: usize,
    pub duration: Duration,
    /// Workers killed over the run.
    pub kills: usize,
}

/// The figures of the crash run.
#[derive(Debug, Clone, Default)]
pub struct Crash {
    pub sessions: usize,
    pub clients_per_session: usize,
    pub seconds: f64,
    pub killed: usize,
    /// Time between two kills.
    pub kill_interval_ms: f64,
    pub answered: usize,
    /// Calls on killed sessions that failed as the crash semantics say (`-32042`, `-32041`).
    pub lost_on_killed: usize,
    /// Calls on killed sessions that failed any other way.
    pub other_on_killed: usize,
    /// Calls on sessions never killed that failed: must be 0.
    pub failed_on_untouched: usize,
    pub failures: Vec<String>,
    /// Untouched sessions that closed cleanly afterwards, of how many.
    pub closed_cleanly: (usize, usize),
    /// A session opened after the chaos served a call.
    pub fresh_session_works: bool,
    pub before: Sample,
    pub during_max: Sample,
    pub after: Sample,
    /// Over stdio: the default session's worker killed, the next call answered by a new worker
    /// with the "state was lost" notice.
    pub default_replaced: Option<Result<String, String>>,
}

/// One session under load.
struct Target {
    handle: String,
    pid: u32,
    killed: AtomicBool,
}

/// Counters every client adds to.
#[derive(Default)]
struct Counts {
    answered: AtomicUsize,
    lost_on_killed: AtomicUsize,
    other_on_killed: AtomicUsize,
    failed_on_untouched: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

impl Counts {
    fn keep(&self, failure: String) {
        if let Ok(mut failures) = self.failures.lock()
            && failures.len() < KEPT_FAILURES
        {
            failures.push(failure);
        }
    }
}

pub fn measure(binaries: &Binaries, plan: CrashPlan) -> io::Result<Crash> {
    let mut crash = under_load(binaries, plan)?;
    crash.default_replaced =
        Some(default_session_replaced(binaries).map_err(|error| error.to_string()));
    Ok(crash)
}

fn under_load(binaries: &Binaries, plan: CrashPlan) -> io::Result<Crash> {
    let args = common_args(plan.sessions * 2 + 10, 0);
    let mut server = HttpSupervisor::start(binaries, &args, "chaos-crash")?;
    std::thread::sleep(SETTLE);
    let pid = server.pid();
    let before = Sample::of(pid);
    let mut opener = server.connect()?;
    let mut targets = Vec::with_capacity(plan.sessions);
    for _ in 0..plan.sessions {
        let (handle, pid) = opened_session(&opener.tool("session_open", json!({}), None)?)?;
        targets.push(Target {
            handle,
            pid,
            killed: AtomicBool::new(false),
        });
    }
    let counts = Counts::default();
    let stop = AtomicBool::new(false);
    let kills = plan.kills.min(plan.sessions);
    // Kills spread over the middle 80% of the run, so load runs before the first and after
    // the last.
    let interval = plan.duration.mul_f64(0.8) / u32::try_from(kills.max(1)).unwrap_or(1);
    let started = Instant::now();
    let during_max = std::thread::scope(|scope| {
        for target in &targets {
            for _ in 0..plan.clients_per_session {
                scope.spawn(|| load(&server, target, &counts, &stop));
            }
        }
        let chaos = scope.spawn(|| chaos(&targets, kills, plan.duration / 10, interval));
        let mut during_max = before;
        while started.elapsed() < plan.duration {
            std::thread::sleep(plan.duration / 20);
            during_max = during_max.max(Sample::of(pid));
        }
        stop.store(true, Ordering::Relaxed);
        let _ = chaos.join();
        during_max
    });
    let seconds = started.elapsed().as_secs_f64();
    // A new connection: the opener's has sat idle through the run, longer than the server
    // keeps an idle keep-alive connection (its header timeout).
    drop(opener);
    let mut closer = server.connect()?;
    let untouched: Vec<&Target> = targets
        .iter()
        .filter(|target| !target.killed.load(Ordering::Relaxed))
        .collect();
    let closed = untouched
        .iter()
        .filter(|target| {
            closer
                .tool("session_close", json!({}), Some(&target.handle))
                .is_ok()
        })
        .count();
    let fresh_session_works = closer
        .tool("session_open", json!({}), None)
        .and_then(|opened| opened_session(&opened))
        .and_then(|(handle, _)| {
            closer.tool("echo", json!({"text": "after"}), Some(&handle))?;
            closer.tool("session_close", json!({}), Some(&handle))
        })
        .is_ok();
    drop(closer);
    let after = probe::settled(pid, &before, REAP_WAIT);
    server.stop()?;
    Ok(Crash {
        sessions: plan.sessions,
        clients_per_session: plan.clients_per_session,
        seconds,
        killed: targets.len() - untouched.len(),
        kill_interval_ms: interval.as_secs_f64() * 1000.0,
        answered: counts.answered.into_inner(),
        lost_on_killed: counts.lost_on_killed.into_inner(),
        other_on_killed: counts.other_on_killed.into_inner(),
        failed_on_untouched: counts.failed_on_untouched.into_inner(),
        failures: counts.failures.into_inner().unwrap_or_default(),
        closed_cleanly: (closed, untouched.len()),
        fresh_session_works,
        before,
        during_max,
        after,
        default_replaced: None,
    })
}

/// One client: `echo` in `target` back to back until told to stop or the session is lost.
fn load(server: &HttpSupervisor, target: &Target, counts: &Counts, stop: &AtomicBool) {
    let mut client = match server.connect() {
        Ok(client) => client,
        Err(error) => {
            counts.failed_on_untouched.fetch_add(1, Ordering::Relaxed);
            counts.keep(format!("connect: {error}"));
            return;
        }
    };
    let _ = client.set_timeout(CALL_TIMEOUT);
    while !stop.load(Ordering::Relaxed) {
        let reply = client.tool_reply("echo", json!({"text": "load"}), Some(&target.handle));
        // Read after the reply: a kill marked before the call's error was caused counts.
        let killed = target.killed.load(Ordering::Relaxed);
        let code = match &reply {
            Ok(reply) if reply.get("error").is_none() && reply["result"]["isError"] != true => {
                counts.answered.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Ok(reply) => reply["error"]["code"].as_i64(),
            Err(_) => None,
        };
        let lost = matches!(code, Some(codes::WORKER_DIED | codes::SESSION_LOST));
        if killed && lost {
            counts.lost_on_killed.fetch_add(1, Ordering::Relaxed);
        } else {
            let counter = if killed {
                &counts.other_on_killed
            } else {
                &counts.failed_on_untouched
            };
            counter.fetch_add(1, Ordering::Relaxed);
            counts.keep(format!(
                "{} session {}: {}",
                if killed { "killed" } else { "untouched" },
                target.handle,
                describe(&reply)
            ));
        }
        if code == Some(codes::SESSION_LOST) || reply.is_err() {
            return;
        }
    }
}

fn describe(reply: &io::Result<Value>) -> String {
    match reply {
        Ok(reply) if reply.get("error").is_some() => reply["error"].to_string(),
        Ok(reply) => reply["result"]["content"].to_string(),
        Err(error) => error.to_string(),
    }
}

/// Kill `kills` workers picked at random, the first after `first`, then one per `interval`.
fn chaos(targets: &[Target], kills: usize, first: Duration, interval: Duration) {
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    std::thread::sleep(first);
    for _ in 0..kills {
        let alive: Vec<&Target> = targets
            .iter()
            .filter(|target| !target.killed.load(Ordering::Relaxed))
            .collect();
        if alive.is_empty() {
            return;
        }
        // xorshift64: a fixed pseudo-random sequence, the same on every run.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let victim = alive[usize::try_from(state % alive.len() as u64).unwrap_or(0)];
        victim.killed.store(true, Ordering::Relaxed);
        kill(victim.pid);
        std::thread::sleep(interval);
    }
}

fn kill(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill with a worker pid the supervisor reported and a valid signal; the
        // worker is the supervisor's child, unreaped while its session is open.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Over stdio: a call without `session` starts the default session; its worker is killed; the
/// next call must be answered by a new worker, with a notice that the state was lost.
fn default_session_replaced(binaries: &Binaries) -> io::Result<String> {
    let mut supervisor =
        StdioSupervisor::start(binaries, &common_args(4, 0), "chaos-crash-default-session")?;
    let client = &mut supervisor.client;
    let default_pid = |client: &mut crate::rpc::LineClient<_, _>| -> io::Result<u64> {
        let info = client.tool("session_info", json!({}))?;
        info["structuredContent"]["pid"]
            .as_u64()
            .ok_or_else(|| io::Error::other(format!("no pid in session_info: {info}")))
    };
    client.tool("echo", json!({"text": "before"}))?;
    let old = default_pid(client)?;
    kill(u32::try_from(old).map_err(io::Error::other)?);
    let reply = wait_for_replacement(client)?;
    let notice = reply["_meta"]["io.bulkhead/notice"].clone();
    let new = default_pid(client)?;
    supervisor.stop()?;
    if new == old || notice.is_null() {
        return Err(io::Error::other(format!(
            "the default session was not replaced with a notice: pid {old} → {new}, reply {reply}"
        )));
    }
    Ok(format!("pid {old} → {new}, notice: {notice}"))
}

/// Echo without `session` until a call is answered (the kill is asynchronous: a call that
/// reaches the dying worker gets `-32042`, which is also what a client would see).
fn wait_for_replacement<R: io::Read, W: io::Write>(
    client: &mut crate::rpc::LineClient<R, W>,
) -> io::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = client.request(
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "after"}}),
        )?;
        if let Some(result) = reply.get("result") {
            return Ok(result.clone());
        }
        if Instant::now() >= deadline {
            return Err(io::Error::other(format!(
                "no call answered within 5 s of the kill; last reply {reply}"
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
