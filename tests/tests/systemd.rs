//! `bulkhead serve` as a systemd service: unit files that `systemd-analyze verify` accepts,
//! socket activation with `Type=notify`, graceful shutdown, log formats, and `check-config`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use bulkhead_tests::*;
use serde_json::{Value, json};

fn scratch(name: &str) -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("bulkhead-{name}-{}-{stamp}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn systemd_analyze_verify_accepts_the_unit_files() {
    let dir = scratch("units");
    let service =
        std::fs::read_to_string(workspace().join("deploy/systemd/bulkhead.service")).unwrap();
    let binary = binary("bulkhead");
    std::fs::write(
        dir.join("bulkhead.service"),
        service.replace("/usr/local/bin/bulkhead", binary.to_str().unwrap()),
    )
    .unwrap();
    std::fs::copy(
        workspace().join("deploy/systemd/bulkhead.socket"),
        dir.join("bulkhead.socket"),
    )
    .unwrap();
    #[allow(
        clippy::disallowed_methods,
        reason = "systemd-analyze checks the unit files"
    )]
    let output = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.join("bulkhead.service"))
        .arg(dir.join("bulkhead.socket"))
        .output()
        .expect("systemd-analyze is installed (scripts/test and .ci/run install systemd)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for directive in [
        "Type=notify",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "RestrictAddressFamilies=",
        "SystemCallFilter=@system-service",
        "CapabilityBoundingSet=",
        "Delegate=yes",
        "LoadCredential=",
        "--order-journal /var/lib/bulkhead/orders.jsonl",
        "StateDirectory=bulkhead",
    ] {
        assert!(
            service.contains(directive),
            "{directive} missing from the unit"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A `bulkhead serve` started the way systemd starts it: the listening socket on descriptor 3,
/// LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES, and NOTIFY_SOCKET.
struct Activated {
    child: Child,
    notifications: UnixDatagram,
    addr: std::net::SocketAddr,
    dir: PathBuf,
}

impl Activated {
    fn start(extra: &[&str]) -> Self {
        let dir = scratch("notify");
        let notify_path = dir.join("notify.sock");
        let notifications = UnixDatagram::bind(&notify_path).unwrap();
        notifications
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let fd = listener.as_raw_fd();
        #[allow(clippy::disallowed_methods, reason = "the test plays systemd")]
        let mut command = std::process::Command::new("sh");
        command
            .arg("-c")
            .arg("LISTEN_PID=$$ exec \"$0\" serve --no-auth \"$@\"")
            .arg(binary("bulkhead"))
            .args(extra)
            .env("LISTEN_FDS", "1")
            .env("LISTEN_FDNAMES", "mcp")
            .env("NOTIFY_SOCKET", &notify_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap());
        // SAFETY: runs in the child between fork and exec and only calls dup2 and fcntl, which
        // are async-signal-safe; `fd` stays open in the parent until after the spawn.
        unsafe {
            command.pre_exec(move || {
                if fd == 3 {
                    // dup2(3, 3) is a no-op that leaves close-on-exec set: clear it by hand, or
                    // the service starts without its listening socket.
                    if nix::libc::fcntl(3, nix::libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if nix::libc::dup2(fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().unwrap();
        drop(listener);
        Self {
            child,
            notifications,
            addr,
            dir,
        }
    }

    fn next_notification(&self) -> String {
        let mut buffer = [0u8; 1024];
        let n = self
            .notifications
            .recv(&mut buffer)
            .unwrap_or_else(|error| {
                let stderr =
                    std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default();
                panic!("no notification ({error}); the service's stderr:\n{stderr}")
            });
        String::from_utf8_lossy(&buffer[..n]).into_owned()
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Activated {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// POST a 2026-07-28 request to `addr` and return the status and the whole response.
fn post(addr: std::net::SocketAddr, body: &Value) -> (u16, String) {
    let text = body.to_string();
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAccept: application/json\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: {}\r\n{}{}Connection: close\r\nContent-Length: {}\r\n\r\n{text}",
        body["method"].as_str().unwrap(),
        body["params"]["name"].as_str().map(|name| format!("Mcp-Name: {name}\r\n")).unwrap_or_default(),
        body["params"]["arguments"]["session"].as_str().map(|session| format!("Mcp-Param-Session: {session}\r\n")).unwrap_or_default(),
        text.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, response)
}

fn echo(text: &str, delay_ms: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": text, "delay_ms": delay_ms}, "_meta": modern_meta()}})
}

#[test]
fn socket_activation_with_notify_serves_and_stops_gracefully() {
    let mut service = Activated::start(&[]);
    let ready = service.next_notification();
    assert!(ready.contains("READY=1"), "{ready}");
    let (status, response) = post(service.addr, &echo("activated", 0));
    assert_eq!(status, 200, "{response}");
    assert!(response.contains("activated"));

    // A call in flight when SIGTERM arrives still completes: the service drains first.
    let addr = service.addr;
    let slow = std::thread::spawn(move || post(addr, &echo("drained", 700)));
    std::thread::sleep(Duration::from_millis(250));
    service.signal(nix::sys::signal::Signal::SIGTERM);
    let stopping = service.next_notification();
    assert!(stopping.contains("STOPPING=1"), "{stopping}");
    let (status, response) = slow.join().unwrap();
    assert_eq!(status, 200, "{response}");
    assert!(
        response.contains("drained"),
        "the in-flight call finished during the drain"
    );
    let exit = service
        .wait(Duration::from_secs(10))
        .expect("exits after draining");
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn sighup_notifies_reloading_then_ready_and_the_activated_socket_and_sessions_survive() {
    let service = Activated::start(&[]);
    assert!(service.next_notification().contains("READY=1"));
    let open = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "session_open", "arguments": {}, "_meta": modern_meta()}});
    let (status, opened) = post(service.addr, &open);
    assert_eq!(status, 200, "{opened}");
    let body: Value = serde_json::from_str(opened.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let handle = body["result"]["structuredContent"]["session"]
        .as_str()
        .unwrap()
        .to_string();
    let pid = body["result"]["structuredContent"]["pid"].clone();

    service.signal(nix::sys::signal::Signal::SIGHUP);
    let reloading = service.next_notification();
    assert!(
        reloading.contains("RELOADING=1") && reloading.contains("MONOTONIC_USEC="),
        "{reloading}"
    );
    let ready = service.next_notification();
    assert!(ready.contains("READY=1"), "{ready}");

    // The socket systemd passed is still the one served, and the session kept its worker.
    let info = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "session_info", "arguments": {"session": handle}, "_meta": modern_meta()}});
    let (status, response) = post(service.addr, &info);
    assert_eq!(status, 200, "{response}");
    let body: Value = serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(
        body["result"]["structuredContent"]["pid"], pid,
        "{response}"
    );
    let (status, response) = post(service.addr, &echo("after the reload", 0));
    assert_eq!(status, 200, "{response}");
    assert!(response.contains("after the reload"));
}

#[test]
fn a_second_sigterm_stops_at_once() {
    let mut service = Activated::start(&["--test-tools"]);
    assert!(service.next_notification().contains("READY=1"));
    let addr = service.addr;
    std::thread::spawn(move || {
        let hang = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "hang_uncancellable", "arguments": {"ms": 20000}, "_meta": modern_meta()}});
        let _ = std::panic::catch_unwind(|| post(addr, &hang));
    });
    std::thread::sleep(Duration::from_millis(300));
    service.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(service.next_notification().contains("STOPPING=1"));
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        service.child.try_wait().unwrap().is_none(),
        "still draining the hung call"
    );
    service.signal(nix::sys::signal::Signal::SIGTERM);
    let exit = service
        .wait(Duration::from_secs(3))
        .expect("the second SIGTERM stops it at once");
    assert_eq!(exit.code(), Some(130));
}

#[test]
fn check_config_reports_every_mistake_and_prints_a_redacted_valid_config() {
    let dir = scratch("check");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "node = \"Bad Node\"\n[sessions]\nmax = \"many\"\nmaxx = 3\n[http]\nlisten = \"0.0.0.0:9000\"\nno_auth = true\n[worker]\ncpu_weight = 99999\n[trading]\nallow_live_brokers = [\"robinhood\"]\n[principals.alice]\nmax_order_notional = -3\n").unwrap();
    #[allow(clippy::disallowed_methods, reason = "running the binary under test")]
    let output = std::process::Command::new(binary("bulkhead"))
        .arg("check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "sessions.max",
        "unknown key \"sessions.maxx\"",
        "--node",
        "--worker-cpu-weight",
        "--no-auth is refused",
        "\"robinhood\" is not a live broker",
        "alice:max_order_notional=-3\": \"-3\" is not a positive amount",
        "7 problem(s)",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected} not reported:\n{stderr}"
        );
    }

    let credentials = dir.join("credentials");
    std::fs::create_dir_all(&credentials).unwrap();
    std::fs::write(
        credentials.join("tokens"),
        "alice:alice-secret-token-0123\n",
    )
    .unwrap();
    std::fs::write(credentials.join("admin-token"), "admin-secret-token-0123\n").unwrap();
    #[allow(clippy::disallowed_methods, reason = "running the binary under test")]
    let output = std::process::Command::new(binary("bulkhead"))
        .arg("check-config")
        .arg(workspace().join("deploy/systemd/bulkhead.toml"))
        .env("CREDENTIALS_DIRECTORY", &credentials)
        .env("BULKHEAD_MAX_SESSIONS", "77")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    let resolved: Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(resolved["node"], "node-1", "from the file");
    assert_eq!(
        resolved["sessions"]["max"], 77,
        "the environment overrides the file"
    );
    assert_eq!(
        resolved["http"]["auth"]["principals"],
        json!(["alice"]),
        "tokens from $CREDENTIALS_DIRECTORY"
    );
    assert!(
        !printed.contains("alice-secret-token") && !printed.contains("admin-secret-token"),
        "secrets redacted:\n{printed}"
    );
    let alice = &resolved["trading"]["effective"]["alice"]["rails"];
    assert_eq!(
        alice["max_order_notional"], "250",
        "the principal's own cap"
    );
    assert_eq!(alice["max_daily_notional"], "10000", "the default cap");
    assert_eq!(alice["allowed_symbols"], json!(["AAPL", "MSFT", "BTC-USD"]));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn json_and_journald_log_formats() {
    for (format, check) in [
        (
            "json",
            (|line: &str| serde_json::from_str::<Value>(line).is_ok()) as fn(&str) -> bool,
        ),
        ("journald", |line: &str| {
            line.starts_with('<') && line.as_bytes().get(2) == Some(&b'>')
        }),
    ] {
        let mut bulkhead = TestSupervisor::new()
            .args(["--log-format", format])
            .start_legacy();
        bulkhead.call_ok("echo", json!({"text": "log me"}));
        bulkhead.close_stdin();
        bulkhead.wait_exit(Duration::from_secs(3)).expect("exit");
        let log = bulkhead.stderr();
        let lines: Vec<&str> = log.lines().filter(|line| !line.trim().is_empty()).collect();
        assert!(lines.len() >= 3, "{format}: {log}");
        for line in &lines {
            assert!(check(line), "{format}: not a {format} line: {line}");
        }
        assert!(log.contains("session opened"), "{format}: {log}");
    }
}
