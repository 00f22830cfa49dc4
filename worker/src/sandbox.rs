//! The worker's own sandbox, entered at the top of `main` before the worker reads anything.
//!
//! The supervisor already starts every worker with a cleared environment, `/dev/null` stdio,
//! only its socket inherited, resource limits and (where available) a cgroup and a uid of its
//! own; those bind from the first instruction whatever this binary does. What only the process
//! itself can do happens here, in this order, while it is still single-threaded:
//!
//! 1. [`process`]: stdin and stdout onto `/dev/null`, every descriptor above the socket closed,
//!    the environment cut to an allow-list, `PR_SET_NO_NEW_PRIVS`, not dumpable (so no other
//!    process of the same uid can ptrace it or read its `/proc` files), `RLIMIT_CORE` 0, and
//!    every capability dropped (bounding, ambient, inheritable, permitted, effective), which
//!    matters when the supervisor runs as root.
//! 2. [`filesystem`]: Landlock, where the kernel has it, denying the file system except a few
//!    device nodes, the worker's own `/proc` directory and (with a network broker) the name
//!    resolver's files, TCP `bind`, TCP `connect` except to its brokers' ports, and signals or
//!    abstract sockets outside the worker.
//! 3. [`seccomp`]: a filter that kills the process on system calls a worker never needs and
//!    that reach other processes or the kernel's administration (ptrace, mount, bpf, keyctl,
//!    module loading, new processes, namespaces...).
//!
//! A kernel without Landlock or seccomp filters is a *degradation*, reported in the handshake's
//! `ready` so the supervisor logs it; any other failure is fatal: the worker refuses to serve.

mod exec_policy;
mod filesystem;
mod process;
mod seccomp;

use bulkhead_protocol::brokers::WorkerNetwork;
use bulkhead_protocol::exec::ExecPolicy;
use bulkhead_protocol::handshake::SandboxPolicy;

/// What entering the sandbox found worth saying.
#[derive(Debug, Default)]
pub struct Report {
    /// Protections this kernel could not provide, one sentence each.
    pub degraded: Vec<String>,
    /// Environment variables outside the allow-list that were removed (names only).
    pub removed_variables: Vec<String>,
}

/// A protection that could not be applied although the kernel has it.
#[derive(Debug, thiserror::Error)]
#[error("cannot enter the sandbox: {step}: {source}")]
pub struct SandboxError {
    step: &'static str,
    source: std::io::Error,
}

impl SandboxError {
    fn new(step: &'static str, source: std::io::Error) -> Self {
        Self { step, source }
    }
}

/// Enter the sandbox, with the network `network` allows. Must run before any other thread
/// exists and before the worker reads from its socket.
pub fn enter(network: &WorkerNetwork) -> Result<Report, SandboxError> {
    let mut report = Report::default();
    process::redirect_stdio().map_err(|error| SandboxError::new("stdio", error))?;
    process::close_inherited_descriptors()
        .map_err(|error| SandboxError::new("closing inherited descriptors", error))?;
    report.removed_variables = process::scrub_environment();
    process::forbid_privileges().map_err(|error| SandboxError::new("prctl", error))?;
    process::drop_capabilities()
        .map_err(|error| SandboxError::new("dropping capabilities", error))?;
    if let Some(degraded) =
        filesystem::restrict(network).map_err(|error| SandboxError::new("landlock", error))?
    {
        report.degraded.push(degraded);
    }
    if let Some(degraded) =
        seccomp::install().map_err(|error| SandboxError::new("seccomp", error))?
    {
        report.degraded.push(degraded);
    }
    Ok(report)
}

/// Enter the part of the sandbox that survives `execve`, for a wrapped server the exec shim is
/// about to become (see [`exec_policy`]): descriptors above the report pipe closed,
/// `PR_SET_NO_NEW_PRIVS`, every capability dropped, Landlock and seccomp by `policy`. Non-dumpability and the
/// environment allow-list do not survive `execve` (the kernel makes a process dumpable again
/// when it executes an ordinary program), so they are not attempted here; the supervisor
/// builds the environment, and Landlock keeps other sessions away from `/proc/<pid>`.
pub fn enter_for_exec(policy: &ExecPolicy) -> Result<Report, SandboxError> {
    let mut report = Report::default();
    // Above the report pipe, which the shim closes itself once it has reported.
    let first = u32::try_from(bulkhead_protocol::exec::EXEC_REPORT_FD + 1).unwrap_or(4);
    process::close_descriptors_from(first)
        .map_err(|error| SandboxError::new("closing inherited descriptors", error))?;
    process::forbid_privileges().map_err(|error| SandboxError::new("prctl", error))?;
    process::drop_capabilities()
        .map_err(|error| SandboxError::new("dropping capabilities", error))?;
    if let Some(degraded) =
        exec_policy::restrict(policy).map_err(|error| SandboxError::new("landlock", error))?
    {
        report.degraded.push(degraded);
    }
    if let Some(degraded) =
        exec_policy::install_seccomp(policy).map_err(|error| SandboxError::new("seccomp", error))?
    {
        report.degraded.push(degraded);
    }
    Ok(report)
}

/// Check that the supervisor really applied the limits its hello names: a worker started by a
/// spawn path that forgot them refuses to serve rather than run unlimited.
pub fn check_limits(policy: &SandboxPolicy) -> Result<(), String> {
    for (name, resource, wanted) in [
        ("RLIMIT_AS", libc::RLIMIT_AS, policy.max_memory_bytes),
        ("RLIMIT_CPU", libc::RLIMIT_CPU, policy.max_cpu_seconds),
        ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE, policy.max_open_files),
        ("RLIMIT_CORE", libc::RLIMIT_CORE, 0),
    ] {
        let actual = process::soft_limit(resource)
            .map_err(|error| format!("cannot read {name}: {error}"))?;
        if actual > wanted {
            return Err(format!(
                "{name} is {} but the supervisor's policy is {}",
                describe_limit(actual),
                describe_limit(wanted)
            ));
        }
    }
    Ok(())
}

fn describe_limit(value: u64) -> String {
    if value == libc::RLIM_INFINITY {
        "unlimited".into()
    } else {
        value.to_string()
    }
}
