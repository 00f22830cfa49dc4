//! The versioned handshake on a worker's private socket, before any MCP traffic.
//!
//! The supervisor writes one [`Control::Hello`] line; the worker answers with one
//! [`Control::Ready`] line (or [`Control::Refused`] and exits). Both carry
//! [`crate::WORKER_PROTOCOL_VERSION`]; a mismatch is refused by whichever side sees it. After
//! that the socket carries MCP JSON-RPC, one message per line, with the supervisor as client.
//!
//! The hello carries the worker's [`SandboxPolicy`] (resource limits the supervisor has already
//! applied, which the worker checks) and its principal's trading policy
//! ([`crate::trading::TradingPolicy`]), and `ready` names any part of the worker's own sandbox
//! the kernel could not provide.

use serde::{Deserialize, Serialize};

/// Longest handshake line either side accepts.
pub const MAX_HANDSHAKE_BYTES: usize = 64 * 1024;

/// Handshake messages, tagged by the `bulkhead` member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "bulkhead", rename_all = "snake_case")]
#[allow(
    clippy::large_enum_variant,
    reason = "one hello per worker's life: boxing it would save nothing worth the indirection"
)]
pub enum Control {
    /// Supervisor → worker: who you are and how to behave.
    Hello(Hello),
    /// Worker → supervisor: handshake accepted, MCP may start.
    Ready(Ready),
    /// Worker → supervisor: handshake refused; the worker exits next.
    Refused { reason: String },
}

/// What the supervisor tells a new worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Must equal [`crate::WORKER_PROTOCOL_VERSION`].
    pub protocol: u32,
    /// Short session tag for the worker's log lines (never the full handle).
    pub session_tag: String,
    /// Log filter for the worker (the supervisor's `RUST_LOG`, since the worker's environment
    /// is cleared).
    pub log_filter: String,
    /// Log format for the worker's stderr (`text`, `json`, `journald`), the supervisor's own.
    #[serde(default)]
    pub log_format: String,
    /// Whether to expose test-only diagnostic tools.
    #[serde(default)]
    pub test_tools: bool,
    /// Seed of the built-in paper market; `None` for the worker's default.
    #[serde(default)]
    pub paper_seed: Option<u64>,
    /// The resource limits the supervisor set on this worker before it started; the worker
    /// checks that it really runs under them and refuses otherwise.
    #[serde(default)]
    pub sandbox: SandboxPolicy,
    /// Serve the conformance suite's test fixtures instead of the broker tools
    /// (`bulkhead serve --test-fixtures`; test only).
    #[serde(default)]
    pub fixtures: bool,
    /// The network brokers this worker offers besides `paper`, with their endpoints (already
    /// defaulted and checked by the supervisor).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub brokers: Vec<crate::brokers::NetworkBroker>,
    /// The supervisor's per-call deadline in milliseconds (`--call-timeout`): a broker sizes its
    /// network timeouts to answer within it. `None`: the worker assumes the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_timeout_ms: Option<u64>,
    /// The session principal's trading rails and live brokers (the defaults for a worker that
    /// belongs to no principal yet: the catalog's, a pool worker's).
    #[serde(default)]
    pub trading: crate::trading::TradingPolicy,
}

/// What a worker answers once it accepts the hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// The worker's [`crate::WORKER_PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The worker's own pid, checked by the supervisor against the child it spawned.
    pub pid: u32,
    /// The worker's package version, for logs.
    pub version: String,
    /// Parts of the worker's own sandbox this kernel could not provide, one sentence each
    /// (e.g. Landlock missing); the supervisor logs each distinct one once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sandbox_degraded: Vec<String>,
}

/// Address space of a worker (`RLIMIT_AS`, and `memory.max` of its cgroup): an idle worker
/// maps about 30 MB and keeps under 1 MB resident, so 1 GiB leaves room for large tool
/// results while stopping a runaway long before it strains the machine.
pub const DEFAULT_WORKER_MAX_MEMORY_BYTES: u64 = 1 << 30;
/// CPU seconds over a worker's whole life (`RLIMIT_CPU`): a broker session uses seconds in
/// its 24-hour maximum age; an hour stops a spinning worker even if nothing else does.
pub const DEFAULT_WORKER_MAX_CPU_SECONDS: u64 = 3600;
/// Open descriptors of a worker (`RLIMIT_NOFILE`): it needs about eight (stdio, its socket,
/// the runtime's epoll and wake-ups); 256 leaves room for a broker's connections and stops
/// a descriptor leak far below the system's limits.
pub const DEFAULT_WORKER_MAX_OPEN_FILES: u64 = 256;
/// Tasks (threads; a worker may never create processes) of a worker: `pids.max` of its
/// cgroup, and `RLIMIT_NPROC` when it has a uid of its own. A current-thread worker is one
/// task; 32 leaves room for tokio's blocking threads and stops a thread leak.
pub const DEFAULT_WORKER_MAX_TASKS: u64 = 32;
/// `cpu.weight` of a worker's cgroup: the kernel's default, so sessions share the CPU equally
/// (the supervisor sits beside all workers together, not beside each one).
pub const DEFAULT_WORKER_CPU_WEIGHT: u64 = 100;

/// Resource limits of one worker process. The supervisor applies them between fork and exec
/// (rlimits, and the cgroup when one is available), so they bind from the worker's first
/// instruction and whatever the worker binary does; the hello repeats them so the worker can
/// check. `u64::MAX` means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxPolicy {
    /// Bytes of address space (`RLIMIT_AS`) and of cgroup memory (`memory.max`).
    pub max_memory_bytes: u64,
    /// CPU seconds over the worker's life (`RLIMIT_CPU`); the kernel kills it at the limit.
    pub max_cpu_seconds: u64,
    /// Open descriptors (`RLIMIT_NOFILE`).
    pub max_open_files: u64,
    /// Tasks: the cgroup's `pids.max`, and `RLIMIT_NPROC` only when the worker runs under a
    /// uid of its own (the rlimit counts every process of the uid, supervisor included).
    pub max_tasks: u64,
    /// The cgroup's `cpu.weight` (1-10000).
    pub cpu_weight: u64,
}

impl Default for SandboxPolicy {
    fn default() -> Self {
        Self {
            max_memory_bytes: DEFAULT_WORKER_MAX_MEMORY_BYTES,
            max_cpu_seconds: DEFAULT_WORKER_MAX_CPU_SECONDS,
            max_open_files: DEFAULT_WORKER_MAX_OPEN_FILES,
            max_tasks: DEFAULT_WORKER_MAX_TASKS,
            cpu_weight: DEFAULT_WORKER_CPU_WEIGHT,
        }
    }
}

impl Control {
    /// Serialize as one newline-terminated line.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }

    /// Parse one handshake line.
    pub fn from_line(line: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trips_and_is_tagged() {
        let hello = Control::Hello(Hello {
            protocol: crate::WORKER_PROTOCOL_VERSION,
            session_tag: "abcd1234".into(),
            log_filter: "info".into(),
            log_format: "text".into(),
            test_tools: false,
            paper_seed: Some(7),
            sandbox: SandboxPolicy {
                max_open_files: 64,
                ..SandboxPolicy::default()
            },
            fixtures: true,
            brokers: vec![crate::brokers::NetworkBroker {
                name: "alpaca-paper".into(),
                trading_url: "http://127.0.0.1:1".into(),
                data_url: "http://127.0.0.1:1".into(),
            }],
            call_timeout_ms: Some(60_000),
            trading: crate::trading::TradingPolicy {
                live_brokers: vec!["alpaca".into()],
                ..Default::default()
            },
        });
        let line = hello.to_line();
        assert!(line.starts_with(br#"{"bulkhead":"hello""#));
        assert_eq!(Control::from_line(&line[..line.len() - 1]).unwrap(), hello);
    }

    #[test]
    fn an_older_hello_gets_the_default_sandbox_and_ready_omits_an_empty_report() {
        let line = br#"{"bulkhead":"hello","protocol":1,"session_tag":"t","log_filter":"info"}"#;
        let Control::Hello(hello) = Control::from_line(line).unwrap() else {
            panic!("not a hello");
        };
        assert_eq!(hello.sandbox, SandboxPolicy::default());
        let ready = Control::Ready(Ready {
            protocol: 1,
            pid: 2,
            version: "0".into(),
            sandbox_degraded: Vec::new(),
        });
        assert!(
            !String::from_utf8(ready.to_line())
                .unwrap()
                .contains("sandbox")
        );
    }

    #[test]
    fn an_mcp_message_is_not_a_handshake() {
        assert!(Control::from_line(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).is_err());
    }
}
