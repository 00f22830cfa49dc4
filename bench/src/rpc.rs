//! A blocking JSON-RPC client over newline-delimited JSON, for the supervisor's stdio and a
//! worker's private socket alike.
//!
//! Blocking I/O on purpose: the bench measures the server, so the client side of a call is one
//! `write` and one `read` with nothing scheduled in between. Every measured path (direct,
//! stdio, HTTP) pays the same client cost: one request serialized, one reply parsed.

use std::io::{self, BufRead, BufReader, Read, Write};

use serde_json::{Value, json};

/// One JSON-RPC conversation over a byte stream.
pub struct LineClient<R: Read, W: Write> {
    reader: BufReader<R>,
    writer: W,
    next_id: u64,
    line: String,
}

impl<R: Read, W: Write> LineClient<R, W> {
    pub fn new(reader: R, writer: W) -> Self {
        Self {
            reader: BufReader::with_capacity(64 * 1024, reader),
            writer,
            next_id: 1,
            line: String::new(),
        }
    }

    /// Send a request and wait for its response (the whole message; notifications and
    /// other messages before it are skipped).
    pub fn request(&mut self, method: &str, params: Value) -> io::Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        loop {
            let message = self.read_message()?;
            if message.get("method").is_none()
                && message.get("id").and_then(Value::as_u64) == Some(id)
            {
                return Ok(message);
            }
        }
    }

    /// Call a tool and return its `result`; a JSON-RPC error or a tool error is an `Err`.
    pub fn tool(&mut self, name: &str, arguments: Value) -> io::Result<Value> {
        let reply = self.request("tools/call", json!({"name": name, "arguments": arguments}))?;
        tool_result(reply)
    }

    pub fn notify(&mut self, method: &str) -> io::Result<()> {
        self.send(&json!({"jsonrpc": "2.0", "method": method}))
    }

    /// Write one message and return at once (for the handshake's first line).
    pub fn send(&mut self, message: &Value) -> io::Result<()> {
        let mut frame = serde_json::to_vec(message)?;
        frame.push(b'\n');
        self.writer.write_all(&frame)?;
        self.writer.flush()
    }

    /// Read the next line as JSON.
    pub fn read_message(&mut self) -> io::Result<Value> {
        self.line.clear();
        if self.reader.read_line(&mut self.line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed the stream",
            ));
        }
        Ok(serde_json::from_str(&self.line)?)
    }

    /// Give up the writing side (closing stdin ends a stdio supervisor).
    pub fn into_parts(self) -> (BufReader<R>, W) {
        (self.reader, self.writer)
    }
}

/// The `result` of a tool call reply, or an error naming what went wrong.
pub fn tool_result(mut reply: Value) -> io::Result<Value> {
    if let Some(error) = reply.get("error") {
        let message = error["message"].as_str().unwrap_or("unknown error");
        return Err(io::Error::other(format!(
            "JSON-RPC error {}: {message}",
            error["code"]
        )));
    }
    let result = reply
        .get_mut("result")
        .map(Value::take)
        .unwrap_or(Value::Null);
    if result["isError"] == true {
        return Err(io::Error::other(format!(
            "tool error: {}",
            result["content"]
        )));
    }
    Ok(result)
}

/// The handle and worker pid in a `session_open` result.
pub fn opened_session(result: &Value) -> io::Result<(String, u32)> {
    let structured = &result["structuredContent"];
    let handle = structured["session"].as_str();
    let pid = structured["pid"]
        .as_u64()
        .and_then(|pid| u32::try_from(pid).ok());
    match (handle, pid) {
        (Some(handle), Some(pid)) => Ok((handle.to_string(), pid)),
        _ => Err(io::Error::other(format!(
            "unexpected session_open result: {result}"
        ))),
    }
}
