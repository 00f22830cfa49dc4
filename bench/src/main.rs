//! `bulkhead-bench`: measures Bulkhead on the machine it runs on against the performance
//! targets of the brief (§7) and writes `RESULTS.md` and two PNG charts.
//!
//! Run it through `scripts/bench`, which builds the release binaries first. Each measurement
//! ([`scenarios`]) starts its own supervisor (or, for the direct baseline, its own worker),
//! drives it with a blocking client ([`rpc`], [`http`]), and stops it. Counts come from flags;
//! `--smoke` shrinks every count so the whole run takes seconds (a check that every
//! measurement still works, not a measurement). Progress goes to stderr; the report to files.

mod balancer;
mod chaos;
mod chart;
mod http;
mod latency;
mod launch;
mod legacy;
mod report;
mod rpc;
mod scenarios;
mod stats;
mod system;
mod wrapped;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Parser, ValueEnum};

use crate::launch::Binaries;
use crate::report::{Context, Results};
use crate::scenarios::Plan;

/// Sessions at which the scale run stops to measure (those up to `--max-sessions`).
const CHECKPOINTS: [usize; 6] = [10, 100, 1000, 2500, 5000, 10_000];

#[derive(Debug, Parser)]
#[command(
    name = "bulkhead-bench",
    about = "Measure Bulkhead against its performance targets and write a Markdown table and charts."
)]
struct Cli {
    /// Directory holding `bulkhead` and `bulkhead-worker` [default: this executable's directory].
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Where RESULTS.md and the charts go [default: bench/results, or target/bench-smoke with --smoke].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Tiny counts, to check in seconds that every measurement runs.
    #[arg(long)]
    smoke: bool,
    /// Only these parts (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Part>,
    /// Calls per warm call-latency measurement [default: 20000; smoke 200].
    #[arg(long)]
    calls: Option<usize>,
    /// Session starts per session-start measurement [default: 300; smoke 5].
    #[arg(long)]
    session_starts: Option<usize>,
    /// Milliseconds between two measured session starts [default: 20].
    #[arg(long)]
    session_gap_ms: Option<u64>,
    /// Pool size for the "from the pool" measurements [default: 4].
    #[arg(long)]
    pool_size: Option<usize>,
    /// Concurrent sessions for the HTTP throughput run [default: 1,16,64; smoke 1,4].
    #[arg(long, value_delimiter = ',')]
    concurrency: Vec<usize>,
    /// Seconds per throughput level [default: 3; smoke 0.3].
    #[arg(long)]
    throughput_secs: Option<f64>,
    /// Sessions the scale run tries to open [default: 10000; smoke 20].
    #[arg(long)]
    max_sessions: Option<usize>,
    /// Echo calls at each scale checkpoint [default: 3000; smoke 50].
    #[arg(long)]
    probe_calls: Option<usize>,
    /// Sessions opened and closed one after another in the chaos soak over stdio (a quarter as
    /// many over HTTP) [default: 20000; smoke 20].
    #[arg(long)]
    soak_cycles: Option<usize>,
    /// Connections opening sessions at once in the scale run [default: 4].
    #[arg(long)]
    openers: Option<usize>,
    /// Wrapped-server session starts per gateway [default: 40; smoke 2].
    #[arg(long)]
    wrapped_starts: Option<usize>,
    /// Warm calls per gateway in the wrapped-server comparison [default: 2000; smoke 20].
    #[arg(long)]
    wrapped_calls: Option<usize>,
    /// Sessions open at once per gateway for the wrapped memory figure [default: 10; smoke 2].
    #[arg(long)]
    wrapped_sessions: Option<usize>,
    /// Milliseconds between two wrapped session starts: a Node server needs a few hundred to
    /// stop and (with a pool) to be replaced [default: 1000; smoke 400].
    #[arg(long)]
    wrapped_gap_ms: Option<u64>,
    /// The wrapped server's entry point.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "tests/servers/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
    )]
    everything: PathBuf,
    /// supergateway's entry point, the gateway the wrapped figures are compared with.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "bench/supergateway/node_modules/supergateway/dist/index.js"
    )]
    supergateway: PathBuf,
    /// RUST_LOG for the supervisors under test.
    #[arg(long, default_value = "info")]
    log_filter: String,
    /// TrueType font for chart text [default: DejaVu Sans or Liberation Sans where installed].
    #[arg(long, value_name = "FILE")]
    font: Option<PathBuf>,
}

/// The parts of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    /// New session to first tool result, stdio and HTTP, cold and pooled.
    Start,
    /// Warm call latency: direct, stdio, HTTP.
    Calls,
    /// HTTP throughput at several concurrencies.
    Throughput,
    /// Sessions at scale: latency, memory, descriptors up to --max-sessions.
    Scale,
    /// Three nodes behind real nginx and HAProxy: latency added, throughput with 1 and 3 nodes.
    Balancer,
    /// Session soak, workers killed under load, slowloris by one principal (issue 10).
    Chaos,
    /// A wrapped Node server (external worker mode, pooled and cold) beside supergateway:
    /// session start, warm call, memory per session.
    Wrapped,
}

impl Cli {
    fn plan(&self) -> Plan {
        let pick = |value: Option<usize>, full: usize, smoke: usize| {
            value.unwrap_or(if self.smoke { smoke } else { full })
        };
        let max_sessions = pick(self.max_sessions, 10_000, 20);
        let mut checkpoints: Vec<usize> = CHECKPOINTS
            .iter()
            .copied()
            .filter(|&point| point < max_sessions)
            .collect();
        checkpoints.push(max_sessions);
        let concurrency = if !self.concurrency.is_empty() {
            self.concurrency.clone()
        } else if self.smoke {
            vec![1, 4]
        } else {
            vec![1, 16, 64]
        };
        let throughput_secs = self
            .throughput_secs
            .unwrap_or(if self.smoke { 0.3 } else { 3.0 });
        Plan {
            calls: pick(self.calls, 20_000, 200),
            session_starts: pick(self.session_starts, 300, 5),
            pool_size: pick(self.pool_size, 4, 4),
            concurrency,
            throughput_time: Duration::from_secs_f64(throughput_secs.max(0.05)),
            max_sessions,
            checkpoints,
            probe_calls: pick(self.probe_calls, 3000, 50),
            openers: pick(self.openers, 4, 4),
            session_gap: Duration::from_millis(self.session_gap_ms.unwrap_or(20)),
        }
    }

    fn wrapped(&self, plan: &Plan) -> wrapped::WrappedSetup {
        let pick = |value: Option<usize>, full: usize, smoke: usize| {
            value.unwrap_or(if self.smoke { smoke } else { full })
        };
        let gap = self
            .wrapped_gap_ms
            .unwrap_or(if self.smoke { 400 } else { 1000 });
        wrapped::WrappedSetup {
            everything: self.everything.clone(),
            supergateway: self.supergateway.clone(),
            starts: pick(self.wrapped_starts, 40, 2),
            calls: pick(self.wrapped_calls, 2000, 20),
            sessions: pick(self.wrapped_sessions, 10, 2),
            gap: Duration::from_millis(gap),
            pool_size: plan.pool_size,
        }
    }

    fn runs(&self, part: Part) -> bool {
        self.only.is_empty() || self.only.contains(&part)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let plan = cli.plan();
    let bin_dir = match cli.bin_dir.clone().or_else(executable_dir) {
        Some(dir) => dir,
        None => {
            eprintln!("bulkhead-bench: cannot find the binaries; pass --bin-dir");
            return ExitCode::from(64);
        }
    };
    for binary in ["bulkhead", "bulkhead-worker"] {
        if !bin_dir.join(binary).is_file() {
            eprintln!(
                "bulkhead-bench: {} is missing; build first (scripts/bench does)",
                bin_dir.join(binary).display()
            );
            return ExitCode::from(64);
        }
    }
    let out = cli.out.clone().unwrap_or_else(|| {
        PathBuf::from(if cli.smoke {
            "target/bench-smoke"
        } else {
            "bench/results"
        })
    });
    let log_dir = std::env::temp_dir().join(format!("bulkhead-bench-{}", std::process::id()));
    if let Err(error) =
        std::fs::create_dir_all(&out).and_then(|()| std::fs::create_dir_all(&log_dir))
    {
        eprintln!(
            "bulkhead-bench: cannot create {} or {}: {error}",
            out.display(),
            log_dir.display()
        );
        return ExitCode::FAILURE;
    }
    eprintln!(
        "bulkhead-bench: binaries in {}, logs in {}",
        bin_dir.display(),
        log_dir.display()
    );
    let binaries = Binaries {
        dir: bin_dir,
        log_dir,
        log_filter: cli.log_filter.clone(),
    };
    let load_before = system::load_average();
    let results = run(&cli, &plan, &binaries);
    let load_after = system::load_average();

    let text = chart::load_font(cli.font.as_deref());
    let mut charts = Vec::new();
    let bars = chart::latency_bars(&results.starts, &results.calls);
    if !bars.is_empty() {
        match chart::draw_latency(&out.join("latency.png"), &bars, text) {
            Ok(()) => charts.push("latency.png"),
            Err(error) => eprintln!("bulkhead-bench: cannot draw latency.png: {error}"),
        }
    }
    if results.scale.is_some() || !results.throughput.is_empty() {
        match chart::draw_scale(
            &out.join("scale.png"),
            results.scale.as_ref(),
            &results.throughput,
            text,
        ) {
            Ok(()) => charts.push("scale.png"),
            Err(error) => eprintln!("bulkhead-bench: cannot draw scale.png: {error}"),
        }
    }
    let context = Context {
        machine: system::Machine::describe(),
        date: utc_date(SystemTime::now()),
        load_before,
        load_after,
        log_filter: cli.log_filter.clone(),
        command: command_line(),
        charts,
    };
    let markdown = report::render(&results, &context);
    let path = out.join("RESULTS.md");
    if let Err(error) = std::fs::write(&path, markdown) {
        eprintln!("bulkhead-bench: cannot write {}: {error}", path.display());
        return ExitCode::FAILURE;
    }
    eprintln!("bulkhead-bench: wrote {}", path.display());
    if results.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        for failure in &results.failures {
            eprintln!("bulkhead-bench: FAILED {failure}");
        }
        ExitCode::FAILURE
    }
}

/// Every selected measurement, in order; a failed one is recorded and the run goes on.
fn run(cli: &Cli, plan: &Plan, binaries: &Binaries) -> Results {
    let mut results = Results {
        session_gap_ms: plan.session_gap.as_millis(),
        ..Results::default()
    };
    let note = |what: &str, error: String| {
        eprintln!("bulkhead-bench: {what} failed: {error}");
        format!("{what}: {error}")
    };
    if cli.runs(Part::Start) {
        eprintln!("bulkhead-bench: session start, stdio and HTTP, cold and pooled (interleaved)");
        for start in latency::session_starts(binaries, plan) {
            match start {
                Ok(start) => results.starts.push(start),
                Err(error) => results.failures.push(note("session start", error)),
            }
        }
    }
    if cli.runs(Part::Calls) {
        eprintln!("bulkhead-bench: call latency: floor, direct, stdio, HTTP (interleaved)");
        for call in latency::call_latencies(binaries, plan) {
            match call {
                Ok(call) => results.calls.push(call),
                Err(error) => results.failures.push(note("call latency", error)),
            }
        }
    }
    if cli.runs(Part::Throughput) {
        eprintln!(
            "bulkhead-bench: HTTP throughput at {:?} sessions",
            plan.concurrency
        );
        match scenarios::throughput_http(binaries, plan) {
            Ok(rows) => results.throughput = rows,
            Err(error) => results.failures.push(note("throughput", error.to_string())),
        }
    }
    if cli.runs(Part::Balancer) {
        eprintln!(
            "bulkhead-bench: behind nginx and HAProxy: latency added, throughput with 1 and 3 nodes"
        );
        match balancer::measure(binaries, plan) {
            Ok(figures) => results.balancer = Some(figures),
            Err(error) => results.failures.push(note("balancer", error.to_string())),
        }
    }
    if cli.runs(Part::Wrapped) {
        eprintln!(
            "bulkhead-bench: a wrapped server: Bulkhead (pooled, cold) beside supergateway 4 --stateful"
        );
        match wrapped::measure(binaries, &cli.wrapped(plan)) {
            Ok(figures) => results.wrapped = Some(figures),
            Err(error) => results.failures.push(note("wrapped", error.to_string())),
        }
    }
    if cli.runs(Part::Scale) {
        eprintln!("bulkhead-bench: scale up to {} sessions", plan.max_sessions);
        match scenarios::scale_http(binaries, plan) {
            Ok(scale) => results.scale = Some(scale),
            Err(error) => results.failures.push(note("scale", error.to_string())),
        }
    }
    if cli.runs(Part::Chaos) {
        eprintln!("bulkhead-bench: chaos: soak, crash under load, slowloris");
        let (figures, failures) =
            chaos::measure(binaries, &chaos::ChaosPlan::new(cli.smoke, cli.soak_cycles));
        results.chaos = Some(figures);
        results.failures.extend(failures);
    }
    results
}

fn executable_dir() -> Option<PathBuf> {
    Some(std::env::current_exe().ok()?.parent()?.to_path_buf())
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        "scripts/bench".into()
    } else {
        format!("scripts/bench {}", args.join(" "))
    }
}

/// `YYYY-MM-DD` (UTC) of `time`.
fn utc_date(time: SystemTime) -> String {
    let mut stamp = bulkhead_protocol::clock::rfc3339(time);
    stamp.truncate("YYYY-MM-DD".len());
    stamp
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(utc_date(UNIX_EPOCH), "1970-01-01");
        assert_eq!(
            utc_date(UNIX_EPOCH + Duration::from_secs(1_709_251_200)),
            "2024-03-01"
        );
    }
}
