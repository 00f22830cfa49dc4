//! Start failures that say what to do: the common ways the sandbox stops a wrapped server,
//! recognised in its stderr tail and exit status, each answered by one sentence naming the flag
//! that would allow it. The server's own error stays in the log beside it.
//!
//! Recognised, in this order: a `SIGSYS` (a call seccomp kills); an address-space limit hit by
//! a JIT (V8's "Fatal process OOM … reserve virtual memory", failed `mmap`s, Python's
//! `MemoryError`) → `--wrap-max-address-space`; a TCP `connect`, `bind` or `listen` refused
//! (`EACCES` from Landlock) → `--wrap-network`; a module or file not found or not permitted
//! under a path outside the read set (Node's `ERR_MODULE_NOT_FOUND`, `Cannot find module`,
//! `ENOENT`, `EACCES`, the exec shim's `cannot execute`; Python's `ModuleNotFoundError`, `FileNotFoundError`, `PermissionError`)
//! → `--wrap-allow-path`, or, for a write refused inside it, `--wrap-allow-write`.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use bulkhead_protocol::exec::{ExecPolicy, NetworkPolicy};

/// `SIGSYS`: what seccomp's kill action delivers.
const SIGSYS: i32 = 31;

/// Texts a runtime prints when it cannot reserve address space.
const ADDRESS_SPACE_SIGNS: &[&str] = &[
    "Fatal process OOM",
    "Fatal process out of memory",
    "reserve virtual memory",
    "Cannot allocate memory",
    "MemoryError",
    "mmap failed",
    "failed to mmap",
];

/// What the sandbox allowed the server that failed.
pub struct Allowed<'a> {
    pub policy: &'a ExecPolicy,
    pub max_address_space: u64,
}

/// One sentence naming the flag that would let the server start, if its tail and exit status
/// show a cause the sandbox is known for.
pub fn hint(tail: &str, status: Option<ExitStatus>, allowed: &Allowed) -> Option<String> {
    if status.and_then(|status| status.signal()) == Some(SIGSYS) {
        return Some(
            "Hint: it was killed by SIGSYS, a system call the sandbox's seccomp filter forbids outright (x32 calls); no flag allows it — run it as an x86-64 program."
                .into(),
        );
    }
    if ADDRESS_SPACE_SIGNS.iter().any(|sign| tail.contains(sign)) {
        return Some(format!(
            "Hint: it could not reserve address space under the limit of {} MiB (a JIT such as V8 reserves GiBs it never touches): raise it with --wrap-max-address-space BYTES.",
            allowed.max_address_space >> 20
        ));
    }
    if let Some(hint) = network_hint(tail, allowed.policy.network) {
        return Some(hint);
    }
    path_hint(tail, allowed.policy)
}

/// TCP refused by Landlock: `connect EACCES` (Node), or a Python `PermissionError` without a
/// file name raised by a socket call.
fn network_hint(tail: &str, network: NetworkPolicy) -> Option<String> {
    let node = |call: &str| tail.contains(&format!("{call} EACCES"));
    let python = |call: &str| {
        tail.contains(&format!(".{call}("))
            && tail
                .lines()
                .any(|line| line.trim_end() == "PermissionError: [Errno 13] Permission denied")
    };
    let listens = node("listen") || node("bind") || python("bind") || python("listen");
    let connects = node("connect") || python("connect") || python("create_connection");
    match network {
        NetworkPolicy::All => None,
        _ if listens => Some(
            "Hint: the sandbox refused it a listening TCP socket: allow one with --wrap-network all."
                .into(),
        ),
        NetworkPolicy::None if connects => Some(
            "Hint: the sandbox refused it an outgoing TCP connection (--wrap-network none): allow them with --wrap-network connect."
                .into(),
        ),
        _ => None,
    }
}

/// A file or module missing or refused: where, and whether the read or write set lacks it.
fn path_hint(tail: &str, policy: &ExecPolicy) -> Option<String> {
    let refused = tail.contains("EACCES") || tail.contains("PermissionError");
    for path in mentioned_paths(tail) {
        let path = absolute_lossy(&path);
        if !beneath_any(&path, &policy.read) {
            let dir = directory_to_allow(&path);
            return Some(format!(
                "Hint: {} is outside what a wrapped server may read: allow it with --wrap-allow-path {}.",
                path.display(),
                dir.display()
            ));
        }
        let exists = path.exists() || path.parent().is_some_and(Path::exists);
        if refused && !beneath_any(&path, &policy.write) && exists {
            let dir = directory_to_allow(&path);
            return Some(format!(
                "Hint: it may read {} but not write it: allow writing with --wrap-allow-write {}.",
                path.display(),
                dir.display()
            ));
        }
    }
    if tail.contains("ModuleNotFoundError") || tail.contains("ERR_MODULE_NOT_FOUND") {
        return Some(
            "Hint: if that module is installed outside what a wrapped server may read, allow its directory with --wrap-allow-path DIR."
                .into(),
        );
    }
    None
}

/// Paths an error line names: quoted in `ENOENT: …, open '/x'`, `[Errno 13] …: '/x'`,
/// `Cannot find module '/x'`; and, for a package Node could not find from a file
/// (`Cannot find package 'zod' imported from /app/index.js`, or `Cannot find module 'zod'`
/// with its require stack), the `node_modules/zod` it would have found up that file's tree.
fn mentioned_paths(tail: &str) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    let lines: Vec<&str> = tail.lines().collect();
    for (index, line) in lines.iter().enumerate() {
        if let Some(rest) = after(line, "Cannot find package '") {
            let (package, rest) = rest.split_once('\'').unwrap_or((rest, ""));
            if package.starts_with('/') {
                paths.push(PathBuf::from(package));
            } else if let Some(importer) = rest.trim().strip_prefix("imported from ") {
                paths.extend(installed_package(Path::new(importer.trim()), package));
            }
            continue;
        }
        if let Some(rest) = after(line, "Cannot find module '") {
            let name = rest.split('\'').next().unwrap_or_default();
            if name.starts_with('/') {
                paths.push(PathBuf::from(name));
            } else if let Some(importer) = lines[index..].iter().find_map(|line| {
                line.trim()
                    .strip_prefix("- ")
                    .filter(|p| p.starts_with('/'))
            }) {
                paths.extend(installed_package(Path::new(importer), name));
            }
            continue;
        }
        // The exec shim's own error when `execve` is refused.
        if let Some(rest) = after(line, "cannot execute /") {
            let program = rest.split(": ").next().unwrap_or_default();
            paths.push(PathBuf::from(format!("/{program}")));
            continue;
        }
        let quoted = ["ENOENT", "EACCES", "EPERM", "[Errno 2]", "[Errno 13]"]
            .iter()
            .any(|code| line.contains(code));
        if quoted
            && let Some(path) = line
                .split('\'')
                .nth(1)
                .filter(|quoted| quoted.starts_with('/'))
        {
            paths.push(PathBuf::from(path));
        }
    }
    paths
}

fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.find(marker).map(|at| &line[at + marker.len()..])
}

/// The `node_modules/PACKAGE` Node's resolution would reach from `importer`, if it exists.
fn installed_package(importer: &Path, package: &str) -> Option<PathBuf> {
    let importer = importer
        .to_str()
        .and_then(|text| text.strip_prefix("file://"))
        .map_or_else(|| importer.to_path_buf(), PathBuf::from);
    importer
        .ancestors()
        .skip(1)
        .map(|dir| dir.join("node_modules").join(package))
        .find(|candidate| candidate.exists())
}

fn absolute_lossy(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn beneath_any(path: &Path, allowed: &[PathBuf]) -> bool {
    allowed.iter().any(|allowed| {
        path.starts_with(allowed)
            || std::fs::canonicalize(allowed).is_ok_and(|allowed| path.starts_with(allowed))
    })
}

/// The directory to name in the hint: the package's `node_modules` for a package, else the
/// file's directory (or the directory itself).
fn directory_to_allow(path: &Path) -> PathBuf {
    if let Some(modules) = path
        .ancestors()
        .find(|dir| dir.file_name().is_some_and(|name| name == "node_modules"))
    {
        return modules.to_path_buf();
    }
    if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().unwrap_or(path).to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(policy: &ExecPolicy) -> Allowed<'_> {
        Allowed {
            policy,
            max_address_space: 8 << 30,
        }
    }

    #[test]
    fn each_cause_names_its_flag() {
        let policy = ExecPolicy {
            read: vec!["/usr".into()],
            write: vec!["/dev/null".into()],
            network: NetworkPolicy::None,
            supervisor_pid: 0,
        };
        let hint = |tail: &str| hint(tail, None, &allowed(&policy)).unwrap_or_default();
        assert!(
            hint("# Fatal process OOM in Failed to reserve virtual memory for CodeRange")
                .contains("--wrap-max-address-space")
        );
        assert!(hint("Error: connect EACCES 127.0.0.1:9").contains("--wrap-network connect"));
        assert!(
            hint("Error: listen EACCES: permission denied 0.0.0.0:1")
                .contains("--wrap-network all")
        );
        assert!(
            hint("Error: ENOENT: no such file or directory, open '/srv/data/x.json'")
                .contains("--wrap-allow-path /srv/data")
        );
        assert!(
            hint("PermissionError: [Errno 13] Permission denied: '/srv/data/x.json'")
                .contains("--wrap-allow-path /srv/data")
        );
        assert!(hint("ModuleNotFoundError: No module named 'x'").contains("--wrap-allow-path DIR"));
        assert!(
            hint(
                "bulkhead-worker: cannot execute /srv/tools/server: Permission denied (os error 13)"
            )
            .contains("--wrap-allow-path /srv/tools.")
        );
        assert_eq!(hint("Traceback: ValueError: bad"), "");
        let sigsys = ExitStatus::from_raw(SIGSYS);
        assert!(
            super::hint("", Some(sigsys), &allowed(&policy))
                .unwrap()
                .contains("SIGSYS")
        );
    }
}
