//! Newline-delimited framing with a hard size limit, over any `AsyncRead`.
//!
//! MCP's stdio transport and Bulkhead's worker socket both carry one JSON-RPC message per line.
//! [`LineReader`] yields each line as a [`Frame`]. A line longer than the limit is never held in
//! memory (beyond the limit and one byte: the `\r` a `\r\n` terminator may turn out to end
//! with): once it crosses that the reader discards bytes until the next newline and then
//! yields [`Frame::Oversized`], so the peer gets an error naming the limit and the stream goes on
//! with the next line. All state lives in the struct, so `next_frame` is cancellation-safe and
//! can sit in a `select!`.

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Default largest frame, in bytes: 4 MiB, the same as the HTTP body limit, far above any tool
/// call a model produces and far below what would let one client pin the supervisor's memory.
/// rmcp's own reader allows 16 MiB, so the supervisor enforces this before rmcp sees anything.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// Read-buffer size: large enough that a typical message arrives in one read.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Bytes held beyond the limit: a `\r` may be the first half of a `\r\n` terminator, which is
/// not part of the line, and which it is only shows when the `\n` arrives.
const CARRIAGE_RETURN_BYTES: usize = 1;

/// One unit read from a newline-delimited stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete line, without its terminator (`\n` or `\r\n`).
    Line(Vec<u8>),
    /// A line longer than the limit; its bytes were discarded. `bytes` counts what was seen
    /// before the `\n`.
    Oversized { bytes: usize, limit: usize },
}

/// Reads [`Frame`]s from a byte stream. Empty lines are skipped.
pub struct LineReader<R> {
    inner: BufReader<R>,
    max_frame_bytes: usize,
    line: Vec<u8>,
    /// `Some(n)`: inside an oversized line, `n` bytes of it seen so far.
    discarding: Option<usize>,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// A reader that yields lines of at most `max_frame_bytes` bytes.
    pub fn new(reader: R, max_frame_bytes: usize) -> Self {
        Self {
            inner: BufReader::with_capacity(READ_BUFFER_BYTES, reader),
            max_frame_bytes,
            line: Vec::new(),
            discarding: None,
        }
    }

    /// The next frame, or `None` at end of stream. A final line without a newline is still
    /// yielded.
    pub async fn next_frame(&mut self) -> std::io::Result<Option<Frame>> {
        loop {
            let buffer = self.inner.fill_buf().await?;
            if buffer.is_empty() {
                return Ok(self.finish_at_eof());
            }
            let newline = buffer.iter().position(|&byte| byte == b'\n');
            let (chunk_len, consumed) = match newline {
                Some(index) => (index, index + 1),
                None => (buffer.len(), buffer.len()),
            };
            if let Some(seen) = self.discarding.as_mut() {
                *seen += chunk_len;
            } else if self.line.len() + chunk_len
                > self.max_frame_bytes.saturating_add(CARRIAGE_RETURN_BYTES)
            {
                self.discarding = Some(self.line.len() + chunk_len);
                self.line = Vec::new();
            } else {
                self.line.extend_from_slice(&buffer[..chunk_len]);
            }
            self.inner.consume(consumed);
            if newline.is_some()
                && let Some(frame) = self.end_of_line()
            {
                return Ok(Some(frame));
            }
        }
    }

    /// Bytes of the unfinished line held in memory: never more than the limit and one `\r`.
    pub fn buffered_bytes(&self) -> usize {
        self.line.len()
    }

    /// The bytes read past the last whole frame and not yet yielded: the start of a line and
    /// what is buffered after it. A reader seeded with them (and then the same stream) yields
    /// the same frames this one would have. Inside an oversized line, only what follows it.
    pub fn pending(&self) -> Vec<u8> {
        let mut pending = match self.discarding {
            Some(_) => Vec::new(),
            None => self.line.clone(),
        };
        pending.extend_from_slice(self.inner.buffer());
        pending
    }

    /// Give back the underlying reader and any bytes read past the last frame. Used after a
    /// handshake line, when the stream changes hands.
    pub fn into_inner(self) -> (R, Vec<u8>) {
        let leftover = self.inner.buffer().to_vec();
        (self.inner.into_inner(), leftover)
    }

    /// Called at a newline: the finished frame, or `None` for an empty line.
    fn end_of_line(&mut self) -> Option<Frame> {
        if let Some(bytes) = self.discarding.take() {
            return Some(Frame::Oversized {
                bytes,
                limit: self.max_frame_bytes,
            });
        }
        let bytes = self.line.len();
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        if self.line.len() > self.max_frame_bytes {
            self.line = Vec::new();
            return Some(Frame::Oversized {
                bytes,
                limit: self.max_frame_bytes,
            });
        }
        if self.line.iter().all(u8::is_ascii_whitespace) {
            self.line.clear();
            return None;
        }
        Some(Frame::Line(std::mem::take(&mut self.line)))
    }

    fn finish_at_eof(&mut self) -> Option<Frame> {
        if self.discarding.is_none() && self.line.is_empty() {
            return None;
        }
        self.end_of_line()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(input: &[u8], limit: usize) -> Vec<Frame> {
        let mut reader = LineReader::new(input, limit);
        let mut out = Vec::new();
        while let Some(frame) = reader.next_frame().await.unwrap() {
            out.push(frame);
        }
        out
    }

    #[tokio::test]
    async fn splits_lines_and_strips_terminators() {
        let got = frames(b"{\"a\":1}\n\r\n{\"b\":2}\r\n\n  \n{\"c\":3}", 100).await;
        assert_eq!(
            got,
            vec![
                Frame::Line(b"{\"a\":1}".to_vec()),
                Frame::Line(b"{\"b\":2}".to_vec()),
                Frame::Line(b"{\"c\":3}".to_vec()),
            ]
        );
    }

    #[tokio::test]
    async fn oversized_line_is_reported_once_and_the_stream_continues() {
        let mut input = vec![b'x'; 1000];
        input.extend_from_slice(b"\nok\n");
        let got = frames(&input, 10).await;
        assert_eq!(
            got,
            vec![
                Frame::Oversized {
                    bytes: 1000,
                    limit: 10
                },
                Frame::Line(b"ok".to_vec()),
            ]
        );
    }

    #[tokio::test]
    async fn oversized_line_larger_than_the_read_buffer_is_never_held() {
        let mut input = vec![b'y'; 3 * READ_BUFFER_BYTES + 17];
        input.extend_from_slice(b"\n{}\n");
        let mut reader = LineReader::new(&input[..], 1024);
        let first = reader.next_frame().await.unwrap().unwrap();
        assert_eq!(
            first,
            Frame::Oversized {
                bytes: 3 * READ_BUFFER_BYTES + 17,
                limit: 1024
            }
        );
        assert!(
            reader.line.capacity() <= 2048,
            "oversized bytes were buffered"
        );
        assert_eq!(
            reader.next_frame().await.unwrap(),
            Some(Frame::Line(b"{}".to_vec()))
        );
    }

    #[tokio::test]
    async fn a_line_exactly_at_the_limit_is_accepted() {
        let got = frames(b"12345\n123456\n", 5).await;
        assert_eq!(
            got,
            vec![
                Frame::Line(b"12345".to_vec()),
                Frame::Oversized { bytes: 6, limit: 5 }
            ]
        );
    }

    /// Found by the `frame` fuzz target: `\r\n` is a terminator, not part of the line, so a
    /// CRLF client's line at the limit is as welcome as an LF client's.
    #[tokio::test]
    async fn a_crlf_line_exactly_at_the_limit_is_accepted() {
        let got = frames(b"12345\r\n123456\r\n1234\r\r\n", 5).await;
        assert_eq!(
            got,
            vec![
                Frame::Line(b"12345".to_vec()),
                Frame::Oversized { bytes: 7, limit: 5 },
                Frame::Line(b"1234\r".to_vec()),
            ]
        );
    }

    #[tokio::test]
    async fn oversized_unterminated_tail_is_reported_at_eof() {
        let got = frames(b"abcdefgh", 4).await;
        assert_eq!(got, vec![Frame::Oversized { bytes: 8, limit: 4 }]);
    }
}
