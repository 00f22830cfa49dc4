//! End-to-end tests of the worker sandbox: what `/proc` shows about every worker, and what
//! the test-only attack tools (`--test-tools`) achieve against it. Each attack runs in its own
//! session beside a bystander session that must keep answering.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bulkhead_protocol::handshake::SandboxPolicy;
use bulkhead_tests::*;
use serde_json::{Value, json};

const WORKER_DIED: i64 = -32042;
const MARKER: &str = "BULKHEAD_TEST_MARKER";

fn start() -> Running {
    TestSupervisor::new()
        .args(["--test-tools"])
        .env(MARKER, "x")
        .start_legacy()
}

fn running_as_root() -> bool {
    proc_status(std::process::id(), "Uid").starts_with("0 ")
}

fn text(result: &Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn assert_answers(bulkhead: &mut Running, session: &str) {
    let echo = bulkhead.call_ok("echo", json!({"text": "still here", "session": session}));
    assert_eq!(structured(&echo)["text"], "still here");
}

/// Call a tool that must kill its worker: the call gets the worker-died error naming SIGSYS
/// (seccomp's kill), and the process is gone.
fn assert_killed_by_seccomp(bulkhead: &mut Running, pid: u32, tool: &str, arguments: Value) {
    let response = bulkhead.call(tool, arguments.clone());
    assert_eq!(
        error_code(&response),
        Some(WORKER_DIED),
        "{tool} {arguments}: {response}"
    );
    let message = response["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("SIGSYS"), "{tool} {arguments}: {message}");
    assert!(
        eventually(Duration::from_secs(2), || process_state(pid).is_none()),
        "the killed worker {pid} is reaped"
    );
}

#[test]
fn every_worker_has_no_new_privs_a_seccomp_filter_no_capabilities_and_its_limits() {
    let mut bulkhead = start();
    let (_, explicit) = bulkhead.open_session();
    let default = structured(&bulkhead.call_ok("session_info", json!({})))["pid"]
        .as_u64()
        .unwrap() as u32;
    let policy = SandboxPolicy::default();
    for pid in [explicit, default] {
        assert_eq!(proc_status(pid, "NoNewPrivs"), "1", "worker {pid}");
        assert_eq!(
            proc_status(pid, "Seccomp"),
            "2",
            "worker {pid}: filter mode"
        );
        for set in ["CapEff", "CapPrm", "CapInh", "CapAmb"] {
            assert_eq!(
                proc_status(pid, set),
                "0000000000000000",
                "worker {pid} {set}"
            );
        }
        if running_as_root() {
            assert_eq!(
                proc_status(pid, "CapBnd"),
                "0000000000000000",
                "worker {pid}"
            );
        }
        assert_eq!(proc_limit(pid, "Max core file size"), "0", "worker {pid}");
        assert_eq!(
            proc_limit(pid, "Max address space"),
            policy.max_memory_bytes.to_string()
        );
        assert_eq!(
            proc_limit(pid, "Max cpu time"),
            policy.max_cpu_seconds.to_string()
        );
        assert_eq!(
            proc_limit(pid, "Max open files"),
            policy.max_open_files.to_string()
        );
    }
}

#[test]
fn a_worker_inherits_none_of_the_supervisors_environment() {
    let mut bulkhead = start();
    let (_, pid) = bulkhead.open_session();
    if let Ok(supervisor) = std::fs::read(format!("/proc/{}/environ", bulkhead.pid())) {
        assert!(
            String::from_utf8_lossy(&supervisor).contains(MARKER),
            "the marker is in the supervisor's environment, so its absence below means something"
        );
    }
    let environ = match std::fs::read(format!("/proc/{pid}/environ")) {
        Ok(environ) => environ,
        Err(error) if !running_as_root() => {
            eprintln!(
                "skipped: a non-dumpable worker's environ is readable by root only ({error})"
            );
            return;
        }
        Err(error) => panic!("reading worker {pid}'s environ: {error}"),
    };
    let variables: Vec<String> = environ
        .split(|&byte| byte == 0)
        .filter(|variable| !variable.is_empty())
        .map(|variable| String::from_utf8_lossy(variable).into_owned())
        .collect();
    assert!(
        variables
            .iter()
            .all(|variable| variable.starts_with("BULKHEAD_WORKER_PROTOCOL=")),
        "worker environment: {variables:?}"
    );
}

/// Descriptor number → what it refers to (`/dev/null`, `socket:[123]`, `anon_inode:[eventfd]`).
fn descriptors(pid: u32) -> std::io::Result<BTreeMap<u32, String>> {
    let mut table = BTreeMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let name = entry?.file_name();
        let Ok(target) = std::fs::read_link(format!("/proc/{pid}/fd/{}", name.to_string_lossy()))
        else {
            continue; // closed meanwhile
        };
        let number = name.to_string_lossy().parse().unwrap();
        table.insert(number, target.display().to_string());
    }
    Ok(table)
}

/// The issue asks for a table of exactly 0-3. The worker's runtime then opens a few of its own
/// (epoll, eventfd, the signal driver's socket pair), so the test checks what matters: 0-3 are
/// what the supervisor passed, and every other descriptor is one the worker made itself — an
/// anonymous inode, or a socket no other process of the supervisor's tree holds — never a
/// file, a pipe, or an object shared with the supervisor or another session.
#[test]
fn a_worker_inherits_only_descriptors_0_to_3_with_stdin_and_stdout_on_dev_null() {
    let mut bulkhead = start();
    let (_, other) = bulkhead.open_session();
    let (_, pid) = bulkhead.open_session();
    let table = match descriptors(pid) {
        Ok(table) => table,
        Err(error) if !running_as_root() => {
            eprintln!(
                "skipped: a non-dumpable worker's descriptors are visible to root only ({error})"
            );
            return;
        }
        Err(error) => panic!("listing worker {pid}'s descriptors: {error}"),
    };
    assert_eq!(table.get(&0).map(String::as_str), Some("/dev/null"));
    assert_eq!(table.get(&1).map(String::as_str), Some("/dev/null"));
    assert!(
        table.contains_key(&2),
        "stderr stays open for logs: {table:?}"
    );
    assert!(table[&3].starts_with("socket:"), "{table:?}");
    let mut held_elsewhere = BTreeSet::new();
    for process in [bulkhead.pid(), other] {
        held_elsewhere.extend(descriptors(process).unwrap().into_values());
    }
    for (number, target) in table.range(4..) {
        let own_object = target.starts_with("anon_inode:")
            || (target.starts_with("socket:") && !held_elsewhere.contains(target));
        assert!(
            own_object,
            "worker descriptor {number} is {target}; table {table:?}"
        );
    }
}

#[test]
fn a_forbidden_system_call_kills_only_its_own_worker() {
    let mut bulkhead = start();
    let (bystander, bystander_pid) = bulkhead.open_session();
    for syscall in [
        "ptrace",
        "ptrace_attach",
        "process_vm_readv",
        "kill_other",
        "mount",
        "unshare",
        "bpf",
        "keyctl",
        "execve",
        "fork",
        "setuid",
        "io_uring_setup",
        "tiocsti",
    ] {
        let (attacker, pid) = bulkhead.open_session();
        assert_killed_by_seccomp(
            &mut bulkhead,
            pid,
            "attempt_forbidden_syscall",
            json!({"syscall": syscall, "target_pid": bystander_pid, "session": attacker}),
        );
        assert_answers(&mut bulkhead, &bystander);
    }
    assert_eq!(proc_status(bystander_pid, "TracerPid"), "0");
    assert!(is_running(bulkhead.pid()), "the supervisor is untouched");
}

#[test]
fn a_worker_that_tries_to_leave_its_process_group_is_killed_by_seccomp() {
    // The supervisor stops a built-in worker through its process group; a worker that left it
    // (setsid, or setpgid/setpgrp) would escape that signal. The call kills only that worker.
    let mut bulkhead = start();
    let (bystander, bystander_pid) = bulkhead.open_session();
    for syscall in ["setsid", "setpgid"] {
        let (attacker, pid) = bulkhead.open_session();
        assert_killed_by_seccomp(
            &mut bulkhead,
            pid,
            "attempt_forbidden_syscall",
            json!({"syscall": syscall, "session": attacker}),
        );
        assert_answers(&mut bulkhead, &bystander);
    }
    assert!(is_running(bystander_pid));
    assert!(is_running(bulkhead.pid()), "the supervisor is untouched");
}

#[test]
fn a_worker_that_tries_to_route_io_signals_to_another_process_is_killed_by_seccomp() {
    // An I/O signal owner (F_SETOWN and friends) lets the kernel signal another process for
    // the worker, without `kill`; O_ASYNC on a terminal makes its foreground group the owner.
    let mut bulkhead = start();
    let (bystander, bystander_pid) = bulkhead.open_session();
    for syscall in [
        "fcntl_setown",
        "fcntl_setown_ex",
        "fcntl_setsig",
        "fcntl_async",
        "ioctl_fiosetown",
        "ioctl_siocspgrp",
        "ioctl_fioasync",
    ] {
        let (attacker, pid) = bulkhead.open_session();
        assert_killed_by_seccomp(
            &mut bulkhead,
            pid,
            "attempt_forbidden_syscall",
            json!({"syscall": syscall, "target_pid": bystander_pid, "session": attacker}),
        );
        assert_answers(&mut bulkhead, &bystander);
    }
    assert!(is_running(bulkhead.pid()), "the supervisor is untouched");
}

#[test]
fn clone3_is_refused_with_enosys_so_that_threads_fall_back_to_clone() {
    let mut bulkhead = start();
    let (session, _) = bulkhead.open_session();
    let result = bulkhead.call_ok(
        "attempt_forbidden_syscall",
        json!({"syscall": "clone3", "session": session}),
    );
    assert!(text(&result).contains("errno 38"), "{result}");
    assert_answers(&mut bulkhead, &session);
}

#[test]
fn a_memory_hog_is_stopped_by_the_memory_limit_and_others_keep_answering() {
    let mut bulkhead = start();
    let (bystander, _) = bulkhead.open_session();
    let (hog, pid) = bulkhead.open_session();
    let address_space = proc_limit(pid, "Max address space");
    let limit_mb = address_space
        .parse::<u64>()
        .unwrap_or_else(|_| panic!("the worker's address space is not limited: {address_space}"))
        >> 20;
    let requested = limit_mb + 256;
    let response = bulkhead.call("memory_hog", json!({"mb": requested, "session": hog}));
    match error_code(&response) {
        // A cgroup's memory.max ends in the OOM killer: crash semantics for that session.
        Some(WORKER_DIED) => {}
        Some(_) => panic!("{response}"),
        None => {
            let outcome = &response["result"]["structuredContent"];
            assert_eq!(outcome["stopped"], true, "{outcome}");
            let allocated = outcome["allocated_mb"].as_u64().unwrap();
            assert!(allocated < limit_mb, "{outcome}");
            assert_answers(&mut bulkhead, &hog);
        }
    }
    assert_answers(&mut bulkhead, &bystander);
}

#[test]
fn a_fork_bomb_is_stopped_before_its_first_child_and_others_keep_answering() {
    let mut bulkhead = start();
    let (bystander, _) = bulkhead.open_session();
    let (bomber, pid) = bulkhead.open_session();
    assert_killed_by_seccomp(
        &mut bulkhead,
        pid,
        "fork_bomb",
        json!({"count": 64, "session": bomber}),
    );
    let workers: Vec<u32> = children_of(bulkhead.pid())
        .into_iter()
        .map(|(child, _)| child)
        .collect();
    for worker in workers {
        assert!(
            children_of(worker).is_empty(),
            "worker {worker} has children"
        );
    }
    assert_answers(&mut bulkhead, &bystander);
}

#[test]
fn one_worker_cannot_read_anothers_environ_or_memory_nor_trace_it() {
    let mut bulkhead = start();
    let (victim, victim_pid) = bulkhead.open_session();
    let (attacker, attacker_pid) = bulkhead.open_session();
    let own = bulkhead.call_ok(
        "read_file",
        json!({"path": "/proc/self/status", "session": attacker}),
    );
    assert!(
        text(&own).contains("Seccomp:\t2"),
        "read_file works on what the worker may read: {own}"
    );
    for path in [
        format!("/proc/{victim_pid}/environ"),
        format!("/proc/{victim_pid}/mem"),
        format!("/proc/{}/environ", bulkhead.pid()),
    ] {
        let result = bulkhead.call_ok("read_file", json!({"path": path, "session": attacker}));
        assert_eq!(result["isError"], true, "{path}: {result}");
        assert!(
            text(&result).contains("Permission denied"),
            "{path}: {result}"
        );
    }
    assert_killed_by_seccomp(
        &mut bulkhead,
        attacker_pid,
        "attempt_forbidden_syscall",
        json!({"syscall": "ptrace_attach", "target_pid": victim_pid, "session": attacker}),
    );
    assert_eq!(proc_status(victim_pid, "TracerPid"), "0");
    assert_answers(&mut bulkhead, &victim);
}

#[test]
fn landlock_hides_the_file_system_from_a_worker() {
    let mut bulkhead = start();
    let (session, _) = bulkhead.open_session();
    if bulkhead.stderr().contains("landlock unavailable") {
        eprintln!("skipped: this kernel has no Landlock (the supervisor logged why)");
        return;
    }
    assert!(
        std::fs::read("/etc/passwd").is_ok(),
        "the file exists and is world-readable"
    );
    let denied = bulkhead.call_ok(
        "read_file",
        json!({"path": "/etc/passwd", "session": session}),
    );
    assert_eq!(denied["isError"], true, "{denied}");
    assert!(text(&denied).contains("Permission denied"), "{denied}");
    let allowed = bulkhead.call_ok(
        "read_file",
        json!({"path": "/dev/urandom", "max_bytes": 16, "session": session}),
    );
    assert_eq!(allowed["isError"], false, "{allowed}");
}
