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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Plan {
    pub disk: TargetDisk,
    pub partitions: Vec<PlannedPartition>,
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
    pub pv_partition: u32,
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
    Partition(u32),
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
    fn new(answer: &Answer, disk: &Disk) -> Ids {
        let mut h = Sha256::new();
        h.update(b"xenprov plan ids v1\0");
        h.update(answer.to_toml().as_bytes());
        h.update(disk.path.as_bytes());
        h.update(disk.serial.as_deref().unwrap_or("").as_bytes());
        h.update(disk.size.to_le_bytes());
        Ids(h.finalize().into())
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

/// Picks the target disk: the one named, or the only one that matches.
fn choose_disk<'i>(answer: &Answer, inv: &'i Inventory) -> Result<&'i Disk, PlanError> {
    if let Some(t) = &answer.disk.target {
        return inv.disk(t).ok_or_else(|| {
            let list: Vec<String> = inv.disks.iter().map(disk_line).collect();
            PlanError {
                key: "disk.target".into(),
                message: format!(
                    "{t} is not a disk of this machine; its disks are: {}",
                    if list.is_empty() {
                        "none".into()
                    } else {
                        list.join("; ")
                    }
                ),
            }
        });
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
    match chosen.as_slice() {
        [one] => Ok(one),
        found => Err(PlanError {
            key: "disk.match".into(),
            message: format!(
                "{} disks match, exactly one must; {}",
                found.len(),
                if verdicts.is_empty() {
                    "this machine has no disks".to_string()
                } else {
                    format!("the disks are:\n  {}", verdicts.join("\n  "))
                }
            ),
        }),
    }
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

fn check_disk(
    answer: &Answer,
    inv: &Inventory,
    d: &Disk,
    errors: &mut Vec<PlanError>,
) -> Vec<String> {
    let key = if answer.disk.target.is_some() {
        "disk.target"
    } else {
        "disk.match"
    };
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
    // safe when the whole group lives here.
    let mut deactivate = Vec::new();
    for vg in &inv.volume_groups {
        let here = vg.pvs.iter().filter(|pv| d.owns(pv)).count();
        if here == 0 {
            if vg.name == answer.lvm.vg {
                errors.push(PlanError {
                    key: "lvm.vg".into(),
                    message: format!(
                        "a volume group named {} already exists on {}; choose another name or wipe that disk first",
                        vg.name,
                        vg.pvs.join(", ")
                    ),
                });
            }
            continue;
        }
        if here < vg.pvs.len() {
            err(
                errors,
                format!(
                    "{} holds part of volume group {}, which also spans {}; wiping it would break that group",
                    d.path,
                    vg.name,
                    vg.pvs
                        .iter()
                        .filter(|pv| !d.owns(pv))
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
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

    let disk = match choose_disk(answer, inv) {
        Ok(d) => d,
        Err(e) => return Err(Refusal::Unfit(vec![e])),
    };
    let deactivate_vgs = check_disk(answer, inv, disk, &mut errors);
    let sector = u64::from(disk.logical_sector.max(512));
    let ids = Ids::new(answer, disk);
    let layout = layout(answer, disk, sector, &mut errors, &mut warnings);
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

    let partitions = planned_partitions(answer, &layout, sector, &ids);
    let vg = planned_vg(answer, &layout, &partitions);
    let xen_cmdline = xen_cmdline(answer);
    let dom0_cmdline = "console=hvc0".to_string();
    let mut destroys = disk.found();
    destroys.extend(deactivate_vgs.iter().map(|v| format!("volume group {v}")));
    let ctx = host_context(answer, nic, &xen_cmdline, &dom0_cmdline, &filesystems);
    let files = host_files(answer, templates, &ctx)?;
    let fw = answer.boot.firmware;
    let bootloader = Bootloader {
        bios: fw.bios(),
        uefi: fw.uefi(),
        nvram: fw.uefi() && inv.firmware == BootMode::Uefi && disk.kind == DiskKind::Block,
        password: answer.grub.password_hash.is_some(),
    };

    Ok(Plan {
        disk: TargetDisk {
            path: disk.path.clone(),
            kind: disk.kind,
            size: disk.size,
            sector,
            serial: disk.serial.clone(),
            model: disk.model.clone(),
            disk_guid: ids.uuid("disk").to_uppercase(),
            destroys,
            deactivate_vgs,
        },
        partitions,
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

/// The partitions placed on the disk and the extents of the dom0's volumes in the volume group.
struct Layout {
    placed: Vec<Placed>,
    lv_extents: Vec<u64>,
    vg_extents: u64,
    used_extents: u64,
}

/// The partitions the firmware needs (BIOS boot, ESP), /boot, and LVM on the rest; an error when the
/// disk cannot hold them with the dom0's volumes.
fn layout(
    answer: &Answer,
    disk: &Disk,
    sector: u64,
    errors: &mut Vec<PlanError>,
    warnings: &mut Vec<String>,
) -> Layout {
    let fw = answer.boot.firmware;
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
        size: Some(answer.boot.boot_size.bytes()),
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
    let lvm_needed = PE_START + dom0_bytes;
    let fixed: u64 = slots
        .iter()
        .filter_map(|s| s.size)
        .map(|b| b.div_ceil(MIB) * MIB)
        .sum();

    let placed: Vec<Placed> = gpt::place(disk.size, sector, &slots).unwrap_or_default();
    let pv_bytes = placed
        .iter()
        .find(|p| p.role == Role::Lvm)
        .map(|p| p.sectors() * sector)
        .unwrap_or(0);
    let vg_extents = pv_bytes.saturating_sub(PE_START) / EXTENT;
    let used_extents: u64 = lv_extents.iter().sum();
    if placed.is_empty() || vg_extents < used_extents {
        // 1 MiB in front and 1 MiB behind for the GPT and alignment.
        let needed = 2 * MIB + fixed + lvm_needed.div_ceil(MIB) * MIB;
        errors.push(PlanError {
            key: "lvm.volumes".into(),
            message: format!(
                "{} is {} but this layout needs {}: {} of boot partitions and {} for the dom0 volumes; \
                 make the volumes smaller or choose a larger disk",
                disk.path,
                human(disk.size),
                human(needed),
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
    Layout {
        placed,
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

/// The filesystems on the partitions and volumes, with their sizes for the payload check.
fn filesystems(answer: &Answer, layout: &Layout, sector: u64, ids: &Ids) -> Vec<Filesystem> {
    let mut filesystems = Vec::new();
    for p in &layout.placed {
        let size = p.sectors() * sector;
        match p.role {
            Role::Esp => filesystems.push(Filesystem {
                on: On::Partition(p.number),
                fs: FsType::Vfat,
                uuid: ids.fat_id("esp"),
                label: "ESP".into(),
                mount: Some("/boot/efi".into()),
                size,
            }),
            Role::Boot => filesystems.push(Filesystem {
                on: On::Partition(p.number),
                fs: FsType::Ext4,
                uuid: ids.uuid("fs:/boot"),
                label: "boot".into(),
                mount: Some("/boot".into()),
                size,
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
    sector: u64,
    ids: &Ids,
) -> Vec<PlannedPartition> {
    layout
        .placed
        .iter()
        .map(|p| PlannedPartition {
            number: p.number,
            role: p.role,
            name: match p.role {
                Role::Lvm => format!("lvm-{}", answer.lvm.vg),
                r => r.name().into(),
            },
            type_guid: p.role.type_guid().into(),
            guid: ids.uuid(&format!("part:{}", p.role.name())).to_uppercase(),
            first_lba: p.first_lba,
            last_lba: p.last_lba,
            size: p.sectors() * sector,
        })
        .collect()
}

fn planned_vg(answer: &Answer, layout: &Layout, partitions: &[PlannedPartition]) -> PlannedVg {
    PlannedVg {
        name: answer.lvm.vg.clone(),
        pv_partition: partitions
            .iter()
            .find(|p| p.role == Role::Lvm)
            .map(|p| p.number)
            .unwrap_or(0),
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
        fstab: fstab_lines(filesystems, &answer.lvm.vg),
        repo_enabled: answer.repo.enable,
        repo_listen: answer.repo.listen.to_string(),
        repo_port: answer.repo.listen.port(),
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

/// The fstab, in mount order: parents before children.
fn fstab_lines(fss: &[Filesystem], vg: &str) -> Vec<FstabLine> {
    let mut lines: Vec<FstabLine> = fss
        .iter()
        .map(|f| {
            let comment = match &f.on {
                On::Partition(n) => format!("partition {n}"),
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
                    spec: format!("UUID={}-{}", &f.uuid[..4], &f.uuid[4..]),
                    mount: f.mount.clone().unwrap_or_default(),
                    fs: "vfat".into(),
                    options: "umask=0077".into(),
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
                On::Partition(_) if *mount == "/boot" => "boot.boot-size".into(),
                On::Partition(_) => "boot.esp-size".into(),
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
    let mut seen = BTreeSet::new();
    files.retain(|f| seen.insert(f.path.clone()));
    Ok(files)
}

impl Plan {
    /// The device a filesystem is made on, given the device the disk is reached through now
    /// (a loop device for disk images).
    pub fn device(&self, disk_dev: &str, on: &On) -> String {
        match on {
            On::Partition(n) => crate::inventory::partition_path(disk_dev, *n),
            On::Lv(name) => format!("/dev/{}/{name}", self.vg.name),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a plan serializes") + "\n"
    }

    /// The plan for a person: what will be destroyed, created and written, then the warnings.
    pub fn describe(&self, show_files: bool) -> String {
        let mut s = String::new();
        let d = &self.disk;
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
        for p in &self.partitions {
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
        let v = &self.vg;
        s += &format!(
            "\nLVM: volume group {} on partition {} ({} extents of {}):\n",
            v.name,
            v.pv_partition,
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
                self.device(&d.path, &f.on),
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
                d.path
            ));
        }
        if b.uefi {
            boot.push(format!(
                "UEFI (x86_64-efi, EFI/debian and the removable path EFI/BOOT/BOOTX64.EFI{})",
                if b.nvram { ", NVRAM boot entry" } else { "" }
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
