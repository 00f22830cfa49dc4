//! Black-box test harness: starts the real `bulkhead` binary and talks to it the way a host
//! does, one JSON-RPC message per line over stdin/stdout.
//!
//! [`TestSupervisor`] is a small builder around the process; a reader thread collects stdout
//! lines so a test can wait for the response to a given id with a timeout, and stderr is kept
//! for assertions about logs. The `/proc` helpers look at the worker processes themselves.
//! [`alpaca::StandIn`] is a loopback Alpaca served from the paper engine.
//! The binaries must be built first (`cargo build --workspace`); the harness finds them beside
//! the test executable's `deps/` directory.

pub mod alpaca;
pub mod balancer;
pub mod http;
pub mod oauth;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long a test waits for any single response before failing.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(20);

/// Protocol metadata a 2026-07-28 request carries.
pub fn modern_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "bulkhead-tests", "version": "0"},
    })
}

/// Path of a workspace binary (`bulkhead` or `bulkhead-worker`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace` before the tests",
        path.display()
    );
    path
}

/// Builder for a `bulkhead stdio` process.
pub struct TestSupervisor {
    args: Vec<String>,
    env: Vec<(String, String)>,
    program: Option<PathBuf>,
}

impl Default for TestSupervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl TestSupervisor {
    pub fn new() -> Self {
        Self {
            args: vec!["stdio".into()],
            env: vec![("RUST_LOG".into(), "info".into())],
            program: None,
        }
    }

    /// Run this supervisor binary instead of the workspace's (a copy the test may replace).
    pub fn program(mut self, program: PathBuf) -> Self {
        self.program = Some(program);
        self
    }

    /// Add command-line arguments after `stdio`.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Start the process and perform nothing else.
    pub fn spawn(self) -> Running {
        let program = self.program.clone().unwrap_or_else(|| binary("bulkhead"));
        #[allow(
            clippy::disallowed_methods,
            reason = "the harness launches the binary under test"
        )]
        let mut command = std::process::Command::new(program);
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn_retrying(&mut command).expect("spawn bulkhead");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (lines_tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let log = Arc::new(Mutex::new(String::new()));
        let log_writer = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = log_writer.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let stdin = child.stdin.take();
        Running {
            child,
            stdin,
            lines,
            backlog: Vec::new(),
            raw_stdout: Vec::new(),
            log,
            next_id: 1,
        }
    }

    /// Start and perform the legacy `initialize` handshake.
    pub fn start_legacy(self) -> Running {
        self.start_legacy_with(json!({}))
    }

    /// Start and perform the legacy `initialize` handshake declaring `capabilities`.
    pub fn start_legacy_with(self, capabilities: Value) -> Running {
        let mut running = self.spawn();
        let init = running.request(
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": capabilities, "clientInfo": {"name": "bulkhead-tests", "version": "0"}}),
        );
        assert_eq!(init["result"]["protocolVersion"], "2025-11-25", "{init}");
        running.notify("notifications/initialized", None);
        running
    }
}

/// Spawn `command`, retrying while its file is busy: a binary the test has just copied can be
/// held open for writing, for an instant, by a process another test thread forked meanwhile
/// (until that process executes), and Linux refuses to execute a file open for writing.
pub fn spawn_retrying(command: &mut std::process::Command) -> std::io::Result<Child> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match command.spawn() {
            Err(error)
                if error.kind() == std::io::ErrorKind::ExecutableFileBusy
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            result => return result,
        }
    }
}

/// A running `bulkhead stdio` process.
pub struct Running {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Parsed messages read while waiting for another id.
    backlog: Vec<Value>,
    /// Every stdout line, verbatim, for assertions about what stdout carried.
    pub raw_stdout: Vec<String>,
    log: Arc<Mutex<String>>,
    next_id: u64,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the supervisor (and its workers) wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Write raw bytes to stdin.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(bytes).expect("write stdin");
        stdin.flush().expect("flush stdin");
    }

    pub fn send(&mut self, message: &Value) {
        let mut line = serde_json::to_vec(message).unwrap();
        line.push(b'\n');
        self.send_raw(&line);
    }

    pub fn notify(&mut self, method: &str, params: Option<Value>) {
        let mut message = json!({"jsonrpc": "2.0", "method": method});
        if let Some(params) = params {
            message["params"] = params;
        }
        self.send(&message);
    }

    /// Send a request without waiting; returns its id.
    pub fn send_request(&mut self, method: &str, params: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        id
    }

    /// Send a request and wait for its response (the whole JSON-RPC message).
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params);
        self.response(&json!(id))
    }

    /// Call a tool (legacy era: no `_meta`) and return the whole response.
    pub fn call(&mut self, name: &str, arguments: Value) -> Value {
        self.request("tools/call", json!({"name": name, "arguments": arguments}))
    }

    /// Call a tool and return its `result`, failing the test on a JSON-RPC error.
    pub fn call_ok(&mut self, name: &str, arguments: Value) -> Value {
        let response = self.call(name, arguments);
        assert!(
            response.get("result").is_some(),
            "{name} failed: {response}"
        );
        response["result"].clone()
    }

    /// Open a session and return its handle and worker pid.
    pub fn open_session(&mut self) -> (String, u32) {
        let result = self.call_ok("session_open", json!({}));
        let handle = result["structuredContent"]["session"]
            .as_str()
            .expect("handle")
            .to_string();
        let pid = result["structuredContent"]["pid"].as_u64().expect("pid") as u32;
        (handle, pid)
    }

    /// Wait for the response with `id`.
    pub fn response(&mut self, id: &Value) -> Value {
        self.wait_for(RESPONSE_TIMEOUT, |message| {
            message.get("id") == Some(id) && message.get("method").is_none()
        })
        .unwrap_or_else(|| {
            panic!(
                "no response to id {id} within {RESPONSE_TIMEOUT:?}; stderr:\n{}",
                self.stderr()
            )
        })
    }

    /// Wait for the next message matching `predicate`, up to `timeout`.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        predicate: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        if let Some(index) = self.backlog.iter().position(&predicate) {
            return Some(self.backlog.remove(index));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.raw_stdout.push(line.clone());
                    let message: Value = serde_json::from_str(&line)
                        .unwrap_or_else(|_| panic!("stdout carried a non-JSON line: {line:?}"));
                    if predicate(&message) {
                        return Some(message);
                    }
                    self.backlog.push(message);
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return None;
                }
            }
        }
    }

    /// Close stdin, as a host does when it quits.
    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// Wait for the supervisor to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The workspace root (the repository).
pub fn workspace() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// Install the real servers and tools the external worker mode tests wrap (`scripts/wrap-servers`:
/// mcp-server-time and uv from PyPI, server-everything from npm), once per test binary; the
/// script is idempotent. Panics with the installer's output when it fails. Returns the
/// workspace root, under which they are installed.
pub fn wrap_servers() -> &'static std::path::Path {
    static INSTALLED: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let installed = INSTALLED.get_or_init(|| {
        let root = workspace();
        #[allow(
            clippy::disallowed_methods,
            reason = "the tests install the registry servers they wrap"
        )]
        let output = std::process::Command::new(root.join("scripts/wrap-servers"))
            .current_dir(&root)
            .output()
            .map_err(|error| format!("cannot run scripts/wrap-servers: {error}"))?;
        if !output.status.success() {
            return Err(format!(
                "scripts/wrap-servers failed ({}): the wrapped-server tests need mcp-server-time and uv from PyPI and @modelcontextprotocol/server-everything from npm\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(root)
    });
    match installed {
        Ok(root) => root,
        Err(problem) => panic!("{problem}"),
    }
}

/// A fresh, empty directory for one test (removed by the test when it is done, or left in
/// the temporary directory for a look after a failure).
pub fn scratch_dir(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let unique = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("bulkhead-{name}-{}-{unique}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// State letter of a process from `/proc/<pid>/stat` (`R`, `S`, `Z`, ...), or `None` if gone.
pub fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    after_name.trim_start().chars().next()
}

/// Parent pid of a process, if it exists.
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// One field of `/proc/<pid>/status` (`NoNewPrivs`, `Uid`, `CapEff`, ...), whitespace-normalised.
/// Panics when the process or the field is missing.
pub fn proc_status(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in {status}"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The soft value of one `/proc/<pid>/limits` row, e.g. `Max open files`. Panics when the
/// process or the row is missing.
pub fn proc_limit(pid: u32, row: &str) -> String {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|line| line.starts_with(row))
        .unwrap_or_else(|| panic!("no {row} in {limits}"));
    line[row.len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Whether `pid` exists and is not a zombie.
pub fn is_running(pid: u32) -> bool {
    matches!(process_state(pid), Some(state) if state != 'Z' && state != 'X')
}

/// Direct children of `pid`, with their state.
pub fn children_of(pid: u32) -> Vec<(u32, char)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| parent_of(child) == Some(pid))
        .filter_map(|child| Some((child, process_state(child)?)))
        .collect()
}

/// Poll `condition` every 10 ms until it holds or `timeout` passes; returns whether it held.
pub fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Send SIGKILL to a process.
pub fn kill9(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// The `structuredContent` of a tool result.
pub fn structured(result: &Value) -> &Value {
    &result["structuredContent"]
}

/// The JSON-RPC error code of a response, if it is an error.
pub fn error_code(response: &Value) -> Option<i64> {
    response.get("error")?.get("code")?.as_i64()
}
