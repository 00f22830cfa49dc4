//! Start failures that say what to do: real Node and Python servers stopped at start by a
//! real cause the sandbox is known for — a module or file outside the read set, a write
//! outside the write set, TCP the network policy refuses, a system call seccomp kills, an
//! address-space limit V8 cannot live with — and the supervisor's log keeps the server's own
//! error and adds the one sentence naming the flag that would allow it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bulkhead_tests::*;

/// Start `bulkhead stdio FLAGS --wrap -- COMMAND…`, which must fail at start; its log.
fn failed_start(flags: &[&str], command: &[&str]) -> String {
    let mut args: Vec<String> = flags.iter().map(|flag| flag.to_string()).collect();
    args.extend(["--wrap".to_string(), "--".to_string()]);
    args.extend(command.iter().map(|word| word.to_string()));
    let mut running = TestSupervisor::new().args(args).spawn();
    let status = running
        .wait_exit(Duration::from_secs(60))
        .expect("the supervisor stops when its wrapped server cannot start");
    assert!(!status.success(), "{}", running.stderr());
    assert!(
        eventually(Duration::from_secs(5), || running
            .stderr()
            .contains("cannot start the wrapped server")),
        "{}",
        running.stderr()
    );
    running.stderr()
}

fn assert_hint(log: &str, original: &str, hint: &str) {
    assert!(
        log.contains(original),
        "the server's own error is lost:\n{log}"
    );
    assert!(log.contains(hint), "no hint {hint:?}:\n{log}");
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

fn text(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

#[test]
fn a_node_module_outside_the_read_set_names_the_directory_to_allow() {
    let scratch = scratch_dir("hint-node-module");
    let helper = write(&scratch.join("lib/helper.mjs"), "export const x = 1;\n");
    let server = write(
        &scratch.join("app/server.mjs"),
        "import { x } from '../lib/helper.mjs';\nconsole.log(x);\n",
    );
    let log = failed_start(&[], &["node", text(&server)]);
    let lib = std::fs::canonicalize(helper.parent().unwrap()).unwrap();
    assert_hint(
        &log,
        "EACCES: permission denied, open",
        &format!("--wrap-allow-path {}", lib.display()),
    );

    // A package installed in a node_modules above the script's directory: Node finds its
    // directory but cannot read it, and says it cannot find the package.
    write(
        &scratch.join("node_modules/helper/package.json"),
        r#"{"name": "helper", "type": "module", "main": "dist/index.js"}"#,
    );
    write(
        &scratch.join("node_modules/helper/dist/index.js"),
        "export const x = 1;\n",
    );
    let server = write(
        &scratch.join("app/package-user.mjs"),
        "import { x } from 'helper';\nconsole.log(x);\n",
    );
    let log = failed_start(&[], &["node", text(&server)]);
    let modules = std::fs::canonicalize(scratch.join("node_modules")).unwrap();
    assert_hint(
        &log,
        "ERR_MODULE_NOT_FOUND",
        &format!("--wrap-allow-path {}", modules.display()),
    );
    let _ = std::fs::remove_dir_all(scratch);
}

#[test]
fn a_python_file_outside_the_read_set_or_a_write_outside_the_write_set_names_its_flag() {
    let scratch = scratch_dir("hint-python-file");
    let config = write(&scratch.join("data/config.json"), "{}\n");
    let reader = write(
        &scratch.join("app/reader.py"),
        &format!("open({:?}).read()\n", text(&config)),
    );
    let python = "python3";
    let log = failed_start(&[], &[python, text(&reader)]);
    let data = std::fs::canonicalize(config.parent().unwrap()).unwrap();
    assert_hint(
        &log,
        "PermissionError",
        &format!("--wrap-allow-path {}", data.display()),
    );

    let writer = write(
        &scratch.join("app/writer.py"),
        "import pathlib\npathlib.Path(__file__).with_name('state.json').write_text('{}')\n",
    );
    let log = failed_start(&[], &[python, text(&writer)]);
    let app = std::fs::canonicalize(writer.parent().unwrap()).unwrap();
    assert_hint(
        &log,
        "PermissionError",
        &format!("--wrap-allow-write {}", app.display()),
    );

    let importer = write(
        &scratch.join("app/importer.py"),
        &format!(
            "import sys\nsys.path.insert(0, {:?})\nimport helper\n",
            text(&scratch.join("pylib"))
        ),
    );
    write(&scratch.join("pylib/helper.py"), "X = 1\n");
    let log = failed_start(&[], &[python, text(&importer)]);
    assert_hint(&log, "ModuleNotFoundError", "--wrap-allow-path DIR");
    let _ = std::fs::remove_dir_all(scratch);
}

#[test]
fn tcp_the_network_policy_refuses_names_wrap_network() {
    let scratch = scratch_dir("hint-network");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connects = write(
        &scratch.join("connects.py"),
        &format!("import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=5)\n"),
    );
    let log = failed_start(&["--wrap-network", "none"], &["python3", text(&connects)]);
    assert_hint(&log, "PermissionError", "--wrap-network connect");

    let listens = write(
        &scratch.join("listens.mjs"),
        "import net from 'node:net';\nnet.createServer().listen(0, '127.0.0.1');\n",
    );
    let log = failed_start(&[], &["node", text(&listens)]);
    assert_hint(&log, "EACCES", "--wrap-network all");
    drop(listener);
    let _ = std::fs::remove_dir_all(scratch);
}

#[test]
fn a_call_seccomp_kills_says_sigsys() {
    let scratch = scratch_dir("hint-sigsys");
    // An x32 system call (the x32 bit on getpid): the filter kills rather than refuses these.
    let x32 = write(
        &scratch.join("x32.py"),
        "import ctypes, sys\nprint('calling x32 getpid', file=sys.stderr, flush=True)\nctypes.CDLL(None).syscall(0x40000000 | 39)\n",
    );
    let log = failed_start(&[], &["python3", text(&x32)]);
    assert_hint(&log, "calling x32 getpid", "killed by SIGSYS");
    let _ = std::fs::remove_dir_all(scratch);
}

#[test]
fn v8_under_a_small_address_space_names_wrap_max_address_space() {
    let scratch = scratch_dir("hint-address-space");
    let server = write(&scratch.join("server.mjs"), "console.log('never');\n");
    let log = failed_start(
        &["--wrap-max-address-space", "268435456"],
        &["node", text(&server)],
    );
    assert_hint(&log, "Fatal process", "--wrap-max-address-space");
    let _ = std::fs::remove_dir_all(scratch);
}
