//! What a worker sends, routed to the calls in flight, and the back-pressure on the worker's
//! socket when a call's client reads too slowly.
//!
//! Replies go to their call by id. Progress goes to the call whose token it carries. Log
//! messages, other notifications and server-to-client requests name no call on the wire; rmcp
//! issues them from a tool handler, so they go to the newest call in flight. Each call's queue
//! is bounded ([`super::outbox`]).
//!
//! **Back-pressure, then dropping.** When a call's queue has no room for a notification, the
//! actor stops reading the worker's socket — the worker blocks on its writes and slows to the
//! pace of that client — until the client makes room. All the worker's calls share one socket,
//! so this also holds back replies to the worker's other calls; to keep one slow client from
//! doing that for good, each call may hold its worker back for [`STALL_BUDGET`] in all. Once
//! its budget is spent the call is *lossy*: notifications that find its queue full are dropped
//! at once (counted, and reported to its client) and the socket is read on. No stall lasts
//! while a cancelled call waits for the evidence that it stopped: that evidence comes on the
//! same socket and must be read before the call's hard-cancel deadline. Replies and
//! server requests are never dropped; a worker that sends a call more than
//! [`super::outbox::MAX_PENDING_SERVER_REQUESTS`] unanswered requests gets an error for the
//! extra ones.

use std::time::Duration;

use bulkhead_protocol::jsonrpc::{self, Message};
use bulkhead_protocol::trading::CONTROL_METHOD_PREFIX;
use bulkhead_protocol::{NOTIFICATION_CANCEL_ACKNOWLEDGED, codes};
use serde_json::{Value, json};
use tokio::io::AsyncRead;
use tokio::time::Instant;

use super::actor::Actor;
use super::handle::CallEvent;
use super::outbox::{MAX_PENDING_SERVER_REQUESTS, Offer, RoomWaiter, Sender};
use super::process::Process;
use super::reply::{Reply, result_span};
use crate::trading::desk::serve_control;

/// How long, in all, one call's client may hold its worker back by reading slowly: enough to
/// ride out a pause (a busy client, a slow network), short against call deadlines, and a bound
/// on how long the worker's other calls can wait behind it.
pub(super) const STALL_BUDGET: Duration = Duration::from_secs(2);

/// A call in flight, as the actor sees it.
pub(super) struct InFlight {
    pub(super) outbox: Sender,
    pub(super) progress_token: Option<Value>,
    /// How long this call may still hold the worker back.
    pub(super) stall_budget: Duration,
    /// Requests the worker sent for this call that the client has not answered.
    pub(super) pending_requests: usize,
}

impl InFlight {
    pub(super) fn new(outbox: Sender, progress_token: Option<Value>) -> Self {
        Self {
            outbox,
            progress_token,
            stall_budget: STALL_BUDGET,
            pending_requests: 0,
        }
    }
}

/// A notification waiting for room in its call's queue while the socket is not read.
pub(super) struct Stall {
    call: u64,
    message: Value,
    bytes: usize,
    since: Instant,
    until: Instant,
}

/// How a stall ended.
pub(super) enum StallEnd {
    Room,
    GaveUp,
    /// A call was cancelled: the evidence that it stopped may sit in the socket behind the
    /// stall, and must be read before its hard-cancel deadline.
    Interrupted,
}

/// What the actor needs to wait for the end of a stall.
pub(super) struct StallWait {
    room: Option<RoomWaiter>,
    bytes: usize,
    until: Instant,
}

impl StallWait {
    pub(super) async fn wait(self) -> StallEnd {
        let room = async {
            if let Some(room) = self.room {
                room.wait(self.bytes).await;
            }
        };
        tokio::select! {
            () = room => StallEnd::Room,
            () = tokio::time::sleep_until(self.until) => StallEnd::GaveUp,
        }
    }
}

impl<P: Process, R: AsyncRead + Unpin> Actor<P, R> {
    /// Whether the worker's socket may be read now (no notification is waiting for room).
    pub(super) fn reading(&self) -> bool {
        self.stalled.is_none()
    }

    /// What to wait for while stalled.
    pub(super) fn stall_wait(&self) -> Option<StallWait> {
        let stall = self.stalled.as_ref()?;
        Some(StallWait {
            room: self
                .in_flight
                .get(&stall.call)
                .map(|call| call.outbox.room_waiter()),
            bytes: stall.bytes,
            until: stall.until,
        })
    }

    pub(super) fn end_stall(&mut self, end: StallEnd) {
        let Some(stall) = self.stalled.take() else {
            return;
        };
        let Some(call) = self.in_flight.get_mut(&stall.call) else {
            return;
        };
        match end {
            StallEnd::Room | StallEnd::Interrupted => {
                match call.outbox.offer(stall.message, stall.bytes, false) {
                    // Woken with no room after all: keep waiting.
                    Offer::Full(message) if matches!(end, StallEnd::Room) => {
                        self.stalled = Some(Stall { message, ..stall });
                        return;
                    }
                    Offer::Full(_) => call.outbox.count_dropped(),
                    Offer::Queued | Offer::Gone => {}
                }
                call.stall_budget = call.stall_budget.saturating_sub(stall.since.elapsed());
            }
            StallEnd::GaveUp => {
                call.outbox.count_dropped();
                call.stall_budget = Duration::ZERO;
                tracing::info!(
                    session = %self.tag,
                    "a client reads this call's notifications too slowly; dropping the ones that do not fit"
                );
            }
        }
    }

    pub(super) fn on_worker_line(&mut self, line: Vec<u8>) {
        // A result is routed by its envelope alone and travels on as the bytes the worker sent.
        if let Some((id, result)) = result_span(&line) {
            self.on_response(&id, Reply::Result { line, result });
            return;
        }
        let value: Value = match serde_json::from_slice(&line) {
            Ok(value) => value,
            Err(error) => {
                tracing::warn!(session = %self.tag, "worker sent an unparsable frame: {error}");
                return;
            }
        };
        if value.get("method").is_none() {
            if let Some(id) = value.get("id").cloned() {
                self.on_response(&id, Reply::Value(value));
            }
            return;
        }
        match jsonrpc::classify(value) {
            Ok(Message::Notification { method, params }) => {
                self.on_notification(method, params, line.len());
            }
            Ok(Message::Request { id, method, params })
                if method.starts_with(CONTROL_METHOD_PREFIX) =>
            {
                // Addressed to the supervisor itself, never to a client.
                if let Some(writer) = self.writer.clone() {
                    let binding = self.binding.get().cloned();
                    serve_control(self.flavor.desk(), binding, id, method, params, writer);
                }
            }
            Ok(Message::Request { id, method, params }) => self.on_request(id, method, params),
            Ok(Message::Response { .. } | Message::Error { .. }) => {}
            Err(error) => {
                tracing::warn!(session = %self.tag, "worker sent an invalid message: {error}");
            }
        }
    }

    fn on_response(&mut self, id: &Value, reply: Reply) {
        if self.abandoned.on_response(id) {
            return;
        }
        let Some(id) = id.as_u64() else {
            return;
        };
        if let Some(call) = self.remove_call(id) {
            call.outbox.push(CallEvent::Reply(reply));
        }
    }

    /// Forget call `id` (answered or cancelled) and the requests it relayed.
    pub(super) fn remove_call(&mut self, id: u64) -> Option<InFlight> {
        let call = self.in_flight.remove(&id)?;
        if call.pending_requests > 0 {
            self.relayed.retain(|_, relayed_for| *relayed_for != id);
        }
        if self.stalled.as_ref().is_some_and(|stall| stall.call == id) {
            self.stalled = None;
        }
        Some(call)
    }

    /// A request for the client goes to the newest call in flight; with none (or when that
    /// call already waits for too many answers), it is refused at once so the worker does not
    /// wait forever.
    fn on_request(&mut self, id: Value, method: String, params: Option<Value>) {
        let newest = self.in_flight.keys().max().copied();
        let (code, refusal) = match newest
            .and_then(|call| Some((call, self.in_flight.get_mut(&call)?)))
        {
            None => (
                codes::METHOD_NOT_FOUND,
                format!("{method}: no client request is in flight to relay it on"),
            ),
            Some((_, call)) if call.pending_requests >= MAX_PENDING_SERVER_REQUESTS => (
                codes::INTERNAL_ERROR,
                format!(
                    "{method}: this request's client already has {MAX_PENDING_SERVER_REQUESTS} requests to answer"
                ),
            ),
            Some((call_id, call)) => {
                let request = jsonrpc::request(&id, &method, params);
                if call.outbox.push(CallEvent::Request(request)) {
                    call.pending_requests += 1;
                    self.relayed.insert(id.to_string(), call_id);
                    return;
                }
                (
                    codes::INTERNAL_ERROR,
                    format!("{method}: the client request it belongs to is gone"),
                )
            }
        };
        let refusal = jsonrpc::error_response(&id, code, &refusal, None);
        self.write(jsonrpc::to_frame(&refusal));
    }

    /// The client answered request `id` of the worker.
    pub(super) fn on_answer(&mut self, id: &Value) {
        if let Some(call) = self.relayed.remove(&id.to_string())
            && let Some(call) = self.in_flight.get_mut(&call)
        {
            call.pending_requests = call.pending_requests.saturating_sub(1);
        }
    }

    fn on_notification(&mut self, method: String, params: Option<Value>, bytes: usize) {
        if method == NOTIFICATION_CANCEL_ACKNOWLEDGED {
            self.abandoned.on_acknowledgement(params.as_ref());
            return;
        }
        let mut params = params.unwrap_or_else(|| json!({}));
        if let Some(id) = params.get("progressToken").and_then(Value::as_u64) {
            let Some(token) = self
                .in_flight
                .get(&id)
                .and_then(|call| call.progress_token.clone())
            else {
                return;
            };
            params["progressToken"] = token;
            self.deliver(
                id,
                jsonrpc::notification(&method, Some(params)),
                bytes,
                true,
            );
            return;
        }
        if !self.flavor.relays(&method) {
            return;
        }
        match self.in_flight.keys().max().copied() {
            Some(call) => {
                let notification = jsonrpc::notification(&method, Some(params));
                self.deliver(call, notification, bytes, false);
            }
            None => {
                tracing::debug!(session = %self.tag, %method, "dropping a worker notification: no call in flight");
            }
        }
    }

    /// Queue a notification for `call`, stalling the socket or dropping as the module docs say.
    /// Never stall while a cancelled call awaits its evidence (see [`StallEnd::Interrupted`]).
    fn deliver(&mut self, call_id: u64, message: Value, bytes: usize, progress: bool) {
        let may_stall = !self.draining && self.abandoned.next_deadline().is_none();
        let Some(call) = self.in_flight.get_mut(&call_id) else {
            return;
        };
        match call.outbox.offer(message, bytes, progress) {
            Offer::Queued | Offer::Gone => {}
            Offer::Full(message) if may_stall && !call.stall_budget.is_zero() => {
                let since = Instant::now();
                self.stalled = Some(Stall {
                    call: call_id,
                    message,
                    bytes,
                    since,
                    until: since + call.stall_budget,
                });
            }
            Offer::Full(_) => call.outbox.count_dropped(),
        }
    }
}
