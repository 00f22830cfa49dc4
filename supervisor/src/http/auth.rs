//! Who is calling: bearer tokens mapped to principals, compared in constant time.
//!
//! A tokens file holds one `principal:token` per line, or `principal:sha256:<64 hex>` to store
//! only the token's SHA-256 digest (`#` starts a comment). Every presented token is hashed and
//! compared with every stored digest, without an early exit, so neither the match nor its
//! position leaks through timing. Over a Unix socket the principal can instead be the peer's
//! uid (`uid:<n>`), read from the kernel with `SO_PEERCRED`.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::principal::Principal;

/// Longest principal name: it appears in logs, metrics and credential file names.
const MAX_PRINCIPAL_LEN: usize = 64;

/// The principal every caller is under `--no-auth`.
pub const ANONYMOUS: &str = "anonymous";

type Sha256Digest = [u8; 32];

/// Known tokens.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<(Principal, Sha256Digest)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let principals: Vec<&str> = self.entries.iter().map(|(p, _)| p.as_ref()).collect();
        f.debug_struct("Tokens")
            .field("principals", &principals)
            .finish()
    }
}

impl Tokens {
    /// Read a tokens file, reporting every malformed line.
    pub fn load(path: &Path) -> Result<Self, Vec<String>> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            vec![format!(
                "cannot read tokens file {}: {error}",
                path.display()
            )]
        })?;
        Self::parse(&text).map_err(|problems| {
            problems
                .into_iter()
                .map(|problem| format!("tokens file {}: {problem}", path.display()))
                .collect()
        })
    }

    /// Parse the tokens file format.
    pub fn parse(text: &str) -> Result<Self, Vec<String>> {
        let mut entries = Vec::new();
        let mut problems = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_line(line) {
                Ok(entry) => entries.push(entry),
                Err(problem) => problems.push(format!("line {}: {problem}", index + 1)),
            }
        }
        if entries.is_empty() && problems.is_empty() {
            problems.push("no tokens".into());
        }
        if problems.is_empty() {
            Ok(Self { entries })
        } else {
            Err(problems)
        }
    }

    /// The principals that have tokens (for `check-config`; never the tokens).
    pub fn principals(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|(principal, _)| principal.to_string())
            .collect()
    }

    /// The principal of a presented bearer token, if any.
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        let presented: Sha256Digest = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (principal, digest) in &self.entries {
            if constant_time_eq(&presented, digest) && found.is_none() {
                found = Some(principal.clone());
            }
        }
        found
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

fn parse_line(line: &str) -> Result<(Principal, Sha256Digest), String> {
    let (principal, secret) = line
        .split_once(':')
        .ok_or("expected principal:token or principal:sha256:<hex>")?;
    if !is_valid_principal(principal) {
        return Err(format!(
            "principal {principal:?} must be 1-{MAX_PRINCIPAL_LEN} of A-Z a-z 0-9 _ -"
        ));
    }
    let digest = match secret.strip_prefix("sha256:") {
        Some(hex) => parse_hex_digest(hex).ok_or("sha256: must be followed by 64 hex digits")?,
        None if secret.len() < 16 => return Err("tokens must be at least 16 characters".into()),
        None => Sha256::digest(secret.as_bytes()).into(),
    };
    Ok((Principal::from(principal), digest))
}

/// `[A-Za-z0-9_-]{1,64}`.
pub fn is_valid_principal(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_PRINCIPAL_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn parse_hex_digest(hex: &str) -> Option<Sha256Digest> {
    if hex.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (index, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * index..2 * index + 2)?, 16).ok()?;
    }
    Some(digest)
}

/// The SHA-256 digest of a token, for comparing an admin token.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Equality that takes the same time wherever the inputs differ.
pub fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// The bearer token of an `Authorization` header value.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// The principal of a Unix-socket peer identified by its uid.
pub fn uid_principal(uid: u32) -> Principal {
    Principal::from(format!("uid-{uid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_hashed_tokens_authenticate_their_principal() {
        let hashed: String = Sha256::digest(b"bob-token-0123456789")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let tokens = Tokens::parse(&format!(
            "# team tokens\nalice:alice-token-0123456789\n\nbob:sha256:{hashed}\n"
        ))
        .unwrap();
        assert_eq!(tokens.len(), 2);
        assert_eq!(
            tokens.authenticate("alice-token-0123456789").as_deref(),
            Some("alice")
        );
        assert_eq!(
            tokens.authenticate("bob-token-0123456789").as_deref(),
            Some("bob")
        );
        assert_eq!(tokens.authenticate("alice-token-012345678"), None);
        assert_eq!(tokens.authenticate(""), None);
    }

    #[test]
    fn every_bad_line_is_reported() {
        let problems =
            Tokens::parse("nocolon\nbad name:0123456789abcdef\nshort:abc\nx:sha256:zz\n")
                .unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].starts_with("line 1"));
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }
}
