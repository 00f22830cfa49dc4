//! Landlock: the worker gives up the file system, TCP `bind`, and signals and abstract Unix
//! sockets beyond itself.
//!
//! After exec a worker needs almost no file: its libraries are mapped, its socket and stdio
//! are open. It keeps read access to `/dev/urandom` and to its own `/proc/<pid>` directory
//! (for self-inspection), and read-write access to `/dev/null`. A worker with a network broker
//! may also read the few files name resolution needs ([`RESOLVER_FILES`]: none holds a secret),
//! and connect over TCP only to the ports its brokers' endpoints use (plus DNS over TCP when a
//! name must be resolved); without one it connects nowhere. Everything else, including every
//! other process's `/proc` directory and the supervisor's files, is denied even where the
//! uid's permissions would allow it. A worker never listens. With ABI 6 the worker also cannot signal processes or
//! connect to abstract Unix sockets outside its own Landlock domain: each worker is its own
//! domain, so that covers the supervisor and every other session.
//!
//! The ruleset is created best-effort, and whatever this kernel lacks is reported rather than
//! silently dropped.

use std::io;

use bulkhead_protocol::brokers::WorkerNetwork;
use landlock::{
    ABI, Access, AccessFs, AccessNet, LandlockStatus, NetPort, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope, path_beneath_rules,
};

/// The newest Landlock ABI whose features the worker uses: file access rights through ioctl
/// on devices (5), TCP bind (4), and scoping of signals and abstract sockets (6). ABI 7 only
/// adds audit flags.
pub(super) const TARGET_ABI: ABI = ABI::V6;

/// Paths the worker may read (missing ones are skipped: that only narrows the set).
const READABLE: [&str; 2] = ["/dev/urandom", "/proc/self"];
/// Paths the worker may read and write.
const WRITABLE: [&str; 1] = ["/dev/null"];
/// What glibc's `getaddrinfo` reads to resolve a broker's host name: the name service switch,
/// the hosts file, the resolver's servers and options, and its address-sorting rules. Public
/// configuration, no secrets; readable only by a worker with a network broker.
pub(super) const RESOLVER_FILES: [&str; 5] = [
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
];

/// Restrict this process. Returns a sentence when the kernel could not enforce everything.
pub(super) fn restrict(network: &WorkerNetwork) -> io::Result<Option<String>> {
    ensure_single_threaded()?;
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    let resolver: &[&str] = if network.resolve_names {
        &RESOLVER_FILES
    } else {
        &[]
    };
    let ports = network
        .connect_tcp_ports
        .iter()
        .map(|&port| Ok::<_, landlock::RulesetError>(NetPort::new(port, AccessNet::ConnectTcp)));
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(TARGET_ABI))
        .and_then(|ruleset| ruleset.handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp))
        .and_then(|ruleset| ruleset.scope(Scope::from_all(TARGET_ABI)))
        .and_then(|ruleset| ruleset.create())
        .and_then(|ruleset| ruleset.add_rules(path_beneath_rules(READABLE, read)))
        .and_then(|ruleset| ruleset.add_rules(path_beneath_rules(resolver, AccessFs::ReadFile)))
        .and_then(|ruleset| {
            ruleset.add_rules(path_beneath_rules(WRITABLE, read | AccessFs::WriteFile))
        })
        .and_then(|ruleset| ruleset.add_rules(ports))
        .and_then(|ruleset| ruleset.restrict_self())
        .map_err(io::Error::other)?;
    Ok(describe_shortfall(status.ruleset, status.landlock))
}

pub(super) fn describe_shortfall(
    ruleset: RulesetStatus,
    landlock: LandlockStatus,
) -> Option<String> {
    const CONSEQUENCE: &str = "workers can open any file their uid may, including other \
                               processes' /proc entries that dumpability does not protect";
    match (ruleset, landlock) {
        (RulesetStatus::FullyEnforced, _) => None,
        (_, LandlockStatus::NotImplemented) => Some(format!(
            "landlock unavailable: this kernel is built without it (ENOSYS); {CONSEQUENCE}"
        )),
        (_, LandlockStatus::NotEnabled) => Some(format!(
            "landlock unavailable: this kernel has it but it is not enabled (add landlock to \
             the lsm= boot parameter); {CONSEQUENCE}"
        )),
        (RulesetStatus::PartiallyEnforced, LandlockStatus::Available { effective_abi, .. }) => {
            Some(format!(
                "landlock partially enforced: this kernel speaks ABI {} and the worker asks \
                 for {}; missing: {}",
                effective_abi as i32,
                TARGET_ABI as i32,
                missing_features(effective_abi)
            ))
        }
        (_, _) => Some(format!("landlock not enforced; {CONSEQUENCE}")),
    }
}

fn missing_features(abi: ABI) -> &'static str {
    match abi {
        ABI::Unsupported | ABI::V1 | ABI::V2 | ABI::V3 => {
            "TCP bind and connect control (ABI 4), device ioctl control (ABI 5), signal and abstract socket \
             scoping (ABI 6)"
        }
        ABI::V4 => "device ioctl control (ABI 5), signal and abstract socket scoping (ABI 6)",
        _ => "signal and abstract socket scoping (ABI 6)",
    }
}

/// `landlock_restrict_self` binds only the calling thread (the crate's all-threads flag needs
/// ABI 8), so it must run before the worker starts any other.
pub(super) fn ensure_single_threaded() -> io::Result<()> {
    let threads = std::fs::read_dir("/proc/self/task")?.count();
    if threads == 1 {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{threads} threads exist; the sandbox must be entered before any is started"
        )))
    }
}
