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

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The flag that turns `bulkhead-worker` into the exec shim.
pub const EXEC_FLAG: &str = "--exec";

/// Environment variable carrying the [`ExecPolicy`] as JSON; removed before `execve`.
pub const ENV_EXEC_POLICY: &str = "BULKHEAD_EXEC_POLICY";

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
