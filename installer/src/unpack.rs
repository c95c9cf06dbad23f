//! Unpacks the dom0 root filesystem from a tar stream into a directory as if that directory were
//! `/`: every path is resolved with openat2(RESOLVE_IN_ROOT), so neither `..` nor an absolute
//! symlink in the archive can reach outside it.
//!
//! The tar crate's own unpack canonicalizes each entry's parent (a readlink per path component),
//! half of all its system calls on a root filesystem; under emulation, system calls are what
//! unpacking costs. Here a file costs open, write, fchown, fchmod, futimens and close.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use rustix::fs::{
    AtFlags, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid, XattrFlags, chownat,
    fchmod, fchown, fsetxattr, futimens, linkat, mkdirat, openat2, symlinkat, unlinkat, utimensat,
};
use tar::EntryType;

const BUF: usize = 1 << 20;

/// A directory's timestamps are set last: creating its children changes them.
struct DirTimes {
    path: PathBuf,
    times: Timestamps,
}

struct Root {
    fd: OwnedFd,
    /// The parent directory of the last entry, which the next entry usually shares.
    parent: Option<(PathBuf, OwnedFd)>,
    dirs: Vec<DirTimes>,
}

/// A path from the archive, relative and without `.` or `..`; empty for the root itself.
fn clean(p: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(x) => out.push(x),
            Component::CurDir => {}
            _ => bail!(
                "{}: refusing a path that leaves the archive's root",
                p.display()
            ),
        }
    }
    Ok(out)
}

fn times(t: Timespec) -> Timestamps {
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

impl Root {
    fn open(dir: &Path) -> Result<Root> {
        let fd = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("opening {}", dir.display()))?;
        Ok(Root {
            fd,
            parent: None,
            dirs: Vec::new(),
        })
    }

    fn resolve(&self, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
        let p = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        // EAGAIN: a rename anywhere on the system raced the kernel's check of a `..` met on the way;
        // the lookup is safe to repeat, a bounded number of times.
        let mut tries = 0;
        loop {
            match openat2(
                &self.fd,
                p,
                flags | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT,
            ) {
                Err(rustix::io::Errno::AGAIN) if tries < 16 => tries += 1,
                r => return Ok(r?),
            }
        }
    }

    /// Makes `rel` and its missing parents (root's, 0755), as tar does for entries whose
    /// directories the archive does not list.
    fn make_dirs(&self, rel: &Path) -> io::Result<OwnedFd> {
        let mut at = self.resolve(Path::new(""), OFlags::PATH | OFlags::DIRECTORY)?;
        let mut prefix = PathBuf::new();
        for c in rel.components() {
            match mkdirat(&at, c.as_os_str(), Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            prefix.push(c);
            at = self.resolve(&prefix, OFlags::PATH | OFlags::DIRECTORY)?;
        }
        Ok(at)
    }

    /// The directory holding `rel`, and `rel`'s last component.
    fn parent<'p>(&mut self, rel: &'p Path) -> Result<(&OwnedFd, &'p std::ffi::OsStr)> {
        let name = rel.file_name().context("an entry without a name")?;
        let dir = rel.parent().unwrap_or(Path::new(""));
        if self.parent.as_ref().is_none_or(|(p, _)| p != dir) {
            let fd = match self.resolve(dir, OFlags::PATH | OFlags::DIRECTORY) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => self.make_dirs(dir),
                other => other,
            }
            .with_context(|| format!("opening directory /{}", dir.display()))?;
            self.parent = Some((dir.to_path_buf(), fd));
        }
        Ok((&self.parent.as_ref().expect("just set").1, name))
    }
}

/// What pax records add to an entry: extended attributes, and the mtime to the nanosecond.
#[derive(Default)]
struct Pax {
    xattrs: Vec<(String, Vec<u8>)>,
    mtime: Option<Timespec>,
}

/// A pax time, `SECONDS[.FRACTION]`.
fn pax_time(v: &str) -> Option<Timespec> {
    let (s, f) = v.split_once('.').unwrap_or((v, ""));
    let digits: String = f.chars().take(9).collect();
    let nsec = if digits.is_empty() {
        0
    } else {
        digits.parse::<i64>().ok()? * 10i64.pow(9 - digits.len() as u32)
    };
    Some(Timespec {
        tv_sec: s.parse().ok()?,
        tv_nsec: nsec,
    })
}

fn pax<R: Read>(e: &mut tar::Entry<'_, R>) -> Result<Pax> {
    let mut out = Pax::default();
    if let Some(exts) = e.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            match ext.key() {
                Ok("mtime") => out.mtime = ext.value().ok().and_then(pax_time),
                Ok(k) if k.starts_with("SCHILY.xattr.") => out.xattrs.push((
                    k["SCHILY.xattr.".len()..].to_string(),
                    ext.value_bytes().to_vec(),
                )),
                _ => {}
            }
        }
    }
    Ok(out)
}

/// Ownership, then mode (chown clears setuid bits), then extended attributes (chown clears file
/// capabilities).
fn set_meta(
    fd: impl AsFd,
    uid: u32,
    gid: u32,
    mode: u32,
    xattrs: &[(String, Vec<u8>)],
) -> io::Result<()> {
    fchown(&fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
    fchmod(&fd, Mode::from_raw_mode(mode & 0o7777))?;
    for (name, value) in xattrs {
        fsetxattr(&fd, name.as_str(), value, XattrFlags::empty())?;
    }
    Ok(())
}

/// Unpacks everything from `r` into `dest`; returns the reader, positioned after the archive.
pub fn unpack<R: Read>(r: R, dest: &Path) -> Result<R> {
    let mut root = Root::open(dest)?;
    let mut ar = tar::Archive::new(r);
    let mut buf = vec![0u8; BUF];
    for entry in ar.entries().context("reading the payload archive")? {
        let mut e = entry.context("reading the payload archive")?;
        let rel = clean(&e.path()?)?;
        let ctx = || format!("unpacking /{}", rel.display());
        let h = e.header();
        let (uid, gid, mode, secs) = (h.uid()? as u32, h.gid()? as u32, h.mode()?, h.mtime()?);
        let kind = h.entry_type();
        let Pax { xattrs, mtime } = pax(&mut e).with_context(ctx)?;
        let mtime = mtime.unwrap_or(Timespec {
            tv_sec: secs as i64,
            tv_nsec: 0,
        });
        match kind {
            EntryType::Directory => {
                if !rel.as_os_str().is_empty() {
                    let (dir, name) = root.parent(&rel).with_context(ctx)?;
                    match mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(err) => return Err(err).with_context(ctx),
                    }
                }
                let fd = root
                    .resolve(&rel, OFlags::RDONLY | OFlags::DIRECTORY)
                    .with_context(ctx)?;
                set_meta(&fd, uid, gid, mode, &xattrs).with_context(ctx)?;
                root.dirs.push(DirTimes {
                    path: rel,
                    times: times(mtime),
                });
            }
            EntryType::Regular | EntryType::Continuous => {
                let (dir, name) = root.parent(&rel).with_context(ctx)?;
                let fd = rustix::fs::openat(
                    dir,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::TRUNC
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .with_context(ctx)?;
                let mut f = std::fs::File::from(fd);
                loop {
                    let n = e.read(&mut buf).with_context(ctx)?;
                    if n == 0 {
                        break;
                    }
                    f.write_all(&buf[..n]).with_context(ctx)?;
                }
                set_meta(&f, uid, gid, mode, &xattrs).with_context(ctx)?;
                futimens(&f, &times(mtime)).with_context(ctx)?;
            }
            EntryType::Symlink => {
                let target = e
                    .link_name()?
                    .with_context(|| format!("{}: a symlink without a target", ctx()))?;
                let (dir, name) = root.parent(&rel).with_context(ctx)?;
                match symlinkat(target.as_ref(), dir, name) {
                    Err(rustix::io::Errno::EXIST) => {
                        unlinkat(dir, name, AtFlags::empty()).with_context(ctx)?;
                        symlinkat(target.as_ref(), dir, name).with_context(ctx)?;
                    }
                    other => other.with_context(ctx)?,
                }
                chownat(
                    dir,
                    name,
                    Some(Uid::from_raw(uid)),
                    Some(Gid::from_raw(gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .with_context(ctx)?;
                utimensat(dir, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW).with_context(ctx)?;
            }
            EntryType::Link => {
                let target = clean(
                    &e.link_name()?
                        .with_context(|| format!("{}: a hard link without a target", ctx()))?,
                )?;
                let tdir = root
                    .resolve(
                        target.parent().unwrap_or(Path::new("")),
                        OFlags::PATH | OFlags::DIRECTORY,
                    )
                    .with_context(ctx)?;
                let tname = target.file_name().with_context(ctx)?.to_owned();
                let (dir, name) = root.parent(&rel).with_context(ctx)?;
                linkat(&tdir, &tname, dir, name, AtFlags::empty()).with_context(ctx)?;
            }
            // pax and GNU long-name headers are consumed by the tar crate itself.
            EntryType::XGlobalHeader
            | EntryType::XHeader
            | EntryType::GNULongName
            | EntryType::GNULongLink => {}
            other => bail!(
                "{}: entry type {other:?} does not belong in a dom0 payload",
                ctx()
            ),
        }
    }
    for d in &root.dirs {
        let fd = root.resolve(&d.path, OFlags::RDONLY | OFlags::DIRECTORY)?;
        futimens(&fd, &d.times)
            .with_context(|| format!("setting the times of /{}", d.path.display()))?;
    }
    Ok(ar.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
    use std::process::Command;

    /// Everything about a tree that an unpack must reproduce.
    fn describe(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap().flatten() {
                let p = e.path();
                let m = p.symlink_metadata().unwrap();
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                let what = if m.file_type().is_symlink() {
                    format!("-> {}", std::fs::read_link(&p).unwrap().display())
                } else if m.is_dir() {
                    stack.push(p.clone());
                    "dir".into()
                } else {
                    format!(
                        "{} bytes, {} links, {:?}",
                        m.len(),
                        m.nlink(),
                        std::fs::read(&p).unwrap().len()
                    )
                };
                let mode = if m.file_type().is_symlink() {
                    0
                } else {
                    m.mode() & 0o7777
                };
                out.push(format!(
                    "{rel}: {what} {mode:o} {}:{} {}.{}",
                    m.uid(),
                    m.gid(),
                    m.mtime(),
                    m.mtime_nsec()
                ));
            }
        }
        out.sort();
        out
    }

    /// A tree with what a root filesystem holds, archived by GNU tar as the image builder does.
    fn archive(dir: &Path) -> (PathBuf, PathBuf) {
        let src = dir.join("src");
        std::fs::create_dir_all(src.join("usr/bin")).unwrap();
        std::fs::create_dir_all(src.join("etc/ssh")).unwrap();
        std::fs::create_dir_all(src.join("tmp")).unwrap();
        std::fs::write(src.join("usr/bin/su"), vec![1u8; 3 * BUF + 17]).unwrap();
        std::fs::set_permissions(
            src.join("usr/bin/su"),
            std::fs::Permissions::from_mode(0o4755),
        )
        .unwrap();
        std::fs::write(src.join("etc/shadow"), "root:!:1::::::\n").unwrap();
        std::fs::set_permissions(
            src.join("etc/shadow"),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        std::os::unix::fs::chown(src.join("etc/shadow"), Some(0), Some(42)).unwrap();
        std::fs::set_permissions(src.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
        std::fs::hard_link(src.join("usr/bin/su"), src.join("usr/bin/su2")).unwrap();
        symlink("usr/bin", src.join("bin")).unwrap();
        symlink("/usr/share/zoneinfo/Etc/UTC", src.join("etc/localtime")).unwrap();
        // An absolute link to a directory: writing through it must stay inside the target.
        symlink("/", src.join("etc/ssh/escape")).unwrap();
        let tar = dir.join("root.tar");
        let st = Command::new("tar")
            .args(["--format=pax", "--numeric-owner", "--sort=name", "-C"])
            .arg(&src)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success());
        (src, tar)
    }

    #[test]
    fn unpacks_a_root_filesystem_exactly_as_gnu_tar_made_it() {
        let dir = tempfile::tempdir().unwrap();
        let (src, tar) = archive(dir.path());
        let dst = dir.path().join("dst");
        std::fs::create_dir(&dst).unwrap();
        unpack(std::fs::File::open(&tar).unwrap(), &dst).unwrap();
        assert_eq!(describe(&dst), describe(&src));
    }

    #[test]
    fn pax_times_keep_their_fraction() {
        let t = pax_time("1795703742.549075704").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1795703742, 549075704));
        let t = pax_time("12.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (12, 500_000_000));
        assert_eq!(pax_time("7").unwrap().tv_nsec, 0);
        assert!(pax_time("x.1").is_none());
    }

    #[test]
    fn paths_resolve_inside_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let (_, tar) = archive(dir.path());
        // Append an entry that goes through the absolute symlink etc/ssh/escape -> /.
        let outside = format!("xenprov-unpack-test-{}", std::process::id());
        let extra = dir.path().join("extra");
        std::fs::create_dir_all(extra.join("etc/ssh/escape/tmp")).unwrap();
        std::fs::write(extra.join("etc/ssh/escape/tmp").join(&outside), "x").unwrap();
        let st = Command::new("tar")
            .args(["--format=pax", "-C"])
            .arg(&extra)
            .arg("-rf")
            .arg(&tar)
            .arg(format!("./etc/ssh/escape/tmp/{outside}"))
            .status()
            .unwrap();
        assert!(st.success());
        let dst = dir.path().join("dst");
        std::fs::create_dir(&dst).unwrap();
        unpack(std::fs::File::open(&tar).unwrap(), &dst).unwrap();
        assert!(
            !Path::new("/tmp").join(&outside).exists(),
            "wrote outside the target"
        );
        assert!(
            dst.join("tmp").join(&outside).exists(),
            "the entry should land in the target's /tmp"
        );
        assert!(clean(Path::new("../etc")).is_err());
        assert!(clean(Path::new("/etc")).is_err());
    }
}
