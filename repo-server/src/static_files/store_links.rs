//! The object a pull-through cache's request path links to, remembered by the link's identity, so
//! that a cache hit costs one `statat` of the link instead of resolving it and opening the object.
//!
//! Why this is exact, and never serves what the path does not hold now:
//! - a symlink's target cannot change: a link is replaced only by another inode (the cache renames
//!   a new link into place), so a link of the same device, inode and change time (to the
//!   nanosecond) is the same link with the same target;
//! - the target is remembered only when it is an object, `.objects/XX/SHA256`: the file named by
//!   the digest of its content, written once after verification and read-only after, so the name
//!   alone says what the bytes are, wherever the link sits;
//! - it is remembered only after the link was resolved and the object opened by the rules of
//!   `fs_tree` (inside the root, servable), which the remembered answer is therefore held to.
//!
//! A link replaced since is a different inode: its first request resolves it again. The number of
//! paths remembered is capped; past the cap the memo starts over.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::RwLock;

use rustix::fs::Stat;

use crate::http::source::Meta;
use crate::static_files::fs_tree::OBJECTS;

/// Paths remembered at most (a whole Debian mirror's index is about 70,000 paths).
const CAPACITY: usize = 1 << 17;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LinkId {
    dev: u64,
    ino: u64,
    ctime: (i64, i64),
}

impl LinkId {
    fn of(stat: &Stat) -> LinkId {
        LinkId {
            dev: stat.st_dev,
            ino: stat.st_ino,
            ctime: (stat.st_ctime, stat.st_ctime_nsec as i64),
        }
    }
}

/// An object of the store, as a link led to it: its path below the root and its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub path: PathBuf,
    pub meta: Meta,
}

#[derive(Default)]
pub struct StoreLinks {
    map: RwLock<HashMap<PathBuf, (LinkId, Object)>>,
}

impl StoreLinks {
    /// The object `rel` leads to, if `link` (the `lstat` of `rel`) is the link it was learnt from.
    pub fn get(&self, rel: &Path, link: &Stat) -> Option<Object> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        let (id, object) = map.get(rel)?;
        (*id == LinkId::of(link)).then(|| object.clone())
    }

    /// Remembers that the link `rel` (whose `lstat` is `link`) leads to `object`, when that is an
    /// object of the store.
    pub fn remember(&self, rel: &Path, link: &Stat, object: Object) {
        if !is_object_path(&object.path) {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CAPACITY && !map.contains_key(rel) {
            map.clear();
        }
        map.insert(rel.to_owned(), (LinkId::of(link), object));
    }
}

/// `.objects/XX/HEX`: 64 lower-case hex digits, filed under their first two.
fn is_object_path(p: &Path) -> bool {
    let parts: Vec<Component<'_>> = p.components().collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    match parts.as_slice() {
        [
            Component::Normal(top),
            Component::Normal(fan),
            Component::Normal(name),
        ] => {
            let (Some(fan), Some(name)) = (fan.to_str(), name.to_str()) else {
                return false;
            };
            *top == OBJECTS && hex(fan, 2) && hex(name, 64) && name.starts_with(fan)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_objects_are_remembered_and_only_for_the_same_link() {
        let dir = tempfile::tempdir().unwrap();
        let hex = "ab".repeat(32);
        let object = PathBuf::from(format!(".objects/ab/{hex}"));
        assert!(is_object_path(&object));
        for bad in [
            format!(".objects/cd/{hex}"),
            format!(".objects/ab/{}", &hex[1..]),
            format!("pool/ab/{hex}"),
            format!(".objects/ab/{}", hex.to_uppercase()),
            format!(".objects/ab/{hex}/x"),
        ] {
            assert!(!is_object_path(Path::new(&bad)), "{bad}");
        }
        std::os::unix::fs::symlink("a", dir.path().join("l1")).unwrap();
        std::os::unix::fs::symlink("a", dir.path().join("l2")).unwrap();
        let lstat = |n: &str| rustix::fs::lstat(dir.path().join(n)).unwrap();
        let links = StoreLinks::default();
        let meta = Meta {
            len: 1,
            modified: std::time::UNIX_EPOCH,
            id: 7,
        };
        let obj = Object {
            path: object.clone(),
            meta,
        };
        links.remember(Path::new("pool/x"), &lstat("l1"), obj.clone());
        links.remember(
            Path::new("pool/y"),
            &lstat("l1"),
            Object {
                path: "pool/z".into(),
                meta,
            },
        );
        assert_eq!(links.get(Path::new("pool/x"), &lstat("l1")), Some(obj));
        assert_eq!(
            links.get(Path::new("pool/x"), &lstat("l2")),
            None,
            "another link"
        );
        assert_eq!(
            links.get(Path::new("pool/y"), &lstat("l1")),
            None,
            "not an object"
        );
        // a link renamed over the path is another inode
        std::fs::rename(dir.path().join("l2"), dir.path().join("l1")).unwrap();
        assert_eq!(links.get(Path::new("pool/x"), &lstat("l1")), None);
    }
}
