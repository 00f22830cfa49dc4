//! `--broker-url NAME.KIND=URL`: where each network broker's APIs are.
//!
//! Every network broker has documented defaults ([`default_endpoint`]); each override names the
//! broker and the endpoint (`alpaca-paper.trading`, `alpaca.data`, …) and must pass
//! [`Endpoint::parse`] — `https://`, or plain `http://` on a loopback address only. The file form
//! is `[brokers.alpaca-paper] trading_url = "…"`, turned into the same flag by `config::layers`.

use std::collections::BTreeMap;

use bulkhead_protocol::brokers::{
    ALPACA_LIVE, ALPACA_PAPER, ENDPOINT_KINDS, Endpoint, NetworkBroker, default_endpoint,
};

/// The network brokers Bulkhead knows, in the order `broker_list` shows them.
pub const NETWORK_BROKERS: [&str; 2] = [ALPACA_PAPER, ALPACA_LIVE];

/// Every network broker's endpoints, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerEndpoints {
    brokers: BTreeMap<&'static str, NetworkBroker>,
}

impl Default for BrokerEndpoints {
    fn default() -> Self {
        let brokers = NETWORK_BROKERS
            .iter()
            .map(|&name| {
                let url = |kind| default_endpoint(name, kind).unwrap_or_default().to_owned();
                let broker = NetworkBroker {
                    name: name.to_owned(),
                    trading_url: url("trading"),
                    data_url: url("data"),
                };
                (name, broker)
            })
            .collect();
        Self { brokers }
    }
}

impl BrokerEndpoints {
    /// The defaults with each `NAME.KIND=URL` override applied; every bad one is reported.
    pub fn resolve(overrides: &[String], problems: &mut Vec<String>) -> Self {
        let mut endpoints = Self::default();
        for entry in overrides {
            if let Err(problem) = endpoints.apply(entry) {
                problems.push(format!("--broker-url {entry:?}: {problem}"));
            }
        }
        endpoints
    }

    fn apply(&mut self, entry: &str) -> Result<(), String> {
        let (target, url) = entry
            .split_once('=')
            .ok_or("expected NAME.KIND=URL, e.g. alpaca-paper.trading=https://…")?;
        let (name, kind) = target
            .split_once('.')
            .ok_or("expected NAME.KIND=URL, e.g. alpaca-paper.data=https://…")?;
        let broker = self.brokers.get_mut(name).ok_or_else(|| {
            format!(
                "no network broker {name:?}: the brokers with endpoints are {}",
                NETWORK_BROKERS.join(", ")
            )
        })?;
        Endpoint::parse(url).map_err(|error| error.to_string())?;
        let url = url.trim_end_matches('/').to_owned();
        match kind {
            "trading" => broker.trading_url = url,
            "data" => broker.data_url = url,
            _ => {
                return Err(format!(
                    "unknown endpoint {kind:?}: use {}",
                    ENDPOINT_KINDS.join(" or ")
                ));
            }
        }
        Ok(())
    }

    /// The endpoints of `name`, if it is a network broker.
    pub fn get(&self, name: &str) -> Option<&NetworkBroker> {
        self.brokers.get(name)
    }

    /// Every network broker's endpoints.
    pub fn all(&self) -> impl Iterator<Item = &NetworkBroker> {
        self.brokers.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_alpacas_documented_endpoints() {
        let endpoints = BrokerEndpoints::default();
        let paper = endpoints.get(ALPACA_PAPER).unwrap();
        assert_eq!(paper.trading_url, "https://paper-api.alpaca.markets");
        assert_eq!(paper.data_url, "https://data.alpaca.markets");
        let live = endpoints.get(ALPACA_LIVE).unwrap();
        assert_eq!(live.trading_url, "https://api.alpaca.markets");
    }

    #[test]
    fn overrides_apply_per_broker_and_endpoint_and_every_mistake_is_reported() {
        let mut problems = Vec::new();
        let endpoints = BrokerEndpoints::resolve(
            &[
                "alpaca-paper.trading=http://127.0.0.1:9000/".into(),
                "alpaca.data=https://data.example".into(),
                "alpaca-paper.trading=http://192.0.2.1:9000".into(),
                "kraken.trading=https://x".into(),
                "alpaca.stream=https://x".into(),
                "alpaca-paper".into(),
            ],
            &mut problems,
        );
        assert_eq!(
            endpoints.get(ALPACA_PAPER).unwrap().trading_url,
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            endpoints.get(ALPACA_LIVE).unwrap().data_url,
            "https://data.example"
        );
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("loopback"), "{}", problems[0]);
        assert!(problems[1].contains("no network broker"), "{}", problems[1]);
        assert!(problems[2].contains("trading or data"), "{}", problems[2]);
        assert!(problems[3].contains("NAME.KIND=URL"), "{}", problems[3]);
    }
}
