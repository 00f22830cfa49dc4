//! Sessions: one worker process each, named by a handle, bound to the principal that opened it.
//!
//! The [`Registry`] owns every live session and enforces the limits (total, per principal,
//! in-flight per session) and the lifetimes (idle TTL, maximum age). It also remembers recently
//! ended handles ([`Ended`]) so their owner gets a precise answer ("closed", "expired", "lost")
//! while anyone else gets exactly the answer an unknown handle gets. A session whose worker
//! dies is *lost*: its handle is never reattached to a fresh worker. A watcher task per session
//! notices the death and moves the handle to the ended list at once.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bulkhead_protocol::handle::{HANDLE_RANDOM_BYTES, format_handle, tag_of};
use tokio::sync::{Semaphore, oneshot};
use tokio::time::Instant;

use crate::metrics::METRICS;
use crate::pool::{PoolSettings, Pools};
use crate::principal::Principal;
use crate::worker::{Launcher, WorkerExit, WorkerHandle};

mod error;
mod handover;
mod lifetime;
mod slots;
#[cfg(test)]
mod tests;
use bulkhead_protocol::clock::rfc3339;
use slots::{PendingOpen, Reservation};

pub use error::{Ended, SessionError};
pub use handover::{EndedRecord, SessionRecord};
use lifetime::{MAX_CONCURRENT_STOPS, watch_worker};

/// How many ended handles are remembered for precise errors; older ones read as unknown.
const ENDED_MEMORY: usize = 10_000;

/// The right to have one request in flight in a session's worker (`--max-in-flight`).
pub type InFlightPermit = tokio::sync::OwnedSemaphorePermit;

/// Limits and lifetimes of sessions.
#[derive(Debug, Clone)]
pub struct SessionLimits {
    pub max_sessions: usize,
    pub max_sessions_per_principal: usize,
    pub max_in_flight: usize,
    pub idle_ttl: Duration,
    pub max_age: Duration,
    /// At a session limit, end the opener's own least recently used idle session instead of
    /// refusing.
    pub evict_idle_at_limit: bool,
}

/// One live session.
pub struct Session {
    pub handle: String,
    pub tag: String,
    pub principal: Principal,
    /// Whether this is a connection's default session (created by a call without `session`).
    pub is_default: bool,
    pub created_at: SystemTime,
    created: Instant,
    /// Milliseconds after `created` of the last call start or end.
    last_activity_ms: AtomicU64,
    pub worker: WorkerHandle,
    /// Permits for requests in flight in this session.
    pub in_flight: Arc<Semaphore>,
}

impl Session {
    /// Record activity now.
    pub fn touch(&self) {
        let elapsed = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_activity_ms.fetch_max(elapsed, Ordering::Relaxed);
    }

    fn last_activity_instant(&self) -> Instant {
        self.created + Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed))
    }

    /// Wall-clock time of the last activity.
    pub fn last_activity(&self) -> SystemTime {
        self.created_at + Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed))
    }

    /// When the session ends if nothing happens: the earlier of idle expiry and maximum age.
    pub fn expires_at(&self, limits: &SessionLimits) -> SystemTime {
        (self.last_activity() + limits.idle_ttl).min(self.created_at + limits.max_age)
    }

    /// The fields anyone may see about this session — its owner through `session_info`, the
    /// operator through the admin API: handle, times, worker pid, calls in flight. Never
    /// anything the worker holds.
    pub fn safe_fields(
        &self,
        limits: &SessionLimits,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut fields = serde_json::Map::new();
        fields.insert("session".into(), self.handle.clone().into());
        fields.insert("default".into(), self.is_default.into());
        fields.insert("pid".into(), self.worker.pid().into());
        fields.insert("created_at".into(), rfc3339(self.created_at).into());
        fields.insert("last_activity".into(), rfc3339(self.last_activity()).into());
        fields.insert("expires_at".into(), rfc3339(self.expires_at(limits)).into());
        fields.insert("in_flight".into(), self.in_flight_count(limits).into());
        fields
    }

    /// One of the permits to have a request in flight in this session's worker, of `limit`
    /// (`--max-in-flight`), or the error that says there is none left.
    pub fn in_flight_permit(&self, limit: usize) -> Result<InFlightPermit, SessionError> {
        self.in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| SessionError::Busy {
                tag: self.tag.clone(),
                limit,
            })
    }

    /// Requests in flight now.
    pub fn in_flight_count(&self, limits: &SessionLimits) -> usize {
        limits
            .max_in_flight
            .saturating_sub(self.in_flight.available_permits())
    }

    fn expiry(&self, limits: &SessionLimits, now: Instant) -> Option<Ended> {
        if now.duration_since(self.created) >= limits.max_age {
            Some(Ended::Expired("reached its maximum age"))
        } else if now.duration_since(self.last_activity_instant()) >= limits.idle_ttl
            && self.in_flight_count(limits) == 0
        {
            Some(Ended::Expired("was idle past its time-to-live"))
        } else {
            None
        }
    }
}

struct Tombstone {
    principal: Principal,
    ended: Ended,
}

#[derive(Default)]
struct State {
    live: HashMap<String, Arc<Session>>,
    /// Sessions starting or stopping, per principal, counted against the limits (see
    /// [`Reservation`]).
    reserved: HashMap<Principal, usize>,
    ended: HashMap<String, Tombstone>,
    ended_order: VecDeque<String>,
    shutting_down: bool,
}

impl State {
    fn count_for(&self, principal: &Principal) -> usize {
        let live = self
            .live
            .values()
            .filter(|session| session.principal == *principal)
            .count();
        live + self.reserved.get(principal).copied().unwrap_or(0)
    }

    fn total(&self) -> usize {
        self.live.len() + self.reserved.values().sum::<usize>()
    }

    fn release(&mut self, principal: &Principal) {
        if let Some(count) = self.reserved.get_mut(principal) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.reserved.remove(principal);
            }
        }
    }

    fn remember_ended(&mut self, handle: String, principal: Principal, ended: Ended) {
        if self.ended_order.len() >= ENDED_MEMORY
            && let Some(oldest) = self.ended_order.pop_front()
        {
            self.ended.remove(&oldest);
        }
        self.ended_order.push_back(handle.clone());
        self.ended.insert(handle, Tombstone { principal, ended });
    }
}

/// All sessions of one supervisor.
pub struct Registry {
    pub limits: SessionLimits,
    node: String,
    /// Starts every session's worker.
    launcher: Launcher,
    state: Mutex<State>,
    /// Pre-spawned workers, once started.
    pools: std::sync::OnceLock<Arc<Pools>>,
    /// Whether this node is draining: then it opens no new session.
    drain: Arc<crate::drain::Drain>,
    /// Permits for background stops ([`MAX_CONCURRENT_STOPS`]).
    stops: Arc<Semaphore>,
}

impl Registry {
    pub fn new(limits: SessionLimits, node: String, launcher: Launcher) -> Arc<Self> {
        Arc::new(Self {
            limits,
            node,
            launcher,
            state: Mutex::new(State::default()),
            pools: std::sync::OnceLock::new(),
            drain: Arc::default(),
            stops: Arc::new(Semaphore::new(MAX_CONCURRENT_STOPS)),
        })
    }

    /// This node's drain state (see [`crate::drain`]).
    pub fn drain(&self) -> &Arc<crate::drain::Drain> {
        &self.drain
    }

    /// Keep workers pre-spawned for new sessions (see [`crate::pool`]); over stdio,
    /// `shared_principal` is the one principal (`local`) the shared pool's processes are
    /// started for.
    pub fn start_pools(&self, settings: PoolSettings, shared_principal: Option<Principal>) {
        // Per-principal pools exist only where processes carry an environment from their start.
        let own = settings.per_principal > 0 && self.launcher.carries_environment();
        if settings.shared == 0 && !own {
            return;
        }
        self.pools
            .get_or_init(|| Pools::start(settings, self.launcher.clone(), shared_principal));
    }

    /// A pre-spawned worker for a new session of `principal`, if a pool may serve it and has
    /// one ready.
    fn pooled_worker(&self, principal: &Principal, tag: &str) -> Option<WorkerHandle> {
        self.pools.get()?.take(principal, tag)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain maps behind, still consistent enough to
        // keep serving other sessions; recover rather than take the whole supervisor down.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Open a session for `principal` (`session_open`): reserve a slot, start its worker,
    /// register it.
    pub async fn open(
        self: &Arc<Self>,
        principal: &Principal,
    ) -> Result<Arc<Session>, SessionError> {
        self.open_session(principal, false).await
    }

    /// Open the default session of one of `principal`'s connections (created by a call without
    /// `session`), as [`Registry::open`] does.
    pub async fn open_default(
        self: &Arc<Self>,
        principal: &Principal,
    ) -> Result<Arc<Session>, SessionError> {
        self.open_session(principal, true).await
    }

    /// Reserve a slot, start the worker, register the session.
    ///
    /// The start runs as a task of its own that owns the reservation, so a caller that goes
    /// away mid-start (a cancelled `session_open`, a disconnected HTTP client) never tears a
    /// start in half nor leaks its slot: the task finishes the start, and a session nobody
    /// received is ended at once (see [`PendingOpen`]).
    async fn open_session(
        self: &Arc<Self>,
        principal: &Principal,
        is_default: bool,
    ) -> Result<Arc<Session>, SessionError> {
        let (reservation, evicted) = self.reserve(principal)?;
        let (sender, receiver) = oneshot::channel();
        let registry = self.clone();
        tokio::spawn(async move {
            if let Some(evicted) = evicted {
                // Its slot is this session's once its processes are gone.
                evicted.worker.stop().await;
            }
            let opened = registry.start_session(reservation, is_default).await;
            if let Err(Ok(session)) = sender.send(opened) {
                registry.end_unclaimed(&session).await;
            }
        });
        let mut pending = PendingOpen {
            receiver,
            registry: Arc::downgrade(self),
        };
        (&mut pending.receiver)
            .await
            .unwrap_or(Err(SessionError::ShuttingDown))
    }

    /// Start the worker of a reserved session and register the session.
    async fn start_session(
        self: &Arc<Self>,
        reservation: Reservation,
        is_default: bool,
    ) -> Result<Arc<Session>, SessionError> {
        let principal = reservation.principal.clone();
        let handle = mint_handle(&self.node);
        let tag = tag_of(&handle).to_string();
        let started = match self.pooled_worker(&principal, &tag) {
            Some(worker) => Ok(worker),
            None => self.start_worker(&tag, &principal).await,
        };
        let worker = started?;
        worker.bind(&principal, &tag);
        let session = {
            let mut state = self.state();
            if state.shutting_down {
                None
            } else {
                reservation.settle(&mut state);
                let session = Arc::new(Session {
                    handle: handle.clone(),
                    tag,
                    principal,
                    is_default,
                    created_at: SystemTime::now(),
                    created: Instant::now(),
                    last_activity_ms: AtomicU64::new(0),
                    worker: worker.clone(),
                    in_flight: Arc::new(Semaphore::new(self.limits.max_in_flight)),
                });
                state.live.insert(handle, session.clone());
                Some(session)
            }
        };
        let Some(session) = session else {
            // The reservation (if not settled) is released once the worker is gone.
            worker.stop().await;
            return Err(SessionError::ShuttingDown);
        };
        METRICS.sessions_opened.fetch_add(1, Ordering::Relaxed);
        tracing::info!(session = %session.tag, pid = session.worker.pid(), default = is_default, "session opened");
        tokio::spawn(watch_worker(Arc::downgrade(self), session.clone()));
        Ok(session)
    }

    /// End a session whose opener went away before it could receive it.
    async fn end_unclaimed(self: &Arc<Self>, session: &Arc<Session>) {
        tracing::info!(session = %session.tag, "the caller that opened this session went away; closing it");
        self.end(session, Ended::Closed).await;
    }

    async fn start_worker(
        &self,
        tag: &str,
        principal: &Principal,
    ) -> Result<WorkerHandle, SessionError> {
        let started = Instant::now();
        let worker = self.launcher.start_for_session(tag, principal).await?;
        METRICS.spawn_latency.observe(started.elapsed());
        Ok(worker)
    }

    /// The wrapped stdio server, in external worker mode.
    pub fn wrapped(&self) -> Option<&Arc<crate::wrap::WrappedServer>> {
        self.launcher.wrapped()
    }

    /// Reserve a slot for a new session of `principal`. At a limit, with `--evict-idle`, room
    /// is made by ending the least recently used idle session *of the same principal* — never
    /// another's — whose slot passes to the new session; the caller waits for that session's
    /// worker to be reaped (returned) before it starts its own.
    fn reserve(
        self: &Arc<Self>,
        principal: &Principal,
    ) -> Result<(Reservation, Option<Arc<Session>>), SessionError> {
        let mut state = self.state();
        if state.shutting_down {
            return Err(SessionError::ShuttingDown);
        }
        if self.drain.is_draining() {
            return Err(SessionError::Draining {
                node: self.node.clone(),
            });
        }
        let mine = state.count_for(principal);
        let total = state.total();
        let refusal = if mine >= self.limits.max_sessions_per_principal {
            SessionError::PrincipalLimit {
                open: mine,
                limit: self.limits.max_sessions_per_principal,
            }
        } else if total >= self.limits.max_sessions {
            SessionError::Limit {
                open: total,
                limit: self.limits.max_sessions,
            }
        } else {
            return Ok((Reservation::take(self, &mut state, principal), None));
        };
        let victim = self
            .limits
            .evict_idle_at_limit
            .then(|| least_recently_used_idle(&state, &self.limits, principal))
            .flatten();
        let Some(victim) = victim else {
            return Err(refusal);
        };
        tracing::info!(session = %victim.tag, "evicting the principal's least recently used idle session");
        let slot = self
            .retire_locked(&mut state, &victim, Ended::Evicted)
            .ok_or(refusal)?;
        Ok((slot, Some(victim)))
    }

    /// The live session `handle`, if `principal` owns it.
    pub fn get(&self, handle: &str, principal: &Principal) -> Result<Arc<Session>, SessionError> {
        let state = self.state();
        if let Some(session) = state.live.get(handle) {
            if session.principal != *principal {
                return Err(SessionError::NotFound);
            }
            // The watcher may not have run yet after a crash; never hand out a dead worker.
            if let Some(exit) = session.worker.exit().filter(WorkerExit::is_crash) {
                return Err(SessionError::Lost {
                    tag: session.tag.clone(),
                    exit,
                });
            }
            return Ok(session.clone());
        }
        match state.ended.get(handle) {
            Some(tombstone) if tombstone.principal == *principal => {
                let tag = tag_of(handle).to_string();
                Err(match &tombstone.ended {
                    Ended::Closed | Ended::Shutdown => SessionError::Closed { tag },
                    Ended::Expired(why) => SessionError::Expired { tag, why },
                    Ended::Evicted => SessionError::Evicted { tag },
                    Ended::Lost(exit) => SessionError::Lost {
                        tag,
                        exit: exit.clone(),
                    },
                })
            }
            _ => Err(crate::node::OtherNode::of(handle, &self.node)
                .map_or(SessionError::NotFound, SessionError::OtherNode)),
        }
    }

    /// Close `handle` on behalf of `principal` and wait for its worker to be reaped.
    pub async fn close(
        self: &Arc<Self>,
        handle: &str,
        principal: &Principal,
    ) -> Result<(), SessionError> {
        let session = self.get(handle, principal)?;
        self.end(&session, Ended::Closed).await;
        Ok(())
    }

    /// End a live session for `reason`, stop its worker and wait until it is reaped. A session
    /// another path is already ending is waited for the same way.
    pub async fn end(self: &Arc<Self>, session: &Arc<Session>, reason: Ended) {
        match self.retire(session, reason) {
            Some(reservation) => {
                session.worker.stop().await;
                drop(reservation);
            }
            None => {
                session.worker.exited().await;
            }
        }
    }

    /// Take a live session out of the registry for `reason`. Returns the reservation that keeps
    /// counting it against its principal and the total until its worker is reaped, or `None`
    /// when it was not live (already ending, or lost).
    fn retire(self: &Arc<Self>, session: &Arc<Session>, reason: Ended) -> Option<Reservation> {
        let mut state = self.state();
        self.retire_locked(&mut state, session.as_ref(), reason)
    }

    fn retire_locked(
        self: &Arc<Self>,
        state: &mut State,
        session: &Session,
        reason: Ended,
    ) -> Option<Reservation> {
        state.live.remove(&session.handle)?;
        METRICS.sessions_closed.fetch_add(1, Ordering::Relaxed);
        tracing::info!(session = %session.tag, ?reason, "session ended");
        state.remember_ended(session.handle.clone(), session.principal.clone(), reason);
        Some(Reservation::take(self, state, &session.principal))
    }

    /// Sessions open now.
    pub fn live_count(&self) -> usize {
        self.state().live.len()
    }

    /// Every live session, oldest first (for the admin API).
    pub fn list(&self) -> Vec<Arc<Session>> {
        let mut sessions: Vec<Arc<Session>> = self.state().live.values().cloned().collect();
        sessions.sort_by_key(|session| session.created);
        sessions
    }

    /// A live session by handle, whoever owns it (for the admin API).
    pub fn find(&self, handle: &str) -> Option<Arc<Session>> {
        self.state().live.get(handle).cloned()
    }

    /// Refuse new sessions and stop every worker, in parallel.
    pub async fn shutdown(&self) {
        let sessions: Vec<Arc<Session>> = {
            let mut state = self.state();
            state.shutting_down = true;
            state.live.values().cloned().collect()
        };
        // Idle pool workers stop alongside the sessions' workers.
        let pool = self
            .pools
            .get()
            .cloned()
            .map(|pools| tokio::spawn(async move { pools.shutdown().await }));
        let mut stops = tokio::task::JoinSet::new();
        for session in sessions {
            let handle = session.handle.clone();
            let principal = session.principal.clone();
            {
                let mut state = self.state();
                state.live.remove(&handle);
                METRICS.sessions_closed.fetch_add(1, Ordering::Relaxed);
                state.remember_ended(handle, principal, Ended::Shutdown);
            }
            stops.spawn(async move { session.worker.stop().await });
        }
        while stops.join_next().await.is_some() {}
        if let Some(pool) = pool {
            let _ = pool.await;
        }
    }
}

/// The session of `principal` with no call in flight whose last activity is oldest.
fn least_recently_used_idle(
    state: &State,
    limits: &SessionLimits,
    principal: &Principal,
) -> Option<Arc<Session>> {
    state
        .live
        .values()
        .filter(|session| session.principal == *principal)
        .filter(|session| session.in_flight_count(limits) == 0)
        .min_by_key(|session| session.last_activity_instant())
        .cloned()
}

/// A fresh handle for this node: 128 bits from the OS random source.
pub fn mint_handle(node: &str) -> String {
    let mut random = [0u8; HANDLE_RANDOM_BYTES];
    // The OS random source failing is not recoverable: a predictable handle would be worse.
    getrandom::fill(&mut random).expect("the OS random number source failed");
    format_handle(node, &random)
}
