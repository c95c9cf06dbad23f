//! Mounts that are undone when dropped, in reverse order, so an error anywhere leaves nothing
//! mounted on the target.

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::mount::{MntFlags, MsFlags, mount, umount2};

pub struct Mounts {
    stack: Vec<PathBuf>,
}

impl Mounts {
    pub fn new() -> Mounts {
        Mounts { stack: Vec::new() }
    }

    pub fn mount(&mut self, dev: &str, at: &Path, fstype: &str) -> Result<()> {
        std::fs::create_dir_all(at)
            .with_context(|| format!("creating mount point {}", at.display()))?;
        mount(Some(dev), at, Some(fstype), MsFlags::empty(), None::<&str>)
            .with_context(|| format!("mounting {dev} ({fstype}) on {}", at.display()))?;
        self.stack.push(at.to_path_buf());
        Ok(())
    }

    /// Mounts read-only, with the filesystem type blkid finds.
    pub fn mount_ro(&mut self, dev: &str, at: &Path) -> Result<()> {
        let fstype = crate::exec::Cmd::new(&["blkid", "-o", "value", "-s", "TYPE", dev]).run()?;
        std::fs::create_dir_all(at)?;
        mount(
            Some(dev),
            at,
            Some(fstype.trim()),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .with_context(|| format!("mounting {dev} read-only on {}", at.display()))?;
        self.stack.push(at.to_path_buf());
        Ok(())
    }

    pub fn bind(&mut self, src: &Path, at: &Path) -> Result<()> {
        std::fs::create_dir_all(at)?;
        mount(
            Some(src),
            at,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .with_context(|| format!("bind-mounting {} on {}", src.display(), at.display()))?;
        // Recursive bind mounts are private so unmounting them does not reach the source.
        mount(
            None::<&str>,
            at,
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .ok();
        self.stack.push(at.to_path_buf());
        Ok(())
    }

    /// Unmounts everything, newest first, retrying while the kernel says busy.
    pub fn unmount_all(&mut self) -> Result<()> {
        while let Some(p) = self.stack.pop() {
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
