//! Cancellation acknowledgements: the worker tells the supervisor when the handler of a
//! request the supervisor cancelled has stopped, so a worker that honours cancellations is
//! never killed for a reply that cannot come.
//!
//! rmcp never answers a request it cancelled (it drops the handler's response), and its handler
//! task keeps running unless the handler itself watches `context.ct`. [`Acknowledging`] wraps a
//! server: it races each request's handler future with the request's cancellation token and
//! drops the handler the moment the token fires, so no handler outlives its cancellation unless
//! it blocks the thread (then nothing in this current-thread worker runs, the acknowledgement
//! included, and the supervisor's hard-cancel deadline kills it, as it should).
//!
//! The acknowledgement ([`NOTIFICATION_CANCEL_ACKNOWLEDGED`], carrying the `requestId`) is
//! sent once both have happened: the peer's `notifications/cancelled` was seen, and the
//! handler's future completed or was dropped. Waiting for the notification too closes a race:
//! a handler that finished just as the cancellation arrived may have had its response dropped
//! by rmcp, which removes the request from its table before the notification reaches us. A
//! cancellation for a request whose handler is not running — finished, or not started yet (its
//! token is then already cancelled, so its handler is never polled) — is acknowledged at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bulkhead_protocol::NOTIFICATION_CANCEL_ACKNOWLEDGED;
use rmcp::model::{
    ClientNotification, ClientRequest, CustomNotification, RequestId, ServerNotification,
    ServerResult,
};
use rmcp::service::{NotificationContext, Peer, RequestContext, Service};
use rmcp::{ErrorData, RoleServer};
use serde_json::json;

/// Where a request the wrapped server is handling stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handling {
    /// Its handler runs; no cancellation seen yet.
    Running,
    /// The peer cancelled it while its handler ran; acknowledge once the handler is gone.
    CancelledWhileRunning,
}

/// A server whose cancelled requests are stopped and acknowledged (see the module docs).
pub struct Acknowledging<S> {
    inner: S,
    handling: Arc<Mutex<HashMap<RequestId, Handling>>>,
}

impl<S> Acknowledging<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            handling: Arc::default(),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<RequestId, Handling>> {
        self.handling
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The handler of `id` starts.
    fn started(&self, id: &RequestId) {
        self.table().insert(id.clone(), Handling::Running);
    }

    /// The handler of `id` is gone. Returns whether a cancellation awaits its acknowledgement.
    fn ended(&self, id: &RequestId) -> bool {
        self.table().remove(id) == Some(Handling::CancelledWhileRunning)
    }

    /// The peer cancelled `id`. Returns whether to acknowledge now (no handler runs for it).
    fn cancelled(&self, id: &RequestId) -> bool {
        match self.table().get_mut(id) {
            Some(handling) => {
                *handling = Handling::CancelledWhileRunning;
                false
            }
            None => true,
        }
    }
}

async fn acknowledge(peer: &Peer<RoleServer>, id: &RequestId) {
    let notification = CustomNotification::new(
        NOTIFICATION_CANCEL_ACKNOWLEDGED,
        Some(json!({ "requestId": id })),
    );
    if let Err(error) = peer
        .send_notification(ServerNotification::CustomNotification(notification))
        .await
    {
        tracing::debug!(%id, "cannot acknowledge a cancellation: {error}");
    }
}

impl<S: Service<RoleServer>> Service<RoleServer> for Acknowledging<S> {
    async fn handle_request(
        &self,
        request: ClientRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<ServerResult, ErrorData> {
        let id = context.id.clone();
        let cancellation = context.ct.clone();
        let peer = context.peer.clone();
        self.started(&id);
        let result = tokio::select! {
            // A request cancelled before its handler first ran never runs at all.
            biased;
            () = cancellation.cancelled() => {
                Err(ErrorData::internal_error("the request was cancelled", None))
            }
            result = self.inner.handle_request(request, context) => result,
        };
        // The handler's future is gone here, completed or dropped.
        if self.ended(&id) {
            acknowledge(&peer, &id).await;
        }
        result
    }

    async fn handle_notification(
        &self,
        notification: ClientNotification,
        context: NotificationContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if let ClientNotification::CancelledNotification(cancelled) = &notification
            && let Some(id) = &cancelled.params.request_id
            && self.cancelled(id)
        {
            acknowledge(&context.peer, id).await;
        }
        self.inner.handle_notification(notification, context).await
    }

    fn get_info(&self) -> rmcp::model::ServerConfig {
        self.inner.get_info()
    }

    fn supported_protocol_versions(
        &self,
    ) -> std::borrow::Cow<'static, [rmcp::model::ProtocolVersion]> {
        self.inner.supported_protocol_versions()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(number: i64) -> RequestId {
        RequestId::Number(number)
    }

    #[test]
    fn a_cancellation_is_acknowledged_once_its_handler_is_gone() {
        let server = Acknowledging::new(());
        server.started(&id(1));
        assert!(!server.cancelled(&id(1)), "the handler still runs");
        assert!(server.ended(&id(1)), "acknowledged when the handler ends");
        assert!(!server.ended(&id(1)), "and only once");
    }

    #[test]
    fn a_cancellation_of_a_request_no_handler_runs_is_acknowledged_at_once() {
        let server = Acknowledging::new(());
        server.started(&id(2));
        assert!(
            !server.ended(&id(2)),
            "a finished call needs no acknowledgement"
        );
        assert!(server.cancelled(&id(2)), "finished: acknowledge at once");
        assert!(
            server.cancelled(&id(3)),
            "not started yet: acknowledge at once"
        );
    }
}
