//! Alpaca's JSON, as its OpenAPI documents describe it (Trading API v2, Market Data API), and
//! the mapping between it and the broker model.
//!
//! Only the fields the model needs are read; every other field is ignored, so Alpaca adding
//! one changes nothing. Trading amounts are JSON strings and market-data prices JSON numbers;
//! both become [`Decimal`]s (a number through its shortest decimal spelling, so `190.12` stays
//! `190.12`). An Alpaca order has no list of executions, so its fills are summarised as one
//! fill of `filled_qty` at `filled_avg_price`.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::broker::model::{
    Account, Bar, Fill, MarketClock, Order, OrderClass, OrderRequest, OrderStatus, OrderType,
    Position, Quote, SymbolInfo, TimeInForce, Timeframe,
};
use crate::broker::{OrderAmount, Side};

/// The currency of every Alpaca account and US equity.
pub const USD: &str = "USD";
/// The market name of US equities, Alpaca's asset class.
pub const US_EQUITY: &str = "us_equity";
/// The market name of crypto pairs, Alpaca's asset class.
pub const CRYPTO: &str = "crypto";

/// The price step of a US equity when Alpaca does not give one: one cent.
const DEFAULT_EQUITY_PRICE_INCREMENT: Decimal = Decimal::from_parts(1, 0, 0, false, 2);
/// The quantity step of a fractionable equity: Alpaca accepts nine decimal places.
const FRACTIONAL_QTY_INCREMENT: Decimal = Decimal::from_parts(1, 0, 0, false, 9);
/// Alpaca's smallest notional order for a fractionable equity: one dollar.
const MIN_EQUITY_NOTIONAL: Decimal = Decimal::ONE;

/// An error body: `{"code": 40310000, "message": "insufficient buying power"}`.
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub code: Option<u64>,
    #[serde(default)]
    pub message: Option<String>,
}

/// `GET /v2/account`.
#[derive(Debug, Deserialize)]
pub struct WireAccount {
    pub cash: Decimal,
    pub equity: Decimal,
    pub buying_power: Decimal,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub trading_blocked: bool,
    #[serde(default)]
    pub account_blocked: bool,
}

impl WireAccount {
    pub fn into_model(self) -> Account {
        Account {
            cash: self.cash,
            equity: self.equity,
            buying_power: self.buying_power,
            currency: self.currency.unwrap_or_else(|| USD.to_owned()),
        }
    }
}

/// One entry of `GET /v2/positions`, or `GET /v2/positions/{symbol}`.
#[derive(Debug, Deserialize)]
pub struct WirePosition {
    pub symbol: String,
    pub qty: Decimal,
    pub avg_entry_price: Decimal,
    #[serde(default)]
    pub current_price: Option<Decimal>,
    #[serde(default)]
    pub market_value: Option<Decimal>,
    #[serde(default)]
    pub unrealized_pl: Option<Decimal>,
    /// `long` or `short`; a short position's `qty` is negative.
    #[serde(default)]
    pub side: Option<String>,
}

impl WirePosition {
    pub fn into_model(self) -> Position {
        let current_price = self.current_price.unwrap_or(self.avg_entry_price);
        Position {
            symbol: self.symbol,
            qty: self.qty,
            avg_price: self.avg_entry_price,
            current_price,
            market_value: self.market_value.unwrap_or(self.qty * current_price),
            unrealized_pnl: self.unrealized_pl.unwrap_or_default(),
        }
    }

    /// The side of the order that closes this position.
    pub fn closing_side(&self) -> Side {
        if self.side.as_deref() == Some("short") || self.qty < Decimal::ZERO {
            Side::Buy
        } else {
            Side::Sell
        }
    }
}

/// An order: the answer of every order endpoint, with its legs when asked for `nested`.
#[derive(Debug, Clone, Deserialize)]
pub struct WireOrder {
    pub id: String,
    #[serde(default)]
    pub client_order_id: String,
    pub symbol: String,
    pub side: String,
    /// `type` (Alpaca also sends `order_type`, the same value under its older name).
    #[serde(rename = "type")]
    pub order_type: String,
    pub time_in_force: String,
    #[serde(default)]
    pub order_class: Option<String>,
    #[serde(default)]
    pub qty: Option<Decimal>,
    #[serde(default)]
    pub notional: Option<Decimal>,
    #[serde(default)]
    pub filled_qty: Option<Decimal>,
    #[serde(default)]
    pub filled_avg_price: Option<Decimal>,
    #[serde(default)]
    pub limit_price: Option<Decimal>,
    #[serde(default)]
    pub stop_price: Option<Decimal>,
    pub status: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub filled_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub replaces: Option<String>,
    #[serde(default)]
    pub replaced_by: Option<String>,
    #[serde(default)]
    pub legs: Option<Vec<WireOrder>>,
}

impl WireOrder {
    pub fn into_model(self) -> Order {
        self.into_model_under(None)
    }

    fn into_model_under(self, parent: Option<&str>) -> Order {
        let filled_qty = self.filled_qty.unwrap_or_default();
        let fill_time = self
            .filled_at
            .or(self.updated_at)
            .unwrap_or(self.created_at);
        let fills = match self.filled_avg_price {
            Some(price) if filled_qty > Decimal::ZERO => vec![Fill {
                qty: filled_qty,
                price,
                time: fill_time,
            }],
            _ => Vec::new(),
        };
        let legs = self
            .legs
            .unwrap_or_default()
            .into_iter()
            .map(|leg| leg.into_model_under(Some(&self.id)))
            .collect();
        Order {
            order_id: self.id,
            client_order_id: self.client_order_id,
            symbol: self.symbol,
            side: side(&self.side),
            order_type: order_type(&self.order_type),
            time_in_force: time_in_force(&self.time_in_force),
            order_class: order_class(self.order_class.as_deref()),
            qty: self.qty,
            notional: self.notional,
            limit_price: self.limit_price,
            stop_price: self.stop_price,
            status: status(&self.status),
            filled_qty,
            avg_fill_price: self.filled_avg_price,
            fills,
            created_at: self.created_at,
            updated_at: self.updated_at.unwrap_or(self.created_at),
            filled_at: self.filled_at,
            parent_order_id: parent.map(str::to_owned),
            legs,
            replaces: self.replaces,
            replaced_by: self.replaced_by,
            status_reason: None,
        }
    }
}

fn side(text: &str) -> Side {
    if text == "sell" {
        Side::Sell
    } else {
        Side::Buy
    }
}

/// Alpaca's order types; a trailing stop (which Bulkhead does not place) reads as a stop.
fn order_type(text: &str) -> OrderType {
    match text {
        "limit" => OrderType::Limit,
        "stop" | "trailing_stop" => OrderType::Stop,
        "stop_limit" => OrderType::StopLimit,
        _ => OrderType::Market,
    }
}

/// Alpaca's times in force; at-the-open and at-the-close orders live one day.
fn time_in_force(text: &str) -> TimeInForce {
    match text {
        "gtc" => TimeInForce::Gtc,
        "ioc" => TimeInForce::Ioc,
        "fok" => TimeInForce::Fok,
        _ => TimeInForce::Day,
    }
}

/// Alpaca's order classes; an OCO pair of exits reads as a bracket without its entry.
fn order_class(text: Option<&str>) -> OrderClass {
    match text {
        Some("bracket" | "oco") => OrderClass::Bracket,
        Some("oto") => OrderClass::Oto,
        _ => OrderClass::Simple,
    }
}

/// Alpaca's seventeen order statuses onto the model's.
pub fn status(text: &str) -> OrderStatus {
    match text {
        "pending_new" => OrderStatus::Pending,
        "accepted" | "accepted_for_bidding" => OrderStatus::Accepted,
        "held" | "suspended" => OrderStatus::Held,
        "partially_filled" => OrderStatus::PartiallyFilled,
        // `calculated`: filled, with the day's settlement still being worked out.
        "filled" | "calculated" => OrderStatus::Filled,
        "pending_cancel" => OrderStatus::PendingCancel,
        "pending_replace" => OrderStatus::PendingReplace,
        "canceled" => OrderStatus::Cancelled,
        "expired" => OrderStatus::Expired,
        "rejected" => OrderStatus::Rejected,
        "replaced" => OrderStatus::Replaced,
        // `new`, `done_for_day` (works again next session), `stopped` (fill guaranteed, not
        // yet made) and anything Alpaca adds later: still working.
        _ => OrderStatus::Open,
    }
}

/// The body of `POST /v2/orders`.
#[derive(Debug, Serialize)]
pub struct NewOrder {
    pub symbol: String,
    pub side: &'static str,
    #[serde(rename = "type")]
    pub order_type: &'static str,
    pub time_in_force: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qty: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notional: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_price: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_price: Option<String>,
    pub client_order_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_class: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub take_profit: Option<TakeProfit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_loss: Option<StopLoss>,
}

#[derive(Debug, Serialize)]
pub struct TakeProfit {
    pub limit_price: String,
}

#[derive(Debug, Serialize)]
pub struct StopLoss {
    pub stop_price: String,
}

impl NewOrder {
    /// The body for `request` on `symbol` (already in Alpaca's spelling). Without a time in
    /// force, equities get `day` and crypto `gtc` (Alpaca takes only `gtc` and `ioc` for
    /// crypto). One exit leg is one-triggers-other (`oto`), two a bracket.
    pub fn from_request(request: &OrderRequest, symbol: &str) -> Self {
        let default_tif = if is_crypto(symbol) {
            TimeInForce::Gtc
        } else {
            TimeInForce::Day
        };
        let order_class = match (request.take_profit_price, request.stop_loss_price) {
            (Some(_), Some(_)) => Some("bracket"),
            (Some(_), None) | (None, Some(_)) => Some("oto"),
            (None, None) => None,
        };
        let text = |value: Option<Decimal>| value.map(|value| value.normalize().to_string());
        Self {
            symbol: symbol.to_owned(),
            side: request.side.as_str(),
            order_type: request.order_type.as_str(),
            time_in_force: request.time_in_force.unwrap_or(default_tif).as_str(),
            qty: text(request.amount.qty()),
            notional: text(request.amount.notional()),
            limit_price: text(request.limit_price),
            stop_price: text(request.stop_price),
            client_order_id: request.client_order_id.clone(),
            order_class,
            take_profit: text(request.take_profit_price)
                .map(|limit_price| TakeProfit { limit_price }),
            stop_loss: text(request.stop_loss_price).map(|stop_price| StopLoss { stop_price }),
        }
    }
}

/// Whether `order` is the one `request` asks for: same symbol, side and amount. Decides
/// between replaying an order whose `client_order_id` was reused and refusing the reuse.
pub fn same_order(order: &Order, request: &OrderRequest, symbol: &str) -> bool {
    let amount_matches = match request.amount {
        OrderAmount::Qty(qty) => order.qty.map(|qty| qty.normalize()) == Some(qty.normalize()),
        OrderAmount::Notional(notional) => {
            order.notional.map(|notional| notional.normalize()) == Some(notional.normalize())
        }
    };
    same_symbol(&order.symbol, symbol) && order.side == request.side && amount_matches
}

/// Symbols compared as Alpaca treats them: `BTC/USD` and `BTCUSD` are one pair.
fn same_symbol(left: &str, right: &str) -> bool {
    let plain = |symbol: &str| symbol.replace('/', "").to_ascii_uppercase();
    plain(left) == plain(right)
}

/// A crypto pair in Alpaca's spelling (`BTC/USD`): the model's `BTC-USD` and `btc/usd` too.
pub fn alpaca_symbol(symbol: &str) -> String {
    let upper = symbol.trim().to_ascii_uppercase();
    match upper.split_once(['-', '/']) {
        Some((base, quote)) if is_pair_part(base) && is_pair_part(quote) => {
            format!("{base}/{quote}")
        }
        _ => upper,
    }
}

fn is_pair_part(part: &str) -> bool {
    !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Whether `symbol` (in Alpaca's spelling) is a crypto pair: its market data lives elsewhere.
pub fn is_crypto(symbol: &str) -> bool {
    symbol.contains('/')
}

/// `GET /v2/stocks/{symbol}/quotes/latest`.
#[derive(Debug, Deserialize)]
pub struct StockLatestQuote {
    pub symbol: String,
    pub quote: WireQuote,
    #[serde(default)]
    pub currency: Option<String>,
}

/// `GET /v1beta3/crypto/us/latest/quotes?symbols=…`: quotes by symbol.
#[derive(Debug, Deserialize)]
pub struct CryptoLatestQuotes {
    pub quotes: std::collections::BTreeMap<String, WireQuote>,
}

/// A quote: bid and ask prices (`bp`, `ap`) at `t`.
#[derive(Debug, Deserialize)]
pub struct WireQuote {
    pub t: DateTime<Utc>,
    pub bp: Decimal,
    pub ap: Decimal,
}

impl WireQuote {
    /// The model's quote. Alpaca's quote carries no last trade, so `last` is the midpoint, or
    /// the one side quoted when the other is empty (zero, as outside market hours).
    pub fn into_model(self, symbol: String, currency: String) -> Quote {
        let last = match (self.bp.is_zero(), self.ap.is_zero()) {
            (false, false) => ((self.bp + self.ap) / Decimal::TWO).round_dp(PRICE_DECIMALS),
            (true, _) => self.ap,
            (false, true) => self.bp,
        };
        Quote {
            symbol,
            bid: self.bp,
            ask: self.ap,
            last,
            currency,
            time: self.t,
        }
    }
}

/// Decimal places a midpoint keeps: finer than any quoted price, without binary noise.
const PRICE_DECIMALS: u32 = 8;

/// `GET /v2/stocks/{symbol}/bars`.
#[derive(Debug, Deserialize)]
pub struct StockBars {
    #[serde(default)]
    pub bars: Option<Vec<WireBar>>,
}

/// `GET /v1beta3/crypto/us/bars?symbols=…`: bars by symbol.
#[derive(Debug, Deserialize)]
pub struct CryptoBars {
    #[serde(default)]
    pub bars: std::collections::BTreeMap<String, Vec<WireBar>>,
}

/// One bar: open, high, low, close, volume from `t`.
#[derive(Debug, Deserialize)]
pub struct WireBar {
    pub t: DateTime<Utc>,
    pub o: Decimal,
    pub h: Decimal,
    pub l: Decimal,
    pub c: Decimal,
    pub v: Decimal,
}

impl WireBar {
    pub fn into_model(self) -> Bar {
        Bar {
            time: self.t,
            open: self.o,
            high: self.h,
            low: self.l,
            close: self.c,
            volume: self.v,
        }
    }
}

/// Alpaca's spelling of a timeframe.
pub fn timeframe(timeframe: Timeframe) -> &'static str {
    match timeframe {
        Timeframe::OneMinute => "1Min",
        Timeframe::FiveMinutes => "5Min",
        Timeframe::FifteenMinutes => "15Min",
        Timeframe::OneHour => "1Hour",
        Timeframe::OneDay => "1Day",
    }
}

/// `GET /v2/clock`: the US equity market's clock.
#[derive(Debug, Deserialize)]
pub struct WireClock {
    pub timestamp: DateTime<Utc>,
    pub is_open: bool,
    pub next_open: DateTime<Utc>,
    pub next_close: DateTime<Utc>,
}

impl WireClock {
    pub fn into_model(self) -> MarketClock {
        MarketClock {
            market: US_EQUITY.to_owned(),
            is_open: self.is_open,
            time: self.timestamp,
            next_open: Some(self.next_open),
            next_close: Some(self.next_close),
        }
    }
}

/// The crypto market's clock: Alpaca trades crypto around the clock.
pub fn crypto_clock(now: DateTime<Utc>) -> MarketClock {
    MarketClock {
        market: CRYPTO.to_owned(),
        is_open: true,
        time: now,
        next_open: None,
        next_close: None,
    }
}

/// An asset of `GET /v2/assets` or `GET /v2/assets/{symbol}`.
#[derive(Debug, Deserialize)]
pub struct WireAsset {
    pub symbol: String,
    #[serde(default)]
    pub name: String,
    pub class: String,
    #[serde(default)]
    pub status: Option<String>,
    pub tradable: bool,
    #[serde(default)]
    pub fractionable: bool,
    #[serde(default)]
    pub min_order_size: Option<Decimal>,
    #[serde(default)]
    pub min_trade_increment: Option<Decimal>,
    #[serde(default)]
    pub price_increment: Option<Decimal>,
}

impl WireAsset {
    pub fn into_model(self) -> SymbolInfo {
        let crypto = self.class == CRYPTO;
        let currency = match self.symbol.split_once('/') {
            Some((_, quote)) => quote.to_owned(),
            None => USD.to_owned(),
        };
        let qty_increment = self.min_trade_increment.unwrap_or(if self.fractionable {
            FRACTIONAL_QTY_INCREMENT
        } else {
            Decimal::ONE
        });
        let min_notional = (self.fractionable && !crypto).then_some(MIN_EQUITY_NOTIONAL);
        SymbolInfo {
            tradable: self.tradable && self.status.as_deref() != Some("inactive"),
            name: self.name,
            market: self.class,
            currency,
            price_increment: self
                .price_increment
                .unwrap_or(DEFAULT_EQUITY_PRICE_INCREMENT),
            qty_increment,
            fractionable: self.fractionable,
            min_qty: self.min_order_size.unwrap_or(qty_increment),
            min_notional,
            symbol: self.symbol,
        }
    }
}
