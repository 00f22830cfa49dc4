//! The worker → client path is bounded: a worker that floods a client that does not read
//! cannot grow the supervisor, and neither the other sessions nor the same worker's other calls
//! wait on that client for good.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bulkhead_tests::http::TestServer;
use bulkhead_tests::*;
use serde_json::{Value, json};

/// The flood of the issue: 25,000 log messages of 4 KB, about 100 MB.
const FLOOD_COUNT: u64 = 25_000;
const FLOOD_SIZE: u64 = 4096;
/// Most the supervisor may grow meanwhile: what it may hold for one slow call is a few hundred
/// KB; this leaves a wide margin for allocator slack and the other sessions, and is far below
/// the ~130 MB an unbounded path reaches.
const MAX_GROWTH_KB: u64 = 60 * 1024;

fn vm_rss_kb(pid: u32) -> u64 {
    proc_status(pid, "VmRSS")
        .split_whitespace()
        .next()
        .and_then(|kb| kb.parse().ok())
        .expect("VmRSS in kB")
}

fn wrapped_probe() -> Vec<String> {
    let probe = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("servers/probe_server.py");
    vec![
        "--wrap".into(),
        "--".into(),
        "python3".into(),
        probe.to_str().expect("UTF-8 path").into(),
    ]
}

#[test]
fn a_worker_flooding_a_client_that_does_not_read_leaves_the_supervisor_bounded() {
    let mut args = vec![
        "--no-auth".to_string(),
        "--sse-keepalive".into(),
        "0.2".into(),
    ];
    args.extend(wrapped_probe());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = TestServer::start(&args);
    let call = |id: u64, name: &str, arguments: Value| {
        server
            .modern(
                None,
                id,
                "tools/call",
                json!({"name": name, "arguments": arguments}),
            )
            .json()
    };
    let flooded = server.open_session(None);
    let other = server.open_session(None);
    assert!(call(1, "whoami", json!({"session": other}))["result"].is_object());
    let baseline = vm_rss_kb(server.pid());

    // A client that asks for the flood and never reads its response stream.
    let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "flood", "arguments": {"count": FLOOD_COUNT, "size": FLOOD_SIZE, "session": flooded}, "_meta": modern_meta()}}).to_string();
    let mut silent = TcpStream::connect(server.addr).unwrap();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: flood\r\nMcp-Param-Session: {flooded}\r\nContent-Length: {}\r\n\r\n{body}",
        server.addr,
        body.len()
    );
    silent.write_all(request.as_bytes()).unwrap();

    let supervisor = server.pid();
    let peak = std::sync::atomic::AtomicU64::new(baseline);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(vm_rss_kb(supervisor), std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        std::thread::sleep(Duration::from_secs(1));
        // Other sessions keep answering while the flood runs.
        let asked = Instant::now();
        let answer = call(3, "whoami", json!({"session": other}));
        assert!(answer["result"].is_object(), "{answer}");
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "another session answered in {:?}",
            asked.elapsed()
        );
        std::thread::sleep(Duration::from_secs(2));
        // The same worker's next call is answered once the flood is through: the silent
        // client holds it back for a bounded time only. (The flood's remaining messages go to
        // this newer call, whose client reads.)
        let same = call(4, "whoami", json!({"session": flooded}));
        assert!(
            same["result"].is_object(),
            "the flooded session answers: {same}"
        );
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let growth = peak.into_inner().saturating_sub(baseline);
    assert!(
        growth < MAX_GROWTH_KB,
        "the supervisor grew by {growth} kB (baseline {baseline} kB)"
    );
    drop(silent);
}
