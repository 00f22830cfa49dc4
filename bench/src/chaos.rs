//! The chaos part (`--only chaos`): what the supervisor keeps and loses when sessions churn,
//! workers are killed under load, and one principal ties up HTTP connections — the figures
//! issue 10 asks to re-run.
//!
//! Three measurements, each with its own supervisor: a soak of short sessions ([`soak`]),
//! crashes under load ([`crash`]), and slowloris attacks by one principal while another calls
//! ([`slowloris`]). Each reads the supervisor from `/proc` ([`probe`]). A broken invariant —
//! a call failed on a session nobody killed, a soak cycle failed, a child, zombie or descriptor
//! left after the supervisor had time to reap and close — is returned as a failure, so the run exits non-zero;
//! figures that only measure (memory growth, B's latency under attack) are
//! reported ([`report`]) for a reader to judge.

mod crash;
mod probe;
mod report;
mod slowloris;
mod soak;

use std::time::Duration;

pub use report::render;

use crate::launch::Binaries;
use crash::{Crash, CrashPlan};
use slowloris::{SlowPlan, Slowloris};
use soak::Soak;

/// How much of each chaos measurement to do.
#[derive(Debug, Clone, Copy)]
pub struct ChaosPlan {
    pub stdio_cycles: usize,
    pub http_cycles: usize,
    pub crash: CrashPlan,
    pub slow: SlowPlan,
}

impl ChaosPlan {
    /// The full plan (20,000 stdio cycles as issue 10 asks; a quarter as many over HTTP,
    /// where each cycle costs a connection too), or tiny counts that run in a few seconds.
    pub fn new(smoke: bool, soak_cycles: Option<usize>) -> Self {
        let stdio_cycles = soak_cycles.unwrap_or(if smoke { 20 } else { 20_000 });
        let crash = if smoke {
            CrashPlan {
                sessions: 4,
                clients_per_session: 2,
                duration: Duration::from_millis(500),
                kills: 1,
            }
        } else {
            CrashPlan {
                sessions: 50,
                clients_per_session: 3,
                duration: Duration::from_secs(20),
                kills: 10,
            }
        };
        let slow = SlowPlan {
            phase: if smoke {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(10)
            },
            head_start: if smoke {
                Duration::from_millis(100)
            } else {
                Duration::from_secs(1)
            },
            max_connections: 16,
            per_principal: 8,
            listen_per_principal: 4,
            header_timeout_secs: if smoke { 0.3 } else { 3.0 },
            body_timeout_secs: if smoke { 0.3 } else { 3.0 },
            call_timeout: if smoke {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(10)
            },
        };
        Self {
            stdio_cycles,
            http_cycles: (stdio_cycles / 4).max(1),
            crash,
            slow,
        }
    }
}

/// Everything the chaos part measured.
#[derive(Debug, Clone, Default)]
pub struct ChaosFigures {
    pub soaks: Vec<Soak>,
    pub crash: Option<Crash>,
    pub slowloris: Option<Slowloris>,
}

/// Run the three measurements; a measurement that could not run, and every broken invariant,
/// comes back as a failure beside the figures.
pub fn measure(binaries: &Binaries, plan: &ChaosPlan) -> (ChaosFigures, Vec<String>) {
    let mut figures = ChaosFigures::default();
    let mut failures = Vec::new();
    eprintln!(
        "bulkhead-bench:   soak: {} sessions over stdio, {} over HTTP",
        plan.stdio_cycles, plan.http_cycles
    );
    for soak in [
        soak::stdio(binaries, plan.stdio_cycles),
        soak::http(binaries, plan.http_cycles),
    ] {
        match soak {
            Ok(soak) => figures.soaks.push(soak),
            Err(error) => failures.push(format!("chaos soak: {error}")),
        }
    }
    eprintln!(
        "bulkhead-bench:   crash under load: {} sessions, {} workers killed",
        plan.crash.sessions, plan.crash.kills
    );
    match crash::measure(binaries, plan.crash) {
        Ok(crash) => figures.crash = Some(crash),
        Err(error) => failures.push(format!("chaos crash: {error}")),
    }
    eprintln!("bulkhead-bench:   slowloris: four attacks by one principal");
    match slowloris::measure(binaries, plan.slow) {
        Ok(slowloris) => figures.slowloris = Some(slowloris),
        Err(error) => failures.push(format!("chaos slowloris: {error}")),
    }
    failures.extend(broken_invariants(&figures));
    (figures, failures)
}

/// The figures that must hold on any machine, however loaded.
fn broken_invariants(figures: &ChaosFigures) -> Vec<String> {
    let mut broken = Vec::new();
    for soak in &figures.soaks {
        if soak.failed > 0 || soak.completed < soak.cycles {
            broken.push(format!(
                "chaos soak ({}): {} of {} cycles failed: {:?}",
                soak.transport,
                soak.cycles - soak.completed,
                soak.cycles,
                soak.failures
            ));
        }
        broken.extend(
            leftovers(&soak.before, &soak.after)
                .map(|what| format!("chaos soak ({}): {what}", soak.transport)),
        );
    }
    if let Some(crash) = &figures.crash {
        if crash.failed_on_untouched > 0 || crash.other_on_killed > 0 {
            broken.push(format!(
                "chaos crash: {} calls failed on sessions never killed, {} on killed sessions with another error than lost: {:?}",
                crash.failed_on_untouched, crash.other_on_killed, crash.failures
            ));
        }
        broken.extend(
            leftovers(&crash.before, &crash.after).map(|what| format!("chaos crash: {what}")),
        );
        if let Some(Err(error)) = &crash.default_replaced {
            broken.push(format!("chaos crash: default session: {error}"));
        }
        if crash.closed_cleanly.0 < crash.closed_cleanly.1 || !crash.fresh_session_works {
            broken.push(format!(
                "chaos crash: {} of {} untouched sessions closed; a new session afterwards {}",
                crash.closed_cleanly.0,
                crash.closed_cleanly.1,
                if crash.fresh_session_works {
                    "works"
                } else {
                    "fails"
                }
            ));
        }
    }
    broken
}

/// What a supervisor still holds after every session ended (and it had time to reap and close
/// them) that it did not hold before the first: children, zombies, descriptors.
fn leftovers(before: &probe::Sample, after: &probe::Sample) -> Option<String> {
    let leaked_fds = after
        .fds
        .zip(before.fds)
        .map_or(0, |(after, before)| after.saturating_sub(before));
    (after.children > 0 || after.zombies > 0 || leaked_fds > 0).then(|| {
        format!(
            "{} children, {} zombies and {leaked_fds} more descriptors than before left after every session ended",
            after.children, after.zombies
        )
    })
}
