//! Who a session belongs to: the principal a transport names for each caller — `local` over
//! stdio, a token's or a peer uid's name over HTTP — under which sessions, limits, credentials,
//! rails and audit lines are kept apart.

use std::sync::Arc;

/// A principal's name; cheap to clone, compared by value.
pub type Principal = Arc<str>;

/// The one principal of a stdio connection: the local user who launched the supervisor.
pub const LOCAL: &str = "local";
