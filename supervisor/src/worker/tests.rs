//! The actor under paused time, over `tokio::io::duplex` with a fake process: deadlines,
//! cancellations, crashes, the stop sequence and the routing of what a worker sends, each in
//! milliseconds. The end-to-end suite proves the real worker behaves the same.

use std::time::Duration;

use bulkhead_protocol::NOTIFICATION_CANCEL_ACKNOWLEDGED;
use bulkhead_protocol::jsonrpc;
use nix::sys::signal::Signal;
use serde_json::json;
use tokio::time::Instant;

use super::fake::{TIMEOUTS, exited, started, within};
use super::handle::{CallEvent, ExitCause};

/// The front door's deadline in these tests.
const CALL_DEADLINE: Duration = Duration::from_secs(5);
/// Longer than anything here may take: a test that would hang fails instead.
const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(start_paused = true)]
async fn a_call_past_its_deadline_is_cancelled_and_a_silent_worker_killed_at_the_hard_limit() {
    let (worker, mut peer, kernel) = started(TIMEOUTS).await;
    let mut call = worker
        .call("tools/call", Some(json!({"name": "slow"})))
        .unwrap();
    let request = within(LIMIT, peer.recv()).await.unwrap();
    assert_eq!(request["method"], "tools/call");
    // The front door waits for the reply until the deadline, then drops the call.
    let waited = tokio::time::timeout(CALL_DEADLINE, call.next_event()).await;
    assert!(waited.is_err(), "no reply, so the deadline passes");
    drop(call);
    let cancelled_at = Instant::now();
    let cancellation = within(LIMIT, peer.recv()).await.unwrap();
    assert_eq!(cancellation["method"], "notifications/cancelled");
    assert_eq!(cancellation["params"]["requestId"], request["id"]);
    // The worker shows nothing: it is killed at the hard limit, with crash semantics.
    let exit = within(LIMIT, worker.exited()).await;
    assert_eq!(
        exit.cause,
        ExitCause::Killed("ignored a cancellation past the hard limit")
    );
    assert_eq!(cancelled_at.elapsed(), TIMEOUTS.hard_cancel);
    assert_eq!(kernel.signals(), [Signal::SIGKILL]);
    assert!(kernel.cleaned(), "released after the reap");
    assert_eq!(kernel.signals_after_exit(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_acknowledged_cancellation_keeps_the_worker() {
    let (worker, mut peer, kernel) = started(TIMEOUTS).await;
    let call = worker
        .call("tools/call", Some(json!({"name": "slow"})))
        .unwrap();
    let request = within(LIMIT, peer.recv()).await.unwrap();
    drop(call);
    let cancellation = within(LIMIT, peer.recv()).await.unwrap();
    assert_eq!(cancellation["method"], "notifications/cancelled");
    peer.send(&jsonrpc::notification(
        NOTIFICATION_CANCEL_ACKNOWLEDGED,
        Some(json!({"requestId": request["id"]})),
    ))
    .await;
    tokio::time::sleep(TIMEOUTS.hard_cancel * 2).await;
    assert!(worker.exit().is_none(), "the evidence cleared the deadline");
    assert!(kernel.signals().is_empty());
    // And it still serves.
    let mut next = worker
        .call("tools/call", Some(json!({"name": "x"})))
        .unwrap();
    let request = within(LIMIT, peer.recv()).await.unwrap();
    peer.send(&jsonrpc::response(&request["id"], json!({"content": []})))
        .await;
    assert!(matches!(
        within(LIMIT, next.next_event()).await,
        CallEvent::Reply(_)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_crash_mid_call_fails_the_call_and_later_calls() {
    let (worker, mut peer, kernel) = started(TIMEOUTS).await;
    let mut call = worker
        .call("tools/call", Some(json!({"name": "x"})))
        .unwrap();
    within(LIMIT, peer.recv()).await.unwrap();
    drop(peer);
    kernel.exit(exited(3));
    let CallEvent::Died(exit) = within(LIMIT, call.next_event()).await else {
        panic!("the call hears of the death");
    };
    assert_eq!(exit.cause, ExitCause::Crashed);
    assert_eq!(exit.status, "exit code 3");
    assert!(exit.is_crash());
    let refused = worker.call("tools/call", Some(json!({"name": "y"})));
    assert_eq!(
        refused.err().map(|exit| exit.cause),
        Some(ExitCause::Crashed)
    );
    assert_eq!(
        kernel.signals_after_exit(),
        0,
        "nothing signals a reaped worker"
    );
}

#[tokio::test(start_paused = true)]
async fn a_death_is_reported_before_the_actor_has_finished_with_the_worker() {
    let (worker, mut peer, kernel) = started(TIMEOUTS).await;
    let gate = kernel.hold_cleanup();
    let call = worker
        .call("tools/call", Some(json!({"name": "slow"})))
        .unwrap();
    within(LIMIT, peer.recv()).await.unwrap();
    drop(call);
    within(LIMIT, peer.recv()).await.unwrap();
    // Past the hard limit the actor decides to kill, signals, and is held in its clean-up.
    tokio::time::sleep(TIMEOUTS.hard_cancel + Duration::from_millis(1)).await;
    assert!(kernel.has_exited());
    assert!(!kernel.cleaned());
    // The handle already reports the exit, with the cause the actor decided on.
    let exit = worker.exit().expect("the reaped worker is dead to callers");
    assert_eq!(
        exit.cause,
        ExitCause::Killed("ignored a cancellation past the hard limit")
    );
    assert!(worker.call("tools/call", None).is_err());
    gate.notify_one();
    assert_eq!(within(LIMIT, worker.exited()).await.cause, exit.cause);
}

#[tokio::test(start_paused = true)]
async fn replies_written_just_before_an_exit_are_delivered() {
    // Whichever the actor notices first, the exit or the bytes, the reply wins.
    for _ in 0..16 {
        let (worker, mut peer, kernel) = started(TIMEOUTS).await;
        let mut call = worker
            .call("tools/call", Some(json!({"name": "x"})))
            .unwrap();
        let request = within(LIMIT, peer.recv()).await.unwrap();
        peer.send(&jsonrpc::response(
            &request["id"],
            json!({"content": [], "isError": false}),
        ))
        .await;
        drop(peer);
        kernel.exit(exited(0));
        let CallEvent::Reply(reply) = within(LIMIT, call.next_event()).await else {
            panic!("the reply, not the death");
        };
        assert_eq!(
            reply.result_json().unwrap(),
            br#"{"content":[],"isError":false}"#,
            "the result as the worker wrote it"
        );
        assert_eq!(
            within(LIMIT, worker.exited()).await.cause,
            ExitCause::Crashed
        );
    }
}

#[tokio::test(start_paused = true)]
async fn what_a_worker_sends_reaches_the_call_it_belongs_to() {
    let (worker, mut peer, _kernel) = started(TIMEOUTS).await;
    let mut first = worker
        .call(
            "tools/call",
            Some(json!({"name": "a", "_meta": {"progressToken": "mine"}})),
        )
        .unwrap();
    let first_request = within(LIMIT, peer.recv()).await.unwrap();
    let token = first_request["params"]["_meta"]["progressToken"].clone();
    assert_eq!(
        token, first_request["id"],
        "the token is the call id on the wire"
    );
    let mut second = worker
        .call("tools/call", Some(json!({"name": "b"})))
        .unwrap();
    let second_request = within(LIMIT, peer.recv()).await.unwrap();

    // Progress goes to the call whose token it carries, with the client's token restored.
    peer.send(&jsonrpc::notification(
        "notifications/progress",
        Some(json!({"progressToken": token, "progress": 1})),
    ))
    .await;
    // A request for the client names no call: it goes to the newest one.
    peer.send(&jsonrpc::request(
        &json!("w-1"),
        "elicitation/create",
        Some(json!({"message": "sure?"})),
    ))
    .await;
    let CallEvent::Notification(progress) = within(LIMIT, first.next_event()).await else {
        panic!("progress for the first call");
    };
    assert_eq!(progress["params"]["progressToken"], "mine");
    let CallEvent::Request(request) = within(LIMIT, second.next_event()).await else {
        panic!("the request goes to the newest call");
    };
    assert_eq!(request["id"], "w-1");
    worker.respond(jsonrpc::response(
        &json!("w-1"),
        json!({"action": "accept"}),
    ));
    let answer = within(LIMIT, peer.recv()).await.unwrap();
    assert_eq!(answer["id"], "w-1");
    assert_eq!(answer["result"]["action"], "accept");

    peer.send(&jsonrpc::response(&second_request["id"], json!({"n": 2})))
        .await;
    peer.send(&jsonrpc::response(&first_request["id"], json!({"n": 1})))
        .await;
    let CallEvent::Reply(reply) = within(LIMIT, second.next_event()).await else {
        panic!("second reply");
    };
    assert_eq!(reply.into_value()["result"]["n"], 2);
    let CallEvent::Reply(reply) = within(LIMIT, first.next_event()).await else {
        panic!("first reply, after its progress only");
    };
    assert_eq!(reply.into_value()["result"]["n"], 1);
}

#[tokio::test(start_paused = true)]
async fn a_worker_that_ignores_eof_and_sigterm_is_killed_after_both_graces() {
    let (worker, mut peer, kernel) = started(TIMEOUTS).await;
    kernel.ignore_sigterm();
    let stopping = Instant::now();
    let stop = tokio::spawn({
        let worker = worker.clone();
        async move { worker.stop().await }
    });
    assert!(
        within(LIMIT, peer.recv()).await.is_none(),
        "the socket is closed first"
    );
    let exit = within(LIMIT, stop).await.unwrap();
    assert_eq!(exit.cause, ExitCause::Stopped);
    assert_eq!(exit.status, "killed by signal 9 (SIGKILL)");
    assert_eq!(kernel.signals(), [Signal::SIGTERM, Signal::SIGKILL]);
    assert_eq!(
        stopping.elapsed(),
        TIMEOUTS.close_grace + TIMEOUTS.term_grace
    );
    assert!(!exit.is_crash());
}

#[tokio::test(start_paused = true)]
async fn a_worker_that_exits_on_eof_is_stopped_without_a_signal() {
    let (worker, mut peer, kernel) = started(TIMEOUTS).await;
    let stop = tokio::spawn({
        let worker = worker.clone();
        async move { worker.stop().await }
    });
    assert!(within(LIMIT, peer.recv()).await.is_none());
    kernel.exit(exited(0));
    let exit = within(LIMIT, stop).await.unwrap();
    assert_eq!(exit.cause, ExitCause::Stopped);
    assert!(kernel.signals().is_empty());
    assert!(kernel.cleaned());
}

#[tokio::test(start_paused = true)]
async fn an_oversized_frame_kills_the_worker() {
    let (worker, mut peer, kernel) = started(TIMEOUTS).await;
    let huge = "x".repeat(2 << 20);
    peer.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"data": huge}}),
    )
    .await;
    let exit = within(LIMIT, worker.exited()).await;
    assert_eq!(
        exit.cause,
        ExitCause::Killed("sent a frame over the size limit")
    );
    assert_eq!(kernel.signals(), [Signal::SIGKILL]);
}
