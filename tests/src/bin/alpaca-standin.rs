//! `alpaca-standin`: the test suite's loopback Alpaca (see `bulkhead_tests::alpaca`) as a
//! process, for clients that are not Rust (the Python SDK tests).
//!
//! `alpaca-standin [--paper-seed N] KEY:SECRET...` serves one paper account per key pair on
//! 127.0.0.1, prints `http://127.0.0.1:PORT` on stdout once it listens, and runs until stdin
//! closes. Faults are injected with `POST /_standin/faults` (an `Injection` as JSON).

use std::io::{BufRead, Write};

use bulkhead_tests::alpaca::StandIn;

fn main() {
    let mut seed = None;
    let mut accounts = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--paper-seed" {
            seed = args.next().and_then(|seed| seed.parse().ok());
        } else if let Some((key, secret)) = arg.split_once(':') {
            accounts.push((key.to_owned(), secret.to_owned()));
        } else {
            eprintln!("alpaca-standin: expected KEY:SECRET or --paper-seed N, got {arg:?}");
            std::process::exit(64);
        }
    }
    let pairs: Vec<(&str, &str)> = accounts
        .iter()
        .map(|(key, secret)| (key.as_str(), secret.as_str()))
        .collect();
    let standin = StandIn::start(&pairs, seed);
    let mut stdout = std::io::stdout();
    // This process's stdout is its address for the test that started it, nothing else.
    let _ = writeln!(stdout, "{}", standin.url());
    let _ = stdout.flush();
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
}
