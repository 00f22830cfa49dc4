//! The actor that owns one worker: its main loop waits on the worker's socket, its handles'
//! commands, the earliest hard-cancel deadline, a stalled notification's room, and the
//! process's exit — whichever comes first.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bulkhead_protocol::frame::{Frame, LineReader};
use bulkhead_protocol::writer::FrameWriter;
use tokio::io::AsyncRead;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::trading::desk::Binding;
use crate::wrap::stderr::Collected;

use super::WorkerTimeouts;
use super::cancellation::Abandoned;
use super::delivery::{InFlight, Stall, StallEnd};
use super::flavor::Flavor;
use super::handle::{CallEvent, ExitCause, WorkerExit};
use super::messages::{Command, LoopEnd};
use super::process::Process;

/// How long to keep reading a dead worker's socket for replies it wrote before exiting.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(100);

pub(super) struct Actor<P, R> {
    pub(super) tag: String,
    pub(super) pid: u32,
    pub(super) process: P,
    pub(super) reader: LineReader<R>,
    /// The worker's socket, written by whoever produces a frame; closed (the first step of
    /// every stop) by taking it.
    pub(super) writer: Option<Arc<FrameWriter>>,
    pub(super) in_flight: HashMap<u64, InFlight>,
    /// Requests the worker sent that a client has yet to answer: their id (as JSON text) and
    /// the call they were relayed on.
    pub(super) relayed: HashMap<String, u64>,
    /// A notification waiting for room in its call's queue; the socket is not read meanwhile.
    pub(super) stalled: Option<Stall>,
    /// Reading what a dead worker left in its socket: never stall then.
    pub(super) draining: bool,
    /// A handle asked to stop (or every handle is gone): the loop ends at its next turn.
    pub(super) stop_requested: bool,
    /// Cancelled calls that may still run in the worker, with the instant it gets killed.
    pub(super) abandoned: Abandoned,
    pub(super) inbox: mpsc::UnboundedReceiver<Command>,
    pub(super) exit_tx: watch::Sender<Option<WorkerExit>>,
    /// Shared with the handles: the cause, set as soon as the main loop ends.
    pub(super) planned: Arc<OnceLock<ExitCause>>,
    pub(super) timeouts: WorkerTimeouts,
    pub(super) flavor: Flavor,
    /// A wrapped server's stderr tail and its reader; `None` for the built-in worker.
    pub(super) stderr: Option<Collected>,
    /// The session the worker serves, once bound.
    pub(super) binding: Arc<OnceLock<Binding>>,
    /// A reload asked the actor to pause: it does at the top of its next turn.
    pub(super) pausing: Option<tokio::sync::oneshot::Sender<super::adopt::Paused>>,
}

impl<P: Process, R: AsyncRead + Unpin> Actor<P, R> {
    pub(super) async fn run(mut self) {
        let end = self.serve().await;
        // The process is reaped and its resources released once this returns.
        let exit = self.finish(end).await;
        if exit.is_crash() && self.flavor.logs_crash_itself() {
            tracing::warn!(session = %self.tag, pid = self.pid, "worker {exit}");
        } else if !exit.is_crash() {
            tracing::debug!(session = %self.tag, pid = self.pid, "worker {exit}");
        }
        for (_, call) in self.in_flight.drain() {
            call.outbox.push(CallEvent::Died(exit.clone()));
        }
        let crashed = exit.is_crash().then(|| exit.to_string());
        let _ = self.exit_tx.send(Some(exit));
        if let (Some(what), Some(stderr)) = (crashed, self.stderr.take()) {
            stderr.log(&self.tag, self.pid, &what).await;
        }
    }

    async fn serve(&mut self) -> LoopEnd {
        loop {
            if self.stop_requested {
                return LoopEnd::StopRequested;
            }
            if let Some(reply) = self.pausing.take() {
                super::adopt::pause(self.reader.pending(), reply).await;
                continue;
            }
            let kill_at = self.abandoned.next_deadline();
            let stall = self.stall_wait();
            // In this order: the handles' commands first (a call is registered before anything
            // the worker says about it is read), then the hard-cancel deadline, a stall's end,
            // the socket, and last the process's exit (what it wrote before dying is read
            // first).
            tokio::select! {
                biased;
                command = self.inbox.recv() => self.on_command(command),
                () = sleep_until_opt(kill_at) => {
                    return LoopEnd::Kill("ignored a cancellation past the hard limit");
                }
                end = async { match stall {
                    Some(stall) => stall.wait().await,
                    None => std::future::pending().await,
                } } => self.end_stall(end),
                frame = self.reader.next_frame(), if self.reading() => match frame {
                    Ok(Some(Frame::Line(line))) => {
                        // A call's request goes to the worker from its caller's task, before
                        // the actor has seen the call: take the commands waiting, so the call
                        // is registered before anything the worker says about it is routed.
                        self.take_commands();
                        self.on_worker_line(line);
                    }
                    Ok(Some(Frame::Oversized { .. })) => return LoopEnd::Kill("sent a frame over the size limit"),
                    Ok(None) | Err(_) => return LoopEnd::SocketClosed,
                },
                status = self.process.wait() => match status {
                    Ok(status) => {
                        self.drain_replies().await;
                        return LoopEnd::Exited(status);
                    }
                    Err(_) => return LoopEnd::SocketClosed,
                },
            }
        }
    }

    /// Apply one command from a handle; `None`: every handle is gone.
    fn on_command(&mut self, command: Option<Command>) {
        match command {
            Some(Command::Call {
                id,
                progress_token,
                outbox,
            }) => {
                self.in_flight
                    .insert(id, InFlight::new(outbox, progress_token));
            }
            Some(Command::Cancel { id }) => self.cancel(id),
            Some(Command::Respond { id, frame }) => {
                self.on_answer(&id);
                self.write(frame);
            }
            Some(Command::Pause { reply }) => self.pausing = Some(reply),
            Some(Command::Stop) | None => self.stop_requested = true,
        }
    }

    /// Apply every command already waiting.
    fn take_commands(&mut self) {
        while let Ok(command) = self.inbox.try_recv() {
            self.on_command(Some(command));
        }
    }

    /// The process exited; replies it wrote just before may still sit in the socket.
    async fn drain_replies(&mut self) {
        self.draining = true;
        self.stalled = None;
        let drain = async {
            while let Ok(Some(Frame::Line(line))) = self.reader.next_frame().await {
                self.take_commands();
                self.on_worker_line(line);
            }
        };
        let _ = tokio::time::timeout(DRAIN_AFTER_EXIT, drain).await;
    }

    pub(super) fn write(&self, frame: Vec<u8>) {
        if let Some(writer) = &self.writer {
            let _ = writer.push(frame);
        }
    }

    fn cancel(&mut self, id: u64) {
        if self.remove_call(id).is_none() {
            return;
        }
        self.end_stall(StallEnd::Interrupted);
        for frame in self.abandoned.cancel(id, Instant::now()) {
            self.write(frame);
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
