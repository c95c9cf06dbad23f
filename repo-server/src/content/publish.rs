//! Snapshots of a mirror and the pointer clients follow: each sync builds a complete tree in
//! `snapshots/ID.partial/`, which becomes `snapshots/ID/` and then `current` (a symlink) is switched to it
//! with one `rename`, so a client moves from one complete snapshot to the next and never sees a mix. The
//! server notices the switch within a second (`fs_tree`). Old snapshots are kept for clients in the middle
//! of an update, up to a configured number.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

const SNAPSHOTS: &str = "snapshots";
const CURRENT: &str = "current";
const PARTIAL: &str = ".partial";
/// The snapshot served before the first sync.
const EMPTY: &str = "empty";

pub struct Snapshots {
    dir: PathBuf,
}

impl Snapshots {
    /// The snapshots of the mirror in `dir`, created if needed.
    pub fn open(dir: &Path) -> io::Result<Snapshots> {
        fs::create_dir_all(dir.join(SNAPSHOTS))?;
        Ok(Snapshots {
            dir: dir.to_owned(),
        })
    }

    /// The path clients are served from; an empty snapshot until the first sync.
    pub fn ensure_current(&self) -> io::Result<PathBuf> {
        let link = self.dir.join(CURRENT);
        if fs::symlink_metadata(&link).is_err() {
            fs::create_dir_all(self.dir.join(SNAPSHOTS).join(EMPTY))?;
            self.point_at(EMPTY)?;
        }
        Ok(link)
    }

    /// The snapshot `current` points at.
    pub fn current(&self) -> Option<String> {
        let target = fs::read_link(self.dir.join(CURRENT)).ok()?;
        Some(target.file_name()?.to_string_lossy().into_owned())
    }

    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(SNAPSHOTS).join(id)
    }

    /// A fresh directory for the next snapshot; what an interrupted sync left there is removed.
    pub fn start(&self) -> io::Result<(String, PathBuf)> {
        let id = snapshot_id(SystemTime::now());
        let id = (0..)
            .map(|n| {
                if n == 0 {
                    id.clone()
                } else {
                    format!("{id}.{n}")
                }
            })
            .find(|id| !self.path(id).exists())
            .expect("a free name");
        for stale in self.list_with(|name| name.ends_with(PARTIAL)) {
            fs::remove_dir_all(self.path(&stale))?;
        }
        let partial = self.path(&format!("{id}{PARTIAL}"));
        fs::create_dir_all(&partial)?;
        Ok((id, partial))
    }

    /// Makes the complete tree in `partial` the snapshot `id` and points `current` at it.
    pub fn publish(&self, id: &str, partial: &Path) -> io::Result<()> {
        fs::rename(partial, self.path(id))?;
        self.point_at(id)
    }

    fn point_at(&self, id: &str) -> io::Result<()> {
        let tmp = self.dir.join(format!(".{CURRENT}.{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(Path::new(SNAPSHOTS).join(id), &tmp)?;
        fs::rename(&tmp, self.dir.join(CURRENT))?;
        fs::File::open(&self.dir)?.sync_all()
    }

    /// Published snapshots, oldest first.
    pub fn list(&self) -> Vec<String> {
        self.list_with(|name| !name.ends_with(PARTIAL) && name != EMPTY)
    }

    fn list_with(&self, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let mut ids: Vec<String> = fs::read_dir(self.dir.join(SNAPSHOTS))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| keep(n))
            .collect();
        ids.sort();
        ids
    }

    /// Removes the oldest snapshots so that `keep` remain besides the current one; returns their ids.
    pub fn prune(&self, keep: usize) -> io::Result<Vec<String>> {
        let current = self.current();
        let old: Vec<String> = self
            .list()
            .into_iter()
            .filter(|id| Some(id) != current.as_ref())
            .collect();
        let excess = old.len().saturating_sub(keep);
        let mut removed = Vec::new();
        for id in old.into_iter().take(excess) {
            fs::remove_dir_all(self.path(&id))?;
            removed.push(id);
        }
        if current.as_deref() != Some(EMPTY) {
            let _ = fs::remove_dir(self.path(EMPTY));
        }
        Ok(removed)
    }
}

/// `20261126T153012Z`: sorts in time order.
fn snapshot_id(t: SystemTime) -> String {
    let rfc = humantime::format_rfc3339_seconds(t).to_string();
    rfc.replace(['-', ':'], "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_switches_and_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let snaps = Snapshots::open(dir.path()).unwrap();
        let current = snaps.ensure_current().unwrap();
        assert_eq!(snaps.current().as_deref(), Some(EMPTY));
        let mut ids = Vec::new();
        for n in 0..4 {
            let (id, partial) = snaps.start().unwrap();
            fs::write(partial.join("f"), format!("{n}")).unwrap();
            snaps.publish(&id, &partial).unwrap();
            assert_eq!(
                fs::read_to_string(current.join("f")).unwrap(),
                format!("{n}")
            );
            ids.push(id);
        }
        assert_eq!(snaps.list(), ids);
        let removed = snaps.prune(1).unwrap();
        assert_eq!(removed, ids[..2]);
        assert_eq!(snaps.list(), ids[2..]);
        assert_eq!(snaps.current().as_ref(), ids.last());
        // an interrupted sync's directory is cleared by the next one and never published
        let (_, partial) = snaps.start().unwrap();
        fs::write(partial.join("half"), "x").unwrap();
        let (_, again) = snaps.start().unwrap();
        assert!(!partial.exists() || partial == again);
        assert_eq!(snaps.current().as_ref(), ids.last());
    }
}
