//! Block devices: sizes and sector sizes from the kernel, the GPT written with gptman, partition
//! table re-reads, zeroing, and loop devices for disk images.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use gptman::{GPT, GPTPartitionEntry};
use xenprov_core::gpt::guid_bytes;
use xenprov_core::plan::{Bootloader, TargetDisk};
use xenprov_core::size::MIB;
use xenprov_sys::Cmd;

mod ioctl {
    nix::ioctl_read_bad!(blksszget, nix::request_code_none!(0x12, 104), libc::c_int);
    nix::ioctl_read!(blkgetsize64, 0x12, 114, u64);
    nix::ioctl_none!(blkrrpart, 0x12, 95);
    nix::ioctl_none!(blkflsbuf, 0x12, 97);
}

pub fn is_block_device(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device())
}

pub fn open_rw(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Size in bytes of a block device or regular file.
pub fn size(f: &File, path: &Path) -> Result<u64> {
    if is_block_device(path) {
        let mut n: u64 = 0;
        // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which outlives the call.
        unsafe { ioctl::blkgetsize64(f.as_raw_fd(), &mut n) }
            .with_context(|| format!("reading the size of {}", path.display()))?;
        Ok(n)
    } else {
        Ok(f.metadata()?.len())
    }
}

pub fn logical_sector(f: &File, path: &Path) -> Result<u64> {
    if !is_block_device(path) {
        return Ok(512);
    }
    let mut n: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int through the pointer, which outlives the call.
    unsafe { ioctl::blksszget(f.as_raw_fd(), &mut n) }
        .with_context(|| format!("reading the sector size of {}", path.display()))?;
    Ok(n as u64)
}

/// Writes zeros over `len` bytes at `offset`.
pub fn zero(f: &mut File, offset: u64, len: u64) -> Result<()> {
    let buf = vec![0u8; MIB as usize];
    f.seek(SeekFrom::Start(offset))?;
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// Zeros the first and last MiB: the MBR, both GPT headers and signatures kept at the end (md
/// 0.90/1.0 superblocks, ZFS labels).
pub fn zero_ends(f: &mut File, size: u64) -> Result<()> {
    zero(f, 0, MIB.min(size))?;
    if size > MIB {
        zero(f, size - MIB, MIB)?;
    }
    f.sync_all()?;
    Ok(())
}

/// Writes the plan's GPT and a protective MBR (bootable only for BIOS-only disks, since some UEFI
/// firmware refuses a bootable one), and clears old MBR boot code.
pub fn write_gpt(f: &mut File, disk: &TargetDisk, boot: &Bootloader) -> Result<()> {
    let ss = disk.sector;
    let mut gpt = GPT::new_from(f, ss, guid_bytes(&disk.disk_guid)).context("preparing the GPT")?;
    gpt.align = MIB / ss;
    for p in &disk.partitions {
        gpt[p.number] = GPTPartitionEntry {
            partition_type_guid: guid_bytes(&p.type_guid),
            unique_partition_guid: guid_bytes(&p.guid),
            starting_lba: p.first_lba,
            ending_lba: p.last_lba,
            attribute_bits: 0,
            partition_name: p.name.as_str().into(),
        };
    }
    gpt.write_into(f).context("writing the GPT")?;
    zero(f, 0, 440)?;
    if boot.bios && !boot.uefi {
        GPT::write_bootable_protective_mbr_into(f, ss)?;
    } else {
        GPT::write_protective_mbr_into(f, ss)?;
    }
    f.sync_all()?;
    Ok(())
}

/// Makes the kernel read the new partition table. A busy device gets EBUSY for a while after
/// being closed, so retry before giving up.
pub fn reread_partitions(f: &File, path: &Path) -> Result<()> {
    let mut last = None;
    for _ in 0..40 {
        // SAFETY: BLKRRPART takes no argument.
        match unsafe { ioctl::blkrrpart(f.as_raw_fd()) } {
            Ok(_) => {
                settle();
                return Ok(());
            }
            Err(e) => last = Some(e),
        }
        sleep(Duration::from_millis(250));
    }
    let e = last.expect("at least one try");
    let why = match e {
        nix::errno::Errno::EBUSY => {
            "the device is in use (a partition is mounted or held)".to_string()
        }
        other => other.to_string(),
    };
    bail!(
        "{}: the kernel could not re-read the partition table: {why}",
        path.display()
    )
}

pub fn flush(f: &File) {
    f.sync_all().ok();
    // SAFETY: BLKFLSBUF takes no argument; failure (e.g. on a regular file) is harmless.
    unsafe { ioctl::blkflsbuf(f.as_raw_fd()) }.ok();
}

/// Waits for udev to finish, when udev runs.
pub fn settle() {
    if Path::new("/run/udev/control").exists() {
        Cmd::new(&["udevadm", "settle", "--timeout=30"]).run().ok();
    }
}

/// Waits until each device node exists; udev may create them a moment after the re-read.
pub fn wait_for(devs: &[String]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    for d in devs {
        while !Path::new(d).exists() {
            if Instant::now() > deadline {
                bail!("{d} did not appear after re-reading the partition table");
            }
            sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

/// A disk image attached to a loop device with partition scanning; detached on drop.
pub struct Loop {
    pub dev: String,
}

impl Loop {
    pub fn attach(image: &Path) -> Result<Loop> {
        let image = image.display().to_string();
        let dev = Cmd::new(&["losetup", "--find", "--show", "--partscan", &image]).run()?;
        Ok(Loop {
            dev: dev.trim().to_string(),
        })
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        if let Err(e) = Cmd::new(&["losetup", "-d", &self.dev]).run() {
            tracing::warn!("detaching {}: {e:#}", self.dev);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xenprov_core::answer::Answer;
    use xenprov_core::inventory::{BootMode, Cpu, Disk, DiskKind, Inventory, Nic};
    use xenprov_core::plan::{Inputs, Plan, plan};
    use xenprov_core::render::Templates;

    fn plan_for(size: u64) -> Plan {
        let answer = Answer::parse(concat!(
            "[disk]\ntarget = \"/img\"\n[repo]\nenable = false\n[system]\nhostname = \"h\"\n",
            "root-password-hash = \"!\"\n"
        ))
        .unwrap();
        let inv = Inventory {
            firmware: BootMode::Bios,
            cpu: Cpu {
                model: "x".into(),
                count: 2,
                hvm: Some("svm".into()),
            },
            memory: 4 << 30,
            disks: vec![Disk {
                path: "/img".into(),
                kind: DiskKind::File,
                size,
                logical_sector: 512,
                physical_sector: 512,
                ..Default::default()
            }],
            nics: vec![Nic {
                name: "eth0".into(),
                mac: "00:16:3e:00:00:01".into(),
                carrier: Some(true),
            }],
            volume_groups: vec![],
        };
        plan(Inputs {
            answer: &answer,
            inventory: &inv,
            payload: None,
            templates: &Templates::builtin(),
        })
        .unwrap()
    }

    /// Writes the GPT into a sparse file and reads it back with util-linux's sfdisk.
    #[test]
    fn gpt_matches_the_plan_when_read_back_by_sfdisk() {
        let size = 20u64 << 30;
        let p = plan_for(size);
        let tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.as_file().set_len(size).unwrap();
        let mut f = open_rw(tmp.path()).unwrap();
        let d = &p.disks[0];
        write_gpt(&mut f, d, &p.bootloader).unwrap();
        let out = std::process::Command::new("sfdisk")
            .arg("--json")
            .arg(tmp.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let t = &v["partitiontable"];
        assert_eq!(t["label"], "gpt");
        assert_eq!(t["id"].as_str().unwrap(), d.disk_guid);
        let parts = t["partitions"].as_array().unwrap();
        assert_eq!(parts.len(), d.partitions.len());
        for (got, want) in parts.iter().zip(&d.partitions) {
            assert_eq!(got["start"].as_u64().unwrap(), want.first_lba);
            assert_eq!(
                got["size"].as_u64().unwrap(),
                want.last_lba - want.first_lba + 1
            );
            assert_eq!(got["type"].as_str().unwrap(), want.type_guid);
            assert_eq!(got["uuid"].as_str().unwrap(), want.guid);
            assert_eq!(got["name"].as_str().unwrap(), want.name);
        }
        let verify = std::process::Command::new("sgdisk")
            .arg("-v")
            .arg(tmp.path())
            .output();
        if let Ok(v) = verify {
            let text = String::from_utf8_lossy(&v.stdout);
            assert!(text.contains("No problems found"), "{text}");
        }
    }
}
