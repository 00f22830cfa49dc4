//! Test-only attacks on the worker's own sandbox, behind the `--test-tools` tools
//! `attempt_forbidden_syscall`, `memory_hog`, `fork_bomb` and `read_file`.
//!
//! Each probe does what a compromised or runaway tool would try, and reports what happened if
//! the worker survives. Every probe is bounded (a few forks, a capped allocation, harmless
//! arguments), so a broken sandbox fails a test instead of harming the machine.

use std::io::{self, Read};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

/// Most memory `memory_hog` asks for, in MiB, whatever its argument.
const MAX_HOG_MIB: u64 = 64 * 1024;
/// Most children `fork_bomb` tries to create.
const MAX_FORKS: u32 = 256;
/// How long a `fork_bomb` child lives if one is ever created.
const FORKED_CHILD_SECS: u32 = 2;
/// Most bytes `read_file` returns.
const MAX_READ_BYTES: usize = 64 * 1024;
const MIB: usize = 1 << 20;
const PAGE: usize = 4096;

/// A system call the seccomp filter must answer by killing the worker (except `clone3`, which
/// it answers with ENOSYS).
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ForbiddenSyscall {
    /// `ptrace(PTRACE_TRACEME)`.
    #[default]
    Ptrace,
    /// `ptrace(PTRACE_SEIZE, target)`.
    PtraceAttach,
    /// `process_vm_readv` of the target's memory.
    ProcessVmReadv,
    /// `kill(target, 0)`.
    KillOther,
    /// `mount` of a tmpfs.
    Mount,
    /// `unshare(CLONE_NEWUTS)`.
    Unshare,
    /// `bpf` with an invalid command.
    Bpf,
    /// `keyctl(KEYCTL_GET_KEYRING_ID)` of the session keyring.
    Keyctl,
    /// `execve` of a missing program.
    Execve,
    /// `fork()`.
    Fork,
    /// `setuid` to its own uid.
    Setuid,
    /// `io_uring_setup` with no entries.
    IoUringSetup,
    /// `ioctl(0, TIOCSTI)`.
    Tiocsti,
    /// `setsid()`: leaving its session and process group, where the supervisor's group
    /// signals would no longer reach it.
    Setsid,
    /// `setpgid(0, 0)` (glibc's `setpgrp()`): a process group of its own.
    Setpgid,
    /// `fcntl(F_SETOWN, target)` on a fresh socket: SIGIO/SIGURG for it would go to the target.
    FcntlSetown,
    /// `fcntl(F_SETOWN_EX, {F_OWNER_PID, target})` on a fresh socket.
    FcntlSetownEx,
    /// `fcntl(F_SETSIG, SIGTERM)` on a fresh socket: the signal its owner would get.
    FcntlSetsig,
    /// `fcntl(F_SETFL, O_ASYNC)` on a fresh socket (on a terminal, the kernel would make the
    /// terminal's foreground process group its owner).
    FcntlAsync,
    /// `ioctl(FIOSETOWN, &target)` on a fresh socket.
    IoctlFiosetown,
    /// `ioctl(SIOCSPGRP, &target)` on a fresh socket.
    IoctlSiocspgrp,
    /// `ioctl(FIOASYNC, &1)` on a fresh socket.
    IoctlFioasync,
    /// `clone3` with no arguments: answered with ENOSYS, not fatal.
    Clone3,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ForbiddenSyscallArgs {
    /// Which call to make (default `ptrace`).
    #[serde(default)]
    pub syscall: ForbiddenSyscall,
    /// Target process of the calls that take one (default: the supervisor).
    #[serde(default)]
    pub target_pid: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct MemoryHogArgs {
    /// MiB to allocate and touch.
    pub mb: u64,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ForkBombArgs {
    /// How many children to try to fork (default and maximum 256).
    #[serde(default)]
    pub count: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ReadFileArgs {
    /// Path to open and read.
    pub path: String,
    /// Most bytes to return (default and maximum 65536).
    #[serde(default)]
    pub max_bytes: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ConnectTcpArgs {
    /// `IP:PORT` to open a TCP connection to.
    pub addr: String,
}

/// Time a probe's connection attempt may take: loopback answers at once.
const CONNECT_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Open a TCP connection to `addr` and close it, or say why not.
pub fn connect_tcp(args: &ConnectTcpArgs) -> Result<String, String> {
    let addr: std::net::SocketAddr = args
        .addr
        .parse()
        .map_err(|error| format!("{} is not IP:PORT: {error}", args.addr))?;
    std::net::TcpStream::connect_timeout(&addr, CONNECT_PROBE_TIMEOUT)
        .map(|_| format!("connected to {addr}"))
        .map_err(|error| format!("cannot connect to {addr}: {error}"))
}

/// Make the forbidden call. Returns what it returned, if the worker is still alive to say so.
pub fn attempt_forbidden_syscall(args: &ForbiddenSyscallArgs) -> String {
    // SAFETY: getppid has no preconditions.
    let supervisor = unsafe { libc::getppid() };
    let target = args
        .target_pid
        .and_then(|pid| libc::pid_t::try_from(pid).ok())
        .unwrap_or(supervisor);
    // Every arm is a raw system call with integer arguments, null pointers, or pointers to
    // locals that outlive the call; none of them can touch memory this process relies on.
    let result = match args.syscall {
        // SAFETY: see above.
        ForbiddenSyscall::Ptrace => unsafe {
            libc::syscall(libc::SYS_ptrace, libc::PTRACE_TRACEME, 0, 0, 0)
        },
        // SAFETY: see above.
        ForbiddenSyscall::PtraceAttach => unsafe {
            libc::syscall(libc::SYS_ptrace, libc::PTRACE_SEIZE, target, 0, 0)
        },
        ForbiddenSyscall::ProcessVmReadv => {
            let mut buffer = [0u8; 8];
            let local = libc::iovec {
                iov_base: buffer.as_mut_ptr().cast(),
                iov_len: buffer.len(),
            };
            let remote = libc::iovec {
                iov_base: 0x40_0000 as *mut libc::c_void,
                iov_len: buffer.len(),
            };
            // SAFETY: see above; `local` points into `buffer`, which outlives the call.
            unsafe { libc::syscall(libc::SYS_process_vm_readv, target, &local, 1, &remote, 1, 0) }
        }
        // SAFETY: see above.
        ForbiddenSyscall::KillOther => unsafe { libc::syscall(libc::SYS_kill, target, 0) },
        // SAFETY: see above.
        ForbiddenSyscall::Mount => unsafe {
            libc::syscall(
                libc::SYS_mount,
                c"none".as_ptr(),
                c"/nonexistent-bulkhead-probe".as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null::<libc::c_void>(),
            )
        },
        // SAFETY: see above.
        ForbiddenSyscall::Unshare => unsafe {
            libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUTS)
        },
        // SAFETY: see above.
        ForbiddenSyscall::Bpf => unsafe {
            libc::syscall(libc::SYS_bpf, 0xffff, std::ptr::null::<libc::c_void>(), 0)
        },
        // SAFETY: see above.
        ForbiddenSyscall::Keyctl => unsafe {
            // KEYCTL_GET_KEYRING_ID of KEY_SPEC_SESSION_KEYRING, without creating it.
            libc::syscall(libc::SYS_keyctl, 0, -3, 0)
        },
        ForbiddenSyscall::Execve => {
            let argv = [std::ptr::null::<libc::c_char>()];
            // SAFETY: see above; `argv` is a null-terminated (empty) array that outlives the call.
            unsafe {
                libc::syscall(
                    libc::SYS_execve,
                    c"/nonexistent-bulkhead-probe".as_ptr(),
                    argv.as_ptr(),
                    argv.as_ptr(),
                )
            }
        }
        ForbiddenSyscall::Fork => return fork_once(),
        // SAFETY: see above.
        ForbiddenSyscall::Setuid => unsafe { libc::syscall(libc::SYS_setuid, libc::getuid()) },
        // SAFETY: see above.
        ForbiddenSyscall::IoUringSetup => unsafe {
            libc::syscall(
                libc::SYS_io_uring_setup,
                0,
                std::ptr::null_mut::<libc::c_void>(),
            )
        },
        ForbiddenSyscall::Tiocsti => {
            let byte = b'x';
            // SAFETY: see above; descriptor 0 is /dev/null, so nothing could be typed anywhere.
            unsafe { libc::syscall(libc::SYS_ioctl, 0, libc::TIOCSTI, &byte) }
        }
        // SAFETY: see above.
        ForbiddenSyscall::Setsid => unsafe { libc::syscall(libc::SYS_setsid) },
        // SAFETY: see above.
        ForbiddenSyscall::Setpgid => unsafe { libc::syscall(libc::SYS_setpgid, 0, 0) },
        ForbiddenSyscall::FcntlSetown
        | ForbiddenSyscall::FcntlSetownEx
        | ForbiddenSyscall::FcntlSetsig
        | ForbiddenSyscall::FcntlAsync
        | ForbiddenSyscall::IoctlFiosetown
        | ForbiddenSyscall::IoctlSiocspgrp
        | ForbiddenSyscall::IoctlFioasync => return signal_owner(args.syscall, target),
        // SAFETY: see above.
        ForbiddenSyscall::Clone3 => unsafe {
            libc::syscall(libc::SYS_clone3, std::ptr::null::<libc::c_void>(), 0)
        },
    };
    describe(args.syscall, result)
}

fn describe(syscall: ForbiddenSyscall, result: libc::c_long) -> String {
    if result < 0 {
        let error = io::Error::last_os_error();
        format!(
            "{syscall:?} returned {result}, errno {} ({error})",
            error.raw_os_error().unwrap_or(0)
        )
    } else {
        format!("{syscall:?} returned {result}")
    }
}

/// Make `target` (or, for `F_SETSIG` and `O_ASYNC`, whoever owns it) the receiver of a fresh
/// socket's I/O signals, then close it, so nothing is ever delivered.
fn signal_owner(syscall: ForbiddenSyscall, target: libc::pid_t) -> String {
    /// `struct f_owner_ex` (libc does not define it for every target).
    #[repr(C)]
    struct OwnerEx {
        kind: libc::c_int,
        pid: libc::pid_t,
    }
    let mut pair = [0 as libc::c_int; 2];
    // A socket, since FIOSETOWN and SIOCSPGRP are socket requests.
    // SAFETY: `pair` is a two-element array that outlives the call.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            pair.as_mut_ptr(),
        )
    } != 0
    {
        return describe(syscall, -1);
    }
    let fd = pair[0];
    // The kernel's numbers (the same on every Linux architecture); libc lacks some of them.
    const F_OWNER_PID: libc::c_int = 1;
    const F_SETSIG: libc::c_int = 10;
    const F_SETOWN_EX: libc::c_int = 15;
    const FIOSETOWN: libc::c_ulong = 0x8901;
    const SIOCSPGRP: libc::c_ulong = 0x8902;
    let owner = OwnerEx {
        kind: F_OWNER_PID,
        pid: target,
    };
    let one: libc::c_int = 1;
    // Every arm passes integers or pointers to locals that outlive the call.
    let result = match syscall {
        // SAFETY: see above.
        ForbiddenSyscall::FcntlSetown => unsafe {
            libc::syscall(libc::SYS_fcntl, fd, libc::F_SETOWN, target)
        },
        // SAFETY: see above.
        ForbiddenSyscall::FcntlSetownEx => unsafe {
            libc::syscall(libc::SYS_fcntl, fd, F_SETOWN_EX, &owner)
        },
        // SAFETY: see above.
        ForbiddenSyscall::FcntlSetsig => unsafe {
            libc::syscall(libc::SYS_fcntl, fd, F_SETSIG, libc::SIGTERM)
        },
        // SAFETY: see above.
        ForbiddenSyscall::FcntlAsync => unsafe {
            libc::syscall(libc::SYS_fcntl, fd, libc::F_SETFL, libc::O_ASYNC)
        },
        // SAFETY: see above.
        ForbiddenSyscall::IoctlFiosetown => unsafe {
            libc::syscall(libc::SYS_ioctl, fd, FIOSETOWN, &target)
        },
        // SAFETY: see above.
        ForbiddenSyscall::IoctlSiocspgrp => unsafe {
            libc::syscall(libc::SYS_ioctl, fd, SIOCSPGRP, &target)
        },
        // SAFETY: see above.
        _ => unsafe { libc::syscall(libc::SYS_ioctl, fd, libc::FIOASYNC, &one) },
    };
    let outcome = describe(syscall, result);
    for end in pair {
        // SAFETY: both descriptors were created above and are owned by nothing else.
        unsafe { libc::close(end) };
    }
    outcome
}

/// One fork whose child exits at once.
fn fork_once() -> String {
    // SAFETY: the child calls only `_exit`, which is async-signal-safe.
    match unsafe { libc::fork() } {
        -1 => describe(ForbiddenSyscall::Fork, -1),
        // SAFETY: in the child; `_exit` is async-signal-safe.
        0 => unsafe { libc::_exit(0) },
        child => {
            // SAFETY: reaps the child just created; a null status pointer is allowed.
            unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) };
            format!("Fork returned child pid {child}")
        }
    }
}

/// Allocate and touch `mb` MiB, one MiB at a time, until an allocation fails; then free it
/// all and report how far it got.
pub fn memory_hog(args: &MemoryHogArgs) -> Value {
    let requested = args.mb.min(MAX_HOG_MIB);
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut stopped_by = chunks
        .try_reserve_exact(usize::try_from(requested).unwrap_or(usize::MAX))
        .err()
        .map(|error| error.to_string());
    while stopped_by.is_none() && (chunks.len() as u64) < requested {
        let mut chunk: Vec<u8> = Vec::new();
        if let Err(error) = chunk.try_reserve_exact(MIB) {
            stopped_by = Some(error.to_string());
            break;
        }
        // Touch every page so the memory is really resident, not just reserved.
        for offset in (0..MIB).step_by(PAGE) {
            chunk.spare_capacity_mut()[offset].write(1);
        }
        chunks.push(chunk);
    }
    let allocated = chunks.len();
    drop(chunks);
    json!({
        "requested_mb": requested,
        "allocated_mb": allocated,
        "stopped": stopped_by.is_some(),
        "stopped_by": stopped_by,
    })
}

/// Fork up to `count` children that sleep briefly, then reap them; report how many forks
/// succeeded and what stopped the rest.
pub fn fork_bomb(args: &ForkBombArgs) -> Value {
    let count = args.count.unwrap_or(MAX_FORKS).min(MAX_FORKS);
    let mut children = Vec::new();
    let mut stopped_by = None;
    for _ in 0..count {
        // SAFETY: the child calls only `sleep` and `_exit`, both async-signal-safe.
        match unsafe { libc::fork() } {
            -1 => {
                stopped_by = Some(io::Error::last_os_error().to_string());
                break;
            }
            // SAFETY: in the child; see above.
            0 => unsafe {
                libc::sleep(FORKED_CHILD_SECS);
                libc::_exit(0)
            },
            child => children.push(child),
        }
    }
    for &child in &children {
        // SAFETY: reaps a child this function created; a null status pointer is allowed.
        unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) };
    }
    json!({
        "requested": count,
        "forked": children.len(),
        "stopped_by": stopped_by,
    })
}

/// Read the start of a file, or say why not.
pub fn read_file(args: &ReadFileArgs) -> Result<String, String> {
    let limit = args.max_bytes.unwrap_or(MAX_READ_BYTES).min(MAX_READ_BYTES);
    let path = &args.path;
    let file = std::fs::File::open(path).map_err(|error| format!("cannot open {path}: {error}"))?;
    let mut content = Vec::new();
    file.take(limit as u64)
        .read_to_end(&mut content)
        .map_err(|error| format!("cannot read {path}: {error}"))?;
    Ok(String::from_utf8_lossy(&content).into_owned())
}
