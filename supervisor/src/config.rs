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

mod brokers;
mod layers;
mod oauth;
mod serve;
mod wrap;

pub use brokers::BrokerEndpoints;

pub use layers::{Parsed, parse_layers, redacted_summary};
pub use serve::ServeOptions;

use crate::session::SessionLimits;
use crate::spawn::{CgroupMode, Confinement, UidRange};
use crate::worker::WorkerTimeouts;
use bulkhead_protocol::handshake::{
    DEFAULT_WORKER_CPU_WEIGHT, DEFAULT_WORKER_MAX_CPU_SECONDS, DEFAULT_WORKER_MAX_MEMORY_BYTES,
    DEFAULT_WORKER_MAX_OPEN_FILES, DEFAULT_WORKER_MAX_TASKS, SandboxPolicy,
};

/// Exit code for a configuration error (EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;

/// Node name in handles when none is configured: fine for one machine; set `--node` per
/// supervisor behind a load balancer.
pub const DEFAULT_NODE: &str = "local";
/// Sessions open at once in one supervisor (the brief's default).
pub const DEFAULT_MAX_SESSIONS: usize = 1000;
/// Sessions one principal may hold under `serve`: a tenth of the total, so one principal
/// cannot take all. Over stdio every caller is the one user who launched the supervisor, so
/// there the default is `--max-sessions` itself.
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

/// Pre-spawned workers kept ready for new sessions: none by default, because each is an idle
/// process (about 0.7 MB PSS; a wrapped Node server's ~30 MB) whether or not a session ever
/// comes; set `--pool-size` (`[pool] size`) when session starts matter — a cold start takes
/// about 4 ms on a 2-core VM (a wrapped Node server's several hundred), `session_open` from the
/// pool about 0.3 ms (`scripts/bench`).
pub const DEFAULT_POOL_SIZE: usize = 0;

/// Spares kept for each principal with provisioned environment (external worker mode), started
/// after its first session: one, so its next session starts at once; sessions of one principal
/// seldom start in bursts, and each spare of a wrapped server costs tens of MB.
pub const DEFAULT_POOL_PER_PRINCIPAL: usize = 1;
/// Most spares one principal may keep: beyond a handful they buy nothing but memory.
pub const MAX_POOL_PER_PRINCIPAL: usize = 16;

/// Memory all idle pre-spawned processes may count together, in MiB: 1 GiB holds about 36
/// spares of a wrapped Node server (~28 MB PSS each) or a thousand built-in workers, and bounds
/// what per-principal spares cost however many principals come; 0 lifts the bound.
pub const DEFAULT_POOL_MEMORY_BUDGET_MIB: u64 = 1024;

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
    Stdio(Box<Options>),
    /// Serve MCP over Streamable HTTP on loopback TCP and/or a Unix socket.
    Serve(Box<ServeOptions>),
    /// Resolve a configuration as `serve` would (file, environment) and print it with secrets
    /// redacted; exit 0 if it is valid, 64 listing every problem if not.
    CheckConfig {
        /// The TOML configuration file.
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct Options {
    /// TOML configuration file; flags and BULKHEAD_* environment variables override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format on stderr: text, json, or journald (priority prefixes, no timestamps).
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json", "journald"])]
    pub log_format: String,
    /// Worker executable [default: bulkhead-worker beside this executable].
    #[arg(long, value_name = "PATH")]
    pub worker: Option<PathBuf>,
    /// Node name used as the prefix of session handles ([a-z0-9-], at most 32).
    #[arg(long, default_value = DEFAULT_NODE)]
    pub node: String,
    /// Most sessions open at once.
    #[arg(long, default_value_t = DEFAULT_MAX_SESSIONS)]
    pub max_sessions: usize,
    /// Most sessions one principal may hold [default: 100 for serve; --max-sessions for stdio,
    /// whose one principal is the user who launched it].
    #[arg(long, value_name = "N")]
    pub max_sessions_per_principal: Option<usize>,
    /// At a session limit, end the caller's own least recently used idle session instead of
    /// refusing (never another principal's).
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
    /// Where a network broker's API is: `NAME.KIND=URL` with KIND `trading` or `data`, e.g.
    /// `alpaca-paper.trading=https://paper-api.alpaca.markets` (repeatable; the environment
    /// variable takes a comma-separated list). `https://` only, except on loopback addresses.
    #[arg(
        long = "broker-url",
        value_name = "NAME.KIND=URL",
        value_delimiter = ','
    )]
    pub broker_urls: Vec<String>,
    /// Address space of each worker, in bytes (also the cgroup's memory.max).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_WORKER_MAX_MEMORY_BYTES)]
    pub worker_max_memory: u64,
    /// CPU seconds over each worker's life.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_WORKER_MAX_CPU_SECONDS)]
    pub worker_max_cpu_seconds: u64,
    /// Open descriptors per worker.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WORKER_MAX_OPEN_FILES)]
    pub worker_max_open_files: u64,
    /// Tasks per worker (the cgroup's pids.max; RLIMIT_NPROC with a uid range).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WORKER_MAX_TASKS)]
    pub worker_max_tasks: u64,
    /// Each worker's cgroup cpu.weight (1-10000).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WORKER_CPU_WEIGHT)]
    pub worker_cpu_weight: u64,
    /// Give each worker its own uid and gid from FIRST:COUNT (the supervisor must run as root).
    #[arg(long, value_name = "FIRST:COUNT")]
    pub worker_uid_range: Option<String>,
    /// Per-worker cgroups: auto (under a delegated cgroup), off, or a cgroup v2 directory.
    #[arg(long, value_name = "auto|off|DIR", default_value = "auto")]
    pub worker_cgroup: String,
    /// Workers pre-spawned for new sessions (no credentials, no principal until bound;
    /// never reused after their session).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_POOL_SIZE)]
    pub pool_size: usize,
    /// External worker mode: spares kept for each principal with provisioned environment
    /// (`<credentials-dir>/<principal>.env`), started after its first session; 0 for none.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_POOL_PER_PRINCIPAL)]
    pub pool_per_principal: usize,
    /// Memory all idle pre-spawned workers may hold together, in MiB (each counted at the
    /// PSS of its process tree, measured once it is ready); 0 for no limit.
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_POOL_MEMORY_BUDGET_MIB)]
    pub pool_memory_budget: u64,
    /// Expose the worker's test-only tools (for the test suite).
    #[arg(long, hide = true)]
    pub test_tools: bool,
    /// Run workers that serve the conformance suite's fixtures (for scripts/conformance).
    #[arg(long, hide = true)]
    pub test_fixtures: bool,
    /// Largest estimated notional of one order, in the account's currency, sized from the
    /// broker's prices; `none` opts out explicitly [default: no limit].
    #[arg(long, value_name = "AMOUNT|none")]
    pub max_order_notional: Option<String>,
    /// Largest sum of order notionals per principal per UTC day, across all its sessions (and
    /// restarts, with --order-journal); `none` for no limit [default: no limit].
    #[arg(long, value_name = "AMOUNT|none")]
    pub max_daily_notional: Option<String>,
    /// The only symbols orders may be for (comma-separated or repeated); `all` for any.
    #[arg(long, value_name = "SYMBOLS", value_delimiter = ',')]
    pub allowed_symbols: Vec<String>,
    /// No orders at all for anyone (cancelling still works).
    #[arg(long)]
    pub read_only: bool,
    /// Enable a live-money broker (repeatable), e.g. alpaca; it is listed only to principals
    /// with a maximum order notional (or an explicit `none`).
    #[arg(long = "allow-live-broker", value_name = "BROKER")]
    pub allow_live_brokers: Vec<String>,
    /// A principal's own rail, over the defaults (repeatable): PRINCIPAL:KEY=VALUE, KEY one of
    /// max_order_notional, max_daily_notional, allowed_symbols, read_only, allow_live_brokers.
    #[arg(long = "principal-rail", value_name = "PRINCIPAL:KEY=VALUE")]
    pub principal_rails: Vec<String>,
    /// Append-only order journal: a JSON line before each order is sent and one with its
    /// outcome, flushed to disk [default: none].
    #[arg(long, value_name = "PATH")]
    pub order_journal: Option<PathBuf>,
    /// External worker mode: `--wrap -- CMD ARGS...` and its `--wrap-*` flags.
    // Config file (future): `[worker] command = ["npx", "some-mcp-server"]` (see WrapOptions).
    #[command(flatten)]
    pub wrap: Box<wrap::WrapOptions>,
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
    pub test_fixtures: bool,
    pub credentials_dir: Option<PathBuf>,
    /// How workers are confined (limits, uid, cgroup).
    pub confinement: Confinement,
    pub paper_seed: Option<u64>,
    /// Every network broker's endpoints (`--broker-url` over the documented defaults).
    pub broker_endpoints: BrokerEndpoints,
    /// Workers kept pre-spawned for new sessions.
    pub pool: crate::pool::PoolSettings,
    /// The one principal the shared pool's processes are started for: stdio's `local`.
    pub pool_principal: Option<crate::principal::Principal>,
    /// External worker mode: the stdio server each session runs instead of the built-in worker.
    pub wrap: Option<crate::wrap::WrapConfig>,
    /// Trading rails per principal, live brokers, the order journal.
    pub trading: crate::trading::TradingConfig,
}

impl Options {
    /// Validate for `bulkhead stdio`: as [`Options::resolve`], except that the one principal of
    /// a stdio connection may hold `--max-sessions` sessions unless a per-principal cap is
    /// given.
    pub fn resolve_stdio(&self) -> Result<Config, Vec<String>> {
        let mut config = self.resolve()?;
        if self.max_sessions_per_principal.is_none() {
            config.limits.max_sessions_per_principal = config.limits.max_sessions;
        }
        config.pool_principal = Some(crate::principal::LOCAL.into());
        Ok(config)
    }

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
                self.max_sessions_per_principal.unwrap_or(1),
            ),
            ("--max-in-flight", self.max_in_flight),
        ] {
            if value == 0 {
                problems.push(format!("{name} must be at least 1"));
            }
        }
        let confinement = self.confinement(&mut problems);
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
        if self.pool_per_principal > MAX_POOL_PER_PRINCIPAL {
            problems.push(format!(
                "--pool-per-principal must be at most {MAX_POOL_PER_PRINCIPAL}, got {}",
                self.pool_per_principal
            ));
        }
        let memory_budget = match self.pool_memory_budget {
            0 => None,
            mib => mib.checked_mul(1024 * 1024).or_else(|| {
                problems.push(format!("--pool-memory-budget {mib} MiB is too large"));
                None
            }),
        };
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
        let broker_endpoints = BrokerEndpoints::resolve(&self.broker_urls, &mut problems);
        let wrap = self.wrap.resolve().unwrap_or_else(|found| {
            problems.extend(found);
            None
        });
        let trading = self.trading(&mut problems);
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Config {
            worker: worker.unwrap_or_default(),
            node: self.node.clone(),
            limits: SessionLimits {
                max_sessions: self.max_sessions,
                max_sessions_per_principal: self
                    .max_sessions_per_principal
                    .unwrap_or(DEFAULT_MAX_SESSIONS_PER_PRINCIPAL),
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
            test_fixtures: self.test_fixtures,
            credentials_dir,
            confinement,
            paper_seed: self.paper_seed,
            broker_endpoints,
            pool: crate::pool::PoolSettings {
                shared: self.pool_size,
                per_principal: self.pool_per_principal,
                memory_budget,
            },
            pool_principal: None,
            wrap,
            trading,
        })
    }
}

impl Options {
    /// The trading rails: flags for everyone, `--principal-rail`s over them.
    fn trading(&self, problems: &mut Vec<String>) -> crate::trading::TradingConfig {
        use crate::trading::{RailSettings, TradingConfig, add_principal_rail};
        let mut defaults = RailSettings::default();
        let mut set = |flag: &str, key: &str, value: &str| {
            if let Err(problem) = defaults.set(key, value) {
                problems.push(format!("--{flag}: {problem}"));
            }
        };
        if let Some(value) = &self.max_order_notional {
            set("max-order-notional", "max_order_notional", value);
        }
        if let Some(value) = &self.max_daily_notional {
            set("max-daily-notional", "max_daily_notional", value);
        }
        if !self.allowed_symbols.is_empty() {
            set(
                "allowed-symbols",
                "allowed_symbols",
                &self.allowed_symbols.join(","),
            );
        }
        if self.read_only {
            defaults.read_only = Some(true);
        }
        if !self.allow_live_brokers.is_empty() {
            defaults.allow_live_brokers = Some(self.allow_live_brokers.clone());
        }
        let mut config = TradingConfig {
            defaults,
            journal: self.order_journal.clone(),
            ..TradingConfig::default()
        };
        for spec in &self.principal_rails {
            if let Err(problem) = add_principal_rail(&mut config.principals, spec) {
                problems.push(problem);
            }
        }
        problems.extend(config.check(self.test_tools));
        if let Some(path) = &config.journal {
            let parent = path
                .parent()
                .filter(|parent| !parent.as_os_str().is_empty());
            if parent.is_some_and(|parent| !parent.is_dir()) || path.is_dir() {
                problems.push(format!(
                    "--order-journal {}: its directory must exist and it must not be a directory",
                    path.display()
                ));
            }
        }
        config
    }

    fn confinement(&self, problems: &mut Vec<String>) -> Confinement {
        let sandbox = SandboxPolicy {
            max_memory_bytes: self.worker_max_memory,
            max_cpu_seconds: self.worker_max_cpu_seconds,
            max_open_files: self.worker_max_open_files,
            max_tasks: self.worker_max_tasks,
            cpu_weight: self.worker_cpu_weight,
        };
        for (name, value, least) in [
            ("--worker-max-memory", self.worker_max_memory, 64 << 20),
            ("--worker-max-cpu-seconds", self.worker_max_cpu_seconds, 1),
            ("--worker-max-open-files", self.worker_max_open_files, 16),
            ("--worker-max-tasks", self.worker_max_tasks, 4),
        ] {
            if value < least {
                problems.push(format!("{name} must be at least {least}, got {value}"));
            }
        }
        if !(1..=10_000).contains(&self.worker_cpu_weight) {
            problems.push(format!(
                "--worker-cpu-weight must be 1-10000, got {}",
                self.worker_cpu_weight
            ));
        }
        let uid_range = self.worker_uid_range.as_deref().and_then(|range| {
            let parsed = range
                .split_once(':')
                .and_then(|(first, count)| Some((first.parse().ok()?, count.parse().ok()?)));
            let Some((first, count)) = parsed else {
                problems.push(format!("--worker-uid-range {range:?} must be FIRST:COUNT"));
                return None;
            };
            if !nix::unistd::geteuid().is_root() {
                problems.push("--worker-uid-range needs the supervisor to run as root".into());
            }
            UidRange::new(first, count)
                .map_err(|problem| problems.push(format!("--worker-uid-range: {problem}")))
                .ok()
        });
        let cgroup = match self.worker_cgroup.as_str() {
            "auto" => CgroupMode::Auto,
            "off" => CgroupMode::Off,
            dir => CgroupMode::Under(PathBuf::from(dir)),
        };
        Confinement {
            sandbox,
            uid_range,
            cgroup,
        }
    }
}

fn default_worker_path() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.join(WORKER_BINARY))
}
