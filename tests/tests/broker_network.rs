//! What a worker may reach on the network for its brokers, and how the operator says where the
//! brokers are: Landlock's TCP rules and resolver files end to end, and `--broker-url` /
//! `[brokers.NAME]` through `check-config`.

use std::net::TcpListener;

use bulkhead_tests::*;
use serde_json::{Value, json};

fn text(result: &Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn landlock_missing(bulkhead: &Running) -> bool {
    let log = bulkhead.stderr();
    log.contains("landlock unavailable") || log.contains("TCP bind and connect control")
}

#[test]
fn a_worker_connects_only_to_its_brokers_ports() {
    let broker = TcpListener::bind("127.0.0.1:0").unwrap();
    let elsewhere = TcpListener::bind("127.0.0.1:0").unwrap();
    let broker_url = format!("http://{}", broker.local_addr().unwrap());
    let mut bulkhead = TestSupervisor::new()
        .args(["--test-tools".to_string()])
        .args([
            format!("--broker-url=alpaca-paper.trading={broker_url}"),
            format!("--broker-url=alpaca-paper.data={broker_url}"),
        ])
        .start_legacy();
    let (session, _) = bulkhead.open_session();
    if landlock_missing(&bulkhead) {
        eprintln!("skipped: this kernel's Landlock has no TCP rules (the supervisor logged why)");
        return;
    }
    let allowed = bulkhead.call_ok(
        "connect_tcp",
        json!({"addr": broker.local_addr().unwrap().to_string(), "session": session}),
    );
    assert_eq!(allowed["isError"], false, "{allowed}");
    let denied = bulkhead.call_ok(
        "connect_tcp",
        json!({"addr": elsewhere.local_addr().unwrap().to_string(), "session": session}),
    );
    assert_eq!(denied["isError"], true, "{denied}");
    assert!(text(&denied).contains("Permission denied"), "{denied}");
    // The brokers are on a loopback address: nothing to resolve, so no resolver files.
    let resolver = bulkhead.call_ok(
        "read_file",
        json!({"path": "/etc/hosts", "session": session}),
    );
    assert_eq!(resolver["isError"], true, "{resolver}");
}

#[test]
fn a_worker_whose_brokers_have_host_names_may_read_the_resolvers_files_and_nothing_more() {
    // The documented endpoints: host names on port 443.
    let mut bulkhead = TestSupervisor::new().args(["--test-tools"]).start_legacy();
    let (session, _) = bulkhead.open_session();
    if landlock_missing(&bulkhead) {
        eprintln!("skipped: this kernel's Landlock has no TCP rules (the supervisor logged why)");
        return;
    }
    if std::path::Path::new("/etc/hosts").exists() {
        let hosts = bulkhead.call_ok(
            "read_file",
            json!({"path": "/etc/hosts", "session": session}),
        );
        assert_eq!(hosts["isError"], false, "{hosts}");
    }
    for path in ["/etc/passwd", "/etc/ssl", "/etc/shadow"] {
        let denied = bulkhead.call_ok("read_file", json!({"path": path, "session": session}));
        assert_eq!(denied["isError"], true, "{path}: {denied}");
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let denied = bulkhead.call_ok(
        "connect_tcp",
        json!({"addr": listener.local_addr().unwrap().to_string(), "session": session}),
    );
    assert!(text(&denied).contains("Permission denied"), "{denied}");
}

fn check_config(file: &std::path::Path, env: &[(&str, &str)]) -> std::process::Output {
    #[allow(clippy::disallowed_methods, reason = "running the binary under test")]
    let mut command = std::process::Command::new(binary("bulkhead"));
    command.arg("check-config").arg(file);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

#[test]
fn broker_urls_come_from_the_file_the_environment_and_flags_and_plain_http_must_be_loopback() {
    let dir = std::env::temp_dir().join(format!("bulkhead-broker-urls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "[http]\nno_auth = true\n[brokers.alpaca-paper]\ntrading_url = \"http://127.0.0.1:9100\"\n",
    )
    .unwrap();
    let output = check_config(
        &good,
        &[(
            "BULKHEAD_BROKER_URL",
            "alpaca.data=https://data.example.test",
        )],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let resolved: Value = serde_json::from_slice(&output.stdout).unwrap();
    let brokers = &resolved["brokers"];
    assert_eq!(
        brokers["alpaca"]["data_url"], "https://data.example.test",
        "{resolved}"
    );
    assert_eq!(
        brokers["alpaca"]["trading_url"],
        "https://api.alpaca.markets"
    );
    // The environment variable outranks every `[brokers.*]` URL of the file, as a flag's
    // variable outranks its file key.
    assert_eq!(
        brokers["alpaca-paper"]["trading_url"],
        "https://paper-api.alpaca.markets"
    );

    let output = check_config(&good, &[]);
    let resolved: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        resolved["brokers"]["alpaca-paper"]["trading_url"],
        "http://127.0.0.1:9100"
    );
    assert_eq!(
        resolved["brokers"]["alpaca-paper"]["data_url"],
        "https://data.alpaca.markets"
    );

    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[http]\nno_auth = true\n[brokers.alpaca-paper]\ntrading_url = \"http://paper-api.alpaca.markets\"\ndata_url = 5\n[brokers.kraken]\ntrading_url = \"https://kraken.example\"\n",
    )
    .unwrap();
    let output = check_config(&bad, &[]);
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "brokers.alpaca-paper.data_url: expected a URL string",
        "not a loopback address",
        "no network broker \"kraken\"",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected} not reported:\n{stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
