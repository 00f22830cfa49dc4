//! The description of each broker tool, for `#[tool(description = ...)]`.
//!
//! Each constant is named after its tool (`QUOTE` is `quote`, `ORDER_PLACE` is
//! `order_place`…). They say when a tool needs a login, that decimals come as strings, and —
//! for the trading tools — that on a real broker orders and idempotency are account-wide.

/// `broker_list`.
pub const BROKER_LIST: &str = "Lists the brokers this session can use and, for each: whether \
    this session is logged in to it (`authenticated`), whether it is the active broker, its \
    `environment` (`simulated`: Bulkhead's built-in market; `paper`: a broker's play-money \
    account; `live`: real money, every order needs your confirmation), and what it supports \
    (`order_types`, `time_in_force`, `notional_orders`, `bracket_orders`, `markets`, \
    `account_currency`).";

/// `broker_login`.
pub const BROKER_LOGIN: &str = "Logs this session in to a broker, with either `api_key` and \
    `api_secret`, or `credential_ref` (the name of a credential your operator provisioned for \
    you, so the secret never passes through this conversation). Credentials stay in this \
    session and are never returned or logged. The built-in `paper` broker accepts any \
    non-empty key and secret.";

/// `broker_logout`.
pub const BROKER_LOGOUT: &str = "Logs this session out of a broker and wipes its credentials \
    from memory. A `paper` account keeps its cash, orders and positions for the rest of the \
    session.";

/// `broker_use`.
pub const BROKER_USE: &str = "Makes a broker the active one: every other broker tool uses it \
    when not given `broker`. `paper` is active at first.";

/// `quote`.
pub const QUOTE: &str = "Current bid, ask and last price of a symbol (e.g. BTC-USD, AAPL, \
    RELIANCE.NS), its currency, and the time (RFC 3339). Prices are decimal strings (e.g. \
    \"190.12\") to keep them exact. No login needed for `paper`.";

/// `bars`.
pub const BARS: &str = "OHLCV bars of a symbol, oldest first: `timeframe` 1m, 5m, 15m, 1h or \
    1d; the latest `limit` bars (default 100, at most 1000), or from `start` (RFC 3339) up to \
    `end`. Only completed bars; equities have bars only in market hours (a 1d bar is a \
    session). Prices and volumes are decimal strings. No login needed for `paper`.";

/// `account`.
pub const ACCOUNT: &str = "Cash, equity (cash plus positions at market), buying power (cash \
    not reserved by open buy orders) and currency of the account. Amounts are decimal strings \
    (e.g. \"100000.00\") to keep them exact. Needs broker_login. A `paper` account is in USD and \
    settles every symbol in USD at face value.";

/// `positions`.
pub const POSITIONS: &str = "The account's positions: symbol, qty, avg_price, current_price, \
    market_value and unrealized_pnl, as decimal strings to keep them exact. Needs broker_login.";

/// `orders`.
pub const ORDERS: &str = "The account's orders, with `status` \"open\" (still working or \
    waiting to), \"closed\" (done) or \"all\" (the default). Each order has its order_id, \
    client_order_id, type, time_in_force, status (pending, accepted, open, held, \
    partially_filled, filled, cancelled, expired, rejected, replaced…), filled_qty and \
    avg_fill_price; bracket legs are listed on their own with parent_order_id. Needs \
    broker_login. On a real broker this is every order of the account, not only this \
    session's.";

/// `order_get`.
pub const ORDER_GET: &str = "One order by `order_id` or by `client_order_id`, with its status, \
    filled_qty, avg_fill_price, time_in_force, stop_price, its fills and its bracket legs. \
    Follow an order with it until its status is final (filled, cancelled, expired, rejected or \
    replaced). Needs broker_login.";

/// `order_place`.
pub const ORDER_PLACE: &str = "Places an order: `side` buy or sell; `qty`, or `notional` (a \
    money amount, for a fractional market order); `type` market (default), limit \
    (`limit_price`), stop (`stop_price`) or stop_limit (both); `time_in_force` day, gtc, ioc or \
    fok (default day for equities, gtc for crypto); optional `take_profit_price` and/or \
    `stop_loss_price` add exit legs (both: a bracket; one: OTO). Orders placed while a market is \
    closed are accepted and queued for its open. Always answers the `client_order_id` it used \
    (generated when you give none): retrying with the same id returns the original order with \
    `replayed: true` and places nothing, and an id reused for a different order is refused. On \
    a real broker orders and client_order_id idempotency are account-wide, not per session. \
    Your operator's rails apply (maximum order and daily notional sized from the broker's \
    prices, allowed symbols, read-only), and on a `live` broker you will be asked to confirm \
    every order. `dry_run: true` returns the order that would be sent, its estimated notional \
    and the buying power after it, and places nothing. Needs broker_login.";

/// `order_replace`.
pub const ORDER_REPLACE: &str = "Replaces an open order with a new one carrying the changes \
    (`qty`, `limit_price`, `stop_price`, `time_in_force`); the old order becomes `replaced` and \
    the new one names it in `replaces`. Bracket legs can be replaced, a bracket's entry cannot \
    (cancel it and place again). The same rails and live confirmation apply as for \
    order_place. On a real broker orders are account-wide, not per session. Needs \
    broker_login.";

/// `order_cancel`.
pub const ORDER_CANCEL: &str = "Cancels an open order by `order_id` (as order_place or orders \
    gave it); cancelling a bracket's entry cancels its legs. Needs broker_login.";

/// `orders_cancel_all`.
pub const ORDERS_CANCEL_ALL: &str = "The kill switch: cancels every open order of the account \
    at once (or only those in `symbol`), with no confirmation and even when the account is \
    read-only for you. Returns the cancelled orders. On a real broker this cancels the \
    account's orders from every session. Needs broker_login.";

/// `position_close`.
pub const POSITION_CLOSE: &str = "Closes a position with a market order on the other side: \
    all of it, `qty` of it, or `percent` of it (above 0, at most 100). Outside market hours the \
    order is queued for the open. The same rails and live confirmation apply as for \
    order_place. Needs broker_login.";

/// `market_clock`.
pub const MARKET_CLOCK: &str = "Whether markets are open now, and when they next open and close \
    (RFC 3339): every market the broker trades, or the one named in `market` (e.g. us_equity, \
    crypto) or of a symbol. `paper` keeps US equity hours (09:30-16:00 New York, weekdays), NSE \
    hours for .NS symbols, and trades crypto around the clock.";

/// `symbols`.
pub const SYMBOLS: &str = "The broker's tradable symbols (filtered by `query`, which matches \
    the symbol or the name in any case), each with its market, currency, price_increment, \
    qty_increment, whether it is `fractionable` (fractional qty and notional orders), min_qty \
    and min_notional.";

/// `indicator`.
pub const INDICATOR: &str = "Computes an indicator over the closes of a symbol's recent bars: \
    `kind` rsi (Wilder's smoothing), sma or ema, with `period` from 1 to 100 bars of \
    `timeframe` (1m by default; 5m, 15m, 1h, 1d). Returns `value` and the inputs used (the \
    closes oldest first, the timeframe, the end time, the period); numbers are decimal strings \
    to keep them exact. No login needed for `paper`.";

/// Every broker tool as (name, description), in the order to list them.
#[cfg(test)]
pub const ALL: [(&str, &str); 18] = [
    ("broker_list", BROKER_LIST),
    ("broker_login", BROKER_LOGIN),
    ("broker_logout", BROKER_LOGOUT),
    ("broker_use", BROKER_USE),
    ("quote", QUOTE),
    ("bars", BARS),
    ("account", ACCOUNT),
    ("positions", POSITIONS),
    ("orders", ORDERS),
    ("order_get", ORDER_GET),
    ("order_place", ORDER_PLACE),
    ("order_replace", ORDER_REPLACE),
    ("order_cancel", ORDER_CANCEL),
    ("orders_cancel_all", ORDERS_CANCEL_ALL),
    ("position_close", POSITION_CLOSE),
    ("market_clock", MARKET_CLOCK),
    ("symbols", SYMBOLS),
    ("indicator", INDICATOR),
];
