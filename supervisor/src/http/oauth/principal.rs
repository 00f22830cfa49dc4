//! The principal of an OAuth caller: its issuer's label and its principal claim, in one name
//! that is safe in logs, metrics and credential file names.
//!
//! The form is `<label>_<claim>`. A label is 1-16 of `a-z 0-9 -` (no `_`), so the first `_`
//! ends it and two issuers' principals never collide. The claim keeps `A-Z a-z 0-9 -` and
//! writes every other byte of its UTF-8 as `_` and two upper-case hex digits (`auth0|42` →
//! `auth0_7C42`, `ann@example.com` → `ann_40example_2Ecom`), which can be undone, so two
//! claims never share a name. A name longer than 64 characters becomes
//! `<label>__sha256-<32 hex>` (the first 128 bits of the claim's SHA-256): `_s` can never
//! follow the separator in the escaped form, so a hashed name never equals an escaped one.
//! Static-token principals (`[A-Za-z0-9_-]`) could be written in this form too, so
//! configuration refuses a tokens file whose principal starts with a configured label and `_`.

use sha2::{Digest, Sha256};

/// Longest principal name, the same bound static-token principals have.
pub const MAX_PRINCIPAL_LEN: usize = 64;
/// Longest issuer label: short enough to leave most of a name to the claim.
pub const MAX_LABEL_LEN: usize = 16;
/// Marks a hashed claim; see the module documentation for why it cannot collide.
const HASHED_MARKER: &str = "_sha256-";
/// Hex digits of the claim's SHA-256 kept in a hashed name: 128 bits.
const HASHED_HEX_DIGITS: usize = 32;

/// Whether `label` is a valid issuer label.
pub fn is_valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= MAX_LABEL_LEN
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The label an issuer gets when the operator names none: `o` and the first 8 hex digits of
/// its URL's SHA-256, stable across restarts and configuration changes.
pub fn default_label(issuer: &str) -> String {
    format!("o{}", &hex(&Sha256::digest(issuer.as_bytes()))[..8])
}

/// The principal name of `claim` as issued by the issuer labelled `label`.
pub fn principal_name(label: &str, claim: &str) -> String {
    let mut name = format!("{label}_");
    for byte in claim.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' {
            name.push(char::from(byte));
        } else {
            name.push_str(&format!("_{byte:02X}"));
        }
    }
    if name.len() <= MAX_PRINCIPAL_LEN {
        return name;
    }
    let digest = hex(&Sha256::digest(claim.as_bytes()));
    format!("{label}_{HASHED_MARKER}{}", &digest[..HASHED_HEX_DIGITS])
}

/// Whether a static-token principal could be taken for one of `label`'s OAuth principals.
pub fn collides_with_label(static_principal: &str, label: &str) -> bool {
    static_principal
        .strip_prefix(label)
        .is_some_and(|rest| rest.starts_with('_'))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::auth::is_valid_principal;

    #[test]
    fn plain_claims_stay_readable_and_others_are_escaped() {
        assert_eq!(principal_name("corp", "alice"), "corp_alice");
        assert_eq!(
            principal_name("corp", "0f3c-9a"),
            "corp_0f3c-9a",
            "UUID-like subjects are unchanged"
        );
        assert_eq!(principal_name("corp", "auth0|42"), "corp_auth0_7C42");
        assert_eq!(
            principal_name("corp", "ann@example.com"),
            "corp_ann_40example_2Ecom"
        );
        assert_eq!(principal_name("corp", "a_b"), "corp_a_5Fb");
        assert_eq!(principal_name("corp", "é"), "corp__C3_A9");
    }

    #[test]
    fn every_name_is_a_valid_principal_and_distinct() {
        let claims = [
            "alice",
            "a_b",
            "a_5Fb",
            "ann@example.com",
            "",
            "x".repeat(200).as_str(),
            "y".repeat(200).as_str(),
            "../../etc/passwd",
            "a.b",
        ]
        .map(str::to_string);
        let mut names = std::collections::HashSet::new();
        for claim in &claims {
            for label in ["corp", "o1a2b3c4d", "a-very-long-labe"] {
                let name = principal_name(label, claim);
                assert!(
                    is_valid_principal(&name),
                    "{name:?} is not a valid principal"
                );
                assert!(names.insert(name.clone()), "{name:?} named twice");
            }
        }
    }

    #[test]
    fn long_claims_are_hashed_with_a_marker_escaping_cannot_produce() {
        let name = principal_name("corp", &"x".repeat(100));
        assert!(name.starts_with("corp__sha256-"), "{name}");
        assert_eq!(name.len(), "corp__sha256-".len() + 32);
        // The escaped form puts upper-case hex after every `_`, never `s`.
        assert!(!principal_name("corp", "_sha256-").starts_with("corp__s"));
    }

    #[test]
    fn labels_and_collisions() {
        assert!(is_valid_label("corp"));
        assert!(is_valid_label(&default_label("https://login.example")));
        assert!(!is_valid_label("Corp"));
        assert!(!is_valid_label("a_b"));
        assert!(!is_valid_label(""));
        assert!(!is_valid_label(&"a".repeat(17)));
        assert_eq!(
            default_label("https://login.example"),
            default_label("https://login.example")
        );
        assert_ne!(
            default_label("https://login.example"),
            default_label("https://login.example/tenant")
        );
        assert!(collides_with_label("corp_alice", "corp"));
        assert!(!collides_with_label("corpalice", "corp"));
        assert!(!collides_with_label("alice", "corp"));
    }
}
