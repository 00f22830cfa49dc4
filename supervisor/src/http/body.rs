//! Response bodies: a complete buffer, or a stream of chunks fed through a channel (SSE), plus
//! the guards that must live exactly as long as the response.
//!
//! When hyper drops a streaming body — the client closed the connection — the channel's
//! receiver goes with it, so the task feeding it sees its sends fail and stops; that is how a
//! closed response stream cancels its request.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::Frame;
use tokio::sync::mpsc;

/// The body of every response this server sends, with whatever it holds until it is finished
/// or dropped (a connection's busy mark, a principal's share).
pub struct Body {
    kind: Kind,
    held: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

enum Kind {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl Body {
    pub fn full(bytes: Bytes) -> Self {
        Self::of(Kind::Full(Some(bytes)))
    }

    pub fn empty() -> Self {
        Self::of(Kind::Full(None))
    }

    /// A streaming body fed by `chunks`; it ends when every sender is dropped.
    pub fn stream(chunks: mpsc::Receiver<Bytes>) -> Self {
        Self::of(Kind::Stream(chunks))
    }

    fn of(kind: Kind) -> Self {
        Self {
            kind,
            held: Vec::new(),
        }
    }

    /// Keep `guard` alive until hyper is done with this body.
    pub fn hold(mut self, guard: impl std::any::Any + Send + Sync) -> Self {
        self.held.push(Box::new(guard));
        self
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.get_mut().kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|bytes| Ok(Frame::data(bytes)))),
            Kind::Stream(chunks) => chunks
                .poll_recv(context)
                .map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, Kind::Full(None))
    }

    /// Exact for a buffered body, so hyper sends `Content-Length` instead of chunks.
    fn size_hint(&self) -> hyper::body::SizeHint {
        match &self.kind {
            Kind::Full(bytes) => hyper::body::SizeHint::with_exact(
                bytes.as_ref().map_or(0, |bytes| bytes.len() as u64),
            ),
            Kind::Stream(_) => hyper::body::SizeHint::default(),
        }
    }
}
