//! The answer file, version 1 (`docs/design.md`): the types, their defaults, and the reader
//! that turns TOML into an [`Answer`] or into every problem the file has, each with its position.
//!
//! The serde derives give the JSON Schema and let guided mode save what it asked; the tests check
//! that what serde writes, this reader reads back unchanged.

use std::net::{Ipv4Addr, SocketAddr};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::net::{self, Cidr};
use crate::password;
use crate::reader::{At, Diags, Reader, Table};
use crate::size::{Size, XenSize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Answer {
    /// Answer file format version; only 1 exists.
    #[serde(default = "one")]
    pub version: u32,
    pub disk: DiskSpec,
    #[serde(default)]
    pub boot: Boot,
    #[serde(default)]
    pub lvm: Lvm,
    #[serde(default)]
    pub xen: Xen,
    #[serde(default)]
    pub console: Console,
    #[serde(default)]
    pub grub: Grub,
    #[serde(default)]
    pub network: Network,
    pub system: System,
    #[serde(default)]
    pub repo: Repo,
}

fn one() -> u32 {
    1
}

/// The disks to install on: exactly one of `target`, `targets` and `match`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DiskSpec {
    /// A block device (`/dev/vda`, `/dev/disk/by-id/...`) or a disk image file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The two block devices of a mirror (`raid = "raid1"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// Properties that the disk (or, with `count = 2`, both disks) of the machine must have.
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matcher: Option<DiskMatch>,
    /// `raid1` mirrors /boot and the volume group across two disks; `none` installs on one.
    #[serde(default, skip_serializing_if = "Raid::is_none")]
    pub raid: Raid,
    /// Where mdadm's monitor mails when an array degrades: a local user or an address.
    #[serde(
        default = "DiskSpec::default_raid_mail",
        skip_serializing_if = "DiskSpec::is_root"
    )]
    pub raid_mail: String,
    /// Required to overwrite a disk that holds partitions or signatures.
    #[serde(default)]
    pub wipe: bool,
}

impl DiskSpec {
    fn default_raid_mail() -> String {
        "root".into()
    }
    fn is_root(s: &String) -> bool {
        s == "root"
    }

    /// How many disks the answer installs on.
    pub fn count(&self) -> usize {
        match (&self.target, &self.matcher) {
            (Some(_), _) => 1,
            (None, Some(m)) => m.count as usize,
            (None, None) => self.targets.len(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Raid {
    #[default]
    #[serde(rename = "none")]
    None,
    #[serde(rename = "raid1")]
    Raid1,
}

impl Raid {
    fn is_none(&self) -> bool {
        *self == Raid::None
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DiskMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Exact model string, or a pattern with `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_size: Option<Size>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<Size>,
    /// How many disks must match: 1, or 2 for a mirror.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub count: u32,
}

impl Default for DiskMatch {
    fn default() -> DiskMatch {
        DiskMatch {
            serial: None,
            model: None,
            min_size: None,
            max_size: None,
            count: 1,
        }
    }
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Firmware {
    #[serde(rename = "bios")]
    Bios,
    #[serde(rename = "uefi")]
    Uefi,
    #[serde(rename = "bios+uefi")]
    BiosUefi,
}

impl Firmware {
    pub fn bios(self) -> bool {
        matches!(self, Firmware::Bios | Firmware::BiosUefi)
    }
    pub fn uefi(self) -> bool {
        matches!(self, Firmware::Uefi | Firmware::BiosUefi)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Boot {
    #[serde(default = "Boot::default_firmware")]
    pub firmware: Firmware,
    /// `/boot`, ext4.
    #[serde(default = "Boot::default_boot_size")]
    pub boot_size: Size,
    /// The EFI system partition (FAT32), when UEFI is wanted.
    #[serde(default = "Boot::default_esp_size")]
    pub esp_size: Size,
}

impl Boot {
    fn default_firmware() -> Firmware {
        Firmware::BiosUefi
    }
    fn default_boot_size() -> Size {
        Size::gib(1)
    }
    fn default_esp_size() -> Size {
        Size::mib(512)
    }
}

impl Default for Boot {
    fn default() -> Boot {
        Boot {
            firmware: Boot::default_firmware(),
            boot_size: Boot::default_boot_size(),
            esp_size: Boot::default_esp_size(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Lvm {
    #[serde(default = "Lvm::default_vg")]
    pub vg: String,
    /// The dom0's logical volumes; the rest of the volume group stays free for guests.
    #[serde(default = "Lvm::default_volumes")]
    pub volumes: Vec<Volume>,
}

impl Lvm {
    fn default_vg() -> String {
        "dsk".into()
    }
    pub fn default_volumes() -> Vec<Volume> {
        let v = |name: &str, mount: Option<&str>, fs, size| Volume {
            name: name.into(),
            mount: mount.map(Into::into),
            fs,
            size,
        };
        vec![
            v("root", Some("/"), Fs::Ext4, Size::gib(6)),
            v("var", Some("/var"), Fs::Ext4, Size::gib(2)),
            v("tmp", Some("/tmp"), Fs::Ext4, Size::mib(512)),
            v("home", Some("/home"), Fs::Ext4, Size::mib(512)),
            v("swap", None, Fs::Swap, Size::gib(1)),
        ]
    }
}

impl Default for Lvm {
    fn default() -> Lvm {
        Lvm {
            vg: Lvm::default_vg(),
            volumes: Lvm::default_volumes(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Fs {
    Ext4,
    Swap,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Volume {
    pub name: String,
    /// Where it is mounted; required unless `fs = "swap"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount: Option<String>,
    #[serde(default = "Volume::default_fs")]
    pub fs: Fs,
    pub size: Size,
}

impl Volume {
    fn default_fs() -> Fs {
        Fs::Ext4
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Xen {
    /// dom0's fixed memory: `dom0_mem=X,max:X`.
    #[serde(default = "Xen::default_dom0_mem")]
    pub dom0_mem: XenSize,
    #[serde(default = "Xen::default_vcpus")]
    pub dom0_max_vcpus: u32,
    /// Optional cap on the RAM Xen uses (`mem=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem: Option<XenSize>,
    /// Further hypervisor options, passed through.
    #[serde(default)]
    pub extra: Vec<String>,
}

impl Xen {
    fn default_dom0_mem() -> XenSize {
        "2048M".parse().expect("a valid size")
    }
    fn default_vcpus() -> u32 {
        2
    }
}

impl Default for Xen {
    fn default() -> Xen {
        Xen {
            dom0_mem: Xen::default_dom0_mem(),
            dom0_max_vcpus: Xen::default_vcpus(),
            mem: None,
            extra: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Serial {
    None,
    Com1,
    Com2,
    Com3,
    Com4,
}

impl Serial {
    /// The GRUB `serial --unit` and Linux `ttyS` number.
    pub fn unit(self) -> Option<u8> {
        match self {
            Serial::None => None,
            Serial::Com1 => Some(0),
            Serial::Com2 => Some(1),
            Serial::Com3 => Some(2),
            Serial::Com4 => Some(3),
        }
    }
    /// The UART's I/O port and IRQ: the PC's fixed assignment, which Linux's ttyS0 to ttyS3 use
    /// too, so GRUB, Xen and a Linux kernel all name the same chip.
    pub fn port(self) -> Option<(u16, u8)> {
        match self {
            Serial::None => None,
            Serial::Com1 => Some((0x3f8, 4)),
            Serial::Com2 => Some((0x2f8, 3)),
            Serial::Com3 => Some((0x3e8, 4)),
            Serial::Com4 => Some((0x2e8, 3)),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Serial::None => "none",
            Serial::Com1 => "com1",
            Serial::Com2 => "com2",
            Serial::Com3 => "com3",
            Serial::Com4 => "com4",
        }
    }
}

pub const BAUDS: [u32; 5] = [9600, 19200, 38400, 57600, 115200];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Console {
    #[serde(default = "Console::default_serial")]
    pub serial: Serial,
    #[serde(default = "Console::default_baud")]
    pub baud: u32,
}

impl Console {
    fn default_serial() -> Serial {
        Serial::Com1
    }
    fn default_baud() -> u32 {
        115200
    }
}

impl Default for Console {
    fn default() -> Console {
        Console {
            serial: Console::default_serial(),
            baud: Console::default_baud(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Grub {
    #[serde(default = "Grub::default_timeout")]
    pub timeout: u32,
    /// GRUB superuser for editing entries and the command line; booting stays unrestricted.
    #[serde(default = "Grub::default_user")]
    pub user: String,
    /// `grub.pbkdf2.sha512...`; without it GRUB has no password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
}

impl Grub {
    fn default_timeout() -> u32 {
        5
    }
    fn default_user() -> String {
        "root".into()
    }
}

impl Default for Grub {
    fn default() -> Grub {
        Grub {
            timeout: Grub::default_timeout(),
            user: Grub::default_user(),
            password_hash: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NetMode {
    Dhcp,
    Static,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Network {
    /// `auto` (the first NIC with a link), an interface name, or a MAC address.
    #[serde(default = "Network::default_interface")]
    pub interface: String,
    #[serde(default = "Network::default_mode")]
    pub mode: NetMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Cidr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    #[serde(default)]
    pub dns: Vec<Ipv4Addr>,
    #[serde(default = "Network::default_bridge")]
    pub bridge: String,
}

impl Network {
    fn default_interface() -> String {
        "auto".into()
    }
    fn default_mode() -> NetMode {
        NetMode::Dhcp
    }
    fn default_bridge() -> String {
        "xenbr0".into()
    }
}

impl Default for Network {
    fn default() -> Network {
        Network {
            interface: Network::default_interface(),
            mode: Network::default_mode(),
            address: None,
            gateway: None,
            dns: Vec::new(),
            bridge: Network::default_bridge(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct System {
    pub hostname: String,
    #[serde(default = "System::default_timezone")]
    pub timezone: String,
    /// A crypt(3) hash ($6$ or $y$), or `!` to lock root. Plaintext is refused.
    pub root_password_hash: String,
    /// A user in group `sudo`, with the SSH keys below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_user: Option<String>,
    /// The admin user's password hash; defaults to root's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_password_hash: Option<String>,
    #[serde(default)]
    pub ssh_authorized_keys: Vec<String>,
    #[serde(default)]
    pub permit_root_login: bool,
    /// What the installer does once the install is done: `poweroff` (the default) or `reboot`
    /// (a netbooted host then boots its disk, as the repo server sends it there).
    #[serde(default, skip_serializing_if = "AfterInstall::is_poweroff")]
    pub after_install: AfterInstall,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AfterInstall {
    #[default]
    Poweroff,
    Reboot,
}

impl AfterInstall {
    fn is_poweroff(&self) -> bool {
        *self == AfterInstall::Poweroff
    }
}

impl System {
    fn default_timezone() -> String {
        "UTC".into()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Repo {
    #[serde(default = "Repo::default_enable")]
    pub enable: bool,
    #[serde(default = "Repo::default_listen")]
    pub listen: SocketAddr,
}

impl Repo {
    fn default_enable() -> bool {
        true
    }
    fn default_listen() -> SocketAddr {
        SocketAddr::from(([0, 0, 0, 0], 8080))
    }
}

impl Default for Repo {
    fn default() -> Repo {
        Repo {
            enable: Repo::default_enable(),
            listen: Repo::default_listen(),
        }
    }
}

/// JSON Schema of the answer file, for editors and `xenprov-install schema`.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Answer)).expect("a schema serializes")
}

impl Answer {
    /// Reads an answer file, reporting every problem at once.
    pub fn parse(src: &str) -> Result<Answer, Diags> {
        let r = Reader::new(src);
        let doc = r.parse();
        let root = r.root(&doc);
        let answer = read_answer(&root);
        root.finish();
        r.finish()?;
        Ok(answer.expect("no diagnostics means every required part was read"))
    }

    /// The answer as TOML, in the same format `parse` reads.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("an answer serializes to TOML")
    }
}

/// Reads `key` as a section with `read`, or takes the section's defaults when it is absent.
fn section<T: Default>(
    t: &Table<'_, '_>,
    key: &'static str,
    read: impl FnOnce(&Table<'_, '_>) -> T,
) -> T {
    match t.table(key) {
        Some(s) => {
            let v = read(&s);
            s.finish();
            v
        }
        None => T::default(),
    }
}

fn read_answer(t: &Table<'_, '_>) -> Option<Answer> {
    if let Some(v) = t.int("version")
        && v.value != 1
    {
        t.error(
            "version",
            v.offset,
            format!(
                "version {} is not known; this installer reads version 1",
                v.value
            ),
        );
    }
    let disk = match t.table("disk") {
        Some(s) => {
            let d = read_disk(&s);
            s.finish();
            d
        }
        None => {
            if !t.has("disk") {
                t.reader().report_at(
                    0,
                    "disk",
                    "missing section [disk]: it names the disk to install on (target, targets or match)"
                        .into(),
                );
            }
            None
        }
    };
    let boot = section(t, "boot", read_boot);
    let lvm = section(t, "lvm", read_lvm);
    let xen = section(t, "xen", read_xen);
    let console = section(t, "console", read_console);
    let grub = section(t, "grub", read_grub);
    let network = section(t, "network", read_network);
    let system = match t.table("system") {
        Some(s) => {
            let v = read_system(&s);
            s.finish();
            v
        }
        None => {
            if !t.has("system") {
                t.reader().report_at(
                    0,
                    "system",
                    "missing section [system]: it needs at least hostname and root-password-hash"
                        .into(),
                );
            }
            None
        }
    };
    let repo = section(t, "repo", read_repo);
    Some(Answer {
        version: 1,
        disk: disk?,
        boot,
        lvm,
        xen,
        console,
        grub,
        network,
        system: system?,
        repo,
    })
}

fn disk_path(s: &str) -> Result<String, String> {
    if s.starts_with('/') && !s.ends_with('/') {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not an absolute path; expected a block device such as /dev/vda or a disk image file"
        ))
    }
}

fn read_disk(t: &Table<'_, '_>) -> Option<DiskSpec> {
    let target = t.parsed("target", disk_path);
    let targets = t.array("targets", |it| {
        let a = it.str()?;
        match disk_path(&a.value) {
            Ok(_) => Some(a),
            Err(e) => {
                t.reader().report_at(a.offset, &a.key, e);
                None
            }
        }
    });
    let matcher = t.table("match").map(|m| {
        let serial = m.str("serial").map(|a| a.value);
        let model = m.str("model").map(|a| a.value);
        let min_size = m.parsed("min-size", str::parse::<Size>).map(|a| a.value);
        let max_size = m.parsed("max-size", str::parse::<Size>).map(|a| a.value);
        let count = m.int("count").map(|a| {
            if a.value == 1 || a.value == 2 {
                a.value as u32
            } else {
                m.error(
                    "count",
                    a.offset,
                    format!(
                        "count {} is not 1 or 2: xenprov installs on one disk or mirrors two",
                        a.value
                    ),
                );
                1
            }
        });
        if serial.is_none()
            && model.is_none()
            && min_size.is_none()
            && max_size.is_none()
            && !m.reader().has_errors()
        {
            m.error(
                "",
                m.offset(),
                "an empty match would take any disk; give serial, model, min-size or max-size",
            );
        }
        if let (Some(lo), Some(hi)) = (min_size, max_size)
            && lo > hi
        {
            m.error(
                "max-size",
                m.offset(),
                format!("max-size {hi} is smaller than min-size {lo}"),
            );
        }
        let at = m.offset();
        m.finish();
        (
            DiskMatch {
                serial,
                model,
                min_size,
                max_size,
                count: count.unwrap_or(1),
            },
            at,
        )
    });
    let raid = t.parsed("raid", |s| match s {
        "none" => Ok(Raid::None),
        "raid1" => Ok(Raid::Raid1),
        _ => Err(format!(
            "`{s}` is not a RAID level xenprov builds; expected \"none\" or \"raid1\""
        )),
    });
    let raid_mail = t
        .parsed("raid-mail", |s| {
            let local = !s.is_empty()
                && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            let address = s.split_once('@').is_some_and(|(u, h)| {
                !u.is_empty() && h.contains('.') && !s.contains(char::is_whitespace)
            });
            if local || address {
                Ok(s.to_string())
            } else {
                Err(format!(
                    "`{s}` is neither a local user nor a mail address; expected e.g. root or ops@example.com"
                ))
            }
        })
        .map(|a| a.value)
        .unwrap_or_else(DiskSpec::default_raid_mail);
    let wipe = t.bool("wipe").unwrap_or(false);

    // A path listed twice is one disk, whatever else is wrong.
    if let Some(ts) = &targets {
        for (i, a) in ts.iter().enumerate() {
            if ts[..i].iter().any(|b| b.value == a.value) {
                t.reader().report_at(
                    a.offset,
                    &a.key,
                    format!(
                        "`{}` is listed twice; a mirror needs two different disks",
                        a.value
                    ),
                );
            }
        }
    }
    let given = [target.is_some(), targets.is_some(), matcher.is_some()];
    let given = given.iter().filter(|g| **g).count();
    if given > 1 {
        let at = target
            .as_ref()
            .map(|a| a.offset)
            .or(matcher.as_ref().map(|m| m.1))
            .unwrap_or(t.offset());
        t.error(
            "targets",
            at,
            "give one of target, targets and match, not several",
        );
        return None;
    }
    if given == 0 && !t.has("target") && !t.has("targets") && !t.has("match") {
        t.error(
            "target",
            t.offset(),
            "missing: the disk to install on, as target = \"/dev/...\", targets = [\"/dev/...\", \"/dev/...\"] or match = { serial = \"...\" }",
        );
        return None;
    }
    let count = match (&target, &targets, &matcher) {
        (Some(_), _, _) => Some(1),
        (_, Some(ts), _) => {
            if ts.len() != 2 {
                t.error(
                    "targets",
                    ts.first().map_or(t.offset(), |a| a.offset),
                    format!(
                        "{} disks are listed; targets takes the two disks of a mirror (one disk is target = \"...\")",
                        ts.len()
                    ),
                );
            }
            Some(ts.len())
        }
        (_, _, Some((m, _))) => Some(m.count as usize),
        _ => None,
    };
    let level = raid.as_ref().map(|a| a.value).unwrap_or_default();
    match (count, level) {
        (Some(1), Raid::Raid1) => t.error(
            "raid",
            raid.as_ref().map(|a| a.offset).unwrap_or(t.offset()),
            "raid1 mirrors two disks but one is given; list both as targets = [\"...\", \"...\"] or set match.count = 2",
        ),
        (Some(2), Raid::None) => t.error(
            if targets.is_some() { "targets" } else { "match.count" },
            raid.as_ref().map(|a| a.offset).unwrap_or(t.offset()),
            "two disks are given but raid is none; set raid = \"raid1\" to mirror them",
        ),
        _ => {}
    }
    count?;
    Some(DiskSpec {
        target: target.map(|a| a.value),
        targets: targets
            .unwrap_or_default()
            .into_iter()
            .map(|a| a.value)
            .collect(),
        matcher: matcher.map(|m| m.0),
        raid: level,
        raid_mail,
        wipe,
    })
}

fn read_boot(t: &Table<'_, '_>) -> Boot {
    let d = Boot::default();
    let firmware = t
        .choice(
            "firmware",
            &[
                ("bios", Firmware::Bios),
                ("uefi", Firmware::Uefi),
                ("bios+uefi", Firmware::BiosUefi),
            ],
        )
        .unwrap_or(d.firmware);
    let boot_size = min_size(t, "boot-size", Size::mib(256)).unwrap_or(d.boot_size);
    let esp_size = min_size(t, "esp-size", Size::mib(64)).unwrap_or(d.esp_size);
    Boot {
        firmware,
        boot_size,
        esp_size,
    }
}

/// A size with a floor below which the thing it sizes cannot work.
fn min_size(t: &Table<'_, '_>, key: &'static str, floor: Size) -> Option<Size> {
    t.parsed(key, |s| {
        let v: Size = s.parse()?;
        if v < floor {
            Err(format!("{v} is too small; at least {floor} is needed"))
        } else {
            Ok(v)
        }
    })
    .map(|a| a.value)
}

/// LVM's rules for VG and LV names (lvm(8), "VALID NAMES").
pub fn check_lvm_name(s: &str, what: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("`{s}` is not a valid {what} name: {why}"));
    if s.is_empty() || s.len() > 127 {
        return bad("it must be 1 to 127 characters");
    }
    if s == "." || s == ".." || s.starts_with('-') {
        return bad("it may not be `.`, `..` or start with `-`");
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "+_.-".contains(c))
    {
        return bad("only letters, digits and + _ . - are allowed");
    }
    const RESERVED: [&str; 13] = [
        "_cdata", "_cmeta", "_corig", "_mlog", "_mimage", "_pmspare", "_rimage", "_rmeta",
        "_tdata", "_tmeta", "_vorigin", "_vdata", "_wcorig",
    ];
    if what == "logical volume"
        && (s.starts_with("snapshot")
            || s.starts_with("pvmove")
            || RESERVED.iter().any(|r| s.contains(r)))
    {
        return bad(
            "LVM reserves names starting with snapshot or pvmove and those containing _tdata, _rimage and the like",
        );
    }
    Ok(())
}

fn read_lvm(t: &Table<'_, '_>) -> Lvm {
    let d = Lvm::default();
    let vg = t
        .parsed("vg", |s| {
            check_lvm_name(s, "volume group").map(|_| s.to_string())
        })
        .map(|a| a.value)
        .unwrap_or(d.vg);
    let volumes = t.array("volumes", |it| {
        let v = it.table()?;
        let vol = read_volume(&v);
        v.finish();
        vol
    });
    let volumes = match volumes {
        Some(vs) => {
            check_volumes(t, &vs);
            vs.into_iter().map(ReadVolume::into_volume).collect()
        }
        None => d.volumes,
    };
    Lvm { vg, volumes }
}

fn read_volume(t: &Table<'_, '_>) -> Option<ReadVolume> {
    let name = t.req_str("name", "the logical volume's name");
    let name = name.and_then(|n| match check_lvm_name(&n.value, "logical volume") {
        Ok(()) => Some(n),
        Err(e) => {
            t.error("name", n.offset, e);
            None
        }
    });
    let fs = t.choice("fs", &[("ext4", Fs::Ext4), ("swap", Fs::Swap)]);
    let mount = t.parsed("mount", check_mount);
    let size = if t.has("size") {
        min_size(t, "size", Size::mib(16))
    } else {
        t.error(
            "size",
            t.offset(),
            "missing required key: the volume's size, e.g. size = \"2G\"",
        );
        None
    };
    let fs = fs.unwrap_or(Fs::Ext4);
    match (&mount, fs) {
        (Some(m), Fs::Swap) => t.error(
            "mount",
            m.offset,
            "a swap volume is not mounted; remove mount",
        ),
        (None, Fs::Ext4) if !t.has("mount") => t.error(
            "mount",
            t.offset(),
            "missing: where this ext4 volume is mounted (e.g. mount = \"/var\"), or fs = \"swap\"",
        ),
        _ => {}
    }
    Some(ReadVolume {
        name: name?,
        mount,
        fs,
        size: size?,
    })
}

/// A volume with where its name and mount point are, for the checks across volumes.
struct ReadVolume {
    name: At<String>,
    mount: Option<At<String>>,
    fs: Fs,
    size: Size,
}

impl ReadVolume {
    fn into_volume(self) -> Volume {
        Volume {
            name: self.name.value,
            mount: self.mount.map(|m| m.value),
            fs: self.fs,
            size: self.size,
        }
    }
}

fn check_mount(s: &str) -> Result<String, String> {
    let ok = s.starts_with('/')
        && (s == "/" || !s.ends_with('/'))
        && !s.split('/').any(|c| c == "." || c == "..")
        && !s.contains("//")
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_.-".contains(c));
    if !ok {
        return Err(format!(
            "`{s}` is not a clean absolute path; expected e.g. / or /var/lib/xen"
        ));
    }
    if s == "/boot" || s.starts_with("/boot/") {
        return Err(format!(
            "`{s}` is on the /boot partition, which [boot] sizes; it cannot be a logical volume"
        ));
    }
    if ["/proc", "/sys", "/dev", "/run"]
        .iter()
        .any(|p| s == *p || s.starts_with(&format!("{p}/")))
    {
        return Err(format!(
            "`{s}` is a kernel or runtime filesystem and cannot be a volume"
        ));
    }
    Ok(s.to_string())
}

fn check_volumes(t: &Table<'_, '_>, vs: &[ReadVolume]) {
    let mut seen_names: Vec<&str> = Vec::new();
    let mut seen_mounts: Vec<&str> = Vec::new();
    for v in vs {
        let name = &v.name;
        if seen_names.contains(&name.value.as_str()) {
            t.reader().report_at(
                name.offset,
                &name.key,
                format!("duplicate volume name `{}`", name.value),
            );
        }
        seen_names.push(&name.value);
        if let Some(m) = &v.mount {
            if seen_mounts.contains(&m.value.as_str()) {
                t.reader().report_at(
                    m.offset,
                    &m.key,
                    format!("duplicate mount point `{}`", m.value),
                );
            }
            seen_mounts.push(&m.value);
        }
    }
    if !vs.is_empty() && !seen_mounts.contains(&"/") && !t.reader().has_errors() {
        t.error(
            "volumes",
            t.offset(),
            "no volume is mounted at /; the dom0 needs a root volume",
        );
    }
}

fn read_xen(t: &Table<'_, '_>) -> Xen {
    let d = Xen::default();
    let dom0_mem = t
        .parsed("dom0-mem", |s| {
            let v: XenSize = s.parse()?;
            if v.size < Size::mib(512) {
                Err(format!("{v} is too small; a dom0 needs at least 512M"))
            } else {
                Ok(v)
            }
        })
        .map(|a| a.value)
        .unwrap_or(d.dom0_mem);
    let dom0_max_vcpus = t
        .int("dom0-max-vcpus")
        .and_then(|a| match u32::try_from(a.value) {
            Ok(n) if (1..=512).contains(&n) => Some(n),
            _ => {
                t.error(
                    "dom0-max-vcpus",
                    a.offset,
                    format!("{} is not a vCPU count; expected 1 to 512", a.value),
                );
                None
            }
        })
        .unwrap_or(d.dom0_max_vcpus);
    let mem = t.parsed("mem", str::parse::<XenSize>).map(|a| a.value);
    if let Some(m) = &mem
        && m.size < dom0_mem.size
    {
        t.error(
            "mem",
            t.offset(),
            format!("mem = {m} is less than dom0-mem = {dom0_mem}"),
        );
    }
    let extra = t
        .str_array("extra")
        .map(|items| {
            items
                .into_iter()
                .filter_map(|a| match check_xen_option(&a.value) {
                    Ok(()) => Some(a.value),
                    Err(e) => {
                        t.reader().report_at(a.offset, &a.key, e);
                        None
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Xen {
        dom0_mem,
        dom0_max_vcpus,
        mem,
        extra,
    }
}

/// Options xenprov sets itself from other keys; giving them in `extra` too would be ambiguous.
const OWNED_XEN_OPTIONS: [(&str, &str); 6] = [
    ("dom0_mem", "xen.dom0-mem"),
    ("dom0_max_vcpus", "xen.dom0-max-vcpus"),
    ("mem", "xen.mem"),
    ("console", "console.serial"),
    ("com1", "console.serial and console.baud"),
    ("com2", "console.serial and console.baud"),
];

/// The values Xen reads as false for a boolean option (xen-command-line, "Boolean").
const XEN_FALSE: [&str; 5] = ["no", "off", "false", "disable", "0"];

/// One word of a hypervisor or kernel command line, which GRUB's script reads before Xen or
/// Linux does: nothing GRUB would split, quote, expand or end a command at.
pub fn check_cmdline_word(s: &str, what: &str) -> Result<(), String> {
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.,:=+-/".contains(c))
    {
        return Err(format!(
            "`{s}` is not {what}: one word of letters, digits and _ . , : = + - / (no spaces or quotes)"
        ));
    }
    Ok(())
}

fn check_xen_option(s: &str) -> Result<(), String> {
    check_cmdline_word(s, "a hypervisor option")?;
    let (name, value) = s.split_once('=').map_or((s, None), |(n, v)| (n, Some(v)));
    // Xen negates any option whose name it finds after a `no-` prefix (and with a value too,
    // which its documentation calls undefined), so `no-console` undoes console= as surely as
    // `console=` replaces it.
    let (negated, option) = match name.strip_prefix("no-") {
        Some(o) => (true, o),
        None => (false, name),
    };
    let Some((_, key)) = OWNED_XEN_OPTIONS.iter().find(|(o, _)| *o == option) else {
        return Ok(());
    };
    Err(if negated {
        format!("`{s}` negates `{option}`, which is set from {key}; remove it from extra")
    } else if value.is_some_and(|v| XEN_FALSE.contains(&v)) {
        format!("`{s}` turns `{option}` off, which is set from {key}; remove it from extra")
    } else {
        format!("`{name}` is set from {key}; remove it from extra")
    })
}

fn read_console(t: &Table<'_, '_>) -> Console {
    let d = Console::default();
    let serial = t
        .choice(
            "serial",
            &[
                ("none", Serial::None),
                ("com1", Serial::Com1),
                ("com2", Serial::Com2),
                ("com3", Serial::Com3),
                ("com4", Serial::Com4),
            ],
        )
        .unwrap_or(d.serial);
    let baud = t
        .int("baud")
        .and_then(|a| match u32::try_from(a.value) {
            Ok(b) if BAUDS.contains(&b) => Some(b),
            _ => {
                let list: Vec<String> = BAUDS.iter().map(u32::to_string).collect();
                t.error(
                    "baud",
                    a.offset,
                    format!(
                        "{} is not a supported speed; expected one of {}",
                        a.value,
                        list.join(", ")
                    ),
                );
                None
            }
        })
        .unwrap_or(d.baud);
    Console { serial, baud }
}

fn read_grub(t: &Table<'_, '_>) -> Grub {
    let d = Grub::default();
    let timeout = t
        .int("timeout")
        .and_then(|a| match u32::try_from(a.value) {
            Ok(n) if n <= 600 => Some(n),
            _ => {
                t.error(
                    "timeout",
                    a.offset,
                    format!("{} is not a timeout; expected 0 to 600 seconds", a.value),
                );
                None
            }
        })
        .unwrap_or(d.timeout);
    let user = t
        .parsed("user", |s| {
            if !s.is_empty()
                && s.len() <= 32
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
            {
                Ok(s.to_string())
            } else {
                Err(format!(
                    "`{s}` is not a GRUB user name; expected letters, digits, _ and -"
                ))
            }
        })
        .map(|a| a.value)
        .unwrap_or(d.user);
    let password_hash = t
        .parsed("password-hash", |s| {
            password::check_grub_hash(s).map(|_| s.to_string())
        })
        .map(|a| a.value);
    Grub {
        timeout,
        user,
        password_hash,
    }
}

/// An IPv4 configuration: the host's `[network]` and a guest's share it.
#[derive(Debug, Clone, PartialEq)]
pub struct IpConfig {
    pub mode: NetMode,
    pub address: Option<Cidr>,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
}

/// Reads `mode`, `address`, `gateway` and `dns`: a static address needs its gateway (in its
/// subnet), and `dns` too when `dns_required`; DHCP takes neither address nor gateway.
pub fn read_ip_config(t: &Table<'_, '_>, dns_required: bool) -> IpConfig {
    let mode = t
        .choice(
            "mode",
            &[("dhcp", NetMode::Dhcp), ("static", NetMode::Static)],
        )
        .unwrap_or(NetMode::Dhcp);
    let address = t.parsed("address", str::parse::<Cidr>);
    let gateway = t.parsed("gateway", net::parse_ipv4);
    let dns: Vec<Ipv4Addr> = t
        .str_array("dns")
        .unwrap_or_default()
        .into_iter()
        .filter_map(|a| {
            net::parse_ipv4(&a.value)
                .map_err(|e| t.reader().report_at(a.offset, &a.key, e))
                .ok()
        })
        .collect();
    match mode {
        NetMode::Static => {
            let needs = [
                ("address", "address, e.g. \"192.0.2.10/24\"", true),
                ("gateway", "gateway, e.g. \"192.0.2.1\"", true),
                ("dns", "dns, e.g. [\"192.0.2.53\"]", dns_required),
            ];
            for (key, what, required) in needs {
                if required && !t.has(key) {
                    t.error(
                        key,
                        t.offset(),
                        format!("missing: mode = \"static\" needs {what}"),
                    );
                }
            }
            if let (Some(a), Some(g)) = (&address, &gateway)
                && let Err(e) = net::check_gateway(&a.value, g.value)
            {
                t.error("gateway", g.offset, e);
            }
        }
        NetMode::Dhcp => {
            for (key, at) in [
                ("address", address.as_ref().map(|a| a.offset)),
                ("gateway", gateway.as_ref().map(|a| a.offset)),
            ] {
                if let Some(o) = at {
                    t.error(
                        key,
                        o,
                        "only used with mode = \"static\"; remove it or set mode = \"static\"",
                    );
                }
            }
        }
    }
    IpConfig {
        mode,
        address: address.map(|a| a.value),
        gateway: gateway.map(|a| a.value),
        dns,
    }
}

fn read_network(t: &Table<'_, '_>) -> Network {
    let d = Network::default();
    let interface = t
        .parsed("interface", |s| {
            if s == "auto" || net::check_ifname(s).is_ok() && !s.contains(':') {
                Ok(s.to_string())
            } else {
                net::parse_mac(s).map_err(|_| {
                    format!("`{s}` is not \"auto\", an interface name (e.g. eno1) or a MAC address")
                })
            }
        })
        .map(|a| a.value)
        .unwrap_or(d.interface);
    let ip = read_ip_config(t, false);
    let bridge = t
        .parsed("bridge", |s| net::check_ifname(s).map(|_| s.to_string()))
        .map(|a| a.value)
        .unwrap_or(d.bridge);
    Network {
        interface,
        mode: ip.mode,
        address: ip.address,
        gateway: ip.gateway,
        dns: ip.dns,
        bridge,
    }
}

/// A login name for the admin user: what useradd takes, and not an account Debian has already.
pub fn check_user_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c));
    if !ok {
        return Err(format!(
            "`{s}` is not a valid user name; expected lower-case letters, digits, _ and -, starting with a letter"
        ));
    }
    if ["root", "daemon", "bin", "sys", "nobody", "sshd", "admin-"].contains(&s) {
        return Err(format!("`{s}` is a system account; choose another name"));
    }
    Ok(s.to_string())
}

/// An `authorized_keys` line: a known key type, base64 key data, and an optional comment of
/// characters that are safe inside the quotes of kickstart and preseed scripts.
pub fn check_ssh_key(s: &str) -> Result<(), String> {
    const TYPES: [&str; 8] = [
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
        "ssh-dss",
    ];
    let fields: Vec<&str> = s.split(' ').collect();
    let (Some(kind), Some(blob)) = (fields.first(), fields.get(1)) else {
        return Err("not an SSH public key; expected `TYPE BASE64 [comment]`, e.g. `ssh-ed25519 AAAA... me@host`".into());
    };
    if !TYPES.contains(kind) {
        return Err(format!(
            "`{kind}` is not an SSH key type; expected one of {}",
            TYPES.join(", ")
        ));
    }
    if !blob.starts_with("AAAA")
        || !blob
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c))
    {
        return Err(
            "the key data is not base64 from an SSH public key (it starts with AAAA)".into(),
        );
    }
    let comment = fields[2..].join(" ");
    if let Some(c) = comment
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || " -_.@:+=,/".contains(*c)))
    {
        return Err(format!(
            "the key's comment has `{c}`; a comment may hold letters, digits, spaces and - _ . @ : + = , /"
        ));
    }
    Ok(())
}

fn check_timezone(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && !s.starts_with('/')
        && !s.split('/').any(|c| c.is_empty() || c == "." || c == "..")
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not a time zone name; expected e.g. UTC or Europe/Paris"
        ))
    }
}

fn read_system(t: &Table<'_, '_>) -> Option<System> {
    let hostname = match t.req_str("hostname", "the host's name") {
        Some(h) => match net::check_hostname(&h.value) {
            Ok(()) => Some(h.value),
            Err(e) => {
                t.error("hostname", h.offset, e);
                None
            }
        },
        None => None,
    };
    let timezone = t
        .parsed("timezone", check_timezone)
        .map(|a| a.value)
        .unwrap_or_else(System::default_timezone);
    let hash = |key: &'static str| {
        t.parsed(key, |s| {
            password::check_crypt_hash(s).map(|_| s.to_string())
        })
        .map(|a| a.value)
    };
    if !t.has("root-password-hash") {
        t.error(
            "root-password-hash",
            t.offset(),
            "missing: root's password hash ($6$ or $y$, or \"!\" to lock root)",
        );
    }
    let root_password_hash = hash("root-password-hash");
    let admin_user = t.parsed("admin-user", check_user_name).map(|a| a.value);
    let admin_password_hash = hash("admin-password-hash");
    if admin_password_hash.is_some() && admin_user.is_none() && !t.has("admin-user") {
        t.error(
            "admin-password-hash",
            t.offset(),
            "there is no admin-user for this password",
        );
    }
    let ssh_authorized_keys = t
        .str_array("ssh-authorized-keys")
        .map(|items| {
            items
                .into_iter()
                .filter_map(|a| {
                    check_ssh_key(&a.value)
                        .map_err(|e| t.reader().report_at(a.offset, &a.key, e))
                        .ok()
                        .map(|_| a.value)
                })
                .collect()
        })
        .unwrap_or_default();
    let permit_root_login = t.bool("permit-root-login").unwrap_or(false);
    let after_install = t
        .choice(
            "after-install",
            &[
                ("poweroff", AfterInstall::Poweroff),
                ("reboot", AfterInstall::Reboot),
            ],
        )
        .unwrap_or_default();
    Some(System {
        hostname: hostname?,
        timezone,
        root_password_hash: root_password_hash?,
        admin_user,
        admin_password_hash,
        ssh_authorized_keys,
        permit_root_login,
        after_install,
    })
}

fn read_repo(t: &Table<'_, '_>) -> Repo {
    let d = Repo::default();
    let enable = t.bool("enable").unwrap_or(d.enable);
    let listen = t
        .parsed("listen", |s| {
            s.parse::<SocketAddr>().map_err(|_| {
                format!("`{s}` is not an address:port; expected e.g. 0.0.0.0:8080 or [::]:8080")
            })
        })
        .map(|a| a.value)
        .unwrap_or(d.listen);
    Repo { enable, listen }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const HASH: &str = "$6$rounds=5000$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";

    fn minimal() -> String {
        format!(
            "[disk]\ntarget = \"/dev/vda\"\n[system]\nhostname = \"xen1\"\nroot-password-hash = '{HASH}'\n"
        )
    }

    #[test]
    fn minimal_answer_takes_defaults() {
        let a = Answer::parse(&minimal()).unwrap();
        assert_eq!(a.lvm.vg, "dsk");
        assert_eq!(a.lvm.volumes.len(), 5);
        assert_eq!(a.boot.firmware, Firmware::BiosUefi);
        assert_eq!(a.console.baud, 115200);
        assert!(!a.disk.wipe);
    }

    #[test]
    fn after_install_is_poweroff_or_reboot() {
        assert_eq!(
            Answer::parse(&minimal()).unwrap().system.after_install,
            AfterInstall::Poweroff
        );
        let reboot = format!("{}after-install = \"reboot\"\n", minimal());
        assert_eq!(
            Answer::parse(&reboot).unwrap().system.after_install,
            AfterInstall::Reboot
        );
        let e = Answer::parse(&reboot.replace("\"reboot\"", "\"halt\"")).unwrap_err();
        assert_eq!(e.0[0].key, "system.after-install", "{e}");
        assert!(e.to_string().contains("poweroff"), "{e}");
    }

    #[test]
    fn serde_and_reader_agree() {
        let mut a = Answer::parse(&minimal()).unwrap();
        a.xen.mem = Some("32G".parse().unwrap());
        a.xen.extra = vec!["ucode=scan".into()];
        a.network.mode = NetMode::Static;
        a.network.address = Some("192.0.2.10/24".parse().unwrap());
        a.network.gateway = Some(Ipv4Addr::new(192, 0, 2, 1));
        a.network.dns = vec![Ipv4Addr::new(192, 0, 2, 53)];
        a.system.admin_user = Some("ops".into());
        a.system.after_install = AfterInstall::Reboot;
        a.system.ssh_authorized_keys = vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB me@x".into()];
        a.grub.password_hash = Some("grub.pbkdf2.sha512.10000.AB.CD".into());
        a.disk.target = None;
        a.disk.matcher = Some(DiskMatch {
            serial: Some("S1".into()),
            min_size: Some(Size::gib(20)),
            ..Default::default()
        });
        let text = a.to_toml();
        assert_eq!(Answer::parse(&text).unwrap(), a, "{text}");
        let via_serde: Answer = toml::from_str(&text).unwrap();
        assert_eq!(via_serde, a);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let src = format!(
            "{}[xen]\ndom0_mem = \"2G\"\ndom0-max-vcpus = 0\n[console]\nbaud = 12345\n[lvm]\nvg = \"-x\"\nvolumes = [{{ name = \"root\", mount = \"/\", size = \"4G\" }}, {{ name = \"root\", mount = \"/\", size = \"1G\" }}, {{ name = \"x\", mount = \"/x\", size = \"4GB\" }}]\n",
            minimal().replace(HASH, "hunter2")
        );
        let e = Answer::parse(&src).unwrap_err();
        let keys: Vec<&str> = e.0.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "system.root-password-hash",
                "xen.dom0_mem",
                "xen.dom0-max-vcpus",
                "console.baud",
                "lvm.vg",
                "lvm.volumes[1].name",
                "lvm.volumes[1].mount",
                "lvm.volumes[2].size",
            ],
            "{e}"
        );
        let text = e.to_string();
        assert!(text.contains("did you mean `dom0-mem`?"), "{text}");
        assert!(text.contains("plaintext passwords are refused"), "{text}");
        assert!(text.contains("duplicate volume name `root`"), "{text}");
        assert!(text.contains("duplicate mount point `/`"), "{text}");
    }

    #[test]
    fn hashes_that_are_not_ascii_are_errors_naming_the_key() {
        let src = format!(
            "{}admin-user = \"ops\"\nadmin-password-hash = \"$y$€\"\n",
            minimal().replace(HASH, "$6$€€€")
        );
        let e = Answer::parse(&src).unwrap_err().to_string();
        assert_eq!(
            e,
            "5:22: system.root-password-hash: `$6$€…` is not a well-formed $6$, $5$ or $y$ hash; \
             make one with `xenprov-install hash-password` or `openssl passwd -6`\n\
             7:23: system.admin-password-hash: `$y$€…` is not a well-formed $6$, $5$ or $y$ hash; \
             make one with `xenprov-install hash-password` or `openssl passwd -6`"
        );
    }

    #[test]
    fn extra_cannot_set_or_negate_what_the_answer_renders() {
        let src = format!(
            "{}[xen]\nextra = [\"no-console\", \"no-com1\", \"no-dom0_max_vcpus\", \"com2=off\", \"mem=0\", \"console=none\", \"no-real-mode\", \"ucode=scan\", \"dom0-mem=1G\"]\n",
            minimal()
        );
        let e = Answer::parse(&src).unwrap_err().to_string();
        assert_eq!(
            e,
            "7:10: xen.extra[0]: `no-console` negates `console`, which is set from console.serial; remove it from extra\n\
             7:24: xen.extra[1]: `no-com1` negates `com1`, which is set from console.serial and console.baud; remove it from extra\n\
             7:35: xen.extra[2]: `no-dom0_max_vcpus` negates `dom0_max_vcpus`, which is set from xen.dom0-max-vcpus; remove it from extra\n\
             7:56: xen.extra[3]: `com2=off` turns `com2` off, which is set from console.serial and console.baud; remove it from extra\n\
             7:68: xen.extra[4]: `mem=0` turns `mem` off, which is set from xen.mem; remove it from extra\n\
             7:77: xen.extra[5]: `console` is set from console.serial; remove it from extra"
        );
    }

    #[test]
    fn schema_names_every_section() {
        let s = schema().to_string();
        for k in [
            "dom0-mem",
            "root-password-hash",
            "esp-size",
            "ssh-authorized-keys",
            "bios+uefi",
        ] {
            assert!(s.contains(k), "schema lacks {k}");
        }
    }
}
