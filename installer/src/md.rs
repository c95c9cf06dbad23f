//! md RAID1 arrays as the kernel shows them: mdadm run the same way everywhere (its own device
//! nodes where no udev runs), an array's sysfs directory, and the wait for a resync.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use xenprov_sys::Cmd;

/// mdadm, making its own device nodes where no udev runs to make them.
pub fn mdadm(args: &[&str]) -> Cmd {
    let c = Cmd::new(args);
    if Path::new("/run/udev/control").exists() {
        c
    } else {
        c.env("MDADM_NO_UDEV", "1")
    }
}

/// The link of array NAME in /dev/md: `NAME`, or `HOMEHOST:NAME` when it was assembled by an
/// initramfs whose mdadm.conf does not list it (the payload's lists no array).
fn link(name: &str) -> Result<PathBuf> {
    let plain = PathBuf::from(format!("/dev/md/{name}"));
    if plain.exists() {
        return Ok(plain);
    }
    let suffix = format!(":{name}");
    fs::read_dir("/dev/md")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(&suffix))
        })
        .with_context(|| format!("neither /dev/md/{name} nor /dev/md/*{suffix} is there"))
}

/// `/sys/block/mdN/md` of array NAME.
pub fn sysfs(name: &str) -> Result<PathBuf> {
    let dev = fs::canonicalize(link(name)?)?;
    let md = dev
        .file_name()
        .context("an md device has a name")?
        .to_string_lossy()
        .into_owned();
    Ok(PathBuf::from(format!("/sys/block/{md}/md")))
}

/// The member devices of an array now (`/dev/vda4`, ...), from its sysfs directory.
pub fn members(name: &str) -> Result<Vec<String>> {
    let md = sysfs(name)?;
    let mut out = Vec::new();
    for e in fs::read_dir(&md).with_context(|| format!("reading {}", md.display()))? {
        let e = e?;
        if !e.file_name().to_string_lossy().starts_with("dev-") {
            continue;
        }
        if let Ok(block) = fs::canonicalize(e.path().join("block"))
            && let Some(n) = block.file_name()
        {
            out.push(format!("/dev/{}", n.to_string_lossy()));
        }
    }
    out.sort();
    Ok(out)
}

fn read(md: &Path, f: &str) -> String {
    fs::read_to_string(md.join(f))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Waits until the array has no resync or recovery running, logging its progress every 15 s;
/// gives how long it waited.
pub fn wait_for_sync(name: &str, log: &dyn Fn(String)) -> Result<Duration> {
    let md = sysfs(name)?;
    let started = Instant::now();
    let mut last_log = started;
    loop {
        let action = read(&md, "sync_action");
        let done = read(&md, "sync_completed");
        if action == "idle" && done == "none" {
            break;
        }
        if last_log.elapsed() >= Duration::from_secs(15) {
            log(format!(
                "/dev/md/{name}: {action} {done} (speed {} KiB/s)",
                read(&md, "sync_speed")
            ));
            last_log = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(started.elapsed())
}
