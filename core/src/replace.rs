//! Bringing a mirror back to two disks: the GPT a new disk gets so that it can take the place of
//! the one that is gone, computed from the install plan and the new disk, without touching
//! anything. The same partitions as the plan gave the missing disk; fresh GUIDs of its own.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::gpt;
use crate::inventory::Disk;
use crate::plan::{FsType, On, Plan, PlanError, TargetDisk, fat_volume_id};
use crate::size::human;

/// What the new disk gets: its GPT, and the ESP it carries (volume id and label of the one it
/// replaces, so that fstab and the ESP sync find it as they found the old one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Replacement {
    /// The index in the plan's disks whose place the new disk takes.
    pub slot: usize,
    pub disk: TargetDisk,
    /// (partition number, FAT volume id, label) of the ESP, when the plan has ESPs.
    pub esp: Option<(u32, String, String)>,
}

fn key() -> String {
    "--new".into()
}

/// The new disk's layout for `slot`, or every reason it cannot take that place.
pub fn replacement(
    plan: &Plan,
    slot: usize,
    new: &Disk,
    wipe: bool,
) -> Result<Replacement, Vec<PlanError>> {
    let mut errors = Vec::new();
    let mut err = |message: String| {
        errors.push(PlanError {
            key: key(),
            message,
        })
    };
    if !plan.mirrored() {
        err("this host was installed on one disk; there is no mirror to bring back".into());
        return Err(errors);
    }
    let Some(old) = plan.disks.get(slot) else {
        err(format!("the plan has no disk {slot}"));
        return Err(errors);
    };
    if let Some(why) = new.never_target() {
        err(format!("{} cannot be used: {why}", new.path));
    }
    if !new.holders.is_empty() {
        err(format!(
            "{} is in use by {}; stop that first",
            new.path,
            new.holders.join(", ")
        ));
    }
    if new.has_data() && !wipe {
        err(format!(
            "{} holds data ({}); give --wipe to overwrite it",
            new.path,
            new.found().join(", ")
        ));
    }
    if u64::from(new.logical_sector.max(512)) != old.sector {
        err(format!(
            "{} has {}-byte sectors, the mirror's disks {}-byte ones; the members must be alike",
            new.path, new.logical_sector, old.sector
        ));
    }
    let (_, tail) = gpt::reserved_sectors(old.sector);
    let last = old.partitions.last().map_or(0, |p| p.last_lba);
    let needed = (last + 1 + tail + 1) * old.sector;
    if new.size < needed {
        err(format!(
            "{} is {} but the mirror's partitions need {}: choose a disk at least that large",
            new.path,
            human(new.size),
            human(needed)
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // Identifiers of the new disk's own, derived from the plan's and the new disk, so that the
    // same replacement gives the same GPT.
    let id = |purpose: &str| {
        let mut h = Sha256::new();
        h.update(b"xenprov replacement ids v1\0");
        h.update(old.disk_guid.as_bytes());
        h.update(new.serial.as_deref().unwrap_or("").as_bytes());
        h.update(new.size.to_le_bytes());
        h.update(purpose.as_bytes());
        let d: [u8; 32] = h.finalize().into();
        uuid::Builder::from_random_bytes(d[..16].try_into().expect("16 of 32 bytes"))
            .into_uuid()
            .hyphenated()
            .to_string()
            .to_uppercase()
    };
    let mut partitions = old.partitions.clone();
    for p in &mut partitions {
        p.guid = id(&format!("part:{}", p.number));
    }
    let end = partitions
        .last()
        .map_or(0, |p| (p.last_lba + 1) * old.sector);
    let esp = plan.filesystems.iter().find_map(|f| match f.on {
        On::Partition { disk, number } if disk == slot && f.fs == FsType::Vfat => {
            Some((number, fat_volume_id(&f.uuid), f.label.clone()))
        }
        _ => None,
    });
    Ok(Replacement {
        slot,
        disk: TargetDisk {
            path: new.path.clone(),
            kind: new.kind,
            size: new.size,
            sector: old.sector,
            serial: new.serial.clone(),
            model: new.model.clone(),
            disk_guid: id("disk"),
            destroys: new.found(),
            deactivate_vgs: Vec::new(),
            partitions,
            unused: new.size.saturating_sub(end),
        },
        esp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::Answer;
    use crate::inventory::Inventory;
    use crate::plan::{Inputs, plan};
    use crate::render::Templates;

    fn mirror_plan() -> Plan {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests");
        let inv: Inventory = serde_json::from_str(
            &std::fs::read_to_string(format!("{dir}/fixtures/server-mirror.json")).unwrap(),
        )
        .unwrap();
        let answer = Answer::parse(
            &std::fs::read_to_string(format!("{dir}/plans/mirror-server.toml")).unwrap(),
        )
        .unwrap();
        plan(Inputs {
            answer: &answer,
            inventory: &inv,
            payload: None,
            templates: &Templates::builtin(),
        })
        .unwrap()
    }

    fn disk(size: u64) -> Disk {
        Disk {
            path: "/dev/sdf".into(),
            size,
            logical_sector: 512,
            physical_sector: 4096,
            serial: Some("NEW1".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_blank_disk_gets_the_missing_disks_partitions_and_esp() {
        let p = mirror_plan();
        let r = replacement(&p, 1, &disk(p.disks[1].size), false).unwrap();
        let (old, new) = (&p.disks[1].partitions, &r.disk.partitions);
        assert_eq!(old.len(), new.len());
        for (o, n) in old.iter().zip(new) {
            assert_eq!(
                (o.first_lba, o.last_lba, &o.type_guid, &o.name),
                (n.first_lba, n.last_lba, &n.type_guid, &n.name)
            );
            assert_ne!(
                o.guid, n.guid,
                "the new disk's partitions have GUIDs of their own"
            );
        }
        assert_ne!(r.disk.disk_guid, p.disks[1].disk_guid);
        let esp2 = p.filesystems.iter().find(|f| f.label == "ESP2").unwrap();
        assert_eq!(r.esp, Some((2, fat_volume_id(&esp2.uuid), "ESP2".into())));
        assert_eq!(
            replacement(&p, 1, &disk(p.disks[1].size), false).unwrap(),
            r,
            "deterministic"
        );
    }

    #[test]
    fn a_disk_a_little_smaller_fits_within_the_margin_and_a_smaller_one_is_refused() {
        let p = mirror_plan();
        let size = p.disks[1].size;
        assert!(replacement(&p, 1, &disk(size - p.mirror_margin + (2 << 20)), false).is_ok());
        let e = replacement(&p, 1, &disk(size - p.mirror_margin - (64 << 20)), false).unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(
            e[0].message.contains("the mirror's partitions need"),
            "{}",
            e[0].message
        );
    }

    #[test]
    fn a_disk_with_data_in_use_or_of_other_sectors_is_refused_with_every_reason() {
        let p = mirror_plan();
        let mut d = disk(p.disks[1].size);
        d.signatures = vec!["gpt".into()];
        d.holders = vec!["md125".into()];
        d.logical_sector = 4096;
        let e = replacement(&p, 1, &d, false).unwrap_err();
        let text: Vec<&str> = e.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(e.len(), 3, "{text:?}");
        assert!(text[0].contains("in use by md125"), "{text:?}");
        assert!(
            text[1].contains("holds data (signature gpt); give --wipe"),
            "{text:?}"
        );
        assert!(text[2].contains("4096-byte sectors"), "{text:?}");
        d.holders.clear();
        d.logical_sector = 512;
        assert!(
            replacement(&p, 1, &d, true).is_ok(),
            "--wipe lets a disk with data be used"
        );
    }
}
