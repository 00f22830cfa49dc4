//! The worker's side of the start-up: take the inherited socket, answer the supervisor's hello
//! (checking that the limits it names are in place), set up logging, then hand the socket to
//! rmcp, with every server wrapped so that cancelled requests are stopped and acknowledged
//! ([`crate::acknowledge`]).

use std::io::Write;
use std::os::fd::FromRawFd;
use std::time::Duration;

use bulkhead_protocol::frame::{Frame, LineReader};
use bulkhead_protocol::handshake::{Control, Hello, MAX_HANDSHAKE_BYTES, Ready};
use bulkhead_protocol::{EXIT_HANDSHAKE_FAILED, WORKER_PROTOCOL_VERSION, WORKER_SOCKET_FD};
use rmcp::ServiceExt;
use tokio::io::AsyncWriteExt;
use tracing::Instrument;

use crate::acknowledge::Acknowledging;
use crate::broker::alpaca::DEFAULT_CALL_DEADLINE;
use crate::fixtures::FixtureServer;
use crate::sandbox;
use crate::tools::SessionServer;

/// How long the worker waits for the supervisor's hello: the supervisor writes it right after
/// spawning, so a silent socket means something is wrong.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Log level rmcp is capped at in a worker, whatever the filter says: rmcp logs whole requests
/// and results at info and debug, and those may carry credentials.
const RMCP_LOG_CAP: &str = "rmcp=warn";

/// Why the worker stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    #[error("handshake failed: {0}")]
    Handshake(String),
    #[error("mcp service failed: {0}")]
    Serve(String),
}

impl Failure {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Handshake(_) => EXIT_HANDSHAKE_FAILED,
            Failure::Io(_) | Failure::Serve(_) => 1,
        }
    }
}

/// Tell the supervisor why this worker will not serve, before the handshake (the sandbox could
/// not be entered), without reading anything first.
pub fn refuse(reason: &str) {
    // SAFETY: `check_launched_by_supervisor` verified that descriptor 3 is an open socket that
    // nothing else in this process owns; the worker exits right after this call.
    let mut socket = unsafe { std::os::unix::net::UnixStream::from_raw_fd(WORKER_SOCKET_FD) };
    let refusal = Control::Refused {
        reason: reason.to_string(),
    };
    let _ = socket.write_all(&refusal.to_line());
}

/// Run the whole worker: handshake, then MCP until the supervisor closes the socket.
pub async fn run(sandbox: sandbox::Report) -> Result<(), Failure> {
    // SAFETY: `check_launched_by_supervisor` verified that descriptor 3 is an open socket, the
    // supervisor placed it there for this process alone, and nothing else in this process has
    // taken ownership of it, so this is its single owner.
    let socket = unsafe { std::os::unix::net::UnixStream::from_raw_fd(WORKER_SOCKET_FD) };
    socket.set_nonblocking(true)?;
    let socket = tokio::net::UnixStream::from_std(socket)?;
    let (read_half, mut write_half) = socket.into_split();
    let mut reader = LineReader::new(read_half, MAX_HANDSHAKE_BYTES);

    let checked = read_hello(&mut reader).await.and_then(|hello| {
        sandbox::check_limits(&hello.sandbox).map_err(|reason| format!("sandbox: {reason}"))?;
        Ok(hello)
    });
    let hello = match checked {
        Ok(hello) => hello,
        Err(reason) => {
            let refusal = Control::Refused {
                reason: reason.clone(),
            };
            let _ = write_half.write_all(&refusal.to_line()).await;
            return Err(Failure::Handshake(reason));
        }
    };
    init_logging(&hello.log_filter, &hello.log_format);
    if !sandbox.removed_variables.is_empty() {
        tracing::warn!(
            session = %hello.session_tag,
            variables = ?sandbox.removed_variables,
            "removed environment variables the supervisor should not have passed"
        );
    }
    let ready = Control::Ready(Ready {
        protocol: WORKER_PROTOCOL_VERSION,
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        sandbox_degraded: sandbox.degraded,
    });
    write_half.write_all(&ready.to_line()).await?;

    // The supervisor sends nothing until it has read `ready`, so nothing may be buffered yet.
    let (read_half, leftover) = reader.into_inner();
    if !leftover.is_empty() {
        return Err(Failure::Handshake(
            "the supervisor sent data before the handshake completed".into(),
        ));
    }
    let span = tracing::info_span!("worker", session = %hello.session_tag);
    async move {
        tracing::debug!(pid = std::process::id(), "worker ready");
        if hello.fixtures {
            // Test only: the conformance suite's fixtures instead of the broker tools.
            let service = Acknowledging::new(FixtureServer::new())
                .serve((read_half, write_half))
                .await
                .map_err(|error| Failure::Serve(error.to_string()))?;
            let reason = service
                .waiting()
                .await
                .map_err(|error| Failure::Serve(error.to_string()))?;
            tracing::debug!(?reason, "supervisor closed the fixture session");
            return Ok(());
        }
        let call_deadline = hello
            .call_timeout_ms
            .map_or(DEFAULT_CALL_DEADLINE, Duration::from_millis);
        let server = SessionServer::new(
            hello.test_tools,
            hello.paper_seed,
            &hello.trading,
            &hello.brokers,
            call_deadline,
        );
        let service = Acknowledging::new(server.clone())
            .serve((read_half, write_half))
            .await
            .map_err(|error| Failure::Serve(error.to_string()))?;
        let reason = service.waiting().await;
        // Wipe credentials before exiting, whatever ended the service.
        server.end_session().await;
        let reason = reason.map_err(|error| Failure::Serve(error.to_string()))?;
        tracing::debug!(?reason, "supervisor closed the session");
        Ok(())
    }
    .instrument(span)
    .await
}

async fn read_hello(
    reader: &mut LineReader<tokio::net::unix::OwnedReadHalf>,
) -> Result<Hello, String> {
    let frame = tokio::time::timeout(HELLO_TIMEOUT, reader.next_frame())
        .await
        .map_err(|_| format!("no hello within {} s", HELLO_TIMEOUT.as_secs()))?
        .map_err(|error| format!("reading hello: {error}"))?;
    let line = match frame {
        Some(Frame::Line(line)) => line,
        Some(Frame::Oversized { bytes, limit }) => {
            return Err(format!("hello of {bytes} bytes exceeds {limit}"));
        }
        None => return Err("socket closed before hello".into()),
    };
    match Control::from_line(&line) {
        Ok(Control::Hello(hello)) if hello.protocol == WORKER_PROTOCOL_VERSION => Ok(hello),
        Ok(Control::Hello(hello)) => Err(format!(
            "supervisor speaks worker protocol {}, this worker speaks {}",
            hello.protocol, WORKER_PROTOCOL_VERSION
        )),
        Ok(_) => Err("expected hello".into()),
        Err(error) => Err(format!("malformed hello: {error}")),
    }
}

/// Logs go to stderr (inherited from the supervisor), tagged by the session span.
fn init_logging(filter: &str, format: &str) {
    let directives: Vec<&str> = filter
        .split(',')
        .map(str::trim)
        .filter(|directive| !directive.is_empty() && !directive.starts_with("rmcp"))
        .chain([RMCP_LOG_CAP])
        .collect();
    let filter = tracing_subscriber::EnvFilter::try_new(directives.join(","))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("info,{RMCP_LOG_CAP}")));
    bulkhead_logging::init(
        filter,
        bulkhead_logging::Format::parse(format).unwrap_or_default(),
    );
}
