//! `bulkhead serve` as an OAuth 2.1 resource server, against a real authorization server:
//! npm's `oidc-provider` on loopback (`tests/oauth/provider.mjs`), issuing JWT access tokens
//! for Bulkhead's resource by client credentials. Tokens the provider would never issue
//! (expired, unknown key id, HMAC with its public key) are signed by the provider's own key
//! through its test-only `/test/sign` route; everything Bulkhead fetches comes from the
//! provider's real discovery and JWKS endpoints.

use std::time::{Duration, Instant};

use bulkhead_tests::http::{HttpResponse, TestServer, free_loopback_addr};
use bulkhead_tests::oauth::{AuthServer, SCOPES, now};
use bulkhead_tests::*;
use serde_json::{Value, json};

/// Issuer label of the provider in these tests: its principals are `t_<client>`.
const LABEL: &str = "t";

/// `bulkhead serve` trusting `auth`, requiring scope `mcp` and `trade` for `order_place`.
fn serve(auth: &AuthServer, extra: &[&str], env: &[(&str, &str)]) -> (TestServer, String) {
    let addr = free_loopback_addr();
    let resource = format!("http://{addr}/mcp");
    let issuer = format!("{LABEL}={}", auth.issuer);
    let mut args = vec![
        "--public-url",
        &resource,
        "--oauth-issuer",
        &issuer,
        "--oauth-scope",
        "mcp",
        "--oauth-tool-scope",
        "order_place=trade",
    ];
    args.extend_from_slice(extra);
    let server = TestServer::start_on(&addr.to_string(), &args, env);
    (server, resource)
}

/// A forwarded tool call (it reaches a worker and writes an audit line).
fn echo(server: &TestServer, token: Option<&str>, text: &str) -> HttpResponse {
    server.modern(
        token,
        1,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": text}}),
    )
}

fn challenge(response: &HttpResponse) -> String {
    response
        .header("www-authenticate")
        .unwrap_or_else(|| panic!("no challenge on {}: {}", response.status, response.text()))
        .to_string()
}

fn metadata_url(server: &TestServer) -> String {
    format!(
        "http://{}/.well-known/oauth-protected-resource/mcp",
        server.addr
    )
}

/// Claims of a token the provider's key signs, valid unless `changes` say otherwise.
fn claims(auth: &AuthServer, resource: &str, changes: Value) -> Value {
    let mut claims = json!({
        "iss": auth.issuer, "sub": "alice", "aud": resource, "scope": "mcp",
        "iat": now(), "exp": now() + 300, "client_id": "alice",
    });
    claims
        .as_object_mut()
        .unwrap()
        .extend(changes.as_object().unwrap().clone());
    claims
}

#[test]
fn provider_tokens_work_and_every_bad_token_gets_the_challenge() {
    let auth = AuthServer::start();
    let stranger = AuthServer::start();
    // Static tokens and Unix peer uids keep working beside OAuth.
    let dir = std::env::temp_dir().join(format!("bulkhead-oauth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (tokens, socket) = (dir.join("tokens"), dir.join("mcp.sock"));
    std::fs::write(&tokens, format!("ops:{STATIC_TOKEN}\n")).unwrap();
    let (server, resource) = serve(
        &auth,
        &[
            "--tokens",
            tokens.to_str().unwrap(),
            "--unix",
            socket.to_str().unwrap(),
            "--unix-peer-uid",
        ],
        &[],
    );
    assert_eq!(echo(&server, Some(STATIC_TOKEN), "static").status, 200);
    assert!(
        unix_echo(&socket).starts_with("HTTP/1.1 200"),
        "peer uid over --unix"
    );

    // The metadata clients discover the authorization server from.
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let metadata = server.get(path);
        assert_eq!(metadata.status, 200, "{path}: {}", metadata.text());
        assert_eq!(
            metadata.json(),
            json!({
                "resource": resource,
                "authorization_servers": [auth.issuer],
                "scopes_supported": ["mcp", "trade"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Bulkhead",
            })
        );
        let foreign_origin =
            server.request("GET", path, &[("Origin", "https://evil.example")], b"");
        assert_eq!(foreign_origin.status, 403, "same Origin rule as /mcp");
        let rebound = server.raw(
            format!("GET {path} HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(rebound.status, 403, "same Host rule as /mcp");
    }

    // No token: the challenge points at the metadata and names the scope to ask for.
    let missing = echo(&server, None, "x");
    assert_eq!(missing.status, 401);
    assert_eq!(
        challenge(&missing),
        format!(
            "Bearer realm=\"bulkhead\", resource_metadata=\"{}\", scope=\"mcp\"",
            metadata_url(&server)
        )
    );

    // A token the provider issued for this resource works.
    let alice = auth.token("alice", &resource, SCOPES);
    let called = echo(&server, Some(&alice), "hello");
    assert_eq!(called.status, 200, "{}", called.text());
    assert_eq!(
        called.json()["result"]["structuredContent"]["text"],
        "hello"
    );

    // Every other token: 401, error="invalid_token", and the same pointer to the metadata.
    let (header, _, signature) = split(&alice);
    let mallory = auth.sign(
        json!({}),
        claims(&auth, &resource, json!({"sub": "mallory"})),
    );
    let (_, mallory_claims, _) = split(&mallory);
    let mut tampered_signature = signature.to_string();
    let flipped = if tampered_signature.as_bytes()[10] == b'A' {
        "B"
    } else {
        "A"
    };
    tampered_signature.replace_range(10..11, flipped);
    let refused = [
        (
            "another audience",
            auth.token("alice", "https://elsewhere.example/mcp", "mcp"),
            "was not issued for this resource",
        ),
        (
            "another issuer",
            stranger.token("alice", &resource, "mcp"),
            "issuer is not trusted",
        ),
        (
            "expired",
            auth.sign(
                json!({}),
                claims(&auth, &resource, json!({"exp": now() - 3600})),
            ),
            "has expired",
        ),
        (
            "not yet valid",
            auth.sign(
                json!({}),
                claims(&auth, &resource, json!({"nbf": now() + 3600})),
            ),
            "not valid yet",
        ),
        (
            "no audience",
            auth.sign(json!({}), claims(&auth, &resource, json!({"aud": null}))),
            "lacks the claim aud",
        ),
        (
            "tampered signature",
            format!("{header}.{}.{tampered_signature}", split(&alice).1),
            "signature is invalid",
        ),
        (
            "tampered claims",
            format!("{header}.{mallory_claims}.{signature}"),
            "signature is invalid",
        ),
        (
            "alg none",
            format!("eyJhbGciOiJub25lIn0.{mallory_claims}."),
            "not a well-formed JWT",
        ),
        (
            "HMAC keyed with the public key",
            auth.sign(json!({"alg": "HS256"}), claims(&auth, &resource, json!({}))),
            "algorithm is not accepted",
        ),
        (
            "unknown key id",
            auth.sign(
                json!({"kid": "not-a-key"}),
                claims(&auth, &resource, json!({})),
            ),
            "no signing key",
        ),
        (
            "opaque",
            "an-opaque-token-0123456789".to_string(),
            "not a well-formed JWT",
        ),
    ];
    for (case, token, description) in &refused {
        let response = echo(&server, Some(token), "x");
        assert_eq!(response.status, 401, "{case}: {}", response.text());
        let challenge = challenge(&response);
        assert!(
            challenge.contains(&format!("resource_metadata=\"{}\"", metadata_url(&server)))
                && challenge.contains("scope=\"mcp\"")
                && challenge.contains("error=\"invalid_token\"")
                && challenge.contains(description),
            "{case}: {challenge}"
        );
    }

    // A token in the query string is refused, even beside a valid header.
    for headers in [vec![], vec![("Authorization", format!("Bearer {alice}"))]] {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .chain([
                ("Content-Type", "application/json"),
                ("Accept", "application/json, text/event-stream"),
            ])
            .collect();
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}});
        let response = server.request(
            "POST",
            &format!("/mcp?access_token={alice}"),
            &headers,
            body.to_string().as_bytes(),
        );
        assert_eq!(response.status, 401, "{}", response.text());
        assert!(challenge(&response).contains("error=\"invalid_request\""));
    }

    // Scopes: `mcp` for everything, `trade` for order_place.
    let carol = auth.token("carol", &resource, "trade");
    let unscoped = echo(&server, Some(&carol), "x");
    assert_eq!(unscoped.status, 403, "{}", unscoped.text());
    let unscoped_challenge = challenge(&unscoped);
    assert!(
        unscoped_challenge.contains("error=\"insufficient_scope\"")
            && unscoped_challenge.contains("scope=\"mcp\""),
        "{unscoped_challenge}"
    );
    let bob = auth.token("bob", &resource, "mcp");
    assert_eq!(echo(&server, Some(&bob), "x").status, 200);
    let order = |token: &str| {
        server.modern(
            Some(token),
            1,
            "tools/call",
            json!({"name": "order_place", "arguments": {"symbol": "AAPL", "side": "buy", "qty": 1, "type": "market"}}),
        )
    };
    let untraded = order(&bob);
    assert_eq!(untraded.status, 403, "{}", untraded.text());
    let untraded_challenge = challenge(&untraded);
    assert!(
        untraded_challenge.contains("error=\"insufficient_scope\"")
            && untraded_challenge.contains("scope=\"mcp trade\""),
        "{untraded_challenge}"
    );
    let traded = order(&alice);
    assert_eq!(traded.status, 200, "{}", traded.text());
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

/// A static token from a tokens file, beside OAuth.
const STATIC_TOKEN: &str = "ops-token-0123456789abcdef";

/// A tokenless 2026-07-28 `echo` over the Unix socket; the raw response.
fn unix_echo(socket: &std::path::Path) -> String {
    use std::io::{Read, Write};
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "unix"}, "_meta": modern_meta()}}).to_string();
    let mut stream =
        std::os::unix::net::UnixStream::connect(socket).expect("connect to the socket");
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nAccept: application/json\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: echo\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

/// A token's three dot-separated parts.
fn split(token: &str) -> (&str, &str, &str) {
    let mut parts = token.splitn(3, '.');
    (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    )
}

#[test]
fn unknown_key_ids_refresh_the_keys_at_most_once_per_interval_and_rotation_needs_no_restart() {
    const INTERVAL: Duration = Duration::from_secs(2);
    let auth = AuthServer::start();
    let (server, resource) = serve(&auth, &["--oauth-jwks-refresh-interval", "2"], &[]);
    assert!(
        eventually(Duration::from_secs(10), || auth.jwks_fetches() == 1),
        "the keys are fetched at start"
    );
    let first_fetch = Instant::now();
    let before = auth.token("alice", &resource, "mcp");
    assert_eq!(echo(&server, Some(&before), "x").status, 200);
    assert_eq!(auth.jwks_fetches(), 1, "a known key needs no fetch");

    // The provider rotates: its new tokens name a key Bulkhead has not seen.
    auth.rotate();
    let after = auth.token("alice", &resource, "mcp");
    std::thread::sleep(INTERVAL.saturating_sub(first_fetch.elapsed()) + Duration::from_millis(200));
    let rotated = echo(&server, Some(&after), "x");
    assert_eq!(rotated.status, 200, "{}", rotated.text());
    assert_eq!(auth.jwks_fetches(), 2, "the new key was fetched");
    assert_eq!(
        echo(&server, Some(&before), "x").status,
        200,
        "the old key is still published"
    );

    // Made-up key ids: refused, and within the interval no fetch at all.
    let flood = |round: u32| {
        for index in 0..10 {
            let token = auth.sign(
                json!({"kid": format!("made-up-{round}-{index}")}),
                claims(&auth, &resource, json!({})),
            );
            assert_eq!(echo(&server, Some(&token), "x").status, 401);
        }
    };
    let second_fetch = Instant::now();
    flood(1);
    assert_eq!(auth.jwks_fetches(), 2, "no fetch within the interval");
    std::thread::sleep(
        INTERVAL.saturating_sub(second_fetch.elapsed()) + Duration::from_millis(200),
    );
    flood(2);
    assert_eq!(
        auth.jwks_fetches(),
        3,
        "one fetch for a whole flood of unknown key ids"
    );
}

#[test]
fn two_principals_never_see_each_others_sessions_and_no_token_reaches_a_log_or_a_worker() {
    let auth = AuthServer::start();
    // Credentials provisioned for the OAuth principal `t_alice`, named as the README says.
    let credentials =
        std::env::temp_dir().join(format!("bulkhead-oauth-creds-{}", std::process::id()));
    std::fs::create_dir_all(&credentials).unwrap();
    std::fs::write(
        credentials.join("t_alice.main"),
        "broker = paper\napi_key = alice-key\napi_secret = alice-provisioned-secret\n",
    )
    .unwrap();
    let (server, resource) = serve(
        &auth,
        &["--credentials-dir", credentials.to_str().unwrap()],
        &[("RUST_LOG", "debug")],
    );
    let alice = auth.token("alice", &resource, SCOPES);
    let bob = auth.token("bob", &resource, "mcp");
    let login = |token: &str, reference: &str| {
        server.modern(
            Some(token),
            5,
            "tools/call",
            json!({"name": "broker_login", "arguments": {"broker": "paper", "credential_ref": reference}}),
        )
        .json()["result"]
            .clone()
    };
    assert_eq!(
        login(&alice, "main")["structuredContent"]["authenticated"],
        true
    );
    let (bobs, nonexistent) = (login(&bob, "main"), login(&bob, "nope"));
    assert_eq!(bobs["isError"], true, "{bobs}");
    assert_eq!(
        bobs["content"][0]["text"]
            .as_str()
            .unwrap()
            .replace("\"main\"", "REF"),
        nonexistent["content"][0]["text"]
            .as_str()
            .unwrap()
            .replace("\"nope\"", "REF"),
        "another principal's credential reads exactly like a missing one"
    );

    let handle = server.open_session(Some(&alice));
    let call_in = |token: &str, session: &str| {
        server.modern(
            Some(token),
            2,
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "a", "session": session}}),
        )
    };
    assert_eq!(
        call_in(&alice, &handle).json()["result"]["structuredContent"]["text"],
        "a"
    );
    let stolen = call_in(&bob, &handle);
    let made_up = call_in(&bob, "local.00112233445566778899aabbccddeeff");
    assert_eq!(
        (stolen.status, stolen.json()),
        (made_up.status, made_up.json()),
        "another principal's handle reads exactly like an unknown one"
    );
    assert_eq!(error_code(&stolen.json()), Some(-32040));

    // Legacy sessions too.
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}});
    let alice_auth = format!("Bearer {alice}");
    let bob_auth = format!("Bearer {bob}");
    let legacy_id = server
        .post(&[("Authorization", &alice_auth)], &initialize)
        .header("mcp-session-id")
        .expect("Mcp-Session-Id")
        .to_string();
    let legacy_echo = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "b"}}});
    let legacy = |auth: &str, id: &str| {
        server.post(
            &[
                ("Authorization", auth),
                ("Mcp-Session-Id", id),
                ("MCP-Protocol-Version", "2025-11-25"),
            ],
            &legacy_echo,
        )
    };
    assert_eq!(legacy(&alice_auth, &legacy_id).status, 200);
    let legacy_stolen = legacy(&bob_auth, &legacy_id);
    let legacy_unknown = legacy(&bob_auth, "local.ffeeddccbbaa99887766554433221100");
    assert_eq!(legacy_stolen.status, 404);
    assert_eq!(legacy_stolen.body, legacy_unknown.body);

    // Each principal's sessionless calls go to its own default session, in its own worker.
    let info = |token: &str| {
        server
            .modern(
                Some(token),
                3,
                "tools/call",
                json!({"name": "session_info", "arguments": {}}),
            )
            .json()["result"]["structuredContent"]
            .clone()
    };
    let (alice_default, bob_default) = (info(&alice), info(&bob));
    assert_ne!(alice_default["session"], bob_default["session"]);
    assert_eq!(echo(&server, Some(&bob), "c").status, 200);
    // A token in the query string is logged nowhere either.
    let _ = server.request("POST", &format!("/mcp?access_token={bob}"), &[], b"{}");

    // Neither token — nor its signature alone — is in any worker's environment or arguments.
    let secrets: Vec<&str> = [&alice, &bob]
        .iter()
        .flat_map(|token| [token.as_str(), split(token).2])
        .collect();
    let workers: Vec<u32> = children_of(server.pid())
        .into_iter()
        .map(|(pid, _)| pid)
        .collect();
    assert!(workers.len() >= 3, "workers: {workers:?}");
    for pid in workers {
        for file in ["environ", "cmdline"] {
            match std::fs::read(format!("/proc/{pid}/{file}")) {
                Ok(contents) => {
                    let contents = String::from_utf8_lossy(&contents);
                    for secret in &secrets {
                        assert!(
                            !contents.contains(secret),
                            "a token is in worker {pid}'s {file}"
                        );
                    }
                }
                Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => {
                    eprintln!("skipped worker {pid}'s {file}: readable by root only ({error})");
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => panic!("reading worker {pid}'s {file}: {error}"),
            }
        }
    }

    // The log at debug level names the principals (the audit line; the harness reads stderr on
    // a thread of its own, so a line may land after the reply), never a token.
    let audited = |principal: &str| {
        server.stderr().lines().any(|line| {
            line.contains("bulkhead::audit") && line.contains(&format!("principal={principal}"))
        })
    };
    for principal in ["t_alice", "t_bob"] {
        assert!(
            eventually(Duration::from_secs(5), || audited(principal)),
            "no audit line names {principal}:\n{}",
            server.stderr()
        );
    }
    let log = server.stderr();
    assert!(log.contains(" DEBUG "), "the log is at debug level");
    for secret in &secrets {
        assert!(!log.contains(secret), "a token is in the log");
    }
    let _ = std::fs::remove_dir_all(credentials);
}

#[test]
fn check_config_shows_the_oauth_configuration_and_refuses_plain_http_issuers() {
    let dir = std::env::temp_dir().join(format!("bulkhead-oauth-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bulkhead.toml");
    std::fs::write(
        &file,
        "[http]\npublic_url = \"https://mcp.example.com/mcp\"\n[http.oauth]\nissuers = [\"corp=https://login.example.com/realms/corp\"]\nscopes = [\"mcp\"]\n[http.oauth.tool_scopes]\norder_place = [\"trade\"]\n",
    )
    .unwrap();
    let check = |file: &std::path::Path| {
        #[allow(
            clippy::disallowed_methods,
            reason = "check-config is the binary under test"
        )]
        std::process::Command::new(binary("bulkhead"))
            .arg("check-config")
            .arg(file)
            .env_remove("CREDENTIALS_DIRECTORY")
            .output()
            .expect("run check-config")
    };
    let output = check(&file);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    let oauth = &summary["http"]["oauth"];
    assert_eq!(
        oauth["issuers"],
        json!([{"url": "https://login.example.com/realms/corp", "label": "corp"}])
    );
    assert_eq!(oauth["audiences"], json!(["https://mcp.example.com/mcp"]));
    assert_eq!(oauth["tool_scopes"], json!({"order_place": ["trade"]}));
    assert_eq!(summary["http"]["allow_hosts"], json!(["mcp.example.com"]));

    std::fs::write(
        &file,
        "[http]\npublic_url = \"https://mcp.example.com/mcp\"\n[http.oauth]\nissuers = [\"http://login.example.com\"]\n",
    )
    .unwrap();
    let output = check(&file);
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("must use https"));
    let _ = std::fs::remove_dir_all(dir);
}
