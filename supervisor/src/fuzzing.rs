//! Entry points of the fuzz targets (`fuzz/`) into the supervisor's parsers (feature
//! `fuzzing` only).
//!
//! Each is a thin wrapper around the function production runs, so a target tests exactly that
//! code; the targets and their oracles live in `fuzz/`, not here. A new target needs one more
//! wrapper (or re-export) in this file.

use std::ffi::OsString;
use std::path::Path;

use bulkhead_protocol::Era;
use hyper::header::HeaderMap;
use serde_json::Value;

use crate::config::{Cli, Command, Parsed};
use crate::http::headers::{self, HEADER_PROTOCOL_VERSION};
use crate::mcp::era;

pub use crate::mcp::request::{Forwarded, Incoming, Method, Notification, Request, ToolCall};
pub use crate::wrap::bridge::{ReplyFix, inbound, outbound};

/// A header's value as the `/mcp` endpoint reads it: trimmed, `=?base64?…?=` decoded; `Err`
/// for a value it refuses.
pub fn header(headers: &HeaderMap, name: &str) -> Result<Option<String>, String> {
    headers::header(headers, name)
}

/// The protocol version and era a POST to `/mcp` speaks, as the endpoint decides them: its
/// `MCP-Protocol-Version` header (or the version assumed without one), refused when it is
/// malformed, repeated or not a version we serve.
pub fn requested_version(headers: &HeaderMap) -> Result<(String, Era), String> {
    let header = headers::header(headers, HEADER_PROTOCOL_VERSION)?;
    era::of_header(header).map_err(|error| error.message)
}

/// The 2026-07-28 rule that every header mirroring the body agrees with it, for a body as the
/// endpoint parses it (`Err` if it does not parse); `header_params` are the called tool's
/// `(argument, x-mcp-header)` pairs.
pub fn check_modern_headers(
    headers: &HeaderMap,
    body: &[u8],
    version: &str,
    header_params: &[(String, String)],
) -> Result<(), String> {
    let message = Incoming::parse(body).map_err(|error| format!("{error:?}"))?;
    headers::check_modern_headers(headers, &message, version, header_params)
}

/// The 2026-07-28 rule that a request's `_meta` carries its version and capabilities.
pub fn check_request_meta(params: Option<&Value>) -> Result<(), String> {
    era::check_inline_meta(params).map_err(|error| error.message)
}

/// The endpoint's base64 decoder (the inside of `=?base64?…?=`).
pub fn base64_decode(encoded: &str) -> Option<Vec<u8>> {
    headers::base64_decode(encoded)
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

/// The same for `bulkhead stdio` (as `main` resolves it): `Ok` if it would start.
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
    match (options.resolve_stdio(), file_problems.is_empty()) {
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
