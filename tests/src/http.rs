//! HTTP side of the harness: start `bulkhead serve`, and a deliberately small HTTP/1.1 client
//! over raw TCP, so tests control every header and byte (slow headers, oversized bodies, bad
//! origins) and can read SSE and chunked bodies.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::binary;

/// A running `bulkhead serve`; its [`Endpoint`] methods talk to it.
pub struct TestServer {
    pub child: Child,
    endpoint: Endpoint,
    log: Arc<Mutex<String>>,
}

/// An HTTP address to send requests to: a `bulkhead serve`, or a load balancer in front of
/// several.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub addr: SocketAddr,
}

impl std::ops::Deref for TestServer {
    type Target = Endpoint;

    fn deref(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl TestServer {
    /// Start `bulkhead serve --http 127.0.0.1:0 <args>` and wait until it listens.
    pub fn start(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_on("127.0.0.1:0", args, env)
    }

    /// Start `bulkhead serve --http <listen> <args>`: for a server whose URL must be known
    /// before it starts (an OAuth `--public-url`), or one on `0.0.0.0:0`, which the harness
    /// reaches through the unspecified address (allow that Host with `--allow-host 0.0.0.0`).
    pub fn start_on(listen: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_program(&binary("bulkhead"), listen, args, env)
    }

    /// Start `program serve --http <listen> <args>`: a copy of the supervisor binary the test
    /// may replace.
    pub fn start_program(
        program: &std::path::Path,
        listen: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        #[allow(
            clippy::disallowed_methods,
            reason = "the harness launches the binary under test"
        )]
        let mut command = std::process::Command::new(program);
        command
            .arg("serve")
            .args(["--http", listen])
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = crate::spawn_retrying(&mut command).expect("spawn bulkhead serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let writer = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                // The address ends where `/mcp` starts, in every log format.
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_digit() || ".:[]".contains(*c))
                        .collect();
                    let _ = addr_tx.send(addr);
                }
                let mut log = writer.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let Ok(addr) = addr_rx.recv_timeout(Duration::from_secs(20)) else {
            // Never leave an orphan server behind a failed start.
            let _ = child.kill();
            let _ = child.wait();
            panic!("bulkhead serve did not start: {}", log.lock().unwrap());
        };
        let server = Self {
            child,
            endpoint: Endpoint {
                addr: addr.parse().expect("listen address"),
            },
            log,
        };
        assert!(
            crate::eventually(Duration::from_secs(10), || server.get("/readyz").status
                == 200),
            "never became ready"
        );
        server
    }

    pub fn stderr(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Endpoint {
    /// Send raw request bytes and read one response.
    pub fn raw(&self, request: &[u8]) -> HttpResponse {
        send(self.addr, request)
    }

    /// A request with the given method, path, headers and body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        self.raw(&bytes)
    }

    pub fn get(&self, path: &str) -> HttpResponse {
        self.request("GET", path, &[], b"")
    }

    /// POST a JSON-RPC message to /mcp with extra headers.
    pub fn post(&self, headers: &[(&str, &str)], message: &Value) -> HttpResponse {
        let mut all = vec![
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ];
        all.extend_from_slice(headers);
        self.request("POST", "/mcp", &all, &serde_json::to_vec(message).unwrap())
    }

    /// A 2026-07-28 request with the headers that mirror its body.
    pub fn modern(
        &self,
        token: Option<&str>,
        id: u64,
        method: &str,
        mut params: Value,
    ) -> HttpResponse {
        params["_meta"] = crate::modern_meta();
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string);
        let session = params["arguments"]
            .get("session")
            .and_then(Value::as_str)
            .map(str::to_string);
        let auth = token.map(|token| format!("Bearer {token}"));
        let mut headers = vec![
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", method),
        ];
        if let Some(name) = &name {
            headers.push(("Mcp-Name", name));
        }
        if let Some(session) = &session {
            headers.push(("Mcp-Param-Session", session));
        }
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth));
        }
        self.post(
            &headers,
            &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        )
    }
}

impl Endpoint {
    /// Open a session with a 2026-07-28 `session_open` and return its handle.
    pub fn open_session(&self, token: Option<&str>) -> String {
        let opened = self.modern(
            token,
            0,
            "tools/call",
            json!({"name": "session_open", "arguments": {}}),
        );
        opened.json()["result"]["structuredContent"]["session"]
            .as_str()
            .unwrap_or_else(|| panic!("session_open failed: {}", opened.text()))
            .to_string()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP response, body decoded from chunked encoding if needed.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, or the last `data:` event of an SSE body.
    pub fn json(&self) -> Value {
        if self
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream"))
        {
            return self.events().pop().unwrap_or(Value::Null);
        }
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.text()))
    }

    /// Every `data:` event of an SSE body.
    pub fn events(&self) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .map(|data| serde_json::from_str(data).expect("SSE data is JSON"))
            .collect()
    }
}

/// Send raw request bytes to `addr` and read one response.
pub fn send(addr: SocketAddr, request: &[u8]) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request).expect("send request");
    read_response(&mut BufReader::new(stream))
}

/// A loopback address no one listens on right now, for a server that must be told its own URL
/// before it starts.
pub fn free_loopback_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
}

/// Read one response from `reader` (a keep-alive connection stays usable).
pub fn read_response(reader: &mut impl BufRead) -> HttpResponse {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header line");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(key, _): &&(String, String)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
    };
    let mut body = Vec::new();
    if find("transfer-encoding").is_some_and(|value| value.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            if reader.read_line(&mut size).unwrap_or(0) == 0 {
                break;
            }
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if size == 0 {
                break;
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).expect("chunk");
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) =
        find("content-length").and_then(|value| value.parse::<usize>().ok())
    {
        body.resize(length, 0);
        reader.read_exact(&mut body).expect("body");
    } else {
        let _ = reader.read_to_end(&mut body);
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

/// Open a connection, send only part of a request's headers, and report whether the server
/// closed it within `within`.
pub fn closed_while_sending_headers_slowly(addr: SocketAddr, within: Duration) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return true;
    };
    let _ = stream.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + within;
    let mut buffer = [0u8; 256];
    while Instant::now() < deadline {
        let _ = stream.write_all(b"X-Slow: 1\r\n");
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(error)
                if error.kind() == std::io::ErrorKind::WouldBlock
                    || error.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}
