//! A guest's disk from the dom0: growing and shrinking its volume in the safe order, LVM
//! snapshots of it, and mounting its partitions for offline access. Everything that writes to the
//! disk is refused while the guest has a domain, except growing, which the running guest is told
//! of (blkback's capacity change) and which its grow hook follows.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use xenprov_core::guest::Guest;
use xenprov_core::size::Size;
use xenprov_sys::Cmd;

use crate::disk::{self, Loop};
use crate::lifecycle::{no, require_off};
use crate::ops::Env;

/// A mount that `mount` made and `umount` undoes, kept in the guest's registry directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mounted {
    pub dir: PathBuf,
    pub device: PathBuf,
    pub read_write: bool,
}

fn mount_record(env: &Env<'_>, name: &str) -> Result<PathBuf> {
    Ok(env.registry.guest_dir(name)?.join("mounted.json"))
}

pub fn mounted(env: &Env<'_>, name: &str) -> Result<Option<Mounted>> {
    let p = mount_record(env, name)?;
    match fs::read(&p) {
        Ok(b) => Ok(Some(
            serde_json::from_slice(&b).with_context(|| format!("reading {}", p.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

/// Refuses while `mount` holds the guest's disk: what starts or rewrites it must wait for `umount`.
pub fn require_unmounted(env: &Env<'_>, name: &str) -> Result<()> {
    match mounted(env, name)? {
        Some(m) => Err(no(format!(
            "guest `{name}`'s disk is mounted on {} in the dom0: xenprov-guest umount {name} first",
            m.dir.display()
        ))),
        None => Ok(()),
    }
}

/// The free space of the volume group `vg` (none when lvm does not list it).
fn vg_free(env: &Env<'_>, vg: &str) -> Result<Size> {
    Ok(env.machine.vg_free()?.get(vg).copied().unwrap_or(Size(0)))
}

/// Mounts partition `part` of a stopped guest's disk on `dir`, read-only unless `rw`.
pub fn mount(env: &Env<'_>, name: &str, dir: &Path, part: u32, rw: bool) -> Result<Mounted> {
    let g = env.registry.guest(name)?;
    require_off(env, name, "its disk is mounted")?;
    if let Some(m) = mounted(env, name)? {
        return Err(no(format!(
            "guest `{name}`'s disk is already mounted on {}",
            m.dir.display()
        )));
    }
    let lo = Loop::attach(Path::new(&g.disk_path()), !rw)?;
    let dev = lo.partition(part)?;
    let fstype = Cmd::new(&["blkid", "-o", "value", "-s", "TYPE"])
        .arg(&dev)
        .run()
        .with_context(|| {
            format!("partition {part} of guest `{name}` holds no file system blkid knows")
        })?;
    let fstype = fstype.trim();
    // Read-only means nothing is written, not even a journal replay.
    let opts = match (rw, fstype) {
        (true, _) => "rw",
        (false, "ext4" | "ext3") => "ro,noload",
        (false, _) => "ro",
    };
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Cmd::new(&["mount", "-t", fstype, "-o", opts])
        .arg(&dev)
        .arg(dir)
        .run()
        .with_context(|| format!("mounting partition {part} of guest `{name}`"))?;
    let m = Mounted {
        dir: dir.to_path_buf(),
        device: lo.keep(),
        read_write: rw,
    };
    fs::write(mount_record(env, name)?, serde_json::to_vec_pretty(&m)?)?;
    Ok(m)
}

pub fn umount(env: &Env<'_>, name: &str) -> Result<Mounted> {
    let m =
        mounted(env, name)?.ok_or_else(|| no(format!("guest `{name}`'s disk is not mounted")))?;
    Cmd::new(&["umount"]).arg(&m.dir).run()?;
    Loop::adopt(m.device.clone()).detach()?;
    fs::remove_file(mount_record(env, name)?)?;
    Ok(m)
}

/// The bytes of a logical volume, as LVM has it (rounded to its extents).
fn lv_bytes(env: &Env<'_>, g: &Guest) -> Result<Size> {
    let out = env.machine.lvm(&[
        "lvs",
        "--noheadings",
        "--units",
        "b",
        "--nosuffix",
        "-o",
        "lv_size",
        &format!("{}/{}", g.vg, g.lv_name()),
    ])?;
    out.trim()
        .parse()
        .map(Size)
        .with_context(|| format!("lvs gave {out:?} for the size of {}", g.disk_path()))
}

/// Snapshots of the guest's volume: LVM refuses to shrink an origin that has any.
fn snapshot_rows(env: &Env<'_>, g: &Guest) -> Result<Vec<Snapshot>> {
    let out = env.machine.lvm(&[
        "lvs",
        "--noheadings",
        "--separator",
        "|",
        "--units",
        "b",
        "--nosuffix",
        "-o",
        "lv_name,origin,lv_size,data_percent,lv_time",
        &g.vg,
    ])?;
    Ok(parse_snapshots(&out, &g.lv_name()))
}

/// What `resize` did.
#[derive(Debug)]
pub enum Resized {
    /// Grown; whether the guest was running (and so is told now).
    Grown {
        to: Size,
        live: bool,
    },
    Shrunk {
        to: Size,
    },
}

pub fn resize(env: &Env<'_>, name: &str, to: Size) -> Result<Resized> {
    let g = env.registry.guest(name)?;
    // The definition with the new size must still read (a disk below what the OS needs is
    // refused), before anything changes.
    let mut redefined =
        crate::lifecycle::changed(env, &g, |put| put("disk", to.to_string().into()))?;
    let now = lv_bytes(env, &g)?;
    let lv = format!("{}/{}", g.vg, g.lv_name());
    let out = if to > now {
        let free = vg_free(env, &g.vg)?;
        if Size(to.bytes() - now.bytes()) > free {
            return Err(no(format!(
                "growing {} from {now} to {to} needs {} more, and volume group `{}` has {} free",
                g.disk_path(),
                Size(to.bytes() - now.bytes()),
                g.vg,
                xenprov_core::size::human(free.bytes())
            )));
        }
        env.machine
            .lvm(&["lvextend", "-L", &format!("{}b", to.bytes()), &lv])?;
        Resized::Grown {
            to: lv_bytes(env, &g)?,
            live: env.domain(name)?.is_some(),
        }
    } else if to < now {
        shrink(env, &g, to)?
    } else {
        bail!("{} is already {now}", g.disk_path());
    };
    redefined.disk = match &out {
        Resized::Grown { to, .. } | Resized::Shrunk { to } => *to,
    };
    env.registry.redefine(&redefined)?;
    Ok(out)
}

/// File system first, then the partition, then the volume, with the guest off; only for the
/// layout `method = "debootstrap"` writes (one ext4 partition from 1 MiB), which is known to be
/// the whole of what the disk holds.
fn shrink(env: &Env<'_>, g: &Guest, to: Size) -> Result<Resized> {
    let name = &g.name;
    require_off(env, name, "its disk shrinks")?;
    require_unmounted(env, name)?;
    if !snapshot_rows(env, g)?.is_empty() {
        return Err(no(format!(
            "guest `{name}` has snapshots, and LVM does not shrink a volume that has any: remove them first (xenprov-guest snapshot {name} list)"
        )));
    }
    let dev = g.disk_path();
    let (label, parts) = disk::read_table(&dev)?;
    let ours =
        label == "dos" && parts.len() == 1 && parts[0].start == 2048 && parts[0].kind == "83";
    if !ours {
        return Err(no(format!(
            "{dev} is not laid out as one Linux partition from 1 MiB (xenprov-guest's debootstrap layout): \
             shrink its file systems and partitions by hand, then the volume with lvreduce"
        )));
    }
    let sectors = to.bytes() / 512;
    if sectors <= 2048 + 2048 {
        return Err(no(format!("{to} leaves no room for the root partition")));
    }
    let part_sectors = sectors - 2048;
    let lo = Loop::attach(Path::new(&dev), false)?;
    let p1 = lo.partition(1)?;
    let fstype = Cmd::new(&["blkid", "-o", "value", "-s", "TYPE"])
        .arg(&p1)
        .run()?;
    if fstype.trim() != "ext4" {
        return Err(no(format!(
            "{dev}'s partition 1 holds {}, not ext4",
            fstype.trim()
        )));
    }
    // e2fsck first: resize2fs refuses a file system that was not checked since it was mounted.
    Cmd::new(&["e2fsck", "-f", "-p"]).arg(&p1).run()?;
    Cmd::new(&["resize2fs"])
        .arg(&p1)
        .arg(format!("{}K", part_sectors / 2))
        .run()
        .with_context(|| {
            format!("shrinking the file system of {dev} to {to}: it holds more than fits")
        })?;
    lo.detach()?;
    disk::write_table(
        &dev,
        &format!("label: dos\nstart=2048, size={part_sectors}, type=83, bootable\n"),
        false,
    )?;
    let lv = format!("{}/{}", g.vg, g.lv_name());
    env.machine
        .lvm(&["lvreduce", "-f", "-L", &format!("{}b", to.bytes()), &lv])?;
    Ok(Resized::Shrunk {
        to: lv_bytes(env, g)?,
    })
}

/// One snapshot of a guest's volume, as `lvs` reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub name: String,
    pub size: Size,
    /// How full its copy-on-write space is; at 100 % LVM drops it.
    pub used_percent: f64,
    pub created: String,
}

/// The snapshot volume of a guest: NAME-disk-snap-SNAP.
fn snapshot_lv(g: &Guest, snap: &str) -> String {
    format!("{}-snap-{snap}", g.lv_name())
}

fn parse_snapshots(lvs: &str, origin: &str) -> Vec<Snapshot> {
    let prefix = format!("{origin}-snap-");
    lvs.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split('|').collect();
            if f.len() < 5 || f[1] != origin {
                return None;
            }
            Some(Snapshot {
                name: f[0].strip_prefix(&prefix).unwrap_or(f[0]).to_string(),
                size: Size(f[2].parse().ok()?),
                used_percent: f[3].parse().unwrap_or(100.0),
                created: f[4].to_string(),
            })
        })
        .collect()
}

/// A snapshot's name: short, and a valid part of an LV name.
pub fn check_snapshot_name(s: &str) -> Result<(), String> {
    if !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !s.starts_with('-')
    {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a snapshot name: 1 to 32 letters, digits, '-' and '_', not starting with '-'"
        ))
    }
}

pub fn snapshot_create(
    env: &Env<'_>,
    name: &str,
    snap: &str,
    size: Option<Size>,
) -> Result<Snapshot> {
    let g = env.registry.guest(name)?;
    check_snapshot_name(snap).map_err(no)?;
    if snapshot_rows(env, &g)?.iter().any(|s| s.name == snap) {
        return Err(no(format!(
            "guest `{name}` already has a snapshot `{snap}`"
        )));
    }
    // A fifth of the disk by default: what the guest may change before the snapshot is full.
    let size = size.unwrap_or(Size((g.disk.bytes() / 5).max(Size::mib(256).bytes())));
    // LVM takes sizes in whole sectors, and rounds to its extents anyway.
    let mib = Size::mib(1).bytes();
    let size = Size(size.bytes().div_ceil(mib) * mib);
    let free = vg_free(env, &g.vg)?;
    if size > free {
        return Err(no(format!(
            "a snapshot with {size} of room for changes does not fit: volume group `{}` has {} free; give a smaller --size",
            g.vg,
            xenprov_core::size::human(free.bytes())
        )));
    }
    env.machine.lvm(&[
        "lvcreate",
        "--yes",
        "-s",
        "-n",
        &snapshot_lv(&g, snap),
        "-L",
        &format!("{}b", size.bytes()),
        &format!("{}/{}", g.vg, g.lv_name()),
    ])?;
    snapshot_rows(env, &g)?
        .into_iter()
        .find(|s| s.name == snap)
        .with_context(|| format!("lvs does not list snapshot `{snap}` just made"))
}

pub fn snapshot_list(env: &Env<'_>, name: &str) -> Result<Vec<Snapshot>> {
    let g = env.registry.guest(name)?;
    snapshot_rows(env, &g)
}

fn existing_snapshot(env: &Env<'_>, g: &Guest, snap: &str) -> Result<String> {
    if !snapshot_rows(env, g)?.iter().any(|s| s.name == snap) {
        return Err(no(format!("guest `{}` has no snapshot `{snap}`", g.name)));
    }
    Ok(format!("{}/{}", g.vg, snapshot_lv(g, snap)))
}

/// Merges the snapshot back into the disk: the disk is as it was when the snapshot was made, and
/// the snapshot is used up.
pub fn snapshot_rollback(env: &Env<'_>, name: &str, snap: &str) -> Result<()> {
    let g = env.registry.guest(name)?;
    let lv = existing_snapshot(env, &g, snap)?;
    require_off(env, name, "a snapshot is rolled back")?;
    require_unmounted(env, name)?;
    env.machine.lvm(&["lvconvert", "--merge", &lv]).map(drop)
}

pub fn snapshot_remove(env: &Env<'_>, name: &str, snap: &str) -> Result<()> {
    let g = env.registry.guest(name)?;
    let lv = existing_snapshot(env, &g, snap)?;
    env.machine.lvm(&["lvremove", "--yes", &lv]).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_of_the_guest_s_volume_only() {
        let lvs = "  web1-disk|||4294967296||2026-12-03 10:00:00 +0000\n  web1-disk-snap-before|web1-disk|858993459|12.50|2026-12-03 11:00:00 +0000\n  web2-disk-snap-x|web2-disk|1073741824|0.00|2026-12-03 11:00:00 +0000\n";
        let s = parse_snapshots(lvs, "web1-disk");
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].name.as_str(), s[0].used_percent), ("before", 12.5));
        assert!(check_snapshot_name("before-upgrade_1").is_ok());
        for bad in ["", "-x", "a/b", "a b", &"x".repeat(33)] {
            assert!(check_snapshot_name(bad).is_err(), "{bad}");
        }
    }
}
