//! Reads the machine into an [`Inventory`]: sysfs for disks and NICs, `/proc` for CPU, memory,
//! mounts and swap, [`probe`] for what is on each disk (failing closed), `blkid -p` for the type
//! and label of partitions and the install medium (it probes the device itself, no cache), `pvs`
//! for volume groups, and udev's database for serials where sysfs has none.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use gptman::GPT;
use xenprov_core::inventory::{
    BootMode, Cpu, Disk, DiskKind, Inventory, Nic, Partition, VolumeGroup,
};

use crate::probe;

/// Where the live environment records the block device it booted from.
pub const MEDIUM_DEVICE_FILE: &str = "/run/xenprov/medium-device";
/// The volume label of the install ISO.
pub const ISO_LABEL: &str = "XENPROV_ISO";

fn read(p: impl AsRef<Path>) -> Option<String> {
    fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn read_u64(p: impl AsRef<Path>) -> Option<u64> {
    read(p)?.parse().ok()
}

/// `KEY=VALUE` lines from `blkid -p -o export` (with `-O OFFSET -S SIZE` for a partition inside
/// an image file); empty when nothing is found. Only descriptive: whether a disk holds data is
/// [`probe::signatures`]'s to say.
fn blkid_tags(dev: &str, within: Option<(u64, u64)>) -> BTreeMap<String, String> {
    let mut cmd = Command::new("blkid");
    cmd.args(["-p", "-o", "export"]);
    if let Some((offset, size)) = within {
        cmd.args(["-O", &offset.to_string(), "-S", &size.to_string()]);
    }
    let out = cmd.arg(dev).output();
    let Ok(out) = out else { return BTreeMap::new() };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Properties udev recorded for a device (`E:KEY=VALUE` lines), if udev runs.
fn udev_props(devnum: &str) -> BTreeMap<String, String> {
    fs::read_to_string(format!("/run/udev/data/b{devnum}"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("E:"))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `major:minor` of every mounted device, with its mount points.
fn mounted_devices() -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
    {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() > 4 {
            m.entry(f[2].to_string())
                .or_default()
                .push(f[4].to_string());
        }
    }
    m
}

fn swaps() -> Vec<String> {
    fs::read_to_string("/proc/swaps")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Symlinks under /dev/disk/by-id and by-path that point at `dev`.
fn links_to(dev: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for dir in ["/dev/disk/by-id", "/dev/disk/by-path"] {
        let Ok(rd) = fs::read_dir(dir) else { continue };
        for e in rd.flatten() {
            if fs::canonicalize(e.path()).ok().as_deref() == Some(dev) {
                out.push(e.path().display().to_string());
            }
        }
    }
    out.sort();
    out
}

fn holders(sys: &Path) -> Vec<String> {
    let mut h: Vec<String> = fs::read_dir(sys.join("holders"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    h.sort();
    h
}

fn is_candidate(name: &str) -> bool {
    !["loop", "ram", "zram", "dm-", "md", "sr", "fd", "nbd"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// The disk that holds the install medium, from what the live environment recorded.
fn medium_disk() -> Option<String> {
    let dev = read(MEDIUM_DEVICE_FILE)?;
    let name = Path::new(&dev).file_name()?.to_string_lossy().into_owned();
    // A partition's parent is the directory above it in /sys/class/block.
    let sys = fs::canonicalize(format!("/sys/class/block/{name}")).ok()?;
    if sys.join("partition").exists() {
        Some(format!(
            "/dev/{}",
            sys.parent()?.file_name()?.to_string_lossy()
        ))
    } else {
        Some(dev)
    }
}

fn disk(
    name: &str,
    mounts: &BTreeMap<String, Vec<String>>,
    swaps: &[String],
    medium: Option<&str>,
) -> Disk {
    let sys = PathBuf::from("/sys/block").join(name);
    let path = format!("/dev/{name}");
    let devnum = read(sys.join("dev")).unwrap_or_default();
    let udev = udev_props(&devnum);
    let sig = blkid_tags(&path, None);
    let size = read_u64(sys.join("size")).unwrap_or(0) * 512;
    let (signatures, probe_error) = split(probe::signatures(Path::new(&path), size));

    let mut parts = Vec::new();
    let mut used = Vec::new();
    let mut all_holders = holders(&sys);
    let mut devs = vec![(devnum.clone(), path.clone())];
    let mut entries: Vec<_> = fs::read_dir(&sys)
        .map(|rd| rd.flatten().collect())
        .unwrap_or_default();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let pname = e.file_name().to_string_lossy().into_owned();
        if !pname.starts_with(name) || !e.path().join("partition").exists() {
            continue;
        }
        let ppath = format!("/dev/{pname}");
        let p = blkid_tags(&ppath, None);
        parts.push(Partition {
            path: ppath.clone(),
            size: read_u64(e.path().join("size")).unwrap_or(0) * 512,
            fstype: p.get("TYPE").cloned(),
            label: p.get("LABEL").cloned(),
        });
        all_holders.extend(holders(&e.path()));
        devs.push((read(e.path().join("dev")).unwrap_or_default(), ppath));
    }
    for (num, dev) in &devs {
        if let Some(m) = mounts.get(num) {
            used.extend(m.iter().map(|mp| format!("{mp} ({dev})")));
        }
        if swaps.contains(dev) {
            used.push(format!("swap ({dev})"));
        }
    }
    all_holders.sort();
    all_holders.dedup();
    let iso_label = sig.get("TYPE").map(String::as_str) == Some("iso9660")
        && sig.get("LABEL").map(String::as_str) == Some(ISO_LABEL);
    let model = read(sys.join("device/model"))
        .or_else(|| udev.get("ID_MODEL").map(|m| m.replace('_', " ")));
    let serial = read(sys.join("serial"))
        .or_else(|| read(sys.join("device/serial")))
        .or_else(|| udev.get("ID_SERIAL_SHORT").cloned());
    Disk {
        links: links_to(Path::new(&path)),
        kind: DiskKind::Block,
        size,
        logical_sector: read_u64(sys.join("queue/logical_block_size")).unwrap_or(512) as u32,
        physical_sector: read_u64(sys.join("queue/physical_block_size")).unwrap_or(512) as u32,
        model,
        serial,
        removable: read(sys.join("removable")).as_deref() == Some("1"),
        rotational: read(sys.join("queue/rotational")).as_deref() == Some("1"),
        read_only: read(sys.join("ro")).as_deref() == Some("1"),
        signatures,
        probe_error,
        partitions: parts,
        mounts: used,
        holders: all_holders,
        install_medium: iso_label || medium == Some(path.as_str()),
        answer_medium: false,
        path,
    }
}

fn nics() -> Vec<Nic> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/sys/class/net") else {
        return out;
    };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        // Only NICs backed by hardware: bridges, bonds, tunnels and veths have no device link.
        if !p.join("device").exists() {
            continue;
        }
        out.push(Nic {
            name: e.file_name().to_string_lossy().into_owned(),
            mac: read(p.join("address")).unwrap_or_default(),
            carrier: read(p.join("carrier")).map(|c| c == "1"),
        });
    }
    out
}

fn cpu() -> Cpu {
    let info = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let count = info
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count()
        .max(1) as u32;
    let flags = info.lines().find(|l| l.starts_with("flags")).unwrap_or("");
    let hvm = ["vmx", "svm"]
        .into_iter()
        .find(|f| flags.split_whitespace().any(|x| x == *f))
        .map(str::to_string);
    Cpu { model, count, hvm }
}

fn memory() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

fn volume_groups() -> Vec<VolumeGroup> {
    let out = Command::new("pvs")
        .args(["--reportformat", "json", "-o", "pv_name,vg_name"])
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .output();
    let Ok(out) = out else { return Vec::new() };
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pv in v["report"][0]["pv"].as_array().into_iter().flatten() {
        let (Some(pv), Some(vg)) = (pv["pv_name"].as_str(), pv["vg_name"].as_str()) else {
            continue;
        };
        if !vg.is_empty() {
            groups
                .entry(vg.to_string())
                .or_default()
                .push(pv.to_string());
        }
    }
    groups
        .into_iter()
        .map(|(name, pvs)| VolumeGroup { name, pvs })
        .collect()
}

/// The machine as it is now.
pub fn gather() -> Inventory {
    let mounts = mounted_devices();
    let swaps = swaps();
    let medium = medium_disk();
    let mut names: Vec<String> = fs::read_dir("/sys/block")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let disks = names
        .iter()
        .filter(|n| is_candidate(n))
        .map(|n| disk(n, &mounts, &swaps, medium.as_deref()))
        .filter(|d| d.size > 0)
        .collect();
    Inventory {
        firmware: if Path::new("/sys/firmware/efi").exists() {
            BootMode::Uefi
        } else {
            BootMode::Bios
        },
        cpu: cpu(),
        memory: memory(),
        disks,
        nics: nics(),
        volume_groups: volume_groups(),
    }
}

/// Adds a disk image file named as the target, so it can be planned like a disk.
pub fn add_image_target(inv: &mut Inventory, target: &str) -> Result<()> {
    let meta = match fs::metadata(target) {
        Ok(m) => m,
        Err(_) => return Ok(()),
    };
    if !meta.is_file() || inv.disk(target).is_some() {
        return Ok(());
    }
    let (signatures, probe_error) = split(probe::signatures(Path::new(target), meta.len()));
    inv.disks.push(Disk {
        path: target.to_string(),
        kind: DiskKind::File,
        size: meta.len(),
        logical_sector: 512,
        physical_sector: 512,
        signatures,
        probe_error,
        partitions: image_partitions(target),
        ..Default::default()
    });
    Ok(())
}

/// A probe's result as the inventory keeps it: what was found, or why nothing could be.
fn split(r: Result<Vec<String>>) -> (Vec<String>, Option<String>) {
    match r {
        Ok(s) => (s, None),
        Err(e) => (Vec::new(), Some(format!("{e:#}"))),
    }
}

/// The GPT partitions of a disk image (`IMAGE:N`), with what blkid finds inside each. No kernel
/// partition devices exist for a file, so they are read from its table; an image without a GPT
/// has none here (its signatures still say what it holds).
fn image_partitions(target: &str) -> Vec<Partition> {
    let Ok(mut f) = fs::File::open(target) else {
        return Vec::new();
    };
    let Ok(gpt) = GPT::find_from(&mut f) else {
        return Vec::new();
    };
    gpt.iter()
        .filter(|(_, e)| e.is_used())
        .map(|(n, e)| {
            let offset = e.starting_lba * gpt.sector_size;
            let size = e.size().unwrap_or(0) * gpt.sector_size;
            let tags = blkid_tags(target, Some((offset, size)));
            Partition {
                path: format!("{target}:{n}"),
                size,
                fstype: tags.get("TYPE").cloned(),
                label: tags.get("LABEL").cloned(),
            }
        })
        .collect()
}

/// Marks the disk holding `dev` (a disk or one of its partitions) as carrying the answer file.
pub fn mark_answer_medium(inv: &mut Inventory, dev: &str) {
    for d in &mut inv.disks {
        if d.owns(dev) {
            d.answer_medium = true;
        }
    }
}

pub fn load(path: &Path) -> Result<Inventory> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("reading inventory {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing inventory {}", path.display()))
}
