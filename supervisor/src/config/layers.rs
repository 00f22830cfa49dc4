//! Configuration layers: built-in defaults < a TOML file (`--config`) < `BULKHEAD_*`
//! environment variables < command-line flags.
//!
//! Every flag also reads the environment variable named after it (`--max-sessions` ←
//! `BULKHEAD_MAX_SESSIONS`). A file value is turned into the flag it stands for and appended to
//! the command line only when that flag was neither given nor set in the environment, so clap
//! parses and validates all three layers the same way. Before that, each file value is checked on
//! its own, so a file with several mistakes — unknown keys, wrong types — reports all of them at
//! once; semantic checks (`Options::resolve`) then add theirs.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use serde_json::{Value, json};

use super::{Cli, Command, Config, ServeOptions};
use crate::http::{AuthMode, HttpConfig};

/// Each file key and the flag it stands for. Keys under `http.` apply to `serve` only.
const FILE_KEYS: &[(&str, &str)] = &[
    ("node", "node"),
    ("log.format", "log-format"),
    ("worker.path", "worker"),
    ("worker.paper_seed", "paper-seed"),
    ("worker.max_memory_bytes", "worker-max-memory"),
    ("worker.max_cpu_seconds", "worker-max-cpu-seconds"),
    ("worker.max_open_files", "worker-max-open-files"),
    ("worker.max_tasks", "worker-max-tasks"),
    ("worker.cpu_weight", "worker-cpu-weight"),
    ("worker.uid_range", "worker-uid-range"),
    ("worker.cgroup", "worker-cgroup"),
    ("sessions.max", "max-sessions"),
    ("sessions.max_per_principal", "max-sessions-per-principal"),
    ("sessions.max_in_flight", "max-in-flight"),
    ("sessions.idle_ttl_secs", "idle-ttl"),
    ("sessions.max_age_secs", "max-age"),
    ("sessions.call_timeout_secs", "call-timeout"),
    ("sessions.hard_cancel_secs", "hard-cancel"),
    ("sessions.evict_idle", "evict-idle"),
    ("sessions.max_frame_bytes", "max-frame-bytes"),
    ("credentials.dir", "credentials-dir"),
    ("pool.size", "pool-size"),
    ("pool.per_principal", "pool-per-principal"),
    ("pool.memory_budget_mib", "pool-memory-budget"),
    ("trading.max_order_notional", "max-order-notional"),
    ("trading.max_daily_notional", "max-daily-notional"),
    ("trading.allowed_symbols", "allowed-symbols"),
    ("trading.read_only", "read-only"),
    ("trading.allow_live_brokers", "allow-live-broker"),
    ("trading.order_journal", "order-journal"),
    ("worker.renames", "wrap-rename"),
    ("worker.pass_env", "wrap-env"),
    ("worker.allow_paths", "wrap-allow-path"),
    ("worker.allow_write", "wrap-allow-write"),
    ("worker.network", "wrap-network"),
    ("worker.start_timeout_secs", "wrap-start-timeout"),
    ("worker.max_address_space_bytes", "wrap-max-address-space"),
    ("http.listen", "http"),
    ("http.unix", "unix"),
    ("http.tokens", "tokens"),
    ("http.no_auth", "no-auth"),
    ("http.unix_peer_uid", "unix-peer-uid"),
    ("http.allow_origins", "allow-origin"),
    ("http.allow_hosts", "allow-host"),
    ("http.max_body_bytes", "max-body-bytes"),
    ("http.header_timeout_secs", "header-timeout"),
    ("http.max_connections", "max-connections"),
    (
        "http.max_connections_per_principal",
        "max-connections-per-principal",
    ),
    ("http.max_listen_per_principal", "max-listen-per-principal"),
    ("http.body_timeout_secs", "body-timeout"),
    ("http.rate_limit", "rate-limit"),
    ("http.rate_burst", "rate-burst"),
    ("http.admin_token_file", "admin-token-file"),
    ("http.metrics_token_file", "metrics-token-file"),
    ("http.sse_keepalive_secs", "sse-keepalive"),
    ("http.drain_deadline_secs", "drain-deadline"),
    ("http.public_url", "public-url"),
    ("http.oauth.issuers", "oauth-issuer"),
    ("http.oauth.audiences", "oauth-audience"),
    ("http.oauth.principal_claim", "oauth-principal-claim"),
    ("http.oauth.scopes", "oauth-scope"),
    (TOOL_SCOPES_TABLE, "oauth-tool-scope"),
    ("http.oauth.required_claims", "oauth-required-claim"),
    ("http.oauth.algorithms", "oauth-algorithm"),
    (
        "http.oauth.jwks_refresh_interval_secs",
        "oauth-jwks-refresh-interval",
    ),
];

/// The file table of per-tool scopes: `[http.oauth.tool_scopes] order_place = ["trade"]`
/// stands for `--oauth-tool-scope order_place=trade`.
const TOOL_SCOPES_TABLE: &str = "http.oauth.tool_scopes";

/// The file key for external worker mode's command: `command = ["npx", "some-server"]` stands
/// for `--wrap -- npx some-server`.
const WRAP_COMMAND_KEY: &str = "worker.command";

/// The file table of network brokers' endpoints: `[brokers.NAME] trading_url = "…"` and
/// `data_url = "…"` stand for `--broker-url NAME.trading=…` and `--broker-url NAME.data=…`.
const BROKERS_TABLE: &str = "brokers.";
/// The flag the `[brokers.NAME]` endpoint keys stand for.
const BROKER_URL_FLAG: &str = "broker-url";

/// `brokers.NAME.trading_url` → `NAME.trading`, for the endpoint keys of `[brokers.NAME]`.
fn broker_endpoint_key(key: &str) -> Option<String> {
    let rest = key.strip_prefix(BROKERS_TABLE)?;
    let (name, field) = rest.rsplit_once('.')?;
    let kind = field.strip_suffix("_url")?;
    Some(format!("{name}.{kind}"))
}
/// The file's per-principal rails: `[principals.<name>] <rail> = <value>` stands for
/// `--principal-rail <name>:<rail>=<value>`.
const PRINCIPALS_PREFIX: &str = "principals.";
const PRINCIPAL_RAIL_FLAG: &str = "principal-rail";

/// Flags that are not configuration (or name the file itself) and read no environment.
const NOT_LAYERED: [&str; 5] = ["help", "version", "config", "test-tools", "wrap"];

/// The command with every flag also reading `BULKHEAD_<FLAG>` from the environment.
fn command() -> clap::Command {
    let with_env = |command: clap::Command| {
        command.mut_args(|arg| {
            let name = match arg.get_long() {
                Some(long) if !NOT_LAYERED.contains(&long) && !long.starts_with("test-") => {
                    env_name(long)
                }
                _ => return arg,
            };
            arg.env(name)
        })
    };
    Cli::command()
        .mut_subcommand("stdio", with_env)
        .mut_subcommand("serve", with_env)
}

/// `BULKHEAD_<FLAG>` for the flag `--<long>`. clap wants a `'static` name, so each is leaked
/// once per process, not once per `command()` (which runs for every value of a file).
fn env_name(long: &str) -> &'static str {
    static NAMES: Mutex<BTreeMap<String, &'static str>> = Mutex::new(BTreeMap::new());
    let mut names = NAMES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    names.entry(long.to_string()).or_insert_with(|| {
        let name = format!("BULKHEAD_{}", long.to_ascii_uppercase().replace('-', "_"));
        Box::leak(name.into_boxed_str())
    })
}

/// What the command line asks for, with every layer applied.
pub enum Parsed {
    /// Run a subcommand.
    Run(Cli),
    /// `check-config`: these are the options `serve` would run with.
    CheckConfig(Box<ServeOptions>),
}

/// Parse the command line with every layer applied. Usage errors exit as clap does (status 2).
/// Problems in a configuration file come back beside the result, all of them, with the file's
/// valid values still applied so the caller can add its own checks to the same report.
pub fn parse_layers(args: Vec<OsString>) -> Result<(Parsed, Vec<String>), Vec<String>> {
    let program = args.first().cloned().unwrap_or_else(|| "bulkhead".into());
    let matches = command().get_matches_from(&args);
    let checking = matches.subcommand_name() == Some("check-config");
    let (base, file) = if checking {
        let file = matches
            .subcommand_matches("check-config")
            .and_then(|sub| sub.get_one::<PathBuf>("file").cloned());
        (vec![program.clone(), OsString::from("serve")], file)
    } else {
        let file = matches
            .subcommand()
            .and_then(|(_, sub)| sub.get_one::<PathBuf>("config").cloned());
        (args, file)
    };
    let base_matches = command()
        .try_get_matches_from(&base)
        .map_err(|error| vec![first_line(&error.to_string())])?;
    let Some((subcommand, sub_matches)) = base_matches.subcommand() else {
        return Err(vec!["no subcommand".into()]);
    };
    let mut layered = base.clone();
    let mut problems = Vec::new();
    if let Some(file) = &file {
        let given = |long: &str| was_given(sub_matches, subcommand, long);
        let (arguments, trailing, found) = file_arguments(file, subcommand, &program, given)?;
        // File flags go before a `--` (after it everything is the wrapped command); a wrapped
        // command from the file goes last.
        let split = layered
            .iter()
            .position(|arg| arg == "--")
            .unwrap_or(layered.len());
        layered.splice(split..split, arguments);
        if !layered.iter().any(|arg| arg == "--") {
            layered.extend(trailing);
        }
        problems = found;
    }
    let layered_matches = command()
        .try_get_matches_from(&layered)
        .map_err(|error| vec![first_line(&error.to_string())])?;
    let cli = Cli::from_arg_matches(&layered_matches).map_err(|error| vec![error.to_string()])?;
    let parsed = match (checking, cli.command) {
        (true, Command::Serve(options)) => Parsed::CheckConfig(options),
        (_, command) => Parsed::Run(Cli { command }),
    };
    Ok((parsed, problems))
}

/// Whether the flag `--long` was set on the command line or in the environment.
fn was_given(matches: &ArgMatches, subcommand: &str, long: &str) -> bool {
    let command = command();
    let id = command
        .find_subcommand(subcommand)
        .and_then(|sub| sub.get_arguments().find(|arg| arg.get_long() == Some(long)))
        .map(|arg| arg.get_id().to_string());
    let Some(id) = id else { return false };
    matches!(
        matches.value_source(&id),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// The file's valid values as flags, skipping those set by a stronger layer; the trailing
/// `--wrap -- CMD…` a `worker.command` stands for; and every problem in the file. An unreadable
/// or unparsable file is an error of its own.
#[allow(
    clippy::type_complexity,
    reason = "three plain lists, named in the doc comment"
)]
fn file_arguments(
    path: &Path,
    subcommand: &str,
    program: &OsString,
    given: impl Fn(&str) -> bool,
) -> Result<(Vec<OsString>, Vec<OsString>, Vec<String>), Vec<String>> {
    let where_ = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|error| vec![format!("cannot read config file {where_}: {error}")])?;
    let table: toml::Table = text.parse().map_err(|error: toml::de::Error| {
        vec![format!(
            "config file {where_}: {}",
            first_line(&error.to_string())
        )]
    })?;
    let mut entries = Vec::new();
    flatten("", &toml::Value::Table(table), &mut entries);
    let mut problems = Vec::new();
    let mut arguments = Vec::new();
    let mut trailing = Vec::new();
    for (key, value) in entries {
        let (key, value) = match tool_scopes_entry(key, value) {
            Ok(entry) => entry,
            Err(problem) => {
                problems.push(format!("config file {where_}: {problem}"));
                continue;
            }
        };
        if key == WRAP_COMMAND_KEY {
            match value.as_array().map(|items| {
                items
                    .iter()
                    .map(|item| item.as_str())
                    .collect::<Option<Vec<_>>>()
            }) {
                Some(Some(command)) if !command.is_empty() => {
                    trailing = ["--wrap", "--"]
                        .iter()
                        .map(OsString::from)
                        .chain(command.into_iter().map(OsString::from))
                        .collect();
                }
                _ => problems.push(format!(
                    "config file {where_}: {key}: expected a non-empty array of strings"
                )),
            }
            continue;
        }
        if let Some(rest) = key.strip_prefix(PRINCIPALS_PREFIX) {
            if given(PRINCIPAL_RAIL_FLAG) {
                continue;
            }
            match principal_rail(rest, &value) {
                Ok(flag) => arguments.push(flag),
                Err(problem) => problems.push(format!("config file {where_}: {key}: {problem}")),
            }
            continue;
        }
        let endpoint = broker_endpoint_key(&key);
        let long = match (&endpoint, FILE_KEYS.iter().find(|(known, _)| *known == key)) {
            (Some(_), _) => BROKER_URL_FLAG,
            (None, Some((_, long))) => long,
            (None, None) => {
                problems.push(format!("config file {where_}: unknown key {key:?}"));
                continue;
            }
        };
        if (subcommand == "stdio" && key.starts_with("http.")) || given(long) {
            continue;
        }
        let flags = match (&endpoint, value.as_str()) {
            (Some(target), Some(url)) => Ok(vec![format!("--{long}={target}={url}").into()]),
            (Some(_), None) => Err("expected a URL string".to_string()),
            (None, _) => as_flags(long, &value),
        };
        let flags = match flags {
            Ok(flags) => flags,
            Err(problem) => {
                problems.push(format!("config file {where_}: {key}: {problem}"));
                continue;
            }
        };
        let mut alone: Vec<OsString> = vec![program.clone(), subcommand.into()];
        alone.extend(flags.iter().cloned());
        if let Err(error) = command().try_get_matches_from(&alone) {
            problems.push(format!(
                "config file {where_}: {key}: {}",
                first_line(&error.to_string())
            ));
            continue;
        }
        arguments.extend(flags);
    }
    Ok((arguments, trailing, problems))
}

/// A `[http.oauth.tool_scopes]` entry `TOOL = SCOPE | [SCOPES]` as the table key with
/// `TOOL=SCOPE` values; any other entry unchanged.
fn tool_scopes_entry(key: String, value: toml::Value) -> Result<(String, toml::Value), String> {
    let Some(tool) = key
        .strip_prefix(TOOL_SCOPES_TABLE)
        .and_then(|rest| rest.strip_prefix('.'))
    else {
        return Ok((key, value));
    };
    let scopes = match &value {
        toml::Value::String(scope) => vec![scope.clone()],
        toml::Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    if scopes.is_empty() {
        return Err(format!(
            "{key}: expected a scope or a non-empty array of scopes"
        ));
    }
    let flags = scopes
        .into_iter()
        .map(|scope| toml::Value::String(format!("{tool}={scope}")))
        .collect();
    Ok((TOOL_SCOPES_TABLE.to_string(), toml::Value::Array(flags)))
}

/// `<name>.<rail>` and its value as a `--principal-rail` flag (the rail is checked later,
/// with every other problem).
fn principal_rail(rest: &str, value: &toml::Value) -> Result<OsString, String> {
    let Some((name, rail)) = rest.rsplit_once('.') else {
        return Err("expected a rail inside a [principals.<name>] table".into());
    };
    if !crate::trading::RAIL_KEYS.contains(&rail) {
        return Err(format!(
            "unknown rail; the rails are {}",
            crate::trading::RAIL_KEYS.join(", ")
        ));
    }
    let scalar = |value: &toml::Value| match value {
        toml::Value::String(text) => Ok(text.clone()),
        toml::Value::Integer(number) => Ok(number.to_string()),
        toml::Value::Float(number) => Ok(number.to_string()),
        toml::Value::Boolean(flag) => Ok(flag.to_string()),
        other => Err(format!("expected a value, got {}", other.type_str())),
    };
    let text = match value {
        toml::Value::Array(items) => items
            .iter()
            .map(scalar)
            .collect::<Result<Vec<_>, _>>()?
            .join(","),
        other => scalar(other)?,
    };
    Ok(format!("--{PRINCIPAL_RAIL_FLAG}={name}:{rail}={text}").into())
}

fn flatten(prefix: &str, value: &toml::Value, out: &mut Vec<(String, toml::Value)>) {
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&path, value, out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

/// A file value as the command-line flags it stands for.
fn as_flags(long: &str, value: &toml::Value) -> Result<Vec<OsString>, String> {
    let scalar = |value: &toml::Value| match value {
        toml::Value::String(text) => Ok(text.clone()),
        toml::Value::Integer(number) => Ok(number.to_string()),
        toml::Value::Float(number) => Ok(number.to_string()),
        other => Err(format!(
            "expected a string or a number, got {}",
            other.type_str()
        )),
    };
    match value {
        toml::Value::Boolean(true) => Ok(vec![format!("--{long}").into()]),
        toml::Value::Boolean(false) => Ok(Vec::new()),
        toml::Value::Array(items) => items
            .iter()
            .map(|item| scalar(item).map(|item| format!("--{long}={item}").into()))
            .collect(),
        other => Ok(vec![format!("--{long}={}", scalar(other)?).into()]),
    }
}

fn first_line(text: &str) -> String {
    text.lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or(text)
        .trim_start_matches("error: ")
        .to_string()
}

/// What `check-config` prints: the resolved configuration, secrets redacted.
pub fn redacted_summary(config: &Config, http: &HttpConfig) -> Value {
    let auth = match &http.auth {
        AuthMode::Tokens {
            tokens,
            unix_peer_uid,
        } => {
            json!({"mode": "tokens", "principals": tokens.principals(), "tokens": "[redacted]", "unix_peer_uid": unix_peer_uid})
        }
        AuthMode::UnixPeerUid => json!({"mode": "unix-peer-uid"}),
        AuthMode::None => json!({"mode": "none"}),
    };
    json!({
        "node": config.node,
        "worker": {
            "path": config.worker,
            "paper_seed": config.paper_seed,
            "sandbox": {
                "max_memory_bytes": config.confinement.sandbox.max_memory_bytes,
                "max_cpu_seconds": config.confinement.sandbox.max_cpu_seconds,
                "max_open_files": config.confinement.sandbox.max_open_files,
                "max_tasks": config.confinement.sandbox.max_tasks,
                "cpu_weight": config.confinement.sandbox.cpu_weight,
                "uid_range": format!("{:?}", config.confinement.uid_range),
                "cgroup": format!("{:?}", config.confinement.cgroup),
            },
        },
        "sessions": {
            "max": config.limits.max_sessions,
            "max_per_principal": config.limits.max_sessions_per_principal,
            "max_in_flight": config.limits.max_in_flight,
            "idle_ttl_secs": config.limits.idle_ttl.as_secs_f64(),
            "max_age_secs": config.limits.max_age.as_secs_f64(),
            "evict_idle": config.limits.evict_idle_at_limit,
            "call_timeout_secs": config.call_timeout.as_secs_f64(),
            "hard_cancel_secs": config.timeouts.hard_cancel.as_secs_f64(),
            "max_frame_bytes": config.max_frame_bytes,
        },
        "credentials": {"dir": config.credentials_dir},
        "brokers": config
            .broker_endpoints
            .all()
            .map(|broker| {
                let urls = json!({"trading_url": broker.trading_url, "data_url": broker.data_url});
                (broker.name.clone(), urls)
            })
            .collect::<serde_json::Map<String, Value>>(),
        "trading": config.trading.summary(),
        "pool": {
            "size": config.pool.shared,
            "per_principal": config.pool.per_principal,
            "memory_budget_mib": config.pool.memory_budget.map_or(0, |bytes| bytes / (1024 * 1024)),
        },
        // The wrapped command is shown, but never the values of the variables passed to it.
        "wrap": config.wrap.as_ref().map(|wrap| json!({
            "program": wrap.program,
            "argv": wrap.argv.iter().map(|arg| arg.to_string_lossy().into_owned()).collect::<Vec<_>>(),
            "pass_env": wrap.env.iter().map(|(name, _)| name.to_string_lossy().into_owned()).collect::<Vec<_>>(),
            "start_timeout_secs": wrap.start_timeout.as_secs_f64(),
            "max_address_space_bytes": wrap.max_address_space,
        })),
        "http": {
            "listen": http.http.map(|addr| addr.to_string()),
            "unix": http.unix,
            "auth": auth,
            "allow_origins": http.allowed_origins,
            "allow_hosts": http.allowed_hosts,
            "max_body_bytes": http.max_body_bytes,
            "header_timeout_secs": http.header_timeout.as_secs_f64(),
            "max_connections": http.max_connections,
            "max_connections_per_principal": http.principal_share,
            "max_listen_per_principal": http.listen_share,
            "body_timeout_secs": http.body_timeout.as_secs_f64(),
            "rate_limit": http.rate.map(|(per_second, _)| per_second),
            "rate_burst": http.rate.map(|(_, burst)| burst),
            "admin_token": http.admin_token.map(|_| "[redacted]"),
            "metrics_token": http.metrics_token.map(|_| "[redacted]"),
            "sse_keepalive_secs": http.sse_keepalive.as_secs_f64(),
            "drain_deadline_secs": http.drain_deadline.as_secs_f64(),
            "oauth": http.oauth.as_ref().map(crate::http::oauth::OAuthConfig::summary),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `config` fuzz target, which ran out of memory: every `command()` leaked
    /// its `BULKHEAD_*` names (clap wants them `'static`), a few kilobytes per parse of a
    /// configuration.
    #[test]
    fn the_environment_names_are_made_once() {
        let names = |command: clap::Command| -> Vec<(String, usize)> {
            command
                .find_subcommand("serve")
                .unwrap()
                .get_arguments()
                .filter_map(|arg| arg.get_env())
                .map(|env| {
                    let name = env.to_string_lossy().into_owned();
                    (name, env.as_encoded_bytes().as_ptr() as usize)
                })
                .collect()
        };
        let first = names(command());
        assert!(
            first
                .iter()
                .any(|(name, _)| name == "BULKHEAD_MAX_SESSIONS")
        );
        assert_eq!(names(command()), first, "new names were allocated");
    }
}
