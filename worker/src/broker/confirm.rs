//! The user's confirmation of every live order, through MCP elicitation, failing closed.
//!
//! It is driven by the broker's environment (`live`), not by any broker's name, so every live
//! broker gets it alike. How the question reaches the user depends on the request's era:
//!
//! - Protocol 2025-11-25 and older: an `elicitation/create` request to the client, sent while
//!   the tool call waits (the supervisor relays it, and refuses it at once for a client that
//!   did not declare elicitation). The call's own cancellation — the client's, or the
//!   supervisor's call deadline — ends the wait.
//! - 2026-07-28: the call answers with an input-required result asking the same question and a
//!   `requestState` sealed with an HMAC under a per-process key (rmcp's `RequestStateCodec`),
//!   bound to the tool, to a fingerprint of the order and to ten minutes. The client retries
//!   the call with the user's answer; an answer for another order, a tampered or expired state,
//!   or a client that declares no elicitation capability is refused.
//!
//! Only an `accept` whose content says `confirm: true` places the order; a decline, a cancel,
//! a timeout, an error or anything unexpected refuses it, and nothing is sent to the broker.

use std::time::Duration;

use rmcp::model::{
    InputRequest, InputRequests, InputRequiredResult, InputResponses, RequestStateCodec,
    SealOptions, ServerRequest,
};
use rmcp::service::{Peer, RoleServer};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The key of the confirmation among a 2026-07-28 call's input requests and responses.
pub const CONFIRM_INPUT_KEY: &str = "confirm_live_order";

/// How long a 2026-07-28 confirmation stays valid: time for a person to read and answer.
const STATE_TTL: Duration = Duration::from_secs(600);

/// The longest an older-era call waits for the user (the call deadline usually ends it first).
const ELICITATION_TIMEOUT: Duration = Duration::from_secs(600);

/// How the user can be asked in this call.
pub enum ConfirmChannel {
    /// Older protocol: a server-to-client elicitation request on the call's connection.
    Elicit {
        peer: Peer<RoleServer>,
        cancelled: CancellationToken,
    },
    /// 2026-07-28: an input-required result now; the answer arrives with the retry.
    InputRequired {
        client_can_elicit: bool,
        responses: Option<InputResponses>,
        state: Option<String>,
    },
    /// Nobody to ask (refuses every live order): the unit tests' channel.
    #[cfg_attr(
        not(test),
        allow(dead_code, reason = "every real call has a client to ask")
    )]
    Unavailable,
}

/// What became of a confirmation.
#[derive(Debug)]
pub enum Confirmation {
    /// Go ahead. A 2026-07-28 retry restores the `client_order_id` of the first round.
    Confirmed { client_order_id: Option<String> },
    /// Answer the call with this input-required result.
    Ask(InputRequiredResult),
    /// Do not place the order; the sentence says why.
    Refused(String),
}

/// What a sealed 2026-07-28 confirmation remembers between the rounds.
#[derive(Serialize, Deserialize)]
struct Pending {
    fingerprint: String,
    client_order_id: String,
}

/// Asks users to confirm live orders; one per session (its key never leaves the process).
pub struct Confirmer {
    codec: RequestStateCodec,
}

impl Default for Confirmer {
    fn default() -> Self {
        Self::new()
    }
}

impl Confirmer {
    /// A confirmer with a fresh key from the OS random source.
    pub fn new() -> Self {
        let mut key = vec![0u8; RequestStateCodec::MIN_KEY_LENGTH.max(32)];
        // The OS random source failing is not recoverable: a guessable key would be worse.
        getrandom::fill(&mut key).expect("the OS random number source failed");
        Self {
            codec: RequestStateCodec::new_unchecked(key),
        }
    }

    /// Asks the user to confirm `question` about the order `fingerprint` (which will be
    /// placed with `client_order_id`) in `tool`.
    pub async fn confirm(
        &self,
        channel: ConfirmChannel,
        tool: &str,
        fingerprint: &str,
        client_order_id: &str,
        question: &str,
    ) -> Confirmation {
        match channel {
            ConfirmChannel::Unavailable => Confirmation::Refused(
                "no client is attached that could confirm a live order".to_owned(),
            ),
            ConfirmChannel::Elicit { peer, cancelled } => elicit(&peer, &cancelled, question).await,
            ConfirmChannel::InputRequired {
                client_can_elicit,
                responses,
                state,
            } => match (responses, state) {
                (Some(responses), Some(state)) => {
                    self.answered(tool, fingerprint, &responses, &state)
                }
                _ if !client_can_elicit => Confirmation::Refused(
                    "this client declares no elicitation capability, so it cannot confirm a live \
                     order"
                        .to_owned(),
                ),
                _ => self.ask(tool, fingerprint, client_order_id, question),
            },
        }
    }

    fn ask(
        &self,
        tool: &str,
        fingerprint: &str,
        client_order_id: &str,
        question: &str,
    ) -> Confirmation {
        let pending = Pending {
            fingerprint: fingerprint.to_owned(),
            client_order_id: client_order_id.to_owned(),
        };
        let options = SealOptions::new()
            .associated_data(tool.as_bytes())
            .ttl(STATE_TTL);
        let sealed = match self.codec.seal_json_with(&pending, &options) {
            Ok(sealed) => sealed,
            Err(error) => {
                return Confirmation::Refused(format!("cannot ask for confirmation: {error}"));
            }
        };
        let request = match serde_json::from_value::<InputRequest>(elicitation(question)) {
            Ok(request) => request,
            Err(error) => {
                return Confirmation::Refused(format!("cannot ask for confirmation: {error}"));
            }
        };
        let mut requests = InputRequests::new();
        requests.insert(CONFIRM_INPUT_KEY.to_owned(), request);
        Confirmation::Ask(InputRequiredResult::new(Some(requests), Some(sealed)))
    }

    fn answered(
        &self,
        tool: &str,
        fingerprint: &str,
        responses: &InputResponses,
        state: &str,
    ) -> Confirmation {
        let pending: Pending = match self.codec.open_json_with(state, tool.as_bytes()) {
            Ok(pending) => pending,
            Err(_) => {
                return Confirmation::Refused(
                    "the confirmation's requestState is invalid or expired".to_owned(),
                );
            }
        };
        if pending.fingerprint != fingerprint {
            return Confirmation::Refused(
                "the confirmation was given for a different order".to_owned(),
            );
        }
        match responses.get(CONFIRM_INPUT_KEY) {
            Some(answer) if accepted(answer) => Confirmation::Confirmed {
                client_order_id: Some(pending.client_order_id),
            },
            Some(_) => Confirmation::Refused("the user did not confirm the live order".to_owned()),
            None => {
                Confirmation::Refused("the client sent no answer to the confirmation".to_owned())
            }
        }
    }
}

/// Asks an older-era client with an `elicitation/create` request.
async fn elicit(
    peer: &Peer<RoleServer>,
    cancelled: &CancellationToken,
    question: &str,
) -> Confirmation {
    let request = match serde_json::from_value::<InputRequest>(elicitation(question)) {
        Ok(InputRequest::Elicitation(request)) => ServerRequest::ElicitRequest(request),
        _ => return Confirmation::Refused("cannot ask for confirmation".to_owned()),
    };
    let answer = tokio::select! {
        answer = tokio::time::timeout(ELICITATION_TIMEOUT, peer.send_request(request)) => answer,
        () = cancelled.cancelled() => {
            return Confirmation::Refused("the call ended before the user confirmed".to_owned());
        }
    };
    match answer {
        Ok(Ok(result)) => {
            let answer = serde_json::to_value(result).unwrap_or(Value::Null);
            if accepted(&answer) {
                Confirmation::Confirmed {
                    client_order_id: None,
                }
            } else {
                Confirmation::Refused("the user did not confirm the live order".to_owned())
            }
        }
        Ok(Err(error)) => {
            Confirmation::Refused(format!("the client could not ask the user ({error})"))
        }
        Err(_) => Confirmation::Refused("the user did not answer in time".to_owned()),
    }
}

/// Whether an elicitation result accepts with `confirm: true`.
fn accepted(answer: &Value) -> bool {
    answer["action"] == "accept" && answer["content"]["confirm"] == true
}

/// The `elicitation/create` request asking `question`, with one boolean to tick.
fn elicitation(question: &str) -> Value {
    json!({
        "method": "elicitation/create",
        "params": {
            "mode": "form",
            "message": question,
            "requestedSchema": {
                "type": "object",
                "properties": {
                    "confirm": {
                        "type": "boolean",
                        "title": "Place this live order",
                        "description": "Real money: tick to place the order, leave unticked to refuse.",
                        "default": false,
                    }
                },
                "required": ["confirm"],
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modern(responses: Option<InputResponses>, state: Option<String>) -> ConfirmChannel {
        ConfirmChannel::InputRequired {
            client_can_elicit: true,
            responses,
            state,
        }
    }

    fn answer(confirm: bool) -> InputResponses {
        let mut responses = InputResponses::new();
        responses.insert(
            CONFIRM_INPUT_KEY.to_owned(),
            json!({"action": "accept", "content": {"confirm": confirm}}),
        );
        responses
    }

    async fn first_round(confirmer: &Confirmer) -> String {
        match confirmer
            .confirm(
                modern(None, None),
                "order_place",
                "buy 1 AAPL",
                "bh-1",
                "Place it?",
            )
            .await
        {
            Confirmation::Ask(result) => {
                let json = serde_json::to_value(&result).unwrap();
                assert_eq!(
                    json["inputRequests"][CONFIRM_INPUT_KEY]["method"],
                    "elicitation/create"
                );
                result.request_state.expect("a sealed state")
            }
            other => panic!("expected a question, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_ticked_answer_for_the_same_order_confirms_and_restores_the_id() {
        let confirmer = Confirmer::new();
        let state = first_round(&confirmer).await;
        let retry = modern(Some(answer(true)), Some(state));
        match confirmer
            .confirm(retry, "order_place", "buy 1 AAPL", "bh-2", "Place it?")
            .await
        {
            Confirmation::Confirmed { client_order_id } => {
                assert_eq!(client_order_id.as_deref(), Some("bh-1"));
            }
            other => panic!("expected a confirmation, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn everything_else_fails_closed() {
        let confirmer = Confirmer::new();
        let state = first_round(&confirmer).await;
        let cases = [
            (
                modern(Some(answer(false)), Some(state.clone())),
                "buy 1 AAPL",
                "order_place",
            ),
            (
                modern(Some(answer(true)), Some(state.clone())),
                "buy 9 AAPL",
                "order_place",
            ),
            (
                modern(Some(answer(true)), Some(state.clone())),
                "buy 1 AAPL",
                "order_replace",
            ),
            (
                modern(Some(answer(true)), Some(format!("{state}x"))),
                "buy 1 AAPL",
                "order_place",
            ),
            (
                modern(Some(InputResponses::new()), Some(state)),
                "buy 1 AAPL",
                "order_place",
            ),
            (
                ConfirmChannel::InputRequired {
                    client_can_elicit: false,
                    responses: None,
                    state: None,
                },
                "buy 1 AAPL",
                "order_place",
            ),
            (ConfirmChannel::Unavailable, "buy 1 AAPL", "order_place"),
        ];
        for (channel, fingerprint, tool) in cases {
            let outcome = confirmer
                .confirm(channel, tool, fingerprint, "bh-3", "?")
                .await;
            assert!(matches!(outcome, Confirmation::Refused(_)), "{outcome:?}");
        }
    }
}
