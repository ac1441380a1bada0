//! What a ledger directory holds besides RocksDB's own files: the owner's lock and the anchor.
//!
//! - `FEDCHAIN-LOCK`: an exclusive `flock` held by the one process that writes the directory
//!   (a ledger, or `simulate --out`). It is released when the process ends, however it ends,
//!   so a killed writer never leaves a stale lock.
//! - `FEDCHAIN-ANCHOR`: the latest final block, `fedchain-anchor/v1 <height> <hash> <sha256>`,
//!   written after every synced commit (temporary file, fsync, rename, fsync of the directory),
//!   so it is never ahead of what the store durably holds. A store found behind its anchor has
//!   lost blocks (a dropped log tail, a rolled-back copy) and is refused (`StoreError`).
//!
//! RocksDB ignores files whose names it does not know, so both live inside the store's
//! directory and travel with a copy of it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use crate::types::Hash;

/// Name of the lock file in a directory a process owns.
pub const LOCK_FILE: &str = "FEDCHAIN-LOCK";
/// Name of the anchor file in a ledger directory.
pub const ANCHOR_FILE: &str = "FEDCHAIN-ANCHOR";
const ANCHOR_TMP: &str = "FEDCHAIN-ANCHOR.tmp";
const ANCHOR_TAG: &str = "fedchain-anchor/v1";

/// Why a ledger directory could not be opened or owned. A failed open changes nothing in the
/// directory.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path} does not exist")]
    Missing { path: PathBuf },
    #[error("{path} is not a fedchain ledger ({reason}); nothing was changed in it (a new ledger is created only in an empty or absent directory)")]
    NotALedger { path: PathBuf, reason: String },
    #[error("{path} is not empty: a new ledger is created only in an empty or absent directory")]
    NotEmpty { path: PathBuf },
    #[error("{path} is in use by another process (it holds {LOCK_FILE})")]
    Locked { path: PathBuf },
    #[error("{path}: the store's head is height {head} but its anchor says {anchor} was final: blocks were lost (a dropped log tail or an older copy); refusing it")]
    BehindAnchor {
        path: PathBuf,
        head: u64,
        anchor: u64,
    },
    #[error("{path}: block {height} hashes to {found}, the anchor says {expected}: the store holds another history; refusing it")]
    AnchorMismatch {
        path: PathBuf,
        height: u64,
        expected: Hash,
        found: Hash,
    },
    #[error("{path}: damaged anchor file: {reason}")]
    BadAnchor { path: PathBuf, reason: String },
    #[error("{path}: RocksDB refused to open it: {reason}")]
    Rocks { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
}

fn io_err(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// An exclusive lock on a directory (`FEDCHAIN-LOCK` in it), held until dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    dir: PathBuf,
}

impl DirLock {
    /// Take the lock of `dir` (which must exist) without waiting: `StoreError::Locked` if
    /// another process (or another handle in this one) holds it.
    pub fn acquire(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Self {
                _file: file,
                dir: dir.to_path_buf(),
            }),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(StoreError::Locked {
                path: dir.to_path_buf(),
            }),
            Err(e) => Err(io_err(&path, e.into())),
        }
    }

    /// The directory this lock owns.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The latest final block of a ledger, as its anchor file records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anchor {
    pub height: u64,
    pub hash: Hash,
}

impl Anchor {
    fn body(&self) -> String {
        format!("{ANCHOR_TAG} {} {}", self.height, hex::encode(self.hash.0))
    }

    fn checksum(body: &str) -> String {
        hex::encode(Hash::sha256(body.as_bytes()).0)
    }

    /// The file's text.
    pub fn encode(&self) -> String {
        let body = self.body();
        format!("{body} {}\n", Self::checksum(&body))
    }

    /// Parse the file's text; anything but exactly what [`Anchor::encode`] writes is refused.
    pub fn decode(text: &str) -> Result<Self, String> {
        let line = text
            .strip_suffix('\n')
            .ok_or("no final newline (truncated)")?;
        let (body, sum) = line.rsplit_once(' ').ok_or("no checksum")?;
        if Self::checksum(body) != sum {
            return Err("checksum mismatch".into());
        }
        let mut parts = body.split(' ');
        if parts.next() != Some(ANCHOR_TAG) {
            return Err(format!("not a {ANCHOR_TAG} file"));
        }
        let height = parts
            .next()
            .and_then(|h| h.parse::<u64>().ok())
            .ok_or("bad height")?;
        let hash = parts
            .next()
            .and_then(|h| hex::decode(h).ok())
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or("bad hash")?;
        if parts.next().is_some() {
            return Err("trailing fields".into());
        }
        Ok(Self {
            height,
            hash: Hash(hash),
        })
    }

    /// The anchor of the ledger in `dir`, if it has one.
    pub fn read(dir: &Path) -> Result<Option<Self>, StoreError> {
        let path = dir.join(ANCHOR_FILE);
        match std::fs::read_to_string(&path) {
            Ok(t) => Self::decode(&t)
                .map(Some)
                .map_err(|reason| StoreError::BadAnchor { path, reason }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    /// Replace the anchor of `dir` atomically: write a temporary file, fsync it, rename it over
    /// the anchor, fsync the directory.
    pub fn write(&self, dir: &Path) -> Result<(), StoreError> {
        let tmp = dir.join(ANCHOR_TMP);
        let path = dir.join(ANCHOR_FILE);
        let mut f = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
        f.write_all(self.encode().as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| io_err(&tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(dir, e))
    }
}

/// Whether `dir` is absent or holds nothing but a lock file (a ledger may be created there).
pub fn is_vacant(dir: &Path) -> Result<bool, StoreError> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for e in entries {
                let e = e.map_err(|e| io_err(dir, e))?;
                if e.file_name() != LOCK_FILE {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(io_err(dir, e)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn anchor_round_trips_and_refuses_any_change() {
        let a = Anchor {
            height: 37,
            hash: Hash::sha256(b"x"),
        };
        let text = a.encode();
        assert_eq!(Anchor::decode(&text), Ok(a));
        for i in 0..text.len() - 1 {
            let mut b = text.clone().into_bytes();
            b[i] ^= 0x01;
            let t = String::from_utf8_lossy(&b).to_string();
            assert!(Anchor::decode(&t).is_err(), "flip at {i} accepted");
        }
        assert!(Anchor::decode(&text[..text.len() - 1]).is_err());
    }

    #[test]
    fn a_lock_is_exclusive_until_dropped() {
        let d = tempfile::tempdir().unwrap();
        let l = DirLock::acquire(d.path()).unwrap();
        assert!(matches!(
            DirLock::acquire(d.path()),
            Err(StoreError::Locked { .. })
        ));
        drop(l);
        DirLock::acquire(d.path()).unwrap();
    }

    #[test]
    fn anchor_write_replaces_atomically() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(Anchor::read(d.path()).unwrap(), None);
        for h in 0..3 {
            let a = Anchor {
                height: h,
                hash: Hash::sha256(&h.to_be_bytes()),
            };
            a.write(d.path()).unwrap();
            assert_eq!(Anchor::read(d.path()).unwrap(), Some(a));
        }
        assert!(!d.path().join(ANCHOR_TMP).exists());
    }
}
