//! Process-wide counters, gauges and histograms, rendered in the Prometheus text format.
//!
//! A handful of fixed metrics do not justify a metrics framework: each is an atomic, updated
//! where the event happens (session registry, call path, HTTP front door) and rendered by
//! `GET /metrics`. Histograms use fixed buckets suited to their unit.

mod pool;

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use pool::{Discard, PoolClass, PoolMetrics};

/// Upper bounds (seconds) of the latency buckets: 100 µs to 10 s.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 10.0,
];

/// A latency histogram.
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    const fn new() -> Self {
        Self {
            buckets: [const { AtomicU64::new(0) }; LATENCY_BUCKETS.len()],
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let separator = if labels.is_empty() { "" } else { "," };
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{separator}le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{separator}le=\"+Inf\"}} {count}"
        );
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// Outcomes a forwarded call can have, for the latency histogram's label.
#[derive(Debug, Clone, Copy)]
pub enum CallOutcome {
    Ok,
    ToolError,
    Error,
    Deadline,
    WorkerDied,
    Cancelled,
}

impl CallOutcome {
    const ALL: [CallOutcome; 6] = [
        CallOutcome::Ok,
        CallOutcome::ToolError,
        CallOutcome::Error,
        CallOutcome::Deadline,
        CallOutcome::WorkerDied,
        CallOutcome::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::ToolError => "tool_error",
            CallOutcome::Error => "error",
            CallOutcome::Deadline => "deadline",
            CallOutcome::WorkerDied => "worker_died",
            CallOutcome::Cancelled => "cancelled",
        }
    }
}

/// Why the HTTP front door (or the registry) turned a request away.
#[derive(Debug, Clone, Copy)]
pub enum Rejection {
    Unauthorized,
    Origin,
    Host,
    BodyTooLarge,
    RateLimited,
    SessionLimit,
    BadRequest,
    UnknownSession,
    /// A principal already had its share of the HTTP connections busy.
    PrincipalShare,
    /// A principal already had its share of `subscriptions/listen` streams open.
    ListenShare,
    /// A request body did not arrive within `--body-timeout`.
    BodyTimeout,
    /// A handle or legacy session id named another node, which the request could not reach.
    OtherNode,
    /// A new session was refused because this node is draining.
    Draining,
}

impl Rejection {
    const ALL: [Rejection; 13] = [
        Rejection::Unauthorized,
        Rejection::Origin,
        Rejection::Host,
        Rejection::BodyTooLarge,
        Rejection::RateLimited,
        Rejection::SessionLimit,
        Rejection::BadRequest,
        Rejection::UnknownSession,
        Rejection::PrincipalShare,
        Rejection::ListenShare,
        Rejection::BodyTimeout,
        Rejection::OtherNode,
        Rejection::Draining,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Rejection::Unauthorized => "unauthorized",
            Rejection::Origin => "origin",
            Rejection::Host => "host",
            Rejection::BodyTooLarge => "body_too_large",
            Rejection::RateLimited => "rate_limited",
            Rejection::SessionLimit => "session_limit",
            Rejection::BadRequest => "bad_request",
            Rejection::UnknownSession => "unknown_session",
            Rejection::PrincipalShare => "principal_share",
            Rejection::ListenShare => "listen_share",
            Rejection::BodyTimeout => "body_timeout",
            Rejection::OtherNode => "other_node",
            Rejection::Draining => "draining",
        }
    }
}

/// Every metric of the process.
pub struct Metrics {
    pub sessions_opened: AtomicU64,
    pub sessions_closed: AtomicU64,
    pub sessions_crashed: AtomicU64,
    pub spawn_latency: Histogram,
    pub calls_in_flight: AtomicU64,
    call_latency: [Histogram; CallOutcome::ALL.len()],
    rejections: [AtomicU64; Rejection::ALL.len()],
    /// The pre-spawned pools.
    pub pool: PoolMetrics,
}

/// The process's metrics.
pub static METRICS: Metrics = Metrics {
    sessions_opened: AtomicU64::new(0),
    sessions_closed: AtomicU64::new(0),
    sessions_crashed: AtomicU64::new(0),
    spawn_latency: Histogram::new(),
    calls_in_flight: AtomicU64::new(0),
    call_latency: [const { Histogram::new() }; CallOutcome::ALL.len()],
    rejections: [const { AtomicU64::new(0) }; Rejection::ALL.len()],
    pool: PoolMetrics::new(),
};

impl Metrics {
    pub fn call_finished(&self, outcome: CallOutcome, elapsed: Duration) {
        self.call_latency[outcome as usize].observe(elapsed);
    }

    pub fn reject(&self, reason: Rejection) {
        self.rejections[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition, with the live session count supplied by the caller.
    pub fn render(&self, sessions_open: usize) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        let _ = writeln!(
            out,
            "# HELP bulkhead_sessions_open Sessions open now.\n# TYPE bulkhead_sessions_open gauge\nbulkhead_sessions_open {sessions_open}"
        );
        counter(
            &mut out,
            "bulkhead_sessions_opened_total",
            "Sessions opened.",
            self.sessions_opened.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "bulkhead_sessions_closed_total",
            "Sessions ended deliberately (closed, expired, evicted, shutdown).",
            self.sessions_closed.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "bulkhead_sessions_crashed_total",
            "Sessions lost because their worker died.",
            self.sessions_crashed.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP bulkhead_calls_in_flight Tool calls being handled by workers now.\n# TYPE bulkhead_calls_in_flight gauge\nbulkhead_calls_in_flight {}",
            self.calls_in_flight.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP bulkhead_spawn_seconds Worker spawn to ready.\n# TYPE bulkhead_spawn_seconds histogram"
        );
        self.spawn_latency
            .render(&mut out, "bulkhead_spawn_seconds", "");
        let _ = writeln!(
            out,
            "# HELP bulkhead_call_seconds Tool call latency through the supervisor, by outcome.\n# TYPE bulkhead_call_seconds histogram"
        );
        for outcome in CallOutcome::ALL {
            let labels = format!("outcome=\"{}\"", outcome.as_str());
            self.call_latency[outcome as usize].render(&mut out, "bulkhead_call_seconds", &labels);
        }
        let _ = writeln!(
            out,
            "# HELP bulkhead_rejections_total Requests turned away, by reason.\n# TYPE bulkhead_rejections_total counter"
        );
        for reason in Rejection::ALL {
            let _ = writeln!(
                out,
                "bulkhead_rejections_total{{reason=\"{}\"}} {}",
                reason.as_str(),
                self.rejections[reason as usize].load(Ordering::Relaxed)
            );
        }
        self.pool.render(&mut out);
        out
    }
}
