//! `bulkhead`: the supervisor. Accepts MCP clients, gives every session its own worker process,
//! and routes each call to its session's worker.
//!
//! `main` runs the sequence config → runtime → spawner → registry → serve → shutdown. Module
//! map: [`config`] (options and validation), [`spawn`] (the only code that starts processes),
//! [`worker`] (one actor per worker process), [`session`] (handles, limits, lifetimes),
//! [`catalog`] (the tool list), [`credentials`] (credential references), [`mcp`] (the transport-independent MCP front door),
//! [`stdio`] (the stdio transport), [`signals`], [`clock`].

mod catalog;
mod clock;
mod config;
mod credentials;
mod mcp;
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
    let Command::Stdio(options) = cli.command;
    let config = match options.resolve() {
        Ok(config) => config,
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
    let code = runtime.block_on(run_stdio(config, log_filter));
    // Do not wait for tokio's blocking stdin reader: a host may keep stdin open after a
    // signal. Every worker is already reaped.
    std::process::exit(code);
}

async fn run_stdio(config: Config, log_filter: String) -> i32 {
    let spawner = match Spawner::start(tokio::runtime::Handle::current()) {
        Ok(spawner) => spawner,
        Err(error) => {
            tracing::error!("cannot start the spawner thread: {error}");
            return 1;
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
    prefetch_catalog(&frontend);
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

/// Read the tool catalog in the background so the first `tools/list` is instant.
fn prefetch_catalog(frontend: &Arc<Frontend>) {
    let frontend = frontend.clone();
    tokio::spawn(async move {
        if let Err(error) = frontend.catalog.tools(&frontend.registry).await {
            tracing::warn!("cannot read the tool catalog yet: {error}");
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
