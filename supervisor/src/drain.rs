//! Drain: the node state machine behind rolling upgrades.
//!
//! A node is `Serving` until an operator drains it — SIGUSR1 ([`crate::signals`]) or
//! `POST /admin/drain` — and then `Draining` for good: `/readyz` answers 503 so balancers stop
//! sending it new principals, calls in its existing sessions are served as before, and every
//! attempt to open a session here (`session_open`, a principal's first sessionless call,
//! legacy `initialize`) is refused with `-32048` and `503` + `Retry-After`, a refusal made
//! before anything runs, so a client (or a balancer) may retry it anywhere. [`exit_when_drained`]
//! then ends the process through the ordinary graceful shutdown once the last session has
//! ended, or when the drain deadline passes, whichever comes first.
//!
//! Draining is one-way on purpose: a drained node is about to be replaced, and a state that can
//! flip back would let a balancer and the node disagree about it. SIGTERM stays what it was —
//! stop within seconds, ending every session — so an operator has both: drain (sessions end
//! on their own, up to the deadline) and stop (now).

use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bulkhead_protocol::clock::rfc3339;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long a draining node waits for its sessions to end before it exits anyway: long enough
/// for an agent's multi-step task in an explicit session to finish, short enough that a rolling
/// upgrade of a handful of nodes ends within the hour. Sessionless (default) sessions get no
/// more calls once balancers move their principal, so they usually last until this deadline
/// or their idle TTL, whichever is first.
pub const DEFAULT_DRAIN_DEADLINE_SECS: f64 = 600.0;

/// Seconds a client refused by a draining node is told to wait: the shipped HAProxy
/// configuration takes a draining node out of the principal hash within two health checks
/// (1 s apart), after which a retry lands on another node.
pub const DRAINING_RETRY_AFTER: u32 = 2;

/// How often a draining node counts its sessions: a session's end is noticed within this.
const DRAIN_POLL: Duration = Duration::from_millis(100);

/// What started a drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Signal,
    AdminApi,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Signal => "SIGUSR1",
            Trigger::AdminApi => "admin API",
        }
    }
}

/// The node's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeState {
    Serving,
    Draining {
        since: SystemTime,
        deadline: SystemTime,
        trigger: Trigger,
    },
}

impl NodeState {
    fn name(&self) -> &'static str {
        match self {
            NodeState::Serving => "serving",
            NodeState::Draining { .. } => "draining",
        }
    }
}

/// Whether a drain request started the drain or found it under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begun {
    Started,
    AlreadyDraining,
}

/// The drain state of one node, shared by the registry (which refuses new sessions), the
/// signal handler, the HTTP front door and the exit watcher.
pub struct Drain {
    state: watch::Sender<NodeState>,
}

impl Default for Drain {
    fn default() -> Self {
        Self {
            state: watch::Sender::new(NodeState::Serving),
        }
    }
}

impl Drain {
    /// Start draining, to end at the latest `deadline` from now; a second request changes
    /// nothing (the first deadline stands).
    pub fn begin(&self, trigger: Trigger, deadline: Duration) -> Begun {
        let now = SystemTime::now();
        let started = self.state.send_if_modified(|state| match state {
            NodeState::Serving => {
                *state = NodeState::Draining {
                    since: now,
                    deadline: now + deadline,
                    trigger,
                };
                true
            }
            NodeState::Draining { .. } => false,
        });
        if started {
            tracing::info!(
                trigger = trigger.as_str(),
                deadline_secs = deadline.as_secs_f64(),
                "draining: no new sessions here; existing sessions are served until they end or the deadline passes"
            );
            Begun::Started
        } else {
            Begun::AlreadyDraining
        }
    }

    pub fn is_draining(&self) -> bool {
        matches!(*self.state.borrow(), NodeState::Draining { .. })
    }

    pub fn state(&self) -> NodeState {
        self.state.borrow().clone()
    }

    /// Resolves once the node drains.
    pub async fn until_draining(&self) {
        let mut receiver = self.state.subscribe();
        let _ = receiver
            .wait_for(|state| matches!(state, NodeState::Draining { .. }))
            .await;
    }

    /// The node's state as the admin API shows it.
    pub fn describe(&self, node: &str, sessions: usize) -> Value {
        let state = self.state();
        let mut described = json!({"node": node, "state": state.name(), "sessions": sessions});
        if let NodeState::Draining {
            since,
            deadline,
            trigger,
        } = state
        {
            described["draining_since"] = json!(rfc3339(since));
            described["drain_deadline"] = json!(rfc3339(deadline));
            described["drain_trigger"] = json!(trigger.as_str());
        }
        described
    }

    /// The node's state in the Prometheus text format, appended to `/metrics`.
    pub fn render_metrics(&self, node: &str, out: &mut String) {
        let state = self.state();
        let _ = writeln!(
            out,
            "# HELP bulkhead_node_state This node's state: serving, or draining (no new sessions; exits when its last session ends or at the drain deadline).\n# TYPE bulkhead_node_state gauge"
        );
        for name in ["serving", "draining"] {
            let value = u8::from(state.name() == name);
            let _ = writeln!(
                out,
                "bulkhead_node_state{{node=\"{node}\",state=\"{name}\"}} {value}"
            );
        }
        if let NodeState::Draining { deadline, .. } = state {
            let seconds = deadline
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |since_epoch| since_epoch.as_secs_f64());
            let _ = writeln!(
                out,
                "# HELP bulkhead_node_drain_deadline_seconds When a draining node exits whatever sessions are left (Unix time).\n# TYPE bulkhead_node_drain_deadline_seconds gauge\nbulkhead_node_drain_deadline_seconds{{node=\"{node}\"}} {seconds}"
            );
        }
    }
}

/// Once the node drains, wait until it has no session left (`sessions` counts them: the drain
/// knows no registry) or its deadline passes, then cancel `shutdown`, which runs the ordinary
/// graceful shutdown (the sessions still open at the deadline end there). Returns at once if
/// `shutdown` fires first.
pub async fn exit_when_drained(
    drain: Arc<Drain>,
    sessions: impl Fn() -> usize,
    shutdown: CancellationToken,
) {
    tokio::select! {
        () = drain.until_draining() => {}
        () = shutdown.cancelled() => return,
    }
    let NodeState::Draining { deadline, .. } = drain.state() else {
        return;
    };
    loop {
        let sessions = sessions();
        if sessions == 0 {
            tracing::info!("drained: the last session has ended; shutting down");
            break;
        }
        if SystemTime::now() >= deadline {
            tracing::warn!(
                sessions,
                "the drain deadline has passed with sessions still open; shutting down, which ends them"
            );
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(DRAIN_POLL) => {}
            () = shutdown.cancelled() => return,
        }
    }
    shutdown.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draining_is_one_way_and_the_first_deadline_stands() {
        let drain = Drain::default();
        assert!(!drain.is_draining());
        assert_eq!(
            drain.begin(Trigger::AdminApi, Duration::from_secs(5)),
            Begun::Started
        );
        let NodeState::Draining { deadline, .. } = drain.state() else {
            panic!("not draining");
        };
        assert_eq!(
            drain.begin(Trigger::Signal, Duration::from_secs(500)),
            Begun::AlreadyDraining
        );
        assert!(drain.is_draining());
        let NodeState::Draining {
            deadline: unchanged,
            trigger,
            ..
        } = drain.state()
        else {
            panic!("not draining");
        };
        assert_eq!((unchanged, trigger), (deadline, Trigger::AdminApi));
    }

    #[test]
    fn the_state_shows_in_the_admin_api_and_the_metrics() {
        let drain = Drain::default();
        let serving = drain.describe("n1", 3);
        assert_eq!(
            serving,
            json!({"node": "n1", "state": "serving", "sessions": 3})
        );
        let mut metrics = String::new();
        drain.render_metrics("n1", &mut metrics);
        assert!(metrics.contains("bulkhead_node_state{node=\"n1\",state=\"serving\"} 1"));
        assert!(metrics.contains("bulkhead_node_state{node=\"n1\",state=\"draining\"} 0"));
        assert!(!metrics.contains("bulkhead_node_drain_deadline_seconds"));

        drain.begin(Trigger::Signal, Duration::from_secs(60));
        let draining = drain.describe("n1", 1);
        assert_eq!(draining["state"], "draining");
        assert_eq!(draining["drain_trigger"], "SIGUSR1");
        assert!(draining["drain_deadline"].is_string());
        let mut metrics = String::new();
        drain.render_metrics("n1", &mut metrics);
        assert!(metrics.contains("bulkhead_node_state{node=\"n1\",state=\"draining\"} 1"));
        assert!(metrics.contains("bulkhead_node_drain_deadline_seconds{node=\"n1\"}"));
    }

    #[tokio::test]
    async fn until_draining_resolves_when_the_drain_begins() {
        let drain = Arc::new(Drain::default());
        let waiter = tokio::spawn({
            let drain = drain.clone();
            async move { drain.until_draining().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drain.begin(Trigger::Signal, Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("until_draining resolved")
            .unwrap();
    }
}
