//! Entry points of the fuzz targets (`fuzz/`) into the supervisor's parsers (feature
//! `fuzzing` only).
//!
//! Each is a thin wrapper around the function production runs, so a target tests exactly that
//! code; the targets and their oracles live in `fuzz/`, not here. A new target needs one more
//! wrapper (or re-export) in this file.

use std::ffi::OsString;
use std::path::Path;

use bulkhead_protocol::jsonrpc::Message;
use hyper::header::HeaderMap;
use serde_json::Value;

use crate::config::{Cli, Command, Parsed};

pub use crate::wrap::bridge::{ReplyFix, ServerEra, inbound, outbound};

/// A header's value as the `/mcp` endpoint reads it: trimmed, `=?base64?…?=` decoded; `Err`
/// for a value it refuses.
pub fn header(headers: &HeaderMap, name: &str) -> Result<Option<String>, String> {
    crate::http::endpoint::header(headers, name)
}

/// The protocol version a POST to `/mcp` speaks (its `MCP-Protocol-Version` header, or the
/// version assumed without one).
pub fn requested_version(headers: &HeaderMap) -> Result<String, String> {
    crate::http::endpoint::requested_version(headers)
}

/// The 2026-07-28 rule that every header mirroring the body agrees with it; `header_params`
/// are the called tool's `(argument, x-mcp-header)` pairs.
pub fn check_modern_headers(
    headers: &HeaderMap,
    message: &Message,
    version: &str,
    header_params: &[(String, String)],
) -> Result<(), String> {
    crate::http::endpoint::check_modern_headers(headers, message, version, header_params)
}

/// The 2026-07-28 rule that a request's `_meta` carries its version and capabilities.
pub fn check_request_meta(params: Option<&Value>) -> Result<(), String> {
    crate::http::endpoint::check_request_meta(params)
}

/// The endpoint's base64 decoder (the inside of `=?base64?…?=`).
pub fn base64_decode(encoded: &str) -> Option<Vec<u8>> {
    crate::http::endpoint::base64_decode(encoded)
}

/// What `bulkhead check-config` does with a configuration file and extra flags (as `serve`
/// would run): the resolved configuration as it prints it (secrets redacted), or every
/// problem. Mirrors `check_config` in `main.rs`: file problems and semantic ones are one
/// report.
pub fn check_serve_config(file: &Path, flags: &[&str]) -> Result<Value, Vec<String>> {
    let (options, file_problems) = match layers("serve", file, flags)? {
        (
            Parsed::Run(Cli {
                command: Command::Serve(options),
            }),
            problems,
        ) => (options, problems),
        _ => return Err(vec!["not a serve command".into()]),
    };
    match (options.resolve(), file_problems.is_empty()) {
        (Ok((config, http)), true) => Ok(crate::config::redacted_summary(&config, &http)),
        (Ok(_), false) => Err(file_problems),
        (Err(problems), _) => Err(file_problems.into_iter().chain(problems).collect()),
    }
}

/// The same for `bulkhead stdio`: `Ok` if it would start.
pub fn check_stdio_config(file: &Path, flags: &[&str]) -> Result<(), Vec<String>> {
    let (options, file_problems) = match layers("stdio", file, flags)? {
        (
            Parsed::Run(Cli {
                command: Command::Stdio(options),
            }),
            problems,
        ) => (options, problems),
        _ => return Err(vec!["not a stdio command".into()]),
    };
    match (options.resolve(), file_problems.is_empty()) {
        (Ok(_), true) => Ok(()),
        (Ok(_), false) => Err(file_problems),
        (Err(problems), _) => Err(file_problems.into_iter().chain(problems).collect()),
    }
}

fn layers(
    subcommand: &str,
    file: &Path,
    flags: &[&str],
) -> Result<(Parsed, Vec<String>), Vec<String>> {
    let mut args: Vec<OsString> = vec!["bulkhead".into(), subcommand.into()];
    args.push("--config".into());
    args.push(file.into());
    args.extend(flags.iter().map(OsString::from));
    crate::config::parse_layers(args)
}
