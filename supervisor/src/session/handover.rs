//! The registry's part of a reload (ARCHITECTURE.md, *Upgrading in place*): every live session
//! as a record the next image can take over, the ended-handle memory, and taking them over.

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::lifetime::watch_worker;
use super::{Ended, Registry, Session};
use crate::principal::Principal;
use crate::spawn::AdoptedWorker;
use crate::worker::{HandOver, Paused, WorkerExit};

/// How long a worker's queued frames get to reach its socket before a hand-over.
const FLUSH_DEADLINE: Duration = Duration::from_secs(2);

/// One live session, as the next image takes it over.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    pub handle: String,
    pub tag: String,
    pub principal: String,
    pub is_default: bool,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// Milliseconds after creation of the last activity.
    pub last_activity_ms: u64,
    /// The worker's start time (`/proc/<pid>/stat`): with its pid, it names the process.
    pub start_time: u64,
    pub worker: HandOver,
}

/// One remembered ended handle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndedRecord {
    pub handle: String,
    pub principal: String,
    pub ended: EndedAs,
}

/// How a remembered handle ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum EndedAs {
    Closed,
    Expired(String),
    Evicted,
    Lost(String),
    Shutdown,
}

/// What the registry hands over: the records, and the paused actors (dropping them resumes
/// the workers, if the reload is refused).
pub struct HandedOver {
    pub sessions: Vec<SessionRecord>,
    pub ended: Vec<EndedRecord>,
    pub paused: Vec<Paused>,
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |elapsed| {
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    })
}

impl Registry {
    /// Pause every live session's worker and describe it for the next image.
    pub async fn hand_over(&self) -> HandedOver {
        let sessions: Vec<Arc<Session>> = self.state().live.values().cloned().collect();
        let mut handed = HandedOver {
            sessions: Vec::new(),
            ended: Vec::new(),
            paused: Vec::new(),
        };
        // A session whose worker cannot be handed over reads as lost in the new image, never
        // as unknown.
        let mut lost = Vec::new();
        for session in sessions {
            let _ = tokio::time::timeout(FLUSH_DEADLINE, session.worker.flushed()).await;
            let Some(paused) = session.worker.pause().await else {
                lost.push(session);
                continue;
            };
            let pid = session.worker.pid();
            let (Some(worker), Some(start_time)) = (
                session.worker.hand_over(&paused),
                crate::spawn::reexec::start_time(pid),
            ) else {
                handed.paused.push(paused);
                lost.push(session);
                continue;
            };
            handed.sessions.push(SessionRecord {
                handle: session.handle.clone(),
                tag: session.tag.clone(),
                principal: session.principal.to_string(),
                is_default: session.is_default,
                created_at_ms: unix_ms(session.created_at),
                last_activity_ms: session.last_activity_ms.load(Ordering::Relaxed),
                start_time,
                worker,
            });
            handed.paused.push(paused);
        }
        let state = self.state();
        handed.ended = state
            .ended_order
            .iter()
            .filter_map(|handle| {
                let tombstone = state.ended.get(handle)?;
                let ended = match &tombstone.ended {
                    Ended::Closed => EndedAs::Closed,
                    Ended::Expired(why) => EndedAs::Expired((*why).to_string()),
                    Ended::Evicted => EndedAs::Evicted,
                    Ended::Lost(exit) => EndedAs::Lost(exit.status.clone()),
                    Ended::Shutdown => EndedAs::Shutdown,
                };
                Some(EndedRecord {
                    handle: handle.clone(),
                    principal: tombstone.principal.to_string(),
                    ended,
                })
            })
            .chain(lost.iter().map(|session| {
                EndedRecord {
                    handle: session.handle.clone(),
                    principal: session.principal.to_string(),
                    ended: EndedAs::Lost(
                        session
                            .worker
                            .exit()
                            .map_or_else(|| "ended during the reload".into(), |exit| exit.status),
                    ),
                }
            }))
            .collect();
        handed
    }

    /// Take over what the previous image handed over: each worker still the same process
    /// (pid and start time) gets a fresh actor on its inherited socket; any other session is
    /// remembered as lost. Call before anything is spawned.
    pub fn adopt(self: &Arc<Self>, sessions: Vec<SessionRecord>, ended: Vec<EndedRecord>) {
        {
            let mut state = self.state();
            for record in ended {
                let ended = match record.ended {
                    EndedAs::Closed => Ended::Closed,
                    EndedAs::Expired(why) => Ended::Expired(expiry_reason(&why)),
                    EndedAs::Evicted => Ended::Evicted,
                    EndedAs::Lost(status) => Ended::Lost(WorkerExit::crashed(status)),
                    EndedAs::Shutdown => Ended::Shutdown,
                };
                state.remember_ended(record.handle, Principal::from(record.principal), ended);
            }
        }
        let (alive, gone): (Vec<&SessionRecord>, Vec<&SessionRecord>) =
            sessions.iter().partition(|record| {
                crate::spawn::reexec::start_time(record.worker.pid) == Some(record.start_time)
            });
        for record in gone {
            self.lost_in_hand_over(
                record,
                "the worker was gone by the time the new image took over".into(),
            );
        }
        let workers: Vec<AdoptedWorker> = alive
            .iter()
            .map(|record| AdoptedWorker {
                pid: record.worker.pid,
                home: record.worker.home.clone(),
            })
            .collect();
        let taken = match crate::spawn::adopt(&workers) {
            Ok(taken) => taken,
            Err(error) => {
                for record in alive {
                    self.lost_in_hand_over(record, format!("cannot watch it: {error}"));
                }
                return;
            }
        };
        for (record, taken) in alive.into_iter().zip(taken) {
            let principal = Principal::from(record.principal.as_str());
            match self
                .launcher
                .adopt(&record.tag, &principal, &record.worker, taken)
            {
                Ok(worker) => self.insert_adopted(record, worker),
                Err(error) => self.lost_in_hand_over(record, error.to_string()),
            }
        }
    }

    /// Remember a session whose worker could not be taken over as lost, and let go of what
    /// the previous image handed over for it.
    fn lost_in_hand_over(&self, record: &SessionRecord, why: String) {
        tracing::warn!(session = %record.tag, pid = record.worker.pid, "session lost in the reload: {why}");
        for fd in std::iter::once(record.worker.socket_fd).chain(record.worker.stderr_fd) {
            // SAFETY: the previous image left this descriptor open for this image, and nothing
            // here owns it: closing it is ours to do.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        self.state().remember_ended(
            record.handle.clone(),
            Principal::from(record.principal.as_str()),
            Ended::Lost(WorkerExit::crashed(why)),
        );
    }

    fn insert_adopted(
        self: &Arc<Self>,
        record: &SessionRecord,
        worker: crate::worker::WorkerHandle,
    ) {
        let principal = Principal::from(record.principal.as_str());
        worker.bind(&principal, &record.tag);
        let created_at = UNIX_EPOCH + Duration::from_millis(record.created_at_ms);
        let age = SystemTime::now()
            .duration_since(created_at)
            .unwrap_or_default();
        let now = Instant::now();
        let created = now.checked_sub(age).unwrap_or(now);
        let session = Arc::new(Session {
            handle: record.handle.clone(),
            tag: record.tag.clone(),
            principal,
            is_default: record.is_default,
            created_at,
            created,
            last_activity_ms: AtomicU64::new(record.last_activity_ms),
            worker,
            in_flight: Arc::new(Semaphore::new(self.limits.max_in_flight)),
        });
        self.state()
            .live
            .insert(record.handle.clone(), session.clone());
        tracing::info!(session = %session.tag, pid = session.worker.pid(), "session taken over");
        tokio::spawn(watch_worker(Arc::downgrade(self), session));
    }
}

/// The expiry reasons the registry gives, as `'static` text again.
fn expiry_reason(why: &str) -> &'static str {
    const REASONS: [&str; 2] = ["reached its maximum age", "was idle past its time-to-live"];
    REASONS
        .into_iter()
        .find(|reason| *reason == why)
        .unwrap_or("expired")
}
