//! Slowloris: one principal (A) ties up `bulkhead serve`'s connections the slow way while
//! another (B) keeps calling; B's success rate and latency are compared with a phase without
//! any attack.
//!
//! Each phase runs one attack from twice as many A connections as the server has slots, each
//! reconnecting as soon as the server lets go of it: bodies that trickle a byte at a time after
//! complete headers (bounded by the per-principal share and the body timeout), held
//! `subscriptions/listen` streams (the listen and connection shares), headers sent a byte at a
//! time (before the principal is known, so bounded only by the header timeout), and
//! connections that send nothing at all. B calls `echo` in its own session twice over: on a new
//! connection per call (as new clients arrive), and on one keep-alive connection (re-opened
//! when the server closes it).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::http::HttpClient;
use crate::launch::{Binaries, HttpSupervisor};
use crate::rpc::opened_session;
use crate::scenarios::common_args;
use crate::stats::{Samples, Summary};

/// The two principals' bearer tokens (at least 16 characters, as `--tokens` requires).
const TOKEN_A: &str = "chaos-attacker-token-0123456789";
const TOKEN_B: &str = "chaos-bystander-token-9876543210";
/// How often an attacker sends its next slow byte and looks for an answer.
const TICK: Duration = Duration::from_millis(250);
/// Pause before an attacker reconnects (keeps a refused attacker from spinning a core).
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);
/// Time for connections of one phase to be released before the next starts.
const BETWEEN_PHASES: Duration = Duration::from_millis(200);
/// Failures of B whose message is kept for the report, per phase and client.
const KEPT_FAILURES: usize = 2;
/// The `Content-Length` an attacker announces and never finishes.
const TRICKLED_LENGTH: usize = 4096;

/// The server's limits and how long each phase lasts.
#[derive(Debug, Clone, Copy)]
pub struct SlowPlan {
    pub phase: Duration,
    /// The attack runs alone this long before B starts calling.
    pub head_start: Duration,
    pub max_connections: usize,
    pub per_principal: usize,
    pub listen_per_principal: usize,
    pub header_timeout_secs: f64,
    pub body_timeout_secs: f64,
    /// How long B waits for one reply before it counts the call as failed.
    pub call_timeout: Duration,
}

impl SlowPlan {
    /// The `bulkhead serve` flags for these limits.
    pub fn flags(&self) -> Vec<String> {
        let mut flags = common_args(16, 0);
        for (flag, value) in [
            ("--max-connections", self.max_connections.to_string()),
            (
                "--max-connections-per-principal",
                self.per_principal.to_string(),
            ),
            (
                "--max-listen-per-principal",
                self.listen_per_principal.to_string(),
            ),
            ("--header-timeout", self.header_timeout_secs.to_string()),
            ("--body-timeout", self.body_timeout_secs.to_string()),
            ("--sse-keepalive", "1".to_string()),
        ] {
            flags.push(flag.to_string());
            flags.push(value);
        }
        flags
    }
}

/// What A does in a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attack {
    None,
    TrickleBody,
    HoldListen,
    SlowHeaders,
    Silent,
}

impl Attack {
    pub const ALL: [Attack; 5] = [
        Attack::None,
        Attack::TrickleBody,
        Attack::HoldListen,
        Attack::SlowHeaders,
        Attack::Silent,
    ];

    pub fn describe(self) -> &'static str {
        match self {
            Attack::None => "no attack",
            Attack::TrickleBody => "A: complete headers, body trickled a byte per 250 ms",
            Attack::HoldListen => "A: `subscriptions/listen` streams held open",
            Attack::SlowHeaders => "A: headers trickled a byte per 250 ms (principal unknown)",
            Attack::Silent => "A: connections that send nothing",
        }
    }
}

/// B's calls in one phase, over one kind of connection.
#[derive(Debug, Clone, Default)]
pub struct Bystander {
    pub calls: usize,
    pub answered: usize,
    /// Keep-alive only: calls sent again on a new connection because the server had closed the
    /// idle one.
    pub reconnects: usize,
    pub latency: Option<Summary>,
    pub failures: Vec<String>,
}

/// How A's connections ended in one phase.
#[derive(Debug, Clone, Default)]
pub struct Attacks {
    pub connections: usize,
    pub connect_failed: usize,
    /// `503`: a share was full.
    pub refused: usize,
    /// `408`: the body timeout.
    pub timed_out: usize,
    /// Closed by the server without a response (the header timeout).
    pub closed_silently: usize,
    /// Listen streams the server started (`200`).
    pub streams: usize,
    /// Any other status.
    pub other: usize,
    /// Still open when the phase ended.
    pub held_to_end: usize,
    /// How long the server kept a connection it closed (any of the above but held-to-end).
    pub held: Option<Summary>,
}

#[derive(Debug, Clone)]
pub struct Phase {
    pub attack: Attack,
    pub fresh: Bystander,
    pub kept: Bystander,
    pub attacks: Attacks,
}

#[derive(Debug, Clone)]
pub struct Slowloris {
    pub plan: SlowPlan,
    pub attackers: usize,
    pub phases: Vec<Phase>,
}

pub fn measure(binaries: &Binaries, plan: SlowPlan) -> io::Result<Slowloris> {
    let tokens = binaries.log_dir.join("chaos-tokens");
    write_tokens(&tokens)?;
    let mut server =
        HttpSupervisor::start_with_tokens(binaries, &tokens, &plan.flags(), "chaos-slowloris")?;
    let mut opener = server.connect()?.with_bearer(TOKEN_B);
    let (handle, _) = opened_session(&opener.tool("session_open", json!({}), None)?)?;
    drop(opener);
    let attackers = plan.max_connections * 2;
    let mut phases = Vec::new();
    for attack in Attack::ALL {
        phases.push(phase(server.addr, &handle, attack, attackers, plan));
        std::thread::sleep(BETWEEN_PHASES);
    }
    server.stop()?;
    let _ = std::fs::remove_file(&tokens);
    Ok(Slowloris {
        plan,
        attackers,
        phases,
    })
}

fn write_tokens(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    writeln!(file, "a:{TOKEN_A}\nb:{TOKEN_B}")
}

fn phase(
    addr: SocketAddr,
    handle: &str,
    attack: Attack,
    attackers: usize,
    plan: SlowPlan,
) -> Phase {
    let stop_attack = AtomicBool::new(false);
    let stop_calls = AtomicBool::new(false);
    let tally = Mutex::new((Attacks::default(), Samples::default()));
    let (fresh, kept) = std::thread::scope(|scope| {
        if attack != Attack::None {
            for _ in 0..attackers {
                scope.spawn(|| {
                    while !stop_attack.load(Ordering::Relaxed) {
                        let outcome = attack_once(addr, attack, &stop_attack);
                        if let Ok(mut tally) = tally.lock() {
                            let (attacks, held) = &mut *tally;
                            outcome.count(attacks, held);
                        }
                        std::thread::sleep(RECONNECT_PAUSE);
                    }
                });
            }
            std::thread::sleep(plan.head_start);
        }
        let fresh = scope.spawn(|| bystander(addr, handle, true, plan.call_timeout, &stop_calls));
        let kept = scope.spawn(|| bystander(addr, handle, false, plan.call_timeout, &stop_calls));
        std::thread::sleep(plan.phase);
        stop_calls.store(true, Ordering::Relaxed);
        let fresh = fresh.join().unwrap_or_default();
        let kept = kept.join().unwrap_or_default();
        stop_attack.store(true, Ordering::Relaxed);
        (fresh, kept)
    });
    let (mut attacks, held) = tally.into_inner().unwrap_or_default();
    attacks.held = held.summary();
    Phase {
        attack,
        fresh,
        kept,
        attacks,
    }
}

/// B: `echo` in its session back to back until told to stop.
fn bystander(
    addr: SocketAddr,
    handle: &str,
    fresh: bool,
    timeout: Duration,
    stop: &AtomicBool,
) -> Bystander {
    let mut figures = Bystander::default();
    let mut latency = Samples::default();
    let mut kept: Option<HttpClient> = None;
    let connect = || {
        HttpClient::connect(addr).and_then(|client| {
            client.set_timeout(timeout)?;
            Ok(client.with_bearer(TOKEN_B))
        })
    };
    let call = |mut client: HttpClient| {
        client.tool_reply("echo", json!({"text": "b"}), Some(handle))?;
        Ok(client)
    };
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let outcome = match kept.take() {
            Some(client) if !fresh => match call(client) {
                // The server closed the idle connection (to make room): as an HTTP client
                // does, send the request again on a new connection.
                Err(error) if closed_while_idle(&error) => {
                    figures.reconnects += 1;
                    connect().and_then(call)
                }
                outcome => outcome,
            },
            _ => connect().and_then(call),
        };
        figures.calls += 1;
        match outcome {
            Ok(client) => {
                latency.push(started.elapsed());
                figures.answered += 1;
                kept = Some(client);
            }
            Err(error) if figures.failures.len() < KEPT_FAILURES => figures.failures.push(format!(
                "after {:.2} s: {error}",
                started.elapsed().as_secs_f64()
            )),
            Err(_) => {}
        }
    }
    figures.latency = latency.summary();
    figures
}

/// Whether a call on a kept connection failed because the server had closed it before the
/// request arrived (nothing was answered).
fn closed_while_idle(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    )
}

/// How one attacking connection ended.
struct Outcome {
    connected: bool,
    status: Option<u16>,
    closed_by_server: bool,
    held: Duration,
}

impl Outcome {
    fn count(&self, attacks: &mut Attacks, held: &mut Samples) {
        attacks.connections += 1;
        if !self.connected {
            attacks.connect_failed += 1;
            return;
        }
        match self.status {
            Some(503) => attacks.refused += 1,
            Some(408) => attacks.timed_out += 1,
            Some(200) => attacks.streams += 1,
            Some(_) => attacks.other += 1,
            None if self.closed_by_server => attacks.closed_silently += 1,
            None => {}
        }
        if self.closed_by_server {
            held.push(self.held);
        } else {
            attacks.held_to_end += 1;
        }
    }
}

/// One attacking connection, from connect until the server closes it or the phase ends.
fn attack_once(addr: SocketAddr, attack: Attack, stop: &AtomicBool) -> Outcome {
    let started = Instant::now();
    let mut outcome = Outcome {
        connected: false,
        status: None,
        closed_by_server: false,
        held: Duration::ZERO,
    };
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return outcome;
    };
    outcome.connected = true;
    let _ = stream.set_read_timeout(Some(TICK));
    let opening = opening(addr, attack);
    let mut received = Vec::new();
    let mut slow_bytes = slow_bytes(attack);
    let mut buffer = [0u8; 4096];
    let mut alive = stream.write_all(&opening).is_ok();
    while alive && !stop.load(Ordering::Relaxed) {
        if let Some(byte) = slow_bytes.next() {
            alive = stream.write_all(&[byte]).is_ok();
        }
        match stream.read(&mut buffer) {
            Ok(0) => alive = false,
            Ok(read) => {
                received.extend_from_slice(&buffer[..read]);
                outcome.status = outcome.status.or_else(|| status(&received));
                // A refusal or timeout ends the attempt; a listen stream is held on.
                if outcome.status.is_some_and(|status| status != 200) {
                    alive = false;
                }
                if outcome.status.is_some() {
                    received.clear();
                }
            }
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => alive = false,
        }
    }
    outcome.closed_by_server = !alive;
    outcome.held = started.elapsed();
    outcome
}

/// The first bytes A sends on a new connection.
fn opening(addr: SocketAddr, attack: Attack) -> Vec<u8> {
    let modern = |method: &str, body: &str, length: usize| {
        format!(
            "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN_A}\r\n\
             Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
             MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: {method}\r\nContent-Length: {length}\r\n\r\n{body}"
        )
        .into_bytes()
    };
    match attack {
        Attack::None | Attack::Silent => Vec::new(),
        Attack::TrickleBody => modern("tools/call", "", TRICKLED_LENGTH),
        Attack::HoldListen => {
            let body = json!({"jsonrpc": "2.0", "id": 1, "method": "subscriptions/listen", "params": {"_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
            }}})
            .to_string();
            modern("subscriptions/listen", &body, body.len())
        }
        Attack::SlowHeaders => format!("POST /mcp HTTP/1.1\r\nHost: {addr}\r\n").into_bytes(),
    }
}

/// What A sends one byte per tick after the opening: body bytes, or an endless header.
fn slow_bytes(attack: Attack) -> Box<dyn Iterator<Item = u8>> {
    match attack {
        Attack::TrickleBody => Box::new(std::iter::repeat_n(b' ', TRICKLED_LENGTH - 1)),
        Attack::SlowHeaders => Box::new(b"X-Slow: ".iter().copied().chain(std::iter::repeat(b'a'))),
        Attack::None | Attack::Silent | Attack::HoldListen => Box::new(std::iter::empty()),
    }
}

/// The status code of an HTTP response's first line, once it is complete.
fn status(received: &[u8]) -> Option<u16> {
    let line = received.split(|&byte| byte == b'\n').next()?;
    if received.len() == line.len() {
        return None;
    }
    std::str::from_utf8(line)
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_parse_once_complete() {
        assert_eq!(status(b"HTTP/1.1 503 Service Unavailable\r\n"), Some(503));
        assert_eq!(status(b"HTTP/1.1 408"), None);
        assert_eq!(status(b""), None);
    }
}
