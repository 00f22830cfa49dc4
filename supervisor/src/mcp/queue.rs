//! One connection's requests in both directions: the client's requests in flight (by id, so
//! `notifications/cancelled` can cancel them) and the workers' requests relayed to the client
//! (under ids of the supervisor's own, so the client's answer finds its way back).
//!
//! Cancelling by id is only sound when one client owns the ids: over stdio and in a legacy
//! HTTP session. A 2026-07-28 HTTP context is shared by every client of a principal, each
//! numbering its requests its own way, so there an id names no request: such a queue keeps no
//! ids, and a request is cancelled only by closing its own response stream.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::worker::WorkerHandle;

/// A worker's request relayed to the client.
struct Relayed {
    worker: WorkerHandle,
    worker_request_id: Value,
}

/// The requests of one connection.
pub(super) struct RequestQueue {
    /// Whether one client owns the ids, so they may be used to cancel.
    cancel_by_id: bool,
    /// The client's requests in flight, by id (as JSON text); only when `cancel_by_id`.
    incoming: Mutex<HashMap<String, CancellationToken>>,
    /// Requests a worker sent to the client, by the id the client sees.
    relayed: Mutex<HashMap<String, Relayed>>,
    next_relay_id: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain maps behind the lock: recover them after a panic rather than stop serving.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RequestQueue {
    pub(super) fn new(cancel_by_id: bool) -> Self {
        Self {
            cancel_by_id,
            incoming: Mutex::new(HashMap::new()),
            relayed: Mutex::new(HashMap::new()),
            next_relay_id: AtomicU64::new(1),
        }
    }

    /// A token that cancels request `id`, findable by its id when this queue cancels by id;
    /// [`RequestQueue::finish`] the request when it ends.
    pub(super) fn start(&self, id: &Value) -> CancellationToken {
        let token = CancellationToken::new();
        if self.cancel_by_id {
            lock(&self.incoming).insert(id.to_string(), token.clone());
        }
        token
    }

    /// Request `id` ended (answered or cancelled).
    pub(super) fn finish(&self, id: &Value) {
        if self.cancel_by_id {
            lock(&self.incoming).remove(&id.to_string());
        }
    }

    /// The client cancelled `request_id` (ignored where ids name no request).
    pub(super) fn cancel(&self, request_id: Option<&Value>) {
        if !self.cancel_by_id {
            return;
        }
        let token = request_id.and_then(|id| lock(&self.incoming).remove(&id.to_string()));
        if let Some(token) = token {
            token.cancel();
        }
    }

    /// Relay a worker's request to the client under an id of our own. Returns the key under
    /// which the client's answer is awaited, and the request as the client is to see it.
    pub(super) fn relay(&self, worker: &WorkerHandle, mut request: Value) -> (String, Value) {
        let number = self.next_relay_id.fetch_add(1, Ordering::Relaxed);
        let outward_id = json!(format!("bulkhead-{number}"));
        let worker_request_id = std::mem::replace(&mut request["id"], outward_id.clone());
        let key = outward_id.to_string();
        lock(&self.relayed).insert(
            key.clone(),
            Relayed {
                worker: worker.clone(),
                worker_request_id,
            },
        );
        (key, request)
    }

    /// Pass the client's answer to a relayed request back to the worker that asked.
    pub(super) fn answer(&self, id: &Value, mut answer: Value) {
        let relayed = lock(&self.relayed).remove(&id.to_string());
        match relayed {
            Some(relayed) => {
                answer["id"] = relayed.worker_request_id;
                relayed.worker.respond(answer);
            }
            None => tracing::debug!(%id, "ignoring a response to a request this server never sent"),
        }
    }

    /// Forget relayed requests nobody will answer now (their call ended).
    pub(super) fn forget_relayed(&self, keys: &[String]) {
        if keys.is_empty() {
            return;
        }
        let mut relayed = lock(&self.relayed);
        for key in keys {
            relayed.remove(key);
        }
    }
}

/// The requests relayed for one call; dropping it forgets those still unanswered, so a client
/// that never answers leaves nothing behind.
pub(super) struct RelayedForCall<'a> {
    queue: &'a RequestQueue,
    keys: Vec<String>,
}

impl<'a> RelayedForCall<'a> {
    pub(super) fn new(queue: &'a RequestQueue) -> Self {
        Self {
            queue,
            keys: Vec::new(),
        }
    }

    /// Relay `request` for this call (see [`RequestQueue::relay`]).
    pub(super) fn relay(&mut self, worker: &WorkerHandle, request: Value) -> Value {
        let (key, request) = self.queue.relay(worker, request);
        self.keys.push(key);
        request
    }
}

impl Drop for RelayedForCall<'_> {
    fn drop(&mut self) {
        self.queue.forget_relayed(&self.keys);
    }
}
