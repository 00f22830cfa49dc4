//! Per-principal request rate limits: a token bucket per principal.
//!
//! Each principal's bucket holds up to `burst` tokens and refills at `per_second`; a request
//! takes one. An empty bucket answers with the seconds until the next token, for
//! `Retry-After`. Buckets of principals idle long enough to be full again are dropped, so the
//! map stays as small as the set of active principals.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::principal::Principal;

/// How many buckets may exist before full (idle) ones are swept.
const SWEEP_AT: usize = 10_000;

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets keyed by principal.
pub struct Limiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<Principal, Bucket>>,
}

impl Limiter {
    pub fn new(per_second: f64, burst: f64) -> Self {
        Self {
            per_second,
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take a token for `principal`: `None` if allowed, else seconds to wait.
    pub fn check(&self, principal: &Principal) -> Option<u64> {
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= SWEEP_AT {
            let (per_second, burst) = (self.per_second, self.burst);
            buckets.retain(|_, bucket| {
                bucket.tokens + now.duration_since(bucket.updated).as_secs_f64() * per_second
                    < burst
            });
        }
        let bucket = buckets.entry(principal.clone()).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let refill = now.duration_since(bucket.updated).as_secs_f64() * self.per_second;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return None;
        }
        let wait = (1.0 - bucket.tokens) / self.per_second;
        Some(wait.ceil().max(1.0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused_per_principal() {
        let limiter = Limiter::new(1.0, 3.0);
        let alice = Principal::from("alice");
        let bob = Principal::from("bob");
        for _ in 0..3 {
            assert_eq!(limiter.check(&alice), None);
        }
        assert_eq!(limiter.check(&alice), Some(1));
        assert_eq!(limiter.check(&bob), None, "buckets are per principal");
    }
}
