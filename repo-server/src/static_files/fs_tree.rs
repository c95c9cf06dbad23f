//! A directory on disk as a `Tree`, with symlinks followed only while they stay inside it.
//!
//! Every lookup is one `openat2(root, path, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` when the path has no
//! symlink on it. A path through a symlink fails that with `ELOOP` and is resolved in user space instead:
//! a relative link in a directory reached without symlinks (the cache's links into its object store) is
//! joined with that directory's path; any other path is canonicalized. Either way, check that the result is under the canonical root and servable by the rules of `path`
//! (no hidden name below the root, so a link cannot serve `.git/config` when a request for it cannot),
//! then open that symlink-free path the same way, so a link swapped in meanwhile fails instead of
//! escaping. Special files (FIFOs, devices, sockets) are treated as missing, and never opened.
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
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::Context;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

use crate::static_files::path::{self, SafePath};
use crate::static_files::store_links::{Object, StoreLinks};
use crate::static_files::tree::{DirEntry, Meta, Node, Source, Tree};

/// How often the configured root path is looked up again, so that a root directory replaced by a
/// rename or a symlink flip is picked up (and a removed one stops being served).
const ROOT_RECHECK: Duration = Duration::from_secs(1);

/// The hidden directory at the top of a tree that holds an object store's files (`content::object_store`).
pub const OBJECTS: &str = ".objects";

pub struct FsTree {
    path: PathBuf,
    /// The hidden directory at the top that symlinks may lead into, if any: see `with_object_store`.
    store: Option<&'static OsStr>,
    /// What the store's links lead to, for a tree with a store.
    links: Option<StoreLinks>,
    epoch: Instant,
    checked_ms: AtomicU64,
    root: RwLock<Option<Arc<Root>>>,
}

impl FsTree {
    /// Opens `path` (which must be a directory) for serving.
    pub fn open_root(path: &Path) -> anyhow::Result<FsTree> {
        let root =
            Root::open(path).with_context(|| format!("opening repo root {}", path.display()))?;
        root.open_beneath(Path::new("."))
            .map_err(|e| match e {
                Errno::NOSYS => {
                    anyhow::anyhow!("openat2 is not available (Linux 5.6 or later is required)")
                }
                e => anyhow::Error::from(e),
            })
            .with_context(|| format!("opening repo root {}", path.display()))?;
        Ok(FsTree {
            path: path.to_owned(),
            store: None,
            links: None,
            epoch: Instant::now(),
            checked_ms: AtomicU64::new(0),
            root: RwLock::new(Some(Arc::new(root))),
        })
    }

    /// Lets symlinks lead into the object store at the top of the tree, as a pull-through cache's
    /// request paths do; its objects are the verified files those paths serve.
    pub fn with_object_store(mut self) -> FsTree {
        self.store = Some(OsStr::new(OBJECTS));
        self.links = Some(StoreLinks::default());
        self
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

    /// Opens `rel` below the root if no symlink is on its way (`ELOOP` otherwise) and it is a regular
    /// file or a directory (`ENOENT` otherwise). Neither `rel` nor a canonical path has `..` in it, so
    /// the kernel never walks `..` here and a racing rename cannot make it answer `EAGAIN` (as it does
    /// for `..` under `RESOLVE_BENEATH`).
    fn open_beneath(&self, rel: &Path) -> Result<OwnedFd, Errno> {
        let stat = self.lstat(rel)?;
        self.open_if_plain(rel, &stat)
    }

    /// The type before the open: opening a FIFO releases a writer waiting for a reader, and opening
    /// a device can act on it (a tape rewinds). Symlinks before the last name are followed here,
    /// wherever they lead: only the type is read, and the openat2 of `open_if_plain` refuses such a path.
    fn lstat(&self, rel: &Path) -> Result<Stat, Errno> {
        rustix::fs::statat(&self.fd, dot_if_empty(rel), AtFlags::SYMLINK_NOFOLLOW)
    }

    /// Opens `rel`, whose `lstat` is `stat`, as `open_beneath` says.
    fn open_if_plain(&self, rel: &Path, stat: &Stat) -> Result<OwnedFd, Errno> {
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile | FileType::Directory => {}
            FileType::Symlink => return Err(Errno::LOOP),
            _ => return Err(Errno::NOENT),
        }
        rustix::fs::openat2(
            &self.fd,
            dot_if_empty(rel),
            // NONBLOCK: a FIFO swapped in since the statat must not hang the open; `Tree::open`
            // refuses it after fstat.
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )
    }

    /// Opens `rel` and returns it with its metadata. A path through symlinks is opened by where its link
    /// leads (`link_target`) or by its canonical path, which must be inside the root and servable;
    /// `store` is the hidden directory that links may point into (see `path::is_servable_target`).
    /// With `links`, a cache's link to an object is answered from what it was found to lead to before
    /// (see `store_links`), and learnt when it is resolved.
    fn resolve(
        &self,
        rel: &Path,
        store: Option<&OsStr>,
        links: Option<&StoreLinks>,
    ) -> io::Result<Resolved> {
        let stat = self.lstat(rel).map_err(not_found_if_missing)?;
        let fd = match self.open_if_plain(rel, &stat) {
            Err(Errno::LOOP) => {
                if let Some(object) = links.and_then(|l| l.get(rel, &stat)) {
                    return Ok(Resolved::Stored(object));
                }
                match self
                    .link_target(rel, store)
                    .map(|t| (self.open_beneath(&t), t))
                {
                    // A link to a link, or a symlink swapped in meanwhile: the canonical path decides
                    // (and ELOOP from it again means a symlink was swapped in since it was found).
                    None | Some((Err(Errno::LOOP), _)) => self
                        .canonical_target(rel, store)
                        .and_then(|target| self.open_beneath(&target)),
                    Some((Ok(fd), path)) => {
                        let target = rustix::fs::fstat(&fd)?;
                        if let Some(links) = links
                            && FileType::from_raw_mode(target.st_mode) == FileType::RegularFile
                        {
                            let meta = meta(&target);
                            links.remember(rel, &stat, Object { path, meta });
                        }
                        return Ok(Resolved::Open(fd, target));
                    }
                    Some((Err(e), _)) => Err(e),
                }
            }
            opened => opened,
        }
        .map_err(not_found_if_missing)?;
        let stat = rustix::fs::fstat(&fd)?;
        Ok(Resolved::Open(fd, stat))
    }

    /// The common case without `canonicalize` (which costs a system call per component of the whole
    /// path): `rel`'s last name is a relative link in a directory reached without symlinks, as the
    /// cache's links into its object store are. Its target is then `rel`'s directory joined with the
    /// link, `..` taken lexically, which is right because that directory's path holds no symlink.
    /// `None` when the link is not of that kind, or leads outside the root or to a hidden name: the
    /// canonical path decides those.
    fn link_target(&self, rel: &Path, store: Option<&OsStr>) -> Option<PathBuf> {
        let (dir, name) = (rel.parent()?, rel.file_name()?);
        let dir_fd = rustix::fs::openat2(
            &self.fd,
            dot_if_empty(dir),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )
        .ok()?;
        let link = rustix::fs::readlinkat(&dir_fd, name, Vec::new()).ok()?;
        let link = Path::new(OsStr::from_bytes(link.as_bytes()));
        let mut target = dir.to_path_buf();
        for part in link.components() {
            match part {
                std::path::Component::Normal(name) => target.push(name),
                std::path::Component::ParentDir if target.pop() => {}
                std::path::Component::CurDir => {}
                // absolute, or `..` above the root
                _ => return None,
            }
        }
        path::is_servable_target(&target, store).then_some(target)
    }

    /// Where the symlinks on `rel` lead, below the root; `ENOENT` when that is outside it or hidden.
    fn canonical_target(&self, rel: &Path, store: Option<&OsStr>) -> Result<PathBuf, Errno> {
        let canonical = self
            .canonical
            .join(rel)
            .canonicalize()
            .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
        match canonical.strip_prefix(&self.canonical) {
            Ok(inside) if path::is_servable_target(inside, store) => Ok(inside.to_owned()),
            _ => Err(Errno::NOENT),
        }
    }
}

fn identity(stat: &Stat) -> (u64, u64) {
    (stat.st_dev, stat.st_ino)
}

/// What a lookup found: an open file or directory, or an object of a cache's store not opened yet.
enum Resolved {
    Open(OwnedFd, Stat),
    Stored(Object),
}

fn dot_if_empty(rel: &Path) -> &Path {
    if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    }
}

impl Tree for FsTree {
    fn open(&self, path: &SafePath) -> io::Result<Node> {
        let root = self.root()?;
        let (fd, stat) = match root.resolve(path.as_path(), self.store, self.links.as_ref())? {
            Resolved::Open(fd, stat) => (fd, stat),
            Resolved::Stored(object) => {
                return Ok(Node::File(Arc::new(StoredObject {
                    root,
                    object,
                    file: OnceLock::new(),
                })));
            }
        };
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile => Ok(Node::File(Arc::new(FileSource {
                file: File::from(fd),
                meta: meta(&stat),
            }))),
            FileType::Directory => Ok(Node::Dir(meta(&stat))),
            // Checked before the open as well; this is a special file swapped in meanwhile.
            _ => Err(io::ErrorKind::NotFound.into()),
        }
    }

    fn list(&self, path: &SafePath) -> io::Result<Vec<DirEntry>> {
        let Resolved::Open(dir, _) =
            self.root()?
                .resolve(path.as_path(), self.store, self.links.as_ref())?
        else {
            return Err(Errno::NOTDIR.into());
        };
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

/// An object of a cache's store reached through a link `store_links` remembered: opened only when
/// its bytes are read, which a hit on the in-memory file cache never does.
struct StoredObject {
    root: Arc<Root>,
    object: Object,
    file: OnceLock<Result<File, Errno>>,
}

impl StoredObject {
    fn file(&self) -> io::Result<&File> {
        let opened = self.file.get_or_init(|| {
            let fd = self.root.open_beneath(&self.object.path)?;
            // Objects are never rewritten; one that was is not served as the one remembered.
            if meta(&rustix::fs::fstat(&fd)?).len != self.object.meta.len {
                return Err(Errno::STALE);
            }
            Ok(File::from(fd))
        });
        opened.as_ref().map_err(|e| io::Error::from(*e))
    }
}

impl Source for StoredObject {
    fn meta(&self) -> &Meta {
        &self.object.meta
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file()?.read_at(buf, offset)
    }

    fn as_fd(&self) -> Option<BorrowedFd<'_>> {
        self.file().ok().map(|f| f.as_fd())
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
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join(".git/config"), b"hidden").unwrap();
        symlink(".git/config", root.join("to-hidden")).unwrap();
        symlink(root.join(".git/config"), root.join("abs-to-hidden")).unwrap();
        symlink(".git", root.join("to-hidden-dir")).unwrap();
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
            "/to-hidden",
            "/abs-to-hidden",
            "/to-hidden-dir",
            "/to-hidden-dir/config",
        ] {
            let err = open(&tree, p).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotFound, "{p}");
        }
    }

    /// Links into the object store are served only by a tree that has one (a pull-through cache).
    #[test]
    fn links_into_the_object_store() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".objects/ab")).unwrap();
        std::fs::create_dir_all(dir.path().join("pool")).unwrap();
        std::fs::write(dir.path().join(".objects/ab/abcd"), b"object").unwrap();
        symlink("../.objects/ab/abcd", dir.path().join("pool/x")).unwrap();
        let plain = FsTree::open_root(dir.path()).unwrap();
        let kind = open(&plain, "/pool/x").unwrap_err().kind();
        assert_eq!(kind, io::ErrorKind::NotFound);
        let cache = FsTree::open_root(dir.path()).unwrap().with_object_store();
        assert_eq!(open(&cache, "/pool/x").unwrap(), b"object");
    }

    /// A link's `..` is taken from where its directory really is: lexically only when no symlink leads
    /// there, and a link to a link is followed to its end.
    #[test]
    fn links_resolve_where_their_directory_really_is() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("x/y/b")).unwrap();
        std::fs::write(root.join("f"), b"top").unwrap();
        std::fs::write(root.join("x/f"), b"under x").unwrap();
        symlink("x/y", root.join("a")).unwrap();
        symlink("../../f", root.join("x/y/b/link")).unwrap();
        symlink("link", root.join("x/y/b/chain")).unwrap();
        symlink("./../b/./link", root.join("x/y/b/dots")).unwrap();
        let tree = FsTree::open_root(root).unwrap();
        assert_eq!(open(&tree, "/x/y/b/link").unwrap(), b"under x");
        assert_eq!(open(&tree, "/a/b/link").unwrap(), b"under x");
        assert_eq!(open(&tree, "/x/y/b/chain").unwrap(), b"under x");
        assert_eq!(open(&tree, "/a/b/dots").unwrap(), b"under x");
    }

    /// A cache path is answered from its link's remembered object until another link takes its place.
    #[test]
    fn remembered_links_follow_a_relink() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = ("aa".repeat(32), "bb".repeat(32));
        std::fs::create_dir_all(dir.path().join(".objects/aa")).unwrap();
        std::fs::create_dir_all(dir.path().join(".objects/bb")).unwrap();
        std::fs::create_dir_all(dir.path().join("pool")).unwrap();
        std::fs::write(dir.path().join(format!(".objects/aa/{a}")), b"first").unwrap();
        std::fs::write(dir.path().join(format!(".objects/bb/{b}")), b"second!").unwrap();
        symlink(format!("../.objects/aa/{a}"), dir.path().join("pool/x")).unwrap();
        let cache = FsTree::open_root(dir.path()).unwrap().with_object_store();
        let meta = |p: &str| match cache.open(&SafePath::from_uri_path(p).unwrap()).unwrap() {
            Node::File(f) => *f.meta(),
            Node::Dir(_) => panic!("{p} is a directory"),
        };
        let first = meta("/pool/x");
        for _ in 0..3 {
            assert_eq!(open(&cache, "/pool/x").unwrap(), b"first");
            assert_eq!(meta("/pool/x"), first);
        }
        symlink(format!("../.objects/bb/{b}"), dir.path().join("pool/.new")).unwrap();
        std::fs::rename(dir.path().join("pool/.new"), dir.path().join("pool/x")).unwrap();
        assert_eq!(open(&cache, "/pool/x").unwrap(), b"second!");
        assert_eq!(meta("/pool/x").len, 7);
        std::fs::remove_file(dir.path().join("pool/x")).unwrap();
        assert_eq!(
            open(&cache, "/pool/x").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        // a plain tree remembers nothing and never serves the store
        let plain = FsTree::open_root(dir.path()).unwrap();
        symlink(format!("../.objects/aa/{a}"), dir.path().join("pool/y")).unwrap();
        assert_eq!(
            open(&plain, "/pool/y").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(open(&cache, "/pool/y").unwrap(), b"first");
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
        // A writer blocks in open until a reader opens the FIFO: the lookup must not be that reader.
        let fifo = dir.path().join("fifo");
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::OpenOptions::new().write(true).open(fifo))
        };
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            open(&tree, "/fifo").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        std::thread::sleep(Duration::from_millis(300));
        let released = writer.is_finished();
        let _reader = rustix::fs::open(&fifo, OFlags::RDONLY | OFlags::NONBLOCK, Mode::empty());
        writer.join().unwrap().unwrap();
        assert!(!released, "the lookup opened the FIFO");
    }
}
