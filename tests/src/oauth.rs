//! OAuth side of the harness: a real authorization server — npm's `oidc-provider`, a certified
//! OpenID Provider, run by `tests/oauth/provider.mjs` on Node 22 — on loopback, and the requests
//! a client makes to it.
//!
//! `scripts/oauth-provider` installs it on first use (once per test binary); if that fails,
//! every test that needs it fails saying so. Each [`AuthServer`] is its own provider process
//! with its own issuer URL and keys; it exits when dropped (its stdin closes).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::OnceLock;

use crate::workspace;
use serde_json::{Value, json};

use crate::http::{HttpResponse, send};

/// The resource-scoped scopes the provider knows.
pub const SCOPES: &str = "mcp trade";

/// The Node binary to run the provider with, installing everything once per test binary.
fn node() -> &'static Path {
    static NODE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let installed = NODE.get_or_init(|| {
        let root = workspace();
        #[allow(
            clippy::disallowed_methods,
            reason = "the tests install the authorization server they run against"
        )]
        let output = std::process::Command::new(root.join("scripts/oauth-provider"))
            .current_dir(&root)
            .output()
            .map_err(|error| format!("cannot run scripts/oauth-provider: {error}"))?;
        if !output.status.success() {
            return Err(format!(
                "scripts/oauth-provider failed ({}): the OAuth tests need oidc-provider and Node 22 from npm\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
    });
    match installed {
        Ok(node) => node,
        Err(problem) => panic!("{problem}"),
    }
}

/// A running authorization server.
pub struct AuthServer {
    child: Child,
    /// Its issuer identifier, `http://127.0.0.1:<port>`.
    pub issuer: String,
    addr: SocketAddr,
}

impl AuthServer {
    pub fn start() -> Self {
        #[allow(
            clippy::disallowed_methods,
            reason = "the harness runs the authorization server the tests use"
        )]
        let mut child = std::process::Command::new(node())
            .arg(workspace().join("tests/oauth/provider.mjs"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the authorization server");
        let mut line = String::new();
        let read = BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line);
        let issuer = serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|ready| ready["issuer"].as_str().map(str::to_string));
        let Some(issuer) = issuer else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the authorization server did not start ({read:?}): {line:?}");
        };
        let addr = issuer
            .trim_start_matches("http://")
            .parse()
            .expect("issuer address");
        Self {
            child,
            issuer,
            addr,
        }
    }

    fn post(&self, path: &str, content_type: &str, body: &str) -> HttpResponse {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        send(self.addr, request.as_bytes())
    }

    fn get(&self, path: &str) -> HttpResponse {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        send(self.addr, request.as_bytes())
    }

    /// The token endpoint's answer to a client-credentials request.
    pub fn token_response(&self, client: &str, resource: &str, scope: &str) -> HttpResponse {
        let secret = format!("{client}-secret-0123456789");
        let body = [
            ("grant_type", "client_credentials"),
            ("client_id", client),
            ("client_secret", &secret),
            ("resource", resource),
            ("scope", scope),
        ]
        .iter()
        .map(|(name, value)| format!("{name}={}", form_encode(value)))
        .collect::<Vec<_>>()
        .join("&");
        self.post("/token", "application/x-www-form-urlencoded", &body)
    }

    /// An access token for `client` (alice, bob or carol) and `resource`.
    pub fn token(&self, client: &str, resource: &str, scope: &str) -> String {
        let response = self.token_response(client, resource, scope);
        response.json()["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token for {client}: {}", response.text()))
            .to_string()
    }

    /// A JWS the provider would not issue itself, signed with its current key.
    pub fn sign(&self, header: Value, claims: Value) -> String {
        let body = json!({"header": header, "claims": claims}).to_string();
        self.post("/test/sign", "application/json", &body).json()["token"]
            .as_str()
            .expect("signed token")
            .to_string()
    }

    /// How often the provider's JWKS has been fetched.
    pub fn jwks_fetches(&self) -> u64 {
        self.get("/test/jwks-fetches").json()["count"]
            .as_u64()
            .expect("count")
    }

    /// Publish a new signing key first in the JWKS; tokens are signed with it from now on.
    pub fn rotate(&self) -> String {
        self.post("/test/rotate", "application/json", "{}").json()["kid"]
            .as_str()
            .expect("new kid")
            .to_string()
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `application/x-www-form-urlencoded` for one value.
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(byte).to_string()
            }
            b' ' => "+".to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// The seconds since the epoch, for the claims of hand-made tokens.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}
