//! A private, empty home directory per wrapped server, removed with everything in it after the
//! server is reaped.
//!
//! Real servers write caches and temporary files (`~/.npm`, `~/.cache`, `$TMPDIR`). A shared
//! home or `/tmp` would be a channel between sessions, and the supervisor's own home is not the
//! server's business, so each wrapped server gets `HOME` and `TMPDIR` pointing at a fresh 0700
//! directory of its own under `<temp>/bulkhead-<supervisor pid>/` (0711, so a per-session uid can
//! reach its own directory and list nothing), and Landlock lets it write there. Directories left
//! by a supervisor that died are removed at the next start.

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::unistd::{Gid, Uid};

/// Prefix of the per-supervisor directory under the temporary directory.
const DIR_PREFIX: &str = "bulkhead-";

/// One server's home; removed (recursively) on drop.
#[derive(Debug)]
pub(super) struct PrivateHome {
    path: PathBuf,
}

impl PrivateHome {
    /// Create the next home, owned by `ids` when the server gets a uid of its own.
    pub(super) fn create(ids: Option<(Uid, Gid)>) -> io::Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base = base()?;
        let path = base.join(format!("home-{}", NEXT.fetch_add(1, Ordering::Relaxed)));
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        let home = Self { path };
        if let Some((uid, gid)) = ids {
            nix::unistd::chown(&home.path, Some(uid), Some(gid)).map_err(io::Error::from)?;
        }
        Ok(home)
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PrivateHome {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.path)
            && error.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(
                "cannot remove a wrapped server's home {}: {error}",
                self.path.display()
            );
        }
    }
}

/// `<temp>/bulkhead-<pid>`, created once (removing those of supervisors that are gone).
fn base() -> io::Result<PathBuf> {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    if let Some(base) = BASE.get() {
        return Ok(base.clone());
    }
    let temp = std::env::temp_dir();
    remove_stale(&temp);
    let base = temp.join(format!("{DIR_PREFIX}{}", std::process::id()));
    match std::fs::DirBuilder::new().mode(0o711).create(&base) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            // Left by an earlier process with our pid: it must be ours now, and private.
            std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o711))?;
        }
        Err(error) => return Err(error),
    }
    Ok(BASE.get_or_init(|| base).clone())
}

/// Remove `bulkhead-<pid>` directories whose supervisor no longer runs.
fn remove_stale(temp: &Path) {
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix(DIR_PREFIX))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let owned_by_us = entry.metadata().is_ok_and(|metadata| {
            std::os::unix::fs::MetadataExt::uid(&metadata) == Uid::effective().as_raw()
        });
        if owned_by_us && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
