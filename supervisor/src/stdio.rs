//! `bulkhead stdio`: MCP over the supervisor's own stdin and stdout, newline-delimited.
//!
//! stdin is read with the size-limited [`LineReader`]; every frame goes to one
//! [`Connection`]. Everything written to stdout passes through one [`FrameWriter`], which each
//! reply's task writes to directly (no hand-off to a writer task when the pipe takes the frame
//! at once), so messages never interleave, and nothing else in the process writes to stdout.
//! The conversation ends when stdin closes or the shutdown token fires.
//!
//! When stdin and stdout are pipes or sockets — as hosts launch servers — they are driven
//! non-blocking by the runtime's event loop, like the workers' sockets. tokio's own
//! `stdin()`/`stdout()` do every read and write on its blocking thread pool instead, which
//! costs several thread switches per message (about a third of a stdio call's latency, measured
//! by `scripts/bench`). A terminal or a file keeps the blocking-pool path: a terminal's open
//! file is shared with the shell, which must not be left non-blocking.

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use std::pin::Pin;
use std::sync::Arc;

use bulkhead_protocol::frame::LineReader;
use bulkhead_protocol::writer::FrameWriter;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::mcp::{Connection, ConnectionRecord, Frontend, Sink};
use crate::principal::Principal;

/// How long requests that arrived before stdin closed may still run: short, because closing
/// stdin must end every process within two seconds and the stop sequence needs the rest.
const STDIN_CLOSED_DRAIN: std::time::Duration = std::time::Duration::from_millis(500);

/// Messages waiting for stdout beyond what its pipe holds. A host that stops reading fills it;
/// then the requests' tasks wait (and behind them the workers' bounded queues), and stdin is
/// not read either.
const STDOUT_QUEUE: usize = 256;

/// Why the stdio conversation ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    StdinClosed,
    Shutdown,
}

/// Stdout, as a connection writes it: close it once the last replies are written; the task
/// finishes when everything queued is out.
pub struct Output {
    pub writer: Arc<FrameWriter>,
    pub drained: tokio::task::JoinHandle<()>,
}

/// What the previous image left of the stdio conversation (a reload, ARCHITECTURE.md,
/// *Upgrading in place*).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct StdioRecord {
    pub connection: ConnectionRecord,
    /// Bytes read from stdin past the last whole message.
    pub pending_stdin: Vec<u8>,
}

/// The conversation, paused for a reload: stdin is not read until `resume` is dropped.
pub struct Paused {
    pub connection: Arc<Connection>,
    pub pending_stdin: Vec<u8>,
    pub stdout: Arc<FrameWriter>,
    /// Dropping it resumes reading.
    pub _resume: oneshot::Sender<()>,
}

/// A request to pause the conversation; the reply carries what a reload needs.
pub type PauseRequest = oneshot::Sender<Paused>;

/// Serve one client on stdin/stdout until stdin closes or `shutdown` fires; pause whenever
/// asked on `pauses`; take over `restored` first (the conversation of the previous image).
pub async fn serve(
    frontend: Arc<Frontend>,
    principal: Principal,
    max_frame_bytes: usize,
    shutdown: CancellationToken,
    mut pauses: mpsc::Receiver<PauseRequest>,
    restored: Option<StdioRecord>,
) -> (End, Output) {
    let (stream, direct) = stdout();
    let (writer, drain) = FrameWriter::new(stream, STDOUT_QUEUE, direct);
    let drained = tokio::spawn(drain);
    let out = Sink::Stream(writer.clone());
    let connection = Connection::new(frontend.clone(), principal, out);
    let pending = match &restored {
        Some(record) => {
            connection.restore(&record.connection);
            record.pending_stdin.clone()
        }
        None => Vec::new(),
    };
    let input: Input = Box::pin(tokio::io::AsyncReadExt::chain(
        std::io::Cursor::new(pending),
        stdin(),
    ));
    let mut reader = LineReader::new(input, max_frame_bytes);
    let stdout_writer = writer.clone();
    // The reading loop runs as a task of its own, like the requests it starts; all of them
    // share the runtime's one thread (see `main::runtime`).
    let reading = tokio::spawn(async move {
        let end = loop {
            tokio::select! {
                frame = reader.next_frame() => match frame {
                    Ok(Some(frame)) => tokio::select! {
                        () = connection.on_frame(frame) => {}
                        () = shutdown.cancelled() => break End::Shutdown,
                    },
                    Ok(None) => break End::StdinClosed,
                    Err(error) => {
                        tracing::warn!("reading stdin failed: {error}");
                        break End::StdinClosed;
                    }
                },
                () = shutdown.cancelled() => break End::Shutdown,
                Some(reply) = pauses.recv() => {
                    let (resume, resumed) = oneshot::channel();
                    let paused = Paused {
                        connection: connection.clone(),
                        pending_stdin: reader.pending(),
                        stdout: stdout_writer.clone(),
                        _resume: resume,
                    };
                    if reply.send(paused).is_ok() {
                        let _ = resumed.await;
                    }
                }
            }
        };
        if end == End::StdinClosed {
            // A host may write its last requests and close stdin at once: answer what already
            // arrived, briefly, before every session is stopped.
            frontend.tasks.wait(STDIN_CLOSED_DRAIN).await;
        }
        end
    });
    let end = reading.await.unwrap_or(End::StdinClosed);
    (end, Output { writer, drained })
}

type Input = Pin<Box<dyn AsyncRead + Send>>;
type Stream = Pin<Box<dyn AsyncWrite + Send>>;

/// stdin, non-blocking when it is a pipe or a socket.
fn stdin() -> Input {
    if !std::io::stdin().is_terminal()
        && let Ok(fd) = std::io::stdin().as_fd().try_clone_to_owned()
    {
        let file = std::fs::File::from(fd);
        match file.metadata().map(|metadata| metadata.file_type()) {
            Ok(kind) if kind.is_fifo() => {
                if let Ok(pipe) = tokio::net::unix::pipe::Receiver::from_file(file) {
                    return Box::pin(pipe);
                }
            }
            Ok(kind) if kind.is_socket() => {
                if let Some(socket) = async_socket(file) {
                    return Box::pin(socket);
                }
            }
            _ => {}
        }
    }
    Box::pin(tokio::io::stdin())
}

/// stdout, non-blocking when it is a pipe or a socket — then a reply's task may write to it
/// directly (`true`); tokio's own stdout writes on the blocking pool and must be flushed by
/// the writer's drain.
fn stdout() -> (Stream, bool) {
    if !std::io::stdout().is_terminal()
        && let Ok(fd) = std::io::stdout().as_fd().try_clone_to_owned()
    {
        let file = std::fs::File::from(fd);
        match file.metadata().map(|metadata| metadata.file_type()) {
            Ok(kind) if kind.is_fifo() => {
                if let Ok(pipe) = tokio::net::unix::pipe::Sender::from_file(file) {
                    return (Box::pin(pipe), true);
                }
            }
            Ok(kind) if kind.is_socket() => {
                if let Some(socket) = async_socket(file) {
                    return (Box::pin(socket), true);
                }
            }
            _ => {}
        }
    }
    (Box::pin(tokio::io::stdout()), false)
}

/// A socket on stdin or stdout (Node-based hosts pass socketpairs) as a non-blocking stream;
/// reads and writes on a stream socket are the same whatever its family.
fn async_socket(file: std::fs::File) -> Option<tokio::net::UnixStream> {
    let socket = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(file));
    socket.set_nonblocking(true).ok()?;
    tokio::net::UnixStream::from_std(socket).ok()
}
