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
//!
//! External worker mode reads the same directory for environment variables: `<principal>.env`
//! holds `NAME=VALUE` lines that reach only that principal's wrapped servers
//! ([`CredentialStore::environment`]), read at every session start.

use std::path::PathBuf;

use zeroize::Zeroizing;

/// Longest principal or reference name accepted in a file name.
const MAX_NAME_LEN: usize = 64;

/// Suffix of a principal's environment file: `<principal>.env`.
const ENVIRONMENT_SUFFIX: &str = "env";

/// Variables a principal's environment file may not set: the exec shim's own.
const RESERVED_VARIABLES: [&str; 2] = [
    bulkhead_protocol::ENV_WORKER_PROTOCOL,
    bulkhead_protocol::exec::ENV_EXEC_POLICY,
];

/// Provisioned environment variables, in file order; the values are wiped when dropped.
pub type Environment = Vec<(String, Zeroizing<String>)>;

/// What a principal's environment file held when it was read: the SHA-256 of its bytes. A
/// pre-spawned process records the stamp of the file it was started from; when the file's
/// stamp differs at take, the process is discarded (its environment is out of date). A digest
/// rather than the file's mtime, size or inode: a rewrite within one timestamp tick, or in
/// place at the same size, changes it too. It identifies contents, never reveals them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EnvStamp([u8; 32]);

impl std::fmt::Debug for EnvStamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EnvStamp(..)")
    }
}

impl EnvStamp {
    /// The stamp of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest;
        Self(sha2::Sha256::digest(bytes).into())
    }
}

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

impl CredentialStore {
    /// The variables provisioned for `principal` in `<dir>/<principal>.env`: `NAME=VALUE` lines
    /// (`#` comments, blank lines, spaces around both sides and one pair of quotes around the
    /// value ignored). No directory or no file: none. A malformed file is an error that names
    /// the line but never its contents, so a session never starts without the credentials its
    /// operator meant it to have.
    #[cfg(test)]
    pub fn environment(&self, principal: &str) -> Result<Environment, String> {
        self.stamped_environment(principal)
            .map(|(variables, _)| variables)
    }

    /// [`CredentialStore::environment`] and the stamp of the bytes it was read from (`None`:
    /// no variables are provisioned for `principal`).
    pub fn stamped_environment(
        &self,
        principal: &str,
    ) -> Result<(Environment, Option<EnvStamp>), String> {
        let Some(dir) = &self.dir else {
            return Ok((Vec::new(), None));
        };
        if !is_plain_name(principal) {
            return Ok((Vec::new(), None));
        }
        let path = dir.join(format!("{principal}.{ENVIRONMENT_SUFFIX}"));
        let contents = match std::fs::read_to_string(&path) {
            Ok(contents) => Zeroizing::new(contents),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Vec::new(), None));
            }
            Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
        };
        let stamp = EnvStamp::of(contents.as_bytes());
        let mut variables = Vec::new();
        for (number, line) in contents.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let problem = |what: &str| format!("{} line {}: {what}", path.display(), number + 1);
            let (name, value) = line
                .split_once('=')
                .ok_or_else(|| problem("expected NAME=VALUE"))?;
            let name = name.trim().trim_start_matches("export ").trim();
            if !is_variable_name(name) {
                return Err(problem("the name is not a valid variable name"));
            }
            if RESERVED_VARIABLES.contains(&name) {
                return Err(problem("this variable belongs to Bulkhead"));
            }
            variables.push((
                name.to_string(),
                Zeroizing::new(unquote(value.trim()).to_string()),
            ));
        }
        let stamp = (!variables.is_empty()).then_some(stamp);
        Ok((variables, stamp))
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
fn is_variable_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|rest| rest.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
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

    #[test]
    fn a_principals_environment_file_is_read_for_that_principal_only() {
        let (_dir, store) = store_with(&[
            (
                "alice.env",
                "# provisioned\nACME_TOKEN = \"tok-alice\"\nexport REGION=eu-west-1\n\nEMPTY=\n",
            ),
            ("bob.env", "ACME_TOKEN=tok-bob\n"),
            ("mallory.env", "ACME_TOKEN tok\n"),
            ("eve.env", "BULKHEAD_WORKER_PROTOCOL=1\n"),
        ]);
        let alice = store.environment("alice").unwrap();
        let pairs: Vec<(&str, &str)> = alice
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("ACME_TOKEN", "tok-alice"),
                ("REGION", "eu-west-1"),
                ("EMPTY", "")
            ]
        );
        assert_eq!(store.environment("bob").unwrap()[0].1.as_str(), "tok-bob");
        assert!(store.environment("carol").unwrap().is_empty());
        assert!(store.environment("../alice").unwrap().is_empty());
        let malformed = store.environment("mallory").unwrap_err();
        assert!(
            malformed.contains("line 1") && !malformed.contains("tok"),
            "{malformed}"
        );
        assert!(store.environment("eve").is_err());
        assert!(
            CredentialStore::default()
                .environment("alice")
                .unwrap()
                .is_empty()
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
