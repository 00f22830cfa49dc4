//! The Markdown report: each figure of the brief (§7) beside its target, met or not, then the
//! detailed tables the figures come from.

use std::fmt::Write;

use crate::scenarios::{CallLatency, Scale, SessionStart, Throughput, Transport};
use crate::stats::format_micros;
use crate::system::Machine;

/// A memory target of "1 MB" read strictly: 10^6 bytes.
const MEMORY_TARGET_BYTES: f64 = 1e6;
/// Sessions at which the brief states the memory target.
const MEMORY_TARGET_SESSIONS: usize = 1000;
/// The brief's scale target.
const SCALE_TARGET_SESSIONS: usize = 10_000;

/// Everything one run measured; a part that failed or was skipped is empty and says why.
#[derive(Debug, Default)]
pub struct Results {
    pub starts: Vec<SessionStart>,
    pub calls: Vec<CallLatency>,
    pub throughput: Vec<Throughput>,
    pub scale: Option<Scale>,
    /// Behind real load balancers.
    pub balancer: Option<crate::balancer::BalancerFigures>,
    /// Soak, crash under load, slowloris.
    pub chaos: Option<crate::chaos::ChaosFigures>,
    /// A wrapped server beside supergateway.
    pub wrapped: Option<crate::wrapped::WrappedFigures>,
    pub failures: Vec<String>,
    /// The pause before each measured session start.
    pub session_gap_ms: u128,
}

/// Where and how the run happened.
#[derive(Debug)]
pub struct Context {
    pub machine: Machine,
    pub date: String,
    pub load_before: String,
    pub load_after: String,
    pub log_filter: String,
    pub command: String,
    pub charts: Vec<&'static str>,
}

pub fn render(results: &Results, context: &Context) -> String {
    let mut out = String::new();
    let machine = &context.machine;
    let _ = writeln!(out, "# Bulkhead benchmark results\n");
    let _ = writeln!(
        out,
        "Measured by `{}` on {}. Machine: {}, {} cores, {:.1} GiB memory, Linux {}; open-file limit {} (hard {}), `kernel.pid_max` {}, `kernel.threads-max` {}. Load average (1 min) {} before the run, {} after. Supervisor logs at `{}` (one audit line per call), to a file.\n",
        context.command,
        context.date,
        machine.cpu_model,
        machine.cores,
        machine.memory_gib,
        machine.kernel,
        machine.open_files_soft,
        machine.open_files_hard,
        machine.pid_max,
        machine.threads_max,
        context.load_before,
        context.load_after,
        context.log_filter,
    );
    targets(&mut out, results);
    if let Some(figures) = &results.wrapped {
        wrapped_tables(&mut out, figures);
    }
    details(&mut out, results);
    for chart in &context.charts {
        let _ = writeln!(out, "![{chart}]({chart})\n");
    }
    if !results.failures.is_empty() {
        let _ = writeln!(out, "## Failures\n");
        for failure in &results.failures {
            let _ = writeln!(out, "- {failure}");
        }
    }
    out
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

fn start_of(results: &Results, transport: Transport, pooled: bool) -> Option<&SessionStart> {
    results
        .starts
        .iter()
        .find(|start| start.transport == transport && start.pooled == pooled && !start.reference)
}

fn call_of(results: &Results, transport: Transport) -> Option<&CallLatency> {
    results
        .calls
        .iter()
        .find(|call| call.transport == transport)
}

fn targets(out: &mut String, results: &Results) {
    let _ = writeln!(out, "## Against the targets (BRIEF §7)\n");
    let _ = writeln!(out, "| figure | target | measured | verdict |");
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    let na = "not measured";
    let mut row = |figure: &str, target: &str, measured: String, met: Option<bool>| {
        let verdict = met.map_or("–", verdict);
        let _ = writeln!(out, "| {figure} | {target} | {measured} | {verdict} |");
    };
    for (pooled, target, limit) in [(false, "p50 ≤ 2 ms", 2000.0), (true, "p50 ≤ 0.5 ms", 500.0)]
    {
        let figure = if pooled {
            "new session to first tool result, from a pre-spawned pool (stdio)"
        } else {
            "new session to first tool result (stdio, cold spawn)"
        };
        match start_of(results, Transport::Stdio, pooled) {
            Some(start) => row(
                figure,
                target,
                format!(
                    "p50 {}, p99 {}",
                    format_micros(start.summary.p50),
                    format_micros(start.summary.p99)
                ),
                Some(start.summary.p50 <= limit),
            ),
            None => row(figure, target, na.into(), None),
        }
    }
    match (
        call_of(results, Transport::Direct),
        call_of(results, Transport::Stdio),
    ) {
        (Some(direct), Some(stdio)) => {
            let ratio = stdio.summary.p50 / direct.summary.p50;
            let added = stdio.summary.p50 - direct.summary.p50;
            row(
                "tool call through the supervisor vs direct to a worker (stdio)",
                "≤ 1.5× direct, ≤ 15 µs added at p50",
                format!(
                    "{ratio:.2}×, +{added:.1} µs at p50 ({} vs {} direct); p99 {} vs {}",
                    format_micros(stdio.summary.p50),
                    format_micros(direct.summary.p50),
                    format_micros(stdio.summary.p99),
                    format_micros(direct.summary.p99),
                ),
                Some(ratio <= 1.5 && added <= 15.0),
            );
        }
        _ => row(
            "tool call through the supervisor vs direct to a worker (stdio)",
            "≤ 1.5× direct, ≤ 15 µs added at p50",
            na.into(),
            None,
        ),
    }
    match call_of(results, Transport::Http) {
        Some(http) => row(
            "warm tool call over HTTP on loopback",
            "p50 ≤ 100 µs",
            format!(
                "p50 {}, p99 {}",
                format_micros(http.summary.p50),
                format_micros(http.summary.p99)
            ),
            Some(http.summary.p50 <= 100.0),
        ),
        None => row(
            "warm tool call over HTTP on loopback",
            "p50 ≤ 100 µs",
            na.into(),
            None,
        ),
    }
    let memory = results.scale.as_ref().and_then(|scale| {
        let checkpoint = scale
            .checkpoints
            .iter()
            .find(|c| c.sessions == MEMORY_TARGET_SESSIONS)?;
        let workers = checkpoint.workers_pss_kib? as f64 * 1024.0 / checkpoint.sessions as f64;
        let supervisor = checkpoint
            .supervisor_pss_kib
            .zip(scale.idle_supervisor_pss_kib)
            .map(|(now, idle)| {
                now.saturating_sub(idle) as f64 * 1024.0 / checkpoint.sessions as f64
            });
        Some((workers, supervisor))
    });
    match memory {
        Some((workers, supervisor)) => row(
            "memory per idle session at 1,000 sessions",
            "≤ 1 MB PSS",
            format!(
                "{:.2} MB (worker PSS){}",
                workers / 1e6,
                supervisor.map_or(String::new(), |supervisor| format!(
                    " + {:.3} MB of supervisor growth",
                    supervisor / 1e6
                ))
            ),
            Some(workers + supervisor.unwrap_or(0.0) <= MEMORY_TARGET_BYTES),
        ),
        None => row(
            "memory per idle session at 1,000 sessions",
            "≤ 1 MB PSS",
            na.into(),
            None,
        ),
    }
    match &results.scale {
        Some(scale) if !scale.checkpoints.is_empty() => {
            let first = &scale.checkpoints[0];
            let last = &scale.checkpoints[scale.checkpoints.len() - 1];
            let ratio = last.call.p99 / first.call.p99;
            let stopped = scale
                .stopped_by
                .as_ref()
                .map_or(String::new(), |why| format!("; stopped: {why}"));
            row(
                "sessions on one machine",
                "10,000 open, p99 ≤ 2× the 10-session p99",
                format!(
                    "{} open; p99 {} vs {} at {} ({ratio:.2}×){stopped}",
                    scale.reached,
                    format_micros(last.call.p99),
                    format_micros(first.call.p99),
                    first.sessions
                ),
                Some(scale.reached >= SCALE_TARGET_SESSIONS && ratio <= 2.0),
            );
        }
        _ => row(
            "sessions on one machine",
            "10,000 open, p99 ≤ 2× the 10-session p99",
            na.into(),
            None,
        ),
    }
    let _ = writeln!(out);
}

fn details(out: &mut String, results: &Results) {
    if !results.starts.is_empty() {
        let _ = writeln!(out, "## New session to first tool result\n");
        let _ = writeln!(
            out,
            "`session_open`, then `echo` in the new session, timed from the first byte sent to the last byte of the echo reply; all supervisors run at once and take turns in blocks of 10 (interleaved), each start after a pause of {} ms, each session closed after its measurement. The reference row makes two `echo` calls in a session that is already open, after the same pause: what two calls cost on this machine after that idle time.\n",
            results.session_gap_ms
        );
        let _ = writeln!(
            out,
            "| transport | worker | p50 | p99 | `session_open` p50 / p99 | first `echo` p50 / p99 | samples |"
        );
        let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- | --- |");
        for start in &results.starts {
            let worker = if start.reference {
                "reference: 2 calls, no new session"
            } else if start.pooled {
                "from the pool"
            } else {
                "cold spawn"
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} / {} | {} / {} | {} |",
                start.transport.name(),
                worker,
                format_micros(start.summary.p50),
                format_micros(start.summary.p99),
                format_micros(start.open.p50),
                format_micros(start.open.p99),
                format_micros(start.first_call.p50),
                format_micros(start.first_call.p99),
                start.summary.count
            );
        }
        let _ = writeln!(out);
    }
    if !results.calls.is_empty() {
        let _ = writeln!(out, "## Warm tool call (`echo`)\n");
        let _ = writeln!(
            out,
            "CPU per call: each process's CPU time (all threads, `/proc/<pid>/task/*/schedstat`) over the measured calls, divided by their number.\n"
        );
        let _ = writeln!(
            out,
            "| path | p50 | p99 | samples | supervisor CPU per call | worker CPU per call |"
        );
        let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- |");
        let cpu = |micros: Option<f64>| micros.map_or("–".to_string(), format_micros);
        for call in &results.calls {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                call.transport.name(),
                format_micros(call.summary.p50),
                format_micros(call.summary.p99),
                call.summary.count,
                cpu(call.supervisor_cpu),
                cpu(call.worker_cpu),
            );
        }
        let _ = writeln!(out);
    }
    if !results.throughput.is_empty() {
        let _ = writeln!(out, "## HTTP throughput\n");
        let _ = writeln!(
            out,
            "Each session on its own keep-alive connection and client thread, calling `echo` back to back; the load generator shares the machine's cores with the supervisor and workers.\n"
        );
        let _ = writeln!(out, "| concurrent sessions | calls/s | p50 | p99 |");
        let _ = writeln!(out, "| --- | --- | --- | --- |");
        for row in &results.throughput {
            let _ = writeln!(
                out,
                "| {} | {:.0} | {} | {} |",
                row.sessions,
                row.calls_per_second,
                format_micros(row.summary.p50),
                format_micros(row.summary.p99)
            );
        }
        let _ = writeln!(out);
    }
    if let Some(figures) = &results.balancer {
        balancer_tables(out, figures);
    }
    if let Some(scale) = &results.scale {
        scale_table(out, scale);
    }
    if let Some(chaos) = &results.chaos {
        crate::chaos::render(out, chaos);
    }
}

fn balancer_tables(out: &mut String, figures: &crate::balancer::BalancerFigures) {
    let _ = writeln!(
        out,
        "## Behind a load balancer
"
    );
    let _ = writeln!(
        out,
        "Three `bulkhead serve` nodes behind the shipped nginx and HAProxy configurations (`scripts/lb-config`), all on this machine's cores together with the load generator. Warm `echo` calls in one session by handle (`Mcp-Param-Session`), each path on its own keep-alive connection, in rounds that take turns:\n"
    );
    let _ = writeln!(out, "| path | p50 | p99 | added at p50 | calls |");
    let _ = writeln!(out, "| --- | --- | --- | --- | --- |");
    let direct = figures.latency.first().map(|row| row.summary.p50);
    for row in &figures.latency {
        let added = direct.map_or(String::new(), |direct| {
            format_micros(row.summary.p50 - direct)
        });
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            row.path,
            format_micros(row.summary.p50),
            format_micros(row.summary.p99),
            added,
            row.summary.count
        );
    }
    let _ = writeln!(
        out,
        "\nThroughput: sessions opened on the nodes in turn, each called back to back on its own keep-alive connection through the balancer (\"direct\": to one node, no balancer):\n"
    );
    let _ = writeln!(
        out,
        "| via | nodes | concurrent sessions | calls/s | p50 | p99 |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- |");
    for row in &figures.throughput {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {} | {} |",
            row.via,
            row.nodes,
            row.sessions,
            row.calls_per_second,
            format_micros(row.summary.p50),
            format_micros(row.summary.p99)
        );
    }
    let _ = writeln!(out);
}

fn scale_table(out: &mut String, scale: &Scale) {
    let _ = writeln!(out, "## Sessions at scale (HTTP)\n");
    let _ = writeln!(
        out,
        "Sessions opened step by step (cold spawns, several connections at once), each with one `echo` call; at each step, `echo` to sessions picked at random (most of them idle since they opened), then the same again at once (\"again\"). PSS sums `/proc/<pid>/smaps_rollup`.{}\n",
        scale
            .idle_supervisor_pss_kib
            .map_or(String::new(), |kib| format!(
                " The supervisor alone: {:.1} MB PSS.",
                kib as f64 * 1.024 / 1000.0
            ))
    );
    let _ = writeln!(
        out,
        "| sessions open | echo p50 | echo p99 | again: p50 / p99 | session start p50 / p99 (time to open this step) | worker PSS per session | supervisor PSS | supervisor fds / threads | MemAvailable |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for c in &scale.checkpoints {
        let open = c.open.map_or("–".into(), |open| {
            format!(
                "{} / {} ({:.1} s)",
                format_micros(open.p50),
                format_micros(open.p99),
                c.open_seconds
            )
        });
        let per_session = c.workers_pss_kib.map_or("n/a (needs root)".into(), |kib| {
            format!("{:.2} MB", kib as f64 * 1.024 / 1000.0 / c.sessions as f64)
        });
        let supervisor = c.supervisor_pss_kib.map_or("n/a".into(), |kib| {
            format!("{:.1} MB", kib as f64 * 1.024 / 1000.0)
        });
        let fds = format!(
            "{} / {}",
            c.supervisor_fds.map_or("?".into(), |fds| fds.to_string()),
            c.supervisor_threads
                .map_or("?".into(), |threads| threads.to_string())
        );
        let available = c.mem_available_kib.map_or("?".into(), |kib| {
            format!("{:.1} GiB", kib as f64 / 1048576.0)
        });
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} / {} | {open} | {per_session} | {supervisor} | {fds} | {available} |",
            c.sessions,
            format_micros(c.call.p50),
            format_micros(c.call.p99),
            format_micros(c.call_again.p50),
            format_micros(c.call_again.p99),
        );
    }
    match &scale.stopped_by {
        Some(why) => {
            let _ = writeln!(
                out,
                "\nStopped at {} sessions (target {}): {why}\n",
                scale.reached, scale.target
            );
        }
        None => {
            let _ = writeln!(out, "\nReached the target of {} sessions.\n", scale.target);
        }
    }
}

/// The wrapped-server comparison: its targets (BRIEF §7, issue 13) and its figures.
fn wrapped_tables(out: &mut String, figures: &crate::wrapped::WrappedFigures) {
    use crate::wrapped::Gateway;
    let start = |gateway: Gateway| {
        figures
            .starts
            .iter()
            .find(|(which, _)| *which == gateway)
            .map(|(_, summary)| *summary)
    };
    let memory = |gateway: Gateway| figures.memory.iter().find(|m| m.gateway == gateway);
    let _ = writeln!(
        out,
        "## A wrapped server beside supergateway\n\n`@modelcontextprotocol/server-everything` on the same `node`, behind Bulkhead `serve --wrap` (pool of {}, and no pool) and supergateway 4 `--stateful`, in one run, driven by the same legacy Streamable HTTP client (`initialize`, `notifications/initialized`, `tools/call echo`; a pause of {} ms before each start).\n",
        figures.pool_size, figures.gap_ms
    );
    let _ = writeln!(out, "| figure | target | measured | verdict |");
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    let reference = start(Gateway::Supergateway);
    for (gateway, limit) in [(Gateway::BulkheadPool, 0.05), (Gateway::BulkheadCold, 1.0)] {
        let (measured, met) = match (start(gateway), reference) {
            (Some(ours), Some(theirs)) => {
                let ratio = ours.p50 / theirs.p50;
                (
                    format!(
                        "p50 {} vs {} ({ratio:.3}×)",
                        format_micros(ours.p50),
                        format_micros(theirs.p50)
                    ),
                    Some(ratio <= limit),
                )
            }
            _ => ("not measured".into(), None),
        };
        let _ = writeln!(
            out,
            "| new session → first result, {} | ≤ {limit}× supergateway | {measured} | {} |",
            gateway.name(),
            met.map_or("–", verdict)
        );
    }
    let (measured, met) = match (memory(Gateway::BulkheadCold), memory(Gateway::Supergateway)) {
        (Some(ours), Some(theirs)) => {
            let ratio = ours.per_session_kib / theirs.per_session_kib;
            (
                format!(
                    "{:.1} MiB vs {:.1} MiB ({ratio:.2}×)",
                    ours.per_session_kib / 1024.0,
                    theirs.per_session_kib / 1024.0
                ),
                Some(ratio <= 1.0),
            )
        }
        _ => ("not measured".into(), None),
    };
    let _ = writeln!(
        out,
        "| memory per session (PSS of its process tree) | ≤ 1.0× supergateway | {measured} | {} |\n",
        met.map_or("–", verdict)
    );
    let _ = writeln!(
        out,
        "| gateway | session start p50 | p99 | warm call p50 | p99 | PSS per session | gateway PSS |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- | --- |");
    for gateway in [
        Gateway::BulkheadPool,
        Gateway::BulkheadCold,
        Gateway::Supergateway,
    ] {
        let started = start(gateway);
        let call = figures
            .calls
            .iter()
            .find(|(which, _)| {
                *which == gateway
                    || (gateway == Gateway::BulkheadPool && *which == Gateway::BulkheadCold)
            })
            .map(|(_, summary)| *summary);
        let micros = |value: Option<f64>| value.map_or("–".to_string(), format_micros);
        let mem = memory(gateway);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            gateway.name(),
            micros(started.map(|s| s.p50)),
            micros(started.map(|s| s.p99)),
            micros(call.map(|s| s.p50)),
            micros(call.map(|s| s.p99)),
            mem.map_or("–".into(), |m| format!(
                "{:.1} MiB ({} open)",
                m.per_session_kib / 1024.0,
                m.sessions
            )),
            mem.and_then(|m| m.gateway_kib)
                .map_or("–".into(), |kib| format!(
                    "{:.1} MiB",
                    kib as f64 / 1024.0
                )),
        );
    }
    let _ = writeln!(out);
}
