//! Who holds the HTTP connection slots, and how much of them one principal may hold.
//!
//! `--max-connections` slots are taken at `accept`, before anyone is known: a connection that
//! never finishes its headers is closed by the header timeout, and one that never finishes its
//! body by the body timeout. Once a request's principal is known, the request also takes one of
//! that principal's [`Slots::admit`] shares (`--max-connections-per-principal`, half the slots
//! by default), held until its response — a whole SSE stream included — is finished; a
//! principal at its share gets `503` and the connection is closed, which frees its slot. A
//! `subscriptions/listen` stream takes a listen share as well (`--max-listen-per-principal`).
//! So one principal can keep at most its share of the slots busy.
//!
//! A connection whose current request's headers are not complete yet — one that has sent
//! nothing or only part of its headers, first request or the next on a keep-alive connection —
//! has no principal, so it holds a slot but no share. When every slot is taken, a new connection
//! makes the one of them that has waited longest for its headers close ([`Slots::acquire`]):
//! connections that never finish their headers (slowloris, or idle keep-alive) cannot keep
//! anyone out. A client that sends its headers promptly is not at risk: under a flood of new
//! connections its own is closed only after it has waited [`EVICTABLE_AFTER`] for them, and after
//! every connection that started waiting before it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::principal::Principal;

/// The slots and shares of one HTTP front door.
pub struct Slots {
    global: Arc<Semaphore>,
    principal_share: usize,
    listen_share: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next_connection: u64,
    connections: HashMap<u64, Connection>,
    next_wait: u64,
    /// Connections whose current request's headers are not complete, by when they started
    /// waiting for them (first the one that has waited longest), to their ids and that time.
    awaiting_headers: BTreeMap<u64, (u64, Instant)>,
    requests: HashMap<Principal, usize>,
    listens: HashMap<Principal, usize>,
}

struct Connection {
    requests: usize,
    /// Whether a request ever reached the service on this connection (so a response may still
    /// be flushing when it is asked to close).
    served: bool,
    /// Its key in [`State::awaiting_headers`] while it is there.
    waiting_since: Option<u64>,
    close: Arc<Notify>,
}

impl State {
    /// `id` now waits for a request's headers (just accepted, or its last response finished).
    fn start_waiting(&mut self, id: u64) {
        let since = self.next_wait;
        let Some(connection) = self.connections.get_mut(&id) else {
            return;
        };
        self.next_wait += 1;
        connection.waiting_since = Some(since);
        self.awaiting_headers.insert(since, (id, Instant::now()));
    }

    /// `id` has its headers, or is gone.
    fn stop_waiting(&mut self, id: u64) {
        let since = self
            .connections
            .get_mut(&id)
            .and_then(|connection| connection.waiting_since.take());
        if let Some(since) = since {
            self.awaiting_headers.remove(&since);
        }
    }
}

/// How often a new connection that waits for a slot asks another connection without complete
/// headers to close: the one asked before may have completed its headers meanwhile (it then
/// finishes its request first), or none was waiting when every slot was busy with requests.
const RECLAIM_RETRY: Duration = Duration::from_millis(250);

/// How long a connection may wait for its headers before a newcomer may take its slot. An honest
/// client's headers arrive with (or right after) the handshake's last packet, so they are there
/// when the connection is accepted; but on a busy machine the server may take milliseconds to
/// read them, and evicting at once then reset honest connections whose headers were already in
/// (the chaos bench saw 14 in 36,000 under the slow-body attack). A slowloris flood makes a
/// newcomer wait about this long instead of a whole header timeout.
const EVICTABLE_AFTER: Duration = Duration::from_millis(250);

impl Slots {
    pub fn new(max_connections: usize, principal_share: usize, listen_share: usize) -> Arc<Self> {
        Arc::new(Self {
            global: Arc::new(Semaphore::new(max_connections)),
            principal_share,
            listen_share,
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A connection slot for a connection just accepted: at once if one is free, else after
    /// asking the connection that has waited longest for a request's headers to close (again every
    /// [`RECLAIM_RETRY`] while none has freed a slot).
    pub async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.global.clone().try_acquire_owned() {
            return Some(permit);
        }
        loop {
            let retry = self.reclaim_awaiting_headers();
            match tokio::time::timeout(retry, self.global.clone().acquire_owned()).await {
                Ok(permit) => return permit.ok(),
                Err(_elapsed) => continue,
            }
        }
    }

    /// Ask the connection that has waited longest for headers to close, if it has waited
    /// [`EVICTABLE_AFTER`] (it closes at once: it has no request in progress); returns when to
    /// try again if no slot has freed by then.
    fn reclaim_awaiting_headers(&self) -> Duration {
        let mut state = self.state();
        let Some(oldest) = state.awaiting_headers.first_entry() else {
            return RECLAIM_RETRY;
        };
        let (id, since) = *oldest.get();
        let waited = since.elapsed();
        if waited < EVICTABLE_AFTER {
            return EVICTABLE_AFTER - waited;
        }
        oldest.remove();
        if let Some(connection) = state.connections.get_mut(&id) {
            connection.waiting_since = None;
            tracing::debug!("closing a connection without complete headers to free a slot");
            connection.close.notify_one();
        }
        RECLAIM_RETRY
    }

    /// Register a connection, awaiting its first request's headers; dropping the registration
    /// forgets it.
    pub fn connection(self: &Arc<Self>) -> ConnectionSlot {
        let close = Arc::new(Notify::new());
        let mut state = self.state();
        let id = state.next_connection;
        state.next_connection += 1;
        state.connections.insert(
            id,
            Connection {
                requests: 0,
                served: false,
                waiting_since: None,
                close: close.clone(),
            },
        );
        state.start_waiting(id);
        ConnectionSlot {
            id,
            close,
            slots: self.clone(),
        }
    }

    /// One of `principal`'s shares for a request, or `None` when it has them all in use.
    pub fn admit(self: &Arc<Self>, principal: &Principal) -> Option<Share> {
        self.take(principal, Kind::Request)
    }

    /// One of `principal`'s listen shares, or `None` when it has them all in use.
    pub fn admit_listen(self: &Arc<Self>, principal: &Principal) -> Option<Share> {
        self.take(principal, Kind::Listen)
    }

    fn take(self: &Arc<Self>, principal: &Principal, kind: Kind) -> Option<Share> {
        let limit = match kind {
            Kind::Request => self.principal_share,
            Kind::Listen => self.listen_share,
        };
        let mut state = self.state();
        let held = kind
            .counts(&mut state)
            .entry(principal.clone())
            .or_insert(0);
        if *held >= limit {
            return None;
        }
        *held += 1;
        Some(Share {
            principal: principal.clone(),
            kind,
            slots: self.clone(),
        })
    }

    /// The share limits, for messages.
    pub fn shares(&self) -> (usize, usize) {
        (self.principal_share, self.listen_share)
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Request,
    Listen,
}

impl Kind {
    fn counts(self, state: &mut State) -> &mut HashMap<Principal, usize> {
        match self {
            Kind::Request => &mut state.requests,
            Kind::Listen => &mut state.listens,
        }
    }
}

/// A principal's share in use; released on drop.
pub struct Share {
    principal: Principal,
    kind: Kind,
    slots: Arc<Slots>,
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut state = self.slots.state();
        let counts = self.kind.counts(&mut state);
        if let Some(held) = counts.get_mut(&self.principal) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                counts.remove(&self.principal);
            }
        }
    }
}

/// A registered connection.
pub struct ConnectionSlot {
    id: u64,
    close: Arc<Notify>,
    slots: Arc<Slots>,
}

impl ConnectionSlot {
    /// Resolves when the connection is asked to close to free its slot.
    pub async fn close_requested(&self) {
        self.close.notified().await;
    }

    /// A request's headers are complete and it starts on this connection; the connection is
    /// busy until the guard (held by the response body) is dropped, then awaits the next
    /// request's headers.
    pub fn request(&self) -> RequestInProgress {
        let mut state = self.slots.state();
        state.stop_waiting(self.id);
        if let Some(connection) = state.connections.get_mut(&self.id) {
            connection.requests += 1;
            connection.served = true;
        }
        RequestInProgress {
            id: self.id,
            slots: self.slots.clone(),
        }
    }
}

impl ConnectionSlot {
    /// Whether no request has reached the service on this connection yet: nothing was ever
    /// answered, so it may be dropped at once rather than shut down gracefully.
    pub fn never_served(&self) -> bool {
        self.slots
            .state()
            .connections
            .get(&self.id)
            .is_none_or(|connection| !connection.served)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut state = self.slots.state();
        state.stop_waiting(self.id);
        state.connections.remove(&self.id);
    }
}

/// A request in progress on a connection; dropping it makes the connection await the next
/// request's headers.
pub struct RequestInProgress {
    id: u64,
    slots: Arc<Slots>,
}

impl Drop for RequestInProgress {
    fn drop(&mut self) {
        let mut state = self.slots.state();
        let Some(connection) = state.connections.get_mut(&self.id) else {
            return;
        };
        connection.requests = connection.requests.saturating_sub(1);
        if connection.requests == 0 {
            state.start_waiting(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_principal_holds_at_most_its_share_and_gets_it_back() {
        let slots = Slots::new(4, 2, 1);
        let alice = Principal::from("alice");
        let first = slots.admit(&alice).expect("first");
        let _second = slots.admit(&alice).expect("second");
        assert!(slots.admit(&alice).is_none(), "past alice's share");
        assert!(
            slots.admit(&Principal::from("bob")).is_some(),
            "bob's own share"
        );
        drop(first);
        assert!(
            slots.admit(&alice).is_some(),
            "a released share is free again"
        );
        let _listen = slots.admit_listen(&alice).expect("listen");
        assert!(slots.admit_listen(&alice).is_none());
    }

    #[tokio::test]
    async fn the_oldest_idle_connection_is_asked_to_close_when_no_slot_is_free() {
        let slots = Slots::new(1, 1, 1);
        let permit = slots.acquire().await.expect("the one slot");
        let connection = slots.connection();
        drop(connection.request());
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire().await.is_some() }
        });
        tokio::time::timeout(
            std::time::Duration::from_secs(1),
            connection.close_requested(),
        )
        .await
        .expect("the idle connection was asked to close");
        drop(connection);
        drop(permit);
        assert!(waiting.await.unwrap());
    }

    #[tokio::test]
    async fn the_connection_waiting_longest_for_headers_is_asked_to_close_first() {
        let slots = Slots::new(2, 1, 1);
        let first_permit = slots.acquire().await.expect("a slot");
        let first = slots.connection();
        let second_permit = slots.acquire().await.expect("another slot");
        let second = slots.connection();
        assert!(first.never_served() && second.never_served());
        // The first connection's request ends: it waits for headers again, since after the
        // second one started waiting.
        drop(first.request());
        assert!(!first.never_served());
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire().await.is_some() }
        });
        tokio::time::timeout(std::time::Duration::from_secs(1), second.close_requested())
            .await
            .expect("the connection that sent nothing since it was accepted was asked to close");
        drop(second);
        drop(second_permit);
        assert!(waiting.await.unwrap());
        drop(first);
        drop(first_permit);
    }
}
