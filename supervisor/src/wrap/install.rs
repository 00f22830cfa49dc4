//! `npx -y PKG …` and `uvx PKG …` without a download per session: the package is installed
//! once, at supervisor start, into a cache Bulkhead owns, and every session runs it from there
//! with no network and no write access to it.
//!
//! `npx` would download the package into each session's private home (the only place a
//! session may write), so every session would wait for the registry and need the network. So
//! the supervisor runs the installer itself, as the operator's command line would have:
//! `npm install --prefix DIR PKG` (the `npm` beside `npx`) and then each session runs the
//! package's bin with `node`; `uv tool install PKG` with its tool and bin directories in `DIR`
//! (the `uv` beside `uvx`) and then each session runs the installed executable. `DIR` is
//! `<cache>/wrap/<npm|uv>/<package spec>`; an install is complete when its marker file is
//! there, is reused by every later start (no network needed), and is redone when the marker is
//! missing. A lock file beside it keeps two supervisors starting at once from installing into
//! the same directory. `DIR` joins the read set — never the write set — so sessions read the
//! cache but cannot change it. Installers run through `spawn` ([`crate::spawn::run_tool`]).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::fcntl::{Flock, FlockArg};

use super::WrapConfig;
use super::paths::{derived_read_paths, is_executable, resolve_program};

/// The file that marks a finished install; it holds the package spec.
const MARKER: &str = ".bulkhead-installed";
/// Lines of an installer's output quoted when it fails: the error, without pages of progress.
const INSTALLER_ERROR_LINES: usize = 40;

/// Which runner the wrapped command named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runner {
    /// `npx -y PKG ARGS…`.
    Npx,
    /// `uvx [--from SPEC] PKG ARGS…`.
    Uvx,
}

impl Runner {
    fn directory(self) -> &'static str {
        match self {
            Runner::Npx => "npm",
            Runner::Uvx => "uv",
        }
    }
}

/// A package the wrapped command would download in every session, to be installed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageRun {
    pub runner: Runner,
    /// `npx` or `uvx`, resolved.
    pub runner_path: PathBuf,
    /// What to install (`@scope/name@1.2.3`, `mcp-server-time`).
    pub package: String,
    /// The executable to run from it (uvx's `--from` names another package than the command).
    pub command: String,
    /// The arguments after the package.
    pub arguments: Vec<OsString>,
    /// The cache directory (`--wrap-cache`).
    pub cache: PathBuf,
}

/// The package and command of `npx -y PKG ARGS…` or `uvx [--from SPEC] PKG ARGS…`; `None`
/// for any other command, or a form of them this does not handle (then it runs as given).
pub fn recognise(argv: &[OsString]) -> Option<(Runner, String, String, Vec<OsString>)> {
    let runner = match Path::new(argv.first()?).file_name()?.to_str()? {
        "npx" => Runner::Npx,
        "uvx" => Runner::Uvx,
        _ => return None,
    };
    let mut rest = argv[1..].iter();
    let mut from = None;
    let package = loop {
        let word = rest.next()?.to_str()?;
        match (runner, word) {
            (Runner::Npx, "-y" | "--yes" | "-q" | "--quiet") => {}
            (Runner::Uvx, "--from") => from = Some(rest.next()?.to_str()?.to_string()),
            (Runner::Uvx, _) if word.starts_with("--from=") => {
                from = Some(word["--from=".len()..].to_string());
            }
            (_, word) if word.starts_with('-') => return None,
            (_, word) => break word.to_string(),
        }
    };
    let name = package_name(runner, &package)?;
    let (package, command) = match from {
        Some(from) => (from, package),
        None => (package, name),
    };
    package_name(runner, &package)?;
    Some((runner, package, command, rest.cloned().collect()))
}

/// The name in a registry package spec (`@scope/name@1.2` → `@scope/name`, `name@1` →
/// `name`, `name[extra]==1` → `name`); `None` for anything that is not a registry name (paths,
/// URLs, git specs).
fn package_name(runner: Runner, spec: &str) -> Option<String> {
    let (scope, rest) = match (runner, spec.strip_prefix('@')) {
        (Runner::Npx, Some(scoped)) => {
            let (scope, rest) = scoped.split_once('/')?;
            (Some(scope), rest)
        }
        _ => (None, spec),
    };
    let name: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .collect();
    let tail = &rest[name.len()..];
    let tail_ok = tail.is_empty()
        || tail.starts_with('@')
        || (runner == Runner::Uvx && (tail.starts_with('[') || tail.starts_with("==")));
    if name.is_empty() || name.starts_with('.') || !tail_ok || tail.contains(['/', ':', ' ']) {
        return None;
    }
    Some(match scope {
        Some(scope) => format!("@{scope}/{name}"),
        None => name,
    })
}

/// Install the package of `run` unless a finished install is cached, then point `config` at
/// it: its program and arguments, and the install joins the read set. Blocks (run at start).
pub fn prepare(config: &mut WrapConfig, run: &PackageRun) -> Result<(), String> {
    let dir = run
        .cache
        .join("wrap")
        .join(run.runner.directory())
        .join(cache_key(&run.package));
    let parent = dir.parent().unwrap_or(&run.cache);
    std::fs::create_dir_all(parent)
        .map_err(|error| format!("cannot create the cache {}: {error}", parent.display()))?;
    let lock_path = dir.with_extension("lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(|error| format!("cannot create {}: {error}", lock_path.display()))?;
    let _lock = Flock::lock(lock, FlockArg::LockExclusive)
        .map_err(|(_, error)| format!("cannot lock {}: {error}", lock_path.display()))?;
    let marker = dir.join(MARKER);
    if std::fs::read_to_string(&marker).is_ok_and(|spec| spec == run.package) {
        tracing::info!(
            "{} is installed in {}; sessions run it from there (read-only, no download)",
            run.package,
            dir.display()
        );
    } else {
        install(run, &dir)?;
        std::fs::write(&marker, &run.package)
            .map_err(|error| format!("cannot write {}: {error}", marker.display()))?;
    }
    let (program, argv) = match run.runner {
        Runner::Npx => node_command(run, &dir, config)?,
        Runner::Uvx => uv_command(run, &dir)?,
    };
    let search_path = config.search_path();
    let mut read = derived_read_paths(&program, &argv[1..], &search_path);
    read.push(std::fs::canonicalize(&dir).unwrap_or(dir));
    config.policy.read.extend(read);
    config.policy.read.sort();
    config.policy.read.dedup();
    config.program = program;
    config.argv = argv;
    Ok(())
}

/// A directory name for a package spec: its characters that are safe in a file name, the
/// others (the scope's `/`) as `+`.
fn cache_key(package: &str) -> String {
    package
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '@' | '.' | '_' | '-' | '=') {
                c
            } else {
                '+'
            }
        })
        .collect()
}

/// Run the installer into a fresh `dir`, logging what was installed and where.
fn install(run: &PackageRun, dir: &Path) -> Result<(), String> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|error| {
            format!(
                "cannot remove the unfinished install {}: {error}",
                dir.display()
            )
        })?;
    }
    std::fs::create_dir_all(dir)
        .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
    let started = Instant::now();
    let (tool, args, env): (PathBuf, Vec<OsString>, Vec<(OsString, OsString)>) = match run.runner {
        Runner::Npx => (
            sibling(&run.runner_path, "npm")?,
            [
                "install",
                "--prefix",
                &dir.to_string_lossy(),
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                &run.package,
            ]
            .map(OsString::from)
            .to_vec(),
            Vec::new(),
        ),
        Runner::Uvx => (
            sibling(&run.runner_path, "uv")?,
            [
                "tool",
                "install",
                "--quiet",
                "--link-mode",
                "copy",
                "--compile-bytecode",
                &run.package,
            ]
            .map(OsString::from)
            .to_vec(),
            vec![
                ("UV_TOOL_DIR".into(), dir.join("tools").into()),
                ("UV_TOOL_BIN_DIR".into(), dir.join("bin").into()),
            ],
        ),
    };
    let shown = format!(
        "{} {}",
        tool.display(),
        args.iter()
            .map(|arg| arg.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    tracing::info!("installing {} once for every session: {shown}", run.package);
    let output = crate::spawn::run_tool(&tool, &args, &env)
        .map_err(|error| format!("cannot run {shown}: {error}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(dir);
        let text = format!("{stderr}{stdout}");
        let lines: Vec<&str> = text.lines().collect();
        let kept = &lines[lines.len().saturating_sub(INSTALLER_ERROR_LINES)..];
        return Err(format!(
            "installing {} failed ({}): {shown}\n{}",
            run.package,
            output.status,
            kept.join("\n")
        ));
    }
    for line in stdout.lines().chain(stderr.lines()) {
        tracing::debug!("installer: {line}");
    }
    tracing::info!(
        "installed {} into {} in {:.1} s; sessions run it from there, read-only",
        run.package,
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The program named `name` beside `runner` (the `npm` of an `npx`, the `uv` of a `uvx`), as
/// named or as its links resolve, else on the supervisor's `PATH`.
fn sibling(runner: &Path, name: &str) -> Result<PathBuf, String> {
    let beside = [
        runner.to_path_buf(),
        std::fs::canonicalize(runner).unwrap_or_default(),
    ]
    .into_iter()
    .filter_map(|path| Some(path.parent()?.join(name)))
    .find(|candidate| is_executable(candidate));
    match beside {
        Some(found) => Ok(found),
        None => resolve_program(
            OsStr::new(name),
            &std::env::var_os("PATH").unwrap_or_default(),
        ),
    }
}

/// `node BIN ARGS…` for an npm install: the bin the package declares (its only one, or the
/// one named like the package), run by the `node` beside `npx` or on the server's `PATH`.
fn node_command(
    run: &PackageRun,
    dir: &Path,
    config: &WrapConfig,
) -> Result<(PathBuf, Vec<OsString>), String> {
    let package_dir = dir.join("node_modules").join(&run.command);
    let manifest = package_dir.join("package.json");
    let text = std::fs::read_to_string(&manifest)
        .map_err(|error| format!("cannot read {}: {error}", manifest.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|error| format!("{} is not JSON: {error}", manifest.display()))?;
    let unscoped = run.command.rsplit('/').next().unwrap_or(&run.command);
    let bin = match &json["bin"] {
        serde_json::Value::String(path) => Some(path.clone()),
        serde_json::Value::Object(bins) if bins.len() == 1 => bins
            .values()
            .next()
            .and_then(|v| v.as_str())
            .map(String::from),
        serde_json::Value::Object(bins) => bins
            .get(unscoped)
            .and_then(|v| v.as_str())
            .map(String::from),
        _ => None,
    }
    .ok_or_else(|| {
        format!(
            "{} declares no bin that npx would run (none, or several and none named {unscoped})",
            run.command
        )
    })?;
    let script = package_dir.join(bin);
    let node = sibling(&run.runner_path, "node")
        .or_else(|_| resolve_program(OsStr::new("node"), &config.search_path()))?;
    let mut argv: Vec<OsString> = vec!["node".into(), script.into()];
    argv.extend(run.arguments.iter().cloned());
    Ok((node, argv))
}

/// The executable `uv tool install` linked into `DIR/bin`.
fn uv_command(run: &PackageRun, dir: &Path) -> Result<(PathBuf, Vec<OsString>), String> {
    let program = dir.join("bin").join(&run.command);
    if !is_executable(&program) {
        let installed: Vec<String> = std::fs::read_dir(dir.join("bin"))
            .map(|entries| {
                entries
                    .filter_map(|entry| Some(entry.ok()?.file_name().to_string_lossy().into()))
                    .collect()
            })
            .unwrap_or_default();
        return Err(format!(
            "{} installs no executable named {} (it installs: {}); name it with uvx --from {} COMMAND",
            run.package,
            run.command,
            installed.join(", "),
            run.package
        ));
    }
    let mut argv: Vec<OsString> = vec![run.command.clone().into()];
    argv.extend(run.arguments.iter().cloned());
    Ok((program, argv))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<OsString> {
        text.split(' ').map(OsString::from).collect()
    }

    #[test]
    fn npx_and_uvx_forms_are_recognised() {
        let (runner, package, command, args) = recognise(&words(
            "npx -y @modelcontextprotocol/server-everything@2026.8.31 stdio",
        ))
        .unwrap();
        assert_eq!(runner, Runner::Npx);
        assert_eq!(package, "@modelcontextprotocol/server-everything@2026.8.31");
        assert_eq!(command, "@modelcontextprotocol/server-everything");
        assert_eq!(args, words("stdio"));
        let (runner, package, command, args) =
            recognise(&words("/usr/bin/uvx mcp-server-time --local-timezone UTC")).unwrap();
        assert_eq!(runner, Runner::Uvx);
        assert_eq!(
            (package.as_str(), command.as_str()),
            ("mcp-server-time", "mcp-server-time")
        );
        assert_eq!(args, words("--local-timezone UTC"));
        let (_, package, command, _) = recognise(&words(
            "uvx --from mcp-server-time@2026.10.19 mcp-server-time",
        ))
        .unwrap();
        assert_eq!(
            (package.as_str(), command.as_str()),
            ("mcp-server-time@2026.10.19", "mcp-server-time")
        );
        for other in [
            "node server.js",
            "npx -p pkg cmd",
            "npx ./local-dir",
            "npx github:user/repo",
            "uvx --python 3.12 tool",
            "npx -y",
        ] {
            assert_eq!(recognise(&words(other)), None, "{other}");
        }
    }

    #[test]
    fn cache_keys_are_file_names() {
        assert_eq!(
            cache_key("@modelcontextprotocol/server-everything@1.0"),
            "@modelcontextprotocol+server-everything@1.0"
        );
        assert_eq!(cache_key("../x"), "..+x");
    }
}
