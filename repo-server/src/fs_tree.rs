//! A directory on disk as a `Tree`, with symlinks followed only while they stay inside it.
//!
//! Every lookup is one `openat2(root, path, RESOLVE_BENEATH)`: the kernel resolves the path, follows
//! relative symlinks and fails with `EXDEV` as soon as resolution would leave the root, so there is no
//! window between a check and the open. Absolute symlinks also fail with `EXDEV` even when they point back
//! inside the root (mirror tools make them); those take the slow path: canonicalize, check that the result is
//! under the canonical root, then open that symlink-free path with `RESOLVE_NO_SYMLINKS`, so a link swapped
//! in meanwhile fails instead of escaping. Special files (FIFOs, devices, sockets) are treated as missing.
//!
//! The root is held open (lookups are relative to it) and looked up again by path every second.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::Context;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

use crate::path::SafePath;
use crate::tree::{DirEntry, Meta, Node, Source, Tree};

/// How often the configured root path is looked up again, so that a root directory replaced by a
/// rename or a symlink flip is picked up (and a removed one stops being served).
const ROOT_RECHECK: Duration = Duration::from_secs(1);

pub struct FsTree {
    path: PathBuf,
    epoch: Instant,
    checked_ms: AtomicU64,
    root: RwLock<Option<Arc<Root>>>,
}

impl FsTree {
    /// Opens `path` (which must be a directory) for serving.
    pub fn open_root(path: &Path) -> anyhow::Result<FsTree> {
        let root =
            Root::open(path).with_context(|| format!("opening repo root {}", path.display()))?;
        root.open_beneath(Path::new("."), ResolveFlags::BENEATH)
            .map_err(|e| match e {
                Errno::NOSYS => {
                    anyhow::anyhow!("openat2 is not available (Linux 5.6 or later is required)")
                }
                e => anyhow::Error::from(e),
            })
            .with_context(|| format!("opening repo root {}", path.display()))?;
        Ok(FsTree {
            path: path.to_owned(),
            epoch: Instant::now(),
            checked_ms: AtomicU64::new(0),
            root: RwLock::new(Some(Arc::new(root))),
        })
    }

    /// The root directory currently at the configured path; `NotFound` while there is none.
    fn root(&self) -> io::Result<Arc<Root>> {
        let now = self.epoch.elapsed().as_millis() as u64;
        let checked = self.checked_ms.load(Ordering::Relaxed);
        if now.saturating_sub(checked) >= ROOT_RECHECK.as_millis() as u64
            && self
                .checked_ms
                .compare_exchange(checked, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.recheck_root();
        }
        let root = self.root.read().unwrap_or_else(|e| e.into_inner());
        root.clone().ok_or_else(|| io::ErrorKind::NotFound.into())
    }

    fn recheck_root(&self) {
        let current = self.root.read().unwrap_or_else(|e| e.into_inner()).clone();
        let found = rustix::fs::stat(&self.path);
        if let (Ok(stat), Some(current)) = (&found, &current)
            && current.identity == identity(stat)
        {
            return;
        }
        let fresh = match found {
            Ok(_) => Root::open(&self.path).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match &fresh {
            Ok(_) => tracing::info!(
                "repo root {} is a new directory; serving it",
                self.path.display()
            ),
            Err(e) => tracing::warn!(
                "repo root {}: {e}; answering 404 until it is back",
                self.path.display()
            ),
        }
        *self.root.write().unwrap_or_else(|e| e.into_inner()) = fresh.ok().map(Arc::new);
    }
}

/// The directory found at the root path, held open.
struct Root {
    canonical: PathBuf,
    fd: OwnedFd,
    identity: (u64, u64),
}

impl Root {
    fn open(path: &Path) -> io::Result<Root> {
        let canonical = path.canonicalize()?;
        let fd = rustix::fs::open(
            &canonical,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let identity = identity(&rustix::fs::fstat(&fd)?);
        Ok(Root {
            canonical,
            fd,
            identity,
        })
    }

    fn open_beneath(&self, rel: &Path, resolve: ResolveFlags) -> Result<OwnedFd, Errno> {
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        // EAGAIN: a rename anywhere on the system raced the kernel's check of a `..` (symlinks into
        // the cache's object store have them); the lookup is safe to repeat. Bounded, so a flood of
        // renames gives an error rather than a spinning worker.
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(
                &self.fd,
                rel,
                // NONBLOCK: opening a FIFO must not hang; it is refused after fstat anyway.
                OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
                Mode::empty(),
                resolve | ResolveFlags::NO_MAGICLINKS,
            ) {
                Err(Errno::AGAIN) if tries < OPENAT2_RETRIES => tries += 1,
                r => return r,
            }
        }
    }

    /// Opens `rel` and returns it with its metadata, following symlinks only inside the root.
    fn resolve(&self, rel: &Path) -> io::Result<(OwnedFd, Stat)> {
        let fd = match self.open_beneath(rel, ResolveFlags::BENEATH) {
            Ok(fd) => fd,
            Err(Errno::XDEV) => self.open_via_canonical_path(rel)?,
            Err(e) => return Err(not_found_if_missing(e)),
        };
        let stat = rustix::fs::fstat(&fd)?;
        Ok((fd, stat))
    }

    fn open_via_canonical_path(&self, rel: &Path) -> io::Result<OwnedFd> {
        let canonical = self.canonical.join(rel).canonicalize()?;
        let inside = canonical
            .strip_prefix(&self.canonical)
            .map_err(|_| io::Error::from(io::ErrorKind::NotFound))?;
        self.open_beneath(inside, ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS)
            .map_err(not_found_if_missing)
    }
}

/// How often a lookup is repeated after `openat2` reports a racing rename (EAGAIN).
const OPENAT2_RETRIES: u32 = 16;

fn identity(stat: &Stat) -> (u64, u64) {
    (stat.st_dev, stat.st_ino)
}

impl Tree for FsTree {
    fn open(&self, path: &SafePath) -> io::Result<Node> {
        let (fd, stat) = self.root()?.resolve(path.as_path())?;
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile => Ok(Node::File(Arc::new(FileSource {
                file: File::from(fd),
                meta: meta(&stat),
            }))),
            FileType::Directory => Ok(Node::Dir(meta(&stat))),
            _ => Err(io::ErrorKind::NotFound.into()),
        }
    }

    fn list(&self, path: &SafePath) -> io::Result<Vec<DirEntry>> {
        let (dir, _) = self.root()?.resolve(path.as_path())?;
        let mut entries = Vec::new();
        for entry in rustix::fs::Dir::read_from(&dir)? {
            let entry = entry?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            let Some(child) = path.child(name) else {
                continue; // ".", "..", hidden names
            };
            let stat = match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => stat,
                Err(Errno::NOENT) => continue, // removed meanwhile
                Err(e) => return Err(e.into()),
            };
            let (is_dir, meta) = match FileType::from_raw_mode(stat.st_mode) {
                FileType::RegularFile => (false, meta(&stat)),
                FileType::Directory => (true, meta(&stat)),
                // Listed only when it resolves inside the root, described by its target.
                FileType::Symlink => match self.open(&child) {
                    Ok(Node::File(source)) => (false, *source.meta()),
                    Ok(Node::Dir(meta)) => (true, meta),
                    Err(_) => continue,
                },
                _ => continue,
            };
            entries.push(DirEntry {
                name: name.to_os_string(),
                is_dir,
                meta,
            });
        }
        Ok(entries)
    }
}

/// An open regular file.
pub struct FileSource {
    file: File,
    meta: Meta,
}

impl Source for FileSource {
    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }

    fn as_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.file.as_fd())
    }
}

fn meta(stat: &Stat) -> Meta {
    let mtime = Duration::new(stat.st_mtime.max(0) as u64, stat.st_mtime_nsec as u32);
    Meta {
        len: stat.st_size.max(0) as u64,
        modified: UNIX_EPOCH + mtime,
        id: stat.st_ino ^ stat.st_dev.rotate_left(48),
    }
}

/// Missing, not a directory, a symlink loop: all look like a missing file to the client.
fn not_found_if_missing(e: Errno) -> io::Error {
    match e {
        Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::XDEV | Errno::NAMETOOLONG => {
            io::ErrorKind::NotFound.into()
        }
        e => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree_with_links() -> (tempfile::TempDir, FsTree) {
        let top = tempfile::tempdir().unwrap();
        let root = top.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/file"), b"inside").unwrap();
        std::fs::write(top.path().join("secret"), b"outside").unwrap();
        symlink("sub/file", root.join("rel-inside")).unwrap();
        symlink(root.join("sub/file"), root.join("abs-inside")).unwrap();
        symlink("../secret", root.join("rel-outside")).unwrap();
        symlink(top.path().join("secret"), root.join("abs-outside")).unwrap();
        symlink("/etc", root.join("etc")).unwrap();
        symlink("sub", root.join("dir-link")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        let tree = FsTree::open_root(&root).unwrap();
        (top, tree)
    }

    fn open(tree: &FsTree, p: &str) -> io::Result<Vec<u8>> {
        match tree.open(&SafePath::from_uri_path(p).unwrap())? {
            Node::File(f) => {
                let mut buf = vec![0; f.meta().len as usize];
                f.read_exact_at(&mut buf, 0)?;
                Ok(buf)
            }
            Node::Dir(_) => Ok(b"<dir>".to_vec()),
        }
    }

    /// The pull-through cache renames links into place while other requests open links with `..`:
    /// the kernel then answers EAGAIN now and then, which must never reach a client.
    #[test]
    fn lookups_through_dotdot_survive_concurrent_renames() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("objects")).unwrap();
        std::fs::create_dir_all(root.join("pool")).unwrap();
        std::fs::write(root.join("objects/x"), b"x").unwrap();
        symlink("../objects/x", root.join("pool/x")).unwrap();
        let tree = FsTree::open_root(root).unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let renamer = {
            let (stop, a, b) = (stop.clone(), root.join("objects/a"), root.join("objects/b"));
            std::fs::write(&a, b"").unwrap();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::fs::rename(&a, &b).unwrap();
                    std::fs::rename(&b, &a).unwrap();
                }
            })
        };
        let path = SafePath::from_uri_path("/pool/x").unwrap();
        let failures = (0..200_000).filter(|_| tree.open(&path).is_err()).count();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        renamer.join().unwrap();
        assert_eq!(failures, 0);
    }

    #[test]
    fn symlinks_stay_inside() {
        let (_top, tree) = tree_with_links();
        assert_eq!(open(&tree, "/rel-inside").unwrap(), b"inside");
        assert_eq!(open(&tree, "/abs-inside").unwrap(), b"inside");
        assert_eq!(open(&tree, "/dir-link/file").unwrap(), b"inside");
        assert_eq!(open(&tree, "/dir-link").unwrap(), b"<dir>");
        for p in [
            "/rel-outside",
            "/abs-outside",
            "/etc/passwd",
            "/etc",
            "/loop",
            "/missing",
        ] {
            let err = open(&tree, p).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotFound, "{p}");
        }
    }

    #[test]
    fn listing_skips_escaping_links() {
        let (_top, tree) = tree_with_links();
        let mut names: Vec<_> = tree
            .list(&SafePath::from_uri_path("/").unwrap())
            .unwrap()
            .into_iter()
            .map(|e| (e.name.to_string_lossy().into_owned(), e.is_dir, e.meta.len))
            .collect();
        names.sort();
        let expect = [
            ("abs-inside".to_string(), false, 6),
            ("dir-link".to_string(), true, 4096),
            ("rel-inside".to_string(), false, 6),
            ("sub".to_string(), true, 4096),
        ];
        // directory sizes depend on the file system; compare them only for files
        for n in &mut names {
            if n.1 {
                n.2 = 4096;
            }
        }
        assert_eq!(names, expect);
    }

    #[test]
    fn replaced_and_removed_root() {
        let top = tempfile::tempdir().unwrap();
        let root = top.path().join("repo");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("f"), b"old").unwrap();
        let tree = FsTree::open_root(&root).unwrap();
        assert_eq!(open(&tree, "/f").unwrap(), b"old");
        std::fs::rename(&root, top.path().join("repo.old")).unwrap();
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("f"), b"new").unwrap();
        std::thread::sleep(ROOT_RECHECK + Duration::from_millis(50));
        assert_eq!(open(&tree, "/f").unwrap(), b"new");
        std::fs::remove_dir_all(&root).unwrap();
        std::thread::sleep(ROOT_RECHECK + Duration::from_millis(50));
        assert_eq!(
            open(&tree, "/f").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            open(&tree, "/").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn special_files_are_missing() {
        let dir = tempfile::tempdir().unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.path().join("fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let tree = FsTree::open_root(dir.path()).unwrap();
        assert_eq!(
            open(&tree, "/fifo").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }
}
