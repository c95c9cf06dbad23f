//! An ISO image as a `Tree`: its files are served straight from the image (positional reads at their
//! extents), so an install DVD is served without a loop mount, a copy or root.
//!
//! The tree is indexed once when the image is opened. Symlinks (Rock Ridge) are followed inside the image
//! only: an absolute target starts at the image's root, and `..` above the root is not found, as in
//! `fs_tree`.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use crate::static_files::iso9660::{self, Entry, Extent, Index, Kind};
use crate::static_files::path::SafePath;
use crate::static_files::tree::{DirEntry, Meta, Node, Source, Tree};

/// Symlinks followed in one lookup at most, as Linux's MAXSYMLINKS.
const MAX_SYMLINKS: usize = 40;

pub struct IsoTree {
    path: PathBuf,
    file: Arc<File>,
    index: Index,
    /// Mixed into entry ids so that they differ from other images' and from inode numbers.
    id_base: u64,
}

impl IsoTree {
    pub fn open(path: &Path) -> anyhow::Result<IsoTree> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let stat = file
            .metadata()
            .with_context(|| format!("reading {}", path.display()))?;
        let index = iso9660::read_index(&file)
            .with_context(|| format!("reading the ISO 9660 image {}", path.display()))?;
        Ok(IsoTree {
            path: path.to_owned(),
            file: Arc::new(file),
            index,
            id_base: (1 << 63) | stat.ino().rotate_left(24) ^ stat.dev(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The entry at `path`, with symlinks followed.
    fn resolve(&self, path: &Path) -> io::Result<usize> {
        let mut pending: VecDeque<Vec<u8>> = components(path.as_os_str().as_encoded_bytes());
        let mut current = 0;
        let mut hops = 0;
        while let Some(name) = pending.pop_front() {
            match name.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    if current == 0 {
                        return Err(io::ErrorKind::NotFound.into());
                    }
                    current = self.index.entries[current].parent;
                    continue;
                }
                _ => {}
            }
            let child = self
                .index
                .child(current, &name)
                .ok_or(io::ErrorKind::NotFound)?;
            match &self.index.entries[child].kind {
                Kind::Symlink(target) => {
                    hops += 1;
                    if hops > MAX_SYMLINKS {
                        return Err(io::ErrorKind::NotFound.into());
                    }
                    if target.starts_with(b"/") {
                        current = 0;
                    }
                    for c in components(target).into_iter().rev() {
                        pending.push_front(c);
                    }
                }
                _ => current = child,
            }
        }
        Ok(current)
    }

    fn meta(&self, i: usize) -> Meta {
        let entry = &self.index.entries[i];
        Meta {
            len: entry.data_len(),
            modified: entry.modified,
            id: self.id_base ^ i as u64,
        }
    }

    fn node(&self, i: usize) -> Node {
        match &self.index.entries[i].kind {
            Kind::File(extents) => Node::File(Arc::new(IsoFile {
                file: self.file.clone(),
                extents: extents.clone(),
                meta: self.meta(i),
            })),
            _ => Node::Dir(self.meta(i)),
        }
    }
}

fn components(path: &[u8]) -> VecDeque<Vec<u8>> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

impl Tree for IsoTree {
    fn open(&self, path: &SafePath) -> io::Result<Node> {
        Ok(self.node(self.resolve(path.as_path())?))
    }

    fn list(&self, path: &SafePath) -> io::Result<Vec<DirEntry>> {
        let dir = self.resolve(path.as_path())?;
        let Kind::Dir(children) = &self.index.entries[dir].kind else {
            return Err(io::Error::from(io::ErrorKind::NotADirectory));
        };
        let mut entries = Vec::with_capacity(children.len());
        for &c in children {
            let Entry { name, .. } = &self.index.entries[c];
            let Some(child) = path.child(name) else {
                continue;
            };
            // symlinks are described by their target, and left out when it is missing
            let Ok(target) = self.resolve(child.as_path()) else {
                continue;
            };
            entries.push(DirEntry {
                name: name.clone(),
                is_dir: matches!(self.index.entries[target].kind, Kind::Dir(_)),
                meta: self.meta(target),
            });
        }
        Ok(entries)
    }
}

/// A file inside the image: one extent, or several for files of 4 GiB and more. A file in one extent is
/// sent with sendfile straight from the image.
struct IsoFile {
    file: Arc<File>,
    extents: Vec<Extent>,
    meta: Meta,
}

impl Source for IsoFile {
    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn as_fd(&self) -> Option<BorrowedFd<'_>> {
        (self.extents.len() == 1).then(|| self.file.as_fd())
    }

    fn fd_offset(&self) -> u64 {
        self.extents.first().map_or(0, |e| e.offset)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut start = 0;
        for extent in &self.extents {
            if offset < start + extent.len {
                let within = offset - start;
                let n = buf.len().min((extent.len - within) as usize);
                return self.file.read_at(&mut buf[..n], extent.offset + within);
            }
            start += extent.len;
        }
        Ok(0)
    }
}
