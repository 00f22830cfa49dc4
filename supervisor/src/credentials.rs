//! Operator-provisioned broker credentials, resolved for one principal at a time.
//!
//! A `broker_login {broker, credential_ref}` names a credential instead of carrying it, so the
//! secret never passes through the model. The supervisor looks the reference up for the
//! caller's principal only — the file `<dir>/<principal>.<credential_ref>` — and hands the
//! secret to that session's worker over its private socket. The directory is compatible with
//! systemd's `$CREDENTIALS_DIRECTORY` (`LoadCredential=local.main:/etc/bulkhead/main.cred`).
//!
//! A file holds `key = value` lines: `broker`, `api_key`, `api_secret` (`#` starts a comment).
//! It is read on every login, so rotating a credential needs no restart, and the buffers that
//! held it are zeroized. Every failure — no such file, another principal's file, a malformed
//! name, a broker mismatch — gives the caller the same answer, so nothing is learned about
//! which references exist.

use std::path::PathBuf;

use zeroize::Zeroizing;

/// Longest principal or reference name accepted in a file name.
const MAX_NAME_LEN: usize = 64;

/// A resolved credential. Its strings are wiped when it is dropped.
pub struct Resolved {
    pub api_key: Zeroizing<String>,
    pub api_secret: Zeroizing<String>,
}

/// Where credentials live, if anywhere.
#[derive(Debug, Clone, Default)]
pub struct CredentialStore {
    dir: Option<PathBuf>,
}

impl CredentialStore {
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { dir }
    }

    /// The credential `reference` of `principal` for `broker`, or `None` in every other case.
    pub fn resolve(&self, principal: &str, broker: &str, reference: &str) -> Option<Resolved> {
        let dir = self.dir.as_ref()?;
        if !is_plain_name(principal) || !is_plain_name(reference) {
            return None;
        }
        let path = dir.join(format!("{principal}.{reference}"));
        let contents = Zeroizing::new(std::fs::read_to_string(path).ok()?);
        let mut file_broker = None;
        let mut api_key = None;
        let mut api_secret = None;
        for line in contents.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line.split_once('=')?;
            let value = Zeroizing::new(value.trim().to_string());
            match key.trim() {
                "broker" => file_broker = Some(value),
                "api_key" => api_key = Some(value),
                "api_secret" => api_secret = Some(value),
                _ => return None,
            }
        }
        if file_broker.as_deref().map(String::as_str) != Some(broker) {
            return None;
        }
        Some(Resolved {
            api_key: api_key.filter(|key| !key.is_empty())?,
            api_secret: api_secret.filter(|secret| !secret.is_empty())?,
        })
    }
}

/// `[A-Za-z0-9_-]{1,64}`: no dots, slashes or anything else that could leave the directory or
/// reach another principal's file.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(files: &[(&str, &str)]) -> (tempdir::Dir, CredentialStore) {
        let dir = tempdir::Dir::new();
        for (name, contents) in files {
            std::fs::write(dir.path().join(name), contents).unwrap();
        }
        let store = CredentialStore::new(Some(dir.path().to_path_buf()));
        (dir, store)
    }

    #[test]
    fn resolves_only_the_callers_own_reference_for_the_named_broker() {
        let (_dir, store) = store_with(&[
            (
                "alice.main",
                "# paper account\nbroker = paper\napi_key = AK\napi_secret = S3CRET\n",
            ),
            (
                "bob.main",
                "broker = paper\napi_key = BK\napi_secret = BOB\n",
            ),
        ]);
        let resolved = store
            .resolve("alice", "paper", "main")
            .expect("alice's main");
        assert_eq!(resolved.api_key.as_str(), "AK");
        assert_eq!(resolved.api_secret.as_str(), "S3CRET");
        assert!(store.resolve("alice", "other-broker", "main").is_none());
        assert!(store.resolve("carol", "paper", "main").is_none());
        assert!(store.resolve("alice", "paper", "missing").is_none());
    }

    #[test]
    fn path_tricks_and_malformed_files_resolve_to_nothing() {
        let (_dir, store) = store_with(&[
            (
                "bob.main",
                "broker = paper\napi_key = BK\napi_secret = BOB\n",
            ),
            ("alice.bad", "broker = paper\napi_key = AK\n"),
            ("alice.weird", "broker = paper\nnonsense\n"),
        ]);
        assert!(store.resolve("alice", "paper", "../bob.main").is_none());
        assert!(store.resolve("alice/../bob", "paper", "main").is_none());
        assert!(store.resolve("bob.main", "paper", "x").is_none());
        assert!(store.resolve("alice", "paper", "bad").is_none());
        assert!(store.resolve("alice", "paper", "weird").is_none());
        assert!(
            CredentialStore::default()
                .resolve("bob", "paper", "main")
                .is_none()
        );
    }

    /// A throwaway directory, removed on drop (no extra crate needed for one test module).
    mod tempdir {
        pub struct Dir(std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                let mut random = [0u8; 8];
                getrandom::fill(&mut random).unwrap();
                let name = format!("bulkhead-cred-test-{}", u64::from_le_bytes(random));
                let path = std::env::temp_dir().join(name);
                std::fs::create_dir(&path).unwrap();
                Self(path)
            }
            pub fn path(&self) -> &std::path::Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }
}
