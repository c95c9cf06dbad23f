//! The GPT layout of a dom0 disk, in sectors: BIOS boot partition (BIOS), ESP (UEFI), `/boot`,
//! then one LVM physical volume filling the rest. Every partition starts and ends on a 1 MiB
//! boundary, whether sectors are 512 or 4096 bytes.

use serde::{Deserialize, Serialize};

use crate::size::MIB;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    BiosBoot,
    Esp,
    Boot,
    Lvm,
}

impl Role {
    /// The partition type GUID, as written in specifications.
    pub fn type_guid(self) -> &'static str {
        match self {
            Role::BiosBoot => "21686148-6449-6E6F-744E-656564454649",
            Role::Esp => "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
            Role::Boot => "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
            Role::Lvm => "E6D6D379-F507-44C2-A23C-238F2A3DF928",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::BiosBoot => "bios-boot",
            Role::Esp => "esp",
            Role::Boot => "boot",
            Role::Lvm => "lvm",
        }
    }
}

/// The type of a member of a Linux software RAID array.
pub const LINUX_RAID: &str = "A19D880F-05FC-4D3B-A006-743F0F84911E";

/// A GUID as GPT stores it: the first three fields little-endian ("mixed-endian").
pub fn guid_bytes(guid: &str) -> [u8; 16] {
    uuid::Uuid::parse_str(guid)
        .expect("GUIDs in plans are well-formed")
        .to_bytes_le()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Slot {
    pub role: Role,
    /// Size in bytes; `None` fills what is left.
    pub size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Placed {
    pub number: u32,
    pub role: Role,
    pub first_lba: u64,
    /// Inclusive, as GPT stores it.
    pub last_lba: u64,
}

impl Placed {
    pub fn sectors(&self) -> u64 {
        self.last_lba - self.first_lba + 1
    }
}

/// Sectors GPT needs at each end of the disk: the header and a 16 KiB entry array, plus the
/// protective MBR at the start.
pub fn reserved_sectors(sector: u64) -> (u64, u64) {
    let entries = 16 * 1024 / sector;
    (2 + entries, 1 + entries)
}

/// Places `slots` in order from 1 MiB; `None` when they do not fit on the disk.
pub fn place(disk_size: u64, sector: u64, slots: &[Slot]) -> Option<Vec<Placed>> {
    let align = MIB / sector;
    let total = disk_size / sector;
    let (head, tail) = reserved_sectors(sector);
    let last_usable = total.saturating_sub(tail + 1);
    // The end of the last partition, rounded down to a MiB boundary.
    let end_limit = ((last_usable + 1) / align) * align;
    let mut next = align.max(head.div_ceil(align) * align);
    let mut out = Vec::new();
    for (i, s) in slots.iter().enumerate() {
        let len = match s.size {
            Some(b) => b.div_ceil(sector).div_ceil(align) * align,
            None => end_limit.saturating_sub(next),
        };
        if len == 0 || next + len > end_limit {
            return None;
        }
        out.push(Placed {
            number: i as u32 + 1,
            role: s.role,
            first_lba: next,
            last_lba: next + len - 1,
        });
        next += len;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::size::GIB;

    fn slots() -> Vec<Slot> {
        vec![
            Slot {
                role: Role::BiosBoot,
                size: Some(MIB),
            },
            Slot {
                role: Role::Esp,
                size: Some(512 * MIB),
            },
            Slot {
                role: Role::Boot,
                size: Some(GIB),
            },
            Slot {
                role: Role::Lvm,
                size: None,
            },
        ]
    }

    #[test]
    fn esp_guid_is_mixed_endian_on_disk() {
        assert_eq!(
            guid_bytes(Role::Esp.type_guid()),
            [
                0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E,
                0xC9, 0x3B
            ]
        );
    }

    #[test]
    fn partitions_are_mib_aligned_for_both_sector_sizes() {
        for sector in [512u64, 4096] {
            let p = place(20 * GIB, sector, &slots()).unwrap();
            let align = MIB / sector;
            assert_eq!(p[0].first_lba * sector, MIB);
            for w in p.windows(2) {
                assert_eq!(w[0].last_lba + 1, w[1].first_lba);
            }
            for x in &p {
                assert_eq!(x.first_lba % align, 0, "{x:?}");
                assert_eq!((x.last_lba + 1) % align, 0, "{x:?}");
            }
            let (_, tail) = reserved_sectors(sector);
            let last = p.last().unwrap();
            assert!(last.last_lba < 20 * GIB / sector - tail - 1);
            // 20 GiB minus 1 MiB at the front and the MiB holding the backup GPT at the end.
            assert_eq!(last.last_lba + 1, 20 * GIB / sector - align);
        }
    }

    #[test]
    fn too_small_a_disk_is_refused() {
        assert!(place(GIB, 512, &slots()).is_none());
        // 1 MiB in front, 1537 MiB of fixed partitions, 1 MiB for the rest, 1 MiB behind.
        assert!(place(1540 * MIB, 512, &slots()).is_some());
        assert!(place(1539 * MIB, 512, &slots()).is_none());
    }
}
