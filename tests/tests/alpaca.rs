//! `alpaca-paper` end to end against the loopback Alpaca stand-in (served from the paper engine),
//! with the real worker sandbox on: login, market data, orders, and every failure Alpaca can
//! answer with — each one a sentence a model can act on, with the session's secret nowhere.

use std::time::Duration;

use bulkhead_tests::alpaca::{Fault, Injection, StandIn};
use bulkhead_tests::*;
use serde_json::{Value, json};

const KEY: &str = "PKTESTSTANDIN0001";
const SECRET: &str = "SECRET-7f3c9a1e-standin-do-not-leak";
const BROKER: &str = "alpaca-paper";

struct Harness {
    standin: StandIn,
    bulkhead: Running,
}

fn start_with(extra: &[&str]) -> Harness {
    let standin = StandIn::start(&[(KEY, SECRET)], Some(7));
    let urls = standin.broker_url_args();
    start_at(standin, urls, extra)
}

fn start_at(standin: StandIn, urls: Vec<String>, extra: &[&str]) -> Harness {
    let bulkhead = TestSupervisor::new()
        .env("RUST_LOG", "debug")
        .args(urls)
        .args(["--paper-seed", "7"])
        .args(extra.iter().copied())
        .start_legacy();
    Harness { standin, bulkhead }
}

fn start() -> Harness {
    start_with(&[])
}

fn text(result: &Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn error_text(result: &Value) -> String {
    assert_eq!(result["isError"], true, "expected a tool error: {result}");
    text(result)
}

impl Harness {
    fn call(&mut self, tool: &str, arguments: Value) -> Value {
        self.bulkhead.call_ok(tool, arguments)
    }

    fn login(&mut self) {
        let login = self.call(
            "broker_login",
            json!({"broker": BROKER, "api_key": KEY, "api_secret": SECRET}),
        );
        assert_eq!(login["isError"], false, "{login}");
    }

    fn buy(&mut self, symbol: &str, qty: &str, client_order_id: &str) -> Value {
        self.call(
            "order_place",
            json!({"broker": BROKER, "symbol": symbol, "side": "buy", "qty": qty,
                   "type": "market", "client_order_id": client_order_id}),
        )
    }

    /// Nothing the session was given as a secret reached stderr (at debug) or stdout.
    fn assert_secret_nowhere(&mut self) {
        self.bulkhead.close_stdin();
        self.bulkhead
            .wait_exit(Duration::from_secs(3))
            .expect("exit");
        let stderr = self.bulkhead.stderr();
        assert!(stderr.contains("DEBUG"), "debug logging was on");
        assert!(!stderr.contains(SECRET), "the secret reached stderr");
        for line in &self.bulkhead.raw_stdout {
            assert!(!line.contains(SECRET), "the secret reached stdout: {line}");
        }
    }
}

#[test]
fn login_quote_and_a_filled_order_through_the_stand_in() {
    let mut harness = start();
    harness.login();
    let quote = harness.call("quote", json!({"broker": BROKER, "symbol": "BTC/USD"}));
    assert_eq!(quote["isError"], false, "{quote}");
    let bought = harness.buy("BTC/USD", "0.01", "first-order");
    assert_eq!(bought["isError"], false, "{bought}");
    assert_eq!(structured(&bought)["order"]["status"], "filled", "{bought}");
    assert_eq!(harness.standin.order_count(KEY), 1);
    harness.assert_secret_nowhere();
}

#[test]
fn a_broker_named_by_host_name_is_resolved_inside_the_sandbox() {
    // `localhost` goes through getaddrinfo (nsswitch.conf, /etc/hosts) under Landlock.
    let standin = StandIn::start(&[(KEY, SECRET)], Some(7));
    let url = standin.url().replace("127.0.0.1", "localhost");
    let urls = vec![
        format!("--broker-url=alpaca-paper.trading={url}"),
        format!("--broker-url=alpaca-paper.data={url}"),
    ];
    let mut harness = start_at(standin, urls, &[]);
    harness.login();
    let account = harness.call("account", json!({"broker": BROKER}));
    assert_eq!(structured(&account)["cash"], "100000.00", "{account}");
}

#[test]
fn refused_keys_say_to_check_the_environment_and_nothing_works_before_login() {
    let mut harness = start();
    let before = harness.call("quote", json!({"broker": BROKER, "symbol": "AAPL"}));
    assert!(
        error_text(&before).contains("not logged in to alpaca-paper"),
        "{before}"
    );
    let refused = harness.call(
        "broker_login",
        json!({"broker": BROKER, "api_key": KEY, "api_secret": "wrong-secret"}),
    );
    let sentence = error_text(&refused);
    assert!(
        sentence.contains("check that the keys belong to the paper environment you chose"),
        "{sentence}"
    );
    let list = harness.call("broker_list", json!({}));
    let alpaca = structured(&list)["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|broker| broker["name"] == BROKER)
        .cloned()
        .expect("alpaca-paper is listed");
    assert_eq!(alpaca["authenticated"], false, "{list}");
    assert_eq!(alpaca["environment"], "paper", "{list}");
    assert!(
        !list.to_string().contains("\"alpaca\""),
        "the live broker is not listed: {list}"
    );
}

#[test]
fn insufficient_buying_power_and_position_and_an_unknown_symbol_are_refused_in_a_sentence() {
    let mut harness = start();
    harness.login();
    let broke = harness.buy("BTC/USD", "1000", "too-big");
    let sentence = error_text(&broke);
    assert!(sentence.contains("buying power"), "{sentence}");
    let short = harness.call(
        "order_place",
        json!({"broker": BROKER, "symbol": "ETH/USD", "side": "sell", "qty": "1",
               "type": "market", "client_order_id": "no-position"}),
    );
    let sentence = error_text(&short);
    assert!(sentence.contains("cannot sell 1 ETH/USD"), "{sentence}");
    let unknown = harness.call("quote", json!({"broker": BROKER, "symbol": "ZZZZ"}));
    assert!(
        error_text(&unknown).contains("unknown symbol ZZZZ"),
        "{unknown}"
    );
    assert_eq!(harness.standin.order_count(KEY), 0);
}

#[test]
fn a_validation_refusal_carries_alpacas_reason() {
    let mut harness = start();
    harness.login();
    harness.standin.inject(Injection::on_order(Fault::Status {
        status: 422,
        message: "qty must be a multiple of the minimum trade increment".into(),
    }));
    let refused = harness.buy("BTC/USD", "0.01", "validation");
    let sentence = error_text(&refused);
    assert!(
        sentence.starts_with("alpaca-paper refused the order")
            && sentence.contains("qty must be a multiple of the minimum trade increment"),
        "{sentence}"
    );
    assert_eq!(harness.standin.order_count(KEY), 0);
}

#[test]
fn a_reused_client_order_id_replays_the_original_or_is_refused_when_it_asks_for_more() {
    let mut harness = start();
    harness.login();
    let first = harness.buy("BTC/USD", "0.01", "once-only");
    assert_eq!(structured(&first)["replayed"], false, "{first}");
    let again = harness.buy("BTC/USD", "0.01", "once-only");
    assert_eq!(structured(&again)["replayed"], true, "{again}");
    assert_eq!(
        structured(&again)["order"]["order_id"],
        structured(&first)["order"]["order_id"]
    );
    let other = harness.buy("BTC/USD", "0.02", "once-only");
    let sentence = error_text(&other);
    assert!(
        sentence.contains("client_order_id once-only was already used for another order"),
        "{sentence}"
    );
    assert_eq!(harness.standin.order_count(KEY), 1);
}

#[test]
fn a_rate_limit_says_when_to_retry() {
    let mut harness = start();
    harness.login();
    harness.standin.inject(Injection {
        method: "GET".into(),
        path: "/v2/account".into(),
        fault: Fault::RateLimited { reset_in_secs: 7 },
    });
    let limited = harness.call("account", json!({"broker": BROKER}));
    let sentence = error_text(&limited);
    let seconds: u64 = sentence
        .split("retry in ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no retry time in {sentence:?}"));
    assert!((1..=8).contains(&seconds), "{sentence}");
    let again = harness.call("account", json!({"broker": BROKER}));
    assert_eq!(
        again["isError"], false,
        "the limit was one request: {again}"
    );
}

#[test]
fn a_5xx_before_the_order_was_taken_means_not_placed_and_after_means_placed_once() {
    let mut harness = start();
    harness.login();
    harness.standin.inject(Injection::on_order(Fault::Status {
        status: 503,
        message: "service unavailable".into(),
    }));
    let refused = harness.buy("BTC/USD", "0.01", "first-try");
    let sentence = error_text(&refused);
    assert!(
        sentence.contains("the order was not placed")
            && sentence.contains("placing it again with client_order_id first-try is safe"),
        "{sentence}"
    );
    assert_eq!(harness.standin.order_count(KEY), 0);

    harness
        .standin
        .inject(Injection::on_order(Fault::StatusAfterHandling {
            status: 500,
        }));
    let placed = harness.buy("BTC/USD", "0.01", "second-try");
    assert_eq!(placed["isError"], false, "{placed}");
    assert!(
        text(&placed).contains("placed exactly once"),
        "the answer says how it knows: {placed}"
    );
    assert_eq!(harness.standin.order_count(KEY), 1);
}

#[test]
fn a_reply_slower_than_the_deadline_is_reconciled_before_the_deadline() {
    // A 5 s call deadline gives each request 2 s; the stand-in answers the order after 4 s.
    let mut harness = start_with(&["--call-timeout", "5"]);
    harness.login();
    harness
        .standin
        .inject(Injection::on_order(Fault::DelayAfterHandling {
            millis: 4_000,
        }));
    let started = std::time::Instant::now();
    let placed = harness.buy("BTC/USD", "0.01", "slow-one");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(placed["isError"], false, "{placed}");
    assert!(text(&placed).contains("timed out"), "{placed}");
    assert!(text(&placed).contains("placed exactly once"), "{placed}");
    assert_eq!(harness.standin.order_count(KEY), 1);
}

#[test]
fn a_connection_dropped_after_the_order_was_taken_leaves_exactly_one_order() {
    let mut harness = start();
    harness.login();
    harness
        .standin
        .inject(Injection::on_order(Fault::DropAfterHandling));
    let placed = harness.buy("BTC/USD", "0.01", "dropped");
    assert_eq!(placed["isError"], false, "{placed}");
    assert_eq!(structured(&placed)["order"]["client_order_id"], "dropped");
    assert!(
        text(&placed).contains("connection was lost")
            && text(&placed).contains("placed exactly once"),
        "the answer says so: {placed}"
    );
    assert_eq!(harness.standin.order_count(KEY), 1);
    // A retry by the model places nothing more.
    let retried = harness.buy("BTC/USD", "0.01", "dropped");
    assert_eq!(structured(&retried)["replayed"], true, "{retried}");
    assert_eq!(harness.standin.order_count(KEY), 1);
}

#[test]
fn an_unreachable_broker_is_named_as_such() {
    let standin = StandIn::start(&[(KEY, SECRET)], Some(7));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let urls = vec![
        format!("--broker-url=alpaca-paper.trading={url}"),
        format!("--broker-url=alpaca-paper.data={url}"),
    ];
    let mut harness = start_at(standin, urls, &[]);
    let login = harness.call(
        "broker_login",
        json!({"broker": BROKER, "api_key": KEY, "api_secret": SECRET}),
    );
    let sentence = error_text(&login);
    assert!(
        sentence.starts_with("alpaca-paper is unreachable (could not connect"),
        "{sentence}"
    );
}

#[test]
fn an_error_body_that_echoes_the_secret_is_redacted_everywhere() {
    let journal = std::env::temp_dir().join(format!("bulkhead-echo-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&journal);
    let journal_arg = journal.display().to_string();
    let mut harness = start_with(&["--order-journal", &journal_arg]);
    harness.login();
    harness
        .standin
        .inject(Injection::on_order(Fault::EchoSecret));
    let refused = harness.buy("BTC/USD", "0.01", "echo");
    let sentence = error_text(&refused);
    assert!(sentence.contains("[REDACTED]"), "{sentence}");
    assert!(
        !sentence.contains(SECRET) && !sentence.contains(KEY),
        "{sentence}"
    );
    harness.standin.inject(Injection {
        method: "GET".into(),
        path: "/v2/positions".into(),
        fault: Fault::EchoSecret,
    });
    let refused = harness.call("positions", json!({"broker": BROKER}));
    assert!(!error_text(&refused).contains(SECRET), "{refused}");
    harness.assert_secret_nowhere();
    let journaled = std::fs::read_to_string(&journal).expect("the order journal");
    assert!(
        journaled.contains("echo") && journaled.contains("[REDACTED]"),
        "the refused order is journaled, redacted: {journaled}"
    );
    assert!(!journaled.contains(SECRET) && !journaled.contains(KEY));
    let _ = std::fs::remove_file(&journal);
}

/// What a result means, without what legitimately differs between two brokers (ids, times,
/// prices a few milliseconds apart, `BTC/USD` versus `BTC-USD`).
fn outcome(result: &Value) -> Value {
    if result["isError"] == true {
        let sentence = text(result);
        let kind = [
            ("buying power", "insufficient_buying_power"),
            ("cannot sell", "insufficient_position"),
            ("unknown symbol", "unknown_symbol"),
            ("already used for another order", "client_order_id_reused"),
            ("not logged in", "not_logged_in"),
            ("market is closed", "market_closed"),
        ]
        .iter()
        .find(|(phrase, _)| sentence.contains(phrase))
        .map_or("other", |(_, kind)| kind);
        return json!({"error": kind});
    }
    let content = structured(result);
    let order = |order: &Value| {
        json!({
            "symbol": order["symbol"].as_str().map(|symbol| symbol.replace('/', "-")),
            "side": order["side"], "type": order["type"], "qty": order["qty"],
            "status": order["status"], "time_in_force": order["time_in_force"],
            "order_class": order["order_class"], "filled_qty": order["filled_qty"],
            "filled": order["avg_fill_price"].is_string(),
        })
    };
    if let Some(placed) = content.get("order") {
        return json!({"order": order(placed), "replayed": content["replayed"]});
    }
    if let Some(orders) = content.get("orders").and_then(Value::as_array) {
        return json!({"orders": orders.iter().map(order).collect::<Vec<_>>()});
    }
    if let Some(positions) = content.get("positions").and_then(Value::as_array) {
        let positions: Vec<Value> = positions
            .iter()
            .map(|position| {
                json!({"symbol": position["symbol"].as_str().map(|s| s.replace('/', "-")),
                       "qty": position["qty"]})
            })
            .collect();
        return json!({"positions": positions});
    }
    if content.get("cash").is_some() {
        return json!({"cash": content["cash"], "currency": content["currency"]});
    }
    json!({"other": content.as_object().map(|object| object.keys().cloned().collect::<Vec<_>>())})
}

/// A price field of a result as a number, to compare two brokers within a tolerance.
fn price(result: &Value, field: &str) -> f64 {
    let value = &structured(result)[field];
    value
        .as_str()
        .and_then(|text| text.parse().ok())
        .or_else(|| value.as_f64())
        .unwrap_or_else(|| panic!("no {field} in {result}"))
}

#[test]
fn the_same_scenario_against_paper_and_alpaca_paper_agrees() {
    let mut harness = start();
    harness.login();
    let paper_login = harness.call(
        "broker_login",
        json!({"broker": "paper", "api_key": "k", "api_secret": "s"}),
    );
    assert_eq!(paper_login["isError"], false, "{paper_login}");
    let scenario: Vec<(&str, Value)> = vec![
        ("account", json!({})),
        (
            "order_place",
            json!({"symbol": "BTC-USD", "side": "buy", "qty": "0.01", "type": "market", "client_order_id": "d-1"}),
        ),
        (
            "order_place",
            json!({"symbol": "BTC-USD", "side": "buy", "qty": "0.01", "type": "market", "client_order_id": "d-1"}),
        ),
        (
            "order_place",
            json!({"symbol": "BTC-USD", "side": "buy", "qty": "0.02", "type": "market", "client_order_id": "d-1"}),
        ),
        (
            "order_place",
            json!({"symbol": "ETH-USD", "side": "buy", "qty": "0.5", "type": "limit", "limit_price": "1.00", "client_order_id": "d-2"}),
        ),
        ("orders", json!({"status": "open"})),
        (
            "order_place",
            json!({"symbol": "ETH-USD", "side": "sell", "qty": "1", "type": "market", "client_order_id": "d-3"}),
        ),
        (
            "order_place",
            json!({"symbol": "BTC-USD", "side": "buy", "qty": "1000", "type": "market", "client_order_id": "d-4"}),
        ),
        ("quote", json!({"symbol": "ZZZZ"})),
        ("positions", json!({})),
        ("orders", json!({"status": "all"})),
    ];
    for (tool, arguments) in &scenario {
        let mut outcomes = Vec::new();
        for broker in ["paper", BROKER] {
            let mut arguments = arguments.clone();
            arguments["broker"] = json!(broker);
            outcomes.push(outcome(&harness.call(tool, arguments)));
        }
        assert_eq!(
            outcomes[0], outcomes[1],
            "{tool} {arguments}: paper vs alpaca-paper"
        );
    }
    // The open limit order, cancelled on each broker by its own id.
    for broker in ["paper", BROKER] {
        let open = harness.call("orders", json!({"broker": broker, "status": "open"}));
        let order_id = structured(&open)["orders"][0]["order_id"].clone();
        let cancelled = harness.call(
            "order_cancel",
            json!({"broker": broker, "order_id": order_id}),
        );
        assert_eq!(
            outcome(&cancelled)["order"]["status"],
            "cancelled",
            "{broker}: {cancelled}"
        );
    }
    // Same seed, same moment: the same market, to within the time between the two calls.
    let paper_quote = harness.call("quote", json!({"broker": "paper", "symbol": "BTC-USD"}));
    let alpaca_quote = harness.call("quote", json!({"broker": BROKER, "symbol": "BTC-USD"}));
    for field in ["bid", "ask"] {
        let (paper, alpaca) = (price(&paper_quote, field), price(&alpaca_quote, field));
        assert!(
            (paper - alpaca).abs() / paper < 0.01,
            "{field}: paper {paper}, alpaca-paper {alpaca}"
        );
    }
    assert_eq!(structured(&alpaca_quote)["currency"], "USD");
    let indicator = json!({"symbol": "BTC-USD", "kind": "sma", "period": 5});
    let mut values = Vec::new();
    for broker in ["paper", BROKER] {
        let mut arguments = indicator.clone();
        arguments["broker"] = json!(broker);
        let result = harness.call("indicator", arguments);
        assert_eq!(result["isError"], false, "{broker}: {result}");
        values.push(price(&result, "value"));
    }
    assert!(
        (values[0] - values[1]).abs() / values[0] < 0.01,
        "sma(5): paper {}, alpaca-paper {}",
        values[0],
        values[1]
    );
}

#[test]
fn the_live_broker_is_listed_only_when_enabled_and_refuses_an_unconfirmed_order() {
    let standin = StandIn::start(&[(KEY, SECRET)], Some(7));
    let url = standin.url();
    let live_urls = vec![
        format!("--broker-url=alpaca.trading={url}"),
        format!("--broker-url=alpaca.data={url}"),
    ];
    let names = |list: &Value| -> Vec<String> {
        structured(list)["brokers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|broker| broker["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut harness = start_at(standin, live_urls.clone(), &[]);
    let list = harness.call("broker_list", json!({}));
    assert!(!names(&list).contains(&"alpaca".to_owned()), "{list}");
    drop(harness);

    let standin = StandIn::start(&[(KEY, SECRET)], Some(7));
    let url = standin.url();
    let urls = vec![
        format!("--broker-url=alpaca.trading={url}"),
        format!("--broker-url=alpaca.data={url}"),
    ];
    let mut harness = start_at(
        standin,
        urls,
        &[
            "--allow-live-broker",
            "alpaca",
            "--max-order-notional",
            "1000",
        ],
    );
    let list = harness.call("broker_list", json!({}));
    let live = structured(&list)["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|broker| broker["name"] == "alpaca")
        .cloned()
        .unwrap_or_else(|| panic!("alpaca is listed once enabled: {list}"));
    assert_eq!(live["environment"], "live", "{list}");
    let login = harness.call(
        "broker_login",
        json!({"broker": "alpaca", "api_key": KEY, "api_secret": "wrong"}),
    );
    assert!(
        error_text(&login).contains("check that the keys belong to the live environment"),
        "{login}"
    );
    let login = harness.call(
        "broker_login",
        json!({"broker": "alpaca", "api_key": KEY, "api_secret": SECRET}),
    );
    assert_eq!(login["isError"], false, "{login}");
    // This client cannot answer an elicitation, so the live order fails closed.
    let refused = harness.call(
        "order_place",
        json!({"broker": "alpaca", "symbol": "BTC/USD", "side": "buy", "qty": "0.001",
               "type": "market", "client_order_id": "live-1"}),
    );
    assert!(
        error_text(&refused).contains("the live order was not placed"),
        "{refused}"
    );
    assert_eq!(structured(&refused)["error"]["kind"], "not_confirmed");
    assert_eq!(harness.standin.order_count(KEY), 0);
}
