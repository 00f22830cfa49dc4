//! Names the supervisor, its workers and its clients share on the wire: Bulkhead's session
//! tools and their `session` argument, and the `_meta` keys of MCP's 2026-07-28 envelope.
//!
//! Each is spelled once, here: the front door routes by them, the catalog lists them, the
//! external worker mode refuses a wrapped server that collides with them, and the bridge adds
//! or removes the envelope by them.

/// The tool that opens a new session and returns its handle.
pub const SESSION_OPEN: &str = "session_open";
/// The tool that closes a session.
pub const SESSION_CLOSE: &str = "session_close";
/// The tool that describes a session (the built-in worker adds its broker state).
pub const SESSION_INFO: &str = "session_info";
/// Every tool the supervisor implements itself, in the order the catalog documents them.
pub const SESSION_TOOLS: [&str; 3] = [SESSION_OPEN, SESSION_CLOSE, SESSION_INFO];

/// The argument that routes a call to a session, on every tool.
pub const SESSION_ARGUMENT: &str = "session";
/// The `x-mcp-header` name of [`SESSION_ARGUMENT`]: 2026-07-28 HTTP clients mirror it into the
/// `Mcp-Param-Session` header.
pub const SESSION_HEADER: &str = "Session";

/// `_meta` namespace of the 2026-07-28 per-request envelope.
pub const ENVELOPE_PREFIX: &str = "io.modelcontextprotocol/";
/// The protocol version a 2026-07-28 request names.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// The client capabilities a 2026-07-28 request declares.
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// The client's name and version, in a 2026-07-28 request.
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// The server's name and version, in a `server/discover` result.
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
/// The subscription a `notifications/subscriptions/acknowledged` answers.
pub const META_SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
