//! Build cache under /var/cache/xenprov: one directory per (kind, key), where the key hashes every input.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Entries kept per kind besides the one just used, so switching branches does not rebuild everything.
const KEEP: usize = 2;

pub struct Cache {
    dir: PathBuf,
    _lock: Flock<File>,
}

/// The hex SHA-256 of the inputs' JSON form: any change in any input gives a new key.
pub fn key<T: Serialize>(inputs: &T) -> String {
    let json = serde_json::to_vec(inputs).expect("build inputs serialize to JSON");
    hex::encode(Sha256::digest(&json))
}

impl Cache {
    /// Opens the cache and holds its lock until dropped: two builds never share a half-built entry.
    pub fn open(dir: &Path) -> Result<Cache> {
        fs::create_dir_all(dir).with_context(|| format!("creating cache {}", dir.display()))?;
        let lock = File::create(dir.join(".lock")).context("creating the cache lock")?;
        let lock = match Flock::lock(lock, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((lock, _)) => {
                eprintln!(
                    "xenprov-image: waiting for another build to release {}",
                    dir.display()
                );
                Flock::lock(lock, FlockArg::LockExclusive)
                    .map_err(|(_, e)| e)
                    .context("locking the cache")?
            }
        };
        Ok(Cache {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// A path in the cache for data that is not keyed (e.g. downloaded packages).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The entry for `key`, built by `build` into a fresh directory unless it exists (or `refresh` is set).
    pub fn entry(
        &self,
        kind: &str,
        key: &str,
        refresh: bool,
        build: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<PathBuf> {
        let done = self.dir.join(kind).join(key);
        if done.is_dir() && !refresh {
            eprintln!("xenprov-image: {kind}: cached ({})", done.display());
            touch(&done);
            return Ok(done);
        }
        let partial = self.dir.join(kind).join(format!("{key}.partial"));
        remove(&partial)?;
        fs::create_dir_all(&partial).with_context(|| format!("creating {}", partial.display()))?;
        if let Err(e) = build(&partial) {
            remove(&partial)?;
            return Err(e);
        }
        remove(&done)?;
        fs::rename(&partial, &done)
            .with_context(|| format!("completing cache entry {}", done.display()))?;
        self.prune(kind, &done)?;
        Ok(done)
    }

    /// Drops all but the newest entries of a kind, never `current`.
    fn prune(&self, kind: &str, current: &Path) -> Result<()> {
        let mut entries: Vec<(SystemTime, PathBuf)> = fs::read_dir(self.dir.join(kind))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p != current && p.is_dir())
            .map(|p| {
                (
                    fs::metadata(&p)
                        .and_then(|m| m.modified())
                        .unwrap_or(SystemTime::UNIX_EPOCH),
                    p,
                )
            })
            .collect();
        entries.sort();
        let excess = entries.len().saturating_sub(KEEP);
        for (_, path) in entries.into_iter().take(excess) {
            remove(&path)?;
        }
        Ok(())
    }
}

/// Marks an entry as used, for pruning by age.
fn touch(path: &Path) {
    let _ = File::open(path).and_then(|f| f.set_modified(SystemTime::now()));
}

/// Removes a directory tree, first detaching anything a killed build left mounted inside it
/// (a bind-mounted /dev must never be deleted through).
pub fn remove(path: &Path) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    xenprov_sys::mount::unmount_under(path)?;
    fs::remove_dir_all(path).with_context(|| format!("removing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_changes_with_any_input() {
        #[derive(Serialize)]
        struct Inputs<'a> {
            suite: &'a str,
            packages: &'a [&'a str],
        }
        let a = key(&Inputs {
            suite: "bookworm",
            packages: &["lvm2"],
        });
        assert_eq!(a.len(), 64);
        assert_eq!(
            a,
            key(&Inputs {
                suite: "bookworm",
                packages: &["lvm2"]
            })
        );
        assert_ne!(
            a,
            key(&Inputs {
                suite: "bookworm",
                packages: &["lvm2", "xen-system-amd64"]
            })
        );
        assert_ne!(
            a,
            key(&Inputs {
                suite: "trixie",
                packages: &["lvm2"]
            })
        );
    }

    #[test]
    fn entries_are_built_once_and_pruned() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::open(tmp.path()).unwrap();
        let mut builds = 0;
        for key in ["k1", "k2", "k3", "k4", "k1"] {
            let dir = cache
                .entry("thing", key, false, |d| {
                    builds += 1;
                    fs::write(d.join("out"), key).map_err(Into::into)
                })
                .unwrap();
            assert_eq!(fs::read_to_string(dir.join("out")).unwrap(), key);
        }
        // k1 was pruned when k4 arrived (KEEP = 2 older entries), so it is built again.
        assert_eq!(builds, 5);
        let left = fs::read_dir(tmp.path().join("thing")).unwrap().count();
        assert_eq!(left, KEEP + 1);
        // A failed build leaves no entry behind.
        let err = cache.entry("thing", "bad", false, |_| anyhow::bail!("boom"));
        assert!(err.is_err());
        assert!(!tmp.path().join("thing/bad").exists());
    }
}
