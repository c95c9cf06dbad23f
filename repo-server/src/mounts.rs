//! The served namespace: the repo root directory at `/`, and beside it ISO images, upstream caches and
//! mirrors, each mounted at `/NAME/`. A mount shadows a directory of the same name in the root.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::sync::Arc;

use anyhow::Context;

use crate::content::publish::Snapshots;
use crate::content::pull_through::PullThrough;
use crate::settings::config::Config;
use crate::static_files::fs_tree::FsTree;
use crate::static_files::iso_tree::IsoTree;
use crate::static_files::path::SafePath;
use crate::static_files::tree::{DirEntry, Node, Tree};

/// What `config` serves: one tree, and the upstream caches the router consults on a miss.
pub struct Served {
    pub tree: Arc<dyn Tree>,
    pub upstreams: Vec<Arc<PullThrough>>,
}

pub fn build(config: &Config) -> anyhow::Result<Served> {
    let mut mounts = Mounts::new(Arc::new(FsTree::open_root(&config.root)?));
    for iso in &config.iso {
        let tree = IsoTree::open(&iso.path)?;
        tracing::info!(
            "serving {} at /{}/: {}",
            iso.path.display(),
            iso.name,
            crate::content::detect::summary(&crate::content::detect::detect(&tree))
        );
        mounts.mount(&iso.name, Arc::new(tree));
    }
    let mut upstreams = Vec::new();
    for spec in &config.upstream {
        let cache = PullThrough::open(spec, &config.cache, &config.keyring)?;
        tracing::info!(
            "serving {} at /{}/ through the verifying cache {}",
            cache.url(),
            spec.name,
            cache.dir().display()
        );
        let tree = FsTree::open_root(cache.dir())?.with_object_store();
        mounts.mount(&spec.name, Arc::new(tree));
        upstreams.push(cache);
    }
    for mirror in &config.mirror {
        let dir = config.mirrors.join(&mirror.name);
        let current = Snapshots::open(&dir)
            .and_then(|s| s.ensure_current())
            .with_context(|| format!("opening mirror {}", dir.display()))?;
        mounts.mount(&mirror.name, Arc::new(FsTree::open_root(&current)?));
    }
    Ok(Served {
        tree: Arc::new(mounts),
        upstreams,
    })
}

pub struct Mounts {
    root: Arc<dyn Tree>,
    mounts: BTreeMap<OsString, Arc<dyn Tree>>,
}

impl Mounts {
    pub fn new(root: Arc<dyn Tree>) -> Mounts {
        Mounts {
            root,
            mounts: BTreeMap::new(),
        }
    }

    pub fn mount(&mut self, name: &str, tree: Arc<dyn Tree>) {
        self.mounts.insert(OsString::from(name), tree);
    }

    /// The mounted tree `path` is in, and the path inside it; `None` for the root tree. Allocates
    /// nothing for paths outside the mounts, which are most requests.
    fn mounted(&self, path: &SafePath) -> Option<(&dyn Tree, SafePath)> {
        let tree = self.mounts.get(path.as_path().iter().next()?)?;
        let (_, rest) = path.split_first()?;
        Some((&**tree, rest))
    }
}

impl Tree for Mounts {
    fn open(&self, path: &SafePath) -> io::Result<Node> {
        match self.mounted(path) {
            Some((tree, rest)) => tree.open(&rest),
            None => self.root.open(path),
        }
    }

    fn list(&self, path: &SafePath) -> io::Result<Vec<DirEntry>> {
        if let Some((tree, rest)) = self.mounted(path) {
            return tree.list(&rest);
        }
        if !path.is_root() {
            return self.root.list(path);
        }
        let mut entries = match self.root.list(path) {
            Ok(entries) => entries,
            Err(e) if self.mounts.is_empty() => return Err(e),
            Err(_) => Vec::new(),
        };
        entries.retain(|e| !self.mounts.contains_key(&e.name));
        let top = SafePath::from_uri_path("/").expect("/ is valid");
        for (name, tree) in &self.mounts {
            if let Ok(Node::Dir(meta)) = tree.open(&top) {
                entries.push(DirEntry {
                    name: name.clone(),
                    is_dir: true,
                    meta,
                });
            }
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::static_files::fs_tree::FsTree;

    fn sp(p: &str) -> SafePath {
        SafePath::from_uri_path(p).unwrap()
    }

    #[test]
    fn mounts_shadow_the_root() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("iso")).unwrap();
        std::fs::write(root.path().join("iso/shadowed"), b"root").unwrap();
        std::fs::write(root.path().join("top.txt"), b"top").unwrap();
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("inside"), b"mounted").unwrap();
        let mut mounts = Mounts::new(Arc::new(FsTree::open_root(root.path()).unwrap()));
        mounts.mount("iso", Arc::new(FsTree::open_root(other.path()).unwrap()));
        assert!(matches!(mounts.open(&sp("/top.txt")), Ok(Node::File(_))));
        assert!(matches!(mounts.open(&sp("/iso/inside")), Ok(Node::File(_))));
        assert!(matches!(mounts.open(&sp("/iso/")), Ok(Node::Dir(_))));
        assert_eq!(
            mounts.open(&sp("/iso/shadowed")).err().map(|e| e.kind()),
            Some(io::ErrorKind::NotFound)
        );
        let mut names: Vec<_> = mounts
            .list(&sp("/"))
            .unwrap()
            .into_iter()
            .map(|e| (e.name.into_string().unwrap(), e.is_dir))
            .collect();
        names.sort();
        assert_eq!(names, [("iso".into(), true), ("top.txt".into(), false)]);
        let listed = mounts.list(&sp("/iso/")).unwrap();
        assert_eq!(listed.len(), 1);
    }
}
