//! `bulkhead-worker`: one Bulkhead session in its own process.
//!
//! The supervisor launches this binary with its end of a private socket pair on descriptor 3
//! and [`ENV_WORKER_PROTOCOL`] set. The worker checks both (refusing to run otherwise, with
//! [`EXIT_NOT_SUPERVISED`]), enters its [`sandbox`] while still single-threaded and before
//! reading anything, runs the versioned handshake from `bulkhead_protocol::handshake`, and
//! then serves MCP with rmcp on a current-thread runtime over that socket until the supervisor
//! closes it. It never touches stdout; logs go to stderr. With `--exec` it is instead the exec
//! shim of external worker mode ([`exec`]): it confines itself and becomes a wrapped server.

mod acknowledge;
mod attachments;
mod exec;
mod fixtures;
mod handshake;
mod probes;
mod sandbox;
mod tools;

use std::process::ExitCode;

// The broker engine lives in the library half of this package (`src/lib.rs`), shared with the
// test suite's Alpaca stand-in; `crate::broker` paths resolve through this import.
use bulkhead_worker::broker;

use bulkhead_protocol::{
    ENV_WORKER_PROTOCOL, EXIT_HANDSHAKE_FAILED, EXIT_NOT_SUPERVISED, WORKER_SOCKET_FD,
};

fn main() -> ExitCode {
    // External worker mode: confine this process and become the wrapped server (see `exec`).
    let mut args = std::env::args_os().skip(1);
    if args
        .next()
        .is_some_and(|first| first == bulkhead_protocol::exec::EXEC_FLAG)
    {
        return exec::run(args.collect());
    }
    if let Err(reason) = check_launched_by_supervisor() {
        eprintln!(
            "bulkhead-worker: {reason}\n\
             bulkhead-worker runs one session for the bulkhead supervisor and is not meant to be \
             started by hand; run `bulkhead stdio` (or `bulkhead serve`) instead."
        );
        return exit_code(EXIT_NOT_SUPERVISED);
    }
    // What the network brokers need of the network is decided before the sandbox, which comes
    // before the hello: the supervisor passes it as an argument.
    let network =
        match bulkhead_protocol::brokers::WorkerNetwork::from_args(std::env::args().skip(1)) {
            Ok(network) => network,
            Err(reason) => {
                eprintln!("bulkhead-worker: {reason}");
                handshake::refuse(&reason);
                return exit_code(EXIT_HANDSHAKE_FAILED);
            }
        };
    let sandbox = match sandbox::enter(&network) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("bulkhead-worker: {error}");
            handshake::refuse(&error.to_string());
            return exit_code(EXIT_HANDSHAKE_FAILED);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("bulkhead-worker: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(handshake::run(sandbox)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("bulkhead-worker: {failure}");
            exit_code(failure.exit_code())
        }
    }
}

/// The two marks of a supervised launch: the protocol variable, and a socket on descriptor 3.
fn check_launched_by_supervisor() -> Result<(), String> {
    if std::env::var_os(ENV_WORKER_PROTOCOL).is_none() {
        return Err(format!("{ENV_WORKER_PROTOCOL} is not set"));
    }
    // Looking through /proc avoids touching a descriptor we do not yet know we own.
    let path = format!("/proc/self/fd/{WORKER_SOCKET_FD}");
    let is_socket = std::fs::metadata(&path).is_ok_and(|metadata| {
        use std::os::unix::fs::FileTypeExt;
        metadata.file_type().is_socket()
    });
    if !is_socket {
        return Err(format!(
            "descriptor {WORKER_SOCKET_FD} is not the supervisor's socket"
        ));
    }
    Ok(())
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
