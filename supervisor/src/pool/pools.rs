//! Every pool of a supervisor, and which one may serve a session.
//!
//! A wrapped server's process gets its principal's provisioned environment at start, so one
//! pool cannot serve everyone:
//!
//! - principals without provisioned environment share one pool (`--pool-size`), whose
//!   processes carry nobody's environment; over stdio its processes are started for the one
//!   principal, `local`, whatever its environment;
//! - a principal with provisioned environment gets a pool of its own
//!   (`--pool-per-principal`, one spare by default), created by its first session (a miss)
//!   and refilled after each take; its processes carry that principal's environment and are
//!   never handed to anyone else;
//! - whichever pool it comes from, a process is handed out only when the principal's
//!   environment file on disk now is the one it was started from ([`Launcher::pool_fit`]);
//!   older ones are discarded at take.
//!
//! Built-in workers carry no provisioned environment, so they all come from the shared pool
//! (for principals whose trading rails are the defaults). Every pool counts against one memory
//! [`Budget`], which bounds how many principals can hold a spare at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::metrics::{METRICS, PoolClass};
use crate::principal::Principal;
use crate::worker::{Launcher, PoolFit, WorkerHandle};

use super::{Budget, Pool, PoolSpec};

/// A built-in worker's typical PSS when many run (`scripts/bench`): the budget's first
/// estimate before one is measured.
const BUILTIN_ESTIMATE: u64 = 1024 * 1024;
/// A wrapped Node server's typical PSS (`@modelcontextprotocol/server-everything`, ~28 MB):
/// the first estimate in external worker mode, before one is measured.
const WRAPPED_ESTIMATE: u64 = 28 * 1024 * 1024;

/// How the pools are sized.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// The shared pool's idle workers (`--pool-size`).
    pub shared: usize,
    /// Each principal's own idle workers (`--pool-per-principal`).
    pub per_principal: usize,
    /// Bytes all idle workers may count together (`--pool-memory-budget`; `None`: no limit).
    pub memory_budget: Option<u64>,
}

/// The pools of one supervisor.
pub struct Pools {
    settings: PoolSettings,
    launcher: Launcher,
    budget: Arc<Budget>,
    shared: Option<Arc<Pool>>,
    /// The one principal the shared pool's processes are started for (stdio's `local`), if
    /// any; otherwise it serves principals without provisioned environment.
    shared_principal: Option<Principal>,
    own: Mutex<HashMap<Principal, Arc<Pool>>>,
    closed: AtomicBool,
}

impl Pools {
    /// Start the shared pool (if sized); principals' pools start with their first sessions.
    pub fn start(
        settings: PoolSettings,
        launcher: Launcher,
        shared_principal: Option<Principal>,
    ) -> Arc<Self> {
        let estimate = if launcher.wrapped().is_some() {
            WRAPPED_ESTIMATE
        } else {
            BUILTIN_ESTIMATE
        };
        let budget = Arc::new(Budget::new(settings.memory_budget, estimate));
        // A built-in worker's hello would carry its principal's rails: the shared pool's are
        // started for nobody, with the defaults.
        let shared_principal = shared_principal.filter(|_| launcher.carries_environment());
        let shared = (settings.shared > 0).then(|| {
            Pool::start(
                PoolSpec {
                    size: settings.shared,
                    class: PoolClass::Shared,
                    principal: shared_principal.clone(),
                    budget: budget.clone(),
                },
                launcher.clone(),
            )
        });
        tracing::info!(
            shared = settings.shared,
            per_principal = settings.per_principal,
            memory_budget_bytes = settings.memory_budget,
            "pre-spawning workers"
        );
        Arc::new(Self {
            settings,
            launcher,
            budget,
            shared,
            shared_principal,
            own: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
        })
    }

    fn own(&self) -> std::sync::MutexGuard<'_, HashMap<Principal, Arc<Pool>>> {
        self.own
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A pre-spawned worker for a new session `tag` of `principal`, if one may serve it and is
    /// ready. A principal with provisioned environment and no pool yet gets one now, for its
    /// next session.
    pub fn take(&self, principal: &Principal, tag: &str) -> Option<WorkerHandle> {
        let PoolFit::With(stamp) = self.launcher.pool_fit(principal) else {
            return None;
        };
        let shared_serves = match &self.shared_principal {
            Some(only) => only == principal,
            None => stamp.is_none(),
        };
        if stamp.is_none() {
            // Its environment file is gone: spares that still hold the old variables go too.
            self.retire(principal);
        }
        if shared_serves {
            return self.shared.as_ref()?.take(tag, stamp);
        }
        if stamp.is_none() || self.settings.per_principal == 0 {
            return None;
        }
        if self.closed.load(Ordering::Relaxed) {
            return None;
        }
        let pool = {
            let mut own = self.own();
            match own.get(principal) {
                Some(pool) => pool.clone(),
                None => {
                    let pool = Pool::start(
                        PoolSpec {
                            size: self.settings.per_principal,
                            class: PoolClass::Principal,
                            principal: Some(principal.clone()),
                            budget: self.budget.clone(),
                        },
                        self.launcher.clone(),
                    );
                    own.insert(principal.clone(), pool);
                    METRICS
                        .pool
                        .principal_pools
                        .store(own.len() as u64, Ordering::Relaxed);
                    METRICS.pool.missed(PoolClass::Principal);
                    return None;
                }
            }
        };
        pool.take(tag, stamp)
    }

    /// Stop `principal`'s own pool, if it has one.
    fn retire(&self, principal: &Principal) {
        let retired = {
            let mut own = self.own();
            let retired = own.remove(principal);
            METRICS
                .pool
                .principal_pools
                .store(own.len() as u64, Ordering::Relaxed);
            retired
        };
        if let Some(pool) = retired {
            tracing::info!(
                "a principal's environment file is gone; stopping the spares that hold its old variables"
            );
            tokio::spawn(async move { pool.shutdown().await });
        }
    }

    /// Idle workers ready now, in every pool.
    #[cfg(test)]
    pub fn idle_count(&self) -> usize {
        let own: usize = self.own().values().map(|pool| pool.idle_count()).sum();
        own + self.shared.as_ref().map_or(0, |pool| pool.idle_count())
    }

    /// Stop every pool and its idle workers; later takes get nothing.
    pub async fn shutdown(&self) {
        self.closed.store(true, Ordering::Relaxed);
        let mut pools: Vec<Arc<Pool>> = self.own().drain().map(|(_, pool)| pool).collect();
        pools.extend(self.shared.clone());
        let mut stops = tokio::task::JoinSet::new();
        for pool in pools {
            stops.spawn(async move { pool.shutdown().await });
        }
        while stops.join_next().await.is_some() {}
        METRICS.pool.principal_pools.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    //! Which pool serves whom, over the fake launcher under paused time: principals with
    //! provisioned environment get spares of their own, never another's; a spare whose
    //! environment changed is discarded.

    use std::time::Duration;

    use super::*;
    use crate::worker::fake::{FakeSpawner, eventually};

    const SOON: Duration = Duration::from_secs(5);

    fn pools(spawner: &FakeSpawner, shared: usize, principal: Option<&str>) -> Arc<Pools> {
        let settings = PoolSettings {
            shared,
            per_principal: 1,
            memory_budget: None,
        };
        Pools::start(settings, spawner.launcher(), principal.map(Principal::from))
    }

    #[tokio::test(start_paused = true)]
    async fn each_principal_with_an_environment_gets_spares_of_its_own() {
        let spawner = FakeSpawner::default();
        spawner.provision("alice", "TOKEN=a");
        spawner.provision("bob", "TOKEN=b");
        let pools = pools(&spawner, 1, None);
        eventually(SOON, || pools.idle_count() == 1).await;
        let (alice, bob, carol) = ("alice".into(), "bob".into(), "carol".into());
        // The shared spare carries nobody's environment: not for alice or bob.
        assert!(pools.take(&alice, "a1").is_none(), "first session: a miss");
        assert!(pools.take(&bob, "b1").is_none());
        eventually(SOON, || pools.idle_count() == 3).await;
        let alices = pools.take(&alice, "a2").expect("alice's spare");
        let bobs = pools.take(&bob, "b2").expect("bob's spare");
        let carols = pools.take(&carol, "c1").expect("the shared spare");
        let pids = [alices.pid(), bobs.pid(), carols.pid()];
        assert!(pids[0] != pids[1] && pids[1] != pids[2] && pids[0] != pids[2]);
        // Each refills for its own principal; alice's next is not bob's.
        eventually(SOON, || pools.idle_count() == 3).await;
        let next = pools.take(&alice, "a3").unwrap();
        assert!(!pids.contains(&next.pid()));
        spawner.provision("bob", "TOKEN=changed");
        spawner.provision("carol", "");
        pools.shutdown().await;
        assert!(pools.take(&carol, "c2").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_spare_whose_environment_changed_is_discarded_and_replaced() {
        let spawner = FakeSpawner::default();
        spawner.provision("alice", "TOKEN=old");
        let pools = pools(&spawner, 0, None);
        let alice: Principal = "alice".into();
        assert!(pools.take(&alice, "a1").is_none());
        eventually(SOON, || pools.idle_count() == 1).await;
        let stale = spawner.kernels()[0].clone();
        spawner.provision("alice", "TOKEN=new");
        assert!(
            pools.take(&alice, "a2").is_none(),
            "the stale spare is not handed out"
        );
        eventually(SOON, || stale.has_exited()).await;
        eventually(SOON, || pools.idle_count() == 1).await;
        let fresh = pools
            .take(&alice, "a3")
            .expect("a spare with the new environment");
        assert_ne!(fresh.pid(), stale.pid());
        // Once her file is gone, her next session stops the spare holding the old variables.
        eventually(SOON, || pools.idle_count() == 1).await;
        let spare = spawner.kernels().last().unwrap().clone();
        spawner.provision("alice", "");
        assert!(pools.take(&alice, "a4").is_none(), "no shared pool here");
        eventually(SOON, || spare.has_exited()).await;
        assert_eq!(pools.idle_count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn over_stdio_the_shared_pool_is_local_and_carries_its_environment() {
        let spawner = FakeSpawner::default();
        spawner.provision("local", "TOKEN=l");
        let pools = pools(&spawner, 2, Some("local"));
        eventually(SOON, || pools.idle_count() == 2).await;
        let local: Principal = "local".into();
        assert!(pools.take(&local, "l1").is_some());
        spawner.provision("local", "TOKEN=rotated");
        assert!(pools.take(&local, "l2").is_none(), "both spares are stale");
        eventually(SOON, || pools.idle_count() == 2).await;
        assert!(pools.take(&local, "l3").is_some());
    }
}
