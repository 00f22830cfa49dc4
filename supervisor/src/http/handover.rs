//! The HTTP front door's part of a reload (ARCHITECTURE.md, *Upgrading in place*): it stops
//! accepting (the listening sockets stay open, so the kernel queues new connections), answers
//! requests on open connections with the retryable `RELOADING` error, and describes its
//! listeners, its legacy sessions and its 2026-07-28 contexts for the next image, which takes
//! them over instead of binding.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::{HttpState, LegacySession, Listener, discard_sink};
use crate::mcp::{Connection, ConnectionRecord};
use crate::principal::Principal;

/// The front door, paused for a reload: it accepts again when `_resume` is dropped.
pub struct Paused {
    pub state: Arc<HttpState>,
    pub listeners: Vec<ListenerRecord>,
    /// Dropping it resumes accepting.
    pub _resume: oneshot::Sender<()>,
}

/// A request to pause the front door; the reply carries what a reload needs.
pub type PauseRequest = oneshot::Sender<Paused>;

/// A listening socket kept open across the exec.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListenerRecord {
    pub fd: RawFd,
    /// A Unix socket's path (removed at shutdown); `None` for TCP.
    pub unix_path: Option<PathBuf>,
}

/// Everything the front door hands over.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HttpRecord {
    pub listeners: Vec<ListenerRecord>,
    /// Legacy sessions: their `Mcp-Session-Id`, principal and connection.
    pub legacy: Vec<(String, String, ConnectionRecord)>,
    /// The 2026-07-28 context of each principal.
    pub modern: Vec<(String, ConnectionRecord)>,
}

/// Runs in the serve loop: refuse requests, hand the listeners' descriptors over, wait until
/// the reload is over.
pub(super) async fn pause(state: &Arc<HttpState>, listeners: &[Listener], reply: PauseRequest) {
    state.reloading.store(true, Ordering::Relaxed);
    let (resume, resumed) = oneshot::channel();
    let paused = Paused {
        state: state.clone(),
        listeners: listeners
            .iter()
            .map(|listener| match listener {
                Listener::Tcp(tcp) => ListenerRecord {
                    fd: tcp.as_raw_fd(),
                    unix_path: None,
                },
                Listener::Unix(unix, path) => ListenerRecord {
                    fd: unix.as_raw_fd(),
                    unix_path: Some(path.clone()),
                },
            })
            .collect(),
        _resume: resume,
    };
    if reply.send(paused).is_ok() {
        let _ = resumed.await;
    }
    state.reloading.store(false, Ordering::Relaxed);
}

impl HttpState {
    /// Whether a reload is under way (requests are refused as retryable).
    pub(super) fn is_reloading(&self) -> bool {
        self.reloading.load(Ordering::Relaxed)
    }

    /// The legacy sessions and 2026-07-28 contexts, for a reload; taken while no request runs.
    pub fn record(&self, listeners: Vec<ListenerRecord>) -> HttpRecord {
        let legacy = self
            .legacy
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|(id, session)| {
                (
                    id.clone(),
                    session.connection.principal().to_string(),
                    session.connection.record(),
                )
            })
            .collect();
        let modern = self
            .modern
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|(principal, connection)| (principal.to_string(), connection.record()))
            .collect();
        HttpRecord {
            listeners,
            legacy,
            modern,
        }
    }

    /// Take over the previous image's legacy sessions and 2026-07-28 contexts.
    pub fn restore(&self, record: &HttpRecord) {
        for (id, principal, connection_record) in &record.legacy {
            let connection = Connection::new(
                self.frontend.clone(),
                Principal::from(principal.as_str()),
                discard_sink(),
            );
            connection.restore(connection_record);
            self.legacy
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert(id.clone(), LegacySession { connection });
        }
        for (principal, connection_record) in &record.modern {
            let principal = Principal::from(principal.as_str());
            self.modern_connection(&principal)
                .restore(connection_record);
        }
    }
}

/// The listeners the previous image handed over, close-on-exec again.
pub fn listeners_from(records: &[ListenerRecord]) -> std::io::Result<Vec<Listener>> {
    let mut listeners = Vec::new();
    for record in records {
        crate::spawn::reexec::keep_private(record.fd)?;
        // SAFETY: the previous image left this listening socket open for this image, which
        // owns it from here on.
        let fd = unsafe { OwnedFd::from_raw_fd(record.fd) };
        listeners.push(match &record.unix_path {
            None => {
                let listener = std::net::TcpListener::from(fd);
                listener.set_nonblocking(true)?;
                Listener::Tcp(tokio::net::TcpListener::from_std(listener)?)
            }
            Some(path) => {
                let listener = std::os::unix::net::UnixListener::from(fd);
                listener.set_nonblocking(true)?;
                Listener::Unix(tokio::net::UnixListener::from_std(listener)?, path.clone())
            }
        });
    }
    Ok(listeners)
}
