//! How a session ended, and why a session operation failed: each failure is one JSON-RPC error
//! with a stable code and a sentence a model can act on.

use bulkhead_protocol::codes;

use crate::worker::{StartError, WorkerExit};

/// How a session ended.
#[derive(Debug, Clone)]
pub enum Ended {
    Closed,
    Expired(&'static str),
    Evicted,
    Lost(WorkerExit),
    Shutdown,
}

/// Why a session operation failed; each maps to one JSON-RPC error.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("unknown session: no open session has this handle; open one with session_open")]
    NotFound,
    #[error("session {tag} was closed; open a new one with session_open")]
    Closed { tag: String },
    #[error("session {tag} expired ({why}); open a new one with session_open")]
    Expired { tag: String, why: &'static str },
    #[error(
        "session {tag} was evicted to make room for a new session; open a new one with session_open"
    )]
    Evicted { tag: String },
    #[error(
        "session {tag} is lost: its worker {exit}; its state is gone and the handle will not be reused; open a new session with session_open"
    )]
    Lost { tag: String, exit: WorkerExit },
    #[error(
        "session limit reached: {open} sessions are open (limit {limit}); close a session or retry later"
    )]
    Limit { open: usize, limit: usize },
    #[error(
        "session limit for this principal reached: {open} sessions open (limit {limit}); close one of yours or retry later"
    )]
    PrincipalLimit { open: usize, limit: usize },
    #[error("cannot start a worker for the session: {0}")]
    Unavailable(#[from] StartError),
    #[error("the supervisor is shutting down and opens no new sessions")]
    ShuttingDown,
    #[error(
        "node {node} is draining before a restart: it serves the sessions it has but opens no new one; retry shortly and you will reach another node"
    )]
    Draining { node: String },
    /// The handle names another node, which the request could not reach (see [`crate::node`]).
    #[error("{}", .0.message("open a new session with session_open"))]
    OtherNode(crate::node::OtherNode),
    #[error(
        "session {tag} already has {limit} requests in flight (the limit); wait for one to finish"
    )]
    Busy { tag: String, limit: usize },
}

impl SessionError {
    /// The JSON-RPC error code clients see.
    pub fn code(&self) -> i64 {
        match self {
            SessionError::NotFound
            | SessionError::Closed { .. }
            | SessionError::Expired { .. }
            | SessionError::Evicted { .. } => codes::SESSION_NOT_FOUND,
            SessionError::Lost { .. } | SessionError::OtherNode(_) => codes::SESSION_LOST,
            SessionError::Limit { .. } | SessionError::PrincipalLimit { .. } => {
                codes::SESSION_LIMIT
            }
            SessionError::Unavailable(_) => codes::WORKER_UNAVAILABLE,
            SessionError::ShuttingDown => codes::SHUTTING_DOWN,
            SessionError::Busy { .. } => codes::TOO_MANY_IN_FLIGHT,
            SessionError::Draining { .. } => codes::NODE_DRAINING,
        }
    }

    /// Details for the JSON-RPC error's `data`, where the error has any.
    pub fn data(&self) -> Option<serde_json::Value> {
        match self {
            SessionError::OtherNode(other) => Some(other.data()),
            _ => None,
        }
    }
}
