//! Guest definitions (one TOML file per guest) and the OS profiles they name.
//!
//! A definition is read with the same spanned reader as the answer file, so every problem is
//! reported at once with its line and column. What a guest may be depends on its OS profile
//! (`kickstarts/os/ID.toml`): which Xen types its kernel supports, whether it has a balloon
//! driver, how much memory and disk its installer needs. Checks that need the host (free space in
//! the volume group, names and MACs already taken) take a [`Host`] snapshot, so they stay pure.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::answer::{NetMode, check_lvm_name};
use crate::guest_net::{self, ATTACH, Attach, Forward, NAT_BRIDGE, Proto};
use crate::net::{self, Cidr};
use crate::password;
use crate::reader::{At, Diags, Reader, Table};
use crate::render::Templates;
use crate::size::Size;

/// How Xen runs the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestType {
    Pv,
    Pvh,
    Hvm,
}

const GUEST_TYPES: [(&str, GuestType); 3] = [
    ("pv", GuestType::Pv),
    ("pvh", GuestType::Pvh),
    ("hvm", GuestType::Hvm),
];

impl fmt::Display for GuestType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = GUEST_TYPES.iter().find(|(_, t)| t == self).unwrap().0;
        f.write_str(name)
    }
}

impl std::str::FromStr for GuestType {
    type Err = String;
    fn from_str(s: &str) -> Result<GuestType, String> {
        GUEST_TYPES
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, t)| *t)
            .ok_or_else(|| format!("`{s}` is not a guest type; expected pv, pvh or hvm"))
    }
}

/// The installer an OS uses, which decides the answer format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// debian-installer, answered by a preseed.
    Debian,
    /// Anaconda, answered by a kickstart.
    Rhel,
}

impl Family {
    /// The repo server path that serves this family's answer file.
    pub fn answer_route(self) -> &'static str {
        match self {
            Family::Debian => "preseed",
            Family::Rhel => "ks",
        }
    }
}

/// How a guest's system gets onto its disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// The OS's own installer (d-i, Anaconda) in a domain of its own, from a preseed or kickstart.
    Installer,
    /// debootstrap from the dom0 straight into the guest's volume, as xen-tools does: Debian only,
    /// no installer domain, minutes instead of an installer's hour under emulation.
    Debootstrap,
}

const METHODS: [(&str, Method); 2] = [
    ("installer", Method::Installer),
    ("debootstrap", Method::Debootstrap),
];

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(METHODS.iter().find(|(_, m)| m == self).unwrap().0)
    }
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Method, String> {
        METHODS
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, m)| *m)
            .ok_or_else(|| {
                format!("`{s}` is not an install method; expected installer or debootstrap")
            })
    }
}

/// One installable OS, read from `kickstarts/os/ID.toml`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct OsProfile {
    pub id: String,
    pub title: String,
    pub family: Family,
    /// Template of the answer file (preseed or kickstart).
    pub answer: String,
    /// The pykickstart syntax version its kickstart must validate against (`RHEL9`).
    pub ksversion: Option<String>,
    /// The guest types its kernel can run as, and why the others cannot.
    pub types: Vec<GuestType>,
    pub types_why: Option<String>,
    /// Without a balloon driver an HVM guest that starts below `maxmem` crashes (xl.cfg(5)).
    pub balloon: bool,
    pub min_memory: Size,
    pub min_disk: Size,
    /// The install tree, relative to the repo server's root.
    pub tree: String,
    /// The checksum list of the installer's images, relative to the tree: Debian's `SHA256SUMS`
    /// or an Anaconda `.treeinfo`.
    pub installer: String,
    /// Installer kernel and initrd, relative to that list; a `.treeinfo` names its own.
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    /// Release name the installer asks for (Debian suite), if any.
    pub release: Option<String>,
}

const PROFILE_DIR: &str = "kickstarts/os/";

impl OsProfile {
    pub fn parse(id: &str, src: &str) -> Result<OsProfile, Diags> {
        let r = Reader::new(src);
        let doc = r.parse();
        let t = r.root(&doc);
        let title = t.req_str("title", "a human name for the OS");
        let family = t.choice(
            "family",
            &[("debian", Family::Debian), ("rhel", Family::Rhel)],
        );
        if !t.has("family") {
            t.error("family", 0, "missing: debian (preseed) or rhel (kickstart)");
        }
        let answer = t.req_str("answer", "the answer file template");
        let ksversion = t.str("ksversion").map(|a| a.value);
        let types = t.array("types", |it| {
            let a = it.str()?;
            a.value
                .parse::<GuestType>()
                .map_err(|e| r.report_at(a.offset, &a.key, e))
                .ok()
        });
        if !t.has("types") {
            t.error("types", 0, "missing: the guest types this OS can run as");
        }
        let types_why = t.str("types-why").map(|a| a.value);
        let balloon = t.bool("balloon").unwrap_or(true);
        let size = |key| t.parsed(key, str::parse::<Size>).map(|a| a.value);
        let min_memory = size("min-memory").unwrap_or(Size::mib(512));
        let min_disk = size("min-disk").unwrap_or(Size::gib(4));
        let path = |key, what| t.req_str(key, what).map(|a| a.value);
        let tree = path("tree", "the install tree under the repo root");
        let installer = path(
            "installer",
            "the installer's checksum list under the tree (SHA256SUMS or .treeinfo)",
        );
        let rel = |key| t.str(key).map(|a| a.value);
        let (kernel, initrd) = (rel("kernel"), rel("initrd"));
        if let Some(i) = &installer
            && !i.ends_with(".treeinfo")
        {
            for (key, v) in [("kernel", &kernel), ("initrd", &initrd)] {
                if v.is_none() {
                    t.error(
                        key,
                        0,
                        "missing: the installer's file, relative to its SHA256SUMS (only a .treeinfo names its own)",
                    );
                }
            }
        }
        let release = t.str("release").map(|a| a.value);
        t.finish();
        r.finish()?;
        let profile = OsProfile {
            id: id.to_string(),
            title: title.unwrap().value,
            family: family.unwrap(),
            answer: answer.unwrap().value,
            ksversion,
            types: types.unwrap_or_default(),
            types_why,
            balloon,
            min_memory,
            min_disk,
            tree: tree.unwrap(),
            installer: installer.unwrap(),
            kernel,
            initrd,
            release,
        };
        Ok(profile)
    }
}

/// Every OS profile the templates hold: adding `kickstarts/os/NAME.toml` adds an OS.
#[derive(Debug, Clone)]
pub struct Catalog {
    profiles: BTreeMap<String, OsProfile>,
}

impl Catalog {
    pub fn from_templates(t: &Templates) -> Result<Catalog, String> {
        let mut profiles = BTreeMap::new();
        let names: Vec<String> = t
            .names()
            .filter(|n| n.starts_with(PROFILE_DIR) && n.ends_with(".toml"))
            .map(str::to_string)
            .collect();
        for name in names {
            let id = &name[PROFILE_DIR.len()..name.len() - ".toml".len()];
            // Profiles are plain TOML; rendering without variables returns them unchanged.
            let src = t
                .render(&name, &serde_json::json!({}))
                .map_err(|e| e.to_string())?;
            let p = OsProfile::parse(id, &src).map_err(|e| format!("{name}:\n{e}"))?;
            if !t.contains(&p.answer) {
                return Err(format!("{name}: answer template {} is missing", p.answer));
            }
            profiles.insert(id.to_string(), p);
        }
        Ok(Catalog { profiles })
    }

    pub fn get(&self, id: &str) -> Option<&OsProfile> {
        self.profiles.get(id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.profiles.keys().map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = &OsProfile> {
        self.profiles.values()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestNetwork {
    /// Where its vif goes: the uplink's bridge, the dom0's NAT, or routed by the dom0.
    pub attach: Attach,
    /// How the guest configures its interface. A NAT guest uses DHCP, and `address` is what the
    /// dom0's DHCP server reserves for it.
    pub mode: NetMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Cidr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<Ipv4Addr>,
    /// NAT only: ports of the dom0 forwarded to the guest.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub forward: Vec<Forward>,
}

impl Default for GuestNetwork {
    fn default() -> GuestNetwork {
        GuestNetwork {
            attach: Attach::Bridge,
            mode: NetMode::Dhcp,
            address: None,
            gateway: None,
            dns: Vec::new(),
            forward: Vec::new(),
        }
    }
}

/// A guest definition with every default filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Guest {
    pub name: String,
    pub os: String,
    #[serde(rename = "type")]
    pub kind: GuestType,
    pub method: Method,
    pub memory: Size,
    /// At least `memory`; above it only for OSes with a balloon driver.
    pub maxmem: Size,
    pub vcpus: u32,
    /// Physical CPUs its vCPUs may run on, as xl.cfg's `cpus` ("0-3,6"); any when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<String>,
    /// The credit2 scheduler's weight (1 to 65535; Xen's default 256) and cap (percent of one
    /// physical CPU, 0 for none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap: Option<u32>,
    pub disk: Size,
    pub vg: String,
    /// The uplink's bridge: the one a bridged guest joins (or, with `vlan`, whose VLAN it joins),
    /// and the one a routed guest's address is routed from.
    pub bridge: String,
    /// Bridged only: the 802.1Q tag its frames carry on the uplink.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    pub mac: String,
    pub root_password_hash: String,
    pub ssh_authorized_keys: Vec<String>,
    pub packages: Vec<String>,
    pub network: GuestNetwork,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_install: Option<String>,
    pub autostart: bool,
}

/// A guest that already exists on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    pub name: String,
    pub mac: String,
    /// Its address behind the dom0's NAT, and the dom0 ports forwarded to it.
    pub nat_address: Option<Ipv4Addr>,
    pub forward: Vec<Forward>,
}

/// What the host looks like, for the checks a definition alone cannot make.
#[derive(Debug, Clone, Default)]
pub struct Host {
    /// The volume group guests go in unless they say otherwise.
    pub vg: String,
    /// Free space per volume group; `None` when not known (rendering only), which skips the check.
    pub vg_free: Option<BTreeMap<String, Size>>,
    pub guests: Vec<Existing>,
    /// Whether Xen offers hardware-assisted guests (`hvm` in `xl info`'s `virt_caps`), which PVH
    /// and HVM guests need; `None` when not known (rendering only), which skips the check.
    pub hvm: Option<bool>,
    /// The NAT guests' subnet (`nat-subnet` in the guest settings); `None` when not known
    /// (rendering only), which takes the default and skips the checks against it.
    pub nat_subnet: Option<Cidr>,
    /// TCP ports of the dom0 that a forward may not take (its SSH, the repo server).
    pub reserved_ports: Vec<u16>,
}

pub const DEFAULT_BRIDGE: &str = "xenbr0";

/// Below this a Debian kernel on Xen runs out of memory in its initramfs.
pub const MIN_BOOTED_MEMORY: Size = Size::mib(256);

/// A MAC in Xen's OUI that stays the same for a name, so a re-created guest keeps its DHCP lease.
pub fn derived_mac(name: &str) -> String {
    let h = Sha256::digest(name.as_bytes());
    // libxl clears the top bit of the fourth byte in the MACs it makes; do the same.
    format!("00:16:3e:{:02x}:{:02x}:{:02x}", h[0] & 0x7f, h[1], h[2])
}

/// A guest name is its Xen domain name, its host name and part of its LV name: one DNS label.
pub fn check_guest_name(s: &str) -> Result<(), String> {
    if s.contains('.') {
        return Err(format!(
            "`{s}` is not a guest name: a single label without dots, e.g. web1"
        ));
    }
    net::check_hostname(s)?;
    check_lvm_name(&format!("{s}-disk"), "logical volume")
}

/// Keys and package names are put into kickstarts and preseeds verbatim; refuse what would break
/// out of the line or the quoting they are placed in.
fn check_word(s: &str, what: &str, extra: &str) -> Result<(), String> {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
    {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not {what}: letters, digits and {} only",
            extra
                .chars()
                .map(|c| format!("'{c}'"))
                .collect::<Vec<_>>()
                .join(" ")
        ))
    }
}

/// A post-install script goes verbatim between `%post` and `%end` in a kickstart (and, one
/// line made of it, into a preseed's late_command). pykickstart ends the section at any line
/// that starts with `%` once leading white space is stripped, splitting the file as Python's
/// `str.splitlines()` does; the reader refuses every line break but `\n` already, and this
/// check holds under all of them regardless. Rust's `trim_start` strips at least what
/// Python's `lstrip` does among the characters the reader lets through.
fn check_post_install(s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err("an empty script; remove the key instead".into());
    }
    match s
        .split(crate::text::is_line_break)
        .position(|l| l.trim_start().starts_with('%'))
    {
        Some(i) => Err(format!(
            "line {} starts with %, which would end the kickstart section the script runs in",
            i + 1
        )),
        None => Ok(()),
    }
}

/// A package name (or `@group`, `@^environment` in a kickstart), one word of what apt and dnf
/// accept.
pub fn check_package(s: &str) -> Result<(), String> {
    check_word(s, "a package name", "-_.+:@^")
}

impl Guest {
    /// Reads a definition; with `host`, also refuses what cannot work on that host.
    pub fn parse(src: &str, catalog: &Catalog, host: &Host) -> Result<Guest, Diags> {
        let r = Reader::new(src);
        let doc = r.parse();
        let root = r.root(&doc);
        let guest = read_guest(&root, catalog, host);
        root.finish();
        r.finish()?;
        Ok(guest.expect("no diagnostics means every required key was read"))
    }

    /// The definition as TOML, in the format `parse` reads.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a guest serializes to TOML")
    }

    pub fn lv_name(&self) -> String {
        format!("{}-disk", self.name)
    }

    pub fn disk_path(&self) -> String {
        format!("/dev/{}/{}", self.vg, self.lv_name())
    }

    /// The bridge its vif joins; a routed guest's vif joins none.
    pub fn vif_bridge(&self) -> Option<String> {
        match (self.network.attach, self.vlan) {
            (Attach::Nat, _) => Some(NAT_BRIDGE.to_string()),
            (Attach::Routed, _) => None,
            (Attach::Bridge, Some(v)) => Some(guest_net::vlan_bridge(&self.bridge, v)),
            (Attach::Bridge, None) => Some(self.bridge.clone()),
        }
    }

    /// The bridge on which the dom0 has the address the guest reaches it at: the NAT bridge for
    /// a NAT guest, else the uplink's (a VLAN guest's packets to it go through the VLAN's router).
    pub fn dom0_bridge(&self) -> &str {
        match self.network.attach {
            Attach::Nat => NAT_BRIDGE,
            _ => &self.bridge,
        }
    }

    /// The vif of its xl config: the bridge it joins, or vif-route with its address.
    pub fn vif(&self) -> String {
        match (self.vif_bridge(), self.network.address) {
            (Some(b), _) => format!("mac={}, bridge={b}", self.mac),
            (None, Some(a)) => format!(
                "mac={}, script=vif-route, ip={}, gatewaydev={}",
                self.mac, a.addr, self.bridge
            ),
            (None, None) => unreachable!("parse gives a routed guest its address"),
        }
    }
}

fn read_guest(t: &Table<'_, '_>, catalog: &Catalog, host: &Host) -> Option<Guest> {
    let name = read_name(t, host);
    let profile = read_profile(t, catalog);
    let kind = read_kind(t, profile, host);
    let method = read_method(t, profile);
    let (memory, maxmem) = read_memory(t, profile, method);
    let vcpus = match t.int("vcpus") {
        Some(a) if (1..=128).contains(&a.value) => Some(a.value as u32),
        Some(a) => {
            t.error("vcpus", a.offset, format!("{} is not 1 to 128", a.value));
            None
        }
        None => Some(1),
    };
    let cpus = t
        .parsed("cpus", |s| check_cpu_list(s).map(|()| s.to_string()))
        .map(|a| a.value);
    let weight = read_bounded(
        t,
        "weight",
        1,
        65535,
        "the credit2 weight (Xen's default 256)",
    );
    let cap = read_bounded(
        t,
        "cap",
        0,
        12800,
        "percent of one physical CPU, 0 for no cap",
    );
    let (disk, vg) = read_disk(t, profile, host);
    let bridge = t
        .parsed("bridge", |s| net::check_ifname(s).map(|_| s.to_string()))
        .map(|a| a.value)
        .unwrap_or_else(|| DEFAULT_BRIDGE.to_string());
    let vlan =
        read_bounded(t, "vlan", 1, 4094, "an 802.1Q VLAN id of the bridged mode").map(|v| v as u16);
    let mac = read_mac(t, name.as_deref(), host);

    if !t.has("root-password-hash") {
        t.error(
            "root-password-hash",
            t.offset(),
            "missing: root's password hash ($6$ or $y$, or \"!\" to lock root)",
        );
    }
    let root_password_hash = t
        .parsed("root-password-hash", |s| {
            password::check_crypt_hash(s).map(|_| s.to_string())
        })
        .map(|a| a.value);
    let ssh_authorized_keys = read_words(t, "ssh-authorized-keys", &crate::answer::check_ssh_key);
    let packages = read_words(t, "packages", &check_package);

    let network = match t.table("network") {
        Some(n) => {
            let v = read_network(&n, host);
            n.finish();
            v
        }
        None => Some(GuestNetwork::default()),
    };
    let vlan_at = t.int("vlan").map_or(t.offset(), |a| a.offset);
    if let (Some(v), Some(n)) = (vlan, &network)
        && n.attach != Attach::Bridge
    {
        t.error(
            "vlan",
            vlan_at,
            format!(
                "vlan = {v} is for the bridged mode: a {} guest's packets reach the uplink from the dom0's own address; remove vlan or set network.attach = \"bridge\"",
                n.attach.name()
            ),
        );
    }
    if let Some(v) = vlan {
        let vb = guest_net::vlan_bridge(&bridge, v);
        if let Err(e) = net::check_ifname(&vb) {
            t.error(
                "vlan",
                vlan_at,
                format!("its bridge {vb} cannot be made: {e}"),
            );
        }
    }
    let post_install = t.text("post-install").and_then(|a| {
        check_post_install(&a.value)
            .map_err(|e| t.error("post-install", a.offset, e))
            .ok()
            .map(|()| a.value)
    });
    let autostart = t.bool("autostart").unwrap_or(false);

    Some(Guest {
        name: name?,
        os: profile?.id.clone(),
        kind: kind?,
        method: method?,
        memory: memory?,
        maxmem: maxmem?,
        vcpus: vcpus?,
        cpus,
        weight,
        cap,
        disk: disk?.value,
        vg,
        bridge,
        vlan,
        mac: mac?,
        root_password_hash: root_password_hash?,
        ssh_authorized_keys,
        packages,
        network: network?,
        post_install,
        autostart,
    })
}

/// `name`: a valid domain and host name that no guest of this host has.
fn read_name(t: &Table<'_, '_>, host: &Host) -> Option<String> {
    let name = t.req_str("name", "the guest's name (Xen domain and host name)");
    name.and_then(|a| {
        check_guest_name(&a.value)
            .map_err(|e| t.error("name", a.offset, e))
            .ok()?;
        if host.guests.iter().any(|g| g.name == a.value) {
            t.error(
                "name",
                a.offset,
                format!("a guest named `{}` already exists on this host", a.value),
            );
            return None;
        }
        Some(a.value)
    })
}

/// `os`: a profile of the catalog.
fn read_profile<'c>(t: &Table<'_, '_>, catalog: &'c Catalog) -> Option<&'c OsProfile> {
    let os = t.req_str("os", "the OS profile, e.g. debian12");
    os.and_then(|a| match catalog.get(&a.value) {
        Some(p) => Some(p),
        None => {
            let ids: Vec<&str> = catalog.ids().collect();
            let hint = crate::reader::suggest(&a.value, &ids)
                .map(|s| format!("did you mean `{s}`? "))
                .unwrap_or_default();
            t.error(
                "os",
                a.offset,
                format!(
                    "`{}` is not a known OS; {hint}known: {}",
                    a.value,
                    ids.join(", ")
                ),
            );
            None
        }
    })
}

/// `type`: one the profile allows and this host's Xen can build.
fn read_kind(t: &Table<'_, '_>, profile: Option<&OsProfile>, host: &Host) -> Option<GuestType> {
    if !t.has("type") {
        t.error("type", t.offset(), "missing: pv, pvh or hvm");
    }
    let kind = t.parsed("type", str::parse::<GuestType>);
    match (kind, profile) {
        (Some(k), Some(p)) if !p.types.contains(&k.value) => {
            let allowed: Vec<String> = p.types.iter().map(|t| format!("\"{t}\"")).collect();
            let why = p
                .types_why
                .as_deref()
                .map(|w| format!(": {w}"))
                .unwrap_or_default();
            t.error(
                "type",
                k.offset,
                format!(
                    "{} cannot run as {}{why}; use type = {}",
                    p.title,
                    k.value,
                    allowed.join(" or ")
                ),
            );
            None
        }
        (Some(k), _) if k.value != GuestType::Pv && host.hvm == Some(false) => {
            t.error(
                "type",
                k.offset,
                format!(
                    "this host's Xen cannot run {} guests: `xl info` lacks hvm, or both hap and shadow, in virt_caps (no VT-x/AMD-V with EPT/NPT, or it is off in the firmware); use type = \"pv\"",
                    k.value
                ),
            );
            None
        }
        (k, _) => k.map(|k| k.value),
    }
}

/// A list of physical CPUs as xl.cfg's `cpus` takes it: numbers and ranges, comma-separated.
pub fn check_cpu_list(s: &str) -> Result<(), String> {
    let number = |n: &str| !n.is_empty() && n.len() <= 4 && n.bytes().all(|b| b.is_ascii_digit());
    let ok = !s.is_empty()
        && s.split(',').all(|part| match part.split_once('-') {
            Some((a, b)) => {
                number(a) && number(b) && a.parse::<u32>().ok() <= b.parse::<u32>().ok()
            }
            None => number(part),
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a list of physical CPUs; expected numbers and ranges such as \"0-3,6\""
        ))
    }
}

/// An optional integer key within `lo..=hi`.
fn read_bounded(t: &Table<'_, '_>, key: &'static str, lo: i64, hi: i64, what: &str) -> Option<u32> {
    match t.int(key) {
        Some(a) if (lo..=hi).contains(&a.value) => Some(a.value as u32),
        Some(a) => {
            t.error(
                key,
                a.offset,
                format!("{} is not {lo} to {hi}: {what}", a.value),
            );
            None
        }
        None => None,
    }
}

/// `method` (default: installer); debootstrap only for Debian, whose suite the profile names.
fn read_method(t: &Table<'_, '_>, profile: Option<&OsProfile>) -> Option<Method> {
    let m = t.parsed("method", str::parse::<Method>);
    match (m, profile) {
        (None, _) if t.has("method") => None,
        (None, _) => Some(Method::Installer),
        (Some(m), Some(p))
            if m.value == Method::Debootstrap
                && (p.family != Family::Debian || p.release.is_none()) =>
        {
            t.error(
                "method",
                m.offset,
                format!(
                    "debootstrap installs Debian; {} is installed by its own installer: method = \"installer\"",
                    p.title
                ),
            );
            None
        }
        (Some(m), _) => Some(m.value),
    }
}

/// A size, refused below the profile's minimum (with the reason it gives).
fn read_size(t: &Table<'_, '_>, key: &'static str, min: Option<(Size, &str)>) -> Option<At<Size>> {
    let a = t.parsed(key, str::parse::<Size>)?;
    match min {
        Some((m, why)) if a.value < m => {
            t.error(
                key,
                a.offset,
                format!("{} is less than the {m} {why}", a.value),
            );
            None
        }
        _ => Some(a),
    }
}

/// `memory`, in whole MiB, and `maxmem` (default: memory), which only a guest with a balloon driver
/// may set higher. The profile's minimum is its installer's; a debootstrapped guest boots its own
/// kernel straight away, and needs only what Linux on Xen needs.
fn read_memory(
    t: &Table<'_, '_>,
    profile: Option<&OsProfile>,
    method: Option<Method>,
) -> (Option<Size>, Option<Size>) {
    if !t.has("memory") {
        t.error("memory", t.offset(), "missing: e.g. memory = \"1G\"");
    }
    let min = match method {
        Some(Method::Debootstrap) => Some((MIN_BOOTED_MEMORY, "Debian needs to boot on Xen")),
        _ => profile.map(|p| (p.min_memory, "its installer needs")),
    };
    let memory = read_size(t, "memory", min).map(|a| a.value);
    if let Some(m) = memory
        && m.bytes() % crate::size::MIB != 0
    {
        t.error("memory", t.offset(), "xl counts memory in whole MiB");
    }
    let maxmem = match (t.parsed("maxmem", str::parse::<Size>), memory) {
        (Some(a), Some(m)) if a.value < m => {
            t.error(
                "maxmem",
                a.offset,
                format!("{} is less than memory = {m}", a.value),
            );
            None
        }
        (Some(a), Some(m)) if a.value > m && profile.is_some_and(|p| !p.balloon) => {
            t.error(
                "maxmem",
                a.offset,
                format!(
                    "{} has no balloon driver, and a guest started below maxmem without one crashes; remove maxmem or set it to {m}",
                    profile.unwrap().title
                ),
            );
            None
        }
        (Some(a), _) => Some(a.value),
        (None, m) => m,
    };
    (memory, maxmem)
}

/// `disk` and `vg` (default: the host's), checked against the volume group's free space.
fn read_disk(
    t: &Table<'_, '_>,
    profile: Option<&OsProfile>,
    host: &Host,
) -> (Option<At<Size>>, String) {
    if !t.has("disk") {
        t.error(
            "disk",
            t.offset(),
            "missing: the size of its disk, e.g. disk = \"20G\"",
        );
    }
    let disk = read_size(t, "disk", profile.map(|p| (p.min_disk, "the OS needs")));

    let vg = t
        .parsed("vg", |s| {
            check_lvm_name(s, "volume group").map(|_| s.to_string())
        })
        .map(|a| a.value)
        .unwrap_or_else(|| host.vg.clone());
    if let (Some(d), Some(free)) = (&disk, &host.vg_free) {
        match free.get(&vg) {
            None => t.error(
                "vg",
                d.offset,
                format!("there is no volume group `{vg}` on this host"),
            ),
            Some(f) if d.value > *f => t.error(
                "disk",
                d.offset,
                format!(
                    "{} does not fit: volume group `{vg}` has {} free",
                    d.value,
                    crate::size::human(f.bytes())
                ),
            ),
            Some(_) => {}
        }
    }
    (disk, vg)
}

/// `mac` (default: derived from the name), which no other guest of this host has.
fn read_mac(t: &Table<'_, '_>, name: Option<&str>, host: &Host) -> Option<String> {
    let mac = match t.parsed("mac", net::parse_mac) {
        Some(a) => Some((a.value, a.offset)),
        None if t.has("mac") => None,
        None => name.map(|n| (derived_mac(n), t.offset())),
    };
    mac.and_then(|(m, at)| match host.guests.iter().find(|g| g.mac == m) {
        Some(g) => {
            t.error(
                "mac",
                at,
                format!(
                    "MAC {m} is already used by guest `{}`; set another mac",
                    g.name
                ),
            );
            None
        }
        None => Some(m),
    })
}

/// A list of strings, each held to `check`; the bad ones are reported and left out.
fn read_words(
    t: &Table<'_, '_>,
    key: &'static str,
    check: &dyn Fn(&str) -> Result<(), String>,
) -> Vec<String> {
    t.str_array(key)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|a| {
            check(&a.value)
                .map_err(|e| t.reader().report_at(a.offset, &a.key, e))
                .ok()
                .map(|_| a.value)
        })
        .collect()
}

/// `[network]`: where the vif goes (`attach`), then the guest's address as that mode allows.
fn read_network(t: &Table<'_, '_>, host: &Host) -> Option<GuestNetwork> {
    let attach = t.choice("attach", &ATTACH);
    if attach.is_none() && t.has("attach") {
        return None;
    }
    let attach = attach.unwrap_or_default();
    let forward = read_forwards(t, attach, host);
    if attach == Attach::Nat {
        return read_nat(t, host).map(|address| GuestNetwork {
            attach,
            address: Some(address),
            forward,
            ..GuestNetwork::default()
        });
    }
    let ip = crate::answer::read_ip_config(t, true);
    if attach == Attach::Routed && ip.mode != NetMode::Static {
        t.error(
            "mode",
            t.str("mode").map_or(t.offset(), |a| a.offset),
            "attach = \"routed\" needs mode = \"static\": the dom0 routes one address it must know, with the dom0's own address on the uplink as the gateway",
        );
    }
    Some(GuestNetwork {
        attach,
        mode: ip.mode,
        address: ip.address,
        gateway: ip.gateway,
        dns: ip.dns,
        forward,
    })
}

/// A NAT guest takes its address by DHCP from the dom0; `address` (given, or chosen here as the
/// lowest free one of the NAT subnet) is the reservation, written into its definition.
fn read_nat(t: &Table<'_, '_>, host: &Host) -> Option<Cidr> {
    let at = |key: &'static str| t.str(key).map_or(t.offset(), |a| a.offset);
    for key in ["gateway", "dns"] {
        if t.has(key) {
            t.error(
                key,
                if key == "dns" { t.offset() } else { at(key) },
                "a NAT guest's gateway and name server are the dom0's address on the NAT bridge, given by its DHCP server; remove it",
            );
        }
    }
    if let Some(m) = t.choice(
        "mode",
        &[("dhcp", NetMode::Dhcp), ("static", NetMode::Static)],
    ) && m != NetMode::Dhcp
    {
        t.error(
            "mode",
            at("mode"),
            "a NAT guest takes its address by DHCP (`address` is its reservation); remove mode or set mode = \"dhcp\"",
        );
    }
    let subnet = host.nat_subnet.unwrap_or(guest_net::DEFAULT_NAT_SUBNET);
    // The host's other guests (a guest of the same name is refused by `read_name`).
    let reserved: Vec<(Ipv4Addr, &str)> = host
        .guests
        .iter()
        .filter_map(|g| Some((g.nat_address?, g.name.as_str())))
        .collect();
    match t.parsed("address", str::parse::<Cidr>) {
        Some(a) => {
            let ip = a.value.addr;
            let known = host.nat_subnet.is_some();
            let problem = if known && a.value.prefix != subnet.prefix {
                Some(format!(
                    "{} has not the NAT subnet's prefix /{} ({subnet})",
                    a.value, subnet.prefix
                ))
            } else if known {
                guest_net::check_nat_address(&subnet, ip).err()
            } else {
                None
            };
            let problem = problem.or_else(|| {
                reserved.iter().find(|(r, _)| *r == ip).map(|(_, g)| {
                    format!("{ip} is reserved for guest `{g}`; remove address to get a free one")
                })
            });
            match problem {
                Some(p) => {
                    t.error("address", a.offset, p);
                    None
                }
                None => Some(a.value),
            }
        }
        None if t.has("address") => None,
        None => match guest_net::free_nat_address(
            &subnet,
            &reserved.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
        ) {
            Some(addr) => Some(Cidr {
                addr,
                prefix: subnet.prefix,
            }),
            None => {
                t.error(
                    "attach",
                    t.offset(),
                    format!("the NAT subnet {subnet} has no free address; widen nat-subnet in the host's guest settings"),
                );
                None
            }
        },
    }
}

/// `forward`: NAT only; each dom0 port once on the host, and none the dom0 needs itself.
fn read_forwards(t: &Table<'_, '_>, attach: Attach, host: &Host) -> Vec<Forward> {
    let items = t.str_array("forward").unwrap_or_default();
    if attach != Attach::Nat {
        if let Some(a) = items.first() {
            t.error(
                "forward",
                a.offset,
                "port forwards are for attach = \"nat\"; a bridged or routed guest is reached at its own address",
            );
        }
        return Vec::new();
    }
    let mut out: Vec<Forward> = Vec::new();
    for a in items {
        let f = match a.value.parse::<Forward>() {
            Ok(f) => f,
            Err(e) => {
                t.reader().report_at(a.offset, &a.key, e);
                continue;
            }
        };
        let clash = |o: &Forward| o.proto == f.proto && o.host == f.host;
        let problem = if out.iter().any(clash) {
            Some(format!(
                "{} port {} is forwarded twice",
                f.proto.name(),
                f.host
            ))
        } else if f.proto == Proto::Tcp && host.reserved_ports.contains(&f.host) {
            Some(format!(
                "tcp port {} is the dom0's own (its SSH or the repo server)",
                f.host
            ))
        } else {
            host.guests
                .iter()
                .find(|g| g.forward.iter().any(clash))
                .map(|g| {
                    format!(
                        "{} port {} is already forwarded to guest `{}`",
                        f.proto.name(),
                        f.host,
                        g.name
                    )
                })
        };
        match problem {
            Some(p) => t.reader().report_at(a.offset, &a.key, p),
            None => out.push(f),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";

    fn catalog() -> Catalog {
        Catalog::from_templates(&Templates::builtin()).unwrap()
    }

    fn host() -> Host {
        Host {
            vg: "dsk".into(),
            vg_free: Some(BTreeMap::from([("dsk".to_string(), Size::gib(30))])),
            guests: vec![Existing {
                name: "old".into(),
                mac: "00:16:3e:00:00:01".into(),
                nat_address: Some(Ipv4Addr::new(10, 213, 0, 2)),
                forward: vec!["2222:22".parse().unwrap()],
            }],
            hvm: Some(true),
            nat_subnet: Some(crate::guest_net::DEFAULT_NAT_SUBNET),
            reserved_ports: vec![22, 8080],
        }
    }

    #[test]
    fn nat_guests_get_the_next_free_address_and_keep_it() {
        let g = Guest::parse(
            &def("[network]\nattach = \"nat\"\nforward = [\"8443:443\"]\n"),
            &catalog(),
            &host(),
        )
        .unwrap();
        assert_eq!(g.network.address.unwrap().to_string(), "10.213.0.3/24");
        assert_eq!(g.vif(), format!("mac={}, bridge=xpnat0", g.mac));
        assert_eq!(g.dom0_bridge(), "xpnat0");
        // Written into the registry's copy, the address stays when other guests come and go.
        let again = Guest::parse(&g.to_toml(), &catalog(), &Host::default()).unwrap();
        assert_eq!(again, g);
    }

    #[test]
    fn network_modes_refuse_what_they_cannot_do() {
        let refused = |extra: &str| {
            Guest::parse(&def(extra), &catalog(), &host())
                .unwrap_err()
                .to_string()
        };
        let e = refused(
            "[network]\nattach = \"nat\"\nforward = [\"2222:22\", \"22:22\", \"9000:1\", \"9000:2\", \"x\"]\naddress = \"10.213.0.2/24\"\n",
        );
        for want in [
            "tcp port 2222 is already forwarded to guest `old`",
            "tcp port 22 is the dom0's own",
            "tcp port 9000 is forwarded twice",
            "`x` is not a port forward",
            "10.213.0.2 is reserved for guest `old`",
        ] {
            assert!(e.contains(want), "{want}: {e}");
        }
        let e =
            refused("[network]\nattach = \"nat\"\naddress = \"10.9.0.5/24\"\nmode = \"static\"\n");
        assert!(
            e.contains("10.9.0.5 is not a host address of the NAT subnet 10.213.0.0/24"),
            "{e}"
        );
        assert!(e.contains("a NAT guest takes its address by DHCP"), "{e}");
        let e = refused("vlan = 7\n[network]\nattach = \"nat\"\n");
        assert!(e.contains("vlan = 7 is for the bridged mode"), "{e}");
        let e = refused("vlan = 4095\n");
        assert!(e.contains("4095 is not 1 to 4094"), "{e}");
        let e = refused("bridge = \"uplink-bridge0\"\nvlan = 4000\n");
        assert!(
            e.contains("its bridge uplink-bridge0v4000 cannot be made"),
            "{e}"
        );
        let e = refused("[network]\nattach = \"routed\"\n");
        assert!(
            e.contains("attach = \"routed\" needs mode = \"static\""),
            "{e}"
        );
        let e = refused("[network]\nforward = [\"80:80\"]\n");
        assert!(e.contains("port forwards are for attach = \"nat\""), "{e}");
        let e = refused("[network]\nattach = \"tunnel\"\n");
        assert!(
            e.contains("expected one of \"bridge\", \"nat\", \"routed\""),
            "{e}"
        );
    }

    #[test]
    fn vlan_and_routed_guests_have_their_vifs() {
        let g = Guest::parse(&def("vlan = 42\n"), &catalog(), &host()).unwrap();
        assert_eq!(g.vif(), format!("mac={}, bridge=xenbr0v42", g.mac));
        let g = Guest::parse(
            &def("[network]\nattach = \"routed\"\nmode = \"static\"\naddress = \"192.0.2.50/24\"\ngateway = \"192.0.2.10\"\ndns = [\"192.0.2.53\"]\n"),
            &catalog(),
            &host(),
        )
        .unwrap();
        assert_eq!(
            g.vif(),
            format!(
                "mac={}, script=vif-route, ip=192.0.2.50, gatewaydev=xenbr0",
                g.mac
            )
        );
        assert_eq!(g.vif_bridge(), None);
        assert_eq!(g.dom0_bridge(), "xenbr0");
    }

    #[test]
    fn pvh_and_hvm_are_refused_where_xen_has_no_hvm() {
        let h = Host {
            hvm: Some(false),
            ..host()
        };
        let e = Guest::parse(&def(""), &catalog(), &h)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("type: this host's Xen cannot run pvh guests: `xl info` lacks hvm"),
            "{e}"
        );
        let pv = def("").replace("type = \"pvh\"", "type = \"pv\"");
        assert!(Guest::parse(&pv, &catalog(), &h).is_ok());
    }

    fn def(extra: &str) -> String {
        format!(
            "name = \"web1\"\nos = \"debian12\"\ntype = \"pvh\"\nmemory = \"1G\"\ndisk = \"10G\"\nroot-password-hash = '{HASH}'\n{extra}"
        )
    }

    #[test]
    fn debootstrap_is_for_debian_and_needs_only_a_booting_kernel_s_memory() {
        let g = Guest::parse(&def(""), &catalog(), &host()).unwrap();
        assert_eq!(g.method, Method::Installer);
        let small = def("method = \"debootstrap\"\n").replace("\"1G\"", "\"512M\"");
        let g = Guest::parse(&small, &catalog(), &host()).unwrap();
        assert_eq!((g.method, g.memory), (Method::Debootstrap, Size::mib(512)));
        let e = Guest::parse(&def("").replace("\"1G\"", "\"512M\""), &catalog(), &host())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("memory: 512M is less than the 1G its installer needs"),
            "{e}"
        );
        let e = Guest::parse(&small.replace("\"512M\"", "\"128M\""), &catalog(), &host())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("128M is less than the 256M Debian needs to boot on Xen"),
            "{e}"
        );
        let rocky = def("method = \"debootstrap\"\n")
            .replace("debian12", "rocky9")
            .replace("pvh", "hvm")
            .replace("\"1G\"", "\"2G\"")
            .replace("10G", "20G");
        let e = Guest::parse(&rocky, &catalog(), &host())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("method: debootstrap installs Debian; Rocky Linux 9 is installed by its own installer"),
            "{e}"
        );
        let e = Guest::parse(&def("method = \"kickstart\"\n"), &catalog(), &host())
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected installer or debootstrap"), "{e}");
    }

    #[test]
    fn catalog_holds_the_shipped_profiles() {
        let c = catalog();
        let ids: Vec<&str> = c.ids().collect();
        assert_eq!(ids, ["alma9", "centos-stream9", "debian12", "rocky9"]);
        let rocky = c.get("rocky9").unwrap();
        assert_eq!(rocky.types, [GuestType::Hvm]);
        assert!(!rocky.balloon);
        assert_eq!(rocky.ksversion.as_deref(), Some("RHEL9"));
        assert_eq!(c.get("debian12").unwrap().family, Family::Debian);
    }

    #[test]
    fn minimal_definition_takes_defaults() {
        let g = Guest::parse(&def(""), &catalog(), &host()).unwrap();
        assert_eq!(g.vg, "dsk");
        assert_eq!(g.bridge, "xenbr0");
        assert_eq!(g.vcpus, 1);
        assert_eq!(g.maxmem, g.memory);
        assert_eq!(g.mac, derived_mac("web1"));
        assert!(g.mac.starts_with("00:16:3e:"));
        assert_eq!(g.network.mode, NetMode::Dhcp);
        assert_eq!(g.disk_path(), "/dev/dsk/web1-disk");
        assert!(!g.autostart);
    }

    #[test]
    fn serialized_definition_reads_back_the_same() {
        let mut g = Guest::parse(&def(""), &catalog(), &host()).unwrap();
        g.network = GuestNetwork {
            mode: NetMode::Static,
            address: Some("192.0.2.20/24".parse().unwrap()),
            gateway: Some(Ipv4Addr::new(192, 0, 2, 1)),
            dns: vec![Ipv4Addr::new(192, 0, 2, 53)],
            ..GuestNetwork::default()
        };
        g.packages = vec!["openssh-server".into()];
        g.ssh_authorized_keys = vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB me@x".into()];
        g.post_install = Some("#!/bin/sh\necho 'hi' > /etc/motd\n".into());
        g.autostart = true;
        let text = g.to_toml();
        assert_eq!(
            Guest::parse(&text, &catalog(), &host()).unwrap(),
            g,
            "{text}"
        );
    }

    #[test]
    fn refuses_what_cannot_work_and_says_why() {
        let src = "name = \"old\"\nos = \"rocky9\"\ntype = \"pv\"\nmemory = \"2G\"\nmaxmem = \"4G\"\ndisk = \"40G\"\nmac = \"00:16:3E:00:00:01\"\nroot-password-hash = \"hunter2\"\ncolour = 1\n";
        let e = Guest::parse(src, &catalog(), &host()).unwrap_err();
        let keys: Vec<&str> = e.0.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "name",
                "type",
                "maxmem",
                "disk",
                "mac",
                "root-password-hash",
                "colour"
            ],
            "{e}"
        );
        let text = e.to_string();
        for want in [
            "1:8: name: a guest named `old` already exists",
            "3:8: type: Rocky Linux 9 cannot run as pv: ",
            "CONFIG_XEN_PV",
            "use type = \"hvm\"",
            "maxmem: Rocky Linux 9 has no balloon driver",
            "6:8: disk: 40G does not fit: volume group `dsk` has 30 GiB free",
            "MAC 00:16:3e:00:00:01 is already used by guest `old`",
            "8:22: root-password-hash: this is not a password hash (plaintext passwords are refused); \
             give a $6$ or $y$ hash: make one with `xenprov-install hash-password`",
            "9:1: colour: unknown key",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
    }

    #[test]
    fn unknown_os_gets_a_suggestion_and_network_is_checked() {
        let src = def(
            "[network]\nmode = \"static\"\naddress = \"10.0.0.5/24\"\ngateway = \"10.0.1.1\"\n",
        )
        .replace("debian12", "debain12");
        let e = Guest::parse(&src, &catalog(), &host())
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean `debian12`?"), "{e}");
        assert!(
            e.contains("network.gateway: 10.0.1.1 is not in the subnet"),
            "{e}"
        );
        assert!(e.contains("network.dns: missing"), "{e}");
        let e = Guest::parse(&def("").replace("1G", "768M"), &catalog(), &host()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "4:10: memory: 768M is less than the 1G its installer needs"
        );
        let e = Guest::parse(
            &def("post-install = \"true\\n%end\\n\""),
            &catalog(),
            &host(),
        );
        assert!(
            e.unwrap_err()
                .to_string()
                .contains("would end the kickstart section")
        );
    }

    #[test]
    fn a_hash_that_is_not_ascii_is_an_error_naming_the_key() {
        let e = Guest::parse(&def("").replace(HASH, "$6$€€€"), &catalog(), &host())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("6:22: root-password-hash: `$6$€…` is not a well-formed"),
            "{e}"
        );
    }

    #[test]
    fn post_install_cannot_end_its_kickstart_section_under_any_line_split() {
        let refused = |script: &str| {
            let src = def(&format!("post-install = {}\n", toml::Value::from(script)));
            Guest::parse(&src, &catalog(), &host())
                .unwrap_err()
                .to_string()
        };
        let e = refused("true\n  %end\n%packages\n");
        assert_eq!(
            e,
            "7:16: post-install: line 2 starts with %, which would end the kickstart section the script runs in"
        );
        for sep in [
            "\r", "\r\n", "\u{0b}", "\u{0c}", "\u{1c}", "\u{1d}", "\u{1e}", "\u{85}", "\u{2028}",
            "\u{2029}",
        ] {
            let e = refused(&format!("true{sep}%end{sep}%packages{sep}"));
            assert!(
                e.starts_with("7:16: post-install: holds ") && e.contains(" on line 1; "),
                "{sep:?}: {e}"
            );
        }
        assert!(check_post_install("true\r%end").is_err());
        assert!(check_post_install("true\u{2028}%end").is_err());
        let e = refused("echo hi\0\n");
        assert!(e.contains("holds a NUL (U+0000) on line 1"), "{e}");
        let g = Guest::parse(
            &def("post-install = \"\"\"\n#!/bin/sh\n\techo '50%' >/etc/motd\n\"\"\"\n"),
            &catalog(),
            &host(),
        )
        .unwrap();
        assert_eq!(
            g.post_install.as_deref(),
            Some("#!/bin/sh\n\techo '50%' >/etc/motd\n")
        );
    }

    #[test]
    fn control_characters_are_refused_in_every_key() {
        let e = Guest::parse(
            &def("bridge = \"xenbr0\\n\"\npackages = [\"vim\\u0000\"]\n"),
            &catalog(),
            &host(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "7:10: bridge: holds a newline (U+000A); a value here is one line of printable text\n\
             8:13: packages[0]: holds a NUL (U+0000); a value here is one line of printable text"
        );
    }

    #[test]
    fn without_host_facts_space_is_not_checked() {
        let h = Host {
            vg: "dsk".into(),
            ..Host::default()
        };
        let g = Guest::parse(
            &def("disk = \"9T\"\n").replace("disk = \"10G\"\n", ""),
            &catalog(),
            &h,
        );
        assert_eq!(g.unwrap().disk, Size(9 << 40));
        let h = Host {
            vg_free: Some(BTreeMap::new()),
            ..h
        };
        let e = Guest::parse(&def(""), &catalog(), &h)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no volume group `dsk`"), "{e}");
    }

    #[test]
    fn names_keys_and_packages_that_would_break_templates_are_refused() {
        assert!(check_guest_name("web1").is_ok());
        assert!(check_guest_name("web.1").is_err());
        assert!(check_guest_name("-x").is_err());
        assert!(crate::answer::check_ssh_key("ssh-ed25519 AAAAC3Nz me@host").is_ok());
        assert!(crate::answer::check_ssh_key("ssh-ed25519 AAAAC3Nz me\"; rm -rf /").is_err());
        assert!(check_package("@^minimal-environment").is_ok());
        assert!(check_package("a b").is_err());
    }
}
