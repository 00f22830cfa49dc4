//! `bulkhead`: the supervisor. Accepts MCP clients, gives every session its own worker process,
//! and routes each call to its session's worker.
//!
//! `main` runs the sequence config → runtime → spawner → registry → serve → shutdown (the
//! runtime on a thread of its own, the main thread forking every worker), and owns
//! the start-up checks and exit codes. The modules, layer by layer, each using only the layers
//! before it (ARCHITECTURE.md, *Layers*; `tests/tests/conventions.rs` enforces it):
//!
//! - [`capacity`] (system limits: raised at start, named when hit), [`credentials`]
//!   (credential references), [`drain`] (the node's drain state), [`metrics`] (Prometheus
//!   counters and histograms), [`principal`] (who a session belongs to), [`signals`] (what each
//!   signal does);
//! - [`node`] (handles of other nodes), [`spawn`] (the only code that starts processes),
//!   [`trading`] (rails, the desk, the ledger, the order journal);
//! - [`wrap`] (external worker mode: a wrapped server's command, environment, bridge, names,
//!   stderr);
//! - [`worker`] (one actor per worker process; the `Launcher` that starts them);
//! - [`pool`] (pre-spawned workers); [`session`] (handles, limits, lifetimes); [`catalog`] (the
//!   tool list);
//! - [`mcp`] (the transport-independent MCP front door);
//! - [`stdio`] (the stdio transport), [`http`] (the Streamable HTTP transport and operations
//!   endpoints);
//! - [`config`] (options and validation; the only module that knows clap), [`systemd`]
//!   (notify, watchdog, socket activation).

mod capacity;
mod catalog;
mod config;
mod credentials;
mod drain;
mod http;
mod mcp;
mod metrics;
mod node;
mod pool;
mod principal;
mod release;
mod reload;
mod session;
mod signals;
mod spawn;
mod stdio;
mod systemd;
mod trading;
mod worker;
mod wrap;

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bulkhead_protocol::brokers::{ALPACA_LIVE, ALPACA_PAPER, NetworkBroker, WorkerNetwork};
use std::io::Write;
use tokio_util::sync::CancellationToken;

use crate::catalog::{Catalog, CatalogError};
use crate::config::{Cli, Command, Config, EXIT_CONFIG, Parsed};
use crate::credentials::CredentialStore;
use crate::mcp::Frontend;
use crate::mcp::tasks::Tasks;
use crate::principal::Principal;
use crate::session::Registry;
use crate::spawn::{Spawner, WorkerCommand};
use crate::trading::desk::TradingDesk;
use crate::worker::{Builtin, Flavor, Launcher, WorkerSpec};

/// Log filter when `RUST_LOG` is unset.
const DEFAULT_LOG_FILTER: &str = "info";

/// How long, after the conversation ends, queued replies get to reach stdout.
const FLUSH_GRACE: Duration = Duration::from_millis(500);

fn main() -> ExitCode {
    let code = run();
    // Log lines are written by a thread of their own: let it write the last ones.
    bulkhead_logging::buffered::flush();
    code
}

fn run() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    // A reloading image asks this binary, first, whether it can take its state over.
    if let Some((state_fd, rest)) = reload::preflight_request(&args) {
        return preflight(state_fd, rest);
    }
    let log_filter = std::env::var("RUST_LOG").unwrap_or_else(|_| DEFAULT_LOG_FILTER.into());
    let (parsed, file_problems) = match config::parse_layers(args) {
        Ok((parsed, problems)) => (Some(parsed), problems),
        Err(problems) => (None, problems),
    };
    let log_format = match &parsed {
        Some(Parsed::Run(Cli {
            command: Command::Stdio(options),
        })) => options.log_format.clone(),
        Some(Parsed::Run(Cli {
            command: Command::Serve(options),
        })) => options.common.log_format.clone(),
        _ => "text".into(),
    };
    init_logging(&log_filter, &log_format);
    let resolved = match parsed {
        Some(Parsed::CheckConfig(options)) => return check_config(&options, file_problems),
        parsed => resolve(parsed, file_problems),
    };
    let (mut config, http) = match resolved {
        Ok(resolved) => resolved,
        Err(problems) => {
            for problem in &problems {
                tracing::error!("configuration: {problem}");
            }
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // `npx -y PKG` / `uvx PKG`: installed once, before any session, or the start stops.
    if let Some(wrap) = config.wrap.as_mut()
        && let Some(package) = wrap.package.clone()
        && let Err(problem) = wrap::install::prepare(wrap, &package)
    {
        tracing::error!("{problem}");
        return ExitCode::FAILURE;
    }
    // Before any worker or listener exists: raise the open-file limit, warn about the rest.
    capacity::prepare(capacity::Demand {
        sessions: config.limits.max_sessions,
        pool: config.pool.shared,
        connections: http.as_ref().map_or(0, |http| http.max_connections),
        wrapped: config.wrap.is_some(),
    });
    let runtime = match runtime(http.is_none()) {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Executed by a reload: the previous image's sessions, taken over before anything forks.
    let inherited = reload::inherited();
    if inherited.is_some() {
        tracing::info!(
            version = %release::version(),
            "reload: configuration re-read; limits, timeouts and worker settings apply to new sessions (running workers keep those they started with)"
        );
    }
    // This thread forks every worker (and, on SIGHUP, executes the new image): it must outlive
    // them all, and it is the one thread an exec keeps (ARCHITECTURE.md, *Upgrading in place*).
    // The runtime runs on a thread of its own.
    let (host_link, host) = spawn::host();
    let serving = std::thread::Builder::new()
        .name("bulkhead-runtime".into())
        .spawn(move || {
            serve_on_runtime(
                runtime,
                host_link,
                (config, http),
                (log_filter, log_format),
                inherited,
            );
        });
    if let Err(error) = serving {
        tracing::error!("cannot start the runtime thread: {error}");
        return ExitCode::FAILURE;
    }
    let code = host.run();
    // Do not wait for tokio's blocking stdin reader: a host may keep stdin open after a
    // signal. Every worker is already reaped.
    bulkhead_logging::buffered::flush();
    std::process::exit(code);
}

/// The runtime thread: serve until shutdown, then tell the host thread the exit code. The
/// runtime is never dropped (its blocking stdin reader may never return); the process exits.
fn serve_on_runtime(
    runtime: tokio::runtime::Runtime,
    host_link: spawn::HostLink,
    (config, http): (Config, Option<http::HttpConfig>),
    (log_filter, log_format): (String, String),
    mut inherited: Option<reload::State>,
) {
    let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            let Some((frontend, registry, spawner)) = start(
                &config,
                &host_link,
                (log_filter, log_format),
                inherited.as_mut(),
            ) else {
                return 1;
            };
            if let Err(code) = check_wrapped_at_start(&frontend).await {
                return code;
            }
            match http {
                None => {
                    let restored = inherited.and_then(|state| state.stdio);
                    run_stdio(&config, frontend, registry, spawner, restored).await
                }
                Some(http) => {
                    let restored = inherited.and_then(|state| state.http);
                    run_http(&config, http, (frontend, registry, spawner), restored).await
                }
            }
        })
    }));
    // A panic has been reported by the panic hook; exit as Rust does after one.
    host_link.exit(served.unwrap_or(EXIT_PANIC));
    std::mem::forget(runtime);
}

/// Exit status after a panic on the runtime thread (Rust's own for a panicking `main`).
const EXIT_PANIC: i32 = 101;

/// The configuration a `stdio` or `serve` command line (with its file and environment) asks
/// for, or every problem with it: file problems and semantic problems are one report.
fn resolve(
    parsed: Option<Parsed>,
    file_problems: Vec<String>,
) -> Result<(Config, Option<http::HttpConfig>), Vec<String>> {
    let resolved = match parsed {
        Some(Parsed::Run(Cli {
            command: Command::Stdio(options),
        })) => options.resolve_stdio().map(|config| (config, None)),
        Some(Parsed::Run(Cli {
            command: Command::Serve(options),
        })) => options.resolve().map(|(config, http)| (config, Some(http))),
        _ => Err(Vec::new()),
    };
    match (resolved, file_problems.is_empty()) {
        (Ok(resolved), true) => Ok(resolved),
        (Ok(_), false) => Err(file_problems),
        (Err(problems), _) => Err(file_problems.into_iter().chain(problems).collect()),
    }
}

/// `bulkhead --reload-preflight FD ARGS…`: whether this binary can take over the state on `FD`
/// and serve the command line `ARGS` (the configuration file as it is now included).
fn preflight(state_fd: std::os::fd::RawFd, args: Vec<OsString>) -> ExitCode {
    let state = reload::preflight_state(state_fd);
    let configuration = match config::parse_layers(args) {
        Ok((parsed, file_problems)) => resolve(Some(parsed), file_problems).map(|_| ()),
        Err(problems) => Err(problems),
    }
    .map_err(|problems| format!("configuration: {}", problems.join("; ")));
    ExitCode::from(reload::preflight_answer(state.and(configuration)))
}

/// The async runtime. A stdio supervisor serves one client: a single thread does all its work,
/// so a call never waits for another thread to wake (on two shared vCPUs, the cross-thread
/// wake-ups were most of the stdio hop's latency). `serve` has many clients and the OAuth
/// signature checks: two threads. Nothing on either blocks for long: spawns run on the spawner
/// thread, exits are collected by the reaper thread, journal writes on the blocking pool, and
/// log lines are written by a thread of their own.
fn runtime(stdio: bool) -> std::io::Result<tokio::runtime::Runtime> {
    if stdio {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(SERVE_RUNTIME_THREADS)
            .enable_all()
            .build()
    }
}

/// Runtime threads of `bulkhead serve`: one per vCPU of the small machines it is sized for;
/// workers and the spawner run on threads and processes of their own.
const SERVE_RUNTIME_THREADS: usize = 2;

/// `bulkhead check-config`: print the resolved configuration (secrets redacted) and exit 0, or
/// list every problem and exit 64.
fn check_config(options: &config::ServeOptions, file_problems: Vec<String>) -> ExitCode {
    let resolved = match (options.resolve(), file_problems.is_empty()) {
        (Ok(resolved), true) => Ok(resolved),
        (Ok(_), false) => Err(file_problems),
        (Err(problems), _) => Err(file_problems.into_iter().chain(problems).collect()),
    };
    match resolved {
        Ok((config, http)) => {
            let summary = config::redacted_summary(&config, &http);
            // check-config is a command-line tool, not the MCP transport: its report is its
            // output.
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(
                stdout,
                "{}",
                serde_json::to_string_pretty(&summary).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for problem in &problems {
                tracing::error!("configuration: {problem}");
            }
            tracing::error!("{} problem(s) found", problems.len());
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// The network brokers workers are told about besides `paper`: `alpaca-paper` always (a paper
/// account risks nothing); `alpaca`, with real money, only when the operator enables it for
/// some principal — and each worker lists it only when its own principal's policy does. The
/// workers' network policy follows from this list, so without a live principal no worker may
/// reach the live endpoints' ports.
fn network_brokers(config: &Config) -> Vec<NetworkBroker> {
    let trading = &config.trading;
    let live_for_someone = std::iter::once(None)
        .chain(trading.principals.keys().map(|name| Some(name.as_str())))
        .any(|principal| {
            trading
                .policy_for(principal)
                .live_brokers
                .iter()
                .any(|broker| broker == ALPACA_LIVE)
        });
    let mut names = vec![ALPACA_PAPER];
    if live_for_someone {
        names.push(ALPACA_LIVE);
    }
    names
        .into_iter()
        .filter_map(|name| config.broker_endpoints.get(name).cloned())
        .collect()
}

/// The parts every transport shares: spawner, registry and its reaper, the MCP front door.
/// Under a reload, the previous image's sessions are taken over before any worker starts.
fn start(
    config: &Config,
    host: &spawn::HostLink,
    (log_filter, log_format): (String, String),
    inherited: Option<&mut reload::State>,
) -> Option<(Arc<Frontend>, Arc<Registry>, Spawner)> {
    let spawner =
        match Spawner::on_host(host, tokio::runtime::Handle::current(), &config.confinement) {
            Ok(spawner) => spawner,
            Err(error) => {
                tracing::error!("cannot start the spawner thread: {error}");
                return None;
            }
        };
    let desk = match TradingDesk::start(config.trading.clone()) {
        Ok(desk) => Arc::new(desk),
        Err(error) => {
            tracing::error!("{error}");
            return None;
        }
    };
    warn_about_trading(config);
    let brokers = network_brokers(config);
    let network = WorkerNetwork::for_brokers(&brokers);
    let wrapped = wrap::WrappedServer::new(
        config.wrap.as_ref(),
        config.worker.clone(),
        config.credentials_dir.clone(),
    );
    let flavor = match wrapped {
        Some(server) => Flavor::Wrapped(server),
        None => Flavor::Builtin(Arc::new(Builtin {
            command: WorkerCommand {
                program: config.worker.clone(),
                args: vec![network.to_arg().into()],
                wrapped: None,
            },
            log_filter,
            log_format,
            test_tools: config.test_tools,
            paper_seed: config.paper_seed,
            fixtures: config.test_fixtures,
            brokers,
            call_timeout: config.call_timeout,
            trading: Some(desk),
        })),
    };
    let template = WorkerSpec {
        flavor,
        session_tag: String::new(),
        max_frame_bytes: config.max_frame_bytes,
    };
    let launcher = Launcher::new(spawner.clone(), template, config.timeouts);
    let registry = Registry::new(config.limits.clone(), config.node.clone(), launcher.clone());
    if let Some(state) = inherited {
        registry.adopt(
            std::mem::take(&mut state.sessions),
            std::mem::take(&mut state.ended),
        );
    }
    registry.spawn_reaper();
    registry.start_pools(config.pool, config.pool_principal.clone());
    let frontend = Arc::new(Frontend {
        registry: registry.clone(),
        catalog: Catalog::new(launcher),
        call_timeout: config.call_timeout,
        credentials: CredentialStore::new(config.credentials_dir.clone()),
        tasks: Tasks::default(),
        reload_cutoff: tokio::sync::Notify::new(),
    });
    Some((frontend, registry, spawner))
}

/// In external worker mode, read the catalog before serving: the wrapped server must start,
/// and its tools must not collide with Bulkhead's (exit 64 naming the rename that fixes it).
/// Returns the exit code to stop with.
async fn check_wrapped_at_start(frontend: &Frontend) -> Result<(), i32> {
    if frontend.registry.wrapped().is_none() {
        return Ok(());
    }
    match frontend.catalog.data().await {
        Ok(catalog) => {
            tracing::info!(
                tools = catalog.tools.len(),
                "wrapped server ready; each session runs its own process of it"
            );
            Ok(())
        }
        Err(CatalogError::Collision(problems)) => {
            for problem in &problems {
                tracing::error!("configuration: {problem}");
            }
            Err(i32::from(EXIT_CONFIG))
        }
        Err(CatalogError::Unavailable(reason)) => {
            tracing::error!("cannot start the wrapped server: {reason}");
            Err(1)
        }
    }
}

/// Says what in the trading configuration will not do what an operator may expect.
fn warn_about_trading(config: &Config) {
    let trading = &config.trading;
    for unlisted in trading.unlisted_live_brokers() {
        tracing::warn!(
            "live broker {unlisted} is not listed: set max_order_notional for the principal (or `none` to opt out of one)"
        );
    }
    let daily = std::iter::once(None)
        .chain(trading.principals.keys().map(|name| Some(name.as_str())))
        .any(|principal| {
            trading
                .policy_for(principal)
                .rails
                .max_daily_notional
                .is_some()
        });
    if daily && trading.journal.is_none() {
        tracing::warn!(
            "max_daily_notional is kept in memory only: without --order-journal a restart starts the day from zero"
        );
    }
}

async fn run_stdio(
    config: &Config,
    frontend: Arc<Frontend>,
    registry: Arc<Registry>,
    spawner: Spawner,
    restored: Option<stdio::StdioRecord>,
) -> i32 {
    prefetch_catalog(&frontend, None);
    let shutdown = CancellationToken::new();
    let drain_ignored = || {
        tracing::warn!("SIGUSR1 (drain) applies to bulkhead serve only; ignored on stdio");
    };
    let (pauses, paused) = tokio::sync::mpsc::channel(1);
    let reloader = reload::Reloader::new(
        spawner,
        frontend.clone(),
        registry.clone(),
        reload::Transport::Stdio(pauses),
    );
    if let Err(error) = signals::install(shutdown.clone())
        .and_then(|()| signals::install_drain(drain_ignored))
        .and_then(|()| signals::install_reload(move || reload_now(&reloader, None)))
    {
        tracing::error!("cannot install signal handlers: {error}");
        return 1;
    }
    tracing::info!(node = %config.node, worker = %config.worker.display(), "serving MCP on stdio");
    let principal: Principal = Arc::from(principal::LOCAL);
    let (end, output) = stdio::serve(
        frontend.clone(),
        principal,
        config.max_frame_bytes,
        shutdown,
        paused,
        restored,
    )
    .await;
    tracing::info!(
        ?end,
        sessions = registry.live_count(),
        "stopping every session"
    );
    registry.shutdown().await;
    // The requests still running answer now (their workers are gone); then stdout is closed
    // once what is queued for it is written.
    let flushing = async {
        frontend.tasks.wait(FLUSH_GRACE).await;
        output.writer.close();
        let _ = output.drained.await;
    };
    let _ = tokio::time::timeout(FLUSH_GRACE, flushing).await;
    tracing::info!("stopped");
    0
}

async fn run_http(
    config: &Config,
    http: http::HttpConfig,
    (frontend, registry, spawner): (Arc<Frontend>, Arc<Registry>, Spawner),
    restored: Option<http::handover::HttpRecord>,
) -> i32 {
    if matches!(http.auth, http::AuthMode::None) {
        tracing::warn!(
            "AUTHENTICATION IS OFF (--no-auth): every caller on the listeners is the same principal; use only on a trusted machine"
        );
    }
    let notifier = Arc::new(systemd::Notifier::from_env());
    let listeners = match listeners(&http, restored.as_ref()).await {
        Some(listeners) => listeners,
        None => return 1,
    };
    if matches!(http.auth, http::AuthMode::None)
        && let Some(exposed) = listeners.iter().find(|listener| !listener.is_local())
    {
        tracing::error!(
            "--no-auth is refused: {} is not a loopback address",
            exposed.describe()
        );
        return i32::from(EXIT_CONFIG);
    }
    let shutdown = CancellationToken::new();
    let drain = registry.drain().clone();
    let drain_deadline = http.drain_deadline;
    let on_drain = {
        let drain = drain.clone();
        move || {
            if drain.begin(drain::Trigger::Signal, drain_deadline) == drain::Begun::AlreadyDraining
            {
                tracing::info!("SIGUSR1: already draining");
            }
        }
    };
    let (pauses, paused) = tokio::sync::mpsc::channel(1);
    let reloader = reload::Reloader::new(
        spawner,
        frontend.clone(),
        registry.clone(),
        reload::Transport::Http(pauses),
    );
    let on_reload = {
        let notifier = notifier.clone();
        move || reload_now(&reloader, Some(&notifier))
    };
    if let Err(error) = signals::install(shutdown.clone())
        .and_then(|()| signals::install_drain(on_drain))
        .and_then(|()| signals::install_reload(on_reload))
    {
        tracing::error!("cannot install signal handlers: {error}");
        return 1;
    }
    let sessions = {
        let registry = registry.clone();
        move || registry.live_count()
    };
    tokio::spawn(drain::exit_when_drained(
        drain.clone(),
        sessions,
        shutdown.clone(),
    ));
    {
        let (drain, notifier) = (drain.clone(), notifier.clone());
        tokio::spawn(async move {
            drain.until_draining().await;
            notifier.notify("STATUS=draining: no new sessions");
        });
    }
    let unix_path = http.unix.clone();
    let state = http::HttpState::new(frontend.clone(), http, config.node.clone());
    if let Some(restored) = &restored {
        state.restore(restored);
    }
    for listener in &listeners {
        tracing::info!(node = %config.node, "listening on {}", listener.describe());
    }
    prefetch_catalog(&frontend, Some(state.clone()));
    let server = tokio::spawn(http::serve(
        state.clone(),
        listeners,
        shutdown.clone(),
        paused,
    ));
    notifier.notify("READY=1\nSTATUS=serving MCP");
    if let Some(interval) = systemd::watchdog_interval() {
        systemd::spawn_watchdog(notifier.clone(), interval);
    }
    shutdown.cancelled().await;
    notifier.notify("STOPPING=1\nSTATUS=draining");
    state.start_draining();
    if !frontend.tasks.wait(DRAIN_DEADLINE).await {
        tracing::warn!(
            requests = frontend.tasks.running(),
            "requests still in flight at the drain deadline; stopping their workers"
        );
    }
    let _ = server.await;
    if !state.close_connections(CONNECTION_FLUSH).await {
        tracing::info!("connections still open at shutdown (streams, clients not reading) are cut");
    }
    tracing::info!(sessions = registry.live_count(), "stopping every session");
    registry.shutdown().await;
    if let Some(path) = unix_path {
        let _ = std::fs::remove_file(path);
    }
    tracing::info!("stopped");
    0
}

/// SIGHUP: reload in place in the background; a refusal is logged and the old image serves on.
/// The service manager hears `RELOADING=1` first and `READY=1` from whichever image serves
/// after it.
fn reload_now(reloader: &Arc<reload::Reloader>, notifier: Option<&Arc<systemd::Notifier>>) {
    let reloader = reloader.clone();
    let notifier = notifier.cloned();
    tokio::spawn(async move {
        if let Some(notifier) = &notifier {
            notifier.notify(&systemd::reloading_message());
        }
        match reloader.reload().await {
            reload::Refused::Busy => {
                tracing::info!("SIGHUP: a reload is already under way; ignored");
            }
            refused => {
                tracing::warn!("SIGHUP: reload refused, still serving: {refused}");
                if let Some(notifier) = &notifier {
                    notifier.notify("READY=1\nSTATUS=serving MCP (reload refused)");
                }
            }
        }
    });
}

/// The listeners to serve: those a reload handed over, else socket-activated ones, else bound
/// now. `None` (logged) when there are none to be had.
async fn listeners(
    http: &http::HttpConfig,
    restored: Option<&http::handover::HttpRecord>,
) -> Option<Vec<http::Listener>> {
    if let Some(restored) = restored {
        return match http::handover::listeners_from(&restored.listeners) {
            Ok(listeners) => Some(listeners),
            Err(error) => {
                tracing::error!("cannot take over the listeners of the previous image: {error}");
                None
            }
        };
    }
    match systemd::activated_listeners() {
        Ok(activated) if !activated.is_empty() => {
            tracing::info!(
                "using {} socket-activated listener(s); --http/--unix are ignored",
                activated.len()
            );
            Some(activated)
        }
        Ok(_) => match http::bind(http).await {
            Ok(listeners) => Some(listeners),
            Err(error) => {
                tracing::error!("cannot bind the listeners: {error}");
                None
            }
        },
        Err(error) => {
            tracing::error!("cannot use the socket-activated listeners: {error}");
            None
        }
    }
}

/// Longest wait, at shutdown, for calls in flight to finish before workers are stopped.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Longest wait, at shutdown and after the calls, for HTTP connections to write out the
/// responses they hold: those are already computed, so this is a socket write; what is still
/// open after it is a stream or a client that does not read, and is cut.
const CONNECTION_FLUSH: Duration = Duration::from_secs(2);

/// Read the tool catalog in the background so the first `tools/list` is instant; an HTTP
/// service becomes ready once it has it.
fn prefetch_catalog(frontend: &Arc<Frontend>, http: Option<Arc<http::HttpState>>) {
    let frontend = frontend.clone();
    tokio::spawn(async move {
        match frontend.catalog.data().await {
            Ok(_) => {
                if let Some(http) = http {
                    http.set_ready(true);
                }
            }
            Err(error) => tracing::warn!("cannot read the tool catalog yet: {error}"),
        }
    });
}

fn init_logging(filter: &str, format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    bulkhead_logging::init_buffered(
        filter,
        bulkhead_logging::Format::parse(format).unwrap_or_default(),
    );
}
