//! The [`Host`]: the one thread that forks every process and, on a reload, executes the new
//! image (see [`super`] for why it must be one long-lived thread, and the main thread), and the
//! [`Spawner`] handles that send it work.

use std::io;
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;

use tokio::sync::oneshot;

use super::{Confinement, Jail, SpawnRequest, Spawned, WorkerCommand, reexec};
use super::{spawn_worker, start_preflight};

/// What the [`Host`] is asked to do.
enum HostMessage {
    /// Take the runtime (to register sockets in) and the prepared confinement.
    Configure {
        runtime: tokio::runtime::Handle,
        jail: Box<Jail>,
    },
    Spawn(SpawnRequest),
    /// Start the pre-flight run of a new binary with the state file on descriptor 3.
    Preflight {
        program: PathBuf,
        state: std::os::fd::RawFd,
        /// The command line and environment the new image would get.
        args: Vec<std::ffi::OsString>,
        env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
        reply: oneshot::Sender<io::Result<super::Preflight>>,
    },
    /// Execute a new image in place; the reply comes only if that failed.
    Exec {
        plan: reexec::ExecPlan,
        reply: oneshot::Sender<io::Error>,
    },
    /// Stop looping and return this exit code.
    Exit(i32),
}

/// The thread that forks every process: it loops on its requests until told to exit or until
/// every [`HostLink`] is gone.
pub struct Host {
    inbox: std_mpsc::Receiver<HostMessage>,
}

/// A way to talk to the [`Host`]; cheap to clone.
#[derive(Clone)]
pub struct HostLink {
    requests: std_mpsc::Sender<HostMessage>,
}

/// A host (to run on the thread that must fork) and a link to it.
pub fn host() -> (HostLink, Host) {
    let (requests, inbox) = std_mpsc::channel();
    (HostLink { requests }, Host { inbox })
}

impl HostLink {
    /// Ask the host to return `code` from [`Host::run`].
    pub fn exit(&self, code: i32) {
        let _ = self.requests.send(HostMessage::Exit(code));
    }
}

impl Host {
    /// Serve requests on this thread. Returns the code of an [`HostLink::exit`], or 0 once
    /// every link is gone.
    pub fn run(self) -> i32 {
        let supervisor_pid = nix::unistd::getpid();
        let mut configured: Option<(tokio::runtime::Handle, Box<Jail>)> = None;
        for message in self.inbox {
            match message {
                HostMessage::Configure { runtime, jail } => configured = Some((runtime, jail)),
                HostMessage::Spawn(request) => {
                    let result = match &mut configured {
                        Some((runtime, jail)) => {
                            let _runtime = runtime.enter();
                            spawn_worker(&request.command, supervisor_pid, jail)
                                .map_err(crate::capacity::explain_spawn_error)
                        }
                        None => Err(io::Error::other("the spawner is not configured")),
                    };
                    // The requester may have given up (e.g. shutdown); the child is then
                    // dropped here, which kills it.
                    let _ = request.reply.send(result);
                }
                HostMessage::Preflight {
                    program,
                    state,
                    args,
                    env,
                    reply,
                } => {
                    let started = match &configured {
                        Some((runtime, _)) => {
                            let _runtime = runtime.enter();
                            start_preflight(&program, state, &args, &env)
                        }
                        None => Err(io::Error::other("the spawner is not configured")),
                    };
                    let _ = reply.send(started);
                }
                HostMessage::Exec { plan, reply } => {
                    let _ = reply.send(reexec::exec(&plan));
                }
                HostMessage::Exit(code) => return code,
            }
        }
        0
    }
}

/// Handle to the spawning thread. Cloning shares the thread.
#[derive(Clone)]
pub struct Spawner {
    requests: std_mpsc::Sender<HostMessage>,
}

impl Spawner {
    /// Start a spawning thread of its own (the unit tests' way). It runs until every `Spawner`
    /// clone is dropped: workers whose parent thread exits are killed.
    #[cfg(test)]
    pub fn start_confined(
        runtime: tokio::runtime::Handle,
        confinement: Confinement,
    ) -> io::Result<Self> {
        let (link, host) = host();
        let spawner = Self::on_host(&link, runtime, &confinement)?;
        std::thread::Builder::new()
            .name("bulkhead-spawner".into())
            .spawn(move || host.run())?;
        Ok(spawner)
    }

    /// Spawn through `host`, which must run on a thread that lives as long as the process.
    ///
    /// Also makes the supervisor itself non-dumpable: its workers may share its uid, and a
    /// dumpable process's memory and environment are open to any process of the same uid
    /// through `/proc`. Fails when the confinement cannot be honoured (a uid range without
    /// root, an explicit cgroup that cannot be used).
    pub fn on_host(
        host: &HostLink,
        runtime: tokio::runtime::Handle,
        confinement: &Confinement,
    ) -> io::Result<Self> {
        nix::sys::prctl::set_dumpable(false).map_err(io::Error::from)?;
        let jail = Box::new(Jail::prepare(confinement)?);
        host.requests
            .send(HostMessage::Configure { runtime, jail })
            .map_err(|_| io::Error::other("the spawner thread has stopped"))?;
        Ok(Self {
            requests: host.requests.clone(),
        })
    }

    /// Start the pre-flight run of `program` against the state file `state` (see
    /// [`reexec`]): the child, and the pipe its answer comes on.
    pub async fn preflight(
        &self,
        program: PathBuf,
        state: std::os::fd::RawFd,
        args: Vec<std::ffi::OsString>,
        env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    ) -> io::Result<super::Preflight> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(HostMessage::Preflight {
                program,
                state,
                args,
                env,
                reply,
            })
            .map_err(|_| io::Error::other("the spawner thread has stopped"))?;
        answer
            .await
            .map_err(|_| io::Error::other("the spawner thread has stopped"))?
    }

    /// Execute `plan` in place of this image, on the host thread. Returns only if the exec
    /// failed, with why.
    pub async fn exec(&self, plan: reexec::ExecPlan) -> io::Error {
        let (reply, answer) = oneshot::channel();
        if self
            .requests
            .send(HostMessage::Exec { plan, reply })
            .is_err()
        {
            return io::Error::other("the spawner thread has stopped");
        }
        answer
            .await
            .unwrap_or_else(|_| io::Error::other("the spawner thread has stopped"))
    }

    /// Start one worker.
    pub async fn spawn(&self, command: WorkerCommand) -> io::Result<Spawned> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(HostMessage::Spawn(SpawnRequest { command, reply }))
            .map_err(|_| io::Error::other("the spawner thread has stopped"))?;
        answer
            .await
            .map_err(|_| io::Error::other("the spawner thread has stopped"))?
    }
}
