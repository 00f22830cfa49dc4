//! How every Bulkhead process logs: `tracing` events to stderr, never stdout, in one of three
//! formats shared by the supervisor and its workers.
//!
//! - `text`: one human-readable line per event, with a timestamp.
//! - `json`: one JSON object per event (for log shippers).
//! - `journald`: no timestamp (the journal adds its own) and an `<N>` syslog priority prefix,
//!   which journald reads from a service's stderr to set each line's priority.
//!
//! One event is one line in every format, whatever its fields hold: log fields carry text that
//! clients and wrapped servers chose (tool names, a server's stderr), and a newline, carriage
//! return or terminal escape in them must not start a line that reads as another event (an
//! audit line of another principal, say). JSON escapes control characters by itself; the text
//! and journald formats write fields through [`EscapedFields`], which escapes them in every
//! field and message, and quotes any field value that holds a space, `=` or quote, so a value
//! cannot pose as further fields either. Fixing it here, not where a field is logged, covers
//! every field of every process.
//!
//! A process whose logging must never hold up its work (the supervisor) installs the
//! [`buffered`] writer instead of writing stderr directly ([`init_buffered`]).
#![forbid(unsafe_code)]

pub mod buffered;
mod escape;

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

pub use escape::EscapedFields;

/// A log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
    Journald,
}

impl Format {
    /// Parse `text`, `json` or `journald`; anything else is `None`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "text" => Some(Format::Text),
            "json" => Some(Format::Json),
            "journald" => Some(Format::Journald),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
            Format::Journald => "journald",
        }
    }
}

/// Install the global subscriber: `filter` is an `EnvFilter` directive string.
pub fn init(filter: tracing_subscriber::EnvFilter, format: Format) {
    install(filter, format, std::io::stderr);
}

/// [`init`], with every line written by the [`buffered`] writer's thread instead of by the
/// code that logs; call [`buffered::flush`] before the process exits. Falls back to writing
/// stderr directly if the thread cannot be started.
pub fn init_buffered(filter: tracing_subscriber::EnvFilter, format: Format) {
    match buffered::Buffered::start(format) {
        Ok(writer) => install(filter, format, writer),
        Err(_) => init(filter, format),
    }
}

fn install<W>(filter: tracing_subscriber::EnvFilter, format: Format, writer: W)
where
    W: for<'writer> tracing_subscriber::fmt::MakeWriter<'writer> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false);
    let _ = match format {
        Format::Text => builder.fmt_fields(EscapedFields).try_init(),
        Format::Json => builder.json().try_init(),
        Format::Journald => builder
            .fmt_fields(EscapedFields)
            .event_format(Journald)
            .try_init(),
    };
}

/// Lines journald understands: `<priority>target: span: message fields`.
struct Journald;

impl<S, N> FormatEvent<S, N> for Journald
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let priority = match *event.metadata().level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        write!(writer, "<{priority}>{}: ", event.metadata().target())?;
        if let Some(scope) = context.event_scope() {
            for span in scope.from_root() {
                write!(writer, "{}", span.name())?;
                let extensions = span.extensions();
                if let Some(fields) =
                    extensions.get::<tracing_subscriber::fmt::FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(writer, "{{{fields}}}")?;
                }
                write!(writer, ": ")?;
            }
        }
        context
            .field_format()
            .format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_by_name() {
        for format in [Format::Text, Format::Json, Format::Journald] {
            assert_eq!(Format::parse(format.as_str()), Some(format));
        }
        assert_eq!(Format::parse("xml"), None);
    }
}
