//! Command-line options and the validated configuration they resolve to.
//!
//! Every default is a named constant with the reason for its value. Validation collects every
//! problem before reporting, so an operator fixes a bad invocation in one go; a bad
//! configuration exits with [`EXIT_CONFIG`].

use std::path::PathBuf;
use std::time::Duration;

use bulkhead_protocol::frame::DEFAULT_MAX_FRAME_BYTES;
use bulkhead_protocol::handle::is_valid_node;
use clap::{Args, Parser, Subcommand};

use crate::session::SessionLimits;
use crate::worker::WorkerTimeouts;

/// Exit code for a configuration error (EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;

/// Node name in handles when none is configured: fine for one machine; set `--node` per
/// supervisor behind a load balancer.
pub const DEFAULT_NODE: &str = "local";
/// Sessions open at once in one supervisor (the brief's default).
pub const DEFAULT_MAX_SESSIONS: usize = 1000;
/// Sessions one principal may hold: a tenth of the total, so one principal cannot take all.
pub const DEFAULT_MAX_SESSIONS_PER_PRINCIPAL: usize = 100;
/// Requests in flight per session: enough for an agent's parallel tool calls, small enough
/// that one session cannot queue unbounded work in its worker.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 16;
/// Idle time after which a session ends (the brief's default, 30 min).
pub const DEFAULT_IDLE_TTL_SECS: f64 = 30.0 * 60.0;
/// Age at which a session ends however busy (the brief's default, 24 h).
pub const DEFAULT_MAX_AGE_SECS: f64 = 24.0 * 3600.0;
/// Per-call deadline: generous for broker round trips, short enough that a hung tool does not
/// hang the model's turn.
pub const DEFAULT_CALL_TIMEOUT_SECS: f64 = 60.0;
/// Time a cancelled call gets to stop before its worker is killed.
pub const DEFAULT_HARD_CANCEL_SECS: f64 = 10.0;
/// Spawn to MCP-ready; a healthy worker needs about a millisecond.
pub const DEFAULT_HANDSHAKE_TIMEOUT_SECS: f64 = 10.0;
/// Time a worker gets to exit after its socket closes, then after SIGTERM. Together they stay
/// under the two seconds in which closing stdin must end everything.
pub const DEFAULT_CLOSE_GRACE: Duration = Duration::from_millis(500);
pub const DEFAULT_TERM_GRACE: Duration = Duration::from_millis(1000);

/// Set by systemd to the directory holding `LoadCredential=` files.
pub const ENV_CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// The worker binary's file name, looked up beside the supervisor's own executable.
pub const WORKER_BINARY: &str = "bulkhead-worker";

#[derive(Debug, Parser)]
#[command(
    name = "bulkhead",
    version,
    about = "An MCP server that gives every session its own operating-system process."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve MCP on stdin/stdout (how Claude Desktop and other hosts launch servers).
    Stdio(Options),
}

#[derive(Debug, Clone, Args)]
pub struct Options {
    /// Worker executable [default: bulkhead-worker beside this executable].
    #[arg(long, env = "BULKHEAD_WORKER", value_name = "PATH")]
    pub worker: Option<PathBuf>,
    /// Node name used as the prefix of session handles ([a-z0-9-], at most 32).
    #[arg(long, env = "BULKHEAD_NODE", default_value = DEFAULT_NODE)]
    pub node: String,
    /// Most sessions open at once.
    #[arg(long, default_value_t = DEFAULT_MAX_SESSIONS)]
    pub max_sessions: usize,
    /// Most sessions one principal may hold.
    #[arg(long, default_value_t = DEFAULT_MAX_SESSIONS_PER_PRINCIPAL)]
    pub max_sessions_per_principal: usize,
    /// At the session limit, end the least recently used idle session instead of refusing.
    #[arg(long)]
    pub evict_idle: bool,
    /// Most requests in flight per session.
    #[arg(long, default_value_t = DEFAULT_MAX_IN_FLIGHT)]
    pub max_in_flight: usize,
    /// Seconds of inactivity after which a session ends.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_IDLE_TTL_SECS)]
    pub idle_ttl: f64,
    /// Seconds after which a session ends however busy.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_MAX_AGE_SECS)]
    pub max_age: f64,
    /// Per-call deadline in seconds.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_CALL_TIMEOUT_SECS)]
    pub call_timeout: f64,
    /// Seconds a cancelled call may keep running before its worker is killed.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_HARD_CANCEL_SECS)]
    pub hard_cancel: f64,
    /// Largest message accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_FRAME_BYTES)]
    pub max_frame_bytes: usize,
    /// Directory of operator-provisioned credentials (`<principal>.<ref>` files) for
    /// `broker_login {credential_ref}` [default: $CREDENTIALS_DIRECTORY when systemd sets it].
    #[arg(long, value_name = "DIR")]
    pub credentials_dir: Option<PathBuf>,
    /// Seed of the built-in paper market (same seed, same prices at the same time).
    #[arg(long)]
    pub paper_seed: Option<u64>,
    /// Expose the worker's test-only tools (for the test suite).
    #[arg(long, hide = true)]
    pub test_tools: bool,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub worker: PathBuf,
    pub node: String,
    pub limits: SessionLimits,
    pub timeouts: WorkerTimeouts,
    pub call_timeout: Duration,
    pub max_frame_bytes: usize,
    pub test_tools: bool,
    pub credentials_dir: Option<PathBuf>,
    pub paper_seed: Option<u64>,
}

impl Options {
    /// Validate, reporting every problem at once.
    pub fn resolve(&self) -> Result<Config, Vec<String>> {
        let mut problems = Vec::new();
        let worker = self.worker.clone().or_else(default_worker_path);
        match &worker {
            Some(path) if path.is_file() => {}
            Some(path) => problems.push(format!(
                "worker executable {} does not exist (set --worker or BULKHEAD_WORKER)",
                path.display()
            )),
            None => problems.push("cannot locate the worker executable; set --worker".into()),
        }
        if !is_valid_node(&self.node) {
            problems.push(format!(
                "--node {:?} must be 1-32 characters of a-z, 0-9 and '-', not starting with '-'",
                self.node
            ));
        }
        for (name, value) in [
            ("--max-sessions", self.max_sessions),
            (
                "--max-sessions-per-principal",
                self.max_sessions_per_principal,
            ),
            ("--max-in-flight", self.max_in_flight),
        ] {
            if value == 0 {
                problems.push(format!("{name} must be at least 1"));
            }
        }
        let credentials_dir = self
            .credentials_dir
            .clone()
            .or_else(|| std::env::var_os(ENV_CREDENTIALS_DIRECTORY).map(PathBuf::from));
        if let Some(dir) = &credentials_dir
            && !dir.is_dir()
        {
            problems.push(format!(
                "credentials directory {} does not exist",
                dir.display()
            ));
        }
        if self.max_frame_bytes < 1024 {
            problems.push("--max-frame-bytes must be at least 1024".into());
        }
        let mut seconds = |name: &str, value: f64| match Duration::try_from_secs_f64(value) {
            Ok(duration) if !duration.is_zero() => duration,
            _ => {
                problems.push(format!(
                    "{name} must be a positive number of seconds, got {value}"
                ));
                Duration::ZERO
            }
        };
        let idle_ttl = seconds("--idle-ttl", self.idle_ttl);
        let max_age = seconds("--max-age", self.max_age);
        let call_timeout = seconds("--call-timeout", self.call_timeout);
        let hard_cancel = seconds("--hard-cancel", self.hard_cancel);
        let handshake = seconds("handshake timeout", DEFAULT_HANDSHAKE_TIMEOUT_SECS);
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Config {
            worker: worker.unwrap_or_default(),
            node: self.node.clone(),
            limits: SessionLimits {
                max_sessions: self.max_sessions,
                max_sessions_per_principal: self.max_sessions_per_principal,
                max_in_flight: self.max_in_flight,
                idle_ttl,
                max_age,
                evict_idle_at_limit: self.evict_idle,
            },
            timeouts: WorkerTimeouts {
                handshake,
                hard_cancel,
                close_grace: DEFAULT_CLOSE_GRACE,
                term_grace: DEFAULT_TERM_GRACE,
            },
            call_timeout,
            max_frame_bytes: self.max_frame_bytes,
            test_tools: self.test_tools,
            credentials_dir,
            paper_seed: self.paper_seed,
        })
    }
}

fn default_worker_path() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.join(WORKER_BINARY))
}
