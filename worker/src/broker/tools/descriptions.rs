//! The description of each broker tool, for `#[tool(description = ...)]`.
//!
//! Each constant is named after its tool (`QUOTE` is `quote`, `ORDER_PLACE` is
//! `order_place`…). They say when a tool needs a login and that decimals come as strings.

/// `broker_list`.
pub const BROKER_LIST: &str = "Lists the brokers this session can use and, for each, whether \
    this session is logged in to it (`authenticated`) and whether it is the active broker. \
    Returns {brokers: [{name, authenticated, active}]}.";

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
pub const BROKER_USE: &str = "Makes a broker the active one: quote, account, positions, \
    orders, order_place, order_cancel and indicator use it when not given `broker`. `paper` \
    is active at first.";

/// `quote`.
pub const QUOTE: &str = "Current bid, ask and last price of a symbol (e.g. BTC-USD, AAPL, \
    RELIANCE.NS), its currency, and the time (RFC 3339). Prices are decimal strings (e.g. \
    \"190.12\") to keep them exact. No login needed for `paper`.";

/// `account`.
pub const ACCOUNT: &str = "Cash, equity (cash plus positions at market), buying power (cash \
    not reserved by open buy orders) and currency of this session's account. Amounts are \
    decimal strings (e.g. \"100000.00\") to keep them exact. Needs broker_login. A `paper` \
    account is in USD and settles every symbol in USD at face value.";

/// `positions`.
pub const POSITIONS: &str = "This session's positions: symbol, qty, avg_price, market_value \
    and unrealized_pnl, as decimal strings to keep them exact. Needs broker_login.";

/// `orders`.
pub const ORDERS: &str = "This session's orders, with `status` \"open\" for orders still \
    waiting to fill or \"all\" (the default). Each order has its order_id, status (open, \
    filled, cancelled) and fill price; quantities and prices are decimal strings. Needs \
    broker_login.";

/// `order_place`.
pub const ORDER_PLACE: &str = "Places an order: `side` buy or sell, `qty` (decimal string or \
    number), `type` market (fills at once, buys at the ask and sells at the bid) or limit \
    (rests until the market reaches `limit_price`). Pass a unique `client_order_id` to make \
    retries safe: reusing one returns the original order with `replayed: true` and places \
    nothing. Prices and quantities in the result are decimal strings. Needs broker_login.";

/// `order_cancel`.
pub const ORDER_CANCEL: &str = "Cancels an open order by `order_id` (as order_place or \
    orders gave it). Needs broker_login.";

/// `indicator`.
pub const INDICATOR: &str = "Computes an indicator over a symbol's recent one-minute prices: \
    `kind` rsi (Wilder's smoothing), sma or ema, with `period` from 1 to 100. Returns `value` \
    and the inputs used (the prices oldest first, their interval and end time, the period); \
    numbers are decimal strings to keep them exact. No login needed for `paper`.";

/// Every broker tool as (name, description), in the order to list them.
#[cfg(test)]
pub const ALL: [(&str, &str); 11] = [
    ("broker_list", BROKER_LIST),
    ("broker_login", BROKER_LOGIN),
    ("broker_logout", BROKER_LOGOUT),
    ("broker_use", BROKER_USE),
    ("quote", QUOTE),
    ("account", ACCOUNT),
    ("positions", POSITIONS),
    ("orders", ORDERS),
    ("order_place", ORDER_PLACE),
    ("order_cancel", ORDER_CANCEL),
    ("indicator", INDICATOR),
];
