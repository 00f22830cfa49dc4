//! The one place that starts workers: for a session, for the pre-spawned pool and for the tool
//! catalog.
//!
//! A [`Launcher`] holds what every start needs — the spawner, the worker template (binary,
//! log settings, the trading desk, the optional wrapped server) and the timeouts — so the
//! layers above ask for "a worker for this session" and never build a spec themselves. It is
//! also the one place that knows which workers may come from the pool: none in external worker
//! mode (a wrapped server gets its principal's environment at start), and none for a principal
//! whose rails differ from the defaults (the hello carries them).

use std::sync::Arc;

use crate::principal::Principal;
use crate::spawn::Spawner;
use crate::wrap::WrappedServer;

use super::flavor::Flavor;
use super::{StartError, WorkerHandle, WorkerSpec, WorkerTimeouts, process, start};

/// Starts workers; cheap to clone (every clone shares one spawner).
#[derive(Clone)]
pub struct Launcher {
    inner: Arc<Inner>,
}

struct Inner {
    source: Source,
    /// Every worker's spec but its tag, which each start sets.
    template: WorkerSpec,
    timeouts: WorkerTimeouts,
}

/// Where processes come from.
enum Source {
    Spawner(Spawner),
    /// Fake built-in workers on fake processes, for the unit tests of the layers above.
    #[cfg(test)]
    Fake(super::fake::FakeSpawner),
}

impl Launcher {
    pub fn new(spawner: Spawner, template: WorkerSpec, timeouts: WorkerTimeouts) -> Self {
        Self {
            inner: Arc::new(Inner {
                source: Source::Spawner(spawner),
                template,
                timeouts,
            }),
        }
    }

    /// A launcher whose workers `fake` starts, for tests.
    #[cfg(test)]
    pub(super) fn fake(
        fake: super::fake::FakeSpawner,
        template: WorkerSpec,
        timeouts: WorkerTimeouts,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                source: Source::Fake(fake),
                template,
                timeouts,
            }),
        }
    }

    /// A worker for a session of `principal`, logging under the session's `tag`; a wrapped
    /// server gets the principal's provisioned environment.
    pub async fn start_for_session(
        &self,
        tag: &str,
        principal: &Principal,
    ) -> Result<WorkerHandle, StartError> {
        self.start(tag, Some(principal)).await
    }

    /// A worker that belongs to no session yet, for the pool (tagged `pool-<n>`).
    pub async fn start_for_pool(&self, name: &str) -> Result<WorkerHandle, StartError> {
        self.start(name, None).await
    }

    /// A worker that belongs to no session, to read the tool catalog from.
    pub async fn start_for_catalog(&self) -> Result<WorkerHandle, StartError> {
        self.start("catalog", None).await
    }

    async fn start(
        &self,
        tag: &str,
        principal: Option<&Principal>,
    ) -> Result<WorkerHandle, StartError> {
        let mut spec = self.inner.template.clone();
        spec.session_tag = tag.to_string();
        let principal = principal.map(|principal| &**principal);
        match &self.inner.source {
            Source::Spawner(spawner) => self.spawn(spawner, spec, principal).await,
            #[cfg(test)]
            Source::Fake(fake) => {
                start::start(fake.spawn()?, spec, self.inner.timeouts, principal).await
            }
        }
    }

    /// Spawn a real process for `spec` and bring it up.
    async fn spawn(
        &self,
        spawner: &Spawner,
        spec: WorkerSpec,
        principal: Option<&str>,
    ) -> Result<WorkerHandle, StartError> {
        let (command, redactor) = spec.flavor.command(principal)?;
        let program = command.program.display().to_string();
        let spawned = spawner
            .spawn(command)
            .await
            .map_err(|source| StartError::Spawn { program, source })?;
        let pid = spawned.child.id();
        let holdings = super::adopt::Holdings {
            socket_fd: Some(std::os::fd::AsRawFd::as_raw_fd(&spawned.socket)),
            stderr_fd: spawned.stderr.as_ref().map(std::os::fd::AsRawFd::as_raw_fd),
            home: spawned.lease.home(),
        };
        let stderr = match (spawned.stderr, redactor) {
            (Some(stderr), Some(redactor)) => Some(crate::wrap::stderr::collect(
                stderr,
                spec.session_tag.clone(),
                pid,
                redactor,
            )),
            _ => None,
        };

        let (reader, writer) = spawned.socket.into_split();
        let process =
            process::Spawned::new(spawned.child, spawned.lease, spec.flavor.owns_a_tree());
        let spawned = start::Spawned {
            process,
            reader,
            writer,
            stderr,
            sandbox: spawned.sandbox,
            holdings,
        };
        start::start(spawned, spec, self.inner.timeouts, principal).await
    }

    /// Take over a worker of `principal` the previous image handed over (`taken` re-recorded
    /// with the reaper), logging under `tag`.
    pub fn adopt(
        &self,
        tag: &str,
        principal: &Principal,
        hand_over: &super::adopt::HandOver,
        taken: (crate::spawn::Child, crate::spawn::WorkerLease),
    ) -> std::io::Result<WorkerHandle> {
        let mut spec = self.inner.template.clone();
        spec.session_tag = tag.to_string();
        super::adopt::attach(hand_over, taken, spec, self.inner.timeouts, principal)
    }

    /// Whether pre-spawned workers can serve sessions at all: not in external worker mode,
    /// where a process must start with its principal's environment.
    pub fn pools(&self) -> bool {
        matches!(self.inner.template.flavor, Flavor::Builtin(_))
    }

    /// Whether a pre-spawned worker (started with the defaults' hello) may serve a session of
    /// `principal`: not when the principal's rails differ from the defaults, which its worker's
    /// hello must carry.
    pub fn may_pool_for(&self, principal: &Principal) -> bool {
        match &self.inner.template.flavor {
            Flavor::Builtin(builtin) => builtin
                .trading
                .as_ref()
                .is_none_or(|desk| desk.config().is_default_for(principal)),
            Flavor::Wrapped(_) => false,
        }
    }

    /// The wrapped stdio server, in external worker mode.
    pub fn wrapped(&self) -> Option<&Arc<WrappedServer>> {
        match &self.inner.template.flavor {
            Flavor::Builtin(_) => None,
            Flavor::Wrapped(server) => Some(server),
        }
    }

    /// The timings every worker is started and stopped with.
    pub fn timeouts(&self) -> WorkerTimeouts {
        self.inner.timeouts
    }
}
