//! Placing an order on Alpaca exactly once.
//!
//! Every order carries a `client_order_id` (the tools generate one when the caller gave none),
//! and Alpaca refuses a second order with an id already used in the account (422, "client
//! order id must be unique"). So a `POST /v2/orders` is never retried blindly; instead:
//!
//! - **Answered**: the order, as placed.
//! - **Refused as a duplicate**: the order with that id is fetched; if it is for the same
//!   symbol, side and amount it is returned with `replayed` set (a retry of an order that was
//!   placed), otherwise the reuse is refused with a sentence naming the original.
//! - **No answer** (a timeout, a connection dropped after the request went out, a 5xx): the
//!   order may or may not exist, so it is looked up by `client_order_id` before answering —
//!   found: it is returned, with a note saying how it was found; not found: the caller hears
//!   it was not placed; the look-up itself failed: the caller hears that nobody knows yet, and
//!   how to find out. Placing again with the same `client_order_id` is always safe.
//! - **Not sent** (no connection could be made): it was not placed.

use reqwest::StatusCode;

use super::AlpacaBroker;
use super::http::{Api, Failure, Request, refusal};
use super::wire::{NewOrder, WireOrder, alpaca_symbol, same_order};
use crate::broker::{BrokerError, Credentials, Order, OrderRequest, Placement};

/// What Alpaca's duplicate-id refusal says (422), with underscores read as spaces.
const DUPLICATE_ID_MESSAGE: &str = "client order id must be unique";

impl AlpacaBroker {
    pub(super) async fn place(
        &self,
        credentials: &Credentials,
        request: OrderRequest,
    ) -> Result<Placement, BrokerError> {
        let symbol = alpaca_symbol(&request.symbol);
        let body = NewOrder::from_request(&request, &symbol);
        let body = serde_json::to_value(&body).map_err(|error| BrokerError::Rejected {
            broker: self.name.clone(),
            reason: format!("the order could not be encoded: {error}"),
        })?;
        let post = Request::get(Api::Trading, "/v2/orders")
            .method(reqwest::Method::POST)
            .body(body);
        let failure = match self.http.send::<WireOrder>(credentials, post).await {
            Ok(order) => return Ok(placed(order.into_model())),
            Err(failure) => failure,
        };
        match failure {
            Failure::Status { status, reason, .. } if is_duplicate(status, &reason) => {
                self.replay(credentials, &request, &symbol).await
            }
            Failure::Status { status, reason, .. } if status.is_server_error() => {
                let what = format!("{} answered {status}: {reason}", self.name);
                self.reconcile(credentials, &request, what).await
            }
            Failure::NoAnswer { reason } => self.reconcile(credentials, &request, reason).await,
            Failure::NotSent { reason } => Err(BrokerError::NotPlaced {
                broker: self.name.clone(),
                client_order_id: request.client_order_id,
                reason,
            }),
            Failure::Status { status, reason, .. }
                if status == StatusCode::FORBIDDEN
                    || status == StatusCode::UNPROCESSABLE_ENTITY =>
            {
                Err(refusal(self.name.clone(), &reason, Some(&request.symbol)))
            }
            status => Err(self.http.error(status)),
        }
    }

    /// The id was used before: the original order if it is this one, a refusal otherwise.
    async fn replay(
        &self,
        credentials: &Credentials,
        request: &OrderRequest,
        symbol: &str,
    ) -> Result<Placement, BrokerError> {
        let original = match self
            .by_client_order_id(credentials, &request.client_order_id)
            .await
        {
            Ok(Some(order)) => order,
            Ok(None) => {
                return Err(BrokerError::Rejected {
                    broker: self.name.clone(),
                    reason: format!(
                        "client_order_id {} was already used and its order cannot be found; \
                         use a new client_order_id",
                        request.client_order_id
                    ),
                });
            }
            Err(failure) => return Err(self.http.error(failure)),
        };
        if same_order(&original, request, symbol) {
            Ok(Placement {
                order: original,
                replayed: true,
                note: None,
            })
        } else {
            Err(BrokerError::ClientOrderIdReused {
                client_order_id: request.client_order_id.clone(),
                original: format!("order {}: {}", original.order_id, original.summary()),
            })
        }
    }

    /// The POST got no usable answer: find out whether the order exists before answering.
    async fn reconcile(
        &self,
        credentials: &Credentials,
        request: &OrderRequest,
        what_happened: String,
    ) -> Result<Placement, BrokerError> {
        let client_order_id = &request.client_order_id;
        tracing::warn!(
            broker = %self.name,
            %client_order_id,
            reason = %what_happened,
            "order placement got no answer; looking the order up by client_order_id"
        );
        match self.by_client_order_id(credentials, client_order_id).await {
            Ok(Some(order)) => Ok(Placement {
                order,
                replayed: false,
                note: Some(format!(
                    "{what_happened}; the order was then found by its client_order_id, so it \
                     was placed exactly once"
                )),
            }),
            Ok(None) => Err(BrokerError::NotPlaced {
                broker: self.name.clone(),
                client_order_id: client_order_id.clone(),
                reason: format!("{what_happened}, and no order with its client_order_id exists"),
            }),
            Err(failure) => {
                let lookup = match failure {
                    Failure::Status { status, reason, .. } => format!("{status}: {reason}"),
                    Failure::NotSent { reason } | Failure::NoAnswer { reason } => reason,
                    Failure::UnusableKeys => "the keys cannot be sent".to_owned(),
                };
                Err(BrokerError::PlacementUnknown {
                    broker: self.name.clone(),
                    client_order_id: client_order_id.clone(),
                    reason: format!("{what_happened}; looking it up failed too ({lookup})"),
                })
            }
        }
    }

    /// The order with `client_order_id`, or `None` when Alpaca has none.
    pub(super) async fn by_client_order_id(
        &self,
        credentials: &Credentials,
        client_order_id: &str,
    ) -> Result<Option<Order>, Failure> {
        let lookup = Request::get(Api::Trading, "/v2/orders:by_client_order_id")
            .query("client_order_id", client_order_id)
            .query("nested", "true");
        match self.http.send::<WireOrder>(credentials, lookup).await {
            Ok(order) => Ok(Some(order.into_model())),
            Err(Failure::Status {
                status: StatusCode::NOT_FOUND,
                ..
            }) => Ok(None),
            Err(failure) => Err(failure),
        }
    }
}

fn placed(order: Order) -> Placement {
    Placement {
        order,
        replayed: false,
        note: None,
    }
}

/// Whether Alpaca refused the order because its `client_order_id` was already used.
fn is_duplicate(status: StatusCode, reason: &str) -> bool {
    status == StatusCode::UNPROCESSABLE_ENTITY
        && reason
            .to_ascii_lowercase()
            .replace('_', " ")
            .contains(DUPLICATE_ID_MESSAGE)
}
