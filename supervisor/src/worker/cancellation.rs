//! Cancelled calls that may still run in a worker, each with the instant the worker is killed
//! unless evidence arrives first that the call stopped.
//!
//! Cancelling a call sends the worker `notifications/cancelled`. rmcp never answers a request
//! it cancelled, so the absence of a reply proves nothing; the evidence that clears a call's
//! hard-cancel deadline is, by kind of worker:
//!
//! - **any worker**: a reply to the cancelled call's id (it finished anyway);
//! - **the built-in worker**: its acknowledgement
//!   ([`bulkhead_protocol::NOTIFICATION_CANCEL_ACKNOWLEDGED`]), which it sends once the call's
//!   handler has completed or been dropped — so only a worker whose handler really keeps the
//!   thread busy is killed;
//! - **a wrapped server** (a foreign program that acknowledges nothing): an answer, of any kind,
//!   to a `ping` sent right after the cancellation. It proves the server's request loop is alive
//!   and has read the cancellation (servers read their input in order); it cannot prove that the
//!   cancelled handler stopped, which no foreign server can show. A server whose loop is blocked
//!   — the case the hard limit exists for — answers nothing and is killed; a handler that goes
//!   on without blocking the loop costs only its own session's sandboxed resources.

use std::collections::HashMap;
use std::time::Duration;

use bulkhead_protocol::Era;
use bulkhead_protocol::jsonrpc;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::wrap::bridge;

/// Prefix of the ids of the liveness pings sent to a wrapped server after a cancellation; the
/// rest of the id is the cancelled call's id. Call ids are numbers, so these never collide.
const LIVENESS_PREFIX: &str = "bulkhead-liveness-";

/// The cancelled calls of one worker.
pub(super) struct Abandoned {
    deadlines: HashMap<u64, Instant>,
    hard_cancel: Duration,
    /// A wrapped server's era, for its liveness pings; `None` for the built-in worker, which
    /// acknowledges instead.
    liveness: Option<Era>,
}

impl Abandoned {
    pub(super) fn new(hard_cancel: Duration, liveness: Option<Era>) -> Self {
        Self {
            deadlines: HashMap::new(),
            hard_cancel,
            liveness,
        }
    }

    /// Call `id` was cancelled now: start its deadline and return the frames to send the worker.
    pub(super) fn cancel(&mut self, id: u64, now: Instant) -> Vec<Vec<u8>> {
        self.deadlines.insert(id, now + self.hard_cancel);
        let cancelled = jsonrpc::notification(
            "notifications/cancelled",
            Some(
                json!({"requestId": id, "reason": "cancelled by the client or the call deadline"}),
            ),
        );
        let mut frames = vec![jsonrpc::to_frame(&cancelled)];
        if let Some(era) = self.liveness {
            let (params, _) = bridge::outbound(era, "ping", None);
            let ping = jsonrpc::request(&json!(format!("{LIVENESS_PREFIX}{id}")), "ping", params);
            frames.push(jsonrpc::to_frame(&ping));
        }
        frames
    }

    /// A response (result or error) with `id` arrived. Returns whether it answered one of our
    /// liveness pings (and so belongs to no call).
    pub(super) fn on_response(&mut self, id: &Value) -> bool {
        if let Some(call) = id.as_u64() {
            self.deadlines.remove(&call);
            return false;
        }
        let Some(call) = id.as_str().and_then(|id| id.strip_prefix(LIVENESS_PREFIX)) else {
            return false;
        };
        if self.liveness.is_some()
            && let Ok(call) = call.parse::<u64>()
        {
            self.deadlines.remove(&call);
        }
        true
    }

    /// The worker acknowledged that a cancelled call's handler has stopped.
    pub(super) fn on_acknowledgement(&mut self, params: Option<&Value>) {
        if let Some(call) = params
            .and_then(|params| params.get("requestId"))
            .and_then(Value::as_u64)
        {
            self.deadlines.remove(&call);
        }
    }

    /// When the worker is killed unless evidence arrives first.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.values().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HARD: Duration = Duration::from_secs(1);

    fn frames_text(frames: &[Vec<u8>]) -> Vec<String> {
        frames
            .iter()
            .map(|frame| String::from_utf8_lossy(frame).into_owned())
            .collect()
    }

    #[test]
    fn the_built_in_worker_is_cleared_by_its_acknowledgement_or_a_reply_only() {
        let now = Instant::now();
        let mut abandoned = Abandoned::new(HARD, None);
        let frames = frames_text(&abandoned.cancel(7, now));
        assert_eq!(frames.len(), 1, "no ping: {frames:?}");
        assert!(frames[0].contains("notifications/cancelled"));
        assert_eq!(abandoned.next_deadline(), Some(now + HARD));
        assert!(abandoned.on_response(&json!("bulkhead-liveness-7")));
        assert!(
            abandoned.next_deadline().is_some(),
            "a built-in worker is not trusted on a ping answer"
        );
        abandoned.on_acknowledgement(Some(&json!({"requestId": 7})));
        assert_eq!(abandoned.next_deadline(), None);

        abandoned.cancel(8, now);
        assert!(!abandoned.on_response(&json!(8)));
        assert_eq!(abandoned.next_deadline(), None, "a late reply clears it");
    }

    #[test]
    fn a_wrapped_server_is_cleared_by_an_answer_to_the_ping_after_the_cancellation() {
        let now = Instant::now();
        let mut abandoned = Abandoned::new(HARD, Some(Era::Initialize));
        let frames = frames_text(&abandoned.cancel(3, now));
        assert_eq!(frames.len(), 2, "{frames:?}");
        assert!(frames[1].contains("\"ping\"") && frames[1].contains("bulkhead-liveness-3"));
        abandoned.cancel(4, now + HARD / 2);
        assert!(abandoned.on_response(&json!("bulkhead-liveness-3")));
        assert_eq!(
            abandoned.next_deadline(),
            Some(now + HARD / 2 + HARD),
            "only the call whose ping was answered is cleared"
        );
        assert!(!abandoned.on_response(&json!("some-other-id")));
    }
}
