//! The versioned handshake on a worker's private socket, before any MCP traffic.
//!
//! The supervisor writes one [`Control::Hello`] line; the worker answers with one
//! [`Control::Ready`] line (or [`Control::Refused`] and exits). Both carry
//! [`crate::WORKER_PROTOCOL_VERSION`]; a mismatch is refused by whichever side sees it. After
//! that the socket carries MCP JSON-RPC, one message per line, with the supervisor as client.

use serde::{Deserialize, Serialize};

/// Longest handshake line either side accepts.
pub const MAX_HANDSHAKE_BYTES: usize = 64 * 1024;

/// Handshake messages, tagged by the `bulkhead` member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "bulkhead", rename_all = "snake_case")]
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
    /// Whether to expose test-only diagnostic tools.
    #[serde(default)]
    pub test_tools: bool,
    /// Seed of the built-in paper market; `None` for the worker's default.
    #[serde(default)]
    pub paper_seed: Option<u64>,
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
            test_tools: false,
            paper_seed: Some(7),
        });
        let line = hello.to_line();
        assert!(line.starts_with(br#"{"bulkhead":"hello""#));
        assert_eq!(Control::from_line(&line[..line.len() - 1]).unwrap(), hello);
    }

    #[test]
    fn an_mcp_message_is_not_a_handshake() {
        assert!(Control::from_line(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).is_err());
    }
}
