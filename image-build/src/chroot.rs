//! Running commands inside a root file system, with the kernel file systems mounted while the guard lives.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use nix::mount::{MntFlags, MsFlags, mount, umount2};

pub struct Chroot {
    root: PathBuf,
    /// Mount points inside `root`, in mount order.
    mounts: Vec<PathBuf>,
}

impl Chroot {
    /// Mounts /proc, /sys and the host's /dev (recursively) into `root`.
    pub fn enter(root: &Path) -> Result<Chroot> {
        Chroot {
            root: root.to_path_buf(),
            mounts: Vec::new(),
        }
        .mount_kernel_fs()
    }

    /// Like `enter`, on an overlay of `lower` whose writes land in `scratch`: `lower` stays untouched.
    pub fn enter_overlay(lower: &Path, scratch: &Path) -> Result<Chroot> {
        let (upper, work, merged) = (
            scratch.join("upper"),
            scratch.join("work"),
            scratch.join("merged"),
        );
        for dir in [&upper, &work, &merged] {
            fs::create_dir_all(dir)?;
        }
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        );
        mount(
            Some("overlay"),
            &merged,
            Some("overlay"),
            MsFlags::empty(),
            Some(options.as_str()),
        )
        .with_context(|| format!("mounting an overlay of {}", lower.display()))?;
        Chroot {
            root: merged.clone(),
            mounts: vec![merged],
        }
        .mount_kernel_fs()
    }

    fn mount_kernel_fs(mut self) -> Result<Chroot> {
        self.mount_fs("proc", "proc")?;
        self.mount_fs("sysfs", "sys")?;
        self.bind(Path::new("/dev"), "dev")?;
        Ok(self)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn mount_fs(&mut self, fstype: &str, inside: &str) -> Result<()> {
        let target = self.root.join(inside);
        fs::create_dir_all(&target)?;
        mount(
            Some(fstype),
            &target,
            Some(fstype),
            MsFlags::empty(),
            None::<&str>,
        )
        .with_context(|| format!("mounting {fstype} on {}", target.display()))?;
        self.mounts.push(target);
        Ok(())
    }

    /// Makes a host directory visible at `inside` (relative to the root).
    pub fn bind(&mut self, host: &Path, inside: &str) -> Result<()> {
        let target = self.root.join(inside);
        fs::create_dir_all(&target)?;
        mount(
            Some(host),
            &target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .with_context(|| format!("bind-mounting {} on {}", host.display(), target.display()))?;
        self.mounts.push(target);
        Ok(())
    }

    /// `chroot ROOT program` with a clean, non-interactive environment.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("chroot");
        cmd.arg(&self.root)
            .arg(program)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", "/root")
            .env("LC_ALL", "C.UTF-8")
            .env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    }

    /// Unmounts everything, reporting failures (Drop only tries).
    pub fn leave(mut self) -> Result<()> {
        self.unmount_all()
    }

    fn unmount_all(&mut self) -> Result<()> {
        while let Some(target) = self.mounts.pop() {
            umount2(&target, MntFlags::MNT_DETACH)
                .with_context(|| format!("unmounting {}", target.display()))?;
        }
        Ok(())
    }
}

impl Drop for Chroot {
    fn drop(&mut self) {
        if let Err(e) = self.unmount_all() {
            eprintln!("xenprov-image: {e:#}");
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
