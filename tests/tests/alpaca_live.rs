//! Opt-in smoke test against Alpaca's real paper endpoint (needs the internet and a free paper
//! account): log in, quote, place a tiny limit order far below the market, cancel it. Skipped
//! unless `ALPACA_PAPER_API_KEY` and `ALPACA_PAPER_API_SECRET` are set:
//!
//! ```sh
//! ALPACA_PAPER_API_KEY=PK… ALPACA_PAPER_API_SECRET=… \
//!   cargo test -p bulkhead-tests --test alpaca_live -- --nocapture
//! ```

use bulkhead_tests::*;
use serde_json::{Value, json};

const ENV_KEY: &str = "ALPACA_PAPER_API_KEY";
const ENV_SECRET: &str = "ALPACA_PAPER_API_SECRET";
/// A limit price no US equity trades at, so the order rests until it is cancelled.
const FAR_BELOW_THE_MARKET: &str = "1.00";

fn ok(result: &Value, what: &str) {
    assert_eq!(result["isError"], false, "{what}: {result}");
}

#[test]
fn login_quote_place_and_cancel_on_alpacas_paper_endpoint() {
    let (Ok(key), Ok(secret)) = (std::env::var(ENV_KEY), std::env::var(ENV_SECRET)) else {
        eprintln!("skipped: set {ENV_KEY} and {ENV_SECRET} to run against Alpaca's paper API");
        return;
    };
    let mut bulkhead = TestSupervisor::new().start_legacy();
    let login = bulkhead.call_ok(
        "broker_login",
        json!({"broker": "alpaca-paper", "api_key": key, "api_secret": secret}),
    );
    ok(&login, "login");
    let quote = bulkhead.call_ok("quote", json!({"broker": "alpaca-paper", "symbol": "AAPL"}));
    ok(&quote, "quote");
    let client_order_id = format!("bulkhead-smoke-{}", std::process::id());
    let placed = bulkhead.call_ok(
        "order_place",
        json!({"broker": "alpaca-paper", "symbol": "AAPL", "side": "buy", "qty": "1",
               "type": "limit", "limit_price": FAR_BELOW_THE_MARKET,
               "client_order_id": client_order_id}),
    );
    ok(&placed, "order_place");
    let order_id = structured(&placed)["order"]["order_id"].clone();
    let cancelled = bulkhead.call_ok(
        "order_cancel",
        json!({"broker": "alpaca-paper", "order_id": order_id}),
    );
    ok(&cancelled, "order_cancel");
    let status = structured(&cancelled)["order"]["status"]
        .as_str()
        .unwrap_or("");
    assert!(
        ["cancelled", "pending_cancel"].contains(&status),
        "{cancelled}"
    );
    assert!(
        !bulkhead.stderr().contains(&secret),
        "the secret reached stderr"
    );
}
