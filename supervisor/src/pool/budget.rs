//! The pools' memory budget (`--pool-memory-budget`): idle pre-spawned processes, all pools
//! together, may count at most this much.
//!
//! **How a process counts.** Before a pool starts a process it reserves the current estimate;
//! once the process is ready (started, handshake done, one `tools/list` answered) its whole
//! tree is measured — the sum of `Pss:` in `/proc/<pid>/smaps_rollup` over the process and its
//! descendants — and the reservation becomes that figure, which is also the estimate for the
//! next start. Where `/proc` will not say (a built-in worker is not dumpable and the
//! supervisor not root), the estimate stays what it was. The first estimate is the flavour's
//! typical size ([`Budget::new`]'s `first_estimate`). A process leaves the budget when it is
//! taken (it is a session now), discarded or dies. Sessions themselves are bounded by
//! `--max-sessions`, not by this budget.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::METRICS;

/// Memory that idle pre-spawned processes may hold, shared by every pool of a supervisor.
pub struct Budget {
    /// Bytes; `None`: no budget.
    limit: Option<u64>,
    used: Mutex<u64>,
    estimate: AtomicU64,
}

impl Budget {
    pub fn new(limit: Option<u64>, first_estimate: u64) -> Self {
        METRICS
            .pool
            .memory_budget_bytes
            .store(limit.unwrap_or(0), Ordering::Relaxed);
        Self {
            limit,
            used: Mutex::new(0),
            estimate: AtomicU64::new(first_estimate),
        }
    }

    fn used(&self) -> std::sync::MutexGuard<'_, u64> {
        self.used
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reserve room for one more process at the current estimate; `None` when it would not fit.
    pub fn reserve(&self) -> Option<u64> {
        let estimate = self.estimate.load(Ordering::Relaxed);
        let mut used = self.used();
        if let Some(limit) = self.limit
            && used.saturating_add(estimate) > limit
        {
            return None;
        }
        *used += estimate;
        METRICS.pool.memory_bytes.store(*used, Ordering::Relaxed);
        Some(estimate)
    }

    /// Replace a reservation of `reserved` by what the ready process measured (`None`: could
    /// not be measured; the reservation stands). Returns what the process counts from now on.
    pub fn settle(&self, reserved: u64, measured: Option<u64>) -> u64 {
        let Some(measured) = measured else {
            return reserved;
        };
        self.estimate.store(measured, Ordering::Relaxed);
        let mut used = self.used();
        *used = used.saturating_sub(reserved).saturating_add(measured);
        METRICS.pool.memory_bytes.store(*used, Ordering::Relaxed);
        measured
    }

    /// A process that counted `amount` left the pool.
    pub fn release(&self, amount: u64) {
        let mut used = self.used();
        *used = used.saturating_sub(amount);
        METRICS.pool.memory_bytes.store(*used, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stop_at_the_limit_and_follow_the_measured_size() {
        let budget = Budget::new(Some(100), 30);
        let first = budget.reserve().unwrap();
        let counted = budget.settle(first, Some(40));
        assert_eq!(counted, 40);
        // The estimate is now 40: 40 + 40 fits, a third does not.
        let second = budget.reserve().unwrap();
        assert_eq!(second, 40);
        assert!(budget.reserve().is_none());
        budget.release(counted);
        assert!(budget.reserve().is_some());
        let unlimited = Budget::new(None, 1 << 40);
        assert!((0..100).all(|_| unlimited.reserve().is_some()));
    }
}
