//! Property tests of the protocol crate's pure parts (proptest): whatever bytes arrive, the
//! stream stays usable and every well-formed request after them comes out as that request; and
//! handles, frames and handshake messages survive a round trip.
//!
//! The fuzz targets in `fuzz/` check the same parts coverage-guided; these run with every
//! `cargo test`, from random inputs, and shrink a failure to a small case.

use std::pin::Pin;
use std::task::{Context, Poll};

use bulkhead_protocol::brokers::NetworkBroker;
use bulkhead_protocol::frame::{Frame, LineReader};
use bulkhead_protocol::handle::{self, HANDLE_RANDOM_BYTES};
use bulkhead_protocol::handshake::{Control, Hello, Ready, SandboxPolicy};
use bulkhead_protocol::jsonrpc::{self, Message};
use bulkhead_protocol::trading::{Rails, TradingPolicy};
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, ReadBuf};

/// Frame limit of the stream tests: small enough that generated garbage is often oversized.
const LIMIT: usize = 512;

/// Delivers its bytes in the given chunk sizes (cycled), as a pipe or socket may.
struct Chunks {
    data: Vec<u8>,
    position: usize,
    sizes: Vec<usize>,
    next_size: usize,
}

impl AsyncRead for Chunks {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let size = self.sizes[self.next_size % self.sizes.len()];
        self.next_size += 1;
        let end = (self.position + size)
            .min(self.data.len())
            .min(self.position + buffer.remaining());
        let start = self.position;
        buffer.put_slice(&self.data[start..end]);
        self.position = end;
        Poll::Ready(Ok(()))
    }
}

fn read_frames(data: Vec<u8>, sizes: Vec<usize>, limit: usize) -> Vec<Frame> {
    let reader = Chunks {
        data,
        position: 0,
        sizes,
        next_size: 0,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut reader = LineReader::new(reader, limit);
        let mut frames = Vec::new();
        while let Some(frame) = reader.next_frame().await.unwrap() {
            assert!(reader.buffered_bytes() <= limit + 1);
            frames.push(frame);
        }
        frames
    })
}

/// What a peer may send before its requests: random bytes, broken JSON, JSON that is not a
/// message, very long lines.
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2000),
        "[ -~]{0,300}".prop_map(String::into_bytes),
        Just(br#"{"jsonrpc":"2.0","id":1,"method":"#.to_vec()),
        Just(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#.to_vec()),
        Just(br#"{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}"#.to_vec()),
        Just(b"\xff\xfe\r\r\r".to_vec()),
        (1..5 * LIMIT).prop_map(|length| vec![b'x'; length]),
    ]
}

fn id() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(|id| json!(id)),
        "[a-z0-9-]{1,20}".prop_map(|id| json!(id))
    ]
}

/// A well-formed request, in either era.
fn request() -> impl Strategy<Value = Message> {
    let method = prop_oneof![
        Just("ping".to_string()),
        Just("tools/list".to_string()),
        Just("tools/call".to_string()),
        "[a-z]{1,10}/[a-zA-Z]{1,10}",
    ];
    let params = prop_oneof![
        Just(None),
        ("[ -~]{0,20}", any::<i32>(), any::<bool>()).prop_map(|(name, n, flag)| Some(
            json!({"name": name, "arguments": {"n": n, "flag": flag}})
        )),
        Just(Some(json!({"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        }}))),
    ];
    (id(), method, params).prop_map(|(id, method, params)| Message::Request { id, method, params })
}

fn frame_of(message: &Message) -> Vec<u8> {
    let Message::Request { id, method, params } = message else {
        unreachable!("only requests are generated")
    };
    jsonrpc::to_frame(&jsonrpc::request(id, method, params.clone()))
}

proptest! {
    /// Any bytes in, then a newline: every request after them comes out as itself, in order,
    /// and every frame before them gets an answer (a message, or an error response to send).
    #[test]
    fn every_request_after_any_bytes_comes_out(
        garbage in garbage(),
        requests in proptest::collection::vec(request(), 1..5),
        sizes in proptest::collection::vec(1usize..700, 1..8),
        crlf in any::<bool>(),
    ) {
        let mut stream = garbage;
        stream.push(b'\n');
        for request in &requests {
            let mut frame = frame_of(request);
            if crlf {
                frame.insert(frame.len() - 1, b'\r');
            }
            stream.extend(frame);
        }
        let frames = read_frames(stream, sizes, LIMIT);
        prop_assert!(frames.len() >= requests.len());
        let (before, after) = frames.split_at(frames.len() - requests.len());
        for (frame, request) in after.iter().zip(&requests) {
            let Frame::Line(line) = frame else {
                return Err(TestCaseError::fail(format!("{request:?} came out as {frame:?}")));
            };
            prop_assert_eq!(&jsonrpc::parse_message(line), &Ok(request.clone()));
        }
        for frame in before {
            if let Frame::Line(line) = frame
                && let Err(error) = jsonrpc::parse_message(line)
            {
                let answer = error.to_response();
                let is_error_response = matches!(
                    jsonrpc::classify(answer),
                    Ok(Message::Error { .. })
                );
                prop_assert!(is_error_response);
            }
        }
    }

    /// Lines without newlines, joined by `\n` or `\r\n`, come back as they were (blank ones
    /// skipped, long ones reported), however the bytes are chunked.
    #[test]
    fn frames_round_trip(
        lines in proptest::collection::vec(proptest::collection::vec(any::<u8>().prop_filter("no newline", |byte| *byte != b'\n'), 0..40), 0..20),
        crlf in any::<bool>(),
        sizes in proptest::collection::vec(1usize..50, 1..8),
        limit in 1usize..40,
    ) {
        let terminator: &[u8] = if crlf { b"\r\n" } else { b"\n" };
        let stream: Vec<u8> = lines.iter().flat_map(|line| [line.as_slice(), terminator].concat()).collect();
        let expected: Vec<Frame> = lines
            .iter()
            .filter_map(|line| {
                let content = if crlf { line.as_slice() } else { line.strip_suffix(b"\r").unwrap_or(line) };
                if content.len() > limit {
                    Some(Frame::Oversized { bytes: line.len() + usize::from(crlf), limit })
                } else if content.iter().all(u8::is_ascii_whitespace) {
                    None
                } else {
                    Some(Frame::Line(content.to_vec()))
                }
            })
            .collect();
        prop_assert_eq!(read_frames(stream, sizes, limit), expected);
    }

    /// A handle formats, parses back to its parts, and is the only spelling of them.
    #[test]
    fn handles_round_trip(
        node in "[a-z0-9][a-z0-9-]{0,31}",
        random in any::<[u8; HANDLE_RANDOM_BYTES]>(),
    ) {
        let handle = handle::format_handle(&node, &random);
        let (parsed_node, hex) = handle::parse_handle(&handle).expect("a formatted handle parses");
        prop_assert_eq!(parsed_node, node.as_str());
        let bytes: Vec<u8> = (0..HANDLE_RANDOM_BYTES)
            .map(|index| u8::from_str_radix(&hex[2 * index..2 * index + 2], 16).unwrap())
            .collect();
        prop_assert_eq!(bytes.as_slice(), random.as_slice());
        prop_assert_eq!(handle::tag_of(&handle), &hex[..handle::TAG_LEN]);
    }

    /// Any string that parses as a handle is exactly the handle of its parts.
    #[test]
    fn parsed_handles_are_canonical(text in "[a-z0-9.-]{0,12}\\.[0-9a-fA-F]{30,34}") {
        if let Some((node, hex)) = handle::parse_handle(&text) {
            let random: [u8; HANDLE_RANDOM_BYTES] = std::array::from_fn(|index| {
                u8::from_str_radix(&hex[2 * index..2 * index + 2], 16).unwrap()
            });
            prop_assert_eq!(handle::format_handle(node, &random), text);
        }
    }

    /// Handshake messages are one line each and parse back to themselves.
    #[test]
    fn handshake_messages_round_trip(control in control()) {
        let line = control.to_line();
        prop_assert_eq!(line.iter().filter(|&&byte| byte == b'\n').count(), 1);
        prop_assert_eq!(line.last(), Some(&b'\n'));
        prop_assert_eq!(Control::from_line(&line[..line.len() - 1]).unwrap(), control);
    }
}

fn decimal() -> impl Strategy<Value = Option<Decimal>> {
    proptest::option::of(
        (any::<i64>(), 0u32..=28).prop_map(|(mantissa, scale)| Decimal::new(mantissa, scale)),
    )
}

fn control() -> impl Strategy<Value = Control> {
    let text = || "\\PC{0,30}";
    let sandbox = (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(max_memory_bytes, max_cpu_seconds, max_open_files, max_tasks, cpu_weight)| {
                SandboxPolicy {
                    max_memory_bytes,
                    max_cpu_seconds,
                    max_open_files,
                    max_tasks,
                    cpu_weight,
                }
            },
        );
    let trading = (
        decimal(),
        decimal(),
        proptest::option::of(proptest::collection::vec(text(), 0..4)),
        any::<bool>(),
        proptest::collection::vec(text(), 0..3),
    )
        .prop_map(
            |(max_order_notional, max_daily_notional, allowed_symbols, read_only, live_brokers)| {
                TradingPolicy {
                    rails: Rails {
                        max_order_notional,
                        max_daily_notional,
                        allowed_symbols,
                        read_only,
                    },
                    live_brokers,
                }
            },
        );
    let brokers = proptest::collection::vec(
        (text(), text(), text()).prop_map(|(name, trading_url, data_url)| NetworkBroker {
            name,
            trading_url,
            data_url,
        }),
        0..3,
    );
    let hello = (
        any::<u32>(),
        (text(), text(), text()),
        (
            any::<bool>(),
            proptest::option::of(any::<u64>()),
            any::<bool>(),
        ),
        sandbox,
        trading,
        (brokers, proptest::option::of(any::<u64>())),
    )
        .prop_map(
            |(
                protocol,
                (session_tag, log_filter, log_format),
                (test_tools, paper_seed, fixtures),
                sandbox,
                trading,
                (brokers, call_timeout_ms),
            )| {
                Control::Hello(Hello {
                    protocol,
                    session_tag,
                    log_filter,
                    log_format,
                    test_tools,
                    paper_seed,
                    sandbox,
                    fixtures,
                    trading,
                    brokers,
                    call_timeout_ms,
                })
            },
        );
    let ready = (
        any::<u32>(),
        any::<u32>(),
        text(),
        proptest::collection::vec(text(), 0..3),
    )
        .prop_map(|(protocol, pid, version, sandbox_degraded)| {
            Control::Ready(Ready {
                protocol,
                pid,
                version,
                sandbox_degraded,
            })
        });
    let refused = text().prop_map(|reason| Control::Refused { reason });
    prop_oneof![hello, ready, refused]
}
