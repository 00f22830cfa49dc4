//! The spawner with real processes: a child's limits, uid and cgroup as `/proc` shows them.

use bulkhead_tests::{proc_limit, proc_status, process_state};

use super::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn sleeper() -> WorkerCommand {
    WorkerCommand {
        program: "/bin/sleep".into(),
        args: vec!["30".into()],
        wrapped: None,
    }
}

fn confinement(uid_range: Option<UidRange>, cgroup: CgroupMode) -> Confinement {
    Confinement {
        sandbox: SandboxPolicy {
            max_memory_bytes: 512 << 20,
            max_cpu_seconds: 77,
            max_open_files: 99,
            max_tasks: 7,
            cpu_weight: 50,
        },
        uid_range,
        cgroup,
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

async fn stop(mut spawned: Spawned) {
    spawned.child.start_kill();
    spawned.child.wait().await.unwrap();
    drop(spawned);
}

#[test]
fn a_worker_starts_under_the_policy_limits_and_no_core() {
    let runtime = runtime();
    let spawner =
        Spawner::start_confined(runtime.handle().clone(), confinement(None, CgroupMode::Off))
            .unwrap();
    runtime.block_on(async {
        let spawned = spawner.spawn(sleeper()).await.unwrap();
        let pid = spawned.child.id();
        assert_eq!(
            proc_limit(pid, "Max address space"),
            (512u64 << 20).to_string()
        );
        assert_eq!(proc_limit(pid, "Max cpu time"), "77");
        assert_eq!(proc_limit(pid, "Max open files"), "99");
        assert_eq!(proc_limit(pid, "Max core file size"), "0");
        assert_eq!(spawned.sandbox.max_open_files, 99, "the hello repeats them");
        // Without a uid of its own, RLIMIT_NPROC would count the supervisor's uid: left alone.
        assert_ne!(proc_limit(pid, "Max processes"), "7");
        stop(spawned).await;
    });
}

#[test]
fn each_worker_gets_its_own_uid_from_the_range_and_gives_it_back() {
    if !is_root() {
        eprintln!("skipped: switching uids needs root");
        return;
    }
    let runtime = runtime();
    let range = UidRange::new(61_000, 2).unwrap();
    let spawner = Spawner::start_confined(
        runtime.handle().clone(),
        confinement(Some(range), CgroupMode::Off),
    )
    .unwrap();
    runtime.block_on(async {
        let first = spawner.spawn(sleeper()).await.unwrap();
        let second = spawner.spawn(sleeper()).await.unwrap();
        let (pid_a, pid_b) = (first.child.id(), second.child.id());
        assert_eq!(proc_status(pid_a, "Uid"), "61000 61000 61000 61000");
        assert_eq!(proc_status(pid_a, "Gid"), "61000 61000 61000 61000");
        assert_eq!(
            proc_status(pid_a, "Groups"),
            "",
            "supplementary groups dropped"
        );
        assert_eq!(proc_status(pid_b, "Uid"), "61001 61001 61001 61001");
        assert_eq!(
            proc_limit(pid_a, "Max processes"),
            "7",
            "RLIMIT_NPROC with a uid of its own"
        );
        for set in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
            assert_eq!(proc_status(pid_a, set), "0000000000000000", "{set}");
        }

        let exhausted = spawner.spawn(sleeper()).await.unwrap_err().to_string();
        assert!(
            exhausted.contains("uids of the worker range are in use"),
            "{exhausted}"
        );

        stop(first).await;
        let third = spawner.spawn(sleeper()).await.unwrap();
        assert_eq!(
            proc_status(third.child.id(), "Uid"),
            "61000 61000 61000 61000"
        );
        stop(second).await;
        stop(third).await;
    });
}

#[test]
fn a_uid_range_without_root_is_refused() {
    if is_root() {
        eprintln!("skipped: runs as root");
        return;
    }
    let runtime = runtime();
    let range = UidRange::new(61_000, 2).unwrap();
    let refused = Spawner::start_confined(
        runtime.handle().clone(),
        confinement(Some(range), CgroupMode::Off),
    );
    assert!(refused.is_err());
}

#[test]
fn a_worker_joins_its_own_cgroup_which_is_removed_after_reaping() {
    let Ok((mount, _)) = cgroup::own_cgroup() else {
        eprintln!("skipped: no cgroup v2 hierarchy");
        return;
    };
    let parent = mount.join(format!("bulkhead-spawn-test-{}", std::process::id()));
    if std::fs::create_dir(&parent).is_err() {
        eprintln!("skipped: cannot create a cgroup under {}", mount.display());
        return;
    }
    let runtime = runtime();
    let spawner = Spawner::start_confined(
        runtime.handle().clone(),
        confinement(None, CgroupMode::Under(parent.clone())),
    );
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let spawner = spawner.unwrap();
        runtime.block_on(async {
            let spawned = spawner.spawn(sleeper()).await.unwrap();
            let pid = spawned.child.id();
            let membership = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
            let expected = format!(
                "0::/{}/worker-0",
                parent.strip_prefix(&mount).unwrap().display()
            );
            assert!(
                membership.lines().any(|line| line == expected),
                "{membership}"
            );
            let worker_dir = parent.join("worker-0");
            assert!(worker_dir.is_dir());
            stop(spawned).await;
            assert!(
                !worker_dir.exists(),
                "the worker's cgroup is removed after reaping"
            );
        });
    }));
    let _ = std::fs::remove_dir(parent.join("worker-0"));
    let _ = std::fs::remove_dir(&parent);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn a_wrapped_launch_gets_the_socket_on_stdio_its_environment_only_and_a_private_home() {
    use tokio::io::AsyncReadExt;
    let runtime = runtime();
    let spawner =
        Spawner::start_confined(runtime.handle().clone(), Confinement::default()).unwrap();
    runtime.block_on(async {
        let script = "exec 3>&1; readlink /proc/self/fd/0 /proc/self/fd/3 >&2; env >&2; test -d \"$HOME\" && echo home-exists >&2";
        let command = WorkerCommand {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            wrapped: Some(WrappedLaunch {
                env: vec![
                    ("PATH".into(), Zeroizing::new(b"/usr/bin:/bin".to_vec())),
                    ("ACME_TOKEN".into(), Zeroizing::new(b"secret".to_vec())),
                ],
                policy: ExecPolicy::default(),
                max_address_space: 3 << 30,
            }),
        };
        assert!(!format!("{command:?}").contains("secret"), "Debug shows names only");
        let mut spawned = spawner.spawn(command).await.unwrap();
        let pid = spawned.child.id();
        assert_eq!(proc_limit(pid, "Max address space"), (3u64 << 30).to_string());
        let mut output = String::new();
        let mut stderr = spawned.stderr.take().expect("stderr is a pipe");
        stderr.read_to_string(&mut output).await.unwrap();
        spawned.child.wait().await.unwrap();
        let lines: Vec<&str> = output.lines().collect();
        assert!(lines[0].starts_with("socket:[") && lines[0] == lines[1], "{output}");
        let mut names: Vec<&str> = lines[2..]
            .iter()
            .filter_map(|line| line.split_once('=').map(|(name, _)| name))
            .filter(|name| *name != "PWD" && *name != "SHLVL" && *name != "_")
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["ACME_TOKEN", "BULKHEAD_EXEC_POLICY", "BULKHEAD_WORKER_PROTOCOL", "HOME", "PATH", "TMPDIR"],
            "{output}"
        );
        assert!(output.contains("home-exists"), "{output}");
        let home = lines
            .iter()
            .find_map(|line| line.strip_prefix("HOME="))
            .unwrap()
            .to_string();
        let policy = lines
            .iter()
            .find_map(|line| line.strip_prefix("BULKHEAD_EXEC_POLICY="))
            .unwrap();
        assert!(policy.contains(&home), "the private home is writable: {policy}");
        drop(spawned);
        assert!(!std::path::Path::new(&home).exists(), "the home goes with the lease");
    });
}

#[test]
fn workers_are_reaped_with_their_status_without_a_descriptor_each() {
    let runtime = runtime();
    let spawner =
        Spawner::start_confined(runtime.handle().clone(), confinement(None, CgroupMode::Off))
            .unwrap();
    runtime.block_on(async {
        // Several at once, some exiting before the spawner has even returned them: each status
        // still reaches its own child.
        let mut children = Vec::new();
        for code in [0, 3, 7, 0, 42] {
            let command = WorkerCommand {
                program: "/bin/sh".into(),
                args: vec!["-c".into(), format!("exit {code}").into()],
                wrapped: None,
            };
            children.push((code, spawner.spawn(command).await.unwrap()));
        }
        let mut sleepers = Vec::new();
        for _ in 0..3 {
            sleepers.push(spawner.spawn(sleeper()).await.unwrap());
        }
        // Nothing per child for exit notification: no pidfd among the descriptors.
        let pidfds = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
            .filter(|target| target.to_string_lossy().contains("pidfd"))
            .count();
        assert_eq!(
            pidfds, 0,
            "workers are waited for without a descriptor each"
        );
        for (code, mut spawned) in children {
            let status = spawned.child.wait().await.unwrap();
            assert_eq!(status.code(), Some(code));
            assert!(
                process_state(spawned.child.id()).is_none(),
                "reaped, not a zombie"
            );
        }
        // A killed one reports the signal; a dropped one is killed and reaped all the same.
        let mut killed = sleepers.pop().unwrap();
        killed.child.start_kill();
        let status = killed.child.wait().await.unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        let dropped: Vec<u32> = sleepers.iter().map(|spawned| spawned.child.id()).collect();
        drop(sleepers);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while dropped.iter().any(|&pid| process_state(pid).is_some()) {
            assert!(
                std::time::Instant::now() < deadline,
                "dropped workers killed and reaped"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    });
}

/// Processes alive (not zombies) in process group `group`.
fn group_members(group: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
            fields.first().is_some_and(|state| *state != "Z")
                && fields.get(2) == Some(&group.to_string().as_str())
        })
        .collect()
}

#[test]
fn what_a_worker_leaves_in_its_process_group_is_killed_before_it_is_reaped() {
    let runtime = runtime();
    let spawner =
        Spawner::start_confined(runtime.handle().clone(), confinement(None, CgroupMode::Off))
            .unwrap();
    runtime.block_on(async {
        // A non-interactive shell keeps its background job in its own process group.
        let command = WorkerCommand {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), "sleep 60 & sleep 0.3".into()],
            wrapped: None,
        };
        let mut spawned = spawner.spawn(command).await.unwrap();
        let group = spawned.child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while group_members(group).len() < 2 {
            assert!(std::time::Instant::now() < deadline, "the job started");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        spawned.child.wait().await.unwrap();
        // The group's id was still the shell's when the reaper killed it; nothing is signalled
        // through it afterwards.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !group_members(group).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the job left in the group is killed: {:?}",
                group_members(group)
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    });
}
