//! What the installer knows about the machine: disks, NICs, firmware, CPU, memory. The installer
//! gathers it (`xenprov-install inventory --json`); planning only reads it, so a recorded inventory
//! stands in for the machine in tests and in offline `plan` runs.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Inventory {
    /// How this machine booted the installer.
    pub firmware: BootMode,
    pub cpu: Cpu,
    pub memory: u64,
    #[serde(default)]
    pub disks: Vec<Disk>,
    #[serde(default)]
    pub nics: Vec<Nic>,
    /// Volume groups that exist on any disk, with their physical volumes.
    #[serde(default)]
    pub volume_groups: Vec<VolumeGroup>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BootMode {
    Bios,
    Uefi,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Cpu {
    pub model: String,
    pub count: u32,
    /// `vmx` (Intel VT-x), `svm` (AMD-V), or none: then only PV and PVH guests run.
    pub hvm: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DiskKind {
    #[default]
    Block,
    /// A regular file used as a disk image.
    File,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub struct Disk {
    pub path: String,
    /// Other names of the same disk (`/dev/disk/by-id/...`, `/dev/disk/by-path/...`).
    #[serde(default)]
    pub links: Vec<String>,
    #[serde(default)]
    pub kind: DiskKind,
    pub size: u64,
    pub logical_sector: u32,
    pub physical_sector: u32,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub removable: bool,
    #[serde(default)]
    pub rotational: bool,
    #[serde(default)]
    pub read_only: bool,
    /// Signatures on the whole disk: partition tables (`gpt`, `dos`, `PMBR`), filesystems,
    /// `LVM2_member`, `linux_raid_member`, `crypto_LUKS`…, each with its offset (`ext4 at 0x438`).
    #[serde(default)]
    pub signatures: Vec<String>,
    /// Why the disk could not be probed; such a disk counts as holding data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_error: Option<String>,
    #[serde(default)]
    pub partitions: Vec<Partition>,
    /// Where the disk or its partitions are mounted, or used as swap.
    #[serde(default)]
    pub mounts: Vec<String>,
    /// Kernel devices stacked on it (device-mapper, md).
    #[serde(default)]
    pub holders: Vec<String>,
    /// It carries the medium the installer booted from.
    #[serde(default)]
    pub install_medium: bool,
    /// It carries the answer file being used.
    #[serde(default)]
    pub answer_medium: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Partition {
    pub path: String,
    pub size: u64,
    #[serde(default)]
    pub fstype: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Nic {
    pub name: String,
    pub mac: String,
    /// None when the link state cannot be read (interface down).
    #[serde(default)]
    pub carrier: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct VolumeGroup {
    pub name: String,
    pub pvs: Vec<String>,
}

impl Disk {
    /// Something lives on this disk: partitions, a signature on the disk itself, or it could not
    /// be probed (what cannot be read cleanly is never taken for blank).
    pub fn has_data(&self) -> bool {
        !self.found().is_empty()
    }

    /// What was found on the disk, one phrase each, as refusals and plans name it.
    pub fn found(&self) -> Vec<String> {
        let mut f: Vec<String> = self
            .probe_error
            .iter()
            .map(|e| format!("it could not be probed: {e}"))
            .collect();
        f.extend(self.signatures.iter().map(|s| format!("signature {s}")));
        f.extend(self.partitions.iter().map(|p| {
            let mut s = format!("partition {} ({}", p.path, crate::size::human(p.size));
            if let Some(t) = &p.fstype {
                s += &format!(", {t}");
            }
            if let Some(l) = &p.label {
                s += &format!(", label {l}");
            }
            s + ")"
        }));
        f
    }

    /// Whether `dev` is this disk or one of its partitions.
    pub fn owns(&self, dev: &str) -> bool {
        self.path == dev || self.partitions.iter().any(|p| p.path == dev)
    }

    /// Why this disk must not be written to, whatever the answer file says.
    pub fn never_target(&self) -> Option<String> {
        if self.install_medium {
            Some("it holds the install medium".into())
        } else if self.answer_medium {
            Some("it holds the answer file".into())
        } else if self.read_only {
            Some("it is read-only".into())
        } else if !self.mounts.is_empty() {
            Some(format!(
                "it is in use: mounted at {}",
                self.mounts.join(", ")
            ))
        } else {
            None
        }
    }

    /// The device of partition `n`: `sda1`, but `nvme0n1p1`, `mmcblk0p1`, `loop0p1`.
    pub fn partition_path(&self, n: u32) -> String {
        partition_path(&self.path, n)
    }
}

pub fn partition_path(disk: &str, n: u32) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p{n}")
    } else {
        format!("{disk}{n}")
    }
}

impl Inventory {
    /// The disk reached by `path`, under its kernel name or any of its links.
    pub fn disk(&self, path: &str) -> Option<&Disk> {
        self.disks
            .iter()
            .find(|d| d.path == path || d.links.iter().any(|l| l == path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_follow_the_kernel() {
        assert_eq!(partition_path("/dev/sda", 1), "/dev/sda1");
        assert_eq!(partition_path("/dev/vda", 4), "/dev/vda4");
        assert_eq!(partition_path("/dev/nvme0n1", 2), "/dev/nvme0n1p2");
        assert_eq!(partition_path("/dev/loop3", 1), "/dev/loop3p1");
        assert_eq!(partition_path("/dev/mmcblk0", 1), "/dev/mmcblk0p1");
    }
}
