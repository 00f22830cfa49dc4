//! Response bodies: a complete buffer, or a stream of chunks fed through a channel (SSE).
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

/// The body of every response this server sends.
pub enum Body {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl Body {
    pub fn full(bytes: Bytes) -> Self {
        Body::Full(Some(bytes))
    }

    pub fn empty() -> Self {
        Body::Full(None)
    }

    /// A streaming body fed by `chunks`; it ends when every sender is dropped.
    pub fn stream(chunks: mpsc::Receiver<Bytes>) -> Self {
        Body::Stream(chunks)
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(bytes) => Poll::Ready(bytes.take().map(|bytes| Ok(Frame::data(bytes)))),
            Body::Stream(chunks) => chunks
                .poll_recv(context)
                .map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    /// Exact for a buffered body, so hyper sends `Content-Length` instead of chunks.
    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            Body::Full(bytes) => hyper::body::SizeHint::with_exact(
                bytes.as_ref().map_or(0, |bytes| bytes.len() as u64),
            ),
            Body::Stream(_) => hyper::body::SizeHint::default(),
        }
    }
}
