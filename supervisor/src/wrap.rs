//! External worker mode: any stdio MCP server, one sandboxed process of it per session, behind
//! the same supervisor (`bulkhead stdio --wrap -- CMD ARGS...`).
//!
//! Nothing above the worker layer changes: sessions, handles, limits, deadlines and crash
//! semantics are the built-in worker's. What differs is how a session's process is started and
//! spoken to:
//!
//! - **Start** ([`WrappedServer::launch`]): the spawner runs `bulkhead-worker --exec`, the exec
//!   shim, which confines itself by this server's [`ExecPolicy`] and executes the command with
//!   the session's socket on its stdin and stdout. The environment is built here and nowhere
//!   else: `PATH` (a fixed safe value unless passed through), the variables named by
//!   `--wrap-env`, and the variables provisioned for the session's principal in
//!   `<credentials-dir>/<principal>.env`, read at each start; the spawner adds a private
//!   `HOME`/`TMPDIR`. Nothing else of the supervisor's environment reaches the server.
//! - **Speech** ([`bridge`]): no Bulkhead handshake; the connection is put in the era the server
//!   speaks, and requests and replies are translated for clients of the other era.
//! - **Names** ([`names`]): tools and arguments that collide with Bulkhead's session tools and
//!   `session` argument are renamed (`--wrap-rename`) or refused at start.
//! - **Stderr** ([`stderr`]): read by the supervisor, redacted, kept as a tail for crash logs;
//!   a failed start's tail and exit status get a sentence naming the flag that would allow
//!   what the sandbox refused ([`hints`]).
//! - **Packages** ([`install`]): `npx -y PKG` and `uvx PKG` installed once, at start, into a
//!   cache every session reads; **paths** ([`paths`]): the read set derived from where the
//!   program is installed.
//!
//! Its flags and their resolution (the program on the server's `PATH`, the Landlock paths) are
//! the configuration layer's (`config::wrap`); this module knows no clap, no catalog and no
//! front door.

pub mod bridge;
pub mod hints;
pub mod install;
pub mod names;
pub mod paths;
pub mod stderr;

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bulkhead_protocol::exec::{EXEC_FLAG, ExecPolicy};
use zeroize::Zeroizing;

use crate::credentials::{CredentialStore, EnvStamp};
use crate::spawn::{WorkerCommand, WrappedLaunch};

pub use names::Renames;

/// The validated external worker configuration.
#[derive(Debug, Clone)]
pub struct WrapConfig {
    /// The resolved program, absolute.
    pub program: PathBuf,
    /// `argv[0]` as given, then the arguments.
    pub argv: Vec<OsString>,
    pub renames: Renames,
    /// Variables every server gets (`PATH`, and those of `--wrap-env`), captured at start.
    pub env: Vec<(OsString, OsString)>,
    pub policy: ExecPolicy,
    pub start_timeout: Duration,
    pub max_address_space: u64,
    /// `npx -y PKG` / `uvx PKG`: the package to install once before the first session
    /// ([`install::prepare`] then points `program` and `argv` at the install).
    pub package: Option<install::PackageRun>,
}

impl WrapConfig {
    /// The server's `PATH`.
    pub fn search_path(&self) -> OsString {
        self.env
            .iter()
            .find(|(name, _)| name == "PATH")
            .map(|(_, value)| value.clone())
            .unwrap_or_default()
    }
}

/// A wrapped server as the worker layer uses it: its configuration, where its credentials come
/// from, and what the first start learned about it.
pub struct WrappedServer {
    config: WrapConfig,
    /// The exec shim: the `bulkhead-worker` binary.
    shim: PathBuf,
    credentials: CredentialStore,
    detected: OnceLock<bridge::Detected>,
}

impl std::fmt::Debug for WrappedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrappedServer")
            .field("program", &self.config.program)
            .finish_non_exhaustive()
    }
}

/// What starting one wrapped process needs.
pub struct Launch {
    pub command: WorkerCommand,
    /// Redacts this session's provisioned values from the server's stderr.
    pub redactor: stderr::Redactor,
    /// The stamp of the environment file the provisioned variables came from (`None`: none).
    pub stamp: Option<EnvStamp>,
}

impl WrappedServer {
    /// The wrapped server of a configuration, if external worker mode is on.
    pub fn new(
        config: Option<&WrapConfig>,
        shim: PathBuf,
        credentials_dir: Option<PathBuf>,
    ) -> Option<Arc<Self>> {
        Some(Arc::new(Self {
            config: config?.clone(),
            shim,
            credentials: CredentialStore::new(credentials_dir),
            detected: OnceLock::new(),
        }))
    }

    /// The command for one process of this server, for `principal`'s session (`None`: a
    /// process that belongs to no session, such as the catalog's, gets no provisioned
    /// variables).
    pub fn launch(&self, principal: Option<&str>) -> Result<Launch, String> {
        let (provisioned, stamp) = match principal {
            Some(principal) => self.credentials.stamped_environment(principal)?,
            None => (Vec::new(), None),
        };
        let mut env: Vec<(OsString, Zeroizing<Vec<u8>>)> = self
            .config
            .env
            .iter()
            .map(|(name, value)| (name.clone(), Zeroizing::new(value.as_bytes().to_vec())))
            .collect();
        for (name, value) in &provisioned {
            env.retain(|(existing, _)| existing != name.as_str());
            env.push((name.into(), Zeroizing::new(value.as_bytes().to_vec())));
        }
        let mut args: Vec<OsString> = vec![
            EXEC_FLAG.into(),
            "--".into(),
            self.config.program.clone().into(),
        ];
        args.extend(self.config.argv.iter().cloned());
        Ok(Launch {
            command: WorkerCommand {
                program: self.shim.clone(),
                args,
                wrapped: Some(WrappedLaunch {
                    env,
                    policy: self.config.policy.clone(),
                    max_address_space: self.config.max_address_space,
                }),
            },
            redactor: stderr::Redactor::new(&provisioned),
            stamp,
        })
    }

    /// The stamp of `principal`'s provisioned environment as it is on disk now (`None`: no
    /// variables are provisioned for it), to compare with a pre-spawned process's.
    pub fn environment_stamp(&self, principal: &str) -> Result<Option<EnvStamp>, String> {
        self.credentials
            .stamped_environment(principal)
            .map(|(_, stamp)| stamp)
    }

    pub fn renames(&self) -> &Renames {
        &self.config.renames
    }

    pub fn start_timeout(&self) -> Duration {
        self.config.start_timeout
    }

    /// One sentence naming the flag that would let a server that failed to start, with this
    /// stderr tail and exit status, start (see [`hints`]).
    pub fn start_hint(
        &self,
        tail: &str,
        status: Option<std::process::ExitStatus>,
    ) -> Option<String> {
        hints::hint(
            tail,
            status,
            &hints::Allowed {
                policy: &self.config.policy,
                max_address_space: self.config.max_address_space,
            },
        )
    }

    /// What an earlier start learned about the server's era.
    pub fn detected(&self) -> Option<&bridge::Detected> {
        self.detected.get()
    }

    /// Remember what the first start learned.
    pub fn remember(&self, detected: &bridge::Detected) {
        let _ = self.detected.set(detected.clone());
    }
}
