//! Mounts that are undone when dropped, in reverse order, so an error anywhere leaves nothing
//! mounted; a private mount namespace; and clearing what a killed run left mounted.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::mount::{MntFlags, MsFlags, mount, umount2};

/// Gives this process its own mount namespace, with nothing propagating in or out. Without it,
/// the target's mounts would also appear in the namespaces of services with private /tmp or
/// protected paths, which would keep the target's filesystems busy after unmounting here.
pub fn private_namespace() -> Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .context("making a private mount namespace")?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .context("making / private in the installer's mount namespace")?;
    Ok(())
}

#[derive(Default)]
pub struct Mounts {
    /// Mount points, with whether each is a bind mount of the running system.
    stack: Vec<(PathBuf, bool)>,
}

impl Mounts {
    pub fn new() -> Mounts {
        Mounts::default()
    }

    /// Mounts read-write; `options` is the filesystem's own option string.
    pub fn mount(
        &mut self,
        dev: &str,
        at: &Path,
        fstype: &str,
        options: Option<&str>,
    ) -> Result<()> {
        self.mount_with(dev, at, fstype, MsFlags::empty(), options)
    }

    /// Mounts read-only, with the filesystem type blkid finds.
    pub fn mount_ro(&mut self, dev: &str, at: &Path) -> Result<()> {
        let fstype =
            crate::command::Cmd::new(&["blkid", "-o", "value", "-s", "TYPE", dev]).run()?;
        self.mount_with(dev, at, fstype.trim(), MsFlags::MS_RDONLY, None)
    }

    fn mount_with(
        &mut self,
        dev: &str,
        at: &Path,
        fstype: &str,
        flags: MsFlags,
        options: Option<&str>,
    ) -> Result<()> {
        std::fs::create_dir_all(at)
            .with_context(|| format!("creating mount point {}", at.display()))?;
        mount(Some(dev), at, Some(fstype), flags, options)
            .with_context(|| format!("mounting {dev} ({fstype}) on {}", at.display()))?;
        self.stack.push((at.to_path_buf(), false));
        Ok(())
    }

    /// Binds a pseudo-filesystem of the running system (/dev, /proc, /sys, /run) into the target.
    /// `recursive` also brings its submounts (/dev/pts, efivars); /run is bound alone, since it
    /// holds the target's own mounts.
    pub fn bind(&mut self, src: &Path, at: &Path, recursive: bool) -> Result<()> {
        std::fs::create_dir_all(at)?;
        let flags = if recursive {
            MsFlags::MS_BIND | MsFlags::MS_REC
        } else {
            MsFlags::MS_BIND
        };
        mount(Some(src), at, None::<&str>, flags, None::<&str>)
            .with_context(|| format!("bind-mounting {} on {}", src.display(), at.display()))?;
        // Private, so that unmounting the copy never propagates back to the source.
        mount(
            None::<&str>,
            at,
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .ok();
        self.stack.push((at.to_path_buf(), true));
        Ok(())
    }

    /// Unmounts everything, newest first. Filesystems are retried while the kernel says busy;
    /// binds are detached with their submounts at once.
    pub fn unmount_all(&mut self) -> Result<()> {
        while let Some((p, bind)) = self.stack.pop() {
            if bind {
                umount2(&p, MntFlags::MNT_DETACH)
                    .with_context(|| format!("detaching {}", p.display()))?;
                continue;
            }
            let mut tries = 0;
            loop {
                match umount2(&p, MntFlags::empty()) {
                    Ok(()) => break,
                    Err(nix::errno::Errno::EBUSY) if tries < 20 => {
                        tries += 1;
                        sleep(Duration::from_millis(100));
                    }
                    Err(e) => {
                        // Detach it lazily rather than leave the rest mounted.
                        umount2(&p, MntFlags::MNT_DETACH).ok();
                        return Err(e).with_context(|| format!("unmounting {}", p.display()));
                    }
                }
            }
        }
        Ok(())
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        if let Err(e) = self.unmount_all() {
            tracing::warn!("{e:#}");
        }
    }
}

/// Detaches every mount at or below `path` (deepest first), e.g. what a killed build left behind.
pub fn unmount_under(path: &Path) -> Result<()> {
    let path = path
        .canonicalize()
        .with_context(|| format!("resolving {}", path.display()))?;
    let mut targets = mounts_under(&path)?;
    targets.sort_by_key(|t| std::cmp::Reverse(t.components().count()));
    for target in targets {
        umount2(&target, MntFlags::MNT_DETACH)
            .with_context(|| format!("unmounting {}", target.display()))?;
    }
    anyhow::ensure!(
        mounts_under(&path)?.is_empty(),
        "{} still has mounts below it",
        path.display()
    );
    Ok(())
}

fn mounts_under(path: &Path) -> Result<Vec<PathBuf>> {
    let info =
        fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    Ok(info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape(field)))
        .filter(|target| target.starts_with(path))
        .collect())
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        match u8::from_str_radix(rest.get(i + 1..i + 4).unwrap_or(""), 8) {
            Ok(b) => {
                out.push(b as char);
                rest = &rest[i + 4..];
            }
            Err(_) => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape(r"/var/cache/a\040b"), "/var/cache/a b");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/odd\x"), r"/odd\x");
    }
}
