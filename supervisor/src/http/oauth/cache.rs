//! Tokens already verified, so a client's every request does not pay for a signature check
//! (an RSA verification is most of an OAuth request's cost in the supervisor).
//!
//! Entries are keyed by the SHA-256 of the token — the token itself is not kept — and hold what
//! verification granted, the token's `exp`/`nbf`, and the generation of its issuer's key set
//! when it was checked. An entry is used only while the token would still pass the same time
//! checks (with the same leeway) and while the issuer's keys are those it was checked against:
//! any key refresh makes every earlier entry of that issuer miss, so a withdrawn key stops
//! counting as soon as the keys are fetched again. Only successes are cached. The map is
//! bounded; when full, expired entries go, and if that frees nothing, all of them do.

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::validate::{Grant, LEEWAY_SECS};

/// Verified tokens kept at once: far more than the clients of one supervisor hold at a time,
/// and about 2 MB at most.
const MAX_CACHED_TOKENS: usize = 10_000;

struct Entry {
    grant: Grant,
    issuer: usize,
    generation: u64,
}

/// Verified tokens by digest.
#[derive(Default)]
pub struct VerifiedTokens {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

/// The digest a token is cached under.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl VerifiedTokens {
    /// What `token` (by its digest) was granted, if it was verified under the issuer's current
    /// keys and its time window still holds at `now` (seconds since the epoch).
    pub fn get(
        &self,
        digest: &[u8; 32],
        now: u64,
        generation: impl Fn(usize) -> u64,
    ) -> Option<Grant> {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = entries.get(digest)?;
        if entry.generation == generation(entry.issuer) && is_current(&entry.grant, now) {
            return Some(entry.grant.clone());
        }
        entries.remove(digest);
        None
    }

    /// Remember a verified token.
    pub fn insert(&self, digest: [u8; 32], grant: Grant, issuer: usize, generation: u64, now: u64) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= MAX_CACHED_TOKENS {
            entries.retain(|_, entry| is_current(&entry.grant, now));
            if entries.len() >= MAX_CACHED_TOKENS {
                entries.clear();
            }
        }
        entries.insert(
            digest,
            Entry {
                grant,
                issuer,
                generation,
            },
        );
    }
}

/// The same `exp`/`nbf` checks verification made, at `now`.
fn is_current(grant: &Grant, now: u64) -> bool {
    now <= grant.expires_at.saturating_add(LEEWAY_SECS)
        && grant
            .not_before
            .is_none_or(|not_before| not_before <= now.saturating_add(LEEWAY_SECS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::Principal;

    fn grant(expires_at: u64, not_before: Option<u64>) -> Grant {
        Grant {
            principal: Principal::from("t_alice"),
            scopes: Default::default(),
            expires_at,
            not_before,
        }
    }

    #[test]
    fn an_entry_lasts_as_long_as_the_token_and_its_keys() {
        let cache = VerifiedTokens::default();
        let key = digest("token");
        cache.insert(key, grant(1_000, None), 0, 7, 900);
        assert!(cache.get(&key, 1_000 + LEEWAY_SECS, |_| 7).is_some());
        assert!(cache.get(&digest("other"), 950, |_| 7).is_none());
        assert!(
            cache.get(&key, 950, |_| 8).is_none(),
            "the keys were refreshed"
        );
        assert!(
            cache.get(&key, 950, |_| 7).is_none(),
            "a miss forgets the entry"
        );
        cache.insert(key, grant(1_000, None), 0, 7, 900);
        assert!(
            cache.get(&key, 1_001 + LEEWAY_SECS, |_| 7).is_none(),
            "expired"
        );
        cache.insert(key, grant(1_000, Some(900)), 0, 7, 800);
        assert!(cache.get(&key, 800, |_| 7).is_none(), "not valid yet");
    }

    #[test]
    fn a_full_cache_drops_expired_entries_first() {
        let cache = VerifiedTokens::default();
        for index in 0..MAX_CACHED_TOKENS {
            let expires = if index == 0 { 10_000 } else { 100 };
            cache.insert(digest(&index.to_string()), grant(expires, None), 0, 0, 50);
        }
        cache.insert(digest("new"), grant(10_000, None), 0, 0, 1_000);
        assert!(cache.get(&digest("0"), 1_000, |_| 0).is_some());
        assert!(cache.get(&digest("new"), 1_000, |_| 0).is_some());
        assert!(cache.get(&digest("1"), 60, |_| 0).is_none());
    }
}
