//! Session handles: `<node>.<32 hex digits>`, e.g. `n1.3f9a…`.
//!
//! The random part carries 128 bits of OS randomness (minted by the supervisor; this module
//! only formats and checks). The node prefix names the supervisor that owns the session, so a
//! load balancer can route on it without reading the body. A handle is a name, not a password:
//! the supervisor also checks on every use that the caller's principal opened it.

/// Bytes of randomness in a handle (128 bits).
pub const HANDLE_RANDOM_BYTES: usize = 16;

/// Longest node name: short enough to keep handles readable in logs and headers.
pub const MAX_NODE_LEN: usize = 32;

/// Characters of the random part shown in logs as the session tag: enough to tell sessions
/// apart in a log, too few to use the handle.
pub const TAG_LEN: usize = 8;

/// Whether `node` is a valid node name: 1–32 of `[a-z0-9-]`, not starting with `-`.
pub fn is_valid_node(node: &str) -> bool {
    !node.is_empty()
        && node.len() <= MAX_NODE_LEN
        && !node.starts_with('-')
        && node
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Format a handle from a node name and random bytes.
pub fn format_handle(node: &str, random: &[u8; HANDLE_RANDOM_BYTES]) -> String {
    let mut handle = String::with_capacity(node.len() + 1 + 2 * HANDLE_RANDOM_BYTES);
    handle.push_str(node);
    handle.push('.');
    for byte in random {
        handle.push(char::from(HEX[usize::from(byte >> 4)]));
        handle.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    handle
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Split a well-formed handle into `(node, random_hex)`; `None` for anything else.
pub fn parse_handle(handle: &str) -> Option<(&str, &str)> {
    let (node, random) = handle.split_once('.')?;
    let well_formed = is_valid_node(node)
        && random.len() == 2 * HANDLE_RANDOM_BYTES
        && random
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    well_formed.then_some((node, random))
}

/// The short tag logs show for a handle (the first [`TAG_LEN`] hex digits).
pub fn tag_of(handle: &str) -> &str {
    match parse_handle(handle) {
        Some((_, random)) => &random[..TAG_LEN],
        None => "invalid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        let random = [0xab; HANDLE_RANDOM_BYTES];
        let handle = format_handle("n1", &random);
        assert_eq!(handle, format!("n1.{}", "ab".repeat(16)));
        assert_eq!(
            parse_handle(&handle),
            Some(("n1", "ab".repeat(16).as_str()))
        );
        assert_eq!(tag_of(&handle), "abababab");
    }

    #[test]
    fn rejects_malformed_handles() {
        for bad in [
            "",
            "n1",
            "n1.",
            ".abc",
            "N1.00000000000000000000000000000000",
            "n1.0000000000000000000000000000000",
            "n1.000000000000000000000000000000000",
            "n1.0000000000000000000000000000000g",
            "-x.00000000000000000000000000000000",
        ] {
            assert_eq!(parse_handle(bad), None, "{bad:?} should be rejected");
        }
    }

    #[test]
    fn node_names() {
        assert!(is_valid_node("node-7"));
        assert!(!is_valid_node("Node"));
        assert!(!is_valid_node(&"a".repeat(33)));
    }
}
