//! What each signal does to the supervisor, and why.
//!
//! - SIGTERM (systemd, a host closing down), SIGINT (Ctrl-C), SIGHUP (the terminal went away):
//!   graceful shutdown — stop reading, stop every worker through its stop sequence, exit 0.
//! - A second such signal: exit at once with status 130. Workers still die: their
//!   parent-death signal fires when the supervisor's spawner thread ends with the process, and
//!   their sockets close.
//! - SIGPIPE: ignored by the Rust runtime; a closed stdout surfaces as a write error and ends
//!   the conversation like a closed stdin.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Exit status after a second, impatient signal.
pub const EXIT_IMMEDIATE: i32 = 130;

/// Cancel `shutdown` on the first terminating signal; exit on the second.
pub fn install(shutdown: CancellationToken) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
                _ = hup.recv() => "SIGHUP",
            };
            seen += 1;
            if seen == 1 {
                tracing::info!("{name}: shutting down gracefully (send again to exit at once)");
                shutdown.cancel();
            } else {
                tracing::warn!("{name} again: exiting at once");
                std::process::exit(EXIT_IMMEDIATE);
            }
        }
    });
    Ok(())
}
