//! Frames written whole and in order by whoever produces them, with no task in between when
//! the stream takes them at once.
//!
//! A [`FrameWriter`] owns one stream (a worker's socket, the supervisor's stdout). A frame is
//! written by the code that produced it, straight to the stream, when nothing is queued and
//! the stream takes it without waiting — the common case, one `write` and no wake-up of any
//! other task. Otherwise the rest of the frame is queued and the writer's [`Drain`] future,
//! which its owner runs as a task, writes the queue as the stream becomes writable. Frames
//! never interleave: a direct write happens only when the queue is empty, under the same lock
//! the drain writes under.
//!
//! [`FrameWriter::push`] never waits (a worker's socket: what goes to a worker is bounded by
//! construction); [`FrameWriter::send`] waits while `bound` frames are queued, which holds a
//! producer to the pace of a reader (stdout). [`FrameWriter::close`] writes what is queued,
//! then shuts the stream down; a failed write (the reader went away) closes it at once, and
//! [`FrameWriter::closed`] says so.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::io::AsyncWrite;
use tokio::sync::Notify;

/// Why a frame was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the stream is closed")]
pub struct Closed;

type Stream = Pin<Box<dyn AsyncWrite + Send>>;

struct State {
    /// `None` once closed: the stream (and its descriptor) is let go at once, whoever still
    /// holds the writer.
    stream: Option<Stream>,
    /// Frames (or the rest of one) waiting for the stream, oldest first.
    queue: VecDeque<Vec<u8>>,
    /// Bytes of the front frame already written.
    written: usize,
    /// No more frames: shut the stream down once the queue is written.
    closing: bool,
    /// A write failed or the stream is shut down: nothing more goes out.
    closed: bool,
}

/// One stream's writer; share it behind an [`Arc`].
pub struct FrameWriter {
    state: Mutex<State>,
    /// Frames waiting may be at most this many before [`FrameWriter::send`] waits.
    bound: usize,
    /// Whether producers may write to the stream themselves (a stream that buffers, like
    /// tokio's blocking stdout, needs flushing and is left to the drain).
    direct: bool,
    /// Work for the drain: a queued frame, or the close.
    work: Notify,
    /// Room in the queue, or the stream closed.
    room: Notify,
}

/// Writes what [`FrameWriter`] queued; run it as a task. It ends once the stream is closed.
pub type Drain = Pin<Box<dyn Future<Output = ()> + Send>>;

impl FrameWriter {
    /// A writer for `stream` whose [`send`](Self::send) waits beyond `bound` queued frames, and
    /// the future that writes its queue. With `direct`, producers write to the stream
    /// themselves when it takes a frame at once (pipes and sockets); without, every frame goes
    /// through the drain, which also flushes the stream.
    pub fn new<W>(stream: W, bound: usize, direct: bool) -> (Arc<Self>, Drain)
    where
        W: AsyncWrite + Send + 'static,
    {
        let writer = Arc::new(Self {
            state: Mutex::new(State {
                stream: Some(Box::pin(stream)),
                queue: VecDeque::new(),
                written: 0,
                closing: false,
                closed: false,
            }),
            bound: bound.max(1),
            direct,
            work: Notify::new(),
            room: Notify::new(),
        });
        let drain = Box::pin(writer.clone().drain());
        (writer, drain)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a queue and flags: recover it after a panic rather than lose the stream.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Write `frame` (a whole message with its newline) without waiting: now if the stream
    /// takes it, else after what is queued.
    pub fn push(&self, frame: Vec<u8>) -> Result<(), Closed> {
        let mut state = self.lock();
        self.push_locked(&mut state, frame)
    }

    fn push_locked(&self, state: &mut State, frame: Vec<u8>) -> Result<(), Closed> {
        if state.closed || state.closing {
            return Err(Closed);
        }
        let mut written = 0;
        if self.direct && state.queue.is_empty() {
            let mut context = Context::from_waker(Waker::noop());
            let mut failed = false;
            if let Some(stream) = state.stream.as_mut() {
                while written < frame.len() {
                    match stream.as_mut().poll_write(&mut context, &frame[written..]) {
                        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                            failed = true;
                            break;
                        }
                        Poll::Ready(Ok(n)) => written += n,
                        Poll::Pending => break,
                    }
                }
            }
            if failed {
                self.fail(state);
                return Err(Closed);
            }
            if written == frame.len() {
                return Ok(());
            }
        }
        state.queue.push_back(frame);
        state.written = if state.queue.len() == 1 {
            written
        } else {
            state.written
        };
        self.work.notify_one();
        Ok(())
    }

    /// Write `frame`, first waiting while `bound` frames are queued (the reader is slow).
    pub async fn send(&self, frame: Vec<u8>) -> Result<(), Closed> {
        {
            // The common case: room, and no waiting to set up.
            let mut state = self.lock();
            if state.closed || state.closing {
                return Err(Closed);
            }
            if state.queue.len() < self.bound {
                return self.push_locked(&mut state, frame);
            }
        }
        loop {
            let mut room = pin!(self.room.notified());
            room.as_mut().enable();
            {
                let mut state = self.lock();
                if state.closed || state.closing {
                    return Err(Closed);
                }
                if state.queue.len() < self.bound {
                    return self.push_locked(&mut state, frame);
                }
            }
            room.await;
        }
    }

    /// No more frames: the drain writes what is queued, then shuts the stream down.
    pub fn close(&self) {
        self.lock().closing = true;
        self.work.notify_one();
        self.room.notify_waiters();
    }

    /// Resolves once every frame queued so far is written (or nothing more can be).
    pub async fn flushed(&self) {
        loop {
            let mut room = pin!(self.room.notified());
            room.as_mut().enable();
            {
                let state = self.lock();
                if state.queue.is_empty() || state.closed {
                    return;
                }
            }
            room.await;
        }
    }

    /// Whether nothing more can be written (closed, or a write failed).
    pub fn is_closed(&self) -> bool {
        let state = self.lock();
        state.closed || state.closing
    }

    /// Resolves once nothing more can be written.
    pub async fn closed(&self) {
        loop {
            let mut room = pin!(self.room.notified());
            room.as_mut().enable();
            if self.is_closed() {
                return;
            }
            room.await;
        }
    }

    fn fail(&self, state: &mut State) {
        state.closed = true;
        state.stream = None;
        state.queue.clear();
        self.room.notify_waiters();
        self.work.notify_one();
    }

    async fn drain(self: Arc<Self>) {
        loop {
            self.work.notified().await;
            let done = std::future::poll_fn(|context| self.poll_drain(context)).await;
            if done {
                return;
            }
        }
    }

    /// Write the queue; `Ready(true)` once the stream is closed for good, `Ready(false)` when
    /// the queue is empty and more may come.
    fn poll_drain(&self, context: &mut Context<'_>) -> Poll<bool> {
        let mut state = self.lock();
        let state = &mut *state;
        while !state.closed {
            let (Some(front), Some(stream)) = (state.queue.front(), state.stream.as_mut()) else {
                break;
            };
            let length = front.len();
            match stream.as_mut().poll_write(context, &front[state.written..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => self.fail(state),
                Poll::Ready(Ok(n)) => {
                    state.written += n;
                    if state.written == length {
                        state.queue.pop_front();
                        state.written = 0;
                        self.room.notify_waiters();
                    }
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        if state.closed {
            return Poll::Ready(true);
        }
        let Some(stream) = state.stream.as_mut() else {
            return Poll::Ready(true);
        };
        if !self.direct {
            match stream.as_mut().poll_flush(context) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => {
                    self.fail(state);
                    return Poll::Ready(true);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        if state.closing {
            let Some(stream) = state.stream.as_mut() else {
                return Poll::Ready(true);
            };
            if stream.as_mut().poll_shutdown(context).is_pending() {
                return Poll::Pending;
            }
            // Shut down: let the stream and its descriptor go now.
            state.stream = None;
            state.closed = true;
            self.room.notify_waiters();
            return Poll::Ready(true);
        }
        Poll::Ready(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn read_exactly(reader: &mut tokio::io::DuplexStream, n: usize) -> Vec<u8> {
        let mut bytes = vec![0; n];
        reader.read_exact(&mut bytes).await.unwrap();
        bytes
    }

    #[tokio::test]
    async fn frames_go_out_whole_and_in_order_directly_or_through_the_drain() {
        // A stream that takes 8 bytes at a time.
        let (ours, mut theirs) = tokio::io::duplex(8);
        let (writer, drain) = FrameWriter::new(ours, 16, true);
        let drain = tokio::spawn(drain);
        writer.push(b"first frame\n".to_vec()).unwrap();
        writer.push(b"second\n".to_vec()).unwrap();
        writer.send(b"third\n".to_vec()).await.unwrap();
        let received = read_exactly(&mut theirs, 25).await;
        assert_eq!(received, b"first frame\nsecond\nthird\n");
        writer.close();
        drain.await.unwrap();
        let mut rest = Vec::new();
        theirs.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "closed after the queue");
        assert_eq!(writer.push(b"late\n".to_vec()), Err(Closed));
    }

    #[tokio::test]
    async fn send_waits_for_room_and_a_gone_reader_closes_the_writer() {
        let (ours, theirs) = tokio::io::duplex(4);
        let (writer, drain) = FrameWriter::new(ours, 1, true);
        tokio::spawn(drain);
        writer.push(b"0123456789\n".to_vec()).unwrap();
        let waiting = tokio::spawn({
            let writer = writer.clone();
            async move { writer.send(b"next\n".to_vec()).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "one frame queued is the bound");
        drop(theirs);
        assert_eq!(waiting.await.unwrap(), Err(Closed));
        writer.closed().await;
        assert!(writer.is_closed());
    }
}
