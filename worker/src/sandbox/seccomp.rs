//! The worker's seccomp filter: a deny-list whose every entry kills the whole process
//! (`SECCOMP_RET_KILL_PROCESS`), on top of a default that allows.
//!
//! Why a deny-list: a worker is tokio, rmcp and a broker, and their system calls change with
//! every libc, tokio or kernel update (rseq, clone3, statx, futex_waitv...). An allow-list that
//! misses one kills sessions at random in production, which is crash semantics for users. The
//! calls listed here are the ones that reach beyond the process — other processes (ptrace,
//! process_vm_*, signals to other pids, also through a descriptor's I/O signal owner; new
//! processes; leaving its process group), the kernel's administration (mount, modules, kexec,
//! reboot, swap, clock, keyrings, bpf, perf), namespaces, identity changes — or that have a
//! history of kernel exploits with no use in a worker (userfaultfd, io_uring). A
//! worker never legitimately makes any of them, so a hit is an attack or a bug, and the process
//! dies with SIGSYS; the supervisor reports the session as crashed.
//!
//! Three filters are installed: this deny-list (built with `seccompiler`, which also kills any
//! call made with a foreign architecture's numbering, e.g. `int 0x80`), one that answers
//! `clone3` with ENOSYS (its flags sit in memory a filter cannot read, and glibc then falls back
//! to `clone`, whose flags the deny-list checks), and on x86_64 one that kills x32-numbered
//! calls, which would otherwise bypass every entry by number.

use std::collections::BTreeMap;
use std::io;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// System calls that reach beyond a process into the kernel's administration, other processes'
/// memory, namespaces or identity, refused to every worker whatever their arguments: they kill
/// the built-in worker, and the wrapped servers' filter (`exec_policy`) refuses them with EPERM.
pub(super) const BEYOND_THE_PROCESS: &[libc::c_long] = &[
    // Other processes' memory and descriptors.
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_process_madvise,
    libc::SYS_process_mrelease,
    libc::SYS_pidfd_getfd,
    libc::SYS_kcmp,
    libc::SYS_migrate_pages,
    libc::SYS_move_pages,
    // Mounts and the file-system root.
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_mount_setattr,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_fanotify_init,
    libc::SYS_quotactl,
    libc::SYS_quotactl_fd,
    // Namespaces.
    libc::SYS_unshare,
    libc::SYS_setns,
    // Kernel administration.
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_sethostname,
    libc::SYS_setdomainname,
    libc::SYS_syslog,
    libc::SYS_vhangup,
    libc::SYS_personality,
    libc::SYS_lookup_dcookie,
    // Keyrings.
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    // Frequent sources of kernel exploits, unused by tokio.
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    // Identity: a worker never changes who it is.
    libc::SYS_setuid,
    libc::SYS_setgid,
    libc::SYS_setreuid,
    libc::SYS_setregid,
    libc::SYS_setresuid,
    libc::SYS_setresgid,
    libc::SYS_setgroups,
    libc::SYS_setfsuid,
    libc::SYS_setfsgid,
    libc::SYS_capset,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_uselib,
];

/// What the built-in worker is also denied, unlike a wrapped server: it never starts a process
/// or program, nor signals one (the deny-list allows signals to its own pid by argument), nor
/// leaves the process group the supervisor signals it through (`setsid`; `setpgid`, which is
/// also glibc's `setpgrp()`: x86_64 and aarch64 have no `setpgrp` system call).
const WORKER_ONLY: &[libc::c_long] = &[
    libc::SYS_setsid,
    libc::SYS_setpgid,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_send_signal,
    libc::SYS_tkill,
    libc::SYS_execve,
    libc::SYS_execveat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_fork,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_vfork,
];

/// `__X32_SYSCALL_BIT`: x32 system calls are x86_64 numbers with this bit set.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Install the filters. Returns a sentence when this kernel has no seccomp filters at all.
pub(super) fn install() -> io::Result<Option<String>> {
    let own_pid = u64::from(std::process::id());
    install_filters(deny_list(own_pid), SeccompAction::KillProcess, "workers")
}

/// Compile and install the filters a process gets: `rules` answered with `action`, `clone3`
/// answered with ENOSYS (its flags live in memory a filter cannot read, so callers fall back
/// to `clone`, whose flags it can), and on x86_64 a filter that kills x32 calls. Returns a
/// sentence naming `who` when seccomp is unavailable (no filter for this architecture, or a
/// kernel without filters).
pub(super) fn install_filters(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    action: SeccompAction,
    who: &str,
) -> io::Result<Option<String>> {
    let Ok(arch) = TargetArch::try_from(std::env::consts::ARCH) else {
        return Ok(Some(format!(
            "seccomp unavailable: no filter is built for the {} architecture; {who} may make \
             any system call",
            std::env::consts::ARCH
        )));
    };
    let mut programs = vec![
        compile(rules, action, arch)?,
        compile(
            BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
            SeccompAction::Errno(libc::ENOSYS as u32),
            arch,
        )?,
    ];
    #[cfg(target_arch = "x86_64")]
    programs.push(x32_killer());
    apply(&programs, who)
}

/// Install `programs` in order on every thread. A kernel without seccomp filters (EINVAL on
/// the first) is reported as a degradation naming `who` may now make any system call; any other
/// failure is an error.
fn apply(programs: &[BpfProgram], who: &str) -> io::Result<Option<String>> {
    for (index, program) in programs.iter().enumerate() {
        if let Err(error) = seccompiler::apply_filter_all_threads(program) {
            let error = match error {
                seccompiler::Error::Seccomp(error) | seccompiler::Error::Prctl(error) => error,
                other => return Err(io::Error::other(other)),
            };
            // EINVAL on the first filter: a kernel without CONFIG_SECCOMP_FILTER.
            if error.raw_os_error() == Some(libc::EINVAL) && index == 0 {
                return Ok(Some(format!(
                    "seccomp unavailable: this kernel has no seccomp filters (EINVAL); {who} \
                     may make any system call"
                )));
            }
            return Err(error);
        }
    }
    Ok(None)
}

pub(super) fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    on_match: SeccompAction,
    arch: TargetArch,
) -> io::Result<BpfProgram> {
    SeccompFilter::new(rules, SeccompAction::Allow, on_match, arch)
        .and_then(BpfProgram::try_from)
        .map_err(io::Error::other)
}

/// Every deny-list entry: unconditional ones, and those that are fatal only with some
/// arguments. A rule matches when all its conditions hold; a call is fatal when any of its
/// rules matches (an empty list: always).
fn deny_list(own_pid: u64) -> BTreeMap<i64, Vec<SeccompRule>> {
    let mut rules = always(BEYOND_THE_PROCESS.iter().chain(WORKER_ONLY));
    let not_self = |index: u8| int_arg(index, SeccompCmpOp::Ne, own_pid);
    let not_zero = |index: u8| int_arg(index, SeccompCmpOp::Ne, 0);

    // New processes: a clone that does not create a thread (fork, vfork, posix_spawn).
    let clone_thread = u64::try_from(libc::CLONE_THREAD).unwrap_or(0);
    rules.insert(
        libc::SYS_clone,
        vec![rule(vec![masked_arg(0, clone_thread, 0)])],
    );

    // Signals to anyone but itself (abort() signals its own pid): the supervisor and other
    // workers may share its uid.
    for number in [
        libc::SYS_kill,
        libc::SYS_tgkill,
        libc::SYS_rt_sigqueueinfo,
        libc::SYS_rt_tgsigqueueinfo,
    ] {
        rules.insert(number, vec![rule(vec![not_self(0)])]);
    }
    // Limits and scheduling of other processes (0 means the caller).
    for number in [
        libc::SYS_prlimit64,
        libc::SYS_sched_setaffinity,
        libc::SYS_sched_setscheduler,
        libc::SYS_sched_setparam,
        libc::SYS_sched_setattr,
    ] {
        rules.insert(number, vec![rule(vec![not_zero(0), not_self(0)])]);
    }
    // Priority of anything but itself: another process, a process group, a whole user.
    let prio_process = libc::PRIO_PROCESS as u64;
    rules.insert(
        libc::SYS_setpriority,
        vec![
            rule(vec![int_arg(0, SeccompCmpOp::Ne, prio_process)]),
            rule(vec![not_zero(1), not_self(1)]),
        ],
    );
    rules.insert(libc::SYS_ioctl, ioctl_requests());
    rules.insert(libc::SYS_fcntl, io_signal_owner());
    // Becoming dumpable again, or naming a ptracer.
    rules.insert(
        libc::SYS_prctl,
        [libc::PR_SET_DUMPABLE, libc::PR_SET_PTRACER]
            .into_iter()
            .map(|option| rule(vec![int_arg(0, SeccompCmpOp::Eq, option as u32 as u64)]))
            .collect(),
    );
    rules
}

/// Every call of `numbers` matches, whatever its arguments.
pub(super) fn always<'a>(
    numbers: impl Iterator<Item = &'a i64>,
) -> BTreeMap<i64, Vec<SeccompRule>> {
    numbers.map(|&number| (number, Vec::new())).collect()
}

/// A rule that matches when all of `conditions` hold.
pub(super) fn rule(conditions: Vec<SeccompCondition>) -> SeccompRule {
    SeccompRule::new(conditions).expect("a rule with conditions is valid")
}

/// A condition on the 32-bit integer argument `index` (pids, options, ioctl requests).
pub(super) fn int_arg(index: u8, op: SeccompCmpOp, value: u64) -> SeccompCondition {
    SeccompCondition::new(index, SeccompCmpArgLen::Dword, op, value)
        .expect("argument index within 0-5")
}

/// A condition on the 64-bit argument `index` (flags): `argument & mask == value`.
pub(super) fn masked_arg(index: u8, mask: u64, value: u64) -> SeccompCondition {
    SeccompCondition::new(
        index,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(mask),
        value,
    )
    .expect("argument index within 0-5")
}

/// `ioctl` requests that type into the terminal stderr may be attached to.
fn terminal_injection() -> Vec<SeccompRule> {
    [libc::TIOCSTI, libc::TIOCLINUX]
        .into_iter()
        .map(|request| {
            rule(vec![int_arg(
                1,
                SeccompCmpOp::Eq,
                u64::from(request as u32),
            )])
        })
        .collect()
}

/// Every `ioctl` request a worker is refused: terminal injection and I/O signal owners.
pub(super) fn ioctl_requests() -> Vec<SeccompRule> {
    let mut rules = terminal_injection();
    rules.extend(
        [FIOSETOWN, SIOCSPGRP, FIOASYNC]
            .into_iter()
            .map(|request| rule(vec![int_arg(1, SeccompCmpOp::Eq, request)])),
    );
    rules
}

/// The kernel's `fcntl`/`ioctl` numbers for I/O signal owners (the same on every Linux
/// architecture; libc lacks some of them).
const F_SETSIG: u64 = 10;
const F_SETOWN_EX: u64 = 15;
const FIOSETOWN: u64 = 0x8901;
const SIOCSPGRP: u64 = 0x8902;
const FIOASYNC: u64 = 0x5452;

/// `fcntl` commands that would let the kernel signal another process for this one, without
/// `kill` (and past Landlock's signal scoping on kernels without it): naming the receiver of a
/// descriptor's SIGIO/SIGURG (`F_SETOWN`, `F_SETOWN_EX`), choosing that signal (`F_SETSIG`),
/// and turning on `O_ASYNC` (`F_SETFL`), which on a terminal makes the terminal's foreground
/// process group the receiver. Without them a descriptor's owner stays unset or, for leases
/// and directory notifications, the process itself.
pub(super) fn io_signal_owner() -> Vec<SeccompRule> {
    let command = |value: u64| int_arg(1, SeccompCmpOp::Eq, value);
    let o_async = u64::from(libc::O_ASYNC as u32);
    vec![
        rule(vec![command(libc::F_SETOWN as u64)]),
        rule(vec![command(F_SETOWN_EX)]),
        rule(vec![command(F_SETSIG)]),
        rule(vec![
            command(libc::F_SETFL as u64),
            masked_arg(2, o_async, o_async),
        ]),
    ]
}

/// A filter that kills any x32-numbered call (the architecture check passes for them, since
/// x32 reports AUDIT_ARCH_X86_64).
#[cfg(target_arch = "x86_64")]
fn x32_killer() -> BpfProgram {
    use seccompiler::sock_filter;
    const LOAD_WORD_ABSOLUTE: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JUMP_IF_AT_LEAST: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const RETURN: u16 = 0x06; // BPF_RET | BPF_K
    const SYSCALL_NUMBER_OFFSET: u32 = 0; // offsetof(struct seccomp_data, nr)
    let instruction = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    vec![
        instruction(LOAD_WORD_ABSOLUTE, 0, 0, SYSCALL_NUMBER_OFFSET),
        instruction(JUMP_IF_AT_LEAST, 0, 1, X32_SYSCALL_BIT),
        instruction(RETURN, 0, 0, libc::SECCOMP_RET_KILL_PROCESS),
        instruction(RETURN, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deny_list_compiles_for_this_architecture() {
        let arch = TargetArch::try_from(std::env::consts::ARCH).unwrap();
        let program = compile(deny_list(1234), SeccompAction::KillProcess, arch).unwrap();
        assert!(program.len() > BEYOND_THE_PROCESS.len() + WORKER_ONLY.len());
        assert!(
            program.len() < usize::from(u16::MAX),
            "fits one BPF program"
        );
    }
}
