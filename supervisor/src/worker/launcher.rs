//! The one place that starts workers: for a session, for the pre-spawned pool and for the tool
//! catalog.
//!
//! A [`Launcher`] holds what every start needs — the spawner, the worker template (binary,
//! log settings, the trading desk, the optional wrapped server) and the timeouts — so the
//! layers above ask for "a worker for this session" and never build a spec themselves. It is
//! also the one place that knows which workers may come from a pool ([`PoolFit`]): a built-in
//! worker when its principal's rails are the defaults (the hello carries them); a wrapped
//! server's process when it was started with the provisioned environment its principal has on
//! disk now — each pre-spawned process carries the [`EnvStamp`] of the file it was started
//! from, and [`Launcher::pool_fit`] gives the stamp a session's process must have.

use std::sync::Arc;

use crate::credentials::EnvStamp;
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

/// A worker started for a pool, and the stamp of the provisioned environment it holds.
pub struct Spare {
    pub worker: WorkerHandle,
    /// `None`: started with no provisioned variables.
    pub stamp: Option<EnvStamp>,
}

/// Whether a session of a principal may be served by a pre-spawned process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolFit {
    /// No: its worker must be started for it (a built-in worker whose principal's rails differ
    /// from the defaults, or an environment file that cannot be read now — the cold start
    /// reports why).
    No,
    /// By a process started with exactly this provisioned environment (`None`: none).
    With(Option<EnvStamp>),
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

    /// A worker that belongs to no session yet, for a pool (tagged `pool-<n>`), started with
    /// `principal`'s provisioned environment (`None`: none).
    pub async fn start_for_pool(
        &self,
        name: &str,
        principal: Option<&Principal>,
    ) -> Result<Spare, StartError> {
        self.start_stamped(name, principal).await
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
        Ok(self.start_stamped(tag, principal).await?.worker)
    }

    async fn start_stamped(
        &self,
        tag: &str,
        principal: Option<&Principal>,
    ) -> Result<Spare, StartError> {
        let mut spec = self.inner.template.clone();
        spec.session_tag = tag.to_string();
        let principal = principal.map(|principal| &**principal);
        match &self.inner.source {
            Source::Spawner(spawner) => self.spawn(spawner, spec, principal).await,
            #[cfg(test)]
            Source::Fake(fake) => {
                let stamp = principal.and_then(|principal| fake.stamp_of(principal));
                let worker =
                    start::start(fake.spawn()?, spec, self.inner.timeouts, principal).await?;
                Ok(Spare { worker, stamp })
            }
        }
    }

    /// Spawn a real process for `spec` and bring it up.
    async fn spawn(
        &self,
        spawner: &Spawner,
        spec: WorkerSpec,
        principal: Option<&str>,
    ) -> Result<Spare, StartError> {
        let (command, redactor, stamp) = spec.flavor.command(principal)?;
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
        let worker = start::start(spawned, spec, self.inner.timeouts, principal).await?;
        Ok(Spare { worker, stamp })
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

    /// Whether a pre-spawned process may serve a session of `principal`, and which provisioned
    /// environment it must have been started with. A built-in worker (started with the
    /// defaults' hello) may not when the principal's rails differ from the defaults, which its
    /// hello must carry; a wrapped server's process must hold the principal's environment file
    /// as it is on disk now (read here, at every take).
    pub fn pool_fit(&self, principal: &Principal) -> PoolFit {
        #[cfg(test)]
        if let Source::Fake(fake) = &self.inner.source {
            return PoolFit::With(fake.stamp_of(principal));
        }
        match &self.inner.template.flavor {
            Flavor::Builtin(builtin) => {
                let default = builtin
                    .trading
                    .as_ref()
                    .is_none_or(|desk| desk.config().is_default_for(principal));
                if default {
                    PoolFit::With(None)
                } else {
                    PoolFit::No
                }
            }
            Flavor::Wrapped(server) => match server.environment_stamp(principal) {
                Ok(stamp) => PoolFit::With(stamp),
                Err(_) => PoolFit::No,
            },
        }
    }

    /// Whether a process carries its principal's provisioned environment from its start (a
    /// wrapped server's does; a built-in worker's never does — its credentials arrive in tool
    /// calls — so its pool holds workers of nobody).
    pub fn carries_environment(&self) -> bool {
        #[cfg(test)]
        if let Source::Fake(_) = &self.inner.source {
            return true;
        }
        self.wrapped().is_some()
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
