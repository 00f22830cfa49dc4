//! `bulkhead`: the supervisor. Accepts MCP clients, gives every session its own worker process,
//! and routes each call to its session's worker.
//!
//! `main` runs the sequence config → runtime → spawner → registry → serve → shutdown. Module
//! map: [`config`] (options and validation), [`spawn`] (the only code that starts processes),
//! [`worker`] (one actor per worker process), [`session`] (handles, limits, lifetimes),
//! [`catalog`] (the tool list), [`credentials`] (credential references), [`mcp`] (the transport-independent MCP front door),
//! [`stdio`] (the stdio transport), [`http`] (the Streamable HTTP transport and operations endpoints), [`signals`], [`clock`].

mod catalog;
mod clock;
mod config;
mod credentials;
mod http;
mod mcp;
mod metrics;
mod session;
mod signals;
mod spawn;
mod stdio;
mod worker;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use crate::config::{Cli, Command, Config, EXIT_CONFIG};
use crate::credentials::CredentialStore;
use crate::mcp::Frontend;
use crate::session::{Principal, Registry, WorkerTemplate};
use crate::spawn::{Spawner, WorkerCommand};
use crate::worker::WorkerSpec;

/// Log filter when `RUST_LOG` is unset.
const DEFAULT_LOG_FILTER: &str = "info";

/// How long, after the conversation ends, queued replies get to reach stdout.
const FLUSH_GRACE: Duration = Duration::from_millis(500);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_filter = std::env::var("RUST_LOG").unwrap_or_else(|_| DEFAULT_LOG_FILTER.into());
    init_logging(&log_filter);
    let resolved = match &cli.command {
        Command::Stdio(options) => options.resolve().map(|config| (config, None)),
        Command::Serve(options) => options.resolve().map(|(config, http)| (config, Some(http))),
    };
    let (config, http) = match resolved {
        Ok(resolved) => resolved,
        Err(problems) => {
            for problem in &problems {
                tracing::error!("configuration: {problem}");
            }
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        let Some((frontend, registry)) = start(&config, log_filter) else {
            return 1;
        };
        match http {
            None => run_stdio(&config, frontend, registry).await,
            Some(http) => run_http(&config, http, frontend, registry).await,
        }
    });
    // Do not wait for tokio's blocking stdin reader: a host may keep stdin open after a
    // signal. Every worker is already reaped.
    std::process::exit(code);
}

/// The parts every transport shares: spawner, registry and its reaper, the MCP front door.
fn start(config: &Config, log_filter: String) -> Option<(Arc<Frontend>, Arc<Registry>)> {
    let spawner = match Spawner::start(tokio::runtime::Handle::current()) {
        Ok(spawner) => spawner,
        Err(error) => {
            tracing::error!("cannot start the spawner thread: {error}");
            return None;
        }
    };
    let template = WorkerTemplate {
        spec: WorkerSpec {
            command: WorkerCommand {
                program: config.worker.clone(),
                args: Vec::new(),
            },
            session_tag: String::new(),
            log_filter,
            test_tools: config.test_tools,
            paper_seed: config.paper_seed,
            fixtures: config.test_fixtures,
            max_frame_bytes: config.max_frame_bytes,
        },
        timeouts: config.timeouts,
    };
    let registry = Registry::new(
        config.limits.clone(),
        config.node.clone(),
        spawner,
        template,
    );
    registry.spawn_reaper();
    let frontend = Arc::new(Frontend {
        registry: registry.clone(),
        catalog: Default::default(),
        call_timeout: config.call_timeout,
        credentials: CredentialStore::new(config.credentials_dir.clone()),
    });
    Some((frontend, registry))
}

async fn run_stdio(config: &Config, frontend: Arc<Frontend>, registry: Arc<Registry>) -> i32 {
    prefetch_catalog(&frontend, None);
    let shutdown = CancellationToken::new();
    if let Err(error) = signals::install(shutdown.clone()) {
        tracing::error!("cannot install signal handlers: {error}");
        return 1;
    }
    tracing::info!(node = %config.node, worker = %config.worker.display(), "serving MCP on stdio");
    let principal: Principal = Arc::from("local");
    let (end, writer) = stdio::serve(frontend, principal, config.max_frame_bytes, shutdown).await;
    tracing::info!(
        ?end,
        sessions = registry.live_count(),
        "stopping every session"
    );
    registry.shutdown().await;
    let _ = tokio::time::timeout(FLUSH_GRACE, writer).await;
    tracing::info!("stopped");
    0
}

async fn run_http(
    config: &Config,
    http: http::HttpConfig,
    frontend: Arc<Frontend>,
    registry: Arc<Registry>,
) -> i32 {
    if matches!(http.auth, http::AuthMode::None) {
        tracing::warn!(
            "AUTHENTICATION IS OFF (--no-auth): every caller on the listeners is the same principal; use only on a trusted machine"
        );
    }
    let listeners = match http::bind(&http).await {
        Ok(listeners) => listeners,
        Err(error) => {
            tracing::error!("cannot bind the listeners: {error}");
            return 1;
        }
    };
    let shutdown = CancellationToken::new();
    if let Err(error) = signals::install(shutdown.clone()) {
        tracing::error!("cannot install signal handlers: {error}");
        return 1;
    }
    let unix_path = http.unix.clone();
    let state = http::HttpState::new(frontend.clone(), http, config.node.clone());
    for listener in &listeners {
        tracing::info!(node = %config.node, "listening on {}", listener.describe());
    }
    prefetch_catalog(&frontend, Some(state.clone()));
    let server = tokio::spawn(http::serve(state.clone(), listeners, shutdown.clone()));
    shutdown.cancelled().await;
    state.start_draining();
    drain_calls(DRAIN_DEADLINE).await;
    let _ = server.await;
    tracing::info!(sessions = registry.live_count(), "stopping every session");
    registry.shutdown().await;
    if let Some(path) = unix_path {
        let _ = std::fs::remove_file(path);
    }
    tracing::info!("stopped");
    0
}

/// Longest wait, at shutdown, for calls in flight to finish before workers are stopped.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Wait until no call is in flight, or the deadline passes.
async fn drain_calls(deadline: Duration) {
    let started = tokio::time::Instant::now();
    while metrics::METRICS
        .calls_in_flight
        .load(std::sync::atomic::Ordering::Relaxed)
        > 0
        && started.elapsed() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Read the tool catalog in the background so the first `tools/list` is instant; an HTTP
/// service becomes ready once it has it.
fn prefetch_catalog(frontend: &Arc<Frontend>, http: Option<Arc<http::HttpState>>) {
    let frontend = frontend.clone();
    tokio::spawn(async move {
        match frontend.catalog.data(&frontend.registry).await {
            Ok(_) => {
                if let Some(http) = http {
                    http.set_ready(true);
                }
            }
            Err(error) => tracing::warn!("cannot read the tool catalog yet: {error}"),
        }
    });
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}
