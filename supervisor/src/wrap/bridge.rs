//! Protocol bridging between the client's era and the wrapped server's.
//!
//! The built-in worker (rmcp) answers each request in the era that request names. A wrapped
//! server may not: many speak only the `initialize` lifecycle, a 2026-07-28-only server
//! rejects `initialize` and wants every request to carry its `_meta` envelope, and some lock
//! a connection to the era of its first message. So each wrapped connection is put in one era
//! at start ([`connect`]), and every request and reply is translated to and from it:
//!
//! - **Detection.** The supervisor sends `initialize` (every server of the older lifecycle
//!   answers it, and a 2026-07-28-only server must answer an unknown or removed method with an
//!   error, never silence). Success: the [`Era::Initialize`] era, and
//!   `notifications/initialized` follows. An error: the supervisor sends `server/discover`
//!   with the 2026-07-28 envelope; a result listing 2026-07-28 gives the [`Era::Inline`]
//!   era. The first detection is remembered for every later process of the same server.
//! - **Initialize era.** Outgoing requests lose the `io.modelcontextprotocol/*` envelope keys
//!   (such servers may refuse them). Replies to requests that came in the 2026-07-28 era gain
//!   `resultType: "complete"` and, for list methods, `ttlMs: 0` and `cacheScope: "private"`
//!   when the server left them out (each session has its own server, so nothing is shareable).
//! - **Inline era.** Outgoing requests without an envelope (from legacy clients, and the
//!   supervisor's own) gain one: protocol version, empty client capabilities, Bulkhead's client
//!   info. A reply to such a request that asks for more client input (`resultType` other than
//!   `complete`) becomes an error, since a legacy client cannot answer it.

use bulkhead_protocol::frame::{Frame, LineReader};
use bulkhead_protocol::jsonrpc::{self, Message};
use bulkhead_protocol::names::{
    ENVELOPE_PREFIX, META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_PROTOCOL_VERSION,
    META_SERVER_INFO,
};
use bulkhead_protocol::{Era, NEWEST_INITIALIZE_VERSION, PROTOCOL_NO_INITIALIZE, codes};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// Results that list things, which carry cache hints in 2026-07-28.
const LIST_METHODS: [&str; 4] = [
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
];

/// What start-up learned about a server.
#[derive(Debug, Clone)]
pub struct Detected {
    /// The era the server's connections speak.
    pub era: Era,
    /// The `initialize` result (for an inline server, made from its `server/discover`): the
    /// catalog reads the server's capabilities from it.
    pub initialize_result: Value,
}

/// How to fix a reply on its way back.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplyFix {
    /// The request was in the 2026-07-28 era and the server in the `initialize` era.
    add_complete: bool,
    /// ... and the method lists things.
    add_cache_hints: bool,
    /// The request was legacy and the server inline.
    refuse_incomplete: bool,
}

/// Put a freshly started server in its era. `known` is what an earlier start detected.
pub async fn connect<R, W>(
    reader: &mut LineReader<R>,
    writer: &mut W,
    known: Option<&Detected>,
) -> Result<Detected, String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match known {
        Some(detected) if detected.era == Era::Inline => return Ok(detected.clone()),
        Some(_) => {
            let result = initialize(reader, writer).await?;
            return result.map_err(|error| format!("initialize failed: {error}"));
        }
        None => {}
    }
    let initialize_error = match initialize(reader, writer).await? {
        Ok(detected) => return Ok(detected),
        Err(error) => error,
    };
    let params = json!({"_meta": envelope()});
    let discovered = exchange(
        reader,
        writer,
        "bulkhead-discover",
        "server/discover",
        Some(params),
    )
    .await?
    .map_err(|error| {
        format!("initialize failed ({initialize_error}) and so did server/discover ({error})")
    })?;
    let speaks_inline = discovered["supportedVersions"]
        .as_array()
        .is_some_and(|versions| {
            versions
                .iter()
                .any(|version| version == PROTOCOL_NO_INITIALIZE)
        });
    if !speaks_inline {
        return Err(format!(
            "initialize failed ({initialize_error}) and server/discover lists no protocol version Bulkhead speaks ({})",
            discovered["supportedVersions"]
        ));
    }
    Ok(Detected {
        era: Era::Inline,
        initialize_result: json!({
            "protocolVersion": NEWEST_INITIALIZE_VERSION,
            "capabilities": discovered.get("capabilities").cloned().unwrap_or_else(|| json!({})),
            "serverInfo": discovered["_meta"][META_SERVER_INFO].clone(),
            "instructions": discovered.get("instructions").cloned().unwrap_or(Value::Null),
        }),
    })
}

/// `initialize` then `notifications/initialized`. The outer error is a broken connection; the
/// inner one the server's refusal.
async fn initialize<R, W>(
    reader: &mut LineReader<R>,
    writer: &mut W,
) -> Result<Result<Detected, String>, String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let params = json!({
        "protocolVersion": NEWEST_INITIALIZE_VERSION,
        "capabilities": {},
        "clientInfo": client_info(),
    });
    let result = match exchange(
        reader,
        writer,
        "bulkhead-initialize",
        "initialize",
        Some(params),
    )
    .await?
    {
        Ok(result) => result,
        Err(error) => return Ok(Err(error)),
    };
    let initialized = jsonrpc::notification("notifications/initialized", None);
    send(writer, &initialized).await?;
    Ok(Ok(Detected {
        era: Era::Initialize,
        initialize_result: result,
    }))
}

/// Send one request and wait for its answer: `Ok(result)` or `Err(error text)`. Server
/// requests meanwhile are refused, notifications and lines that are not JSON-RPC are skipped
/// (some servers print a banner).
async fn exchange<R, W>(
    reader: &mut LineReader<R>,
    writer: &mut W,
    id: &str,
    method: &str,
    params: Option<Value>,
) -> Result<Result<Value, String>, String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let id = json!(id);
    send(writer, &jsonrpc::request(&id, method, params)).await?;
    loop {
        let line = match reader.next_frame().await {
            Ok(Some(Frame::Line(line))) => line,
            Ok(Some(Frame::Oversized { .. })) => {
                return Err("oversized frame during start-up".into());
            }
            Ok(None) => return Err("the server closed its stdout".into()),
            Err(error) => return Err(format!("socket error: {error}")),
        };
        match jsonrpc::parse_message(&line) {
            Ok(Message::Response {
                id: answered,
                result,
            }) if answered == id => {
                return Ok(Ok(result));
            }
            Ok(Message::Error {
                id: answered,
                error,
            }) if answered == id => {
                return Ok(Err(error.to_string()));
            }
            Ok(Message::Request {
                id: request,
                method,
                ..
            }) => {
                let refusal = jsonrpc::error_response(
                    &request,
                    codes::METHOD_NOT_FOUND,
                    &format!("{method}: the client is not connected yet"),
                    None,
                );
                send(writer, &refusal).await?;
            }
            Ok(_) => {}
            Err(error) => tracing::debug!("skipping a start-up line that is not JSON-RPC: {error}"),
        }
    }
}

async fn send<W: AsyncWrite + Unpin>(writer: &mut W, message: &Value) -> Result<(), String> {
    writer
        .write_all(&jsonrpc::to_frame(message))
        .await
        .map_err(|error| format!("socket error: {error}"))
}

fn client_info() -> Value {
    json!({"name": "bulkhead", "version": env!("CARGO_PKG_VERSION")})
}

/// The 2026-07-28 envelope Bulkhead adds for a request that has none.
fn envelope() -> Map<String, Value> {
    let mut meta = Map::new();
    meta.insert(META_PROTOCOL_VERSION.into(), json!(PROTOCOL_NO_INITIALIZE));
    meta.insert(META_CLIENT_CAPABILITIES.into(), json!({}));
    meta.insert(META_CLIENT_INFO.into(), client_info());
    meta
}

/// Translate a request's params for a server in `era`; returns them and how to fix the reply.
pub fn outbound(era: Era, method: &str, params: Option<Value>) -> (Option<Value>, ReplyFix) {
    let mut params = match params {
        Some(Value::Object(params)) => params,
        None => Map::new(),
        Some(other) => return (Some(other), ReplyFix::default()),
    };
    let inline_request = params
        .get("_meta")
        .and_then(|meta| meta.get(META_PROTOCOL_VERSION))
        .and_then(Value::as_str)
        .is_some_and(|version| Era::of_version(version).is_inline());
    let mut fix = ReplyFix::default();
    match era {
        Era::Initialize => {
            if let Some(Value::Object(meta)) = params.get_mut("_meta") {
                meta.retain(|key, _| !key.starts_with(ENVELOPE_PREFIX));
                if meta.is_empty() {
                    params.remove("_meta");
                }
            }
            fix.add_complete = inline_request;
            fix.add_cache_hints = inline_request && LIST_METHODS.contains(&method);
        }
        Era::Inline if !inline_request => {
            let meta = params.entry("_meta").or_insert_with(|| json!({}));
            if !meta.is_object() {
                *meta = json!({});
            }
            if let Some(meta) = meta.as_object_mut() {
                for (key, value) in envelope() {
                    meta.insert(key, value);
                }
            }
            fix.refuse_incomplete = true;
        }
        Era::Inline => {}
    }
    let params = (!params.is_empty()).then_some(Value::Object(params));
    (params, fix)
}

/// Fix a reply (a whole JSON-RPC response) on its way back.
pub fn inbound(fix: ReplyFix, reply: &mut Value) {
    let Some(result) = reply.get_mut("result").and_then(Value::as_object_mut) else {
        return;
    };
    if fix.add_complete {
        result
            .entry("resultType")
            .or_insert_with(|| json!("complete"));
    }
    if fix.add_cache_hints {
        result.entry("ttlMs").or_insert_with(|| json!(0));
        result
            .entry("cacheScope")
            .or_insert_with(|| json!("private"));
    }
    if fix.refuse_incomplete
        && let Some(kind) = result.get("resultType").and_then(Value::as_str)
        && kind != "complete"
    {
        let message = format!(
            "the wrapped server answered with resultType {kind:?}: it needs more input from the client, which a client of the initialize lifecycle cannot give through Bulkhead; use protocol 2026-07-28"
        );
        let id = reply.get("id").cloned().unwrap_or(Value::Null);
        *reply = jsonrpc::error_response(&id, codes::INTERNAL_ERROR, &message, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modern(params: Value) -> Value {
        let mut params = params;
        params["_meta"] = json!({
            META_PROTOCOL_VERSION: "2026-07-28",
            META_CLIENT_CAPABILITIES: {},
            "progressToken": 7,
        });
        params
    }

    #[test]
    fn an_initialize_era_server_gets_no_envelope_and_modern_replies_are_completed() {
        let (params, fix) = outbound(Era::Initialize, "tools/list", Some(modern(json!({}))));
        assert_eq!(params, Some(json!({"_meta": {"progressToken": 7}})));
        let mut reply = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": []}});
        inbound(fix, &mut reply);
        assert_eq!(reply["result"]["resultType"], "complete");
        assert_eq!(reply["result"]["ttlMs"], 0);
        assert_eq!(reply["result"]["cacheScope"], "private");

        let (params, fix) = outbound(Era::Initialize, "tools/call", Some(json!({"name": "x"})));
        assert_eq!(params, Some(json!({"name": "x"})));
        let mut reply = json!({"jsonrpc": "2.0", "id": 1, "result": {"content": []}});
        inbound(fix, &mut reply);
        assert!(
            reply["result"].get("resultType").is_none(),
            "legacy replies untouched"
        );
    }

    #[test]
    fn an_inline_server_gets_an_envelope_on_legacy_requests_only() {
        let (params, fix) = outbound(Era::Inline, "tools/call", Some(json!({"name": "x"})));
        let params = params.unwrap();
        assert_eq!(params["_meta"][META_PROTOCOL_VERSION], "2026-07-28");
        assert!(params["_meta"][META_CLIENT_CAPABILITIES].is_object());
        assert_eq!(params["_meta"][META_CLIENT_INFO]["name"], "bulkhead");
        let (params, _) = outbound(Era::Inline, "tools/list", None);
        assert_eq!(
            params.unwrap()["_meta"][META_PROTOCOL_VERSION],
            "2026-07-28"
        );

        let mut reply =
            json!({"jsonrpc": "2.0", "id": 3, "result": {"resultType": "input_required"}});
        inbound(fix, &mut reply);
        assert_eq!(reply["error"]["code"], codes::INTERNAL_ERROR);
        assert_eq!(reply["id"], 3);

        let original = modern(json!({"name": "x"}));
        let (params, fix) = outbound(Era::Inline, "tools/call", Some(original.clone()));
        assert_eq!(params, Some(original), "a modern request passes unchanged");
        let mut reply =
            json!({"jsonrpc": "2.0", "id": 3, "result": {"resultType": "input_required"}});
        inbound(fix, &mut reply);
        assert!(reply.get("result").is_some());
    }

    #[test]
    fn a_connection_is_put_in_the_era_the_server_speaks() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            // A 2026-07-28-only server: refuses initialize, answers server/discover.
            let (ours, theirs) = tokio::net::UnixStream::pair().unwrap();
            let server = tokio::spawn(fake_server(theirs, false));
            let (read, mut write) = ours.into_split();
            let mut reader = LineReader::new(read, 1 << 20);
            let detected = connect(&mut reader, &mut write, None).await.unwrap();
            assert_eq!(detected.era, Era::Inline);
            assert_eq!(detected.initialize_result["serverInfo"]["name"], "fake");
            assert_eq!(
                detected.initialize_result["capabilities"]["tools"],
                json!({})
            );
            drop(write);
            server.await.unwrap();

            // An initialize-era server.
            let (ours, theirs) = tokio::net::UnixStream::pair().unwrap();
            let server = tokio::spawn(fake_server(theirs, true));
            let (read, mut write) = ours.into_split();
            let mut reader = LineReader::new(read, 1 << 20);
            let detected = connect(&mut reader, &mut write, None).await.unwrap();
            assert_eq!(detected.era, Era::Initialize);
            drop(write);
            server.await.unwrap();
        });
    }

    /// Answers like a server of one era; prints a banner line first.
    async fn fake_server(socket: tokio::net::UnixStream, legacy: bool) {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let (read, mut write) = socket.into_split();
        write.write_all(b"starting fake server\n").await.unwrap();
        let mut lines = BufReader::new(read).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let message: Value = serde_json::from_str(&line).unwrap();
            let Some(id) = message.get("id").cloned() else {
                continue;
            };
            let reply = match (message["method"].as_str(), legacy) {
                (Some("initialize"), true) => jsonrpc::response(
                    &id,
                    json!({"protocolVersion": "2025-11-25", "capabilities": {}, "serverInfo": {"name": "fake"}}),
                ),
                (Some("server/discover"), false) => jsonrpc::response(
                    &id,
                    json!({"resultType": "complete", "supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}}, "_meta": {META_SERVER_INFO: {"name": "fake"}}}),
                ),
                _ => jsonrpc::error_response(&id, codes::METHOD_NOT_FOUND, "nope", None),
            };
            write.write_all(&jsonrpc::to_frame(&reply)).await.unwrap();
        }
    }
}
