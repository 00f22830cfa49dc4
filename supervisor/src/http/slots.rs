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
//! Connections between requests (idle keep-alive, after at least one request) hold a slot but
//! no share; when every slot is taken, the oldest idle connection is asked to close
//! ([`Slots::acquire`]), so idle connections never keep anyone out either.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

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
    /// Idle connections by id, oldest first.
    idle: BTreeSet<u64>,
    requests: HashMap<Principal, usize>,
    listens: HashMap<Principal, usize>,
}

struct Connection {
    requests: usize,
    close: Arc<Notify>,
}

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
    /// asking the oldest idle keep-alive connection to close.
    pub async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.global.clone().try_acquire_owned() {
            return Some(permit);
        }
        self.reclaim_idle();
        self.global.clone().acquire_owned().await.ok()
    }

    /// Ask the oldest idle connection to close (it closes at once: it has no request).
    fn reclaim_idle(&self) {
        let mut state = self.state();
        let Some(id) = state.idle.pop_first() else {
            return;
        };
        if let Some(connection) = state.connections.get(&id) {
            tracing::debug!("closing an idle keep-alive connection to free a slot");
            connection.close.notify_one();
        }
    }

    /// Register a connection; dropping the registration forgets it.
    pub fn connection(self: &Arc<Self>) -> ConnectionSlot {
        let close = Arc::new(Notify::new());
        let mut state = self.state();
        let id = state.next_connection;
        state.next_connection += 1;
        state.connections.insert(
            id,
            Connection {
                requests: 0,
                close: close.clone(),
            },
        );
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

    /// A request starts on this connection; it is busy until the guard (held by the response
    /// body) is dropped, then idle.
    pub fn request(&self) -> RequestInProgress {
        let mut state = self.slots.state();
        state.idle.remove(&self.id);
        if let Some(connection) = state.connections.get_mut(&self.id) {
            connection.requests += 1;
        }
        RequestInProgress {
            id: self.id,
            slots: self.slots.clone(),
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut state = self.slots.state();
        state.connections.remove(&self.id);
        state.idle.remove(&self.id);
    }
}

/// A request in progress on a connection; dropping it makes the connection idle again.
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
            state.idle.insert(self.id);
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
}
