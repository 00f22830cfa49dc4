//! The stand-in's endpoints: each Alpaca request as a call on the account's paper broker, and
//! the paper engine's answers and refusals as Alpaca sends them.

use bulkhead_worker::broker::model::{
    BarsRequest, CloseAmount, CloseRequest, OrderAmount, OrderFilter, OrderLookup, OrderRequest,
    ReplaceRequest, TimeInForce, Timeframe,
};
use bulkhead_worker::broker::{Broker, BrokerError, OrderType, Side};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::json::{self, alpaca_symbol, is_crypto, paper_symbol};
use super::{Account, Answer, Call, State};

/// Alpaca's default page of orders.
const DEFAULT_ORDER_LIMIT: usize = 50;

/// The answer to `call`, for the account its headers name.
pub async fn route(state: &Mutex<State>, call: &Call) -> Answer {
    let mut state = state.lock().await;
    let Some(account) = authenticate(&mut state, call) else {
        return Answer::error(401, "request is not authorized");
    };
    match answer(account, call).await {
        Ok(answer) => answer,
        Err(error) => refusal(&error),
    }
}

/// Orders (entries, not legs) the account of `key` holds.
pub async fn order_count(state: &mut State, key: &str) -> usize {
    let Some(account) = state.accounts.get_mut(key) else {
        return 0;
    };
    account
        .broker
        .orders(&account.credentials, OrderFilter::All)
        .await
        .map(|orders| orders.len())
        .unwrap_or(0)
}

fn authenticate<'a>(state: &'a mut State, call: &Call) -> Option<&'a mut Account> {
    let account = state.accounts.get_mut(call.key.as_deref()?)?;
    (call.secret.as_deref() == Some(account.secret.as_str())).then_some(account)
}

async fn answer(account: &mut Account, call: &Call) -> Result<Answer, BrokerError> {
    let Account {
        credentials,
        broker,
        ..
    } = account;
    let credentials = &*credentials;
    let path: Vec<&str> = call.path.trim_matches('/').split('/').collect();
    let nested = call.query.get("nested").map(String::as_str) == Some("true");
    let answer = match (call.method.as_str(), path.as_slice()) {
        ("GET", ["v2", "account"]) => {
            let account = broker.account(credentials).await?;
            Answer::ok(json::account(&account, "standin-account"))
        }
        ("GET", ["v2", "positions"]) => {
            let positions = broker.positions(credentials).await?;
            Answer::ok(positions.iter().map(json::position).collect())
        }
        ("GET", ["v2", "positions", symbol]) => {
            let wanted = paper_symbol(&pair(symbol));
            let positions = broker.positions(credentials).await?;
            match positions.iter().find(|position| position.symbol == wanted) {
                Some(position) => Answer::ok(json::position(position)),
                None => Answer::error(404, "position does not exist"),
            }
        }
        ("GET", ["v2", "orders"]) => {
            let filter = match call.query.get("status").map(String::as_str) {
                Some("closed") => OrderFilter::Closed,
                Some("all") => OrderFilter::All,
                _ => OrderFilter::Open,
            };
            let mut orders = broker.orders(credentials, filter).await?;
            if call.query.get("direction").map(String::as_str) != Some("asc") {
                orders.reverse();
            }
            let limit = number(call, "limit").unwrap_or(DEFAULT_ORDER_LIMIT);
            orders.truncate(limit);
            Answer::ok(
                orders
                    .iter()
                    .map(|order| json::order(order, nested))
                    .collect(),
            )
        }
        ("GET", ["v2", "orders:by_client_order_id"]) => {
            let id = call
                .query
                .get("client_order_id")
                .cloned()
                .unwrap_or_default();
            let order = broker
                .order(credentials, OrderLookup::ClientOrderId(id))
                .await?;
            Answer::ok(json::order(&order, true))
        }
        ("GET", ["v2", "orders", id]) => {
            let lookup = OrderLookup::OrderId((*id).to_owned());
            let order = broker.order(credentials, lookup).await?;
            Answer::ok(json::order(&order, nested))
        }
        ("POST", ["v2", "orders"]) => {
            let request = new_order(&call.body)?;
            let lookup = OrderLookup::ClientOrderId(request.client_order_id.clone());
            if broker.order(credentials, lookup).await.is_ok() {
                // Alpaca refuses a reused id outright; it never replays.
                return Ok(Answer::error(422, "client_order_id must be unique"));
            }
            let placement = broker.place_order(credentials, request).await?;
            Answer::ok(json::order(&placement.order, true))
        }
        ("PATCH", ["v2", "orders", id]) => {
            let request = replace(&call.body)?;
            let order = broker.replace_order(credentials, id, request).await?;
            Answer::ok(json::order(&order, true))
        }
        ("DELETE", ["v2", "orders", id]) => {
            broker.cancel_order(credentials, id).await?;
            Answer {
                status: 204,
                body: Value::Null,
                headers: Vec::new(),
            }
        }
        ("DELETE", ["v2", "orders"]) => {
            let cancelled = broker.cancel_all(credentials, None).await?;
            let body = cancelled
                .iter()
                .map(|order| json!({"id": order.order_id, "status": 200, "body": json::order(order, false)}))
                .collect();
            Answer {
                status: 207,
                body,
                headers: Vec::new(),
            }
        }
        ("DELETE", ["v2", "positions", symbol]) => {
            let amount = match (
                decimal_query(call, "qty"),
                decimal_query(call, "percentage"),
            ) {
                (Some(qty), _) => CloseAmount::Qty(qty),
                (None, Some(percent)) => CloseAmount::Percent(percent),
                (None, None) => CloseAmount::All,
            };
            let request = CloseRequest {
                symbol: paper_symbol(&pair(symbol)),
                amount,
                client_order_id: format!("close-{}", Utc::now().timestamp_nanos_opt().unwrap_or(0)),
            };
            let order = broker.close_position(credentials, request).await?;
            Answer::ok(json::order(&order, false))
        }
        ("GET", ["v2", "clock"]) => {
            let clocks = broker
                .market_clock(Some(credentials), Some("us_equity"))
                .await?;
            match clocks.first() {
                Some(clock) => Answer::ok(json::clock(clock)),
                None => Answer::error(500, "no clock"),
            }
        }
        ("GET", ["v2", "assets"]) => {
            let class = call.query.get("asset_class").cloned();
            let symbols = broker.symbols(Some(credentials), None).await?;
            let assets: Vec<Value> = symbols
                .iter()
                .map(json::asset)
                .filter(|asset| class.as_deref().is_none_or(|class| asset["class"] == class))
                .collect();
            Answer::ok(assets.into())
        }
        ("GET", ["v2", "assets", symbol]) => {
            let wanted = paper_symbol(&pair(symbol));
            let symbols = broker.symbols(Some(credentials), None).await?;
            match symbols.iter().find(|info| info.symbol == wanted) {
                Some(info) => Answer::ok(json::asset(info)),
                None => Answer::error(404, "asset not found"),
            }
        }
        ("GET", ["v2", "stocks", symbol, "quotes", "latest"]) => {
            let quote = broker
                .quote(Some(credentials), &paper_symbol(symbol))
                .await?;
            Answer::ok(json!({
                "symbol": symbol,
                "currency": quote.currency,
                "quote": json::quote(&quote),
            }))
        }
        ("GET", ["v1beta3", "crypto", "us", "latest", "quotes"]) => {
            let mut quotes = serde_json::Map::new();
            for symbol in symbols_query(call) {
                let quote = broker
                    .quote(Some(credentials), &paper_symbol(&symbol))
                    .await?;
                quotes.insert(symbol, json::quote(&quote));
            }
            Answer::ok(json!({"quotes": quotes}))
        }
        ("GET", ["v2", "stocks", symbol, "bars"]) => {
            let bars = bars(broker, credentials, call, symbol).await?;
            Answer::ok(json!({"symbol": symbol, "bars": bars, "next_page_token": null}))
        }
        ("GET", ["v1beta3", "crypto", "us", "bars"]) => {
            let mut all = serde_json::Map::new();
            for symbol in symbols_query(call) {
                let bars = bars(broker, credentials, call, &symbol).await?;
                all.insert(symbol, bars);
            }
            Answer::ok(json!({"bars": all, "next_page_token": null}))
        }
        _ => Answer::error(404, "endpoint not found"),
    };
    Ok(answer)
}

/// The paper engine's refusal as Alpaca words it (status, message).
fn refusal(error: &BrokerError) -> Answer {
    match error {
        BrokerError::InsufficientCash { .. } => Answer::error(403, "insufficient buying power"),
        BrokerError::InsufficientPosition {
            requested,
            available,
            ..
        } => Answer::error(
            403,
            format!(
                "insufficient qty available for order (requested: {requested}, available: \
                 {available})"
            ),
        ),
        BrokerError::UnknownSymbol { symbol, .. } => Answer::error(
            422,
            format!("could not find asset \"{}\"", alpaca_symbol(symbol)),
        ),
        BrokerError::UnknownOrder { .. } => Answer::error(404, "order not found"),
        BrokerError::NoPosition { .. } => Answer::error(404, "position does not exist"),
        BrokerError::OrderNotOpen { status, .. } => {
            Answer::error(422, format!("order is not cancelable (status {status})"))
        }
        BrokerError::MarketClosed { .. } => {
            Answer::error(422, format!("market is closed: {error}"))
        }
        other => Answer::error(422, other.to_string()),
    }
}

/// `POST /v2/orders`'s body, as documented.
#[derive(Deserialize)]
struct NewOrder {
    symbol: String,
    side: Side,
    #[serde(rename = "type")]
    order_type: OrderType,
    time_in_force: TimeInForce,
    qty: Option<Decimal>,
    notional: Option<Decimal>,
    limit_price: Option<Decimal>,
    stop_price: Option<Decimal>,
    client_order_id: Option<String>,
    take_profit: Option<Leg>,
    stop_loss: Option<Leg>,
}

#[derive(Deserialize)]
struct Leg {
    limit_price: Option<Decimal>,
    stop_price: Option<Decimal>,
}

fn new_order(body: &[u8]) -> Result<OrderRequest, BrokerError> {
    let order: NewOrder = serde_json::from_slice(body).map_err(|error| invalid(&error))?;
    let amount = match (order.qty, order.notional) {
        (Some(qty), None) => OrderAmount::Qty(qty),
        (None, Some(notional)) => OrderAmount::Notional(notional),
        _ => return Err(BrokerError::QtyAndNotional),
    };
    Ok(OrderRequest {
        symbol: paper_symbol(&order.symbol),
        side: order.side,
        amount,
        order_type: order.order_type,
        time_in_force: Some(order.time_in_force),
        limit_price: order.limit_price,
        stop_price: order.stop_price,
        take_profit_price: order.take_profit.and_then(|leg| leg.limit_price),
        stop_loss_price: order.stop_loss.and_then(|leg| leg.stop_price),
        // Alpaca makes one up when the client sends none.
        client_order_id: order.client_order_id.unwrap_or_else(|| {
            format!("standin-{}", Utc::now().timestamp_nanos_opt().unwrap_or(0))
        }),
    })
}

#[derive(Deserialize)]
struct Replace {
    qty: Option<Decimal>,
    limit_price: Option<Decimal>,
    stop_price: Option<Decimal>,
    time_in_force: Option<TimeInForce>,
    client_order_id: Option<String>,
}

fn replace(body: &[u8]) -> Result<ReplaceRequest, BrokerError> {
    let replace: Replace = serde_json::from_slice(body).map_err(|error| invalid(&error))?;
    Ok(ReplaceRequest {
        qty: replace.qty,
        limit_price: replace.limit_price,
        stop_price: replace.stop_price,
        time_in_force: replace.time_in_force,
        client_order_id: replace.client_order_id,
    })
}

fn invalid(error: &serde_json::Error) -> BrokerError {
    BrokerError::Rejected {
        broker: "alpaca".into(),
        reason: format!("invalid body: {error}"),
    }
}

async fn bars(
    broker: &mut bulkhead_worker::broker::paper::PaperBroker,
    credentials: &bulkhead_worker::broker::Credentials,
    call: &Call,
    symbol: &str,
) -> Result<Value, BrokerError> {
    let timeframe = match call.query.get("timeframe").map(String::as_str) {
        Some("1Min") => Timeframe::OneMinute,
        Some("5Min") => Timeframe::FiveMinutes,
        Some("15Min") => Timeframe::FifteenMinutes,
        Some("1Hour") => Timeframe::OneHour,
        _ => Timeframe::OneDay,
    };
    let time = |name: &str| {
        call.query
            .get(name)
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
            .map(|time| time.with_timezone(&Utc))
    };
    let request = BarsRequest {
        symbol: paper_symbol(symbol),
        timeframe,
        limit: number(call, "limit").unwrap_or(1000),
        start: time("start"),
        end: time("end"),
    };
    let mut bars = broker.bars(Some(credentials), request).await?.bars;
    if call.query.get("sort").map(String::as_str) == Some("desc") {
        bars.reverse();
    }
    Ok(bars.iter().map(json::bar).collect())
}

fn symbols_query(call: &Call) -> Vec<String> {
    call.query
        .get("symbols")
        .map(|symbols| symbols.split(',').map(str::to_owned).collect())
        .unwrap_or_default()
}

/// A path's symbol: a crypto pair may come as `BTCUSD` (Alpaca's path spelling) or `BTC/USD`.
fn pair(symbol: &str) -> String {
    if is_crypto(symbol) {
        return symbol.to_owned();
    }
    for quote in ["USDT", "USDC", "USD"] {
        if let Some(base) = symbol.strip_suffix(quote)
            && base.len() >= 2
            && matches!(base, "BTC" | "ETH" | "SOL" | "DOGE" | "LTC" | "AVAX")
        {
            return format!("{base}/{quote}");
        }
    }
    symbol.to_owned()
}

fn number(call: &Call, name: &str) -> Option<usize> {
    call.query.get(name)?.parse().ok()
}

fn decimal_query(call: &Call, name: &str) -> Option<Decimal> {
    call.query.get(name)?.parse().ok()
}
