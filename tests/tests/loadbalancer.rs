//! Three `bulkhead serve` nodes behind real nginx and real HAProxy, configured by the shipped
//! generator (`scripts/lb-config`): routing by handle, legacy id and principal; a node killed;
//! a node drained; a rolling restart under load. Every scenario runs against both balancers.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bulkhead_tests::balancer::{
    Balancer, Cluster, Kind, PRINCIPALS, RENEWALS, call, call_with, open_session, renewed_token,
    session_info, token,
};
use bulkhead_tests::http::Endpoint;
use bulkhead_tests::*;
use serde_json::{Value, json};

/// JSON-RPC code of a session whose state is gone (`bulkhead_protocol::codes::SESSION_LOST`).
const SESSION_LOST: i64 = -32041;

/// Legacy `initialize` as `principal` through `endpoint`; the `Mcp-Session-Id`.
fn legacy_initialize(endpoint: &Endpoint, principal: usize) -> String {
    let auth = format!("Bearer {}", token(principal));
    let response = endpoint.post(
        &[("Authorization", &auth)],
        &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    response.header("mcp-session-id").unwrap().to_string()
}

/// A legacy `session_info` in the session `session_id`: HTTP status and reply.
fn legacy_info(endpoint: &Endpoint, principal: usize, session_id: &str) -> (u16, Value) {
    let auth = format!("Bearer {}", token(principal));
    let response = endpoint.post(
        &[
            ("Authorization", &auth),
            ("Mcp-Session-Id", session_id),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "session_info", "arguments": {}}}),
    );
    (response.status, response.json())
}

fn pid_of(reply: &Value) -> u32 {
    reply["result"]["structuredContent"]["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("no pid in {reply}")) as u32
}

/// The node (index) whose supervisor is the parent of worker `pid`.
fn node_of_worker(cluster: &Cluster, pid: u32) -> usize {
    let parent = parent_of(pid).expect("the worker is running");
    (0..cluster.len())
        .find(|&index| cluster.node(index).pid() == parent)
        .unwrap_or_else(|| panic!("worker {pid}'s parent {parent} is no node"))
}

fn routes_by_handle_legacy_id_and_principal(kind: Kind) {
    let mut cluster = Cluster::start(3, &["--sse-keepalive", "0.2"]);
    let balancer = Balancer::start(kind, &cluster);

    // Principals spread over the nodes, and each one's sessionless calls stay on one node.
    let mut by_node: BTreeMap<usize, usize> = BTreeMap::new();
    for principal in 0..PRINCIPALS {
        let (handle, pid) = session_info(&balancer, principal, None).unwrap();
        let node = Cluster::index_of(&handle);
        assert_eq!(node_of_worker(&cluster, pid), node, "{handle}");
        for _ in 0..2 {
            assert_eq!(
                session_info(&balancer, principal, None).unwrap(),
                (handle.clone(), pid),
                "principal p{principal}'s sessionless calls moved"
            );
        }
        *by_node.entry(node).or_default() += 1;
    }
    assert!(
        by_node.len() >= 2,
        "{kind:?} sent all {PRINCIPALS} principals to one node: {by_node:?}"
    );
    eprintln!("{kind:?}: principals per node {by_node:?}");

    // A renewed OAuth access token keeps its principal's default session: HAProxy hashes the
    // token's `sub` (`principal-claim sub`); nginx cannot decode a JWT and hashes the header.
    let default_sessions: BTreeSet<String> = (0..RENEWALS)
        .map(|renewal| {
            let (_, reply) = call_with(
                &balancer,
                &renewed_token(renewal),
                "session_info",
                json!({}),
                None,
            );
            reply["result"]["structuredContent"]["session"]
                .as_str()
                .unwrap_or_else(|| panic!("{kind:?}: {reply}"))
                .to_string()
        })
        .collect();
    if kind == Kind::Haproxy {
        assert_eq!(
            default_sessions.len(),
            1,
            "a renewed token moved its principal: {default_sessions:?}"
        );
    }

    // Handles reach the worker on their own node, whoever's node the principal hashes to.
    let mut handle_nodes = BTreeSet::new();
    for principal in 0..9 {
        let (handle, pid) = open_session(&balancer, principal);
        let node = Cluster::index_of(&handle);
        assert_eq!(node_of_worker(&cluster, pid), node);
        handle_nodes.insert(node);
        for _ in 0..3 {
            assert_eq!(
                session_info(&balancer, principal, Some(&handle)).unwrap(),
                (handle.clone(), pid)
            );
        }
    }
    // Legacy ids too.
    for principal in 0..6 {
        let session_id = legacy_initialize(&balancer, principal);
        let node = Cluster::index_of(&session_id);
        let (status, first) = legacy_info(&balancer, principal, &session_id);
        assert_eq!(status, 200, "{first}");
        let pid = pid_of(&first);
        assert_eq!(node_of_worker(&cluster, pid), node, "{session_id}");
        for _ in 0..3 {
            assert_eq!(
                pid_of(&legacy_info(&balancer, principal, &session_id).1),
                pid
            );
        }
    }

    // SSE passes through unbuffered: the keep-alive comment arrives long before the result.
    let (handle, _) = open_session(&balancer, 0);
    let (first_bytes, whole) = timed_sse_call(&balancer, 0, &handle, 1500);
    assert!(
        first_bytes < Duration::from_millis(1000),
        "{kind:?} held the SSE stream back for {first_bytes:?}"
    );
    assert!(whole >= Duration::from_millis(1500));

    // Only /mcp is public.
    for path in ["/metrics", "/admin/sessions", "/readyz"] {
        assert_eq!(balancer.get(path).status, 404, "{kind:?} exposed {path}");
    }

    // With no node left, the client still gets a JSON-RPC error, not an HTML page.
    for index in 0..cluster.len() {
        cluster.kill(index);
    }
    let response = balancer.modern(
        Some(&token(0)),
        1,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "anyone?", "session": handle}}),
    );
    assert!(
        [502, 503].contains(&response.status),
        "{kind:?}: {}",
        response.status
    );
    assert_eq!(
        error_code(&response.json()),
        Some(-32603),
        "{}",
        response.text()
    );
}

/// Call `echo` with `delay_ms` in `session` accepting SSE; when the first body bytes and the
/// whole reply arrived.
fn timed_sse_call(
    endpoint: &Endpoint,
    principal: usize,
    session: &str,
    delay_ms: u64,
) -> (Duration, Duration) {
    let body = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "slow", "delay_ms": delay_ms, "session": session}, "_meta": modern_meta()}})).unwrap();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n\
         Mcp-Method: tools/call\r\nMcp-Name: echo\r\nMcp-Param-Session: {session}\r\n\
         Authorization: Bearer {}\r\nContent-Length: {}\r\n\r\n",
        endpoint.addr,
        token(principal),
        body.len()
    );
    let mut stream = TcpStream::connect(endpoint.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let started = Instant::now();
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(&body).unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut first_bytes = None;
    let mut in_body = false;
    let mut text = String::new();
    while reader.read_line(&mut line).unwrap_or(0) > 0 {
        if in_body && first_bytes.is_none() && line.trim_start().starts_with(':') {
            first_bytes = Some(started.elapsed());
        }
        if line == "\r\n" {
            in_body = true;
        }
        text.push_str(&line);
        line.clear();
    }
    assert!(
        text.contains("text/event-stream") && text.contains("\"slow\""),
        "{text}"
    );
    (
        first_bytes.unwrap_or_else(|| panic!("no keep-alive comment: {text}")),
        started.elapsed(),
    )
}

#[test]
fn nginx_routes_by_handle_legacy_id_and_principal() {
    routes_by_handle_legacy_id_and_principal(Kind::Nginx);
}

#[test]
fn haproxy_routes_by_handle_legacy_id_and_principal() {
    routes_by_handle_legacy_id_and_principal(Kind::Haproxy);
}

/// Sessions of every kind on every node: each principal's default session, an explicit
/// session for every other principal and a legacy session for a few.
struct Sessions {
    defaults: Vec<(usize, String, u32)>,
    handles: Vec<(usize, String, u32)>,
    legacy: Vec<(usize, String, u32)>,
}

impl Sessions {
    fn open(endpoint: &Endpoint) -> Self {
        let defaults = (0..PRINCIPALS)
            .map(|principal| {
                let (handle, pid) = session_info(endpoint, principal, None).unwrap();
                (principal, handle, pid)
            })
            .collect();
        let handles = (0..PRINCIPALS)
            .step_by(2)
            .map(|principal| {
                let (handle, pid) = open_session(endpoint, principal);
                (principal, handle, pid)
            })
            .collect();
        let legacy = (0..9)
            .map(|principal| {
                let session_id = legacy_initialize(endpoint, principal);
                let pid = pid_of(&legacy_info(endpoint, principal, &session_id).1);
                (principal, session_id, pid)
            })
            .collect();
        Self {
            defaults,
            handles,
            legacy,
        }
    }
}

fn on(sessions: &[(usize, String, u32)], node: usize, here: bool) -> Vec<(usize, String, u32)> {
    sessions
        .iter()
        .filter(|(_, handle, _)| (Cluster::index_of(handle) == node) == here)
        .cloned()
        .collect()
}

/// The precise answer for a session of `node`, which is gone.
fn assert_lost_on(reply: &Value, node: usize) {
    let name = Cluster::name(node);
    assert_eq!(error_code(reply), Some(SESSION_LOST), "{reply}");
    assert_eq!(reply["error"]["data"]["node"], name.as_str(), "{reply}");
    assert_ne!(reply["error"]["data"]["answered_by"], name.as_str());
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("node {name}, which this request could not reach")),
        "{message}"
    );
}

fn a_killed_node_loses_only_its_own_sessions(kind: Kind) {
    let mut cluster = Cluster::start(3, &[]);
    let balancer = Balancer::start(kind, &cluster);
    let sessions = Sessions::open(&balancer);
    let victim = Cluster::index_of(&sessions.handles[0].1);
    let survivors = on(&sessions.handles, victim, false);
    assert!(
        !survivors.is_empty(),
        "every explicit session is on one node"
    );

    cluster.kill(victim);

    // Every session on the other nodes keeps answering, in the same worker.
    for (principal, handle, pid) in &survivors {
        assert_eq!(
            session_info(&balancer, *principal, Some(handle)),
            Ok((handle.clone(), *pid)),
            "{kind:?}: {handle} stopped answering"
        );
    }
    for (principal, session_id, pid) in on(&sessions.legacy, victim, false) {
        let (status, reply) = legacy_info(&balancer, principal, &session_id);
        assert_eq!((status, pid_of(&reply)), (200, pid), "{session_id}");
    }
    for (principal, handle, pid) in on(&sessions.defaults, victim, false) {
        assert_eq!(
            session_info(&balancer, principal, None),
            Ok((handle.clone(), pid)),
            "{kind:?}: principal p{principal}'s default session moved"
        );
    }
    // The dead node's sessions get the precise answer through the balancer.
    for (principal, handle, _) in on(&sessions.handles, victim, true) {
        let (status, reply) = call(
            &balancer,
            principal,
            "echo",
            json!({"text": "hello"}),
            Some(&handle),
        );
        assert_eq!(status, 200, "{kind:?}: {reply}");
        assert_lost_on(&reply, victim);
    }
    for (principal, session_id, _) in on(&sessions.legacy, victim, true) {
        let (status, reply) = legacy_info(&balancer, principal, &session_id);
        assert_eq!(status, 404, "{kind:?}: {reply}");
        assert_lost_on(&reply, victim);
    }
    // Its principals carry on elsewhere, in a new default session.
    for (principal, _, _) in on(&sessions.defaults, victim, true) {
        let (handle, _) = session_info(&balancer, principal, None)
            .unwrap_or_else(|reply| panic!("{kind:?}: p{principal}: {reply}"));
        assert_ne!(Cluster::index_of(&handle), victim);
    }
}

#[test]
fn nginx_a_killed_node_loses_only_its_own_sessions() {
    a_killed_node_loses_only_its_own_sessions(Kind::Nginx);
}

#[test]
fn haproxy_a_killed_node_loses_only_its_own_sessions() {
    a_killed_node_loses_only_its_own_sessions(Kind::Haproxy);
}

/// Drain node `index` the way an operator does with this balancer: nginx has no active health
/// checks, so it is first marked `drain` in the node list and reloaded; HAProxy sees `/readyz`
/// fail by itself (and retries the 503s of the first second elsewhere).
fn drain(balancer: &mut Balancer, cluster: &Cluster, index: usize) {
    if balancer.kind == Kind::Nginx {
        balancer.reload_with_draining(cluster, &[index]);
    }
    cluster.drain(index);
}

fn a_drained_node_takes_no_new_sessions_serves_its_own_and_exits(kind: Kind) {
    let mut cluster = Cluster::start(3, &[]);
    let mut balancer = Balancer::start(kind, &cluster);
    // Explicit and legacy sessions only: a principal's default session would keep the node
    // until its drain deadline.
    let handles: Vec<(usize, String, u32)> = (0..PRINCIPALS)
        .step_by(2)
        .map(|principal| {
            let (handle, pid) = open_session(&balancer, principal);
            (principal, handle, pid)
        })
        .collect();
    let legacy: Vec<(usize, String, u32)> = (0..9)
        .map(|principal| {
            let session_id = legacy_initialize(&balancer, principal);
            let pid = pid_of(&legacy_info(&balancer, principal, &session_id).1);
            (principal, session_id, pid)
        })
        .collect();
    let victim = Cluster::index_of(&handles[0].1);

    drain(&mut balancer, &cluster, victim);

    // No new session lands on it, however it would start.
    for principal in 0..PRINCIPALS {
        let (handle, _) = open_session(&balancer, principal);
        assert_ne!(Cluster::index_of(&handle), victim, "{kind:?}: session_open");
        let (handle, _) = session_info(&balancer, principal, None)
            .unwrap_or_else(|reply| panic!("{kind:?}: sessionless call: {reply}"));
        assert_ne!(
            Cluster::index_of(&handle),
            victim,
            "{kind:?}: default session"
        );
    }
    for principal in 0..6 {
        let session_id = legacy_initialize(&balancer, principal);
        assert_ne!(
            Cluster::index_of(&session_id),
            victim,
            "{kind:?}: initialize"
        );
    }
    // Its own sessions keep working until they are closed; then it exits by itself.
    let own = on(&handles, victim, true);
    let own_legacy = on(&legacy, victim, true);
    for (principal, handle, pid) in &own {
        assert_eq!(
            session_info(&balancer, *principal, Some(handle)),
            Ok((handle.clone(), *pid))
        );
    }
    for (principal, session_id, pid) in &own_legacy {
        assert_eq!(
            pid_of(&legacy_info(&balancer, *principal, session_id).1),
            *pid
        );
    }
    for (principal, handle, _) in &own {
        let (status, reply) = call(
            &balancer,
            *principal,
            "session_close",
            json!({}),
            Some(handle),
        );
        assert_eq!(status, 200, "{reply}");
        assert_eq!(
            reply["result"]["structuredContent"]["closed"], true,
            "{reply}"
        );
    }
    for (principal, session_id, _) in &own_legacy {
        let auth = format!("Bearer {}", token(*principal));
        let deleted = balancer.request(
            "DELETE",
            "/mcp",
            &[("Authorization", &auth), ("Mcp-Session-Id", session_id)],
            b"",
        );
        assert_eq!(deleted.status, 200, "{}", deleted.text());
    }
    assert!(
        cluster.wait_exit(victim, Duration::from_secs(10)),
        "{kind:?}: the drained node did not exit 0"
    );
    let (principal, handle, _) = &own[0];
    let (_, reply) = call(
        &balancer,
        *principal,
        "echo",
        json!({"text": "x"}),
        Some(handle),
    );
    assert_lost_on(&reply, victim);
}

#[test]
fn nginx_a_drained_node_takes_no_new_sessions_serves_its_own_and_exits() {
    a_drained_node_takes_no_new_sessions_serves_its_own_and_exits(Kind::Nginx);
}

#[test]
fn haproxy_a_drained_node_takes_no_new_sessions_serves_its_own_and_exits() {
    a_drained_node_takes_no_new_sessions_serves_its_own_and_exits(Kind::Haproxy);
}

/// A steady client load: explicit sessions called in turn, plus sessionless calls from a few
/// principals. A session whose node is being (or has been) restarted may be lost, and is then
/// replaced by a new one; every other failure is recorded.
struct Load {
    stop: std::sync::atomic::AtomicBool,
    /// Nodes whose restart has begun: their sessions may be lost.
    restarted: std::sync::Mutex<BTreeSet<usize>>,
    failures: std::sync::Mutex<Vec<String>>,
    calls: std::sync::atomic::AtomicUsize,
    replaced: std::sync::atomic::AtomicUsize,
}

/// Principals of the load's explicit sessions, and of its sessionless calls.
const LOAD_SESSIONS: std::ops::Range<usize> = 0..12;
const LOAD_SESSIONLESS: std::ops::Range<usize> = 12..18;

impl Load {
    fn run(&self, endpoint: Endpoint) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut sessions: Vec<(usize, String)> = LOAD_SESSIONS
            .map(|principal| (principal, open_session(&endpoint, principal).0))
            .collect();
        while !self.stop.load(Relaxed) {
            for (principal, handle) in &mut sessions {
                let node = Cluster::index_of(handle);
                let may_be_lost = self.restarted.lock().unwrap().contains(&node);
                let (status, reply) = call(
                    &endpoint,
                    *principal,
                    "echo",
                    json!({"text": "load"}),
                    Some(handle),
                );
                self.calls.fetch_add(1, Relaxed);
                if reply["result"]["structuredContent"]["text"] == "load" {
                    continue;
                }
                if may_be_lost {
                    // Its node is being restarted: start over, as a client would.
                    *handle = open_session(&endpoint, *principal).0;
                    self.replaced.fetch_add(1, Relaxed);
                } else {
                    self.fail(format!(
                        "{handle} on a node not restarted: {status} {reply}"
                    ));
                }
            }
            for principal in LOAD_SESSIONLESS {
                let (status, reply) =
                    call(&endpoint, principal, "echo", json!({"text": "load"}), None);
                self.calls.fetch_add(1, Relaxed);
                if reply["result"]["structuredContent"]["text"] != "load" {
                    self.fail(format!(
                        "sessionless call of p{principal}: {status} {reply}"
                    ));
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn fail(&self, failure: String) {
        self.failures.lock().unwrap().push(failure);
    }
}

fn a_rolling_restart_under_load_loses_no_call_on_a_node_not_yet_restarted(kind: Kind) {
    use std::sync::atomic::Ordering::Relaxed;
    // Sessionless load leaves default sessions on every node: the deadline ends them.
    let mut cluster = Cluster::start(3, &["--drain-deadline", "2"]);
    let mut balancer = Balancer::start(kind, &cluster);
    let load = std::sync::Arc::new(Load {
        stop: false.into(),
        restarted: Default::default(),
        failures: Default::default(),
        calls: Default::default(),
        replaced: Default::default(),
    });
    let endpoint = balancer.endpoint;
    let worker = std::thread::spawn({
        let load = load.clone();
        move || load.run(endpoint)
    });
    std::thread::sleep(Duration::from_millis(500));
    for index in 0..cluster.len() {
        load.restarted.lock().unwrap().insert(index);
        drain(&mut balancer, &cluster, index);
        assert!(
            cluster.wait_exit(index, Duration::from_secs(15)),
            "{kind:?}: node {index} did not exit 0 after its drain"
        );
        cluster.start_node(index);
        if kind == Kind::Nginx {
            balancer.reload_with_draining(&cluster, &[]);
        }
        std::thread::sleep(Duration::from_millis(1500));
    }
    load.stop.store(true, Relaxed);
    worker.join().expect("the load thread");
    let failures = load.failures.lock().unwrap();
    let calls = load.calls.load(Relaxed);
    eprintln!(
        "{kind:?}: {calls} calls, {} sessions replaced after their node restarted",
        load.replaced.load(Relaxed)
    );
    assert!(
        failures.is_empty(),
        "{kind:?}: {} failures, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(calls > 100, "{kind:?}: only {calls} calls");
    // Every restarted node takes new principals again.
    let nodes: BTreeSet<usize> = (0..PRINCIPALS)
        .map(|principal| Cluster::index_of(&open_session(&balancer, principal).0))
        .collect();
    assert!(nodes.len() >= 2, "{kind:?}: new sessions only on {nodes:?}");
}

#[test]
fn nginx_a_rolling_restart_under_load_loses_no_call_on_a_node_not_yet_restarted() {
    a_rolling_restart_under_load_loses_no_call_on_a_node_not_yet_restarted(Kind::Nginx);
}

#[test]
fn haproxy_a_rolling_restart_under_load_loses_no_call_on_a_node_not_yet_restarted() {
    a_rolling_restart_under_load_loses_no_call_on_a_node_not_yet_restarted(Kind::Haproxy);
}
