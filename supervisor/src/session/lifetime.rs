//! How sessions end without being asked: idle and age expiry, checked every quarter TTL, with
//! the workers stopped in the background at most [`MAX_CONCURRENT_STOPS`] at a time; and a
//! worker that dies on its own, which makes its session *lost* at once.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::{Ended, Registry, Session, SessionLimits};
use crate::metrics::METRICS;

/// Most workers stopped at once in the background (expiry). Each stop is a few
/// timers and, for a wrapped server, scans of `/proc`; a mass expiry of thousands of sessions
/// should not run thousands of scans at once. Sessions waiting their turn still count against
/// the limits, and every stop ends within the stop sequence's graces (SIGKILL reaches the
/// worker's pid whatever it did to its process group), so the queue always drains.
pub(super) const MAX_CONCURRENT_STOPS: usize = 64;

impl Registry {
    /// End a live session for `reason` and stop its worker in the background, at most
    /// [`MAX_CONCURRENT_STOPS`] at a time; the caller never waits for a stop.
    fn end_in_background(self: &Arc<Self>, session: Arc<Session>, reason: Ended) {
        let Some(reservation) = self.retire(&session, reason) else {
            return;
        };
        let stops = self.stops.clone();
        tokio::spawn(async move {
            let _permit = stops.acquire_owned().await;
            session.worker.stop().await;
            drop(reservation);
        });
    }

    /// End every session past its idle TTL or maximum age. Their workers stop in the
    /// background: one that is slow to stop never holds back the expiry of the others.
    pub fn expire(self: &Arc<Self>) {
        let now = Instant::now();
        let expired: Vec<(Arc<Session>, Ended)> = self
            .state()
            .live
            .values()
            .filter_map(|session| Some((session.clone(), session.expiry(&self.limits, now)?)))
            .collect();
        for (session, reason) in expired {
            self.end_in_background(session, reason);
        }
    }

    /// Periodically expire sessions until the registry is dropped.
    pub fn spawn_reaper(self: &Arc<Self>) {
        let interval = reap_interval(&self.limits);
        let registry = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(registry) = registry.upgrade() else {
                    return;
                };
                registry.expire();
            }
        });
    }
}

/// Check often enough that a session outlives its TTL by at most a quarter of it, but never
/// busy-loop (at least 50 ms) nor sleep past a minute.
fn reap_interval(limits: &SessionLimits) -> Duration {
    (limits.idle_ttl.min(limits.max_age) / 4)
        .clamp(Duration::from_millis(50), Duration::from_secs(60))
}

/// When a session's worker dies on its own, move the handle to the ended list as lost.
pub(super) async fn watch_worker(registry: std::sync::Weak<Registry>, session: Arc<Session>) {
    let exit = session.worker.exited().await;
    if !exit.is_crash() {
        return;
    }
    let Some(registry) = registry.upgrade() else {
        return;
    };
    let mut state = registry.state();
    if state.live.remove(&session.handle).is_some() {
        METRICS.sessions_crashed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(session = %session.tag, "session lost: worker {exit}");
        state.remember_ended(
            session.handle.clone(),
            session.principal.clone(),
            Ended::Lost(exit),
        );
    }
}
