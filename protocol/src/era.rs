//! The two eras of MCP: the `initialize` lifecycle and 2026-07-28's per-request envelope.
//!
//! A client of the older era negotiates one version per connection with `initialize`; a
//! 2026-07-28 request carries its version and client capabilities in its own `_meta`. The
//! supervisor decides the era of every request, and of every wrapped server's connection, with
//! this one type.

use crate::{PROTOCOL_NO_INITIALIZE, SUPPORTED_PROTOCOL_VERSIONS};

/// The era a request, a client or a wrapped server's connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Era {
    /// The `initialize` lifecycle (protocol 2025-11-25 and older).
    Initialize,
    /// Per-request `_meta` envelopes (2026-07-28 and later): `server/discover`, `resultType`,
    /// cache hints.
    Inline,
}

impl Era {
    /// The era of a protocol version. Versions are ISO dates, so lexical order is
    /// chronological order.
    pub fn of_version(version: &str) -> Self {
        if version >= PROTOCOL_NO_INITIALIZE {
            Era::Inline
        } else {
            Era::Initialize
        }
    }

    /// Whether requests of this era carry their version in `_meta`.
    pub fn is_inline(self) -> bool {
        self == Era::Inline
    }
}

/// Whether `version` is one Bulkhead serves.
pub fn is_supported_protocol_version(version: &str) -> bool {
    SUPPORTED_PROTOCOL_VERSIONS.contains(&version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_version_has_its_era() {
        let eras: Vec<Era> = SUPPORTED_PROTOCOL_VERSIONS
            .iter()
            .map(|version| Era::of_version(version))
            .collect();
        assert_eq!(
            eras,
            [
                Era::Inline,
                Era::Initialize,
                Era::Initialize,
                Era::Initialize
            ]
        );
        assert!(Era::of_version("2027-01-01").is_inline());
        assert!(!is_supported_protocol_version("2027-01-01"));
    }
}
