//! A connection's default session: what a call without `session` uses, opened on first use and
//! replaced — with a notice in the reply — when it was lost, expired or evicted.

use std::sync::Arc;

use crate::principal::Principal;
use crate::session::{Ended, Registry, Session, SessionError};

/// The default session slot of one connection.
#[derive(Default)]
pub(super) struct DefaultSession {
    /// Held across the open, so concurrent first calls share one session.
    slot: tokio::sync::Mutex<Option<Arc<Session>>>,
}

impl DefaultSession {
    /// The default session, opened (or replaced) now if need be; with a replacement comes the
    /// notice that tells the caller its earlier state is gone.
    pub(super) async fn get(
        &self,
        registry: &Arc<Registry>,
        principal: &Principal,
    ) -> Result<(Arc<Session>, Option<String>), SessionError> {
        let mut slot = self.slot.lock().await;
        let mut notice = None;
        if let Some(current) = slot.as_ref() {
            match registry.get(&current.handle, principal) {
                Ok(session) => return Ok((session, None)),
                Err(error) => notice = replacement_notice(&error),
            }
        }
        let session = registry.open_default(principal).await?;
        *slot = Some(session.clone());
        if let Some(notice) = &notice {
            tracing::info!(session = %session.tag, "default session replaced: {notice}");
        }
        Ok((session, notice))
    }

    /// The default session's handle, if the slot is free to look at and holds one.
    pub(super) fn handle(&self) -> Option<String> {
        let slot = self.slot.try_lock().ok()?;
        slot.as_ref().map(|session| session.handle.clone())
    }

    /// Make `session` the default session (taken over in a reload).
    pub(super) fn set(&self, session: Arc<Session>) {
        if let Ok(mut slot) = self.slot.try_lock() {
            *slot = Some(session);
        }
    }

    /// End the default session, if there is one (legacy HTTP `DELETE`).
    pub(super) async fn close(&self, registry: &Arc<Registry>) {
        let session = self.slot.lock().await.take();
        if let Some(session) = session {
            registry.end(&session, Ended::Closed).await;
        }
    }

    /// Whether the default session ended for good (closed, expired, evicted) rather than
    /// crashed; a legacy HTTP session whose worker ended so is over.
    pub(super) async fn ended(&self, registry: &Registry, principal: &Principal) -> bool {
        let slot = self.slot.lock().await;
        let Some(session) = slot.as_ref() else {
            return false;
        };
        matches!(
            registry.get(&session.handle, principal),
            Err(SessionError::Closed { .. }
                | SessionError::Expired { .. }
                | SessionError::Evicted { .. }
                | SessionError::NotFound)
        )
    }
}

/// What a caller is told when its default session had to be replaced because of `error`.
fn replacement_notice(error: &SessionError) -> Option<String> {
    match error {
        SessionError::Lost { exit, .. } => Some(format!(
            "the previous default session was lost (its worker {exit}); its state was lost and this call ran in a fresh default session"
        )),
        SessionError::Expired { why, .. } => Some(format!(
            "the previous default session {why}; its state was lost and this call ran in a fresh default session"
        )),
        SessionError::Evicted { .. } => Some("the previous default session was evicted at the session limit; its state was lost and this call ran in a fresh default session".to_string()),
        _ => None,
    }
}
