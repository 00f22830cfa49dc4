//! `alpaca-paper` and `alpaca`: Alpaca's Trading API v2 and Market Data API (stocks and crypto)
//! as a [`Broker`].
//!
//! Both brokers are this one type; they differ in name, environment and endpoints (the
//! supervisor passes those in the worker's hello: Alpaca's documented hosts unless the operator
//! overrides them). `alpaca-paper` trades Alpaca's free paper account; `alpaca` trades real
//! money and is offered only when the operator enables it. Login checks the keys against
//! `GET /v2/account`; market data needs them too, so quotes and bars need a login.
//!
//! Requests and their failures are [`http`]'s business, Alpaca's JSON and its mapping
//! [`wire`]'s, market data [`market`]'s, orders and positions [`orders`]'s, and placing an
//! order exactly once — even when an answer is lost — [`place`]'s.
//! Crypto pairs are written `BTC/USD` as Alpaca does; `BTC-USD` is accepted too. On Alpaca,
//! orders and `client_order_id`s belong to the account, not to the session: every session
//! logged in with the same keys sees the same orders.

mod http;
mod market;
mod orders;
mod place;
mod wire;

#[cfg(test)]
mod tests;

use std::time::Duration;

use bulkhead_protocol::brokers::{ALPACA_LIVE, NetworkBroker};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use self::http::{AlpacaHttp, Api, Failure, Request, Timeouts};
use self::wire::{CRYPTO, US_EQUITY, USD, WireAccount, WirePosition};
use super::model::Bars;
use super::{
    Account, BarsRequest, Broker, BrokerDescription, BrokerError, BrokerFuture, CloseRequest,
    Credentials, Environment, MarketClock, Order, OrderFilter, OrderLookup, OrderRequest,
    OrderType, Placement, Position, Quote, ReplaceRequest, SymbolInfo, TimeInForce,
};

/// The location of Alpaca's US crypto market data (`/v1beta3/crypto/{loc}/…`).
const CRYPTO_LOCATION: &str = "us";
/// Most orders `orders` asks Alpaca for: its own maximum per page.
const MAX_ORDERS_LISTED: usize = 500;
/// The call deadline a worker assumes when its hello names none: the supervisor's default.
pub const DEFAULT_CALL_DEADLINE: Duration = Duration::from_secs(60);

/// One Alpaca broker of one session.
pub struct AlpacaBroker {
    name: String,
    http: AlpacaHttp,
}

/// Why an Alpaca broker could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up broker {broker}: {reason}")]
pub struct SetupError {
    broker: String,
    reason: String,
}

impl AlpacaBroker {
    /// The broker `endpoints` describes; its requests fit within `call_deadline`.
    pub fn new(endpoints: &NetworkBroker, call_deadline: Duration) -> Result<Self, SetupError> {
        let environment = if endpoints.name == ALPACA_LIVE {
            Environment::Live
        } else {
            Environment::Paper
        };
        let http = AlpacaHttp::new(
            &endpoints.name,
            environment,
            &endpoints.trading_url,
            &endpoints.data_url,
            Timeouts::within(call_deadline),
        )
        .map_err(|error| SetupError {
            broker: endpoints.name.clone(),
            reason: error.to_string(),
        })?;
        Ok(Self {
            name: endpoints.name.clone(),
            http,
        })
    }

    /// Sends `request` and maps any failure the general way.
    async fn call<T: DeserializeOwned>(
        &self,
        credentials: &Credentials,
        request: Request<'_>,
    ) -> Result<T, BrokerError> {
        self.http
            .send(credentials, request)
            .await
            .map_err(|failure| self.http.error(failure))
    }

    /// Market data needs the session's keys on Alpaca.
    fn data_credentials<'a>(
        &self,
        credentials: Option<&'a Credentials>,
    ) -> Result<&'a Credentials, BrokerError> {
        credentials.ok_or_else(|| BrokerError::NotLoggedIn {
            broker: self.name.clone(),
        })
    }

    async fn login_now(&self, credentials: &Credentials) -> Result<(), BrokerError> {
        let request = Request::get(Api::Trading, "/v2/account");
        match self.http.send::<WireAccount>(credentials, request).await {
            Ok(account) if account.account_blocked || account.trading_blocked => {
                Err(BrokerError::CredentialsRefused {
                    broker: self.name.clone(),
                    reason: "Alpaca accepted the keys but the account is blocked from \
                             trading; see the Alpaca dashboard"
                        .to_owned(),
                })
            }
            Ok(_) => Ok(()),
            Err(Failure::Status { status, .. })
                if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN =>
            {
                Err(self.http.keys_refused())
            }
            Err(failure) => Err(self.http.error(failure)),
        }
    }

    fn describe_now(&self) -> BrokerDescription {
        BrokerDescription {
            environment: self.http.environment(),
            order_types: OrderType::ALL.to_vec(),
            time_in_force: TimeInForce::ALL.to_vec(),
            notional_orders: true,
            bracket_orders: true,
            markets: vec![US_EQUITY.to_owned(), CRYPTO.to_owned()],
            account_currency: USD.to_owned(),
        }
    }
}

/// `text` as one path segment: Alpaca's ids and symbols are letters, digits, `-` and `.`;
/// anything else is percent-encoded so it cannot reach another path, and a segment of dots
/// alone (which URLs read as "this" or "the parent" directory) becomes `-`, which names nothing.
fn path_segment(text: &str) -> String {
    if text.bytes().all(|byte| byte == b'.') {
        return "-".to_owned();
    }
    let mut segment = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            segment.push(char::from(byte));
        } else {
            segment.push_str(&format!("%{byte:02X}"));
        }
    }
    segment
}

impl Broker for AlpacaBroker {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> BrokerDescription {
        self.describe_now()
    }

    fn login<'a>(&'a mut self, credentials: &'a Credentials) -> BrokerFuture<'a, ()> {
        Box::pin(self.login_now(credentials))
    }

    fn logout(&mut self) -> BrokerFuture<'_, ()> {
        // Nothing is derived from the keys; the registry wipes them.
        Box::pin(std::future::ready(Ok(())))
    }

    fn quote<'a>(
        &'a mut self,
        credentials: Option<&'a Credentials>,
        symbol: &'a str,
    ) -> BrokerFuture<'a, Quote> {
        Box::pin(async move {
            let credentials = self.data_credentials(credentials)?;
            self.quote_now(credentials, symbol).await
        })
    }

    fn bars<'a>(
        &'a mut self,
        credentials: Option<&'a Credentials>,
        request: BarsRequest,
    ) -> BrokerFuture<'a, Bars> {
        Box::pin(async move {
            let credentials = self.data_credentials(credentials)?;
            self.bars_now(credentials, request).await
        })
    }

    fn market_clock<'a>(
        &'a mut self,
        credentials: Option<&'a Credentials>,
        market: Option<&'a str>,
    ) -> BrokerFuture<'a, Vec<MarketClock>> {
        Box::pin(async move {
            let credentials = self.data_credentials(credentials)?;
            self.clocks_now(credentials, market).await
        })
    }

    fn symbols<'a>(
        &'a mut self,
        credentials: Option<&'a Credentials>,
        query: Option<&'a str>,
    ) -> BrokerFuture<'a, Vec<SymbolInfo>> {
        Box::pin(async move {
            let credentials = self.data_credentials(credentials)?;
            self.symbols_now(credentials, query).await
        })
    }

    fn account<'a>(&'a mut self, credentials: &'a Credentials) -> BrokerFuture<'a, Account> {
        Box::pin(async move {
            let request = Request::get(Api::Trading, "/v2/account");
            let account: WireAccount = self.call(credentials, request).await?;
            Ok(account.into_model())
        })
    }

    fn positions<'a>(
        &'a mut self,
        credentials: &'a Credentials,
    ) -> BrokerFuture<'a, Vec<Position>> {
        Box::pin(async move {
            let request = Request::get(Api::Trading, "/v2/positions");
            let positions: Vec<WirePosition> = self.call(credentials, request).await?;
            Ok(positions
                .into_iter()
                .map(WirePosition::into_model)
                .collect())
        })
    }

    fn orders<'a>(
        &'a mut self,
        credentials: &'a Credentials,
        filter: OrderFilter,
    ) -> BrokerFuture<'a, Vec<Order>> {
        Box::pin(self.orders_now(credentials, filter))
    }

    fn order<'a>(
        &'a mut self,
        credentials: &'a Credentials,
        lookup: OrderLookup,
    ) -> BrokerFuture<'a, Order> {
        Box::pin(self.order_now(credentials, lookup))
    }

    fn place_order<'a>(
        &'a mut self,
        credentials: &'a Credentials,
        request: OrderRequest,
    ) -> BrokerFuture<'a, Placement> {
        Box::pin(self.place(credentials, request))
    }

    fn replace_order<'a>(
        &'a mut self,
        credentials: &'a Credentials,
        order_id: &'a str,
        request: ReplaceRequest,
    ) -> BrokerFuture<'a, Order> {
        Box::pin(self.replace_now(credentials, order_id, request))
    }

    fn cancel_order<'a>(
        &'a mut self,
        credentials: &'a Credentials,
        order_id: &'a str,
    ) -> BrokerFuture<'a, Order> {
        Box::pin(self.cancel_now(credentials, order_id))
    }

    fn cancel_all<'a>(
        &'a mut self,
        credentials: &'a Credentials,
        symbol: Option<&'a str>,
    ) -> BrokerFuture<'a, Vec<Order>> {
        Box::pin(self.cancel_all_now(credentials, symbol))
    }

    fn close_position<'a>(
        &'a mut self,
        credentials: &'a Credentials,
        request: CloseRequest,
    ) -> BrokerFuture<'a, Order> {
        Box::pin(self.close_now(credentials, request))
    }
}
