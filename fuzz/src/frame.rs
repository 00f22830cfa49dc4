//! `frame`: the newline framing (`LineReader`) over any byte stream, in any chunking, with
//! reads that stall and `next_frame` futures dropped mid-way (as a `select!` drops them).
//!
//! Input: byte 0 picks the frame limit, byte 1 seeds the schedule of chunk sizes, stalls and
//! cancellations, the rest is the stream. Oracles: the frames equal a line-by-line model of the
//! stream (so no byte is lost, duplicated or moved by chunking or cancellation); the reader
//! never holds more of an unfinished line than the limit (and a `\r`); and a well-formed
//! request written after whatever came before is delivered intact and classifies as that
//! request.

use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use bulkhead_protocol::frame::{Frame, LineReader};
use bulkhead_protocol::jsonrpc::{self, Message};
use serde_json::json;
use tokio::io::{AsyncRead, ReadBuf};

use crate::input::{Cursor, Schedule};

/// The request written after the fuzzed stream; it must always come out.
const SENTINEL: &[u8] = br#"{"jsonrpc":"2.0","id":"sentinel","method":"ping"}"#;

/// Limits from the sentinel's length up: small, so oversized lines are common.
const LIMIT_SPAN: usize = 200;

pub fn check(data: &[u8]) {
    let mut input = Cursor::new(data);
    let limit = SENTINEL.len() + input.below(LIMIT_SPAN);
    let seed = input.byte();
    let mut stream = input.rest().to_vec();
    stream.push(b'\n');
    stream.extend_from_slice(SENTINEL);
    stream.push(b'\n');

    let frames = read_all(&stream, limit, seed);
    assert_eq!(frames, model(&stream, limit), "limit {limit}");
    let Some(Frame::Line(last)) = frames.last() else {
        panic!("the request after the stream was not delivered: {frames:?}");
    };
    assert_eq!(
        jsonrpc::parse_message(last),
        Ok(Message::Request {
            id: json!("sentinel"),
            method: "ping".into(),
            params: None
        })
    );
}

/// What the reader must yield: each line without its `\n` or `\r\n`; a line longer than the
/// limit as `Oversized` (counting every byte before its `\n`); blank lines skipped; a last
/// line without a newline still yielded.
pub fn model(stream: &[u8], limit: usize) -> Vec<Frame> {
    let mut lines: Vec<&[u8]> = stream.split(|&byte| byte == b'\n').collect();
    if lines.last().is_some_and(|last| last.is_empty()) {
        lines.pop();
    }
    let mut frames = Vec::new();
    for raw in lines {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.len() > limit {
            frames.push(Frame::Oversized {
                bytes: raw.len(),
                limit,
            });
        } else if !line.iter().all(u8::is_ascii_whitespace) {
            frames.push(Frame::Line(line.to_vec()));
        }
    }
    frames
}

/// Every frame of `stream`, read through a stalling, chunking reader, with some `next_frame`
/// futures dropped while pending.
fn read_all(stream: &[u8], limit: usize, seed: u8) -> Vec<Frame> {
    let mut reader = LineReader::new(Chunked::new(stream.to_vec(), seed), limit);
    let mut driver = Schedule::new(seed, 1);
    let mut context = Context::from_waker(Waker::noop());
    let mut frames = Vec::new();
    loop {
        let polled = {
            let mut next = pin!(reader.next_frame());
            loop {
                match next.as_mut().poll(&mut context) {
                    Poll::Ready(result) => break Some(result),
                    // Cancelled, as a `select!` whose other branch won drops it.
                    Poll::Pending if driver.one_in(3) => break None,
                    Poll::Pending => {}
                }
            }
        };
        // The limit, and a `\r` that may turn out to be half of the terminator.
        assert!(
            reader.buffered_bytes() <= limit + 1,
            "{} bytes of an unfinished line held with limit {limit}",
            reader.buffered_bytes()
        );
        match polled {
            None => {}
            Some(Ok(Some(frame))) => frames.push(frame),
            Some(Ok(None)) => return frames,
            Some(Err(error)) => panic!("an in-memory stream failed: {error}"),
        }
    }
}

/// An in-memory stream that delivers its bytes in chunks of varying size and sometimes stalls
/// (returns `Pending`, having woken itself) before a read.
struct Chunked {
    data: Vec<u8>,
    position: usize,
    schedule: Schedule,
}

impl Chunked {
    fn new(data: Vec<u8>, seed: u8) -> Self {
        Self {
            data,
            position: 0,
            schedule: Schedule::new(seed, 0),
        }
    }
}

impl AsyncRead for Chunked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.schedule.one_in(4) {
            context.waker().wake_by_ref();
            return Poll::Pending;
        }
        let remaining = self.data.len() - self.position;
        // Mostly small chunks (1 to a few hundred bytes), sometimes everything at once.
        let size = match self.schedule.next() % 8 {
            0 => remaining,
            scale => 1 + (self.schedule.next() % (scale * scale * 8)) as usize,
        };
        let size = size.min(remaining).min(buffer.remaining());
        let start = self.position;
        buffer.put_slice(&self.data[start..start + size]);
        self.position += size;
        Poll::Ready(Ok(()))
    }
}
