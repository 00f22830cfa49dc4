//! The order journal: an append-only file of JSON lines, one when an order is about to be sent
//! (`"event": "intent"`), one with its outcome (`"outcome"`), and one for what needs a single
//! line (`"record"`: cancellations, refused and unconfirmed orders).
//!
//! Each line is written whole with one `write` on a file opened with `O_APPEND`, then
//! `fdatasync`ed before the order may go on: an intent that is not on disk is not sent, so after
//! a crash or a power cut the journal never holds less than what the brokers were sent. The
//! file is created `0600`: it names principals, symbols and amounts (never credentials: the
//! records carry none). At start the desk reads back today's lines to rebuild every
//! principal's daily notional ([`today_totals`]).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bulkhead_protocol::trading::OrderResult;
use rust_decimal::Decimal;
use serde_json::Value;

/// Permissions of a new journal: the supervisor's user only.
const JOURNAL_MODE: u32 = 0o600;

/// Longest journal line read back at start; longer ones (not ours) are skipped.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// An open journal.
#[derive(Clone)]
pub struct Journal {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("path", &self.path).finish()
    }
}

impl Journal {
    /// Opens (creating if needed) the journal at `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(JOURNAL_MODE)
            .open(path)?;
        Ok(Self {
            path: path.to_owned(),
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// Appends `line` and flushes it to disk; returns once it is there.
    pub async fn append(&self, line: &Value) -> std::io::Result<()> {
        let mut bytes = serde_json::to_vec(line)?;
        bytes.push(b'\n');
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || {
            let mut file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            file.write_all(&bytes)?;
            file.sync_data()
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// Every principal's notional on `day` (`YYYY-MM-DD`, UTC) according to the journal at
/// `path`: the intents of that day, less those whose outcome released them. An intent without
/// an outcome (the supervisor stopped in between) counts: the broker may have the order.
/// Returns the totals and how many lines could not be read.
pub fn today_totals(path: &Path, day: &str) -> std::io::Result<(HashMap<String, Decimal>, usize)> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok((HashMap::new(), 0));
        }
        Err(error) => return Err(error),
    };
    let mut intents: HashMap<String, (String, Decimal)> = HashMap::new();
    let mut unreadable = 0;
    for line in BufReader::new(file).split(b'\n') {
        let line = line?;
        if line.len() > MAX_LINE_BYTES {
            unreadable += 1;
            continue;
        }
        let Ok(value) = serde_json::from_slice::<Value>(&line) else {
            if !line.iter().all(u8::is_ascii_whitespace) {
                unreadable += 1;
            }
            continue;
        };
        let (Some(event), Some(intent_id)) = (value["event"].as_str(), value["intent_id"].as_str())
        else {
            continue;
        };
        match event {
            "intent"
                if value["time"]
                    .as_str()
                    .is_some_and(|time| time.starts_with(day)) =>
            {
                let principal = value["principal"].as_str().unwrap_or_default().to_owned();
                let amount = value["counted_notional"]
                    .as_str()
                    .and_then(|amount| amount.parse().ok())
                    .unwrap_or_default();
                intents.insert(intent_id.to_owned(), (principal, amount));
            }
            "outcome" => {
                let result: Option<OrderResult> =
                    serde_json::from_value(value["result"].clone()).ok();
                if result.is_some_and(|result| !result.counts()) {
                    intents.remove(intent_id);
                }
            }
            _ => {}
        }
    }
    let mut totals: HashMap<String, Decimal> = HashMap::new();
    for (principal, amount) in intents.into_values() {
        *totals.entry(principal).or_default() += amount;
    }
    Ok((totals, unreadable))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn lines_are_appended_whole_and_read_back_per_day() {
        let dir = std::env::temp_dir().join(format!("bulkhead-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("orders.jsonl");
        let _ = std::fs::remove_file(&path);
        let journal = Journal::open(&path).unwrap();
        let lines = [
            json!({"time": "2026-01-04T23:59:59Z", "event": "intent", "intent_id": "old", "principal": "alice", "counted_notional": "900"}),
            json!({"time": "2026-01-05T10:00:00Z", "event": "intent", "intent_id": "a", "principal": "alice", "counted_notional": "100.50"}),
            json!({"time": "2026-01-05T10:00:01Z", "event": "outcome", "intent_id": "a", "result": "accepted"}),
            json!({"time": "2026-01-05T10:01:00Z", "event": "intent", "intent_id": "b", "principal": "alice", "counted_notional": "300"}),
            json!({"time": "2026-01-05T10:01:01Z", "event": "outcome", "intent_id": "b", "result": "refused"}),
            json!({"time": "2026-01-05T10:02:00Z", "event": "intent", "intent_id": "c", "principal": "bob", "counted_notional": "7"}),
        ];
        for line in &lines {
            journal.append(line).await.unwrap();
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{not json\n")
            .unwrap();
        let (totals, unreadable) = today_totals(&path, "2026-01-05").unwrap();
        assert_eq!(totals["alice"], "100.50".parse::<Decimal>().unwrap());
        assert_eq!(totals["bob"], Decimal::from(7), "no outcome yet: it counts");
        assert_eq!(unreadable, 1);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, JOURNAL_MODE);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), lines.len() + 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
