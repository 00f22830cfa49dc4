//! Re-executing the supervisor in place (ARCHITECTURE.md, *Upgrading in place*): the state's
//! memory file, a process's start time, the pre-flight run of the new binary and the exec.
//!
//! Both the pre-flight and the exec run on the [`super::Host`] — the main thread, which forked
//! every worker — so the exec ends no thread that is a worker's parent. Descriptors lose
//! close-on-exec only on the host, just before the exec, and get it back if the exec fails, so
//! no process started meanwhile can inherit one. The pre-flight run itself is started in
//! [`super`], like every process.

use std::ffi::{CString, OsString};
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

/// The descriptor the pre-flight run finds the state on.
pub const PREFLIGHT_STATE_FD: RawFd = 3;

/// What the host executes.
#[derive(Debug, Clone)]
pub struct ExecPlan {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// The whole environment of the new image.
    pub env: Vec<(OsString, OsString)>,
    /// Descriptors the new image needs: they lose close-on-exec just before the exec.
    pub inherit: Vec<RawFd>,
}

/// A fresh anonymous memory file holding `contents`, rewound, close-on-exec.
pub fn memory_file(name: &str, contents: &[u8]) -> io::Result<std::fs::File> {
    let name = CString::new(name).map_err(io::Error::other)?;
    // SAFETY: `name` is a valid NUL-terminated string; memfd_create returns a new descriptor
    // or -1, and nothing else is touched.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by memfd_create and is owned by nothing else.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    file.write_all(contents)?;
    file.rewind()?;
    Ok(file)
}

/// Read at most `limit` bytes of the file on descriptor `fd`, from its start, taking ownership
/// of the descriptor (it is closed afterwards).
///
/// # Safety
/// `fd` must be an open descriptor nothing else owns (one inherited across the exec).
pub unsafe fn read_inherited(fd: RawFd, limit: u64) -> io::Result<Vec<u8>> {
    // SAFETY: the caller promises `fd` is open and owned by nobody else.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    file.rewind()?;
    let mut bytes = Vec::new();
    file.take(limit).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Give an inherited descriptor close-on-exec back, so no process started later inherits it.
pub fn keep_private(fd: RawFd) -> io::Result<()> {
    set_cloexec(fd, true)
}

/// A process's start time in clock ticks since boot (`/proc/<pid>/stat`, field 22): with the
/// pid, it names one process for good. `None` when there is no such process.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count after its last `)`.
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 3 is the first after the name; field 22 is the 20th.
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// The file the supervisor was started from: `/proc/self/exe` names it even after it was
/// replaced (then with ` (deleted)` appended), which is exactly the path a new binary is at.
pub fn own_path() -> io::Result<PathBuf> {
    let link = std::fs::read_link("/proc/self/exe")?;
    let bytes = link.as_os_str().as_bytes();
    let trimmed = bytes.strip_suffix(b" (deleted)").unwrap_or(bytes);
    Ok(PathBuf::from(std::ffi::OsStr::from_bytes(trimmed)))
}

/// The hidden command-line flag of the pre-flight run.
pub const PREFLIGHT_FLAG: &str = "--reload-preflight";

/// Execute `plan` on this thread; returns only if the exec failed, with close-on-exec and the
/// SIGHUP handler as they were.
pub(super) fn exec(plan: &ExecPlan) -> io::Error {
    let strings = (|| -> Result<_, std::ffi::NulError> {
        let program = CString::new(plan.program.as_os_str().as_bytes())?;
        let mut argv = vec![program.clone()];
        for arg in &plan.args {
            argv.push(CString::new(arg.as_bytes())?);
        }
        let env = plan
            .env
            .iter()
            .map(|(name, value)| {
                let mut pair = name.as_bytes().to_vec();
                pair.push(b'=');
                pair.extend_from_slice(value.as_bytes());
                CString::new(pair)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((program, argv, env))
    })();
    let (program, argv, env) = match strings {
        Ok(strings) => strings,
        Err(error) => return io::Error::other(error),
    };
    for &fd in &plan.inherit {
        if let Err(error) = set_cloexec(fd, false) {
            restore_cloexec(&plan.inherit);
            return error;
        }
    }
    // An ignored signal stays ignored across exec: a SIGHUP before the new image installs its
    // handler must not terminate the supervisor (the default action).
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: installing SIG_IGN runs no code in signal context.
    let previous = unsafe { sigaction(Signal::SIGHUP, &ignore) };
    bulkhead_logging::buffered::flush();
    let error = match nix::unistd::execve(&program, &argv, &env) {
        Ok(never) => match never {},
        Err(errno) => io::Error::from(errno),
    };
    if let Ok(previous) = previous {
        // SAFETY: puts back the handler tokio installed, exactly as it was.
        let _ = unsafe { sigaction(Signal::SIGHUP, &previous) };
    }
    restore_cloexec(&plan.inherit);
    error
}

fn restore_cloexec(fds: &[RawFd]) {
    for &fd in fds {
        // Descriptors 0-2 never had it.
        if fd > 2 {
            let _ = set_cloexec(fd, true);
        }
    }
}

fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: only the descriptor's flags change; an invalid `fd` is reported as EBADF.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let flags = if on {
        FdFlag::FD_CLOEXEC
    } else {
        FdFlag::empty()
    };
    fcntl(borrowed, FcntlArg::F_SETFD(flags))?;
    let _ = borrowed.as_raw_fd();
    Ok(())
}
