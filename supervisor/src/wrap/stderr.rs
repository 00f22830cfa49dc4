//! A wrapped server's stderr: read line by line, logged at `debug`, and the last lines kept,
//! redacted, for the log line that reports a crash or a failed start.
//!
//! The built-in worker writes structured logs to the supervisor's stderr; a wrapped server
//! writes whatever it likes, possibly its own configuration and secrets. So its stderr is a
//! pipe read by the supervisor: every line passes through the [`Redactor`] — the values
//! provisioned for this session become `[redacted]`, and so does the value of anything shaped
//! like a credential (`API_KEY=…`, `token: …`, `Bearer …`) — before it is logged or kept. The
//! [`Tail`] holds at most [`TAIL_LINES`] lines and [`TAIL_BYTES`] bytes (lines are cut at
//! [`MAX_LINE_BYTES`] after redaction, never before, so a cut cannot split a secret), so a
//! chatty server costs bounded memory. Every line is the server's, whatever it looks like: the
//! exec shim reports on the sandbox through a pipe of its own (see `spawn`), never here, so a
//! server cannot forge those reports.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use zeroize::Zeroizing;

/// Lines of stderr kept per server.
pub const TAIL_LINES: usize = 50;
/// Bytes of stderr kept per server.
pub const TAIL_BYTES: usize = 8 * 1024;
/// Longest line kept, after redaction; the rest of a longer line is dropped.
pub const MAX_LINE_BYTES: usize = 1024;
/// Most bytes of one line read before it is redacted and cut to [`MAX_LINE_BYTES`]: room for
/// long secrets around the cut, while a line that never ends costs bounded memory.
const MAX_READ_LINE_BYTES: usize = 16 * 1024;
/// Shortest provisioned value that is redacted wherever it appears (shorter ones would redact
/// ordinary words and digits).
const MIN_SECRET_LEN: usize = 4;
/// What a redacted value becomes.
const REDACTED: &str = "[redacted]";
/// Words that make a `NAME=value` or `name: value` look like a credential.
const SENSITIVE_WORDS: [&str; 9] = [
    "KEY",
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "AUTH",
    "CREDENTIAL",
    "COOKIE",
    "SESSION",
];

/// Replaces secrets in a line.
#[derive(Default)]
pub struct Redactor {
    /// Values provisioned for the session, longest first.
    secrets: Vec<Zeroizing<String>>,
    /// Names of the provisioned variables.
    names: Vec<String>,
}

impl Redactor {
    pub fn new(provisioned: &[(String, Zeroizing<String>)]) -> Self {
        let mut secrets: Vec<Zeroizing<String>> = provisioned
            .iter()
            .filter(|(_, value)| value.len() >= MIN_SECRET_LEN)
            .map(|(_, value)| value.clone())
            .collect();
        secrets.sort_by_key(|value| std::cmp::Reverse(value.len()));
        Self {
            secrets,
            names: provisioned.iter().map(|(name, _)| name.clone()).collect(),
        }
    }

    /// `line` — the first [`MAX_READ_LINE_BYTES`] of a longer one when `truncated` — redacted
    /// first, then cut to [`MAX_LINE_BYTES`], so no cut ever splits a secret: a secret's start
    /// left at the end of a truncated line is removed too.
    fn redact_and_cut(&self, line: &str, truncated: bool) -> String {
        let mut text = self.redact(line);
        if truncated {
            let partial = self.partial_secret_suffix(&text);
            text.truncate(text.len() - partial);
        }
        if text.len() > MAX_LINE_BYTES || truncated {
            let mut cut = text.len().min(MAX_LINE_BYTES);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str(" […]");
        }
        text
    }

    /// Length of the longest end of `text` that is the start of a provisioned value.
    fn partial_secret_suffix(&self, text: &str) -> usize {
        self.secrets
            .iter()
            .filter_map(|secret| {
                (1..secret.len())
                    .rev()
                    .find(|&length| text.as_bytes().ends_with(&secret.as_bytes()[..length]))
            })
            .max()
            .unwrap_or(0)
    }

    /// `line` with every secret and credential-shaped value replaced.
    pub fn redact(&self, line: &str) -> String {
        let mut line = line.to_string();
        for secret in &self.secrets {
            if line.contains(secret.as_str()) {
                line = line.replace(secret.as_str(), REDACTED);
            }
        }
        self.redact_assignments(&line)
    }

    /// Values after `NAME=`, `NAME: ` or `Bearer ` where the name looks sensitive.
    fn redact_assignments(&self, line: &str) -> String {
        let words: Vec<&str> = line.split(' ').collect();
        let mut out: Vec<String> = Vec::with_capacity(words.len());
        let mut hide_next = false;
        for word in words {
            if word.eq_ignore_ascii_case("bearer") || word.eq_ignore_ascii_case("basic") {
                hide_next = true;
                out.push(word.to_string());
                continue;
            }
            if hide_next && !word.is_empty() {
                out.push(REDACTED.to_string());
                hide_next = false;
                continue;
            }
            if let Some((name, value)) = word.split_once('=')
                && !value.is_empty()
                && self.is_sensitive(name)
            {
                out.push(format!("{name}={REDACTED}"));
                continue;
            }
            if let Some(name) = word.strip_suffix(':')
                && self.is_sensitive(name)
            {
                hide_next = true;
            }
            out.push(word.to_string());
        }
        out.join(" ")
    }

    fn is_sensitive(&self, name: &str) -> bool {
        let name = name.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_');
        if name.is_empty() {
            return false;
        }
        let upper = name.to_ascii_uppercase();
        self.names
            .iter()
            .any(|provisioned| provisioned.eq_ignore_ascii_case(name))
            || SENSITIVE_WORDS.iter().any(|word| upper.contains(word))
    }
}

/// The last lines of a server's stderr, already redacted.
#[derive(Default)]
pub struct Tail {
    lines: VecDeque<String>,
    bytes: usize,
}

impl Tail {
    fn push(&mut self, line: String) {
        self.bytes += line.len();
        self.lines.push_back(line);
        while self.lines.len() > TAIL_LINES || (self.bytes > TAIL_BYTES && self.lines.len() > 1) {
            if let Some(dropped) = self.lines.pop_front() {
                self.bytes -= dropped.len();
            }
        }
    }

    /// The kept lines, oldest first, one per line.
    pub fn text(&self) -> String {
        self.lines
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A server's stderr tail, shared between its reader task and its actor.
pub type SharedTail = Arc<Mutex<Tail>>;

/// How long, after a wrapped server ended, its stderr reader gets to collect the last lines.
const STDERR_SETTLE: Duration = Duration::from_millis(200);

/// One server's stderr being read: its tail and the task that reads it.
pub struct Collected {
    tail: SharedTail,
    reader: tokio::task::JoinHandle<()>,
}

impl Collected {
    /// Log that the server `what` (crashed, failed to start) with the redacted tail of its
    /// stderr, once its reader has had a moment to collect the last lines (it ends when every
    /// process holding the pipe is gone).
    pub async fn log(self, tag: &str, pid: u32, what: &str) {
        self.log_with_hint(tag, pid, what, |_| None).await;
    }

    /// As [`Collected::log`], followed by the sentence `hint` makes of the tail, if any (see
    /// [`super::hints`]).
    pub async fn log_with_hint(
        self,
        tag: &str,
        pid: u32,
        what: &str,
        hint: impl FnOnce(&str) -> Option<String>,
    ) {
        let _ = tokio::time::timeout(STDERR_SETTLE, self.reader).await;
        let text = self.tail.lock().map(|tail| tail.text()).unwrap_or_default();
        let hint = hint(&text)
            .map(|hint| format!("\n{hint}"))
            .unwrap_or_default();
        if text.is_empty() {
            tracing::warn!(session = %tag, pid, "wrapped server {what}; it wrote nothing to stderr{hint}");
        } else {
            tracing::warn!(
                session = %tag,
                pid,
                "wrapped server {what}; the last lines of its stderr (redacted):\n{text}{hint}"
            );
        }
    }
}

/// Read `stderr` until it closes (every process of the tree has exited), logging each line at
/// `debug` under the session's tag and keeping the tail.
pub fn collect(
    mut stderr: tokio::net::unix::pipe::Receiver,
    tag: String,
    pid: u32,
    redactor: Redactor,
) -> Collected {
    let tail = SharedTail::default();
    let writer = tail.clone();
    let task = tokio::spawn(async move {
        let mut buffer = vec![0u8; 4096];
        let mut line: Vec<u8> = Vec::new();
        let mut overlong = false;
        loop {
            let read = match stderr.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            for &byte in &buffer[..read] {
                if byte == b'\n' {
                    emit(&writer, &redactor, &tag, pid, &line, overlong);
                    line.clear();
                    overlong = false;
                } else if line.len() < MAX_READ_LINE_BYTES {
                    line.push(byte);
                } else {
                    overlong = true;
                }
            }
        }
        if !line.is_empty() {
            emit(&writer, &redactor, &tag, pid, &line, overlong);
        }
    });
    Collected { tail, reader: task }
}

fn emit(tail: &SharedTail, redactor: &Redactor, tag: &str, pid: u32, line: &[u8], overlong: bool) {
    let text = String::from_utf8_lossy(line);
    let text = redactor.redact_and_cut(text.trim_end_matches('\r'), overlong);
    tracing::debug!(session = %tag, pid, "server stderr: {text}");
    tail.lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provisioned_values_and_credential_shapes_are_redacted() {
        let redactor = Redactor::new(&[
            ("ACME_TOKEN".into(), Zeroizing::new("s3cr3t-value".into())),
            ("SHORT".into(), Zeroizing::new("ab".into())),
        ]);
        assert_eq!(
            redactor.redact("connecting with s3cr3t-value now"),
            "connecting with [redacted] now"
        );
        assert_eq!(
            redactor.redact("ACME_TOKEN=abc other=1"),
            "ACME_TOKEN=[redacted] other=1"
        );
        assert_eq!(redactor.redact("api_key=xyz"), "api_key=[redacted]");
        assert_eq!(redactor.redact("password: hunter2"), "password: [redacted]");
        assert_eq!(
            redactor.redact("Authorization: Bearer abc.def"),
            "Authorization: Bearer [redacted]"
        );
        assert_eq!(
            redactor.redact("got Bearer abc.def"),
            "got Bearer [redacted]"
        );
        assert_eq!(redactor.redact("ab is short"), "ab is short");
    }

    #[test]
    fn lines_are_redacted_before_they_are_cut() {
        let secret = "sk-live-0123456789abcdef0123456789abcdef0123";
        let redactor = Redactor::new(&[("ACME".into(), Zeroizing::new(secret.into()))]);
        let straddling = format!("{} {secret} end", "p".repeat(1000));
        let kept = redactor.redact_and_cut(&straddling, false);
        assert!(kept.ends_with(" [redacted] end"), "{kept}");
        let long = format!("{} {secret}", "p".repeat(MAX_LINE_BYTES));
        let kept = redactor.redact_and_cut(&long, false);
        assert!(kept.len() <= MAX_LINE_BYTES + " […]".len() && kept.ends_with(" […]"));
        assert!(!kept.contains("sk-"), "{kept}");
        // A line truncated at the read limit inside a secret (redaction may have shrunk what
        // came before, so that end can fall within the kept bytes) loses the secret's start.
        let truncated = format!("{secret} {}", &secret[..30]);
        let kept = redactor.redact_and_cut(&truncated, true);
        assert_eq!(kept, "[redacted]  […]");
    }

    #[test]
    fn the_tail_keeps_the_last_lines_within_its_bounds() {
        let mut tail = Tail::default();
        for n in 0..(TAIL_LINES + 10) {
            tail.push(format!("line {n}"));
        }
        assert_eq!(tail.lines.len(), TAIL_LINES);
        assert!(tail.text().ends_with(&format!("line {}", TAIL_LINES + 9)));
        let mut tail = Tail::default();
        for _ in 0..20 {
            tail.push("x".repeat(MAX_LINE_BYTES));
        }
        assert!(tail.bytes <= TAIL_BYTES);
    }
}
