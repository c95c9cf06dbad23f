//! The install plan: everything `apply` will do, computed from an answer, an inventory and the
//! payload's manifest, without touching anything. The same inputs give the same plan byte for
//! byte; identifiers (partition GUIDs, filesystem UUIDs) are derived from the inputs for that.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::answer::{Answer, Firmware, Fs, NetMode, Serial};
use crate::gpt::{self, Placed, Role, Slot};
use crate::inventory::{BootMode, Disk, DiskKind, Inventory, Nic};
use crate::payload::Manifest;
use crate::render::{RenderError, Templates};
use crate::size::{GIB, MIB, human};

pub const EXTENT: u64 = 4 * MIB;
/// Where LVM puts the first extent with `pvcreate --dataalignment 1m` (checked with pvs).
pub const PE_START: u64 = MIB;
/// Above this the dom0 is larger than the design's "around 10 GiB"; a warning, not an error.
pub const DOM0_SOFT_LIMIT: u64 = 10 * GIB;
/// A mirror leaves this share of the smaller disk unused (at least [`MIRROR_MARGIN_MIN`]), so that
/// a replacement disk a little smaller than the one it replaces still holds every member.
pub const MIRROR_MARGIN_PERCENT: u64 = 1;
pub const MIRROR_MARGIN_MIN: u64 = 64 * MIB;
/// Room for the md superblock (metadata 1.0, at the end of the member, where GRUB and the
/// firmware do not look) and its write-intent bitmap behind /boot.
pub const MD_BOOT_RESERVE: u64 = MIB;
/// Where the data of the volume group's array starts on each member (metadata 1.2 and its
/// bitmap in front), given to mdadm so that every member, a replacement too, has the same.
pub const MD_PV_DATA_OFFSET: u64 = 8 * MIB;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Plan {
    /// One disk, or the two disks of a mirror, each with its GPT.
    pub disks: Vec<TargetDisk>,
    /// The RAID1 arrays across the disks; none on one disk.
    pub arrays: Vec<MdArray>,
    /// What a mirror leaves unused at the end of the smaller disk; 0 on one disk.
    pub mirror_margin: u64,
    pub vg: PlannedVg,
    pub filesystems: Vec<Filesystem>,
    pub bootloader: Bootloader,
    pub xen_cmdline: String,
    pub dom0_cmdline: String,
    pub users: Users,
    pub files: Vec<PlannedFile>,
    pub payload: Option<Manifest>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TargetDisk {
    pub path: String,
    pub kind: DiskKind,
    pub size: u64,
    pub sector: u64,
    pub serial: Option<String>,
    pub model: Option<String>,
    pub disk_guid: String,
    /// What is on the disk now and will be destroyed.
    pub destroys: Vec<String>,
    /// Volume groups on this disk to deactivate before wiping.
    pub deactivate_vgs: Vec<String>,
    pub partitions: Vec<PlannedPartition>,
    /// Bytes behind the last partition that nothing uses (the GPT's backup at least).
    pub unused: u64,
}

/// An md RAID1 array over one partition of each disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct MdArray {
    /// `/dev/md/NAME`; mdadm records it as `HOMEHOST:NAME`.
    pub name: String,
    pub homehost: String,
    /// What the array holds: `/boot` or the volume group.
    pub role: Role,
    /// `1.0` (superblock at the end, so GRUB and the firmware read a member as a plain
    /// filesystem) or `1.2`.
    pub metadata: String,
    /// mdadm's form, `8:8:8:8` hex digits.
    pub uuid: String,
    pub members: Vec<On>,
    /// Bytes from the member's start to the array's data.
    pub data_offset: u64,
    /// Bytes of each member the array uses (mdadm `--size`).
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PlannedPartition {
    pub number: u32,
    pub role: Role,
    pub name: String,
    pub type_guid: String,
    pub guid: String,
    pub first_lba: u64,
    pub last_lba: u64,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PlannedVg {
    pub name: String,
    /// The physical volume: the last partition, or the array over it on each disk.
    pub pv: On,
    pub extent_size: u64,
    pub pe_start: u64,
    pub extents: u64,
    pub volumes: Vec<PlannedLv>,
    pub free_extents: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PlannedLv {
    pub name: String,
    pub extents: u64,
}

/// Where a filesystem lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum On {
    /// Partition `number` of `disk`, an index into [`Plan::disks`].
    Partition {
        disk: usize,
        number: u32,
    },
    /// `/dev/md/NAME`.
    Md(String),
    Lv(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsType {
    Ext4,
    Vfat,
    Swap,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Filesystem {
    pub on: On,
    pub fs: FsType,
    /// For vfat, the 8-hex-digit volume id written `XXXX-XXXX`.
    pub uuid: String,
    pub label: String,
    pub mount: Option<String>,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Bootloader {
    pub bios: bool,
    pub uefi: bool,
    /// Write a UEFI boot entry; only possible when the installer itself booted in UEFI mode.
    pub nvram: bool,
    pub password: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Users {
    pub root_password_hash: String,
    pub admin: Option<Admin>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Admin {
    pub name: String,
    pub password_hash: String,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Content {
    File(String),
    Symlink(String),
    Dir,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PlannedFile {
    pub path: String,
    /// Octal, e.g. `0644`.
    pub mode: String,
    /// A user of the target system; resolved after users are created.
    pub owner: String,
    pub content: Content,
}

/// A reason the answer cannot be installed on this machine, with the answer key it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanError {
    pub key: String,
    pub message: String,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

#[derive(Debug)]
pub enum Refusal {
    /// The answer does not fit the machine; every reason found.
    Unfit(Vec<PlanError>),
    Render(RenderError),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Unfit(es) => {
                for (i, e) in es.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "{e}")?;
                }
                Ok(())
            }
            Refusal::Render(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Refusal {}

impl From<RenderError> for Refusal {
    fn from(e: RenderError) -> Refusal {
        Refusal::Render(e)
    }
}

/// Derives stable identifiers from the inputs, so plans are reproducible.
struct Ids([u8; 32]);

impl Ids {
    fn new(answer: &Answer, disks: &[&Disk]) -> Ids {
        let mut h = Sha256::new();
        h.update(b"xenprov plan ids v1\0");
        h.update(answer.to_toml().as_bytes());
        for disk in disks {
            h.update(disk.path.as_bytes());
            h.update(disk.serial.as_deref().unwrap_or("").as_bytes());
            h.update(disk.size.to_le_bytes());
        }
        Ids(h.finalize().into())
    }

    /// The purpose for disk `i`: the first disk's names are those of a one-disk plan.
    fn of_disk(i: usize, purpose: &str) -> String {
        if i == 0 {
            purpose.to_string()
        } else {
            format!("disk{i}:{purpose}")
        }
    }

    fn bytes(&self, purpose: &str) -> [u8; 16] {
        let mut h = Sha256::new();
        h.update(self.0);
        h.update(purpose.as_bytes());
        let d: [u8; 32] = h.finalize().into();
        d[..16].try_into().expect("16 of 32 bytes")
    }

    fn uuid(&self, purpose: &str) -> String {
        uuid::Builder::from_random_bytes(self.bytes(purpose))
            .into_uuid()
            .hyphenated()
            .to_string()
    }

    fn fat_id(&self, purpose: &str) -> String {
        hex::encode_upper(&self.bytes(purpose)[..4])
    }
}

/// Keys in error messages for a volume: `lvm.volumes[name=var]`.
fn lv_key(name: &str) -> String {
    format!("lvm.volumes[name={name}]")
}

fn disk_line(d: &Disk) -> String {
    let mut s = format!("{} ({}", d.path, human(d.size));
    if let Some(m) = &d.model {
        s += &format!(", model {m}");
    }
    if let Some(x) = &d.serial {
        s += &format!(", serial {x}");
    }
    s + ")"
}

fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, tail)) => {
            s.len() >= head.len()
                && s.starts_with(head)
                && (tail.is_empty()
                    || (0..=s.len() - head.len()).any(|i| glob(tail, &s[head.len() + i..])))
        }
    }
}

fn disk_list(inv: &Inventory) -> String {
    let list: Vec<String> = inv.disks.iter().map(disk_line).collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join("; ")
    }
}

/// Picks the target disks, each with the answer key that chose it: the ones named, or the ones
/// that match, as many as the answer asks for.
fn choose_disks<'i>(
    answer: &Answer,
    inv: &'i Inventory,
) -> Result<Vec<(&'i Disk, String)>, Vec<PlanError>> {
    if let Some(t) = &answer.disk.target {
        return match inv.disk(t) {
            Some(d) => Ok(vec![(d, "disk.target".into())]),
            None => Err(vec![PlanError {
                key: "disk.target".into(),
                message: format!(
                    "{t} is not a disk of this machine; its disks are: {}",
                    disk_list(inv)
                ),
            }]),
        };
    }
    if !answer.disk.targets.is_empty() {
        let mut chosen: Vec<(&Disk, String)> = Vec::new();
        let mut errors = Vec::new();
        for (i, t) in answer.disk.targets.iter().enumerate() {
            let key = format!("disk.targets[{i}]");
            match inv.disk(t) {
                None => errors.push(PlanError {
                    key,
                    message: format!("{t} is not a disk of this machine; its disks are: {}", disk_list(inv)),
                }),
                Some(d) => match chosen.iter().find(|(c, _)| c.path == d.path) {
                    Some((_, other)) => errors.push(PlanError {
                        key,
                        message: format!(
                            "{t} is {}, the disk {other} names already; a mirror needs two different disks",
                            d.path
                        ),
                    }),
                    None => chosen.push((d, key)),
                },
            }
        }
        return if errors.is_empty() {
            Ok(chosen)
        } else {
            Err(errors)
        };
    }
    let m = answer
        .disk
        .matcher
        .as_ref()
        .expect("answer has target or match");
    let mut verdicts = Vec::new();
    let mut chosen = Vec::new();
    for d in &inv.disks {
        let reason = if let Some(why) = d.never_target() {
            Some(why)
        } else if d.removable {
            Some("it is removable".into())
        } else if let Some(s) = m
            .serial
            .as_ref()
            .filter(|s| d.serial.as_deref() != Some(s.as_str()))
        {
            Some(format!(
                "serial is {}, not {s}",
                d.serial.as_deref().unwrap_or("unknown")
            ))
        } else if let Some(p) = m
            .model
            .as_ref()
            .filter(|p| !d.model.as_deref().is_some_and(|x| glob(p, x)))
        {
            Some(format!(
                "model is {}, not {p}",
                d.model.as_deref().unwrap_or("unknown")
            ))
        } else if let Some(min) = m.min_size.filter(|min| d.size < min.bytes()) {
            Some(format!("it is smaller than min-size {min}"))
        } else {
            m.max_size
                .filter(|max| d.size > max.bytes())
                .map(|max| format!("it is larger than max-size {max}"))
        };
        match reason {
            Some(r) => verdicts.push(format!("{}: {r}", disk_line(d))),
            None => {
                verdicts.push(format!("{}: matches", disk_line(d)));
                chosen.push(d);
            }
        }
    }
    let want = m.count as usize;
    if chosen.len() == want {
        return Ok(chosen
            .into_iter()
            .map(|d| (d, "disk.match".to_string()))
            .collect());
    }
    Err(vec![PlanError {
        key: "disk.match".into(),
        message: format!(
            "{} disks match, exactly {} must; {}",
            chosen.len(),
            if want == 1 { "one" } else { "two" },
            if verdicts.is_empty() {
                "this machine has no disks".to_string()
            } else {
                format!("the disks are:\n  {}", verdicts.join("\n  "))
            }
        ),
    }])
}

/// The refusal for a disk that holds data, naming everything found on it; `apply` says the same
/// when its re-check finds data the plan did not.
pub fn holds_data(d: &Disk) -> String {
    format!(
        "{} holds data ({}); set [disk] wipe = true to overwrite it",
        d.path,
        d.found().join(", ")
    )
}

/// Checks every target disk; gives, for each, the volume groups to deactivate before wiping it.
fn check_disks(
    answer: &Answer,
    inv: &Inventory,
    disks: &[(&Disk, String)],
    errors: &mut Vec<PlanError>,
) -> Vec<Vec<String>> {
    let targeted = |pv: &String| disks.iter().any(|(d, _)| d.owns(pv));
    let deactivate = disks
        .iter()
        .map(|(d, key)| check_disk(answer, inv, d, key, &targeted, errors))
        .collect();
    for vg in &inv.volume_groups {
        if vg.name == answer.lvm.vg && !vg.pvs.iter().any(targeted) {
            errors.push(PlanError {
                key: "lvm.vg".into(),
                message: format!(
                    "a volume group named {} already exists on {}; choose another name or wipe that disk first",
                    vg.name,
                    vg.pvs.join(", ")
                ),
            });
        }
    }
    if let [(a, _), (b, key)] = disks
        && a.logical_sector != b.logical_sector
    {
        errors.push(PlanError {
            key: key.clone(),
            message: format!(
                "{} has {}-byte sectors and {} {}-byte ones; the two disks of a mirror need the same sector size",
                a.path, a.logical_sector, b.path, b.logical_sector
            ),
        });
    }
    deactivate
}

fn check_disk(
    answer: &Answer,
    inv: &Inventory,
    d: &Disk,
    key: &str,
    targeted: &dyn Fn(&String) -> bool,
    errors: &mut Vec<PlanError>,
) -> Vec<String> {
    let err = |errors: &mut Vec<PlanError>, message: String| {
        errors.push(PlanError {
            key: key.into(),
            message,
        })
    };
    if let Some(why) = d.never_target() {
        err(errors, format!("{} cannot be the target: {why}", d.path));
    }
    if d.has_data() && !answer.disk.wipe {
        err(errors, holds_data(d));
    }
    // Volume groups with a physical volume on this disk are torn down by the wipe, which is only
    // safe when the whole group lives on the target disks.
    let mut deactivate = Vec::new();
    for vg in &inv.volume_groups {
        if !vg.pvs.iter().any(|pv| d.owns(pv)) {
            continue;
        }
        let elsewhere: Vec<String> = vg.pvs.iter().filter(|pv| !targeted(pv)).cloned().collect();
        if !elsewhere.is_empty() {
            err(
                errors,
                format!(
                    "{} holds part of volume group {}, which also spans {}; wiping it would break that group",
                    d.path,
                    vg.name,
                    elsewhere.join(", ")
                ),
            );
        }
        deactivate.push(vg.name.clone());
    }
    let unexplained: Vec<&String> = d.holders.iter().filter(|h| !h.starts_with("dm-")).collect();
    if !unexplained.is_empty() {
        err(
            errors,
            format!(
                "{} is in use by {} (software RAID or another stacked device); stop it first",
                d.path,
                unexplained
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    if d.logical_sector == 4096 && answer.boot.firmware.bios() {
        errors.push(PlanError {
            key: "boot.firmware".into(),
            message: format!(
                "{} has 4096-byte logical sectors, which legacy BIOS cannot boot from; set firmware = \"uefi\"",
                d.path
            ),
        });
    }
    if !matches!(d.logical_sector, 512 | 4096) {
        err(
            errors,
            format!(
                "{} has {}-byte sectors; only 512 and 4096 are supported",
                d.path, d.logical_sector
            ),
        );
    }
    deactivate
}

/// Picks the NIC the bridge enslaves: named, by MAC, or the first with a link.
fn choose_nic<'i>(answer: &Answer, inv: &'i Inventory) -> Result<&'i Nic, PlanError> {
    let want = &answer.network.interface;
    let names: Vec<String> = inv
        .nics
        .iter()
        .map(|n| {
            format!(
                "{} ({}, link {})",
                n.name,
                n.mac,
                match n.carrier {
                    Some(true) => "up",
                    Some(false) => "down",
                    None => "unknown",
                }
            )
        })
        .collect();
    let found = if want == "auto" {
        inv.nics
            .iter()
            .find(|n| n.carrier == Some(true))
            .or(inv.nics.first())
    } else if want.contains(':') {
        inv.nics.iter().find(|n| n.mac.eq_ignore_ascii_case(want))
    } else {
        inv.nics.iter().find(|n| &n.name == want)
    };
    found.ok_or_else(|| PlanError {
        key: "network.interface".into(),
        message: if inv.nics.is_empty() {
            "this machine has no network interface".into()
        } else {
            format!(
                "{want} is not an interface of this machine; it has {}",
                names.join(", ")
            )
        },
    })
}

pub struct Inputs<'a> {
    pub answer: &'a Answer,
    pub inventory: &'a Inventory,
    pub payload: Option<&'a Manifest>,
    pub templates: &'a Templates,
}

/// Values the host templates are rendered with.
#[derive(Serialize)]
struct HostContext<'a> {
    hostname: &'a str,
    short_hostname: &'a str,
    /// The address the host name resolves to locally (Debian's 127.0.1.1 without a static one).
    host_ip: String,
    interface: String,
    interface_mac: String,
    bridge: &'a str,
    mode: &'static str,
    address: Option<String>,
    gateway: Option<String>,
    dns: Vec<String>,
    xen_cmdline: &'a str,
    dom0_cmdline: &'a str,
    linux_cmdline: String,
    grub_serial: Option<String>,
    grub_timeout: u32,
    grub_user: &'a str,
    grub_password_hash: Option<&'a str>,
    permit_root_login: bool,
    fstab: Vec<FstabLine>,
    repo_enabled: bool,
    repo_listen: String,
    repo_port: u16,
    mirrored: bool,
    md_arrays: &'a [MdArray],
    raid_mail: &'a str,
    /// The volume ids (`XXXX-XXXX`) of the ESPs that copy /boot/efi.
    esp_copies: Vec<String>,
}

#[derive(Serialize)]
struct FstabLine {
    spec: String,
    mount: String,
    fs: String,
    options: String,
    pass: u8,
    comment: String,
}

pub fn plan(inputs: Inputs<'_>) -> Result<Plan, Refusal> {
    let Inputs {
        answer,
        inventory: inv,
        payload,
        templates,
    } = inputs;
    let mut errors = Vec::new();
    let mut warnings = Vec::new();

    let chosen = choose_disks(answer, inv).map_err(Refusal::Unfit)?;
    let deactivate_vgs = check_disks(answer, inv, &chosen, &mut errors);
    let disks: Vec<&Disk> = chosen.iter().map(|(d, _)| *d).collect();
    let sector = u64::from(disks[0].logical_sector.max(512));
    let ids = Ids::new(answer, &disks);
    let layout = layout(answer, &disks, sector, &mut errors, &mut warnings);
    check_machine(answer, inv, &mut errors, &mut warnings);
    let nic = match choose_nic(answer, inv) {
        Ok(n) => n.clone(),
        Err(e) => {
            errors.push(e);
            Nic {
                name: String::new(),
                mac: String::new(),
                carrier: None,
            }
        }
    };
    let filesystems = filesystems(answer, &layout, sector, &ids);
    if let Some(m) = payload {
        check_payload_fits(m, &filesystems, &mut errors);
        check_payload_packages(answer, m, &mut errors);
    }
    if !errors.is_empty() {
        return Err(Refusal::Unfit(errors));
    }

    let arrays = md_arrays(answer, &layout, sector, &ids);
    let vg = planned_vg(answer, &layout);
    let xen_cmdline = xen_cmdline(answer);
    let dom0_cmdline = "console=hvc0".to_string();
    let ctx = host_context(
        answer,
        nic,
        &xen_cmdline,
        &dom0_cmdline,
        &filesystems,
        &arrays,
    );
    let files = host_files(answer, templates, &ctx)?;
    let fw = answer.boot.firmware;
    let bootloader = Bootloader {
        bios: fw.bios(),
        uefi: fw.uefi(),
        nvram: fw.uefi()
            && inv.firmware == BootMode::Uefi
            && disks.iter().all(|d| d.kind == DiskKind::Block),
        password: answer.grub.password_hash.is_some(),
    };
    let disks = disks
        .iter()
        .zip(deactivate_vgs)
        .enumerate()
        .map(|(i, (d, deactivate_vgs))| {
            let partitions = planned_partitions(answer, &layout, i, sector, &ids);
            let end = partitions.last().map_or(0, |p| (p.last_lba + 1) * sector);
            let mut destroys = d.found();
            destroys.extend(deactivate_vgs.iter().map(|v| format!("volume group {v}")));
            TargetDisk {
                path: d.path.clone(),
                kind: d.kind,
                size: d.size,
                sector,
                serial: d.serial.clone(),
                model: d.model.clone(),
                disk_guid: ids.uuid(&Ids::of_disk(i, "disk")).to_uppercase(),
                destroys,
                deactivate_vgs,
                partitions,
                unused: d.size.saturating_sub(end),
            }
        })
        .collect();

    Ok(Plan {
        disks,
        arrays,
        mirror_margin: layout.margin,
        vg,
        filesystems,
        bootloader,
        xen_cmdline,
        dom0_cmdline,
        users: users(answer),
        files,
        payload: payload.cloned(),
        warnings,
    })
}

/// The partitions placed on each disk (the same on both disks of a mirror) and the extents of
/// the dom0's volumes in the volume group.
struct Layout {
    placed: Vec<Placed>,
    disks: usize,
    /// 0 on one disk.
    margin: u64,
    lv_extents: Vec<u64>,
    vg_extents: u64,
    used_extents: u64,
}

impl Layout {
    fn mirrored(&self) -> bool {
        self.disks > 1
    }
}

/// The margin a mirror leaves at the end of its smaller disk.
pub fn mirror_margin(smaller: u64) -> u64 {
    (smaller * MIRROR_MARGIN_PERCENT / 100)
        .max(MIRROR_MARGIN_MIN)
        .div_ceil(MIB)
        * MIB
}

/// The partitions the firmware needs (BIOS boot, ESP), /boot, and LVM on the rest; on a mirror,
/// /boot and LVM are each a RAID1 member, sized for the smaller disk less the margin. An error
/// when the disks cannot hold them with the dom0's volumes.
fn layout(
    answer: &Answer,
    disks: &[&Disk],
    sector: u64,
    errors: &mut Vec<PlanError>,
    warnings: &mut Vec<String>,
) -> Layout {
    let fw = answer.boot.firmware;
    let mirrored = disks.len() > 1;
    let smallest = disks
        .iter()
        .min_by_key(|d| d.size)
        .expect("a plan has a disk");
    let margin = if mirrored {
        mirror_margin(smallest.size)
    } else {
        0
    };
    let (boot_reserve, pv_offset) = if mirrored {
        (MD_BOOT_RESERVE, MD_PV_DATA_OFFSET)
    } else {
        (0, 0)
    };
    let mut slots = Vec::new();
    if fw.bios() {
        slots.push(Slot {
            role: Role::BiosBoot,
            size: Some(MIB),
        });
    }
    if fw.uefi() {
        slots.push(Slot {
            role: Role::Esp,
            size: Some(answer.boot.esp_size.bytes()),
        });
    }
    slots.push(Slot {
        role: Role::Boot,
        size: Some(answer.boot.boot_size.bytes() + boot_reserve),
    });
    slots.push(Slot {
        role: Role::Lvm,
        size: None,
    });

    let lv_extents: Vec<u64> = answer
        .lvm
        .volumes
        .iter()
        .map(|v| v.size.bytes().div_ceil(EXTENT))
        .collect();
    let dom0_bytes: u64 = lv_extents.iter().sum::<u64>() * EXTENT;
    let lvm_needed = pv_offset + PE_START + dom0_bytes;
    let fixed: u64 = slots
        .iter()
        .filter_map(|s| s.size)
        .map(|b| b.div_ceil(MIB) * MIB)
        .sum();

    let room = smallest.size.saturating_sub(margin);
    let placed: Vec<Placed> = gpt::place(room, sector, &slots).unwrap_or_default();
    let pv_bytes = placed
        .iter()
        .find(|p| p.role == Role::Lvm)
        .map(|p| p.sectors() * sector)
        .unwrap_or(0);
    let vg_extents = pv_bytes.saturating_sub(pv_offset + PE_START) / EXTENT;
    let used_extents: u64 = lv_extents.iter().sum();
    if placed.is_empty() || vg_extents < used_extents {
        // 1 MiB in front and 1 MiB behind for the GPT and alignment.
        let needed = 2 * MIB + margin + fixed + lvm_needed.div_ceil(MIB) * MIB;
        let what = if mirrored {
            format!(
                "the smaller disk of the mirror, {}, is {} but this layout needs {}: {} of margin for a replacement disk, ",
                smallest.path,
                human(smallest.size),
                human(needed),
                human(margin)
            )
        } else {
            format!(
                "{} is {} but this layout needs {}: ",
                smallest.path,
                human(smallest.size),
                human(needed)
            )
        };
        errors.push(PlanError {
            key: "lvm.volumes".into(),
            message: format!(
                "{what}{} of boot partitions and {} for the dom0 volumes; \
                 make the volumes smaller or choose a larger disk",
                human(fixed),
                human(lvm_needed)
            ),
        });
    }
    if dom0_bytes > DOM0_SOFT_LIMIT {
        warnings.push(format!(
            "the dom0 volumes take {}, more than the usual 10 GiB; that space is not available to guests",
            human(dom0_bytes)
        ));
    }
    if mirrored && let Some(big) = disks.iter().find(|d| d.size > smallest.size + MIB) {
        warnings.push(format!(
            "{} is {} larger than {}; the mirror is as large as the smaller disk and leaves the rest of {} unused",
            big.path,
            human(big.size - smallest.size),
            smallest.path,
            big.path
        ));
    }
    Layout {
        placed,
        disks: disks.len(),
        margin,
        lv_extents,
        vg_extents,
        used_extents,
    }
}

/// Memory, CPUs and firmware: what the machine gives against what the answer asks.
fn check_machine(
    answer: &Answer,
    inv: &Inventory,
    errors: &mut Vec<PlanError>,
    warnings: &mut Vec<String>,
) {
    let dom0_mem = answer.xen.dom0_mem.size.bytes();
    if dom0_mem >= inv.memory {
        errors.push(PlanError {
            key: "xen.dom0-mem".into(),
            message: format!(
                "{} is not less than this machine's memory ({}); Xen and the guests need the rest",
                answer.xen.dom0_mem,
                human(inv.memory)
            ),
        });
    } else if inv.memory - dom0_mem < 256 * MIB {
        warnings.push(format!(
            "dom0-mem {} leaves {} for Xen and guests",
            answer.xen.dom0_mem,
            human(inv.memory - dom0_mem)
        ));
    }
    if answer.xen.dom0_max_vcpus > inv.cpu.count {
        warnings.push(format!(
            "dom0-max-vcpus is {} but this machine has {} CPUs; dom0 gets {}",
            answer.xen.dom0_max_vcpus, inv.cpu.count, inv.cpu.count
        ));
    }
    if inv.cpu.hvm.is_none() {
        warnings.push(
            "this CPU has no hardware virtualization (vmx/svm) or it is disabled in the firmware: \
             only PV guests will run here (PVH and HVM guests need VT-x or AMD-V)"
                .into(),
        );
    }
    match (inv.firmware, answer.boot.firmware) {
        (BootMode::Bios, Firmware::Uefi) => warnings.push(
            "this machine booted the installer in BIOS mode but firmware = \"uefi\": the disk will only boot \
             once the machine's firmware is set to UEFI"
                .into(),
        ),
        (BootMode::Uefi, Firmware::Bios) => warnings.push(
            "this machine booted the installer in UEFI mode but firmware = \"bios\": the disk will only boot \
             with legacy boot (CSM) enabled"
                .into(),
        ),
        _ => {}
    }
}

/// The filesystems on the partitions, arrays and volumes, with their sizes for the payload check.
fn filesystems(answer: &Answer, layout: &Layout, sector: u64, ids: &Ids) -> Vec<Filesystem> {
    let mut filesystems = Vec::new();
    for p in &layout.placed {
        let size = p.sectors() * sector;
        match p.role {
            // One ESP per disk, each with its own label and id (two filesystems with one label
            // confuse whoever mounts by label); the first is /boot/efi, the others are kept
            // identical to it by the sync hook.
            Role::Esp => {
                for disk in 0..layout.disks {
                    filesystems.push(Filesystem {
                        on: On::Partition {
                            disk,
                            number: p.number,
                        },
                        fs: FsType::Vfat,
                        uuid: ids.fat_id(&Ids::of_disk(disk, "esp")),
                        label: if disk == 0 {
                            "ESP".into()
                        } else {
                            format!("ESP{}", disk + 1)
                        },
                        mount: (disk == 0).then(|| "/boot/efi".into()),
                        size,
                    })
                }
            }
            Role::Boot => filesystems.push(Filesystem {
                on: if layout.mirrored() {
                    On::Md("boot".into())
                } else {
                    On::Partition {
                        disk: 0,
                        number: p.number,
                    }
                },
                fs: FsType::Ext4,
                uuid: ids.uuid("fs:/boot"),
                label: "boot".into(),
                mount: Some("/boot".into()),
                size: if layout.mirrored() {
                    answer.boot.boot_size.bytes()
                } else {
                    size
                },
            }),
            Role::BiosBoot | Role::Lvm => {}
        }
    }
    for (v, ext) in answer.lvm.volumes.iter().zip(&layout.lv_extents) {
        filesystems.push(Filesystem {
            on: On::Lv(v.name.clone()),
            fs: match v.fs {
                Fs::Ext4 => FsType::Ext4,
                Fs::Swap => FsType::Swap,
            },
            uuid: ids.uuid(&format!("lv:{}", v.name)),
            label: v.name.chars().take(16).collect(),
            mount: v.mount.clone(),
            size: ext * EXTENT,
        });
    }
    filesystems
}

fn planned_partitions(
    answer: &Answer,
    layout: &Layout,
    disk: usize,
    sector: u64,
    ids: &Ids,
) -> Vec<PlannedPartition> {
    let raid = layout.mirrored();
    layout
        .placed
        .iter()
        .map(|p| PlannedPartition {
            number: p.number,
            role: p.role,
            name: match p.role {
                Role::Lvm if raid => format!("raid-{}", answer.lvm.vg),
                Role::Boot if raid => "raid-boot".into(),
                Role::Lvm => format!("lvm-{}", answer.lvm.vg),
                r => r.name().into(),
            },
            type_guid: match p.role {
                Role::Boot | Role::Lvm if raid => gpt::LINUX_RAID,
                r => r.type_guid(),
            }
            .into(),
            guid: ids
                .uuid(&Ids::of_disk(disk, &format!("part:{}", p.role.name())))
                .to_uppercase(),
            first_lba: p.first_lba,
            last_lba: p.last_lba,
            size: p.sectors() * sector,
        })
        .collect()
}

/// mdadm's way to write a UUID: four groups of eight hex digits.
fn md_uuid(uuid: &str) -> String {
    let hex: String = uuid.chars().filter(|c| *c != '-').collect();
    hex.as_bytes()
        .chunks(8)
        .map(|c| std::str::from_utf8(c).expect("hex is ASCII"))
        .collect::<Vec<_>>()
        .join(":")
}

/// On a mirror: /boot on RAID1 with metadata 1.0, so that GRUB and the firmware read either
/// member as a plain ext4; the volume group's PV on RAID1 with metadata 1.2 at a fixed offset.
fn md_arrays(answer: &Answer, layout: &Layout, sector: u64, ids: &Ids) -> Vec<MdArray> {
    if !layout.mirrored() {
        return Vec::new();
    }
    let homehost = answer
        .system
        .hostname
        .split('.')
        .next()
        .unwrap_or_default()
        .to_string();
    layout
        .placed
        .iter()
        .filter_map(|p| {
            let members = (0..layout.disks)
                .map(|disk| On::Partition {
                    disk,
                    number: p.number,
                })
                .collect();
            let bytes = p.sectors() * sector;
            let (name, metadata, data_offset, size) = match p.role {
                Role::Boot => ("boot", "1.0", 0, answer.boot.boot_size.bytes()),
                Role::Lvm => (
                    "pv",
                    "1.2",
                    MD_PV_DATA_OFFSET,
                    (bytes - MD_PV_DATA_OFFSET) / MIB * MIB,
                ),
                Role::BiosBoot | Role::Esp => return None,
            };
            Some(MdArray {
                name: name.into(),
                homehost: homehost.clone(),
                role: p.role,
                metadata: metadata.into(),
                uuid: md_uuid(&ids.uuid(&format!("md:{name}"))),
                members,
                data_offset,
                size,
            })
        })
        .collect()
}

fn planned_vg(answer: &Answer, layout: &Layout) -> PlannedVg {
    PlannedVg {
        name: answer.lvm.vg.clone(),
        pv: if layout.mirrored() {
            On::Md("pv".into())
        } else {
            On::Partition {
                disk: 0,
                number: layout
                    .placed
                    .iter()
                    .find(|p| p.role == Role::Lvm)
                    .map(|p| p.number)
                    .unwrap_or(0),
            }
        },
        extent_size: EXTENT,
        pe_start: PE_START,
        extents: layout.vg_extents,
        volumes: answer
            .lvm
            .volumes
            .iter()
            .zip(&layout.lv_extents)
            .map(|(v, e)| PlannedLv {
                name: v.name.clone(),
                extents: *e,
            })
            .collect(),
        free_extents: layout.vg_extents - layout.used_extents,
    }
}

/// What the host's file templates are rendered with.
fn host_context<'a>(
    answer: &'a Answer,
    nic: Nic,
    xen_cmdline: &'a str,
    dom0_cmdline: &'a str,
    filesystems: &[Filesystem],
    arrays: &'a [MdArray],
) -> HostContext<'a> {
    let net = &answer.network;
    HostContext {
        hostname: &answer.system.hostname,
        short_hostname: answer.system.hostname.split('.').next().unwrap_or_default(),
        host_ip: match (&net.address, net.mode) {
            (Some(c), NetMode::Static) => c.addr.to_string(),
            _ => "127.0.1.1".into(),
        },
        interface: nic.name,
        interface_mac: nic.mac,
        bridge: &net.bridge,
        mode: match net.mode {
            NetMode::Dhcp => "dhcp",
            NetMode::Static => "static",
        },
        address: net.address.map(|c| c.to_string()),
        gateway: net.gateway.map(|g| g.to_string()),
        dns: net.dns.iter().map(|d| d.to_string()).collect(),
        xen_cmdline,
        dom0_cmdline,
        linux_cmdline: match answer.console.serial.unit() {
            Some(u) => format!("console=tty0 console=ttyS{u},{}n8", answer.console.baud),
            None => String::new(),
        },
        // By port, not --unit: on BIOS, GRUB's unit N is the Nth port the firmware found, which is
        // not COM3 on a machine without COM2.
        grub_serial: answer.console.serial.port().map(|(io, _)| {
            format!(
                "serial --port={io:#x} --speed={} --word=8 --parity=no --stop=1",
                answer.console.baud
            )
        }),
        grub_timeout: answer.grub.timeout,
        grub_user: &answer.grub.user,
        grub_password_hash: answer.grub.password_hash.as_deref(),
        permit_root_login: answer.system.permit_root_login,
        fstab: fstab_lines(filesystems, &answer.lvm.vg, !arrays.is_empty()),
        repo_enabled: answer.repo.enable,
        repo_listen: answer.repo.listen.to_string(),
        repo_port: answer.repo.listen.port(),
        mirrored: !arrays.is_empty(),
        md_arrays: arrays,
        raid_mail: &answer.disk.raid_mail,
        esp_copies: filesystems
            .iter()
            .filter(|f| f.fs == FsType::Vfat && f.mount.is_none())
            .map(|f| fat_volume_id(&f.uuid))
            .collect(),
    }
}

fn users(answer: &Answer) -> Users {
    Users {
        root_password_hash: answer.system.root_password_hash.clone(),
        admin: answer.system.admin_user.as_ref().map(|name| Admin {
            name: name.clone(),
            password_hash: answer
                .system
                .admin_password_hash
                .clone()
                .unwrap_or_else(|| answer.system.root_password_hash.clone()),
            groups: vec!["sudo".into()],
        }),
    }
}

pub fn xen_cmdline(a: &Answer) -> String {
    let x = &a.xen;
    let mut opts = vec![
        format!("dom0_mem={},max:{}", x.dom0_mem, x.dom0_mem),
        format!("dom0_max_vcpus={}", x.dom0_max_vcpus),
    ];
    if let Some(m) = &x.mem {
        opts.push(format!("mem={m}"));
    }
    // Xen 4.17's ns16550 driver knows only com1 and com2, at 0x3f8/IRQ 4 and 0x2f8/IRQ 3 unless
    // told otherwise; COM3 and COM4 become its com1, given their port and IRQ.
    let baud = a.console.baud;
    match a.console.serial {
        Serial::None => opts.push("console=vga".into()),
        s @ (Serial::Com1 | Serial::Com2) => {
            opts.push(format!("{}={baud},8n1", s.name()));
            opts.push(format!("console={},vga", s.name()));
        }
        s @ (Serial::Com3 | Serial::Com4) => {
            let (io, irq) = s.port().expect("a COM port has its I/O port");
            opts.push(format!("com1={baud},8n1,{io:#x},{irq}"));
            opts.push("console=com1,vga".into());
        }
    }
    opts.extend(x.extra.iter().cloned());
    opts.join(" ")
}

/// A FAT volume id as blkid and fstab write it: `XXXX-XXXX`.
pub fn fat_volume_id(id: &str) -> String {
    format!("{}-{}", &id[..4], &id[4..])
}

/// The fstab, in mount order: parents before children. On a mirror, /boot/efi is the first
/// disk's ESP and may be missing: `nofail` lets the host boot from the second disk alone.
fn fstab_lines(fss: &[Filesystem], vg: &str, mirrored: bool) -> Vec<FstabLine> {
    let mut lines: Vec<FstabLine> = fss
        .iter()
        .filter(|f| f.fs == FsType::Swap || f.mount.is_some())
        .map(|f| {
            let comment = match &f.on {
                On::Partition { number, .. } => format!("partition {number}"),
                On::Md(name) => format!("/dev/md/{name}"),
                On::Lv(name) => format!("/dev/{vg}/{name}"),
            };
            match f.fs {
                FsType::Swap => FstabLine {
                    spec: format!("UUID={}", f.uuid),
                    mount: "none".into(),
                    fs: "swap".into(),
                    options: "sw".into(),
                    pass: 0,
                    comment,
                },
                FsType::Vfat => FstabLine {
                    spec: format!("UUID={}", fat_volume_id(&f.uuid)),
                    mount: f.mount.clone().unwrap_or_default(),
                    fs: "vfat".into(),
                    options: if mirrored {
                        "umask=0077,nofail".into()
                    } else {
                        "umask=0077".into()
                    },
                    pass: 1,
                    comment,
                },
                FsType::Ext4 => {
                    let root = f.mount.as_deref() == Some("/");
                    FstabLine {
                        spec: format!("UUID={}", f.uuid),
                        mount: f.mount.clone().unwrap_or_default(),
                        fs: "ext4".into(),
                        options: if root {
                            "errors=remount-ro".into()
                        } else {
                            "defaults".into()
                        },
                        pass: if root { 1 } else { 2 },
                        comment,
                    }
                }
            }
        })
        .collect();
    lines.sort_by_key(|l| mount_order(&l.mount));
    lines
}

/// Sort key that mounts a parent before its children, and swap last.
pub fn mount_order(m: &str) -> (usize, String) {
    if m == "none" {
        return (usize::MAX, String::new());
    }
    (m.trim_end_matches('/').matches('/').count(), m.to_string())
}

/// The repo server's unit comes with its package: a payload without it cannot run the server the
/// answer file enables.
fn check_payload_packages(a: &Answer, m: &Manifest, errors: &mut Vec<PlanError>) {
    if a.repo.enable && !m.debs.iter().any(|d| d.package == "xenprov-repo") {
        let has: Vec<&str> = m.debs.iter().map(|d| d.package.as_str()).collect();
        errors.push(PlanError {
            key: "repo.enable".into(),
            message: format!(
                "the dom0 payload carries no xenprov-repo package (it has {}); build the payload with \
                 xenprov-repo, or set repo.enable = false",
                if has.is_empty() {
                    "none".to_string()
                } else {
                    has.join(", ")
                }
            ),
        });
    }
}

/// Checks that each filesystem can hold the part of the payload that lands on it.
fn check_payload_fits(m: &Manifest, fss: &[Filesystem], errors: &mut Vec<PlanError>) {
    let mounts: Vec<(&str, &Filesystem)> = fss
        .iter()
        .filter_map(|f| f.mount.as_deref().map(|p| (p, f)))
        .collect();
    let mut need: Vec<(&str, u64)> = mounts.iter().map(|(p, _)| (*p, 0)).collect();
    for (dir, bytes) in &m.usage {
        let owner = mounts
            .iter()
            .filter(|(p, _)| *p == "/" || dir == p || dir.starts_with(&format!("{p}/")))
            .max_by_key(|(p, _)| p.len());
        if let Some((p, _)) = owner
            && let Some(n) = need.iter_mut().find(|(q, _)| q == p)
        {
            n.1 += bytes;
        }
    }
    for ((mount, fs), (_, used)) in mounts.iter().zip(&need) {
        // ext4 keeps about a tenth for its journal, inode tables and reserved blocks.
        let required = used + used / 10 + 64 * MIB;
        if *used > 0 && required > fs.size {
            let key = match &fs.on {
                On::Lv(n) => lv_key(n),
                _ if *mount == "/boot" => "boot.boot-size".into(),
                _ => "boot.esp-size".into(),
            };
            errors.push(PlanError {
                key,
                message: format!(
                    "the dom0 payload puts {} MiB on {mount}, which needs at least {} MiB; it is {} MiB",
                    used.div_ceil(MIB),
                    required.div_ceil(MIB),
                    fs.size / MIB
                ),
            });
        }
    }
}

fn file(path: &str, mode: &str, content: String) -> PlannedFile {
    PlannedFile {
        path: path.into(),
        mode: mode.into(),
        owner: "root".into(),
        content: Content::File(content),
    }
}

fn symlink(path: &str, target: &str) -> PlannedFile {
    PlannedFile {
        path: path.into(),
        mode: "0777".into(),
        owner: "root".into(),
        content: Content::Symlink(target.into()),
    }
}

fn dir(path: &str, mode: &str, owner: &str) -> PlannedFile {
    PlannedFile {
        path: path.into(),
        mode: mode.into(),
        owner: owner.into(),
        content: Content::Dir,
    }
}

fn host_files(
    a: &Answer,
    t: &Templates,
    ctx: &HostContext<'_>,
) -> Result<Vec<PlannedFile>, RenderError> {
    let r = |name: &str| t.render(&format!("templates/{name}"), ctx);
    let mut files = vec![
        file("/etc/fstab", "0644", r("fstab.tera")?),
        file("/etc/hostname", "0644", r("hostname.tera")?),
        file("/etc/hosts", "0644", r("hosts.tera")?),
        file("/etc/network/interfaces", "0644", r("interfaces.tera")?),
        file(
            "/etc/systemd/network/10-xenprov-uplink.link",
            "0644",
            r("uplink.link.tera")?,
        ),
        file("/etc/timezone", "0644", format!("{}\n", a.system.timezone)),
        symlink(
            "/etc/localtime",
            &format!("/usr/share/zoneinfo/{}", a.system.timezone),
        ),
        file(
            "/etc/default/grub.d/xen.cfg",
            "0644",
            r("grub-xen.cfg.tera")?,
        ),
        file(
            "/etc/default/grub.d/xenprov.cfg",
            "0644",
            r("grub-xenprov.cfg.tera")?,
        ),
        file(
            "/etc/ssh/sshd_config.d/xenprov.conf",
            "0644",
            r("sshd-xenprov.conf.tera")?,
        ),
        file("/etc/xen/xl.conf", "0644", r("xl.conf.tera")?),
        file("/etc/default/xen", "0644", r("default-xen.tera")?),
        file(
            "/etc/default/xendomains",
            "0644",
            r("default-xendomains.tera")?,
        ),
        dir("/var/log/xen/console", "0750", "root"),
        file(
            "/usr/lib/xenprov/issue",
            "0755",
            r("xenprov-issue.sh.tera")?,
        ),
        file(
            "/etc/systemd/system/xenprov-issue.service",
            "0644",
            r("xenprov-issue.service.tera")?,
        ),
        symlink(
            "/etc/systemd/system/multi-user.target.wants/xenprov-issue.service",
            "/etc/systemd/system/xenprov-issue.service",
        ),
        // The xenprov-guest package's unit: the guests' NAT, VLAN bridges and firewall rules are
        // made again at every boot, before xendomains starts the guests.
        symlink(
            "/etc/systemd/system/multi-user.target.wants/xenprov-guest-network.service",
            "/usr/lib/systemd/system/xenprov-guest-network.service",
        ),
        file("/etc/xenprov/answer.toml", "0600", a.to_toml()),
    ];
    if a.network.mode == NetMode::Static && !a.network.dns.is_empty() {
        files.push(file("/etc/resolv.conf", "0644", r("resolv.conf.tera")?));
    }
    if a.grub.password_hash.is_some() {
        files.push(file(
            "/etc/grub.d/01_xenprov_password",
            "0700",
            r("grub-password.tera")?,
        ));
    }
    if let Some(user) = &a.system.admin_user
        && !a.system.ssh_authorized_keys.is_empty()
    {
        let home = format!("/home/{user}");
        files.push(dir(&format!("{home}/.ssh"), "0700", user));
        let mut keys = a.system.ssh_authorized_keys.join("\n");
        keys.push('\n');
        files.push(PlannedFile {
            path: format!("{home}/.ssh/authorized_keys"),
            mode: "0600".into(),
            owner: user.clone(),
            content: Content::File(keys),
        });
    }
    if a.repo.enable {
        files.push(file(
            "/etc/xenprov/repo.toml",
            "0644",
            r("xenprov-repo.toml.tera")?,
        ));
        files.push(dir("/srv/xenprov/repo", "0755", "root"));
        // The unit is the xenprov-repo package's; enabling it is the host's choice (what
        // `systemctl enable` would link).
        files.push(symlink(
            "/etc/systemd/system/multi-user.target.wants/xenprov-repo.service",
            "/usr/lib/systemd/system/xenprov-repo.service",
        ));
    }
    if ctx.mirrored {
        files.extend([
            file("/etc/mdadm/mdadm.conf", "0644", r("mdadm.conf.tera")?),
            file(
                "/usr/lib/xenprov/sync-esp",
                "0755",
                r("xenprov-sync-esp.sh.tera")?,
            ),
            file(
                "/etc/apt/apt.conf.d/99xenprov-sync-esp",
                "0644",
                r("apt-sync-esp.tera")?,
            ),
            file(
                "/etc/systemd/system/xenprov-esp.service",
                "0644",
                r("xenprov-esp.service.tera")?,
            ),
            symlink(
                "/etc/systemd/system/multi-user.target.wants/xenprov-esp.service",
                "/etc/systemd/system/xenprov-esp.service",
            ),
        ]);
    }
    let mut seen = BTreeSet::new();
    files.retain(|f| seen.insert(f.path.clone()));
    Ok(files)
}

impl Plan {
    /// The device a filesystem, array or PV is made on, given the devices the disks are reached
    /// through now (loop devices for disk images), in the order of [`Plan::disks`].
    pub fn device(&self, disk_devs: &[&str], on: &On) -> String {
        match on {
            On::Partition { disk, number } => {
                crate::inventory::partition_path(disk_devs[*disk], *number)
            }
            On::Md(name) => format!("/dev/md/{name}"),
            On::Lv(name) => format!("/dev/{}/{name}", self.vg.name),
        }
    }

    /// The disks' paths, in order.
    pub fn disk_paths(&self) -> Vec<&str> {
        self.disks.iter().map(|d| d.path.as_str()).collect()
    }

    pub fn mirrored(&self) -> bool {
        !self.arrays.is_empty()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a plan serializes") + "\n"
    }

    /// The plan for a person: what will be destroyed, created and written, then the warnings.
    pub fn describe(&self, show_files: bool) -> String {
        let mut s = String::new();
        let paths = self.disk_paths();
        for (i, d) in self.disks.iter().enumerate() {
            if i > 0 {
                s += "\n";
            }
            let mut ident = vec![human(d.size), format!("{}-byte sectors", d.sector)];
            if let Some(m) = &d.model {
                ident.push(format!("model {m}"));
            }
            if let Some(x) = &d.serial {
                ident.push(format!("serial {x}"));
            }
            s += &format!("Target: {} ({})\n", d.path, ident.join(", "));
            if d.destroys.is_empty() {
                s += "  The disk is blank.\n";
            } else {
                s += "  ERASES everything on it:\n";
                for x in &d.destroys {
                    s += &format!("    - {x}\n");
                }
            }
            s += &format!("\nGPT (disk GUID {}):\n", d.disk_guid);
            s += "   #  name          start sector    end sector   start MiB     end MiB  size        type GUID\n";
            for p in &d.partitions {
                s += &format!(
                    "  {:>2}  {:<12} {:>12}  {:>12}  {:>10}  {:>10}  {:<10}  {}\n",
                    p.number,
                    p.name,
                    p.first_lba,
                    p.last_lba,
                    p.first_lba * d.sector / MIB,
                    (p.last_lba + 1) * d.sector / MIB,
                    human(p.size),
                    p.type_guid
                );
            }
            if self.mirrored() {
                s += &format!("  unused behind the last partition: {}\n", human(d.unused));
            }
        }
        if self.mirrored() {
            s += &format!(
                "\nRAID1 across {} (members as large as the smaller disk less a margin of {}, so that a \
                 replacement up to that much smaller fits):\n",
                paths.join(" and "),
                human(self.mirror_margin)
            );
            for a in &self.arrays {
                let members: Vec<String> =
                    a.members.iter().map(|m| self.device(&paths, m)).collect();
                s += &format!(
                    "  /dev/md/{:<5} {:<10} metadata {}, name {}:{}, UUID {}, data offset {}, on {}\n",
                    a.name,
                    human(a.size),
                    a.metadata,
                    a.homehost,
                    a.name,
                    a.uuid,
                    human(a.data_offset),
                    members.join(", ")
                );
            }
        }
        let v = &self.vg;
        let pv = match &v.pv {
            On::Partition { number, .. } => format!("partition {number}"),
            other => self.device(&paths, other),
        };
        s += &format!(
            "\nLVM: volume group {} on {pv} ({} extents of {}):\n",
            v.name,
            v.extents,
            human(v.extent_size)
        );
        for lv in &v.volumes {
            let fs = self
                .filesystems
                .iter()
                .find(|f| f.on == On::Lv(lv.name.clone()));
            s += &format!(
                "  {:<10} {:>10}  {:<5} {}\n",
                lv.name,
                human(lv.extents * v.extent_size),
                fs.map(|f| format!("{:?}", f.fs).to_lowercase())
                    .unwrap_or_default(),
                fs.and_then(|f| f.mount.clone()).unwrap_or_default()
            );
        }
        s += &format!(
            "  free for guests: {} ({} extents)\n",
            human(v.free_extents * v.extent_size),
            v.free_extents
        );
        s += "\nFilesystems:\n";
        for f in &self.filesystems {
            s += &format!(
                "  {:<24} {:<5} UUID {} label {}{}\n",
                self.device(&paths, &f.on),
                format!("{:?}", f.fs).to_lowercase(),
                f.uuid,
                f.label,
                f.mount
                    .as_ref()
                    .map(|m| format!(" -> {m}"))
                    .unwrap_or_default()
            );
        }
        let b = &self.bootloader;
        let mut boot = Vec::new();
        if b.bios {
            boot.push(format!(
                "BIOS (i386-pc, core image in partition 1 of {})",
                paths.join(" and of ")
            ));
        }
        if b.uefi {
            boot.push(format!(
                "UEFI (x86_64-efi, EFI/debian and the removable path EFI/BOOT/BOOTX64.EFI{}{})",
                if self.mirrored() {
                    " on the ESP of each disk, kept identical by /usr/lib/xenprov/sync-esp"
                } else {
                    ""
                },
                match (b.nvram, self.mirrored()) {
                    (false, _) => "",
                    (true, false) => ", NVRAM boot entry",
                    (true, true) => ", an NVRAM boot entry per disk",
                }
            ));
        }
        s += &format!("\nGRUB: {}\n", boot.join("; "));
        s += &format!(
            "  password: {}\n",
            if b.password {
                "superuser set; menu entries stay bootable without it"
            } else {
                "none"
            }
        );
        s += &format!("  Xen command line:  {}\n", self.xen_cmdline);
        s += &format!("  dom0 command line: {}\n", self.dom0_cmdline);
        s += "\nUsers: root";
        if let Some(a) = &self.users.admin {
            s += &format!(", {} (groups {})", a.name, a.groups.join(","));
        }
        s += "\n";
        if let Some(p) = &self.payload {
            s += &format!(
                "\nPayload: {} ({}, {} unpacked, sha256 {}), Linux {}, Xen {}\n",
                p.file,
                human(p.size),
                human(p.unpacked_size),
                p.sha256,
                p.kernel_version.as_deref().unwrap_or("?"),
                p.xen_version.as_deref().unwrap_or("?")
            );
            for d in &p.debs {
                s += &format!(
                    "  then dpkg installs {} {} ({}, sha256 {})\n",
                    d.package,
                    d.version,
                    human(d.size),
                    d.sha256
                );
            }
        }
        s += "\nFiles written on the target:\n";
        for f in &self.files {
            match &f.content {
                Content::File(body) => {
                    s += &format!("  {} {} {}\n", f.mode, f.owner, f.path);
                    if show_files {
                        for line in body.lines() {
                            s += &format!("      | {line}\n");
                        }
                    }
                }
                Content::Symlink(t) => s += &format!("  link       {} -> {t}\n", f.path),
                Content::Dir => s += &format!("  {} {} {}/\n", f.mode, f.owner, f.path),
            }
        }
        if !self.warnings.is_empty() {
            s += "\nWarnings:\n";
            for w in &self.warnings {
                s += &format!("  ! {w}\n");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("QEMU*", "QEMU HARDDISK"));
        assert!(glob("*DISK", "QEMU HARDDISK"));
        assert!(glob("Samsung*EVO*", "Samsung SSD 870 EVO 1TB"));
        assert!(!glob("QEMU", "QEMU HARDDISK"));
    }

    #[test]
    fn every_serial_port_is_one_xen_knows() {
        let cmdline = |serial: &str| {
            let a = Answer::parse(&format!(
                "[disk]\ntarget = \"/dev/vda\"\n[console]\nserial = \"{serial}\"\nbaud = 38400\n\
                 [system]\nhostname = \"x\"\nroot-password-hash = \"!\"\n"
            ))
            .unwrap();
            xen_cmdline(&a)
                .split(' ')
                .filter(|o| o.starts_with("com") || o.starts_with("console="))
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(cmdline("com1"), "com1=38400,8n1 console=com1,vga");
        assert_eq!(cmdline("com2"), "com2=38400,8n1 console=com2,vga");
        assert_eq!(cmdline("com3"), "com1=38400,8n1,0x3e8,4 console=com1,vga");
        assert_eq!(cmdline("com4"), "com1=38400,8n1,0x2e8,3 console=com1,vga");
        assert_eq!(cmdline("none"), "console=vga");
    }

    #[test]
    fn mount_order_puts_parents_first() {
        let mut m = vec!["/var/lib", "none", "/boot/efi", "/", "/var", "/boot"];
        m.sort_by_key(|x| mount_order(x));
        assert_eq!(m, ["/", "/boot", "/var", "/boot/efi", "/var/lib", "none"]);
    }
}
