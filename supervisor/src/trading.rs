//! Trading rails in the supervisor: the operator's limits per principal, the daily notional
//! every session of a principal shares, and the order journal.
//!
//! The limits ([`TradingConfig`]) come from flags (`--max-order-notional`,
//! `--max-daily-notional`, `--allowed-symbols`, `--read-only`, `--allow-live-broker`) for every
//! principal, and `[principals.<name>]` overrides (`--principal-rail NAME:KEY=VALUE`). A
//! session's worker gets its principal's [`TradingPolicy`] in its hello and enforces it inside
//! every order it executes. The one limit no worker can enforce alone — the daily notional,
//! across all the principal's sessions and across restarts — is the [`desk::TradingDesk`]'s:
//! each worker announces every order before sending it (`bulkhead/trading/intent`, answered
//! here, never relayed to a client), the desk reserves its notional against the principal's
//! day (UTC) and writes the journal ([`journal`]), and the worker reports the outcome, which
//! keeps or releases the reservation ([`ledger`]). At start the desk re-reads today's journal,
//! so a restart forgets nothing that was journaled.
//!
//! A live broker is listed to a principal only when the operator enabled it for that principal
//! and the principal has a maximum order notional, or an explicit `none` (an opt-out).

pub mod desk;
pub mod journal;
pub mod ledger;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

use bulkhead_protocol::trading::{LIVE_BROKERS, Rails, TEST_LIVE_BROKER, TradingPolicy};
use rust_decimal::Decimal;
use serde_json::{Value, json};

/// The keys of `--principal-rail NAME:KEY=VALUE` and of a `[principals.<name>]` table.
pub const RAIL_KEYS: [&str; 5] = [
    "max_order_notional",
    "max_daily_notional",
    "allowed_symbols",
    "read_only",
    "allow_live_brokers",
];

/// Largest trading policy a hello carries: half the handshake line's bound (thousands of
/// allowed symbols), so the rest of the hello always fits.
const MAX_POLICY_BYTES: usize = bulkhead_protocol::handshake::MAX_HANDSHAKE_BYTES / 2;

/// A notional limit as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    Amount(Decimal),
    /// `none`: explicitly no limit (which also counts as a decision for live brokers).
    Unlimited,
}

impl FromStr for Cap {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("none") {
            return Ok(Cap::Unlimited);
        }
        match text.parse::<Decimal>() {
            Ok(amount) if amount > Decimal::ZERO => Ok(Cap::Amount(amount.normalize())),
            _ => Err(format!(
                "{text:?} is not a positive amount (e.g. 1000 or 250.50) or none"
            )),
        }
    }
}

impl Cap {
    fn amount(self) -> Option<Decimal> {
        match self {
            Cap::Amount(amount) => Some(amount),
            Cap::Unlimited => None,
        }
    }

    fn to_json(self) -> Value {
        match self {
            Cap::Amount(amount) => json!(amount),
            Cap::Unlimited => json!("none"),
        }
    }
}

/// Rails as configured for everyone or for one principal; `None` inherits (from the defaults,
/// or, for the defaults, means no limit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RailSettings {
    pub max_order_notional: Option<Cap>,
    pub max_daily_notional: Option<Cap>,
    /// `Some(vec![])` lifts an inherited restriction (`all`).
    pub allowed_symbols: Option<Vec<String>>,
    pub read_only: Option<bool>,
    pub allow_live_brokers: Option<Vec<String>>,
}

impl RailSettings {
    /// Sets `key` from `value` (a flag's or a file's text).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "max_order_notional" => self.max_order_notional = Some(value.parse()?),
            "max_daily_notional" => self.max_daily_notional = Some(value.parse()?),
            "allowed_symbols" => self.allowed_symbols = Some(parse_symbols(value)),
            "read_only" => {
                self.read_only = Some(
                    value
                        .trim()
                        .parse()
                        .map_err(|_| format!("read_only must be true or false, got {value:?}"))?,
                );
            }
            "allow_live_brokers" => self.allow_live_brokers = Some(parse_list(value)),
            other => {
                return Err(format!(
                    "unknown rail {other:?}; the rails are {}",
                    RAIL_KEYS.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// These settings over `defaults`.
    fn over(&self, defaults: &RailSettings) -> RailSettings {
        RailSettings {
            max_order_notional: self.max_order_notional.or(defaults.max_order_notional),
            max_daily_notional: self.max_daily_notional.or(defaults.max_daily_notional),
            allowed_symbols: self
                .allowed_symbols
                .clone()
                .or_else(|| defaults.allowed_symbols.clone()),
            read_only: self.read_only.or(defaults.read_only),
            allow_live_brokers: self
                .allow_live_brokers
                .clone()
                .or_else(|| defaults.allow_live_brokers.clone()),
        }
    }
}

/// A comma-separated symbol list in upper case; `all` (or `*`) is no restriction.
fn parse_symbols(value: &str) -> Vec<String> {
    let symbols: Vec<String> = parse_list(value)
        .into_iter()
        .map(|symbol| symbol.to_ascii_uppercase())
        .collect();
    if symbols
        .iter()
        .any(|symbol| symbol == "ALL" || symbol == "*")
    {
        return Vec::new();
    }
    symbols
}

fn parse_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The operator's trading configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TradingConfig {
    /// For every principal.
    pub defaults: RailSettings,
    /// Per principal, over the defaults.
    pub principals: BTreeMap<String, RailSettings>,
    /// The order journal (append-only JSON lines), if any.
    pub journal: Option<PathBuf>,
}

impl TradingConfig {
    /// Checks the live broker names (the test-only one only with `--test-tools`); every
    /// problem is reported.
    pub fn check(&self, test_tools: bool) -> Vec<String> {
        let mut problems = Vec::new();
        let settings = std::iter::once(("--allow-live-broker", &self.defaults)).chain(
            self.principals
                .iter()
                .map(|(name, settings)| (name.as_str(), settings)),
        );
        for (whose, settings) in settings {
            for broker in settings.allow_live_brokers.iter().flatten() {
                let known = LIVE_BROKERS.contains(&broker.as_str())
                    || (test_tools && broker == TEST_LIVE_BROKER);
                if !known {
                    problems.push(format!(
                        "{whose}: {broker:?} is not a live broker; the live brokers are {}",
                        LIVE_BROKERS.join(", ")
                    ));
                }
            }
        }
        // The policy travels in the hello, whose line is bounded: leave room for the rest.
        let whose =
            std::iter::once(None).chain(self.principals.keys().map(|name| Some(name.as_str())));
        for principal in whose {
            let size = serde_json::to_vec(&self.policy_for(principal)).map_or(0, |json| json.len());
            if size > MAX_POLICY_BYTES {
                problems.push(format!(
                    "the trading rails of {} take {size} bytes in a worker's hello, over {MAX_POLICY_BYTES}: shorten allowed_symbols",
                    principal.unwrap_or("every principal")
                ));
            }
        }
        problems
    }

    fn settings_for(&self, principal: Option<&str>) -> RailSettings {
        match principal.and_then(|principal| self.principals.get(principal)) {
            Some(own) => own.over(&self.defaults),
            None => self.defaults.clone(),
        }
    }

    /// The rails and live brokers of `principal` (`None`: a worker that belongs to no
    /// principal yet, which gets the defaults).
    pub fn policy_for(&self, principal: Option<&str>) -> TradingPolicy {
        let settings = self.settings_for(principal);
        let decided = settings.max_order_notional.is_some();
        let live_brokers = if decided {
            settings.allow_live_brokers.clone().unwrap_or_default()
        } else {
            Vec::new()
        };
        TradingPolicy {
            rails: Rails {
                max_order_notional: settings.max_order_notional.and_then(Cap::amount),
                max_daily_notional: settings.max_daily_notional.and_then(Cap::amount),
                allowed_symbols: settings
                    .allowed_symbols
                    .filter(|symbols| !symbols.is_empty()),
                read_only: settings.read_only.unwrap_or(false),
            },
            live_brokers,
        }
    }

    /// Whether `principal`'s workers may be started before their principal is known (they
    /// get the defaults' policy in their hello).
    pub fn is_default_for(&self, principal: &str) -> bool {
        self.policy_for(Some(principal)) == self.policy_for(None)
    }

    /// Live brokers enabled without a maximum order notional or an opt-out: each one is not
    /// listed, which an operator should hear about.
    pub fn unlisted_live_brokers(&self) -> Vec<String> {
        let mut unlisted = Vec::new();
        let whose =
            std::iter::once(None).chain(self.principals.keys().map(|name| Some(name.as_str())));
        for principal in whose {
            let settings = self.settings_for(principal);
            if settings.max_order_notional.is_none() {
                for broker in settings.allow_live_brokers.iter().flatten() {
                    let name = principal.unwrap_or("every principal");
                    unlisted.push(format!("{broker} for {name}"));
                }
            }
        }
        unlisted
    }

    /// What `check-config` prints: the settings as given and every principal's effect.
    pub fn summary(&self) -> Value {
        let settings_json = |settings: &RailSettings| {
            json!({
                "max_order_notional": settings.max_order_notional.map(Cap::to_json),
                "max_daily_notional": settings.max_daily_notional.map(Cap::to_json),
                "allowed_symbols": settings.allowed_symbols,
                "read_only": settings.read_only,
                "allow_live_brokers": settings.allow_live_brokers,
            })
        };
        let effective: serde_json::Map<String, Value> =
            std::iter::once(("(default)".to_owned(), None))
                .chain(
                    self.principals
                        .keys()
                        .map(|name| (name.clone(), Some(name.as_str()))),
                )
                .map(|(name, principal)| {
                    let policy = self.policy_for(principal);
                    (
                        name,
                        json!({ "rails": policy.rails, "live_brokers": policy.live_brokers }),
                    )
                })
                .collect();
        json!({
            "defaults": settings_json(&self.defaults),
            "principals": self
                .principals
                .iter()
                .map(|(name, settings)| (name.clone(), settings_json(settings)))
                .collect::<serde_json::Map<_, _>>(),
            "effective": effective,
            "order_journal": self.journal,
        })
    }
}

/// Parses `NAME:KEY=VALUE` (a `--principal-rail`) into `principals`.
pub fn add_principal_rail(
    principals: &mut BTreeMap<String, RailSettings>,
    spec: &str,
) -> Result<(), String> {
    let parsed = spec
        .split_once(':')
        .and_then(|(name, rest)| Some((name, rest.split_once('=')?)));
    let Some((name, (key, value))) = parsed else {
        return Err(format!(
            "--principal-rail {spec:?} must be PRINCIPAL:KEY=VALUE, e.g. alice:max_order_notional=500"
        ));
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("--principal-rail {spec:?} names no principal"));
    }
    principals
        .entry(name.to_owned())
        .or_default()
        .set(key.trim(), value)
        .map_err(|problem| format!("--principal-rail {spec:?}: {problem}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    fn config() -> TradingConfig {
        let mut config = TradingConfig {
            defaults: RailSettings {
                max_order_notional: Some(Cap::Amount(d("1000"))),
                allowed_symbols: Some(vec!["AAPL".into()]),
                ..RailSettings::default()
            },
            ..TradingConfig::default()
        };
        for spec in [
            "alice:max_order_notional=none",
            "alice:allow_live_brokers=alpaca",
            "alice:allowed_symbols=all",
            "bob:read_only=true",
            "carol:allow_live_brokers=alpaca",
        ] {
            add_principal_rail(&mut config.principals, spec).unwrap();
        }
        config
    }

    #[test]
    fn principals_override_the_defaults_key_by_key() {
        let config = config();
        let default = config.policy_for(None).rails;
        assert_eq!(default.max_order_notional, Some(d("1000")));
        assert_eq!(default.allowed_symbols, Some(vec!["AAPL".to_owned()]));
        let alice = config.policy_for(Some("alice"));
        assert_eq!(alice.rails.max_order_notional, None);
        assert_eq!(
            alice.rails.allowed_symbols, None,
            "`all` lifts the default list"
        );
        let bob = config.policy_for(Some("bob")).rails;
        assert!(bob.read_only);
        assert_eq!(bob.max_order_notional, Some(d("1000")), "inherited");
        assert!(config.is_default_for("dave"));
        assert!(!config.is_default_for("bob"));
    }

    #[test]
    fn a_live_broker_is_listed_only_with_a_cap_or_an_explicit_opt_out() {
        let mut config = config();
        assert_eq!(
            config.policy_for(Some("alice")).live_brokers,
            ["alpaca"],
            "opted out"
        );
        assert_eq!(
            config.policy_for(Some("carol")).live_brokers,
            ["alpaca"],
            "capped"
        );
        assert!(
            config.policy_for(Some("bob")).live_brokers.is_empty(),
            "not enabled"
        );
        config.defaults.max_order_notional = None;
        assert!(
            config.policy_for(Some("carol")).live_brokers.is_empty(),
            "no cap, no opt-out"
        );
        assert_eq!(config.unlisted_live_brokers(), ["alpaca for carol"]);
    }

    #[test]
    fn bad_values_and_names_are_reported() {
        let mut principals = BTreeMap::new();
        for (spec, problem) in [
            ("alice", "must be PRINCIPAL:KEY=VALUE"),
            ("alice:max_order_notional=-5", "not a positive amount"),
            ("alice:read_only=maybe", "must be true or false"),
            ("alice:max_notional=5", "unknown rail"),
        ] {
            let error = add_principal_rail(&mut principals, spec).unwrap_err();
            assert!(error.contains(problem), "{error}");
        }
        let mut config = config();
        add_principal_rail(&mut config.principals, "erin:allow_live_brokers=robinhood").unwrap();
        let problems = config.check(false);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("\"robinhood\" is not a live broker"),
            "{problems:?}"
        );
        add_principal_rail(&mut config.principals, "erin:allow_live_brokers=paper-live").unwrap();
        assert!(!config.check(false).is_empty() && config.check(true).is_empty());
        let many: Vec<String> = (0..10_000).map(|n| format!("SYM{n}")).collect();
        add_principal_rail(
            &mut config.principals,
            &format!("erin:allowed_symbols={}", many.join(",")),
        )
        .unwrap();
        assert!(config.check(true)[0].contains("shorten allowed_symbols"));
    }
}
