//! The contract between the Bulkhead supervisor and its workers, and the JSON-RPC vocabulary both
//! speak to clients.
//!
//! This crate knows no processes and no sockets: it turns bytes into frames
//! ([`frame::LineReader`], generic over any `AsyncRead`), frames into JSON-RPC envelopes
//! ([`jsonrpc`]), and defines the versioned handshake that runs on a worker's private socket
//! before any MCP traffic ([`handshake`]), the exec shim's contract for wrapped stdio servers
//! ([`exec`]), the network brokers' endpoints and the network a worker may reach ([`brokers`]),
//! the session handle format ([`handle`]) and the error codes clients see ([`codes`]), the
//! timestamp format of session metadata ([`clock`]), the names shared on the wire ([`names`]:
//! session tools, the `session` argument, the 2026-07-28 `_meta` keys) and the protocol eras
//! ([`era`]), and a writer that writes each frame whole from wherever it is produced
//! ([`writer`]). Everything else (spawning, routing, tools) lives in the
//! `supervisor` and `worker` crates.
#![forbid(unsafe_code)]

pub mod brokers;
pub mod clock;
pub mod codes;
pub mod era;
pub mod exec;
pub mod frame;
pub mod handle;
pub mod handshake;
pub mod jsonrpc;
pub mod names;
pub mod trading;
pub mod writer;

/// Version of the supervisor⇄worker contract. Bumped on any incompatible change to the
/// handshake or to what either side may send; both sides refuse a peer with another version.
/// Version 2: the hello carries the principal's trading policy (a worker that ignored it would
/// trade without rails), workers send `bulkhead/trading/*` requests, and a built-in worker
/// acknowledges cancellations ([`NOTIFICATION_CANCEL_ACKNOWLEDGED`]).
pub const WORKER_PROTOCOL_VERSION: u32 = 2;

/// Notification a built-in worker sends the supervisor, `{"requestId": <id>}`, once the handler
/// of a request the supervisor cancelled has stopped (completed, or dropped at the
/// cancellation). rmcp never answers a cancelled request, so this is the only evidence that a
/// cancelled call is no longer running; it clears the call's hard-cancel deadline. It travels
/// only on the private socket and never reaches a client.
pub const NOTIFICATION_CANCEL_ACKNOWLEDGED: &str = "notifications/bulkhead/cancelled";

/// Environment variable the supervisor sets (to [`WORKER_PROTOCOL_VERSION`]) when it launches a
/// worker. A worker started without it refuses to run.
pub const ENV_WORKER_PROTOCOL: &str = "BULKHEAD_WORKER_PROTOCOL";

/// The descriptor on which a worker finds its end of the private socket pair.
pub const WORKER_SOCKET_FD: i32 = 3;

/// Exit code of a worker that was not launched by a supervisor (no protocol variable, or no
/// socket on [`WORKER_SOCKET_FD`]).
pub const EXIT_NOT_SUPERVISED: i32 = 78;

/// `_meta` key of a forwarded `broker_login` in which the supervisor passes a credential it
/// resolved from a `credential_ref` for the caller's principal: `{"api_key": …, "api_secret":
/// …}`. It only ever travels over the worker's private socket; the supervisor strips any
/// `io.bulkhead/` key a client sends.
pub const META_RESOLVED_CREDENTIAL: &str = "io.bulkhead/resolvedCredential";

/// Prefix of the `_meta` keys that belong to Bulkhead itself.
pub const META_PREFIX: &str = "io.bulkhead/";

/// Exit code of a worker whose handshake failed (wrong version, malformed or missing hello).
pub const EXIT_HANDSHAKE_FAILED: i32 = 79;

/// MCP protocol versions Bulkhead serves to clients, newest first. 2026-07-28 uses per-request
/// metadata and `server/discover`; the others use the `initialize` handshake.
pub const SUPPORTED_PROTOCOL_VERSIONS: [&str; 4] =
    ["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26"];

/// The first protocol version without the `initialize` handshake.
pub const PROTOCOL_NO_INITIALIZE: &str = "2026-07-28";

/// Newest protocol version that still has the `initialize` handshake; the answer to an
/// `initialize` naming a version Bulkhead does not know.
pub const NEWEST_INITIALIZE_VERSION: &str = "2025-11-25";

pub use era::{Era, is_supported_protocol_version};
