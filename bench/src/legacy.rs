//! A small blocking client for the 2025-11-25 Streamable HTTP lifecycle, the one every Node
//! gateway speaks: `initialize` (the server names the session in `Mcp-Session-Id`),
//! `notifications/initialized`, requests carrying the header, `DELETE` to end the session.
//! Replies may come as JSON or as a request-scoped SSE stream (supergateway answers every
//! request with one); both are read whole, so the connection stays usable.
//!
//! The same client drives Bulkhead and supergateway in the wrapped-server measurements, so
//! neither gets a cheaper protocol path than the other.

use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};

use serde_json::{Value, json};

use crate::rpc::tool_result;

/// The legacy version the client asks for.
const PROTOCOL_VERSION: &str = "2025-11-25";

/// One keep-alive connection to `/mcp`.
pub struct LegacyClient {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    host: String,
    next_id: u64,
}

/// One response: status, the session header if any, the body.
struct Response {
    status: u16,
    session: Option<String>,
    body: Vec<u8>,
    event_stream: bool,
}

impl LegacyClient {
    pub fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(Self {
            reader: BufReader::with_capacity(64 * 1024, stream.try_clone()?),
            writer: stream,
            host: addr.to_string(),
            next_id: 1,
        })
    }

    /// `initialize` then `notifications/initialized`; the new session's id.
    pub fn open(&mut self) -> io::Result<String> {
        let params = json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "bulkhead-bench", "version": env!("CARGO_PKG_VERSION")},
        });
        let initialize = self.request("initialize", params);
        let response = self.send("POST", None, Some(initialize))?;
        let session = response.session.clone().ok_or_else(|| {
            io::Error::other(format!(
                "initialize: HTTP {} without Mcp-Session-Id: {}",
                response.status,
                String::from_utf8_lossy(&response.body)
            ))
        })?;
        reply_of(&response)?;
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let accepted = self.send("POST", Some(&session), Some(initialized))?;
        if !(200..300).contains(&accepted.status) {
            return Err(io::Error::other(format!(
                "notifications/initialized: HTTP {}",
                accepted.status
            )));
        }
        Ok(session)
    }

    /// Call a tool in `session`; its `result`.
    pub fn tool(&mut self, session: &str, name: &str, arguments: Value) -> io::Result<Value> {
        let request = self.request("tools/call", json!({"name": name, "arguments": arguments}));
        let response = self.send("POST", Some(session), Some(request))?;
        tool_result(reply_of(&response)?)
    }

    /// End `session` (`DELETE`).
    pub fn close(&mut self, session: &str) -> io::Result<()> {
        let response = self.send("DELETE", Some(session), None)?;
        if (200..300).contains(&response.status) {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "DELETE: HTTP {}",
                response.status
            )))
        }
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
    }

    fn send(
        &mut self,
        method: &str,
        session: Option<&str>,
        body: Option<Value>,
    ) -> io::Result<Response> {
        let body = match body {
            Some(body) => serde_json::to_vec(&body)?,
            None => Vec::new(),
        };
        let mut request = Vec::with_capacity(512 + body.len());
        write!(
            request,
            "{method} /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        )?;
        if let Some(session) = session {
            write!(
                request,
                "Mcp-Session-Id: {session}\r\nMCP-Protocol-Version: {PROTOCOL_VERSION}\r\n"
            )?;
        }
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(&body);
        self.writer.write_all(&request)?;
        self.read_response()
    }

    fn read_response(&mut self) -> io::Result<Response> {
        let mut line = String::new();
        self.read_line(&mut line)?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
        let (mut length, mut chunked, mut session, mut event_stream) = (None, false, None, false);
        loop {
            line.clear();
            self.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse::<usize>().ok(),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "mcp-session-id" => session = Some(value.to_string()),
                "content-type" => event_stream = value.starts_with("text/event-stream"),
                _ => {}
            }
        }
        let body = if chunked {
            self.read_chunked()?
        } else {
            let mut body = vec![0; length.unwrap_or(0)];
            self.reader.read_exact(&mut body)?;
            body
        };
        Ok(Response {
            status,
            session,
            body,
            event_stream,
        })
    }

    fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        crate::http::read_chunked(&mut self.reader)
    }

    fn read_line(&mut self, line: &mut String) -> io::Result<()> {
        crate::http::read_line(&mut self.reader, line)
    }
}

/// The JSON-RPC response in a body: the body itself, or the last `data:` message of an event
/// stream that carries an `id` (progress and log notifications come before it).
fn reply_of(response: &Response) -> io::Result<Value> {
    let text = String::from_utf8_lossy(&response.body);
    let parsed = if response.event_stream {
        text.lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
            .rfind(|message| message.get("id").is_some())
    } else {
        serde_json::from_str(&text).ok()
    };
    parsed.ok_or_else(|| {
        io::Error::other(format!(
            "HTTP {}: no JSON-RPC response in {text:?}",
            response.status
        ))
    })
}
