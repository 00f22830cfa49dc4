//! A private, empty home directory per wrapped server, removed with everything in it after the
//! server is reaped.
//!
//! Real servers write caches and temporary files (`~/.npm`, `~/.cache`, `$TMPDIR`). A shared
//! home or `/tmp` would be a channel between sessions, and the supervisor's own home is not the
//! server's business, so each wrapped server gets `HOME` and `TMPDIR` pointing at a fresh 0700
//! directory of its own under one directory per supervisor, and Landlock lets it write there.
//!
//! That per-supervisor directory is made like `mkdtemp`: `<temp>/bulkhead-<pid>-<6 random>`,
//! created atomically (an existing name is never reused, and a symlink there is never followed),
//! then made 0700 — 0711 when servers get uids of their own, so each can reach its own home and
//! list nothing — through a descriptor opened without following links. A name someone else
//! planted (a symlink, another user's directory, the old predictable `bulkhead-<pid>`) has no
//! effect. Directories left by a supervisor that died are removed at the next start, if they
//! are real directories of this uid.

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};

/// Prefix of the per-supervisor directory under the temporary directory.
const DIR_PREFIX: &str = "bulkhead-";

/// This supervisor's directory of homes, once made (or adopted from the previous image).
static BASE: Mutex<Option<PathBuf>> = Mutex::new(None);

/// One server's home; removed (recursively) on drop.
#[derive(Debug)]
pub(super) struct PrivateHome {
    path: PathBuf,
}

impl PrivateHome {
    /// Create the next home, owned by `ids` when the server gets a uid of its own.
    pub(super) fn create(ids: Option<(Uid, Gid)>) -> io::Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base = base(ids.is_some())?;
        // After a reload the directory also holds the homes of adopted servers, numbered by the
        // previous image: skip the names taken (`create` never reuses an existing one).
        let path = loop {
            let path = base.join(format!("home-{}", NEXT.fetch_add(1, Ordering::Relaxed)));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => break path,
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(error) => return Err(error),
            }
        };
        let home = Self { path };
        if let Some((uid, gid)) = ids {
            nix::unistd::chown(&home.path, Some(uid), Some(gid)).map_err(io::Error::from)?;
        }
        Ok(home)
    }

    /// The home of a server the previous image started, removed like any other. Its directory
    /// (the previous image's, of this same pid) becomes this image's, so that a reload leaves
    /// no directory behind.
    pub(super) fn adopt(path: PathBuf) -> Self {
        if let Some(parent) = path.parent() {
            let mut base = BASE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if base.is_none() {
                *base = Some(parent.to_path_buf());
            }
        }
        Self { path }
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

/// `<temp>/bulkhead-<pid>-<random>`, created once (removing those of supervisors that are gone).
/// `shared` when each server runs as a uid of its own, which must be able to reach its home.
fn base(shared: bool) -> io::Result<PathBuf> {
    let mut base = BASE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(base) = &*base {
        return Ok(base.clone());
    }
    let temp = std::env::temp_dir();
    remove_stale(&temp);
    let template = temp.join(format!("{DIR_PREFIX}{}-XXXXXX", std::process::id()));
    let created = nix::unistd::mkdtemp(&template).map_err(io::Error::from)?;
    // Through a descriptor of the directory mkdtemp made, never a path a link could redirect.
    let directory = nix::fcntl::open(
        &created,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)?;
    let mode = if shared { 0o711 } else { 0o700 };
    nix::sys::stat::fchmod(&directory, Mode::from_bits_truncate(mode)).map_err(io::Error::from)?;
    Ok(base.insert(created).clone())
}

/// Remove `bulkhead-<pid>[-<random>]` directories whose supervisor no longer runs: real
/// directories of this uid only, never a symlink or another user's.
fn remove_stale(temp: &Path) {
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix(DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        // `DirEntry::metadata` does not follow a symlink.
        let ours = entry.metadata().is_ok_and(|metadata| {
            metadata.is_dir()
                && std::os::unix::fs::MetadataExt::uid(&metadata) == Uid::effective().as_raw()
        });
        if ours && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
