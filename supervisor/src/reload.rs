//! Upgrading in place on SIGHUP (ARCHITECTURE.md, *Upgrading in place*): quiesce, hand the
//! sessions over in a versioned state file, pre-flight the binary on disk, and execute it on
//! the main thread; in the new image, read the state back.
//!
//! The state is one memory file: a header line `BULKHEAD-STATE <version>` and a JSON body. The
//! pre-flight run (`bulkhead --reload-preflight 3`) reads only the header and answers on its
//! stdout, so a file that is not a Bulkhead binary (it prints nothing), a missing file and a
//! binary of another state version all refuse the reload before anything is lost.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};

use crate::http::handover::{self as http_handover, HttpRecord};
use crate::mcp::Frontend;
use crate::session::{EndedRecord, Registry, SessionRecord};
use crate::spawn::Spawner;
use crate::spawn::reexec::{self, ExecPlan, PREFLIGHT_FLAG, PREFLIGHT_STATE_FD};
use crate::stdio::{self, StdioRecord};

/// The environment variable that names the state's descriptor in the new image.
pub const ENV_RELOAD_STATE: &str = "BULKHEAD_RELOAD_STATE";

/// The state file's first word.
const HEADER: &str = "BULKHEAD-STATE";

/// The pre-flight run's answer when it can take the state over.
const PREFLIGHT_OK: &str = "bulkhead-preflight ok";

/// Exit status of a pre-flight run that cannot take the state over.
const EXIT_INCOMPATIBLE: u8 = 3;

/// Longest wait for calls in flight before a reload: long enough for an ordinary tool call,
/// short enough that a client waiting on stdin notices only a pause.
const RELOAD_DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// How long requests cut off at the reload deadline get to send their answer.
const CUTOFF_GRACE: Duration = Duration::from_secs(2);

/// Longest a pre-flight run may take: it reads one line.
const PREFLIGHT_DEADLINE: Duration = Duration::from_secs(10);

/// Largest state file read back (each session is well under a kilobyte plus its leftover
/// bytes, themselves bounded by the frame limit).
const MAX_STATE_BYTES: u64 = 1 << 30;

/// Longest wait for stdout to take what is queued for it before the hand-over.
const STDOUT_FLUSH_DEADLINE: Duration = Duration::from_secs(5);

/// Everything one image hands the next.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub sessions: Vec<SessionRecord>,
    pub ended: Vec<EndedRecord>,
    /// The stdio conversation, under `bulkhead stdio`.
    pub stdio: Option<StdioRecord>,
    /// The HTTP front door, under `bulkhead serve`.
    pub http: Option<HttpRecord>,
}

/// How to quiesce the transport being served.
pub enum Transport {
    Stdio(mpsc::Sender<stdio::PauseRequest>),
    Http(mpsc::Sender<http_handover::PauseRequest>),
}

/// Environment variables of the first start only: socket activation's listeners reach the new
/// image through the state instead (their descriptors may be numbered differently by then).
const FIRST_START_ONLY: [&str; 3] = ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"];

/// Why a reload did not happen; the old image keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("a reload is already under way")]
    Busy,
    #[error("the transport is shutting down")]
    Stopping,
    #[error("requests were still running after the reload deadline and their cut-off")]
    InFlight,
    #[error("cannot find the supervisor's own binary: {0}")]
    OwnPath(std::io::Error),
    #[error("cannot write the state file: {0}")]
    State(std::io::Error),
    #[error("the new binary {path} cannot be started: {source}")]
    Missing {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the new binary {path} is not a Bulkhead supervisor (its pre-flight run gave no answer, {status})"
    )]
    NotBulkhead { path: String, status: String },
    #[error("the new binary {path} cannot take over this state: {answer}")]
    Incompatible { path: String, answer: String },
    #[error("the pre-flight run of {0} did not finish in time")]
    PreflightTimeout(String),
    #[error("the exec of {path} failed: {source}")]
    Exec {
        path: String,
        source: std::io::Error,
    },
}

impl State {
    fn encode(&self) -> Vec<u8> {
        let mut bytes = format!("{HEADER} {}\n", crate::release::state_version()).into_bytes();
        // Serializing plain records cannot fail.
        bytes.extend(serde_json::to_vec(self).unwrap_or_default());
        bytes
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let newline = bytes
            .iter()
            .position(|&byte| byte == b'\n')
            .ok_or("no header line")?;
        let version = header_version(&bytes[..newline])?;
        if version != crate::release::state_version() {
            return Err(format!(
                "state version {version}, this build takes {}",
                crate::release::state_version()
            ));
        }
        serde_json::from_slice(&bytes[newline + 1..]).map_err(|error| error.to_string())
    }
}

fn header_version(line: &[u8]) -> Result<u32, String> {
    let line = std::str::from_utf8(line).map_err(|_| "a header that is not text")?;
    let version = line
        .strip_prefix(HEADER)
        .ok_or("not a Bulkhead state file")?;
    version
        .trim()
        .parse()
        .map_err(|_| format!("a malformed state version {version:?}"))
}

/// The state the previous image left, if this image was executed by a reload. A state that
/// cannot be read is logged and ignored (the workers it named end with their sockets).
pub fn inherited() -> Option<State> {
    let fd: RawFd = std::env::var(ENV_RELOAD_STATE).ok()?.parse().ok()?;
    // SAFETY: the previous image left this descriptor open for this image and named it in the
    // environment; nothing else here owns it.
    let bytes = match unsafe { reexec::read_inherited(fd, MAX_STATE_BYTES) } {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::error!("reload: cannot read the state the previous image left: {error}");
            return None;
        }
    };
    match State::decode(&bytes) {
        Ok(state) => Some(state),
        Err(error) => {
            tracing::error!("reload: cannot take over the previous image's state: {error}");
            None
        }
    }
}

/// `bulkhead --reload-preflight FD ARGS…`: the state's descriptor and the command line to check
/// (`ARGS`, after the program name); `None` when the arguments ask for something else.
pub fn preflight_request(args: &[OsString]) -> Option<(RawFd, Vec<OsString>)> {
    if args.get(1).is_none_or(|flag| flag != PREFLIGHT_FLAG) {
        return None;
    }
    let fd = args
        .get(2)
        .and_then(|fd| fd.to_str()?.parse::<RawFd>().ok())
        .unwrap_or(PREFLIGHT_STATE_FD);
    let rest = args
        .first()
        .cloned()
        .into_iter()
        .chain(args.iter().skip(3).cloned())
        .collect();
    Some((fd, rest))
}

/// Whether this build can take over the state on `fd` (its header's version).
pub fn preflight_state(fd: RawFd) -> Result<(), String> {
    // SAFETY: the reloading image put the state on this descriptor for this run alone.
    let bytes = unsafe { reexec::read_inherited(fd, 256) }.unwrap_or_default();
    let line = bytes.split(|&byte| byte == b'\n').next().unwrap_or(&[]);
    match header_version(line)? {
        version if version == crate::release::state_version() => Ok(()),
        version => Err(format!(
            "state version {version}, this build takes {}",
            crate::release::state_version()
        )),
    }
}

/// Write the pre-flight run's answer on stdout (the reloading image reads it) and return its
/// exit status.
pub fn preflight_answer(verdict: Result<(), String>) -> u8 {
    let mut stdout = std::io::stdout().lock();
    match verdict {
        Ok(()) => {
            // The pre-flight run's answer is its output.
            let _ = writeln!(stdout, "{PREFLIGHT_OK} {}", crate::release::version());
            0
        }
        Err(why) => {
            let _ = writeln!(stdout, "bulkhead-preflight incompatible: {why}");
            EXIT_INCOMPATIBLE
        }
    }
}

/// Runs reloads, one at a time.
pub struct Reloader {
    pub spawner: Spawner,
    pub frontend: Arc<Frontend>,
    pub registry: Arc<Registry>,
    transport: Transport,
    busy: AtomicBool,
}

impl Reloader {
    pub fn new(
        spawner: Spawner,
        frontend: Arc<Frontend>,
        registry: Arc<Registry>,
        transport: Transport,
    ) -> Arc<Self> {
        Arc::new(Self {
            spawner,
            frontend,
            registry,
            transport,
            busy: AtomicBool::new(false),
        })
    }

    /// Reload in place; returns only when the reload was refused (the old image serves on).
    pub async fn reload(&self) -> Refused {
        if self.busy.swap(true, Ordering::AcqRel) {
            return Refused::Busy;
        }
        tracing::info!("SIGHUP: reloading in place");
        let refused = self.try_reload().await;
        self.busy.store(false, Ordering::Release);
        refused
    }

    async fn try_reload(&self) -> Refused {
        let path = match reexec::own_path() {
            Ok(path) => path,
            Err(error) => return Refused::OwnPath(error),
        };
        // Quiesce: stdin is no longer read, or nothing is accepted; what is in flight finishes.
        let (stdio, http) = match &self.transport {
            Transport::Stdio(pauses) => (ask_pause(pauses).await, None),
            Transport::Http(pauses) => (None, ask_pause(pauses).await),
        };
        if stdio.is_none() && http.is_none() {
            return Refused::Stopping;
        }
        if !self.frontend.tasks.wait(RELOAD_DRAIN_DEADLINE).await {
            let running = self.frontend.tasks.running();
            tracing::warn!(
                requests = running,
                "reload: calls still running at the reload deadline are answered with the retryable RELOADING error"
            );
            self.frontend.reload_cutoff.notify_waiters();
            if !self.frontend.tasks.wait(CUTOFF_GRACE).await {
                return Refused::InFlight;
            }
        }
        if let Some(stdio) = &stdio {
            let _ = tokio::time::timeout(STDOUT_FLUSH_DEADLINE, stdio.stdout.flushed()).await;
        }
        let handed = self.registry.hand_over().await;
        let state = State {
            sessions: handed.sessions,
            ended: handed.ended,
            stdio: stdio.as_ref().map(|stdio| StdioRecord {
                connection: stdio.connection.record(),
                pending_stdin: stdio.pending_stdin.clone(),
            }),
            http: http
                .as_ref()
                .map(|http| http.state.record(http.listeners.clone())),
        };
        let file = match reexec::memory_file("bulkhead-state", &state.encode()) {
            Ok(file) => file,
            Err(error) => return Refused::State(error),
        };
        let env = new_image_environment(file.as_raw_fd());
        if let Err(refused) = self.preflight(&path, file.as_raw_fd(), env.clone()).await {
            return refused;
        }
        let mut inherit = vec![0, 1, 2, file.as_raw_fd()];
        inherit.extend(state.sessions.iter().flat_map(|session| {
            std::iter::once(session.worker.socket_fd).chain(session.worker.stderr_fd)
        }));
        inherit.extend(
            state
                .http
                .iter()
                .flat_map(|http| http.listeners.iter().map(|listener| listener.fd)),
        );
        let plan = ExecPlan {
            program: path.clone(),
            args: std::env::args_os().skip(1).collect(),
            env,
            inherit,
        };
        tracing::info!(
            sessions = state.sessions.len(),
            descriptors = ?plan.inherit,
            binary = %path.display(),
            "reload: executing the new image"
        );
        let source = self.spawner.exec(plan).await;
        // Still here: the paused workers and stdin resume when `handed.paused` and `stdio`
        // are dropped.
        drop(handed.paused);
        Refused::Exec {
            path: path.display().to_string(),
            source,
        }
    }
}

/// The new image's environment: this one's, without what describes the first start only, and
/// with the state's descriptor.
fn new_image_environment(state_fd: RawFd) -> Vec<(OsString, OsString)> {
    std::env::vars_os()
        .filter(|(name, _)| {
            name != ENV_RELOAD_STATE && !FIRST_START_ONLY.iter().any(|first| name == first)
        })
        .chain(std::iter::once((
            ENV_RELOAD_STATE.into(),
            state_fd.to_string().into(),
        )))
        .collect()
}

/// Ask a transport to pause; `None` if it is gone.
async fn ask_pause<T>(pauses: &mpsc::Sender<oneshot::Sender<T>>) -> Option<T> {
    let (reply, paused) = oneshot::channel();
    pauses.send(reply).await.ok()?;
    paused.await.ok()
}

impl Reloader {
    /// Run the new binary's pre-flight mode against the state on `state`.
    async fn preflight(
        &self,
        path: &Path,
        state: RawFd,
        env: Vec<(OsString, OsString)>,
    ) -> Result<(), Refused> {
        let shown = path.display().to_string();
        // Held until the run is reaped: it keeps the run among the live workers.
        let mut preflight = self
            .spawner
            .preflight(
                path.to_path_buf(),
                state,
                std::env::args_os().skip(1).collect(),
                env,
            )
            .await
            .map_err(|source| Refused::Missing {
                path: shown.clone(),
                source,
            })?;
        let run = async {
            let mut text = Vec::new();
            let _ = (&mut preflight.answer)
                .take(4096)
                .read_to_end(&mut text)
                .await;
            let status = preflight.child.wait().await;
            (String::from_utf8_lossy(&text).trim().to_string(), status)
        };
        let Ok((text, status)) = tokio::time::timeout(PREFLIGHT_DEADLINE, run).await else {
            preflight.child.start_kill();
            return Err(Refused::PreflightTimeout(shown));
        };
        let status = status.map_or_else(|error| error.to_string(), |status| status.to_string());
        if text.starts_with(PREFLIGHT_OK) && status == "exit status: 0" {
            tracing::info!("reload: pre-flight passed: {text}");
            Ok(())
        } else if text.starts_with("bulkhead-preflight") {
            Err(Refused::Incompatible {
                path: shown,
                answer: text,
            })
        } else {
            Err(Refused::NotBulkhead {
                path: shown,
                status,
            })
        }
    }
}

/// Read a state file back (tests).
#[cfg(test)]
fn decode_file(mut file: std::fs::File) -> Result<State, String> {
    use std::io::{Read, Seek};
    file.rewind().map_err(|error| error.to_string())?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|error| error.to_string())?;
    State::decode(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_round_trips_through_its_memory_file_and_other_versions_are_refused() {
        let state = State {
            stdio: Some(StdioRecord::default()),
            ..State::default()
        };
        let file = reexec::memory_file("test", &state.encode()).unwrap();
        assert!(decode_file(file).unwrap().stdio.is_some());
        assert!(State::decode(b"BULKHEAD-STATE 9999\n{}").is_err());
        assert!(State::decode(b"ELF\n{}").is_err());
    }
}
