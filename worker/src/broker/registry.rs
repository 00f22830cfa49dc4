//! One session's brokers: which exist, which the session is logged in to, which is active.
//!
//! Each broker sits in a slot beside the credentials the session logged in with, if any.
//! Calls that trade or read the account take the credentials from the slot, so a broker is
//! never asked to act for a session that has not logged in to it. Dropping credentials (on
//! logout, re-login, or when the registry itself is dropped at the end of the session) wipes
//! them. A registry belongs to exactly one session; nothing here is shared between sessions.

use std::collections::BTreeMap;
use std::sync::Arc;

use bulkhead_protocol::trading::TradingPolicy;

use super::credentials::{CredentialResolver, CredentialSource, Credentials};
use super::paper::{PaperBroker, PaperConfig};
use super::{
    Account, Bars, BarsRequest, Broker, BrokerDescription, BrokerError, CloseRequest, Environment,
    MarketClock, Order, OrderFilter, OrderLookup, OrderRequest, Placement, Position, Quote,
    ReplaceRequest, SymbolInfo,
};

/// A test-only flavour of `paper` whose environment is `live`: the live-order rules (listed
/// only when the operator enabled it with a cap; every order confirmed by the user) are tested
/// with it end to end, without money. It exists only with `--test-tools`.
pub use bulkhead_protocol::trading::TEST_LIVE_BROKER;

/// One broker as `broker_list` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BrokerStatus {
    pub name: String,
    pub authenticated: bool,
    pub active: bool,
    #[serde(flatten)]
    pub description: BrokerDescription,
}

struct BrokerSlot {
    broker: Box<dyn Broker>,
    credentials: Option<Credentials>,
}

/// The brokers of one session.
pub struct BrokerRegistry {
    slots: BTreeMap<String, BrokerSlot>,
    active: Option<String>,
    resolver: Arc<dyn CredentialResolver>,
}

impl BrokerRegistry {
    /// An empty registry that resolves `credential_ref`s through `resolver`.
    pub fn new(resolver: Arc<dyn CredentialResolver>) -> Self {
        Self {
            slots: BTreeMap::new(),
            active: None,
            resolver,
        }
    }

    /// The registry a session starts with: the `paper` broker (active) on the system clock.
    pub fn with_paper(config: PaperConfig, resolver: Arc<dyn CredentialResolver>) -> Self {
        let mut registry = Self::new(resolver);
        registry.add(Box::new(PaperBroker::new(config)));
        registry
    }

    /// The registry of a session: `paper`, and each live broker the principal's `policy`
    /// enables (a live broker that is not enabled is not listed at all). `test_brokers` adds
    /// the test-only [`TEST_LIVE_BROKER`] when the policy enables it.
    pub fn for_session(
        paper: PaperConfig,
        policy: &TradingPolicy,
        test_brokers: bool,
        resolver: Arc<dyn CredentialResolver>,
    ) -> Self {
        let mut registry = Self::with_paper(paper.clone(), resolver);
        let enabled = |name: &str| policy.live_brokers.iter().any(|broker| broker == name);
        if test_brokers && enabled(TEST_LIVE_BROKER) {
            registry.add(Box::new(PaperBroker::new(PaperConfig {
                name: TEST_LIVE_BROKER.to_owned(),
                environment: Environment::Live,
                ..paper
            })));
        }
        registry
    }

    /// A `paper`-only registry with default settings and no credential references, on a
    /// clock stopped at a time every market but NSE trades (Monday 2026-01-05 15:00 UTC), so
    /// equity orders fill whenever the tests run.
    #[cfg(test)]
    pub fn for_tests() -> Self {
        use super::paper::market::test_clock::ManualClock;
        let mut registry = Self::new(Arc::new(super::credentials::UnavailableResolver));
        let clock = Arc::new(ManualClock::at(1_767_625_200));
        registry.add(Box::new(PaperBroker::with_clock(
            PaperConfig::default(),
            clock,
        )));
        registry
    }

    /// Adds `broker`, replacing any broker of the same name. The first broker added becomes
    /// the active one, so a session with only `paper` works without calling `broker_use`.
    pub fn add(&mut self, broker: Box<dyn Broker>) {
        let name = broker.name().to_owned();
        if self.active.is_none() {
            self.active = Some(name.clone());
        }
        self.slots.insert(
            name,
            BrokerSlot {
                broker,
                credentials: None,
            },
        );
    }

    pub fn statuses(&self) -> Vec<BrokerStatus> {
        self.slots
            .iter()
            .map(|(name, slot)| BrokerStatus {
                name: name.clone(),
                authenticated: slot.credentials.is_some(),
                active: self.active.as_deref() == Some(name.as_str()),
                description: slot.broker.describe(),
            })
            .collect()
    }

    pub fn active_broker(&self) -> Option<&str> {
        self.active.as_deref()
    }

    /// The broker a call addresses: `broker` if given, else the active one.
    pub fn target(&self, broker: Option<&str>) -> Result<String, BrokerError> {
        let name = match broker {
            Some(name) => name,
            None => self.active.as_deref().ok_or(BrokerError::NoActiveBroker)?,
        };
        if !self.slots.contains_key(name) {
            return Err(BrokerError::UnknownBroker {
                broker: name.to_owned(),
            });
        }
        Ok(name.to_owned())
    }

    fn slot(&mut self, broker: Option<&str>) -> Result<(String, &mut BrokerSlot), BrokerError> {
        let name = self.target(broker)?;
        match self.slots.get_mut(&name) {
            Some(slot) => Ok((name, slot)),
            None => Err(BrokerError::UnknownBroker { broker: name }),
        }
    }

    /// The broker a trading call addresses, with the session's credentials for it.
    fn logged_in(
        &mut self,
        broker: Option<&str>,
    ) -> Result<(&mut dyn Broker, &Credentials), BrokerError> {
        let (name, slot) = self.slot(broker)?;
        let BrokerSlot {
            broker,
            credentials,
        } = slot;
        match credentials {
            Some(credentials) => Ok((broker.as_mut(), credentials)),
            None => Err(BrokerError::NotLoggedIn { broker: name }),
        }
    }

    /// Logs in to `broker`. The new credentials replace (and so wipe) any earlier ones only
    /// once the broker accepted them.
    pub async fn login(
        &mut self,
        broker: &str,
        source: CredentialSource,
    ) -> Result<(), BrokerError> {
        let name = self.target(Some(broker))?;
        let credentials = match source {
            CredentialSource::Direct(credentials) => credentials,
            CredentialSource::Reference(reference) => {
                self.resolver.resolve(&name, &reference).await?
            }
        };
        let (_, slot) = self.slot(Some(&name))?;
        slot.broker.login(&credentials).await?;
        slot.credentials = Some(credentials);
        tracing::info!(broker = %name, "logged in to broker");
        Ok(())
    }

    /// Logs out of `broker` and wipes its credentials. Returns whether the session was
    /// logged in.
    pub async fn logout(&mut self, broker: &str) -> Result<bool, BrokerError> {
        let (name, slot) = self.slot(Some(broker))?;
        let was_logged_in = slot.credentials.take().is_some();
        slot.broker.logout().await?;
        tracing::info!(broker = %name, was_logged_in, "logged out of broker");
        Ok(was_logged_in)
    }

    /// Logs out of every broker, wiping all credentials: for the end of a session.
    pub async fn logout_all(&mut self) {
        let names: Vec<String> = self.slots.keys().cloned().collect();
        for name in names {
            if let Err(error) = self.logout(&name).await {
                tracing::warn!(broker = %name, %error, "logout at session end failed");
            }
        }
    }

    /// Makes `broker` the one calls use when they name none.
    pub fn use_broker(&mut self, broker: &str) -> Result<(), BrokerError> {
        let name = self.target(Some(broker))?;
        self.active = Some(name);
        Ok(())
    }

    pub async fn quote(
        &mut self,
        broker: Option<&str>,
        symbol: &str,
    ) -> Result<Quote, BrokerError> {
        let (_, slot) = self.slot(broker)?;
        slot.broker.quote(slot.credentials.as_ref(), symbol).await
    }

    /// The description of `broker` (or the active one).
    pub fn describe(&self, broker: Option<&str>) -> Result<BrokerDescription, BrokerError> {
        let name = self.target(broker)?;
        self.slots
            .get(&name)
            .map(|slot| slot.broker.describe())
            .ok_or(BrokerError::UnknownBroker { broker: name })
    }

    pub async fn bars(
        &mut self,
        broker: Option<&str>,
        request: BarsRequest,
    ) -> Result<Bars, BrokerError> {
        let (_, slot) = self.slot(broker)?;
        slot.broker.bars(slot.credentials.as_ref(), request).await
    }

    pub async fn market_clock(
        &mut self,
        broker: Option<&str>,
        market: Option<&str>,
    ) -> Result<Vec<MarketClock>, BrokerError> {
        let (_, slot) = self.slot(broker)?;
        slot.broker
            .market_clock(slot.credentials.as_ref(), market)
            .await
    }

    pub async fn symbols(
        &mut self,
        broker: Option<&str>,
        query: Option<&str>,
    ) -> Result<Vec<SymbolInfo>, BrokerError> {
        let (_, slot) = self.slot(broker)?;
        slot.broker.symbols(slot.credentials.as_ref(), query).await
    }

    pub async fn account(&mut self, broker: Option<&str>) -> Result<Account, BrokerError> {
        let (broker, credentials) = self.logged_in(broker)?;
        broker.account(credentials).await
    }

    pub async fn positions(&mut self, broker: Option<&str>) -> Result<Vec<Position>, BrokerError> {
        let (broker, credentials) = self.logged_in(broker)?;
        broker.positions(credentials).await
    }

    pub async fn orders(
        &mut self,
        broker: Option<&str>,
        filter: OrderFilter,
    ) -> Result<Vec<Order>, BrokerError> {
        let (broker, credentials) = self.logged_in(broker)?;
        broker.orders(credentials, filter).await
    }

    pub async fn place_order(
        &mut self,
        broker: Option<&str>,
        request: OrderRequest,
    ) -> Result<Placement, BrokerError> {
        let (broker, credentials) = self.logged_in(broker)?;
        broker.place_order(credentials, request).await
    }

    pub async fn cancel_order(
        &mut self,
        broker: Option<&str>,
        order_id: &str,
    ) -> Result<Order, BrokerError> {
        let (broker, credentials) = self.logged_in(broker)?;
        broker.cancel_order(credentials, order_id).await
    }

    pub async fn order(
        &mut self,
        broker: Option<&str>,
        lookup: OrderLookup,
    ) -> Result<Order, BrokerError> {
        let (broker, credentials) = self.logged_in(broker)?;
        broker.order(credentials, lookup).await
    }

    pub async fn replace_order(
        &mut self,
        broker: Option<&str>,
        order_id: &str,
        request: ReplaceRequest,
    ) -> Result<Order, BrokerError> {
        let (broker, credentials) = self.logged_in(broker)?;
        broker.replace_order(credentials, order_id, request).await
    }

    pub async fn cancel_all(
        &mut self,
        broker: Option<&str>,
        symbol: Option<&str>,
    ) -> Result<Vec<Order>, BrokerError> {
        let (broker, credentials) = self.logged_in(broker)?;
        broker.cancel_all(credentials, symbol).await
    }

    pub async fn close_position(
        &mut self,
        broker: Option<&str>,
        request: CloseRequest,
    ) -> Result<Order, BrokerError> {
        let (broker, credentials) = self.logged_in(broker)?;
        broker.close_position(credentials, request).await
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;
    use secrecy::SecretString;

    use super::*;
    use crate::broker::{OrderAmount, OrderType, Side};

    fn credentials() -> CredentialSource {
        CredentialSource::Direct(Credentials::new(
            SecretString::from("key"),
            SecretString::from("secret"),
        ))
    }

    fn market_buy(symbol: &str, qty: i64) -> OrderRequest {
        OrderRequest {
            symbol: symbol.to_owned(),
            side: Side::Buy,
            amount: OrderAmount::Qty(Decimal::from(qty)),
            order_type: OrderType::Market,
            time_in_force: None,
            limit_price: None,
            stop_price: None,
            take_profit_price: None,
            stop_loss_price: None,
            client_order_id: format!("test-{symbol}-{qty}"),
        }
    }

    #[tokio::test]
    async fn paper_is_listed_active_and_logged_out_at_first() {
        let registry = BrokerRegistry::for_tests();
        let statuses = registry.statuses();
        assert_eq!(statuses.len(), 1);
        assert_eq!(statuses[0].name, "paper");
        assert!(!statuses[0].authenticated && statuses[0].active);
        assert_eq!(registry.active_broker(), Some("paper"));
    }

    #[tokio::test]
    async fn trading_needs_a_login_but_quotes_do_not() {
        let mut registry = BrokerRegistry::for_tests();
        registry.quote(None, "AAPL").await.unwrap();
        let error = registry.account(None).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "not logged in to paper: call broker_login first"
        );
        registry.login("paper", credentials()).await.unwrap();
        registry.account(None).await.unwrap();
        assert!(registry.logout("paper").await.unwrap());
        assert!(matches!(
            registry.account(None).await,
            Err(BrokerError::NotLoggedIn { .. })
        ));
    }

    #[tokio::test]
    async fn unknown_brokers_are_refused_everywhere() {
        let mut registry = BrokerRegistry::for_tests();
        let unknown = BrokerError::UnknownBroker {
            broker: "nasdaq".into(),
        };
        assert_eq!(registry.use_broker("nasdaq"), Err(unknown.clone()));
        assert_eq!(
            registry.login("nasdaq", credentials()).await,
            Err(unknown.clone())
        );
        assert_eq!(registry.quote(Some("nasdaq"), "AAPL").await, Err(unknown));
    }

    #[tokio::test]
    async fn credential_refs_go_through_the_resolver() {
        let mut registry = BrokerRegistry::for_tests();
        let reference = CredentialSource::Reference("prod-keys".into());
        let error = registry.login("paper", reference).await.unwrap_err();
        assert!(matches!(error, BrokerError::CredentialRef(_)));
        assert!(!registry.statuses()[0].authenticated);
    }

    #[tokio::test]
    async fn two_registries_share_nothing() {
        let mut session_a = BrokerRegistry::for_tests();
        let mut session_b = BrokerRegistry::for_tests();
        session_a.login("paper", credentials()).await.unwrap();
        session_a
            .place_order(None, market_buy("AAPL", 3))
            .await
            .unwrap();

        assert!(!session_b.statuses()[0].authenticated);
        let error = session_b
            .place_order(None, market_buy("AAPL", 1))
            .await
            .unwrap_err();
        assert!(matches!(error, BrokerError::NotLoggedIn { .. }));

        session_b.login("paper", credentials()).await.unwrap();
        assert!(session_b.positions(None).await.unwrap().is_empty());
        assert!(
            session_b
                .orders(None, OrderFilter::All)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(session_a.positions(None).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn logout_all_wipes_every_login() {
        let mut registry = BrokerRegistry::for_tests();
        registry.login("paper", credentials()).await.unwrap();
        registry.logout_all().await;
        assert!(
            registry
                .statuses()
                .iter()
                .all(|status| !status.authenticated)
        );
    }
}
