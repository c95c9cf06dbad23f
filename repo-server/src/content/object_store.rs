//! Verified files named by their SHA-256 (`.objects/ab/abcd…`), with downloads in progress beside them
//! (`.partial/`). Request paths are symlinks into the store (the pull-through cache) or hard links to it
//! (mirror snapshots), so a file shared by many paths or snapshots is stored once, and a path is switched
//! to new content by one `rename`.
//!
//! Objects are written only after verification and are read-only afterwards; the leading dot keeps both
//! directories out of reach of clients (`path` hides dot-names).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::content::verify::Sha256;
use crate::static_files::fs_tree::OBJECTS;

pub const PARTIAL: &str = ".partial";

#[derive(Debug, Clone)]
pub struct ObjectStore {
    dir: PathBuf,
}

impl ObjectStore {
    /// The store in `dir`, created if needed.
    pub fn open(dir: &Path) -> io::Result<ObjectStore> {
        fs::create_dir_all(dir.join(OBJECTS))?;
        fs::create_dir_all(dir.join(PARTIAL))?;
        Ok(ObjectStore {
            dir: dir.to_owned(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn object_path(&self, sha: &Sha256) -> PathBuf {
        let hex = sha.to_hex();
        self.dir.join(OBJECTS).join(&hex[..2]).join(hex)
    }

    pub fn contains(&self, sha: &Sha256) -> bool {
        self.object_path(sha).is_file()
    }

    /// Where a download of `sha` in progress is kept, so that an interrupted one resumes.
    pub fn partial_path(&self, sha: &Sha256) -> PathBuf {
        self.dir.join(PARTIAL).join(sha.to_hex())
    }

    /// Moves a verified file into the store, read-only.
    pub fn commit(&self, file: &Path, sha: &Sha256) -> io::Result<PathBuf> {
        let target = self.object_path(sha);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::set_permissions(file, std::os::unix::fs::PermissionsExt::from_mode(0o444))?;
        fs::rename(file, &target)?;
        Ok(target)
    }

    /// Stores verified bytes held in memory.
    pub fn put(&self, data: &[u8], sha: &Sha256) -> io::Result<PathBuf> {
        if self.contains(sha) {
            return Ok(self.object_path(sha));
        }
        let tmp = tempfile::NamedTempFile::new_in(self.dir.join(PARTIAL))?;
        fs::write(tmp.path(), data)?;
        let (_, path) = tmp.keep().map_err(|e| e.error)?;
        self.commit(&path, sha)
    }

    pub fn read(&self, sha: &Sha256) -> io::Result<Vec<u8>> {
        fs::read(self.object_path(sha))
    }

    /// Points the request path `rel` at the object `sha` (a relative symlink, replaced atomically; safe
    /// when several requests link the same path at once).
    pub fn link(&self, rel: &str, sha: &Sha256) -> io::Result<()> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = self.dir.join(rel);
        let parent = path
            .parent()
            .ok_or_else(|| io::Error::other(format!("{rel} has no parent")))?;
        fs::create_dir_all(parent)?;
        let depth = rel.split('/').filter(|c| !c.is_empty()).count() - 1;
        let hex = sha.to_hex();
        let target = format!("{}{OBJECTS}/{}/{hex}", "../".repeat(depth), &hex[..2]);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tmp = parent.join(format!(".{}.{n}.link", std::process::id()));
        std::os::unix::fs::symlink(&target, &tmp)?;
        fs::rename(&tmp, &path)
    }

    /// The object a request path points at, if it is linked.
    pub fn linked(&self, rel: &str) -> Option<Sha256> {
        let target = fs::read_link(self.dir.join(rel)).ok()?;
        Sha256::from_hex(target.file_name()?.to_str()?)
    }

    pub fn unlink(&self, rel: &str) -> io::Result<()> {
        match fs::remove_file(self.dir.join(rel)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::verify::digest::hash_bytes;

    #[test]
    fn put_link_relink() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::open(dir.path()).unwrap();
        let (a, b) = (hash_bytes(b"a"), hash_bytes(b"b"));
        store.put(b"a", &a).unwrap();
        store.put(b"b", &b).unwrap();
        assert!(store.contains(&a));
        store.link("dists/s/InRelease", &a).unwrap();
        assert_eq!(
            fs::read(dir.path().join("dists/s/InRelease")).unwrap(),
            b"a"
        );
        assert_eq!(store.linked("dists/s/InRelease"), Some(a));
        store.link("dists/s/InRelease", &b).unwrap();
        assert_eq!(
            fs::read(dir.path().join("dists/s/InRelease")).unwrap(),
            b"b"
        );
        store.link("top", &a).unwrap();
        assert_eq!(fs::read(dir.path().join("top")).unwrap(), b"a");
        store.unlink("top").unwrap();
        store.unlink("top").unwrap();
        assert_eq!(store.linked("top"), None);
        // many at once
        std::thread::scope(|scope| {
            for _ in 0..16 {
                scope.spawn(|| store.link("pool/x", &a).unwrap());
            }
        });
        assert_eq!(fs::read(dir.path().join("pool/x")).unwrap(), b"a");
        let mode = fs::metadata(store.object_path(&a)).unwrap().permissions();
        assert!(mode.readonly());
    }
}
