//! systemd integration: `Type=notify` messages, the watchdog, and socket activation.
//!
//! Notifications are datagrams to `$NOTIFY_SOCKET` (a path, or `@name` in the abstract
//! namespace): `READY=1` once the listeners are bound, `STOPPING=1` when draining starts,
//! `WATCHDOG=1` every half `$WATCHDOG_USEC` while the runtime is alive. Socket activation hands
//! listeners over as descriptors 3.. (`$LISTEN_FDS`, for `$LISTEN_PID`), named by
//! `$LISTEN_FDNAMES`; each is made close-on-exec at once so no worker inherits it, and served
//! like a listener the supervisor bound itself. Without these variables every function here does
//! nothing, so the same binary runs anywhere.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::socket::{AddressFamily, SockaddrLike, SockaddrStorage, getsockname};

use crate::http::Listener;

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// Sends notifications to the service manager, if there is one.
pub struct Notifier {
    target: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
}

impl Notifier {
    /// A notifier for `$NOTIFY_SOCKET`; inert without it.
    pub fn from_env() -> Self {
        let target = std::env::var("NOTIFY_SOCKET").ok().and_then(|path| {
            let address = match path.strip_prefix('@') {
                Some(name) => {
                    use std::os::linux::net::SocketAddrExt;
                    std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).ok()?
                }
                None => std::os::unix::net::SocketAddr::from_pathname(&path).ok()?,
            };
            Some((UnixDatagram::unbound().ok()?, address))
        });
        Self { target }
    }

    /// Send `state` (e.g. `READY=1`); failures are logged, never fatal.
    pub fn notify(&self, state: &str) {
        if let Some((socket, address)) = &self.target
            && let Err(error) = socket.send_to_addr(state.as_bytes(), address)
        {
            tracing::warn!("cannot notify the service manager ({state:?}): {error}");
        }
    }
}

/// `RELOADING=1` with the `MONOTONIC_USEC` of now, as `Type=notify-reload` expects at the
/// start of a reload.
pub fn reloading_message() -> String {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let now = u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000
        + u64::try_from(now.tv_nsec).unwrap_or(0) / 1_000;
    format!("RELOADING=1\nMONOTONIC_USEC={now}\nSTATUS=reloading in place")
}

/// Half the watchdog timeout systemd set for this process, if any.
pub fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Ping the watchdog every `interval` for as long as the runtime runs: a wedged runtime stops
/// the pings and systemd restarts the service.
pub fn spawn_watchdog(notifier: std::sync::Arc<Notifier>, interval: Duration) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        loop {
            ticker.tick().await;
            notifier.notify("WATCHDOG=1");
        }
    });
}

/// Listeners passed by socket activation, in order; empty when not socket-activated.
pub fn activated_listeners() -> io::Result<Vec<Listener>> {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(|pid| pid == std::process::id());
    let count: RawFd = match std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        Some(count) if for_us => count,
        _ => return Ok(Vec::new()),
    };
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|names| names.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    let mut listeners = Vec::new();
    for index in 0..count {
        let fd = LISTEN_FDS_START + index;
        let name = names
            .get(index as usize)
            .cloned()
            .unwrap_or_else(|| "unknown".into());
        listeners.push(adopt(fd, &name)?);
    }
    Ok(listeners)
}

fn adopt(fd: RawFd, name: &str) -> io::Result<Listener> {
    // SAFETY: systemd passed descriptors LISTEN_FDS_START..+LISTEN_FDS to this process (checked
    // through LISTEN_PID) for it to own; each is taken exactly once, here.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    fcntl(&owned, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(io::Error::from)?;
    let address: SockaddrStorage =
        getsockname(std::os::fd::AsRawFd::as_raw_fd(&owned)).map_err(io::Error::from)?;
    match address.family() {
        Some(AddressFamily::Inet | AddressFamily::Inet6) => {
            let listener = std::net::TcpListener::from(owned);
            listener.set_nonblocking(true)?;
            Ok(Listener::Tcp(tokio::net::TcpListener::from_std(listener)?))
        }
        Some(AddressFamily::Unix) => {
            let path = address
                .as_unix_addr()
                .and_then(|unix| unix.path().map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from(format!("(socket-activated {name})")));
            let listener = std::os::unix::net::UnixListener::from(owned);
            listener.set_nonblocking(true)?;
            Ok(Listener::Unix(
                tokio::net::UnixListener::from_std(listener)?,
                path,
            ))
        }
        other => Err(io::Error::other(format!(
            "socket-activated descriptor {fd} ({name}) has unsupported family {other:?}"
        ))),
    }
}
