//! `bulkhead stdio`: MCP over the supervisor's own stdin and stdout, newline-delimited.
//!
//! stdin is read with the size-limited [`LineReader`]; every frame goes to one
//! [`Connection`]. Everything written to stdout passes through one writer task, so messages
//! never interleave, and nothing else in the process writes to stdout. The conversation ends
//! when stdin closes or the shutdown token fires.

use std::sync::Arc;

use bulkhead_protocol::frame::LineReader;
use bulkhead_protocol::jsonrpc;
use serde_json::Value;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::mcp::{Connection, Frontend};
use crate::session::Principal;

/// Why the stdio conversation ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    StdinClosed,
    Shutdown,
}

/// Serve one client on stdin/stdout until stdin closes or `shutdown` fires. Returns a task
/// that finishes once everything queued for stdout is written.
pub async fn serve(
    frontend: Arc<Frontend>,
    principal: Principal,
    max_frame_bytes: usize,
    shutdown: CancellationToken,
) -> (End, tokio::task::JoinHandle<()>) {
    let (out, outbox) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_stdout(outbox));
    let connection = Connection::new(frontend, principal, out);
    let mut reader = LineReader::new(tokio::io::stdin(), max_frame_bytes);
    let end = loop {
        tokio::select! {
            frame = reader.next_frame() => match frame {
                Ok(Some(frame)) => connection.on_frame(frame),
                Ok(None) => break End::StdinClosed,
                Err(error) => {
                    tracing::warn!("reading stdin failed: {error}");
                    break End::StdinClosed;
                }
            },
            () = shutdown.cancelled() => break End::Shutdown,
        }
    };
    (end, writer)
}

async fn write_stdout(mut outbox: mpsc::UnboundedReceiver<Value>) {
    let mut stdout = BufWriter::new(tokio::io::stdout());
    while let Some(message) = outbox.recv().await {
        if stdout
            .write_all(&jsonrpc::to_frame(&message))
            .await
            .is_err()
        {
            break;
        }
        // Batch what is already queued, then flush once.
        if outbox.is_empty() && stdout.flush().await.is_err() {
            break;
        }
    }
    let _ = stdout.flush().await;
}
