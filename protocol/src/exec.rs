//! The exec shim's contract: how the supervisor asks `bulkhead-worker` to confine itself and
//! then become a wrapped stdio MCP server (external worker mode).
//!
//! The supervisor launches `bulkhead-worker --exec -- PATH ARGV0 ARGS...` with the session's
//! socket on descriptors 0 and 1, stderr on a pipe, [`crate::ENV_WORKER_PROTOCOL`] set, and the
//! [`ExecPolicy`] as JSON in [`ENV_EXEC_POLICY`]. The shim applies the inner half of the
//! sandbox that survives `execve` (no_new_privs, no capabilities, Landlock, seccomp), removes
//! both Bulkhead variables, and executes `PATH` with `ARGV0 ARGS...` and the rest of its
//! environment. There is no handshake: a wrapped server speaks only MCP, and the process the
//! supervisor spawned is, by construction, the one on the socket.
//!
//! The shim reports what the kernel could not enforce on [`EXEC_REPORT_FD`], the write end of
//! a pipe only the supervisor reads, one [`ExecReport::line`] per sentence, and closes it
//! before `execve` — so the wrapped program never holds it, and nothing it writes (on stderr or
//! anywhere) can pass for the shim's report.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The flag that turns `bulkhead-worker` into the exec shim.
pub const EXEC_FLAG: &str = "--exec";

/// Environment variable carrying the [`ExecPolicy`] as JSON; removed before `execve`.
pub const ENV_EXEC_POLICY: &str = "BULKHEAD_EXEC_POLICY";

/// Descriptor of the shim's report pipe (descriptors 0 and 1 are the session's socket, 2 is
/// stderr).
pub const EXEC_REPORT_FD: i32 = 3;

/// Most bytes of a shim's report the supervisor reads: a few sentences; more is not the shim.
pub const MAX_EXEC_REPORT_BYTES: usize = 16 * 1024;

/// What the shim reports on [`EXEC_REPORT_FD`], one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecReport {
    /// A protection this kernel could not enforce, as a sentence.
    Degraded(String),
}

impl ExecReport {
    const DEGRADED: &str = "degraded ";

    /// The report as one line (newlines inside become spaces).
    pub fn line(&self) -> String {
        match self {
            ExecReport::Degraded(sentence) => {
                format!(
                    "{}{}\n",
                    Self::DEGRADED,
                    sentence.replace(['\n', '\r'], " ")
                )
            }
        }
    }

    /// Every report in `text`; lines that are not reports are skipped.
    pub fn parse_all(text: &str) -> Vec<Self> {
        text.lines()
            .filter_map(|line| line.strip_prefix(Self::DEGRADED))
            .map(|sentence| ExecReport::Degraded(sentence.to_string()))
            .collect()
    }
}

/// Exit code of a shim whose policy could not be applied (like a refused handshake).
pub const EXIT_EXEC_REFUSED: i32 = 79;
/// Exit code of a shim whose `execve` failed (the shell's "command not found").
pub const EXIT_EXEC_FAILED: i32 = 127;

/// What a wrapped server may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExecPolicy {
    /// Paths it may read and execute beneath (missing ones are skipped).
    pub read: Vec<PathBuf>,
    /// Paths it may read, write, create and remove beneath.
    pub write: Vec<PathBuf>,
    /// TCP it may use.
    pub network: NetworkPolicy,
    /// The supervisor's pid, which it may never signal (also when Landlock is missing).
    pub supervisor_pid: u32,
}

/// TCP access of a wrapped server (Landlock ABI 4; UDP and Unix sockets are not covered).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkPolicy {
    /// Neither `connect` nor `bind` on TCP.
    None,
    /// Outgoing TCP connections only; no listening (the default: servers call APIs).
    #[default]
    Connect,
    /// Any TCP use, listening included.
    All,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_one_line_each() {
        let reports = [
            ExecReport::Degraded("landlock: partly\nenforced".into()),
            ExecReport::Degraded("seccomp unavailable".into()),
        ];
        let text: String = reports.iter().map(ExecReport::line).collect();
        assert_eq!(text.lines().count(), 2);
        assert_eq!(
            ExecReport::parse_all(&format!("{text}junk\n")),
            vec![
                ExecReport::Degraded("landlock: partly enforced".into()),
                ExecReport::Degraded("seccomp unavailable".into()),
            ]
        );
    }

    #[test]
    fn a_policy_round_trips_and_missing_fields_take_defaults() {
        let policy = ExecPolicy {
            read: vec!["/usr".into()],
            write: vec!["/tmp/x".into()],
            network: NetworkPolicy::None,
            supervisor_pid: 42,
        };
        let json = serde_json::to_string(&policy).unwrap();
        assert!(json.contains(r#""network":"none""#), "{json}");
        assert_eq!(serde_json::from_str::<ExecPolicy>(&json).unwrap(), policy);
        let empty: ExecPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(empty.network, NetworkPolicy::Connect);
    }
}
