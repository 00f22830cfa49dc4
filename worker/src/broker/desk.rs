//! The trading desk: where a worker announces each order before sending it and reports how it
//! ended — the supervisor, which sees every session of the principal and writes the order
//! journal.
//!
//! [`PeerDesk`] sends the `bulkhead/trading/*` requests of `bulkhead_protocol::trading` to the
//! supervisor over the worker's own MCP connection (the supervisor answers them itself). Each
//! request is sent from a task of its own: rmcp refuses server-to-client requests inside a
//! handler serving a 2026-07-28 request (that era has none), but these go to the supervisor,
//! whose own connection to the worker is of the older era, so they must not inherit the
//! handler's era. An intent the desk cannot record refuses the order: nothing is sent to a
//! broker without its journal line and its daily reservation.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bulkhead_protocol::trading::{
    IntentAnswer, METHOD_ORDER_EVENT, METHOD_ORDER_INTENT, METHOD_ORDER_OUTCOME, OrderEvent,
    OrderIntent, OrderOutcome,
};
use rmcp::model::{ClientResult, CustomRequest, ServerRequest};
use rmcp::service::{Peer, RoleServer};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// How long the supervisor gets to answer: it only appends a line to a file and adds to a sum.
const DESK_TIMEOUT: Duration = Duration::from_secs(10);

/// What a desk request returns.
pub type DeskFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, DeskError>> + Send + 'a>>;

/// Why the desk did not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the supervisor could not record the order ({0})")]
pub struct DeskError(pub String);

/// Where orders are announced and recorded.
pub trait Desk: Send + Sync {
    /// Announce an order about to be sent; the answer says whether it may be.
    fn intent(&self, intent: OrderIntent) -> DeskFuture<'_, IntentAnswer>;
    /// Report how an announced order ended.
    fn outcome(&self, outcome: OrderOutcome) -> DeskFuture<'_, ()>;
    /// Record something that needs one line (a cancellation).
    fn event(&self, event: OrderEvent) -> DeskFuture<'_, ()>;
}

/// The supervisor, over the worker's MCP connection.
pub struct PeerDesk {
    peer: Peer<RoleServer>,
}

impl PeerDesk {
    pub fn new(peer: Peer<RoleServer>) -> Self {
        Self { peer }
    }

    fn send<T: Serialize, R: DeserializeOwned + Send + 'static>(
        &self,
        method: &'static str,
        params: &T,
    ) -> DeskFuture<'_, R> {
        let params = serde_json::to_value(params);
        let peer = self.peer.clone();
        Box::pin(async move {
            let params = params.map_err(|error| DeskError(error.to_string()))?;
            let request = ServerRequest::CustomRequest(CustomRequest::new(method, Some(params)));
            // A task of its own: see the module documentation on eras.
            let sent = tokio::spawn(async move {
                tokio::time::timeout(DESK_TIMEOUT, peer.send_request(request)).await
            });
            let answer = match sent.await {
                Ok(Ok(Ok(answer))) => answer,
                Ok(Ok(Err(error))) => return Err(DeskError(error.to_string())),
                Ok(Err(_)) => return Err(DeskError("no answer in time".to_owned())),
                Err(error) => return Err(DeskError(error.to_string())),
            };
            let value = match answer {
                ClientResult::CustomResult(custom) => custom.0,
                other => serde_json::to_value(other).unwrap_or(Value::Null),
            };
            serde_json::from_value(value).map_err(|error| DeskError(error.to_string()))
        })
    }
}

impl Desk for PeerDesk {
    fn intent(&self, intent: OrderIntent) -> DeskFuture<'_, IntentAnswer> {
        self.send(METHOD_ORDER_INTENT, &intent)
    }

    fn outcome(&self, outcome: OrderOutcome) -> DeskFuture<'_, ()> {
        let sent = self.send::<_, Value>(METHOD_ORDER_OUTCOME, &outcome);
        Box::pin(async move { sent.await.map(|_| ()) })
    }

    fn event(&self, event: OrderEvent) -> DeskFuture<'_, ()> {
        let sent = self.send::<_, Value>(METHOD_ORDER_EVENT, &event);
        Box::pin(async move { sent.await.map(|_| ()) })
    }
}

#[cfg(test)]
pub mod test_desk {
    //! An in-process desk for unit tests: it keeps a daily total against a cap and the
    //! records it was sent, as the supervisor's would.

    use std::sync::Mutex;

    use rust_decimal::Decimal;
    use serde_json::{Value, json};

    use super::*;

    #[derive(Default)]
    pub struct LocalDesk {
        pub max_daily_notional: Option<Decimal>,
        state: Mutex<State>,
    }

    #[derive(Default)]
    struct State {
        used: Decimal,
        pending: Vec<(String, Decimal)>,
        records: Vec<Value>,
    }

    impl LocalDesk {
        pub fn with_daily_cap(cap: Decimal) -> Self {
            Self {
                max_daily_notional: Some(cap),
                ..Self::default()
            }
        }

        pub fn records(&self) -> Vec<Value> {
            self.state.lock().unwrap().records.clone()
        }

        pub fn used(&self) -> Decimal {
            self.state.lock().unwrap().used
        }
    }

    impl Desk for LocalDesk {
        fn intent(&self, intent: OrderIntent) -> DeskFuture<'_, IntentAnswer> {
            let mut state = self.state.lock().unwrap();
            let pending: Decimal = state.pending.iter().map(|(_, amount)| amount).sum();
            let total = state.used + pending + intent.counted_notional;
            state
                .records
                .push(json!({"event": "intent", "intent": intent}));
            let answer = match self.max_daily_notional {
                Some(cap) if total > cap => IntentAnswer {
                    accepted: false,
                    intent_id: None,
                    refusal: Some(format!("over the daily cap of {cap}")),
                },
                _ => {
                    let id = format!("local-{}", state.records.len());
                    state.pending.push((id.clone(), intent.counted_notional));
                    IntentAnswer {
                        accepted: true,
                        intent_id: Some(id),
                        refusal: None,
                    }
                }
            };
            Box::pin(std::future::ready(Ok(answer)))
        }

        fn outcome(&self, outcome: OrderOutcome) -> DeskFuture<'_, ()> {
            let mut state = self.state.lock().unwrap();
            if let Some(index) = state
                .pending
                .iter()
                .position(|(id, _)| *id == outcome.intent_id)
            {
                let (_, amount) = state.pending.remove(index);
                if outcome.result.counts() {
                    state.used += amount;
                }
            }
            state
                .records
                .push(json!({"event": "outcome", "outcome": outcome}));
            Box::pin(std::future::ready(Ok(())))
        }

        fn event(&self, event: OrderEvent) -> DeskFuture<'_, ()> {
            let mut state = self.state.lock().unwrap();
            state
                .records
                .push(json!({"event": "event", "detail": event}));
            Box::pin(std::future::ready(Ok(())))
        }
    }
}
