//! A small blocking HTTP/1.1 client for `bulkhead serve` on loopback: one keep-alive
//! connection, MCP 2026-07-28 requests with the headers that era requires.
//!
//! Hand-written rather than a client library so a measured call is exactly one `write` of the
//! request and the reads of one response (`Content-Length` or chunked), with `TCP_NODELAY` so
//! no Nagle delay sits in the figures.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{Value, json};

use crate::rpc::tool_result;

/// The version the bench speaks over HTTP: per-request metadata, no `initialize`.
const PROTOCOL_VERSION: &str = "2026-07-28";

/// One keep-alive connection to `/mcp`.
pub struct HttpClient {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    host: String,
    next_id: u64,
    request: Vec<u8>,
    /// `Authorization: Bearer …` on every request, when the server wants tokens.
    bearer: Option<String>,
}

impl HttpClient {
    pub fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(Self {
            reader: BufReader::with_capacity(64 * 1024, stream.try_clone()?),
            writer: stream,
            host: addr.to_string(),
            next_id: 1,
            request: Vec::with_capacity(4096),
            bearer: None,
        })
    }

    /// Send `token` as a bearer token with every request.
    pub fn with_bearer(mut self, token: &str) -> Self {
        self.bearer = Some(token.to_string());
        self
    }

    /// Give up on a read or write that waits longer than `timeout`.
    pub fn set_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.writer.set_read_timeout(Some(timeout))?;
        self.writer.set_write_timeout(Some(timeout))
    }

    /// `GET path` → status.
    pub fn get(&mut self, path: &str) -> io::Result<u16> {
        self.request.clear();
        write!(
            self.request,
            "GET {path} HTTP/1.1\r\nHost: {}\r\n",
            self.host
        )?;
        self.write_bearer()?;
        self.request.extend_from_slice(b"\r\n");
        self.writer.write_all(&self.request)?;
        Ok(self.read_response()?.0)
    }

    /// Call a tool, in `session` when given (as the argument and its mirroring header), and
    /// return its `result`; any error is an `Err`.
    pub fn tool(
        &mut self,
        name: &str,
        arguments: Value,
        session: Option<&str>,
    ) -> io::Result<Value> {
        tool_result(self.tool_reply(name, arguments, session)?)
    }

    /// Call a tool and return the whole JSON-RPC reply, error or not.
    pub fn tool_reply(
        &mut self,
        name: &str,
        mut arguments: Value,
        session: Option<&str>,
    ) -> io::Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        if let Some(session) = session {
            arguments["session"] = json!(session);
        }
        let body = serde_json::to_vec(&json!({
            "jsonrpc": "2.0",
            "id": id,
            "method": "tools/call",
            "params": {
                "name": name,
                "arguments": arguments,
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": PROTOCOL_VERSION,
                    "io.modelcontextprotocol/clientCapabilities": {},
                },
            },
        }))?;
        self.request.clear();
        write!(
            self.request,
            "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: {PROTOCOL_VERSION}\r\n\
             Mcp-Method: tools/call\r\nMcp-Name: {name}\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        )?;
        if let Some(session) = session {
            write!(self.request, "Mcp-Param-Session: {session}\r\n")?;
        }
        self.write_bearer()?;
        self.request.extend_from_slice(b"\r\n");
        self.request.extend_from_slice(&body);
        self.writer.write_all(&self.request)?;
        let (status, body) = self.read_response()?;
        serde_json::from_slice(&body).map_err(|error| {
            io::Error::other(format!(
                "HTTP {status}: unparsable body ({error}): {}",
                String::from_utf8_lossy(&body)
            ))
        })
    }

    fn write_bearer(&mut self) -> io::Result<()> {
        if let Some(token) = &self.bearer {
            write!(self.request, "Authorization: Bearer {token}\r\n")?;
        }
        Ok(())
    }

    /// Read one response: status and body (`Content-Length` or chunked).
    fn read_response(&mut self) -> io::Result<(u16, Vec<u8>)> {
        let mut line = String::new();
        self.read_line(&mut line)?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
        let mut length = None;
        let mut chunked = false;
        loop {
            line.clear();
            self.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse::<usize>().ok();
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.eq_ignore_ascii_case("chunked");
                }
            }
        }
        let body = if chunked {
            self.read_chunked()?
        } else {
            let mut body = vec![0; length.unwrap_or(0)];
            self.reader.read_exact(&mut body)?;
            body
        };
        Ok((status, body))
    }

    fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        read_chunked(&mut self.reader)
    }

    fn read_line(&mut self, line: &mut String) -> io::Result<()> {
        read_line(&mut self.reader, line)
    }
}

/// A chunked body, trailers skipped.
pub fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        read_line(reader, &mut line)?;
        let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|_| io::Error::other(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            // Trailers end with an empty line.
            loop {
                line.clear();
                read_line(reader, &mut line)?;
                if line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        line.clear();
        read_line(reader, &mut line)?;
    }
}

/// One line; the end of the stream is an error (the server closed the connection).
pub fn read_line(reader: &mut impl BufRead, line: &mut String) -> io::Result<()> {
    if reader.read_line(line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the connection",
        ));
    }
    Ok(())
}
