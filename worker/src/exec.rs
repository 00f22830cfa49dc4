//! The exec shim (`bulkhead-worker --exec -- PATH ARGV0 ARGS...`): confine this process, then
//! become a wrapped stdio MCP server with `execve`.
//!
//! The supervisor starts the shim, not the wrapped server, because the rules that must bind a
//! program we did not write — no_new_privs, no capabilities, Landlock, seccomp — can only be
//! applied by the process on itself, and all of them survive `execve`. The shim refuses to run
//! unless launched by a supervisor (the protocol variable, and a socket on descriptors 0 and 1),
//! reads its [`ExecPolicy`] from [`ENV_EXEC_POLICY`], enters the sandbox, removes both Bulkhead
//! variables from the environment and executes the server with whatever environment is left,
//! which the supervisor built for this session alone. The pid stays the same, so the process the
//! supervisor spawned is the one on the socket. What the kernel could not enforce is reported on
//! the report pipe ([`EXEC_REPORT_FD`]), which the shim closes before `execve`: the server
//! never holds it, so it cannot forge a report (its stderr is just its stderr).

use std::ffi::{CString, OsString};
use std::io::Write;
use std::os::fd::FromRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::process::ExitCode;

use bulkhead_protocol::exec::{
    ENV_EXEC_POLICY, EXEC_REPORT_FD, EXIT_EXEC_FAILED, EXIT_EXEC_REFUSED, ExecPolicy, ExecReport,
};
use bulkhead_protocol::{ENV_WORKER_PROTOCOL, EXIT_NOT_SUPERVISED};

use crate::sandbox;

/// Prefix of every line the shim writes to stderr; the supervisor recognises it.
const PREFIX: &str = "bulkhead-worker:";

/// Run the shim with the arguments after `--exec`. Returns only on failure.
pub fn run(args: Vec<OsString>) -> ExitCode {
    if let Err(reason) = check_launched_by_supervisor() {
        eprintln!(
            "{PREFIX} {reason}\n{PREFIX} --exec starts a wrapped MCP server for the bulkhead \
             supervisor and is not meant to be run by hand; use `bulkhead stdio --wrap -- CMD`."
        );
        return exit_code(EXIT_NOT_SUPERVISED);
    }
    let Some((program, argv)) = split_command(args) else {
        eprintln!("{PREFIX} usage: bulkhead-worker --exec -- PATH ARGV0 [ARGS...]");
        return exit_code(EXIT_EXEC_REFUSED);
    };
    let policy = match read_policy() {
        Ok(policy) => policy,
        Err(reason) => {
            eprintln!("{PREFIX} {reason}");
            return exit_code(EXIT_EXEC_REFUSED);
        }
    };
    // SAFETY: descriptor 3 is the report pipe the supervisor placed there (checked above); it
    // is owned by nothing else in this process, and this `File` closes it exactly once.
    let mut report_pipe = unsafe { std::fs::File::from_raw_fd(EXEC_REPORT_FD) };
    match sandbox::enter_for_exec(&policy) {
        Ok(report) => {
            let lines: String = report
                .degraded
                .into_iter()
                .map(|sentence| ExecReport::Degraded(sentence).line())
                .collect();
            if let Err(error) = report_pipe.write_all(lines.as_bytes()) {
                eprintln!("{PREFIX} cannot report to the supervisor: {error}");
                return exit_code(EXIT_EXEC_REFUSED);
            }
        }
        Err(error) => {
            eprintln!("{PREFIX} {error}");
            return exit_code(EXIT_EXEC_REFUSED);
        }
    }
    // Closed before execve: the server never holds the report channel.
    drop(report_pipe);
    let error = execute(&program, &argv);
    eprintln!(
        "{PREFIX} cannot execute {}: {error}",
        String::from_utf8_lossy(program.as_bytes())
    );
    exit_code(EXIT_EXEC_FAILED)
}

/// The supervisor's marks: the protocol variable, the session's socket on stdin and stdout, and
/// the report pipe.
fn check_launched_by_supervisor() -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    if std::env::var_os(ENV_WORKER_PROTOCOL).is_none() {
        return Err(format!("{ENV_WORKER_PROTOCOL} is not set"));
    }
    let file_type = |fd: i32| {
        std::fs::metadata(format!("/proc/self/fd/{fd}")).map(|metadata| metadata.file_type())
    };
    for fd in [0, 1] {
        if !file_type(fd).is_ok_and(|kind| kind.is_socket()) {
            return Err(format!("descriptor {fd} is not the supervisor's socket"));
        }
    }
    if !file_type(EXEC_REPORT_FD).is_ok_and(|kind| kind.is_fifo()) {
        return Err(format!(
            "descriptor {EXEC_REPORT_FD} is not the supervisor's report pipe"
        ));
    }
    Ok(())
}

/// `-- PATH ARGV0 ARGS...` → (PATH, [ARGV0, ARGS...]).
fn split_command(args: Vec<OsString>) -> Option<(CString, Vec<CString>)> {
    let mut args = args.into_iter();
    if args.next()? != "--" {
        return None;
    }
    let program = CString::new(args.next()?.into_vec()).ok()?;
    let argv: Vec<CString> = args
        .map(|arg| CString::new(arg.into_vec()).ok())
        .collect::<Option<_>>()?;
    if argv.is_empty() {
        return None;
    }
    Some((program, argv))
}

fn read_policy() -> Result<ExecPolicy, String> {
    let json = std::env::var(ENV_EXEC_POLICY)
        .map_err(|_| format!("{ENV_EXEC_POLICY} is missing or not UTF-8"))?;
    serde_json::from_str(&json).map_err(|error| format!("{ENV_EXEC_POLICY} is malformed: {error}"))
}

/// The environment to hand on: everything but Bulkhead's own variables.
fn server_environment() -> Vec<CString> {
    std::env::vars_os()
        .filter(|(name, _)| name != ENV_WORKER_PROTOCOL && name != ENV_EXEC_POLICY)
        .filter_map(|(name, value)| {
            let mut entry = name.into_vec();
            entry.push(b'=');
            entry.extend_from_slice(value.as_bytes());
            CString::new(entry).ok()
        })
        .collect()
}

/// `execve`; returns only the error.
fn execute(program: &CString, argv: &[CString]) -> std::io::Error {
    let environment = server_environment();
    let mut argv_pointers: Vec<*const libc::c_char> = argv.iter().map(|arg| arg.as_ptr()).collect();
    argv_pointers.push(std::ptr::null());
    let mut env_pointers: Vec<*const libc::c_char> =
        environment.iter().map(|entry| entry.as_ptr()).collect();
    env_pointers.push(std::ptr::null());
    // SAFETY: `program`, every argument and every environment entry are NUL-terminated C
    // strings that outlive the call, and both pointer arrays end with a null pointer, as
    // execve requires. On success execve does not return; on failure nothing was changed.
    unsafe {
        libc::execve(
            program.as_ptr(),
            argv_pointers.as_ptr(),
            env_pointers.as_ptr(),
        )
    };
    std::io::Error::last_os_error()
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
