//! Network brokers: their names, their documented endpoints, the rule every endpoint URL must
//! pass, and the network a built-in worker may reach for them.
//!
//! The supervisor resolves each network broker's endpoints (documented defaults, overridden by
//! `--broker-url NAME.KIND=URL`), checks them with [`Endpoint::parse`], and hands them to every
//! worker in its hello ([`NetworkBroker`]). Because a worker enters its sandbox before it reads
//! anything, the part of the sandbox those endpoints need — reading the resolver's files, and the
//! TCP ports it may connect to — travels earlier, as the worker's [`WorkerNetwork`] argument.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Alpaca's paper-trading broker: a free account, the same API as live.
pub const ALPACA_PAPER: &str = "alpaca-paper";
/// Alpaca with real money; listed only when the operator enables it.
pub const ALPACA_LIVE: &str = "alpaca";

/// Alpaca's documented paper Trading API (the `Paper` server of its OpenAPI document).
pub const DEFAULT_ALPACA_PAPER_TRADING_URL: &str = "https://paper-api.alpaca.markets";
/// Alpaca's documented live Trading API.
pub const DEFAULT_ALPACA_LIVE_TRADING_URL: &str = "https://api.alpaca.markets";
/// Alpaca's Market Data API, the same host for paper and live keys.
pub const DEFAULT_ALPACA_DATA_URL: &str = "https://data.alpaca.markets";

/// The two endpoints of a broker that `--broker-url NAME.KIND=URL` can override.
pub const ENDPOINT_KINDS: [&str; 2] = ["trading", "data"];

/// The flag that gives the built-in worker its [`WorkerNetwork`], as `--network=JSON`.
pub const NETWORK_FLAG: &str = "--network";

/// TCP port of DNS: glibc's resolver falls back to TCP when an answer is truncated.
pub const DNS_TCP_PORT: u16 = 53;

/// One network broker as a worker should offer it: its name and where its APIs are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkBroker {
    /// `alpaca-paper` or `alpaca`.
    pub name: String,
    /// Base URL of the Trading API, checked by [`Endpoint::parse`].
    pub trading_url: String,
    /// Base URL of the Market Data API, checked by [`Endpoint::parse`].
    pub data_url: String,
}

/// What the built-in worker's sandbox lets it reach on the network, decided before it reads its
/// hello: the resolver's files (only when it has a network broker) and the TCP ports it may
/// connect to (every other `connect` is refused where the kernel's Landlock has network rules).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerNetwork {
    /// Read the handful of files name resolution needs under `/etc` (none holds a secret).
    pub resolve_names: bool,
    /// TCP ports the worker may connect to.
    pub connect_tcp_ports: BTreeSet<u16>,
}

impl WorkerNetwork {
    /// The network the endpoints of `brokers` need: their ports, DNS over TCP when a name must
    /// be resolved, and the resolver's files. No broker: nothing at all.
    pub fn for_brokers(brokers: &[NetworkBroker]) -> Self {
        let mut network = Self::default();
        let urls = brokers
            .iter()
            .flat_map(|broker| [&broker.trading_url, &broker.data_url]);
        for url in urls {
            let Ok(endpoint) = Endpoint::parse(url) else {
                continue;
            };
            network.connect_tcp_ports.insert(endpoint.port);
            if endpoint.host.parse::<IpAddr>().is_err() {
                network.resolve_names = true;
            }
        }
        if network.resolve_names {
            network.connect_tcp_ports.insert(DNS_TCP_PORT);
        }
        network
    }

    /// `--network=JSON`, the worker's argument.
    pub fn to_arg(&self) -> String {
        format!(
            "{NETWORK_FLAG}={}",
            serde_json::to_string(self).unwrap_or_default()
        )
    }

    /// The policy in the worker's arguments; none given means no network at all.
    pub fn from_args<I: IntoIterator<Item = String>>(args: I) -> Result<Self, String> {
        let prefix = format!("{NETWORK_FLAG}=");
        match args
            .into_iter()
            .find_map(|arg| arg.strip_prefix(&prefix).map(str::to_owned))
        {
            Some(json) => serde_json::from_str(&json)
                .map_err(|error| format!("malformed {NETWORK_FLAG}: {error}")),
            None => Ok(Self::default()),
        }
    }
}

/// A checked endpoint URL: `https://host[:port][/path]`, or `http://` on a loopback address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub https: bool,
    /// The host as written (brackets stripped from an IPv6 literal).
    pub host: String,
    /// The port, explicit or the scheme's default.
    pub port: u16,
}

/// Why an endpoint URL was refused; each message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("{url:?} is not an http:// or https:// URL: write https://HOST[:PORT][/PATH]")]
    Scheme { url: String },
    #[error(
        "{url:?} uses plain http:// on a host that is not a loopback address: broker keys \
         would cross the network unencrypted; use https://, or http:// only on 127.0.0.1, \
         [::1] or localhost"
    )]
    PlainHttp { url: String },
    #[error("{url:?} has no valid host and port: write https://HOST[:PORT][/PATH]")]
    Authority { url: String },
    #[error(
        "{url:?} carries a user name, query or fragment: write only https://HOST[:PORT][/PATH]"
    )]
    Extra { url: String },
}

impl Endpoint {
    /// Checks `url`. Plain `http://` is accepted only for loopback addresses (local stand-ins,
    /// tests): the requests carry the account's key and secret in their headers.
    pub fn parse(url: &str) -> Result<Self, EndpointError> {
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(EndpointError::Scheme { url: url.into() });
        };
        if rest.contains(['?', '#', '@']) {
            return Err(EndpointError::Extra { url: url.into() });
        }
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = split_authority(authority)
            .ok_or_else(|| EndpointError::Authority { url: url.into() })?;
        let port = port.unwrap_or(if https { 443 } else { 80 });
        if !https && !is_loopback(&host) {
            return Err(EndpointError::PlainHttp { url: url.into() });
        }
        Ok(Self { https, host, port })
    }
}

/// `host[:port]` or `[v6][:port]`, with a non-empty host of URL-safe characters.
fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b));
    if !host_ok {
        return None;
    }
    let port = match port {
        Some(port) => Some(port.parse::<u16>().ok().filter(|port| *port != 0)?),
        None => None,
    };
    Some((host.to_ascii_lowercase(), port))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The documented default of `broker`'s `kind` endpoint, if `broker` is a network broker.
pub fn default_endpoint(broker: &str, kind: &str) -> Option<&'static str> {
    match (broker, kind) {
        (ALPACA_PAPER, "trading") => Some(DEFAULT_ALPACA_PAPER_TRADING_URL),
        (ALPACA_LIVE, "trading") => Some(DEFAULT_ALPACA_LIVE_TRADING_URL),
        (ALPACA_PAPER | ALPACA_LIVE, "data") => Some(DEFAULT_ALPACA_DATA_URL),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_and_http_only_on_loopback() {
        let endpoint = Endpoint::parse("https://paper-api.alpaca.markets").unwrap();
        assert_eq!(
            (endpoint.host.as_str(), endpoint.port),
            ("paper-api.alpaca.markets", 443)
        );
        for url in [
            "http://127.0.0.1:8080",
            "http://localhost:1/v2",
            "http://[::1]:9",
        ] {
            assert!(!Endpoint::parse(url).unwrap().https, "{url}");
        }
        assert!(matches!(
            Endpoint::parse("http://10.0.0.1:8080"),
            Err(EndpointError::PlainHttp { .. })
        ));
        assert!(matches!(
            Endpoint::parse("http://api.alpaca.markets"),
            Err(EndpointError::PlainHttp { .. })
        ));
        assert!(matches!(
            Endpoint::parse("ftp://x"),
            Err(EndpointError::Scheme { .. })
        ));
        for url in [
            "https://user@host",
            "https://host/?q=1",
            "https://:443",
            "https://h:0",
        ] {
            assert!(Endpoint::parse(url).is_err(), "{url}");
        }
        let error = Endpoint::parse("http://example.com")
            .unwrap_err()
            .to_string();
        assert!(error.contains("use https://"), "{error}");
    }

    #[test]
    fn the_network_covers_exactly_the_brokers_ports_and_resolves_only_names() {
        let brokers = [NetworkBroker {
            name: ALPACA_PAPER.into(),
            trading_url: DEFAULT_ALPACA_PAPER_TRADING_URL.into(),
            data_url: "http://127.0.0.1:8099".into(),
        }];
        let network = WorkerNetwork::for_brokers(&brokers);
        assert!(network.resolve_names);
        assert_eq!(network.connect_tcp_ports, BTreeSet::from([53, 443, 8099]));
        let loopback = [NetworkBroker {
            name: ALPACA_PAPER.into(),
            trading_url: "http://127.0.0.1:8099".into(),
            data_url: "http://127.0.0.1:8099/".into(),
        }];
        let network = WorkerNetwork::for_brokers(&loopback);
        assert!(!network.resolve_names);
        assert_eq!(network.connect_tcp_ports, BTreeSet::from([8099]));
        assert_eq!(WorkerNetwork::for_brokers(&[]), WorkerNetwork::default());
    }

    #[test]
    fn the_network_argument_round_trips() {
        let network = WorkerNetwork {
            resolve_names: true,
            connect_tcp_ports: BTreeSet::from([443]),
        };
        let args = vec!["--other".to_string(), network.to_arg()];
        assert_eq!(WorkerNetwork::from_args(args).unwrap(), network);
        assert_eq!(
            WorkerNetwork::from_args(Vec::new()).unwrap(),
            WorkerNetwork::default()
        );
        assert!(WorkerNetwork::from_args(vec!["--network={".into()]).is_err());
    }
}
