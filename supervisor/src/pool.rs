//! Pre-spawned workers, so a new session skips the spawn and the handshake.
//!
//! A [`Pool`] keeps up to `size` idle workers, started ahead of need from the same template as
//! every session's worker and fully ready: started, their first exchange done (the Bulkhead
//! hello and MCP `initialize`, or a wrapped server's era detection — `initialize` or
//! `server/discover`), and one `tools/list` answered. [`Pools`] holds every pool of a
//! supervisor and says which one may serve a session (see [`pools`]): one shared pool for
//! principals without provisioned environment, and a small pool of its own for each principal
//! with one, whose processes carry that principal's environment. When a session opens,
//! [`Pool::take`] hands out the oldest idle worker started with the environment the principal
//! has on disk now (an older one is discarded) and the registry binds it to the session; the
//! worker is never returned — when its session ends it is stopped like any other, so nothing
//! of one session can reach the next.
//!
//! **Tags.** A worker's hello carries the tag it puts on its own log lines, and a pool
//! worker's session is unknown when it starts, so it is tagged `pool-<n>`. The binding is
//! logged once by the supervisor (`bound pre-spawned worker pool-7 to the session`, with the
//! session's tag and the worker's pid as fields), which is how a `pool-<n>` line in the
//! worker's log is traced to its session. Supervisor-side log lines about the session use the
//! session's tag as usual.
//!
//! **Refill and death.** One task per pool refills it after every take, one worker at a time
//! through the supervisor's one spawner (so refilling never competes with itself), and backs
//! off when spawning fails (a system limit, a missing binary) instead of spinning. It starts
//! [`REFILL_DELAY`] after a take rather than at once, so the spawn does not compete with the
//! new session's first calls. A watcher per idle worker removes it the moment it dies and
//! wakes the refill task; `take` also skips any worker already known to have exited, so a dead
//! worker is never handed out. Every start first reserves room in the memory [`Budget`]; a
//! pool that finds none waits. Pool workers are not sessions: they do not count against
//! `--max-sessions`.

pub mod budget;
pub mod pools;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::{AbortHandle, JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::credentials::EnvStamp;
use crate::metrics::{Discard, METRICS, PoolClass};
use crate::principal::Principal;
use crate::worker::{CallEvent, Launcher, WorkerHandle};

pub use budget::Budget;
pub use pools::{PoolSettings, Pools};

/// How long the refill waits after a take before spawning: a spawn forks the supervisor
/// (stalling its other threads while the page tables are copied) and costs the new process a
/// few milliseconds of CPU, which would otherwise land on the new session's first calls.
const REFILL_DELAY: Duration = Duration::from_millis(10);
/// First wait after a failed pre-spawn; doubled on each further failure.
const REFILL_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest wait between pre-spawn attempts while spawning keeps failing: retries stay cheap,
/// and the pool recovers within half a minute of the cause going away.
const REFILL_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often a pool that found no room in the memory budget looks again (room is freed by
/// takes, discards and deaths in any pool, which do not wake every other pool).
const BUDGET_RECHECK: Duration = Duration::from_millis(500);

/// An idle pre-spawned worker.
struct Idle {
    worker: WorkerHandle,
    name: String,
    /// The provisioned environment it was started with.
    stamp: Option<EnvStamp>,
    /// What it counts against the memory budget.
    charge: u64,
    /// The task that removes the worker from the pool if it dies while idle.
    watcher: AbortHandle,
}

/// What one pool is.
pub struct PoolSpec {
    /// Idle workers it keeps.
    pub size: usize,
    pub class: PoolClass,
    /// Whose provisioned environment its workers are started with (`None`: nobody's).
    pub principal: Option<Principal>,
    pub budget: Arc<Budget>,
}

/// One pool: the shared one, or one principal's.
pub struct Pool {
    size: usize,
    class: PoolClass,
    principal: Option<Principal>,
    budget: Arc<Budget>,
    launcher: Launcher,
    idle: Mutex<VecDeque<Idle>>,
    /// Wakes the refill task: a worker was taken or died.
    wake: Notify,
    closed: CancellationToken,
    next_number: AtomicU64,
    refill: Mutex<Option<JoinHandle<()>>>,
}

impl Pool {
    /// Start a pool; it fills in the background.
    pub fn start(spec: PoolSpec, launcher: Launcher) -> Arc<Self> {
        let size = spec.size;
        let pool = Arc::new(Self {
            size,
            class: spec.class,
            principal: spec.principal,
            budget: spec.budget,
            launcher,
            idle: Mutex::new(VecDeque::with_capacity(size)),
            wake: Notify::new(),
            closed: CancellationToken::new(),
            next_number: AtomicU64::new(1),
            refill: Mutex::new(None),
        });
        let task = tokio::spawn(pool.clone().refill());
        *pool.refill_slot() = Some(task);
        tracing::debug!(size, class = ?pool.class, "pre-spawning a pool of workers");
        pool
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, VecDeque<Idle>> {
        // Plain data behind the lock: recover it after a panic rather than stop serving.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn refill_slot(&self) -> std::sync::MutexGuard<'_, Option<JoinHandle<()>>> {
        self.refill
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Idle workers ready now.
    pub fn idle_count(&self) -> usize {
        self.idle().len()
    }

    /// Hand out the oldest live idle worker started with provisioned environment `stamp`
    /// for session `session_tag`, if there is one, and start refilling. Idle workers with
    /// another stamp (the principal's environment file changed since they started) are
    /// discarded. The caller owns the worker from now on and must never give it back.
    pub fn take(&self, session_tag: &str, stamp: Option<EnvStamp>) -> Option<WorkerHandle> {
        if self.closed.is_cancelled() {
            return None;
        }
        let taken = {
            let mut idle = self.idle();
            loop {
                let Some(candidate) = idle.pop_front() else {
                    break None;
                };
                candidate.watcher.abort();
                self.left(&candidate);
                // Known dead (its watcher may not have run yet): drop it, try the next.
                if candidate.worker.exit().is_some() {
                    METRICS.pool.discarded(self.class, Discard::Died);
                    continue;
                }
                if candidate.stamp != stamp {
                    METRICS.pool.discarded(self.class, Discard::EnvChanged);
                    tracing::info!(
                        pid = candidate.worker.pid(),
                        "discarding pre-spawned worker {}: its principal's environment file changed since it started",
                        candidate.name
                    );
                    tokio::spawn(async move { candidate.worker.stop().await });
                    continue;
                }
                break Some(candidate);
            }
        };
        self.wake.notify_one();
        let Some(taken) = taken else {
            METRICS.pool.missed(self.class);
            return None;
        };
        METRICS.pool.took(self.class);
        tracing::info!(
            session = %session_tag,
            pid = taken.worker.pid(),
            "bound pre-spawned worker {} to the session",
            taken.name
        );
        Some(taken.worker)
    }

    /// Stop refilling and stop every idle worker; later takes get nothing.
    pub async fn shutdown(&self) {
        self.closed.cancel();
        let refill = self.refill_slot().take();
        if let Some(refill) = refill {
            let _ = refill.await;
        }
        let idle: Vec<Idle> = self.idle().drain(..).collect();
        let mut stops = tokio::task::JoinSet::new();
        for entry in idle {
            entry.watcher.abort();
            self.left(&entry);
            stops.spawn(async move { entry.worker.stop().await });
        }
        while stops.join_next().await.is_some() {}
    }

    /// An idle worker left the pool (taken, discarded, dead or stopped).
    fn left(&self, entry: &Idle) {
        METRICS.pool.idle_removed(self.class);
        self.budget.release(entry.charge);
    }

    /// Wait until the budget has room for one more process; `None` once the pool is closed.
    async fn reserve(&self) -> Option<u64> {
        let mut warned = false;
        loop {
            if let Some(reserved) = self.budget.reserve() {
                return Some(reserved);
            }
            if !warned {
                tracing::info!(
                    class = ?self.class,
                    "the pool memory budget (--pool-memory-budget) is spent; waiting for room before pre-spawning another worker"
                );
                warned = true;
            }
            tokio::select! {
                () = tokio::time::sleep(BUDGET_RECHECK) => {}
                () = self.closed.cancelled() => return None,
            }
        }
    }

    /// Keep the pool full until it is closed.
    async fn refill(self: Arc<Self>) {
        let mut backoff = REFILL_BACKOFF_MIN;
        loop {
            if self.idle_count() >= self.size {
                while self.idle_count() >= self.size {
                    tokio::select! {
                        () = self.wake.notified() => {}
                        () = self.closed.cancelled() => return,
                    }
                }
                // Let the session that took a worker run its first calls undisturbed; then
                // refill every missing worker back to back.
                tokio::select! {
                    () = tokio::time::sleep(REFILL_DELAY) => {}
                    () = self.closed.cancelled() => return,
                }
            }
            let Some(reserved) = self.reserve().await else {
                return;
            };
            let number = self.next_number.fetch_add(1, Ordering::Relaxed);
            let name = format!("pool-{number}");
            // Dropping a half-started worker (at shutdown) kills it: its child is kill-on-drop.
            let started = tokio::select! {
                started = self.launcher.start_for_pool(&name, self.principal.as_ref()) => started,
                () = self.closed.cancelled() => {
                    self.budget.release(reserved);
                    return;
                }
            };
            let started = match started {
                Ok(spare) => self
                    .prime(spare.worker)
                    .await
                    .map(|worker| (worker, spare.stamp)),
                Err(error) => Err(error.to_string()),
            };
            match started {
                Ok((worker, stamp)) => {
                    backoff = REFILL_BACKOFF_MIN;
                    if self.closed.is_cancelled() {
                        self.budget.release(reserved);
                        worker.stop().await;
                        return;
                    }
                    let (pid, whole_tree) = (worker.pid(), self.launcher.wrapped().is_some());
                    // Reading /proc (every process's, to find a tree) is blocking work.
                    let measured = tokio::task::spawn_blocking(move || {
                        crate::spawn::tree_pss_bytes(pid, whole_tree)
                    })
                    .await
                    .ok()
                    .flatten();
                    let charge = self.budget.settle(reserved, measured);
                    self.add(worker, name, stamp, charge);
                }
                Err(error) => {
                    self.budget.release(reserved);
                    tracing::warn!(
                        "cannot pre-spawn a pool worker: {error}; retrying in {} ms",
                        backoff.as_millis()
                    );
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = self.closed.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(REFILL_BACKOFF_MAX);
                }
            }
        }
    }

    /// Run one `tools/list` in a fresh worker, so the code paths of a request (rmcp's
    /// dispatch, the tool router, serialization) are paged in and warm before a session's
    /// first call; it touches no session state. A worker that cannot answer is stopped.
    async fn prime(&self, worker: WorkerHandle) -> Result<WorkerHandle, String> {
        let answered = match worker.call("tools/list", None) {
            Ok(mut call) => {
                let reply = async {
                    loop {
                        match call.next_event().await {
                            CallEvent::Reply(reply) => {
                                return reply.into_value().get("result").is_some();
                            }
                            CallEvent::Died(_) => return false,
                            CallEvent::Notification(_) | CallEvent::Request(_) => {}
                        }
                    }
                };
                tokio::time::timeout(self.launcher.timeouts().handshake, reply)
                    .await
                    .unwrap_or(false)
            }
            Err(_) => false,
        };
        if answered {
            Ok(worker)
        } else {
            let exit = worker.stop().await;
            Err(format!(
                "the new worker did not answer tools/list (it {exit})"
            ))
        }
    }

    /// Put a ready worker in the pool, watched until it is taken.
    fn add(
        self: &Arc<Self>,
        worker: WorkerHandle,
        name: String,
        stamp: Option<EnvStamp>,
        charge: u64,
    ) {
        let pool = Arc::downgrade(self);
        let watched = worker.clone();
        let watcher_name = name.clone();
        let watcher = tokio::spawn(async move {
            let exit = watched.exited().await;
            let Some(pool) = pool.upgrade() else {
                return;
            };
            let removed = {
                let mut idle = pool.idle();
                let position = idle.iter().position(|entry| entry.name == watcher_name);
                position.and_then(|position| idle.remove(position))
            };
            if let Some(removed) = removed {
                pool.left(&removed);
                METRICS.pool.discarded(pool.class, Discard::Died);
                tracing::warn!(
                    pid = watched.pid(),
                    "pre-spawned worker {watcher_name} {exit} while idle; replacing it"
                );
                pool.wake.notify_one();
            }
        })
        .abort_handle();
        METRICS.pool.idle_added(self.class);
        self.idle().push_back(Idle {
            worker,
            name,
            stamp,
            charge,
            watcher,
        });
    }
}

#[cfg(test)]
mod tests {
    //! The pool with a fake launcher, under paused time: refill after a take, a worker that
    //! dies while idle, back-off while spawning fails.

    use nix::sys::signal::Signal;

    use super::*;
    use crate::worker::fake::{FakeSpawner, eventually, killed};

    const SOON: Duration = Duration::from_secs(5);

    fn shared(size: usize, spawner: &FakeSpawner) -> Arc<Pool> {
        Pool::start(
            PoolSpec {
                size,
                class: PoolClass::Shared,
                principal: None,
                budget: Arc::new(Budget::new(None, 0)),
            },
            spawner.launcher(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_taken_worker_is_replaced_after_the_refill_delay_and_never_returned() {
        let spawner = FakeSpawner::default();
        let pool = shared(2, &spawner);
        eventually(SOON, || pool.idle_count() == 2).await;
        let taken = pool.take("session-a", None).expect("an idle worker");
        assert_eq!(pool.idle_count(), 1);
        let taken_at = tokio::time::Instant::now();
        eventually(SOON, || pool.idle_count() == 2).await;
        assert!(
            taken_at.elapsed() >= REFILL_DELAY,
            "the refill waits for the new session"
        );
        let next = pool.take("session-b", None).unwrap();
        assert_ne!(next.pid(), taken.pid(), "a worker serves one session");
        assert_eq!(spawner.kernels().len(), 3);
        pool.shutdown().await;
        assert_eq!(
            spawner.alive(),
            [taken.pid(), next.pid()].into(),
            "idle ones stopped"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_worker_that_dies_while_idle_is_replaced_and_never_handed_out() {
        let spawner = FakeSpawner::default();
        let pool = shared(1, &spawner);
        eventually(SOON, || pool.idle_count() == 1).await;
        let dead = spawner.kernels()[0].clone();
        dead.exit(killed(Signal::SIGKILL));
        // At once, before its watcher has run: a dead worker is never handed out.
        assert!(
            pool.take("session-a", None)
                .is_none_or(|worker| worker.pid() != dead.pid())
        );
        eventually(SOON, || {
            spawner.alive().len() == 1 && pool.idle_count() == 1
        })
        .await;
        let worker = pool.take("session-b", None).expect("the replacement");
        assert_ne!(worker.pid(), dead.pid());
        assert!(worker.exit().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn failed_spawns_are_retried_with_a_growing_back_off() {
        let spawner = FakeSpawner::default();
        spawner.fail_next(3);
        let started = tokio::time::Instant::now();
        let pool = shared(1, &spawner);
        eventually(SOON, || pool.idle_count() == 1).await;
        // 100 + 200 + 400 ms of back-off before the fourth attempt.
        let backoff = REFILL_BACKOFF_MIN * 7;
        assert!(started.elapsed() >= backoff, "{:?}", started.elapsed());
        assert!(started.elapsed() < backoff + REFILL_BACKOFF_MIN);
        assert_eq!(spawner.kernels().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pool_over_the_memory_budget_starts_nothing_until_there_is_room() {
        let spawner = FakeSpawner::default();
        // Room for no process at the first estimate.
        let budget = Arc::new(Budget::new(Some(1), 2));
        let pool = Pool::start(
            PoolSpec {
                size: 2,
                class: PoolClass::Shared,
                principal: None,
                budget: budget.clone(),
            },
            spawner.launcher(),
        );
        tokio::time::sleep(SOON).await;
        assert!(
            spawner.kernels().is_empty(),
            "nothing spawned over the budget"
        );
        assert!(pool.take("session-a", None).is_none());
        pool.shutdown().await;
    }
}
