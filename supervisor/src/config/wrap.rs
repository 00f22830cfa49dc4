//! The flags of external worker mode (`--wrap -- CMD ARGS...` and its `--wrap-*` options,
//! shared by `stdio` and `serve`) and their resolution into a [`WrapConfig`].
//!
//! Resolution happens once, at start, so a typo fails the start with exit 64 rather than every
//! session: the program is resolved as `execvp` would with the server's `PATH`, the variables
//! passed through are captured, and the Landlock paths are computed — the system's directories,
//! what `wrap::paths` derives from where the program is installed, and each
//! `--wrap-allow-path`. `npx -y PKG` and `uvx PKG` are recognised here (their runner found on
//! the supervisor's `PATH`, their cache directory chosen) and installed by `wrap::install`
//! before the first session.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use bulkhead_protocol::exec::{ExecPolicy, NetworkPolicy};
use clap::Args;

use crate::wrap::install::{self, PackageRun};
use crate::wrap::paths::{absolute, derived_read_paths, resolve_program};
use crate::wrap::{Renames, WrapConfig};

/// `PATH` of a wrapped server unless `--wrap-env PATH` passes the supervisor's: the usual
/// system directories, and nothing a user or a service's working directory controls.
pub const DEFAULT_WRAP_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Seconds a wrapped server gets to start and answer `initialize`: interpreters import for
/// seconds on a cold cache, and `npx` may download the package on first use.
pub const DEFAULT_WRAP_START_TIMEOUT_SECS: f64 = 30.0;
/// Address space (`RLIMIT_AS`) of a wrapped server: V8 reserves several GiB it never touches
/// (its pointer cage, code ranges, WebAssembly guard regions) and dies at start under the
/// built-in worker's 1 GiB; 8 GiB still stops a runaway. Resident memory is bounded by the
/// cgroup's `memory.max` (`--worker-max-memory`) where there is a cgroup.
pub const DEFAULT_WRAP_MAX_ADDRESS_SPACE: u64 = 8 << 30;

/// What a wrapped server may read and execute besides its own install prefix: the system's
/// programs and libraries, the files name resolution, TLS and time zones need, its own
/// `/proc/self`, the random devices, and the CPU and memory facts runtimes size themselves by.
/// `/etc` is listed file by file so that secrets kept there (`shadow`, keys) stay out of reach
/// even of a server that runs as root.
const DEFAULT_READ_PATHS: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/opt",
    "/nix/store",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/ca-certificates.conf",
    "/etc/pki",
    "/etc/crypto-policies",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/nsswitch.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/passwd",
    "/etc/group",
    "/etc/alternatives",
    "/etc/mime.types",
    "/etc/os-release",
    "/etc/python3",
    "/etc/node",
    "/dev/urandom",
    "/dev/random",
    "/dev/zero",
    "/proc/self",
    "/proc/cpuinfo",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/loadavg",
    "/proc/uptime",
    "/proc/version",
    "/sys/devices/system/cpu",
    "/sys/fs/cgroup",
];
/// systemd's `CacheDirectory=` (the unit's own cache, kept across restarts).
const ENV_CACHE_DIRECTORY: &str = "CACHE_DIRECTORY";
/// Bulkhead's directory under the user's cache directory.
const CACHE_NAME: &str = "bulkhead";
/// What a wrapped server may write besides its private home.
const DEFAULT_WRITE_PATHS: &[&str] = &["/dev/null"];

/// Flags of external worker mode, shared by `stdio` and `serve`.
//
// Config file (future): `[worker] command = ["npx", "some-mcp-server"]` stands for `--wrap --
// npx some-mcp-server`, and `[worker.wrap] rename = [...]`, `env = [...]`, `allow_paths = [...]`,
// `allow_write = [...]`, `network = "connect"`, `start_timeout_secs = 30` for the flags below.
// File values must be inserted before the `--`, which ends the flags.
#[derive(Debug, Clone, Default, Args)]
pub struct WrapOptions {
    /// Run the stdio MCP server given after `--` once per session instead of bulkhead-worker,
    /// e.g. `bulkhead stdio --wrap -- npx some-mcp-server`.
    #[arg(long)]
    pub wrap: bool,
    /// The wrapped server's command and arguments.
    #[arg(last = true, value_name = "CMD")]
    pub wrap_command: Vec<OsString>,
    /// Rename a wrapped tool (`OLD=NEW`) or one of its arguments (`TOOL:ARG=NEW`), e.g. when it
    /// collides with Bulkhead's session tools or `session` argument (repeatable).
    #[arg(long = "wrap-rename", value_name = "OLD=NEW")]
    pub wrap_renames: Vec<String>,
    /// Pass this variable of the supervisor's environment to every wrapped server (repeatable;
    /// PATH replaces the default /usr/local/bin:/usr/bin:/bin).
    #[arg(long = "wrap-env", value_name = "NAME")]
    pub wrap_env: Vec<String>,
    /// Let wrapped servers read and execute beneath this path (repeatable).
    #[arg(long = "wrap-allow-path", value_name = "PATH")]
    pub wrap_allow_paths: Vec<PathBuf>,
    /// Let wrapped servers write beneath this path (repeatable); shared by every session.
    #[arg(long = "wrap-allow-write", value_name = "PATH")]
    pub wrap_allow_write: Vec<PathBuf>,
    /// TCP for wrapped servers: `connect` (outgoing only), `none`, or `all`.
    #[arg(long = "wrap-network", value_name = "MODE", default_value = "connect", value_parser = parse_network)]
    pub wrap_network: NetworkPolicy,
    /// Seconds a wrapped server gets to start and answer its first request.
    #[arg(long = "wrap-start-timeout", value_name = "SECS", default_value_t = DEFAULT_WRAP_START_TIMEOUT_SECS)]
    pub wrap_start_timeout: f64,
    /// Address space of a wrapped server in bytes (RLIMIT_AS; Node needs more than 1 GiB).
    #[arg(long = "wrap-max-address-space", value_name = "BYTES", default_value_t = DEFAULT_WRAP_MAX_ADDRESS_SPACE)]
    pub wrap_max_address_space: u64,
    /// Where `npx -y PKG` and `uvx PKG` packages are installed once for every session
    /// (default: $CACHE_DIRECTORY, else $XDG_CACHE_HOME/bulkhead, else ~/.cache/bulkhead).
    #[arg(long = "wrap-cache", value_name = "DIR")]
    pub wrap_cache: Option<PathBuf>,
}

fn parse_network(value: &str) -> Result<NetworkPolicy, String> {
    match value {
        "connect" => Ok(NetworkPolicy::Connect),
        "none" => Ok(NetworkPolicy::None),
        "all" => Ok(NetworkPolicy::All),
        other => Err(format!("{other:?} is not one of connect, none, all")),
    }
}

impl WrapOptions {
    /// Validate; `Ok(None)` when external worker mode is off. Reports every problem.
    pub fn resolve(&self) -> Result<Option<WrapConfig>, Vec<String>> {
        let mut problems = Vec::new();
        if !self.wrap {
            if !self.wrap_command.is_empty() {
                problems.push(
                    "a command after `--` needs --wrap (e.g. --wrap -- npx some-mcp-server)".into(),
                );
            }
            for (flag, used) in [
                ("--wrap-rename", !self.wrap_renames.is_empty()),
                ("--wrap-env", !self.wrap_env.is_empty()),
                ("--wrap-allow-path", !self.wrap_allow_paths.is_empty()),
                ("--wrap-allow-write", !self.wrap_allow_write.is_empty()),
                ("--wrap-cache", self.wrap_cache.is_some()),
            ] {
                if used {
                    problems.push(format!("{flag} needs --wrap"));
                }
            }
            return if problems.is_empty() {
                Ok(None)
            } else {
                Err(problems)
            };
        }
        let renames = Renames::parse(&self.wrap_renames).unwrap_or_else(|found| {
            problems.extend(found);
            Renames::default()
        });
        let env = self.passed_environment(&mut problems);
        let search_path = env
            .iter()
            .find(|(name, _)| name == "PATH")
            .map(|(_, value)| value.clone())
            .unwrap_or_else(|| DEFAULT_WRAP_PATH.into());
        let problems_before = problems.len();
        let package = self.package_run(&search_path, &mut problems);
        // A package run that failed has said why; do not look for the runner again.
        let failed_run = problems.len() > problems_before;
        let program = match (self.wrap_command.first(), &package) {
            (Some(_), None) if failed_run => None,
            (None, _) => {
                problems.push("--wrap needs the server's command after `--`, e.g. --wrap -- npx some-mcp-server".into());
                None
            }
            (Some(_), Some(package)) => Some(package.runner_path.clone()),
            (Some(word), None) => resolve_program(word, &search_path)
                .map_err(|problem| problems.push(problem))
                .ok(),
        };
        let start_timeout = match Duration::try_from_secs_f64(self.wrap_start_timeout) {
            Ok(timeout) if !timeout.is_zero() => timeout,
            _ => {
                problems.push(format!(
                    "--wrap-start-timeout must be a positive number of seconds, got {}",
                    self.wrap_start_timeout
                ));
                Duration::ZERO
            }
        };
        if self.wrap_max_address_space < 256 << 20 {
            problems.push("--wrap-max-address-space must be at least 256 MiB (268435456)".into());
        }
        let allowed_read =
            absolute_paths("--wrap-allow-path", &self.wrap_allow_paths, &mut problems);
        let allowed_write =
            absolute_paths("--wrap-allow-write", &self.wrap_allow_write, &mut problems);
        let Some(program) = program.filter(|_| problems.is_empty()) else {
            return Err(problems);
        };
        let mut read: Vec<PathBuf> = DEFAULT_READ_PATHS.iter().map(PathBuf::from).collect();
        if package.is_none() {
            read.extend(derived_read_paths(
                &program,
                &self.wrap_command[1..],
                &search_path,
            ));
        }
        read.extend(allowed_read);
        let mut write: Vec<PathBuf> = DEFAULT_WRITE_PATHS.iter().map(PathBuf::from).collect();
        write.extend(allowed_write);
        read.sort();
        read.dedup();
        Ok(Some(WrapConfig {
            program,
            argv: self.wrap_command.clone(),
            renames,
            env,
            policy: ExecPolicy {
                read,
                write,
                network: self.wrap_network,
                supervisor_pid: 0,
            },
            start_timeout,
            max_address_space: self.wrap_max_address_space,
            package,
        }))
    }

    /// `npx -y PKG …` / `uvx PKG …`, to be installed once into the cache: the runner is found
    /// on the supervisor's `PATH` (it runs as the operator's command line would have run it),
    /// then on the server's.
    fn package_run(
        &self,
        search_path: &OsString,
        problems: &mut Vec<String>,
    ) -> Option<PackageRun> {
        let (runner, package, command, arguments) = install::recognise(&self.wrap_command)?;
        let word = &self.wrap_command[0];
        let own_path = std::env::var_os("PATH").unwrap_or_default();
        let runner_path = resolve_program(word, &own_path)
            .or_else(|_| resolve_program(word, search_path))
            .map_err(|_| {
                problems.push(format!(
                    "{} is not an executable file on the supervisor's PATH {} nor the servers' {} (install it, or give its full path)",
                    word.to_string_lossy(),
                    own_path.to_string_lossy(),
                    search_path.to_string_lossy()
                ))
            })
            .ok()?;
        let Some(cache) = self.cache_dir() else {
            problems.push(format!(
                "{} needs a cache directory to install {package} into: set --wrap-cache DIR (or HOME)",
                word.to_string_lossy()
            ));
            return None;
        };
        Some(PackageRun {
            runner,
            runner_path,
            package,
            command,
            arguments,
            cache,
        })
    }

    /// `--wrap-cache`, else systemd's `CacheDirectory=`, else the XDG cache directory.
    fn cache_dir(&self) -> Option<PathBuf> {
        if let Some(dir) = &self.wrap_cache {
            return Some(absolute(dir));
        }
        let env_dir = |name: &str| {
            std::env::var_os(name)
                .filter(|value| !value.is_empty())
                .map(PathBuf::from)
                .filter(|path| path.is_absolute())
        };
        // systemd's CacheDirectory= may list several, separated by colons: the first is ours.
        let systemd = std::env::var_os(ENV_CACHE_DIRECTORY)
            .and_then(|value| std::env::split_paths(&value).next())
            .filter(|path| path.is_absolute());
        systemd
            .or_else(|| env_dir("XDG_CACHE_HOME").map(|dir| dir.join(CACHE_NAME)))
            .or_else(|| env_dir("HOME").map(|dir| dir.join(".cache").join(CACHE_NAME)))
    }

    /// `PATH` (fixed unless passed through) and the `--wrap-env` variables that are set.
    fn passed_environment(&self, problems: &mut Vec<String>) -> Vec<(OsString, OsString)> {
        let mut env = Vec::new();
        for name in &self.wrap_env {
            if name.is_empty() || name.contains('=') || name.starts_with("BULKHEAD_") {
                problems.push(format!(
                    "--wrap-env {name:?} is not a variable a server may get"
                ));
                continue;
            }
            match std::env::var_os(name) {
                Some(value) => env.push((OsString::from(name), value)),
                None => tracing::warn!(
                    "--wrap-env {name}: not set in the supervisor's environment; wrapped servers will not get it"
                ),
            }
        }
        if !env.iter().any(|(name, _)| name == "PATH") {
            env.insert(0, ("PATH".into(), DEFAULT_WRAP_PATH.into()));
        }
        env
    }
}

fn absolute_paths(flag: &str, paths: &[PathBuf], problems: &mut Vec<String>) -> Vec<PathBuf> {
    paths
        .iter()
        .filter_map(|path| match std::fs::canonicalize(absolute(path)) {
            Ok(path) => Some(path),
            Err(error) => {
                problems.push(format!("{flag} {}: {error}", path.display()));
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn options(command: &[&str]) -> WrapOptions {
        WrapOptions {
            wrap: true,
            wrap_command: command.iter().map(OsString::from).collect(),
            wrap_start_timeout: DEFAULT_WRAP_START_TIMEOUT_SECS,
            wrap_max_address_space: DEFAULT_WRAP_MAX_ADDRESS_SPACE,
            ..WrapOptions::default()
        }
    }

    #[test]
    fn the_program_is_resolved_on_the_servers_path_and_its_prefix_is_readable() {
        let config = options(&["sh", "-c", "true"]).resolve().unwrap().unwrap();
        assert!(config.program.is_absolute() && config.program.ends_with("sh"));
        assert_eq!(config.argv[0], "sh");
        assert_eq!(config.env, [("PATH".into(), DEFAULT_WRAP_PATH.into())]);
        assert!(
            config
                .policy
                .read
                .iter()
                .any(|path| path == Path::new("/usr"))
        );
        assert!(
            !config
                .policy
                .read
                .iter()
                .any(|path| path == Path::new("/etc"))
        );
    }

    #[test]
    fn mistakes_are_all_reported() {
        let mut wrong = options(&["no-such-mcp-server-anywhere"]);
        wrong.wrap_renames = vec!["bad".into()];
        wrong.wrap_allow_paths = vec!["/no/such/path".into()];
        let problems = wrong.resolve().unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|problem| problem.contains("not an executable file on PATH"))
        );

        let orphan = WrapOptions {
            wrap_command: vec!["x".into()],
            wrap_env: vec!["HOME".into()],
            ..WrapOptions::default()
        };
        assert_eq!(orphan.resolve().unwrap_err().len(), 2);
        assert!(WrapOptions::default().resolve().unwrap().is_none());

        let runner = options(&["/no/such/dir/npx", "-y", "some-mcp-server"]);
        let problems = runner.resolve().unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("supervisor's PATH"), "{problems:?}");
    }
}
