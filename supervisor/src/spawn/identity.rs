//! A uid and gid of its own for each worker, leased from a configured range.
//!
//! With distinct uids the kernel's own permission checks separate sessions even where the
//! sandbox has gaps (a kernel without Landlock, files in world-writable directories), and
//! `RLIMIT_NPROC` counts one session's tasks only. The gid is the same number as the uid.
//! Uids are handed out least-recently-released first, so a uid is reused as late as possible
//! (anything a worker left behind under its uid stays out of the next session's reach for as
//! long as the range allows). A uid returns to the pool when its lease is dropped, which the
//! worker's owner does after reaping it; a worker can create no process that could outlive it
//! under that uid, since seccomp forbids new processes.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};

use nix::unistd::{Gid, Uid};

/// A range of uids (and equal gids) reserved for workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UidRange {
    first: u32,
    count: u32,
}

#[allow(
    dead_code,
    reason = "built from the configuration once config.rs offers a uid range"
)]
impl UidRange {
    /// `count` uids starting at `first`. Never includes root, and never reaches the
    /// reserved `(uid_t)-1`.
    pub fn new(first: u32, count: u32) -> Result<Self, String> {
        if first == 0 {
            return Err("the worker uid range must not include 0 (root)".into());
        }
        if count == 0 {
            return Err("the worker uid range must hold at least one uid".into());
        }
        if first
            .checked_add(count)
            .is_none_or(|end| end > u32::MAX - 1)
        {
            return Err(format!(
                "the worker uid range {first}+{count} runs past the largest valid uid"
            ));
        }
        Ok(Self { first, count })
    }
}

/// The free uids of the range.
pub(super) struct UidPool {
    range: UidRange,
    free: Arc<Mutex<VecDeque<u32>>>,
}

impl UidPool {
    /// A pool over `range`; only root can switch a child to another uid.
    pub(super) fn new(range: UidRange) -> io::Result<Self> {
        if !nix::unistd::geteuid().is_root() {
            return Err(io::Error::other(format!(
                "a worker uid range ({}-{}) needs the supervisor to run as root",
                range.first,
                range.first + (range.count - 1)
            )));
        }
        tracing::info!(
            first = range.first,
            count = range.count,
            "each worker runs under a uid and gid of its own"
        );
        let free = (range.first..range.first + range.count).collect();
        Ok(Self {
            range,
            free: Arc::new(Mutex::new(free)),
        })
    }

    /// Take the least recently released uid.
    pub(super) fn lease(&self) -> io::Result<UidLease> {
        let uid = self
            .free
            .lock()
            .map_err(|_| io::Error::other("the uid pool is poisoned"))?
            .pop_front()
            .ok_or_else(|| {
                io::Error::other(format!(
                    "all {} uids of the worker range are in use",
                    self.range.count
                ))
            })?;
        Ok(UidLease {
            uid,
            free: self.free.clone(),
        })
    }
}

/// One worker's uid; returned to the pool on drop.
#[derive(Debug)]
pub(crate) struct UidLease {
    uid: u32,
    free: Arc<Mutex<VecDeque<u32>>>,
}

impl UidLease {
    /// The uid and the equal gid.
    pub(super) fn ids(&self) -> (Uid, Gid) {
        (Uid::from_raw(self.uid), Gid::from_raw(self.uid))
    }
}

impl Drop for UidLease {
    fn drop(&mut self) {
        if let Ok(mut free) = self.free.lock() {
            free.push_back(self.uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_excludes_root_and_the_reserved_uid() {
        assert!(UidRange::new(0, 10).is_err());
        assert!(UidRange::new(100, 0).is_err());
        assert!(UidRange::new(u32::MAX - 1, 1).is_err());
        assert!(UidRange::new(u32::MAX - 2, 1).is_ok());
        assert_eq!(UidRange::new(60000, 5).unwrap().count, 5);
    }

    #[test]
    fn uids_are_reused_least_recently_released_first() {
        let pool = UidPool {
            range: UidRange::new(500, 3).unwrap(),
            free: Arc::new(Mutex::new((500..503).collect())),
        };
        let a = pool.lease().unwrap();
        let b = pool.lease().unwrap();
        assert_eq!((a.uid, b.uid), (500, 501));
        drop(a);
        let c = pool.lease().unwrap();
        assert_eq!(c.uid, 502, "a fresh uid before the one just released");
        let d = pool.lease().unwrap();
        assert_eq!(d.uid, 500);
        let exhausted = pool.lease().unwrap_err().to_string();
        assert!(exhausted.contains("all 3 uids"), "{exhausted}");
    }
}
