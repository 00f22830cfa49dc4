//! What each signal does to the supervisor, and why.
//!
//! - SIGTERM (systemd, a host closing down), SIGINT (Ctrl-C): graceful shutdown — stop
//!   reading, stop every worker through its stop sequence, exit 0.
//! - SIGHUP: reload and upgrade in place (ARCHITECTURE.md, *Upgrading in place*): re-execute
//!   the binary on disk and take over every worker. A daemon has no terminal to lose, and a
//!   stdio host that goes away closes stdin, which ends the conversation anyway.
//! - A second such signal: exit at once with status 130. Workers still die: their
//!   parent-death signal fires when the supervisor's spawner thread ends with the process, and
//!   their sockets close.
//! - SIGPIPE: ignored by the Rust runtime; a closed stdout surfaces as a write error and ends
//!   the conversation like a closed stdin.
//! - SIGUSR1 (`bulkhead serve`): drain ([`crate::drain`]) — no new sessions, existing ones
//!   served until they end, then exit 0 (at the latest at `--drain-deadline`). Not SIGTERM,
//!   which systemd and Kubernetes send to mean "stop now, after our grace period"; not SIGHUP,
//!   which is kept for re-executing in place (a reload that keeps every session). Under
//!   `bulkhead stdio` there is no balancer to move clients, so SIGUSR1 is logged and ignored.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Exit status after a second, impatient signal.
pub const EXIT_IMMEDIATE: i32 = 130;

/// Run `on_drain` on every SIGUSR1 (it decides what a repeat means).
pub fn install_drain(on_drain: impl Fn() + Send + 'static) -> std::io::Result<()> {
    let mut usr1 = signal(SignalKind::user_defined1())?;
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            on_drain();
        }
    });
    Ok(())
}

/// Run `on_reload` on every SIGHUP (the reloader decides what a repeat means).
pub fn install_reload(on_reload: impl Fn() + Send + 'static) -> std::io::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            on_reload();
        }
    });
    Ok(())
}

/// Cancel `shutdown` on the first terminating signal; exit on the second.
pub fn install(shutdown: CancellationToken) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
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
