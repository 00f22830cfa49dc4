//! The sandbox a wrapped stdio MCP server runs in: Landlock and seccomp rules that survive
//! `execve`, written for programs we did not write (Node, Python, shells).
//!
//! A wrapped server must start interpreters and helpers, so unlike the built-in worker it may
//! create processes and execute programs — but only programs beneath the paths its policy lets
//! it read, since Landlock's execute right covers `execve`. Landlock allows reading (and
//! executing) beneath the policy's read paths, everything beneath its write paths, TCP as the
//! policy says, and scopes signals and abstract Unix sockets to the server's own domain (its
//! children inherit the domain, so it can still manage them). Seccomp refuses — with `EPERM`
//! rather than death, since a foreign program may probe a call and carry on — what reaches the
//! kernel's administration or other processes' memory: ptrace, mounts, namespaces (also through
//! `clone` flags), bpf, perf, modules, kexec, keyrings, identity changes, userfaultfd, io_uring
//! (libuv falls back to its thread pool), terminal injection; and it refuses signals to the
//! supervisor and to every process (`kill(-1)`), and naming another receiver of a descriptor's
//! I/O signals (`F_SETOWN` and friends, `O_ASYNC`), which covers kernels without Landlock's
//! signal scoping. `clone3` answers `ENOSYS` so glibc uses `clone`, whose flags the filter can
//! read; x32-numbered calls still kill the process.

use std::collections::BTreeMap;
use std::io;

use bulkhead_protocol::exec::{ExecPolicy, NetworkPolicy};
use landlock::{
    Access, AccessFs, AccessNet, BitFlags, Ruleset, RulesetAttr, RulesetCreatedAttr, Scope,
    path_beneath_rules,
};
use seccompiler::{SeccompAction, SeccompCmpOp, SeccompRule};

use super::filesystem::{TARGET_ABI, describe_shortfall, ensure_single_threaded};
use super::seccomp::{
    BEYOND_THE_PROCESS, always, install_filters, int_arg, io_signal_owner, ioctl_requests,
    masked_arg, rule,
};

/// `clone` flags that create namespaces.
const NAMESPACE_FLAGS: [libc::c_int; 8] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWCGROUP,
    0x0000_0080, // CLONE_NEWTIME
];

/// Landlock for a wrapped server. Returns a sentence when the kernel could not enforce all.
pub(super) fn restrict(policy: &ExecPolicy) -> io::Result<Option<String>> {
    ensure_single_threaded()?;
    let read = AccessFs::from_read(TARGET_ABI);
    let write = AccessFs::from_all(TARGET_ABI);
    let network: BitFlags<AccessNet> = match policy.network {
        NetworkPolicy::None => AccessNet::BindTcp | AccessNet::ConnectTcp,
        NetworkPolicy::Connect => AccessNet::BindTcp.into(),
        NetworkPolicy::All => BitFlags::EMPTY,
    };
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(TARGET_ABI))
        .map_err(io::Error::other)?;
    if !network.is_empty() {
        ruleset = ruleset.handle_access(network).map_err(io::Error::other)?;
    }
    let status = ruleset
        .scope(Scope::from_all(TARGET_ABI))
        .and_then(|ruleset| ruleset.create())
        .and_then(|ruleset| ruleset.add_rules(path_beneath_rules(&policy.read, read)))
        .and_then(|ruleset| ruleset.add_rules(path_beneath_rules(&policy.write, write)))
        .and_then(|ruleset| ruleset.restrict_self())
        .map_err(io::Error::other)?;
    Ok(describe_shortfall(status.ruleset, status.landlock))
}

/// Seccomp for a wrapped server. Returns a sentence when this kernel has no seccomp filters.
pub(super) fn install_seccomp(policy: &ExecPolicy) -> io::Result<Option<String>> {
    install_filters(
        refusals(policy.supervisor_pid),
        SeccompAction::Errno(libc::EPERM as u32),
        "wrapped servers",
    )
}

fn refusals(supervisor_pid: u32) -> BTreeMap<i64, Vec<SeccompRule>> {
    let mut rules = always(BEYOND_THE_PROCESS.iter());
    let has_flag = |flag: libc::c_int| {
        let flag = u64::from(flag as u32);
        masked_arg(0, flag, flag)
    };
    rules.insert(
        libc::SYS_clone,
        NAMESPACE_FLAGS
            .iter()
            .map(|&flag| rule(vec![has_flag(flag)]))
            .collect(),
    );
    // Signals: never to the supervisor or its process group, never to every process at once.
    let supervisor = u64::from(supervisor_pid);
    // SAFETY: getpgid with a plain pid argument has no memory effects.
    let supervisor_group = unsafe { libc::getpgid(supervisor_pid as libc::pid_t) };
    let mut kill_rules = vec![
        rule(vec![int_arg(0, SeccompCmpOp::Eq, supervisor)]),
        rule(vec![int_arg(0, SeccompCmpOp::Eq, u64::from(u32::MAX))]),
    ];
    if supervisor_group > 1 {
        let negated = (-supervisor_group) as u32;
        kill_rules.push(rule(vec![int_arg(0, SeccompCmpOp::Eq, u64::from(negated))]));
    }
    rules.insert(libc::SYS_kill, kill_rules);
    for number in [
        libc::SYS_tgkill,
        libc::SYS_tkill,
        libc::SYS_rt_sigqueueinfo,
        libc::SYS_rt_tgsigqueueinfo,
    ] {
        rules.insert(
            number,
            vec![rule(vec![int_arg(0, SeccompCmpOp::Eq, supervisor)])],
        );
    }
    rules.insert(libc::SYS_ioctl, ioctl_requests());
    rules.insert(libc::SYS_fcntl, io_signal_owner());
    rules.insert(
        libc::SYS_prctl,
        vec![rule(vec![int_arg(
            0,
            SeccompCmpOp::Eq,
            libc::PR_SET_PTRACER as u32 as u64,
        )])],
    );
    rules
}

#[cfg(test)]
mod tests {
    use seccompiler::TargetArch;

    use super::super::seccomp::compile;
    use super::*;

    #[test]
    fn the_refusals_compile_for_this_architecture() {
        let arch = TargetArch::try_from(std::env::consts::ARCH).unwrap();
        let program = compile(refusals(1234), SeccompAction::Errno(1), arch).unwrap();
        assert!(program.len() > BEYOND_THE_PROCESS.len());
        assert!(!BEYOND_THE_PROCESS.contains(&libc::SYS_execve));
        assert!(!BEYOND_THE_PROCESS.contains(&libc::SYS_clone));
    }
}
