//! The trading desk: the supervisor's answer to its workers' `bulkhead/trading/*` requests.
//!
//! One desk serves every session. A worker's requests are answered for the principal and
//! session its worker was bound to when the session opened ([`Binding`]): a worker can never
//! act for another principal, and a worker that belongs to no session (the catalog's, an idle
//! pool worker) gets refusals. An intent is checked against the principal's daily cap,
//! reserved, and journaled (flushed to disk) before it is accepted; if the journal cannot be
//! written the reservation is released and the order refused. Outcomes settle the reservation
//! and are journaled; one-line records (cancellations, refusals) are journaled only.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bulkhead_protocol::clock::rfc3339;
use bulkhead_protocol::trading::{
    IntentAnswer, METHOD_ORDER_EVENT, METHOD_ORDER_INTENT, METHOD_ORDER_OUTCOME, OrderEvent,
    OrderIntent, OrderOutcome, OrderResult, Recorded, TradingPolicy,
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::TradingConfig;
use super::journal::{Journal, today_totals};
use super::ledger::DailyLedger;
use crate::principal::Principal;

/// Longest reason kept in a journal line: a broker's error body can be long.
const MAX_REASON_CHARS: usize = 1_000;

/// Who a worker works for, once its session is known.
#[derive(Debug, Clone)]
pub struct Binding {
    pub principal: Principal,
    pub session_tag: String,
}

/// Why the desk did not start.
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error("cannot open the order journal {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot read the order journal {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
}

/// What an outcome line repeats from its intent, so each line reads on its own.
#[derive(Debug, Clone)]
struct IntentSummary {
    principal: String,
    fields: Map<String, Value>,
}

/// The supervisor's trading desk.
pub struct TradingDesk {
    config: TradingConfig,
    ledger: Mutex<DailyLedger>,
    journal: Option<Journal>,
    /// Random per supervisor start: intent ids stay unique across restarts in one journal.
    run: String,
    next_intent: AtomicU64,
    intents: Mutex<HashMap<String, IntentSummary>>,
}

impl std::fmt::Debug for TradingDesk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TradingDesk")
            .field("journal", &self.journal)
            .finish_non_exhaustive()
    }
}

/// Today's date in UTC, `YYYY-MM-DD`.
fn today() -> String {
    rfc3339(SystemTime::now())[..10].to_owned()
}

impl TradingDesk {
    /// Opens the journal (if configured) and rebuilds today's totals from it.
    pub fn start(config: TradingConfig) -> Result<Self, DeskError> {
        let mut ledger = DailyLedger::default();
        let journal = match &config.journal {
            None => None,
            Some(path) => {
                let shown = path.display().to_string();
                let (totals, unreadable) =
                    today_totals(path, &today()).map_err(|source| DeskError::Read {
                        path: shown.clone(),
                        source,
                    })?;
                if unreadable > 0 {
                    tracing::warn!(journal = %shown, lines = unreadable, "skipped unreadable order journal lines");
                }
                for (principal, amount) in totals {
                    ledger.add(&today(), &principal, amount);
                }
                Some(Journal::open(path).map_err(|source| DeskError::Open {
                    path: shown,
                    source,
                })?)
            }
        };
        let mut run = [0u8; 4];
        // The OS random source failing is not recoverable here either.
        getrandom::fill(&mut run).expect("the OS random number source failed");
        Ok(Self {
            config,
            ledger: Mutex::new(ledger),
            journal,
            run: run.iter().map(|byte| format!("{byte:02x}")).collect(),
            next_intent: AtomicU64::new(1),
            intents: Mutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> &TradingConfig {
        &self.config
    }

    /// The trading policy a worker of `principal` gets in its hello.
    pub fn policy_for(&self, principal: Option<&str>) -> TradingPolicy {
        self.config.policy_for(principal)
    }

    /// Answers one `bulkhead/trading/*` request of the worker bound to `binding`.
    pub async fn answer(
        &self,
        binding: &Binding,
        method: &str,
        params: Option<Value>,
    ) -> Result<Value, String> {
        let params = params.unwrap_or(Value::Null);
        match method {
            METHOD_ORDER_INTENT => self.intent(binding, parse(params)?).await,
            METHOD_ORDER_OUTCOME => self.outcome(binding, parse(params)?).await,
            METHOD_ORDER_EVENT => self.record(binding, parse(params)?).await,
            other => Err(format!("unknown control method {other}")),
        }
    }

    async fn intent(&self, binding: &Binding, intent: OrderIntent) -> Result<Value, String> {
        let intent_id = format!(
            "{}-{}",
            self.run,
            self.next_intent.fetch_add(1, Ordering::Relaxed)
        );
        let cap = self
            .config
            .policy_for(Some(&binding.principal))
            .rails
            .max_daily_notional;
        let reserved = lock(&self.ledger).reserve(
            &today(),
            &binding.principal,
            &intent_id,
            intent.counted_notional,
            cap,
        );
        let mut line = line("intent", binding);
        line.insert("intent_id".into(), json!(intent_id));
        extend(&mut line, &intent);
        if let Err(refusal) = reserved {
            line.insert("event".into(), json!("record"));
            line.insert("result".into(), json!(OrderResult::Refused));
            line.insert("reason".into(), json!(refusal.to_string()));
            self.write(&line).await.ok();
            return answer(IntentAnswer {
                accepted: false,
                intent_id: None,
                refusal: Some(refusal.to_string()),
            });
        }
        if let Err(error) = self.write(&line).await {
            lock(&self.ledger).settle(&intent_id, false);
            return answer(IntentAnswer {
                accepted: false,
                intent_id: None,
                refusal: Some(format!(
                    "the order journal cannot be written ({error}); nothing was placed"
                )),
            });
        }
        let keep = ["broker", "environment", "client_order_id", "symbol", "side"];
        let fields = keep
            .iter()
            .filter_map(|key| Some(((*key).to_owned(), line.get(*key)?.clone())))
            .collect();
        lock(&self.intents).insert(
            intent_id.clone(),
            IntentSummary {
                principal: binding.principal.to_string(),
                fields,
            },
        );
        answer(IntentAnswer {
            accepted: true,
            intent_id: Some(intent_id),
            refusal: None,
        })
    }

    async fn outcome(&self, binding: &Binding, outcome: OrderOutcome) -> Result<Value, String> {
        // An outcome settles only its own principal's intents.
        let summary = {
            let mut intents = lock(&self.intents);
            match intents.get(&outcome.intent_id) {
                Some(summary) if *summary.principal == *binding.principal => {
                    intents.remove(&outcome.intent_id)
                }
                _ => None,
            }
        };
        let Some(summary) = summary else {
            return Err(format!("unknown intent {}", outcome.intent_id));
        };
        lock(&self.ledger).settle(&outcome.intent_id, outcome.result.counts());
        let mut line = line("outcome", binding);
        line.extend(summary.fields);
        extend(&mut line, &outcome);
        clip_reason(&mut line);
        self.write(&line).await.map_err(|error| error.to_string())?;
        answer(Recorded { recorded: true })
    }

    async fn record(&self, binding: &Binding, event: OrderEvent) -> Result<Value, String> {
        let mut line = line("record", binding);
        extend(&mut line, &event);
        clip_reason(&mut line);
        self.write(&line).await.map_err(|error| error.to_string())?;
        answer(Recorded { recorded: true })
    }

    async fn write(&self, line: &Map<String, Value>) -> std::io::Result<()> {
        match &self.journal {
            Some(journal) => journal.append(&Value::Object(line.clone())).await,
            None => Ok(()),
        }
    }
}

/// The start of a journal line: time, event, principal, session tag.
fn line(event: &str, binding: &Binding) -> Map<String, Value> {
    let mut line = Map::new();
    line.insert("time".into(), json!(rfc3339(SystemTime::now())));
    line.insert("event".into(), json!(event));
    line.insert("principal".into(), json!(binding.principal.as_ref()));
    line.insert("session".into(), json!(binding.session_tag));
    line
}

/// Adds `record`'s fields (nulls left out) to `line`.
fn extend(line: &mut Map<String, Value>, record: &impl serde::Serialize) {
    if let Ok(Value::Object(fields)) = serde_json::to_value(record) {
        line.extend(fields.into_iter().filter(|(_, value)| !value.is_null()));
    }
}

fn clip_reason(line: &mut Map<String, Value>) {
    if let Some(Value::String(reason)) = line.get_mut("reason")
        && reason.chars().count() > MAX_REASON_CHARS
    {
        *reason = reason.chars().take(MAX_REASON_CHARS).collect::<String>() + "…";
    }
}

fn parse<T: DeserializeOwned>(params: Value) -> Result<T, String> {
    serde_json::from_value(params).map_err(|error| format!("malformed control request: {error}"))
}

fn answer(value: impl serde::Serialize) -> Result<Value, String> {
    serde_json::to_value(value).map_err(|error| error.to_string())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain data behind the lock: recover it after a panic rather than stop trading.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Answers a worker's `bulkhead/` request on a task of its own and writes the reply to the
/// worker's socket (`reply`), so the worker's actor never waits on the journal. Without a desk
/// (a wrapped server) or a binding (a worker of no session) the request is refused; it is never
/// relayed to a client.
pub fn serve_control(
    desk: Option<std::sync::Arc<TradingDesk>>,
    binding: Option<Binding>,
    id: Value,
    method: String,
    params: Option<Value>,
    reply: std::sync::Arc<bulkhead_protocol::writer::FrameWriter>,
) {
    use bulkhead_protocol::{codes, jsonrpc};
    tokio::spawn(async move {
        let answered = match (desk, binding) {
            (Some(desk), Some(binding)) => desk.answer(&binding, &method, params).await,
            (None, _) => Err(format!("{method}: this worker has no trading desk")),
            (Some(_), None) => Err(format!("{method}: this worker belongs to no session")),
        };
        let frame = match answered {
            Ok(result) => jsonrpc::response(&id, result),
            Err(message) => jsonrpc::error_response(&id, codes::INVALID_REQUEST, &message, None),
        };
        let _ = reply.push(jsonrpc::to_frame(&frame));
    });
}
