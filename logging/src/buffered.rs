//! A stderr writer that never blocks the code that logs: each event's line is appended to a
//! bounded buffer in memory, and a thread of its own writes the buffer to stderr.
//!
//! The supervisor writes an audit line for every tool call. Written directly, each line is a
//! `write` on the hot path of the call, and a stderr that nobody reads fast enough (a full
//! pipe to journald, a slow terminal) would stall the thread that serves calls. Here a line
//! costs a lock and a copy. The writer thread sleeps until the first line of a burst, then
//! writes what has gathered every [`FLUSH_INTERVAL`], so it wakes a few dozen times a second at
//! most, not once per line.
//!
//! Nothing is dropped silently: when [`MAX_BUFFERED_BYTES`] are waiting (stderr is not being
//! read), further lines are counted instead of kept, and the writer says how many it dropped,
//! in the configured format, before the lines that follow. [`flush`] writes out what is
//! waiting; the supervisor calls it before it exits, and a panic flushes before its message.
//!
//! A line the hot path must not even format (the audit line of every tool call) is handed over
//! with [`defer`]: the writer's thread emits the event, formats it and writes it, shortly after
//! — at most [`MAX_DEFERRED`] wait, beyond which a line is logged at once by its caller.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use crate::Format;

/// How long a line may wait before it is written: short enough that a log reads as live, long
/// enough that a busy supervisor's writer wakes a few dozen times a second, not per line.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(20);
/// Bytes that may wait for stderr: a few seconds of audit lines at thousands of calls per
/// second, and a bound on what a stderr nobody reads can cost.
pub const MAX_BUFFERED_BYTES: usize = 4 << 20;
/// Longest wait in [`flush`] for the writer to catch up (a stderr that is never read).
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// Deferred events that may wait for the writer's thread: as many as a few seconds of tool
/// calls; past it the caller logs at once rather than wait or drop.
pub const MAX_DEFERRED: usize = 16 * 1024;

/// An event to emit on the writer's thread.
type Deferred = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct State {
    waiting: Vec<u8>,
    deferred: Vec<Deferred>,
    dropped: u64,
    /// Bumped by every write to stderr, so [`flush`] knows when its lines are out.
    written: u64,
    /// [`flush`] is waiting: write at once.
    urgent: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Lines to write (the first of a burst, or a flush).
    work: Condvar,
    /// The writer wrote a batch.
    done: Condvar,
    format: Format,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The installed writer, for [`flush`].
static INSTALLED: OnceLock<Arc<Shared>> = OnceLock::new();

/// The buffered stderr of this process; start it with [`Buffered::start`].
#[derive(Clone)]
pub struct Buffered {
    shared: Arc<Shared>,
}

impl Buffered {
    /// Start the writer thread. Lines that do not say how many were dropped are written in
    /// `format`.
    pub fn start(format: Format) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            done: Condvar::new(),
            format,
        });
        let writer = shared.clone();
        std::thread::Builder::new()
            .name("bulkhead-log".into())
            .spawn(move || write_forever(&writer))?;
        let _ = INSTALLED.set(shared.clone());
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            flush();
            previous(info);
        }));
        Ok(Self { shared })
    }

    fn append(&self, line: &[u8]) {
        let mut state = self.shared.lock();
        if state.waiting.len() + line.len() > MAX_BUFFERED_BYTES {
            state.dropped += 1;
            return;
        }
        let first = state.waiting.is_empty() && state.deferred.is_empty();
        state.waiting.extend_from_slice(line);
        drop(state);
        if first {
            self.shared.work.notify_one();
        }
    }
}

/// Run `event` (which logs) on the writer's thread, off the caller's path; at once when no
/// buffered writer is installed or [`MAX_DEFERRED`] events already wait.
pub fn defer(event: impl FnOnce() + Send + 'static) {
    let Some(shared) = INSTALLED.get() else {
        return event();
    };
    let mut state = shared.lock();
    if state.deferred.len() >= MAX_DEFERRED {
        drop(state);
        return event();
    }
    let first = state.waiting.is_empty() && state.deferred.is_empty();
    state.deferred.push(Box::new(event));
    drop(state);
    if first {
        shared.work.notify_one();
    }
}

/// Write out every line waiting (waiting at most a couple of seconds for a stderr nobody
/// reads). A no-op when no buffered writer is installed.
pub fn flush() {
    let Some(shared) = INSTALLED.get() else {
        return;
    };
    let mut state = shared.lock();
    if state.waiting.is_empty() && state.deferred.is_empty() && state.dropped == 0 {
        return;
    }
    let target = state.written + 1;
    state.urgent = true;
    shared.work.notify_one();
    let _ = shared
        .done
        .wait_timeout_while(state, FLUSH_TIMEOUT, |state| state.written < target);
}

fn write_forever(shared: &Shared) {
    let mut stderr = std::io::stderr();
    loop {
        let mut state = shared.lock();
        while state.waiting.is_empty() && state.deferred.is_empty() && state.dropped == 0 {
            state = shared
                .work
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        if !state.urgent {
            // Let the burst gather; a flush cuts the wait short.
            state = shared
                .work
                .wait_timeout_while(state, FLUSH_INTERVAL, |state| !state.urgent)
                .map(|(state, _)| state)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
        let deferred = std::mem::take(&mut state.deferred);
        if !deferred.is_empty() {
            // The events log through this very writer: emit them unlocked, then write.
            drop(state);
            for event in deferred {
                event();
            }
            state = shared.lock();
        }
        let lines = std::mem::take(&mut state.waiting);
        let dropped = std::mem::take(&mut state.dropped);
        state.urgent = false;
        drop(state);
        if dropped > 0 {
            let _ = stderr.write_all(dropped_line(shared.format, dropped).as_bytes());
        }
        let _ = stderr.write_all(&lines);
        let mut state = shared.lock();
        state.written += 1;
        drop(state);
        shared.done.notify_all();
    }
}

/// The line that says `dropped` lines were not kept, in `format`.
fn dropped_line(format: Format, dropped: u64) -> String {
    let message = format!(
        "{dropped} log lines were dropped: stderr was not read fast enough (at most {MAX_BUFFERED_BYTES} bytes wait)"
    );
    match format {
        Format::Text => format!("WARN bulkhead_logging: {message}\n"),
        Format::Json => format!(
            "{{\"level\":\"WARN\",\"fields\":{{\"message\":\"{message}\"}},\"target\":\"bulkhead_logging\"}}\n"
        ),
        Format::Journald => format!("<4>bulkhead_logging: {message}\n"),
    }
}

/// One event's line, appended whole when the event is formatted.
pub struct Line {
    buffered: Buffered,
    line: Vec<u8>,
}

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.buffered.append(&self.line);
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffered {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line {
            buffered: self.clone(),
            line: Vec::with_capacity(256),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_buffer_counts_what_it_drops_and_says_so_in_the_format() {
        let buffered = Buffered {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                work: Condvar::new(),
                done: Condvar::new(),
                format: Format::Json,
            }),
        };
        let line = vec![b'x'; MAX_BUFFERED_BYTES / 2];
        buffered.append(&line);
        buffered.append(&line);
        buffered.append(b"one too many\n");
        let state = buffered.shared.lock();
        assert_eq!(state.waiting.len(), MAX_BUFFERED_BYTES);
        assert_eq!(state.dropped, 1);
        let notice = dropped_line(Format::Json, 3);
        assert!(notice.starts_with("{\"level\":\"WARN\""), "{notice}");
        assert!(notice.ends_with("}\n"));
        assert!(dropped_line(Format::Journald, 1).starts_with("<4>"));
    }
}
