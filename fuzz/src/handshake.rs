//! `handshake`: the hello / ready / refused lines on a worker's private socket.
//!
//! Input: the bytes a peer sends before any MCP traffic; the first line is read as the worker
//! and the supervisor read it (a `LineReader` limited to `MAX_HANDSHAKE_BYTES`). Oracles: a line
//! that parses serializes to exactly one line that parses to the same message, and that line
//! passes through the same reader unchanged.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bulkhead_protocol::frame::{Frame, LineReader};
use bulkhead_protocol::handshake::{Control, MAX_HANDSHAKE_BYTES};

pub fn check(data: &[u8]) {
    let Some(Frame::Line(line)) = first_frame(data) else {
        return;
    };
    let Ok(control) = Control::from_line(&line) else {
        return;
    };
    let written = control.to_line();
    let (last, body) = written.split_last().expect("a line is never empty");
    assert_eq!(*last, b'\n');
    assert!(!body.contains(&b'\n'), "a handshake message spans lines");
    assert_eq!(
        Control::from_line(body).as_ref().ok(),
        Some(&control),
        "{}",
        String::from_utf8_lossy(body)
    );
    if body.len() <= MAX_HANDSHAKE_BYTES {
        assert_eq!(first_frame(&written), Some(Frame::Line(body.to_vec())));
    }
}

/// The first frame of `data`, read as a handshake is (an in-memory read never stalls).
fn first_frame(data: &[u8]) -> Option<Frame> {
    let mut reader = LineReader::new(data, MAX_HANDSHAKE_BYTES);
    let mut next = pin!(reader.next_frame());
    match next.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => result.expect("an in-memory read cannot fail"),
        Poll::Pending => panic!("an in-memory read stalled"),
    }
}
