//! Field formatting for the text and journald formats that keeps one event on one line and
//! every field distinguishable from the next.
//!
//! Messages keep their words but have control characters (C0, DEL, C1) and the Unicode line
//! and paragraph separators escaped as `\n`, `\u{1b}`, …. Field values are written as they are
//! when they hold nothing but printable characters other than space, `"`, `=` and `\`, or when
//! they already are one well-formed quoted literal (what `?value` of a string gives); anything
//! else is quoted and escaped like a Rust string literal, so `tool="a outcome=ok"` is one field.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// Formats an event's or span's fields like tracing's default (`message key=value …`), escaped.
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = Visitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct Visitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl Visitor<'_> {
    fn write(&mut self, field: &Field, value: &str, quoted_already: bool) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        if name.starts_with("log.") {
            return;
        }
        let separator = if self.first { "" } else { " " };
        self.first = false;
        self.result = if name == "message" {
            write!(self.writer, "{separator}{}", Escaped(value))
        } else if quoted_already || is_bare(value) || is_quoted_literal(value) {
            write!(
                self.writer,
                "{separator}{}={}",
                name.trim_start_matches("r#"),
                value
            )
        } else {
            write!(
                self.writer,
                "{separator}{}={value:?}",
                name.trim_start_matches("r#")
            )
        };
    }
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.write(field, value, false);
        } else {
            // As tracing's default does: a string field is written quoted and escaped.
            self.write(field, &format!("{value:?}"), true);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, &format!("{value:?}"), false);
    }
}

/// A character that must never reach a log line as it is.
fn is_unsafe(character: char) -> bool {
    character.is_control() || matches!(character, '\u{2028}' | '\u{2029}')
}

/// A value that can stand unquoted: printable, and no space, quote, `=` or backslash.
fn is_bare(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| !is_unsafe(c) && !c.is_whitespace() && !matches!(c, '"' | '=' | '\\'))
}

/// One quoted literal with escapes, as `{:?}` of a string writes it: a quote at each end, no
/// unescaped quote between, nothing unsafe.
fn is_quoted_literal(value: &str) -> bool {
    let Some(inner) = value
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    else {
        return false;
    };
    let mut escaped = false;
    for character in inner.chars() {
        if is_unsafe(character) || (character == '"' && !escaped) {
            return false;
        }
        escaped = character == '\\' && !escaped;
    }
    !escaped
}

/// Text with every unsafe character escaped.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for character in self.0.chars() {
            if is_unsafe(character) {
                write!(f, "{}", character.escape_debug())?;
            } else {
                f.write_char(character)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_bare_only_when_they_cannot_pose_as_more() {
        assert!(is_bare("echo") && is_bare("/tmp/x") && is_bare("12.5"));
        for value in ["", "a b", "a=b", "a\"b", "a\nb", "a\u{1b}[2J", "a\\b"] {
            assert!(!is_bare(value), "{value:?}");
        }
    }

    #[test]
    fn only_one_whole_literal_counts_as_quoted() {
        assert!(is_quoted_literal(r#""a b \" c""#));
        assert!(is_quoted_literal(r#""""#));
        assert!(!is_quoted_literal(r#""a" b="c""#));
        assert!(!is_quoted_literal(r#""a\""#));
        assert!(!is_quoted_literal("\"a\nb\""));
        assert!(!is_quoted_literal("a"));
    }

    #[test]
    fn messages_keep_their_words_and_lose_their_line_breaks() {
        assert_eq!(
            Escaped("tool call\nINFO forged\r\u{1b}[2K\u{2028}").to_string(),
            "tool call\\nINFO forged\\r\\u{1b}[2K\\u{2028}"
        );
    }
}
