//! End-to-end tests of the pre-spawned worker pool (`--pool-size`): a new session gets a worker
//! that was already running, a worker is never reused after its session, a pool worker that
//! dies while idle is replaced and never handed out, and shutdown stops idle pool workers too.

use std::collections::BTreeSet;
use std::time::Duration;

use bulkhead_tests::*;
use serde_json::json;

/// How long the pool gets to fill or refill: a spawn takes about a millisecond, but the tests
/// share the machine with other tests.
const REFILL: Duration = Duration::from_secs(10);

/// Live (non-zombie) children of the supervisor.
fn live_children(running: &Running) -> BTreeSet<u32> {
    children_of(running.pid())
        .into_iter()
        .filter(|(_, state)| *state != 'Z' && *state != 'X')
        .map(|(pid, _)| pid)
        .collect()
}

/// Wait until the supervisor has exactly `count` live children, and they stay the same for a
/// moment (the catalog reader started at start-up comes and goes); returns them.
fn settled_children(running: &Running, count: usize) -> BTreeSet<u32> {
    let mut settled = BTreeSet::new();
    let found = eventually(REFILL, || {
        let before = live_children(running);
        if before.len() != count {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
        settled = live_children(running);
        settled == before
    });
    assert!(
        found,
        "expected {count} settled children, have {:?}; stderr:\n{}",
        live_children(running),
        running.stderr()
    );
    settled
}

#[test]
fn a_new_session_gets_a_pre_spawned_worker_and_no_worker_serves_two_sessions() {
    let mut bulkhead = TestSupervisor::new()
        .args(["--pool-size", "2"])
        .start_legacy();
    // Reading the catalog first lets its worker come and go before we look at children.
    let _ = bulkhead.request("tools/list", json!({}));
    let pooled = settled_children(&bulkhead, 2);

    let (handle, pid) = bulkhead.open_session();
    assert!(
        pooled.contains(&pid),
        "session worker {pid} was not one of the pre-spawned {pooled:?}"
    );
    let echoed = bulkhead.call_ok("echo", json!({"text": "hi", "session": handle}));
    assert_eq!(structured(&echoed)["text"], "hi");
    assert!(
        eventually(REFILL, || bulkhead
            .stderr()
            .contains("bound pre-spawned worker pool-")),
        "the binding of a pool worker to its session is logged; stderr:\n{}",
        bulkhead.stderr()
    );

    bulkhead.call_ok("session_close", json!({"session": handle}));
    assert!(
        eventually(REFILL, || !is_running(pid)),
        "a closed session's worker is stopped, not returned to the pool"
    );
    // The pool refills to two idle workers, none of them the closed session's.
    let refilled = settled_children(&bulkhead, 2);
    assert!(!refilled.contains(&pid), "{refilled:?} reuses {pid}");
    let mut seen = BTreeSet::from([pid]);
    for _ in 0..4 {
        let (handle, pid) = bulkhead.open_session();
        assert!(seen.insert(pid), "worker {pid} served a second session");
        bulkhead.call_ok("session_close", json!({"session": handle}));
    }
}

#[test]
fn a_pool_worker_that_dies_while_idle_is_replaced_and_never_handed_out() {
    let mut bulkhead = TestSupervisor::new()
        .args(["--pool-size", "1"])
        .start_legacy();
    let _ = bulkhead.request("tools/list", json!({}));
    let idle = settled_children(&bulkhead, 1);
    let dead = *idle.first().expect("one idle worker");
    kill9(dead);
    assert!(
        eventually(REFILL, || bulkhead
            .stderr()
            .contains("while idle; replacing it")),
        "the death of an idle pool worker is logged; stderr:\n{}",
        bulkhead.stderr()
    );
    let replacement = settled_children(&bulkhead, 1);
    assert!(!replacement.contains(&dead));

    let (handle, pid) = bulkhead.open_session();
    assert_ne!(pid, dead, "a dead pool worker was handed out");
    let echoed = bulkhead.call_ok("echo", json!({"text": "alive", "session": handle}));
    assert_eq!(structured(&echoed)["text"], "alive");
}

#[test]
fn closing_stdin_stops_idle_pool_workers_too() {
    let mut bulkhead = TestSupervisor::new()
        .args(["--pool-size", "3"])
        .start_legacy();
    let _ = bulkhead.request("tools/list", json!({}));
    let (_, session_pid) = bulkhead.open_session();
    let children = settled_children(&bulkhead, 4);
    assert!(children.contains(&session_pid));
    bulkhead.close_stdin();
    assert!(
        bulkhead.wait_exit(Duration::from_secs(2)).is_some(),
        "the supervisor exits within two seconds of stdin closing"
    );
    for pid in children {
        assert!(
            eventually(Duration::from_secs(1), || !is_running(pid)),
            "worker {pid} outlived the supervisor"
        );
    }
}
