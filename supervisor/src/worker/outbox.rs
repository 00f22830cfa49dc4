//! The bounded queue from a worker's actor to one call's reader, with the protocol's rules for
//! what may wait, be merged or be dropped when the call's client reads too slowly.
//!
//! - The final reply (or the worker's death) always fits: one per call.
//! - Requests the worker sends the client (sampling, elicitation, roots) are never dropped;
//!   the actor admits at most [`MAX_PENDING_SERVER_REQUESTS`] unanswered ones per call and
//!   refuses more to the worker itself.
//! - Progress notifications are coalesced: a new one replaces the one still queued (a client
//!   only ever needs the latest progress), so they take one place at most.
//! - Every other notification (log messages and the like: JSON-RPC notifications are
//!   fire-and-forget) waits while fewer than [`MAX_QUEUED_NOTIFICATIONS`] and
//!   [`MAX_QUEUED_NOTIFICATION_BYTES`] are queued. When the queue is full the offer is
//!   refused and the actor decides (see [`super::delivery`]): it stops reading the worker's
//!   socket for a while (back-pressure), then drops. Dropped notifications are counted, and the
//!   reader gets one `notifications/message` saying how many where they would have been.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use bulkhead_protocol::jsonrpc;
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::handle::CallEvent;

/// Notifications (besides one progress) that may wait for one call's reader.
pub(super) const MAX_QUEUED_NOTIFICATIONS: usize = 64;
/// Bytes of notifications (as the worker framed them) that may wait for one call's reader: 64
/// typical log lines, or a few large ones, never 64 frames of the maximum size.
pub(super) const MAX_QUEUED_NOTIFICATION_BYTES: usize = 256 * 1024;
/// Requests the worker sent for one call that its client has not answered yet.
pub(super) const MAX_PENDING_SERVER_REQUESTS: usize = 8;

enum Entry {
    Notification {
        message: Value,
        bytes: usize,
    },
    Progress(Value),
    Event(CallEvent),
    /// This many notifications were dropped here, between the entries around it.
    Dropped(u64),
}

#[derive(Default)]
struct Queue {
    entries: VecDeque<Entry>,
    notifications: usize,
    notification_bytes: usize,
    reader_gone: bool,
    writer_gone: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// Something to read, or the writer is gone.
    readable: Notify,
    /// Room for a notification, or the reader is gone.
    room: Notify,
}

impl Queue {
    /// Whether a notification of `bytes` fits: one always does in an empty queue, whatever its
    /// size (it is within the frame limit).
    fn fits(&self, bytes: usize) -> bool {
        self.notifications == 0
            || (self.notifications < MAX_QUEUED_NOTIFICATIONS
                && self.notification_bytes + bytes <= MAX_QUEUED_NOTIFICATION_BYTES)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What became of a notification offered to a call.
#[derive(Debug)]
pub(super) enum Offer {
    /// Queued (or merged into the queued progress).
    Queued,
    /// The queue is full; the notification comes back.
    Full(Value),
    /// The call's reader is gone: nobody wants it.
    Gone,
}

/// A new call's queue: the actor's end and the reader's end.
pub(super) fn outbox() -> (Sender, Receiver) {
    let shared = Arc::new(Shared::default());
    (Sender(shared.clone()), Receiver(shared))
}

/// The actor's end. Dropping it tells the reader no more is coming.
pub(super) struct Sender(Arc<Shared>);

impl Sender {
    /// Offer a notification of `bytes` framed bytes; `progress` ones are coalesced.
    pub(super) fn offer(&self, message: Value, bytes: usize, progress: bool) -> Offer {
        let mut queue = self.0.lock();
        if queue.reader_gone {
            return Offer::Gone;
        }
        if progress {
            let queued = queue
                .entries
                .iter_mut()
                .find(|entry| matches!(entry, Entry::Progress(_)));
            match queued {
                Some(entry) => *entry = Entry::Progress(message),
                None => queue.entries.push_back(Entry::Progress(message)),
            }
        } else {
            if !queue.fits(bytes) {
                return Offer::Full(message);
            }
            queue.notifications += 1;
            queue.notification_bytes += bytes;
            queue
                .entries
                .push_back(Entry::Notification { message, bytes });
        }
        drop(queue);
        self.0.readable.notify_one();
        Offer::Queued
    }

    /// Count a notification the actor gave up on; the reader hears how many in their place.
    pub(super) fn count_dropped(&self) {
        let mut queue = self.0.lock();
        if let Some(Entry::Dropped(count)) = queue.entries.back_mut() {
            *count += 1;
        } else {
            queue.entries.push_back(Entry::Dropped(1));
        }
    }

    /// Queue something that is never dropped: a request for the client, the final reply, the
    /// worker's death. Returns false when the reader is gone.
    pub(super) fn push(&self, event: CallEvent) -> bool {
        let mut queue = self.0.lock();
        if queue.reader_gone {
            return false;
        }
        queue.entries.push_back(Entry::Event(event));
        drop(queue);
        self.0.readable.notify_one();
        true
    }

    /// Something to wait with for room in this queue, held apart from the sender.
    pub(super) fn room_waiter(&self) -> RoomWaiter {
        RoomWaiter(self.0.clone())
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.0.lock().writer_gone = true;
        self.0.readable.notify_one();
    }
}

/// Waits for room in one call's queue (see [`Sender::room_waiter`]).
pub(super) struct RoomWaiter(Arc<Shared>);

impl RoomWaiter {
    /// Wait until a notification of `bytes` would fit, or the reader is gone.
    pub(super) async fn wait(self, bytes: usize) {
        loop {
            let notified = self.0.room.notified();
            {
                let queue = self.0.lock();
                if queue.reader_gone || queue.fits(bytes) {
                    return;
                }
            }
            notified.await;
        }
    }
}

/// The call's end. Dropping it tells the actor nobody reads any more.
pub(super) struct Receiver(Arc<Shared>);

impl Receiver {
    /// The next event in order; `None` once the actor is gone and everything was read.
    pub(super) async fn next(&self) -> Option<CallEvent> {
        loop {
            let notified = self.0.readable.notified();
            if let Some(event) = self.take() {
                return Some(event);
            }
            if self.0.lock().writer_gone {
                // The actor may have queued its last words just before it went.
                return self.take();
            }
            notified.await;
        }
    }

    fn take(&self) -> Option<CallEvent> {
        let mut queue = self.0.lock();
        let entry = queue.entries.pop_front()?;
        let event = match entry {
            Entry::Notification { message, bytes } => {
                queue.notifications -= 1;
                queue.notification_bytes -= bytes;
                drop(queue);
                self.0.room.notify_one();
                CallEvent::Notification(message)
            }
            Entry::Progress(message) => CallEvent::Notification(message),
            Entry::Event(event) => event,
            Entry::Dropped(count) => CallEvent::Notification(dropped_notice(count)),
        };
        Some(event)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut queue = self.0.lock();
        queue.reader_gone = true;
        queue.entries.clear();
        drop(queue);
        self.0.room.notify_one();
    }
}

/// The log message that tells a client how many notifications it did not read in time.
fn dropped_notice(dropped: u64) -> Value {
    jsonrpc::notification(
        "notifications/message",
        Some(json!({
            "level": "warning",
            "logger": "bulkhead",
            "data": format!(
                "{dropped} notifications from the server were dropped: this request's client did not read them in time"
            ),
        })),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::reply::Reply;

    fn log(number: usize) -> Value {
        jsonrpc::notification("notifications/message", Some(json!({"data": number})))
    }

    fn progress(value: u64) -> Value {
        jsonrpc::notification(
            "notifications/progress",
            Some(json!({"progressToken": 1, "progress": value})),
        )
    }

    fn next_now(receiver: &Receiver) -> Option<CallEvent> {
        receiver.take()
    }

    #[test]
    fn notifications_wait_up_to_the_bound_and_progress_is_coalesced() {
        let (sender, receiver) = outbox();
        for number in 0..MAX_QUEUED_NOTIFICATIONS {
            assert!(matches!(
                sender.offer(log(number), 10, false),
                Offer::Queued
            ));
        }
        assert!(matches!(sender.offer(log(99), 10, false), Offer::Full(_)));
        for value in 0..1000 {
            assert!(matches!(
                sender.offer(progress(value), 10, true),
                Offer::Queued
            ));
        }
        assert!(sender.push(CallEvent::Reply(Reply::Value(
            json!({"id": 1, "result": {}})
        ))));
        let mut seen = Vec::new();
        while let Some(event) = next_now(&receiver) {
            seen.push(event);
        }
        assert_eq!(
            seen.len(),
            MAX_QUEUED_NOTIFICATIONS + 2,
            "one progress, one reply"
        );
        let CallEvent::Notification(last_progress) = &seen[MAX_QUEUED_NOTIFICATIONS] else {
            panic!("progress after the logs");
        };
        assert_eq!(
            last_progress["params"]["progress"], 999,
            "the latest progress"
        );
        assert!(matches!(seen.last(), Some(CallEvent::Reply(_))));
    }

    #[test]
    fn large_notifications_are_bounded_by_bytes_and_drops_are_reported() {
        let (sender, receiver) = outbox();
        assert!(matches!(
            sender.offer(log(0), MAX_QUEUED_NOTIFICATION_BYTES, false),
            Offer::Queued
        ));
        assert!(matches!(sender.offer(log(1), 1, false), Offer::Full(_)));
        sender.count_dropped();
        sender.count_dropped();
        assert!(matches!(
            next_now(&receiver),
            Some(CallEvent::Notification(_))
        ));
        assert!(matches!(sender.offer(log(2), 1, false), Offer::Queued));
        let Some(CallEvent::Notification(notice)) = next_now(&receiver) else {
            panic!("a notice first");
        };
        assert!(
            notice["params"]["data"]
                .as_str()
                .unwrap()
                .starts_with("2 notifications"),
            "{notice}"
        );
        let Some(CallEvent::Notification(message)) = next_now(&receiver) else {
            panic!("then the message");
        };
        assert_eq!(message["params"]["data"], 2);
    }

    #[test]
    fn a_gone_reader_refuses_everything_and_a_gone_writer_ends_the_reader() {
        let (sender, receiver) = outbox();
        drop(receiver);
        assert!(matches!(sender.offer(log(0), 1, false), Offer::Gone));
        assert!(!sender.push(CallEvent::Reply(Reply::Value(json!({})))));

        let (sender, receiver) = outbox();
        assert!(sender.push(CallEvent::Reply(Reply::Value(json!({"id": 1})))));
        drop(sender);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            assert!(matches!(receiver.next().await, Some(CallEvent::Reply(_))));
            assert!(receiver.next().await.is_none());
        });
    }
}
