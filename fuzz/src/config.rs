//! `config`: a TOML configuration file through the layers (file → flags → validated config),
//! as `bulkhead check-config` and `bulkhead stdio --config` run them.
//!
//! Input: byte 0 picks the flags given beside the file; the rest is the file. Oracles beyond
//! "never panics and never exits": the same file gives the same answer twice; an unknown
//! top-level key is always reported by name; a value the file sets and no flag overrides is
//! the value the resolved configuration has, and a flag beats the file.

use std::io::Write;
use std::path::PathBuf;

use bulkhead_supervisor::fuzzing;
use serde_json::Value;

use crate::input::Cursor;

/// The file's top-level keys and tables (`supervisor/src/config/layers.rs`).
const KNOWN_TOP_LEVEL: [&str; 9] = [
    "node",
    "log",
    "worker",
    "sessions",
    "credentials",
    "pool",
    "trading",
    "http",
    "principals",
];

/// `--max-sessions` given on the command line in some cases.
const FLAG_MAX_SESSIONS: u64 = 7;

pub fn check(data: &[u8]) {
    let mut input = Cursor::new(data);
    let choice = input.byte();
    let text = input.rest();
    let path = config_file(text);
    let worker = std::env::current_exe().expect("the fuzz target's own path");
    let worker = worker.to_str().expect("a UTF-8 build path");
    let mut flags = vec!["--worker", worker];
    if choice & 1 == 1 {
        flags.push("--no-auth");
    }
    let max_sessions_flag = format!("--max-sessions={FLAG_MAX_SESSIONS}");
    if choice & 2 == 2 {
        flags.push(&max_sessions_flag);
    }

    let serve = fuzzing::check_serve_config(&path, &flags);
    assert_eq!(
        fuzzing::check_serve_config(&path, &flags),
        serve,
        "the same file gave another answer"
    );
    let stdio = fuzzing::check_stdio_config(&path, &flags[..2]);

    let Some(table) = std::str::from_utf8(text)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
    else {
        assert!(
            serve.is_err() && stdio.is_err(),
            "an unparsable file was accepted"
        );
        return;
    };
    for key in table.keys() {
        if !KNOWN_TOP_LEVEL.contains(&key.as_str()) {
            for result in [serve.as_ref().err(), stdio.as_ref().err()] {
                let problems = result.expect("a file with an unknown key was accepted");
                assert!(
                    problems
                        .iter()
                        .any(|problem| problem.contains(key.as_str())),
                    "unknown key {key:?} not named in {problems:?}"
                );
            }
        }
    }
    if let Ok(summary) = &serve {
        file_values_apply(&table, summary, choice & 2 == 2);
    }
}

/// Values of the file that no flag overrides are the resolved ones.
fn file_values_apply(table: &toml::Table, summary: &Value, max_sessions_flag: bool) {
    let sessions = table.get("sessions").and_then(toml::Value::as_table);
    let file_max = sessions
        .and_then(|sessions| sessions.get("max"))
        .and_then(toml::Value::as_integer);
    let resolved_max = summary["sessions"]["max"].as_u64();
    if max_sessions_flag {
        assert_eq!(
            resolved_max,
            Some(FLAG_MAX_SESSIONS),
            "the file beat a flag"
        );
    } else if let Some(file_max) = file_max {
        assert_eq!(resolved_max, u64::try_from(file_max).ok(), "{summary}");
    }
    if let Some(node) = table.get("node").and_then(toml::Value::as_str) {
        assert_eq!(summary["node"].as_str(), Some(node));
    }
    let pool = table
        .get("pool")
        .and_then(toml::Value::as_table)
        .and_then(|pool| pool.get("size"))
        .and_then(toml::Value::as_integer);
    if let Some(size) = pool {
        assert_eq!(summary["pool"]["size"].as_u64(), u64::try_from(size).ok());
    }
}

/// The input written to this process's own configuration file.
fn config_file(text: &[u8]) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("bulkhead-fuzz-config-{}.toml", std::process::id()));
    let mut file = std::fs::File::create(&path).expect("a temporary file");
    file.write_all(text).expect("a temporary file");
    path
}
