//! Slots against the session limits held by sessions that are not live: one starting, or one
//! ended whose processes are not reaped yet ([`Reservation`]), and the hand-over of a new
//! session to the caller that asked for it ([`PendingOpen`]).

use std::sync::{Arc, Weak};

use tokio::sync::oneshot;

use super::{Registry, Session, SessionError, State};
use crate::principal::Principal;

/// One slot of a session that is not live but still counts against the limits: its worker is
/// starting, or it has ended and its worker is not reaped yet (a worker that leaves its process
/// group or ignores SIGTERM keeps its principal's slot until it is gone). Dropping the
/// reservation frees the slot, whatever path led there (an error, a panic, a shutdown);
/// [`Reservation::settle`] hands a starting session's slot over to the live session instead.
pub(super) struct Reservation {
    registry: Weak<Registry>,
    pub(super) principal: Principal,
    settled: bool,
}

impl Reservation {
    pub(super) fn take(registry: &Arc<Registry>, state: &mut State, principal: &Principal) -> Self {
        *state.reserved.entry(principal.clone()).or_default() += 1;
        Self {
            registry: Arc::downgrade(registry),
            principal: principal.clone(),
            settled: false,
        }
    }

    /// The session is live now and counted as such: free the slot under the same lock.
    pub(super) fn settle(mut self, state: &mut State) {
        state.release(&self.principal);
        self.settled = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        if let Some(registry) = self.registry.upgrade() {
            registry.state().release(&self.principal);
        }
    }
}

/// The caller's side of an open. The start task hands the session over through `receiver`;
/// if the caller is dropped after the session was sent but before it was received, the session
/// would be live with nobody holding its handle, so dropping this ends it. (A session sent
/// after the caller left is ended by the start task itself, which sees the send fail.)
pub(super) struct PendingOpen {
    pub(super) receiver: oneshot::Receiver<Result<Arc<Session>, SessionError>>,
    pub(super) registry: Weak<Registry>,
}

impl Drop for PendingOpen {
    fn drop(&mut self) {
        if let Ok(Ok(session)) = self.receiver.try_recv()
            && let Some(registry) = self.registry.upgrade()
        {
            tokio::spawn(async move { registry.end_unclaimed(&session).await });
        }
    }
}
