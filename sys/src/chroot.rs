//! Running tools inside another root file system, with the kernel's file systems mounted in it while
//! the guard lives.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::command::Cmd;
use crate::mount::Mounts;

pub struct Chroot {
    root: PathBuf,
    mounts: Mounts,
}

impl Chroot {
    /// Mounts /proc, /sys and the host's /dev (with its submounts) into `root`.
    pub fn enter(root: &Path) -> Result<Chroot> {
        Chroot {
            root: root.to_path_buf(),
            mounts: Mounts::new(),
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
        for dir in [&upper, &work] {
            fs::create_dir_all(dir)?;
        }
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        );
        let mut mounts = Mounts::new();
        mounts.mount("overlay", &merged, "overlay", Some(&options))?;
        Chroot {
            root: merged,
            mounts,
        }
        .mount_kernel_fs()
    }

    fn mount_kernel_fs(mut self) -> Result<Chroot> {
        self.mounts
            .mount("proc", &self.root.join("proc"), "proc", None)?;
        self.mounts
            .mount("sysfs", &self.root.join("sys"), "sysfs", None)?;
        self.bind(Path::new("/dev"), "dev")?;
        Ok(self)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Makes a host directory visible at `inside` (relative to the root), with its submounts.
    pub fn bind(&mut self, host: &Path, inside: &str) -> Result<()> {
        self.mounts.bind(host, &self.root.join(inside), true)
    }

    /// `chroot ROOT argv…` (see `Cmd::chroot`).
    pub fn command<S: AsRef<OsStr>>(&self, argv: &[S]) -> Cmd {
        Cmd::chroot(&self.root, argv)
    }

    /// Unmounts everything, reporting failures (dropping only logs them).
    pub fn leave(mut self) -> Result<()> {
        self.mounts.unmount_all()
    }
}
