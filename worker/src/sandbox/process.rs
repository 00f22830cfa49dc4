//! Process hygiene only the process itself can apply: stdio, descriptors, environment,
//! privileges and capabilities.

use std::ffi::OsString;
use std::io;
use std::os::fd::AsRawFd;

use bulkhead_protocol::{ENV_WORKER_PROTOCOL, WORKER_SOCKET_FD};

/// The only variables a worker keeps. The supervisor passes nothing else; anything more came
/// from a launch path that forgot to clear the environment, and must not reach the tools.
const ENV_ALLOW_LIST: [&str; 1] = [ENV_WORKER_PROTOCOL];

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit capability sets in two 32-bit halves.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[cfg(target_env = "gnu")]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type Resource = libc::c_int;

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapabilityHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapabilityData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn check(result: libc::c_int) -> io::Result<()> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Put stdin and stdout on `/dev/null` whatever the launcher gave: stdout of a stdio
/// supervisor is the client's protocol stream, stdin the client's requests. stderr stays as
/// inherited, because it carries the worker's logs.
pub(super) fn redirect_stdio() -> io::Result<()> {
    let null = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for target in [libc::STDIN_FILENO, libc::STDOUT_FILENO] {
        // SAFETY: dup2 replaces descriptor 0 or 1 with a copy of an open descriptor; std's
        // stdin/stdout handles refer to the numbers, not to what they point at, so they stay
        // valid (and now read end-of-file / discard).
        check(unsafe { libc::dup2(null.as_raw_fd(), target) })?;
    }
    Ok(())
}

/// Close every descriptor above the socket. The supervisor marks everything else
/// close-on-exec; this catches a launcher that did not.
pub(super) fn close_inherited_descriptors() -> io::Result<()> {
    close_descriptors_from(u32::try_from(WORKER_SOCKET_FD + 1).unwrap_or(4))
}

/// Close every descriptor numbered `first` or above.
pub(super) fn close_descriptors_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range only closes descriptors. Nothing in this process owns one numbered
    // `first` or above yet (the sandbox and the exec shim run first in `main`, and std keeps
    // none open after start-up), so no Rust object is left holding a closed descriptor.
    let result = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) };
    if result == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() != Some(libc::ENOSYS) {
        return Err(error);
    }
    // Kernels before 5.9: list the table first (the listing's own descriptor is closed when
    // the iterator ends), then close.
    let open: Vec<i32> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| u32::try_from(fd).is_ok_and(|fd| fd >= first))
        .collect();
    for fd in open {
        // SAFETY: as above; EBADF for the listing's own, already closed, descriptor is fine.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// Remove every variable outside [`ENV_ALLOW_LIST`] and return their names. This protects
/// what the worker's libraries read later; `/proc/<pid>/environ` shows the block the process
/// started with, which is why the supervisor clears the environment before exec as well.
pub(super) fn scrub_environment() -> Vec<String> {
    let unexpected: Vec<OsString> = std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| !ENV_ALLOW_LIST.iter().any(|allowed| name == allowed))
        .collect();
    for name in &unexpected {
        // SAFETY: edition 2024 marks remove_var unsafe because another thread could read the
        // environment at the same time; the sandbox runs before the worker starts any thread.
        unsafe { std::env::remove_var(name) };
    }
    unexpected
        .into_iter()
        .map(|name| name.to_string_lossy().into_owned())
        .collect()
}

/// `PR_SET_NO_NEW_PRIVS` (execve can never grant privileges; also required for seccomp and
/// Landlock without CAP_SYS_ADMIN), not dumpable (no ptrace or `/proc/<pid>/mem`/`environ` by
/// other processes of the same uid, no core), and `RLIMIT_CORE` 0 (the supervisor sets it too).
pub(super) fn forbid_privileges() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })?;
    // SAFETY: as above.
    check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) })?;
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `zero` is a valid rlimit for the duration of the call.
    check(unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) })
}

/// Drop every capability. A worker of a root supervisor starts with all of them; a worker of
/// an unprivileged one with none in its effective, permitted and ambient sets, in which case
/// the bounding set cannot be (and need not be) changed: with no_new_privs and execve
/// forbidden by seccomp it can never gain any.
pub(super) fn drop_capabilities() -> io::Result<()> {
    // Bounding set first: dropping needs CAP_SETPCAP, which the last step removes.
    for capability in 0..64 {
        // SAFETY: prctl with integer arguments only.
        let result = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, capability, 0, 0, 0) };
        if result != 0 {
            match io::Error::last_os_error().raw_os_error() {
                // Past the kernel's last capability.
                Some(libc::EINVAL) => break,
                // No CAP_SETPCAP: an unprivileged worker; see above.
                Some(libc::EPERM) if capability == 0 => break,
                _ => return Err(io::Error::last_os_error()),
            }
        }
    }
    // SAFETY: prctl with integer arguments only.
    let cleared = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    // EINVAL: a kernel before 4.3, which has no ambient set.
    if cleared != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
        return Err(io::Error::last_os_error());
    }
    let header = CapabilityHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let none = [CapabilityData::default(); 2];
    // SAFETY: capset reads one header and, for version 3, two data structs; both live for the
    // duration of the call and have the kernel's layout.
    let result = unsafe { libc::syscall(libc::SYS_capset, &header, none.as_ptr()) };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The soft limit of `resource`.
pub(super) fn soft_limit(resource: Resource) -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into `limit`, which lives for the call.
    check(unsafe { libc::getrlimit(resource, &mut limit) })?;
    Ok(limit.rlim_cur)
}
