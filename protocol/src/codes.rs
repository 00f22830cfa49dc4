//! JSON-RPC error codes a client can see, with the reason each exists.
//!
//! The standard codes come from JSON-RPC 2.0 and MCP; Bulkhead's own codes sit in
//! `-32040..=-32059`, clear of both the MCP-reserved `-32020..=-32029` range and rmcp's
//! resource codes. They are part of the product's interface: never renumber one.

/// The line was not valid JSON (or nested deeper than the parser allows).
pub const PARSE_ERROR: i64 = -32700;
/// Valid JSON that is not a JSON-RPC 2.0 request, notification or response; also an oversized
/// frame, since it was never read as JSON.
pub const INVALID_REQUEST: i64 = -32600;
/// The method does not exist, or is not available before the lifecycle allows it.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Parameters of the wrong shape or type, including missing required request metadata.
pub const INVALID_PARAMS: i64 = -32602;
/// A fault inside Bulkhead that is not the caller's doing.
pub const INTERNAL_ERROR: i64 = -32603;
/// MCP: an HTTP header disagrees with the body it describes.
pub const HEADER_MISMATCH: i64 = -32020;
/// MCP: the request needs a client capability its `_meta` does not declare.
pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
/// MCP: the request names a protocol version the server does not serve.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// The `session` handle is unknown: never minted here, closed, expired, or bound to another
/// principal. These cases deliberately share one code and one message.
pub const SESSION_NOT_FOUND: i64 = -32040;
/// The session's worker died; the handle's state is gone and it is never silently replaced.
pub const SESSION_LOST: i64 = -32041;
/// The session's worker died while this request was in flight.
pub const WORKER_DIED: i64 = -32042;
/// The per-call deadline passed; the request was cancelled in the worker.
pub const DEADLINE_EXCEEDED: i64 = -32043;
/// A session limit (total or per principal) is reached.
pub const SESSION_LIMIT: i64 = -32044;
/// The session already has as many requests in flight as it may.
pub const TOO_MANY_IN_FLIGHT: i64 = -32045;
/// A worker could not be started or did not complete its handshake.
pub const WORKER_UNAVAILABLE: i64 = -32046;
/// The supervisor is shutting down and takes no new work.
pub const SHUTTING_DOWN: i64 = -32047;
/// This node is draining (before a restart): it serves its existing sessions but opens no new
/// one. Nothing was done, so the request may be retried anywhere (HTTP `503` + `Retry-After`).
pub const NODE_DRAINING: i64 = -32048;
/// The supervisor is upgrading in place (SIGHUP) and takes no request for a moment: nothing was
/// done, and every session survives, so retry the same request on the same session shortly
/// (HTTP `503` + `Retry-After`).
pub const RELOADING: i64 = -32049;
