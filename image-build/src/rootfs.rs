//! The dom0 root file system: a debootstrap of the suite plus the host's packages, cleaned of every
//! identity an install must create afresh. The payload and the live root are both made from it, and it is
//! cached by its inputs, among them this file's own text (the recipe).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use xenprov_core::apt_sources::Mirror;
use xenprov_sys::{Chroot, Cmd};

use crate::timing;
use crate::tree::write;

/// The dom0 (DESIGN.md) plus what the installer runs inside it through chroot, and the live environment's needs.
pub const PACKAGES: &[&str] = &[
    // Xen host
    "xen-system-amd64",
    "qemu-system-xen",
    "grub-xen-host",
    "linux-image-amd64",
    "lvm2",
    // the mirrored dom0 (md RAID1 under /boot and the volume group), and its monitor
    "mdadm",
    // boot loaders for both firmwares; grub-pc's postinst is told to install nowhere
    "grub-pc",
    "grub-efi-amd64-bin",
    "efibootmgr",
    // file systems and disks
    "dosfstools",
    "e2fsprogs",
    "fdisk",
    // init, devices, initramfs (busybox gives the live initrd losetup, readlink and friends)
    "systemd-sysv",
    "udev",
    "dbus",
    "kmod",
    "initramfs-tools",
    "busybox",
    "zstd",
    // network and administration
    "ifupdown",
    "bridge-utils",
    "isc-dhcp-client",
    "iproute2",
    "iputils-ping",
    "openssh-server",
    "sudo",
    "ca-certificates",
    "curl",
    "systemd-timesyncd",
    "procps",
    "less",
    // `man xenprov-repo`: our packages bring their pages
    "man-db",
    // guests installed by `xenprov-guest new --method debootstrap`
    "debootstrap",
    // guest networks: the NAT bridge's DHCP and DNS (dnsmasq without its system-wide service), the
    // dom0's firewall, masquerading and port forwards (nftables)
    "dnsmasq-base",
    "nftables",
    // Xen's vif-route (routed guests) configures the vif with ifconfig
    "net-tools",
];

const RECIPE: &str = include_str!("rootfs.rs");

/// The dom0's mdadm.conf until a plan writes one: no arrays of anybody's.
const MDADM_CONF: &str = "# Written by xenprov-image. A host installed on one disk has no arrays; a mirrored one\n\
    # gets this file from its install plan.\nHOMEHOST <system>\nMAILADDR root\n";

/// grub-pc must not grub-install onto any disk of the build machine.
const DEBCONF: &str = "grub-pc grub-pc/install_devices multiselect \n\
                       grub-pc grub-pc/install_devices_empty boolean true\n";

/// Everything the root file system depends on; its hash is the cache key.
#[derive(Debug, Serialize)]
pub struct Inputs {
    pub suite: String,
    pub mirror: Mirror,
    pub packages: Vec<String>,
    pub debootstrap: String,
    pub recipe_sha256: String,
}

/// What the finished root file system holds (`base.json` in its cache entry).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Info {
    pub cache_key: String,
    pub suite: String,
    pub mirror: String,
    pub kernel: Kernel,
    pub xen: Xen,
    pub packages: Vec<Package>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Kernel {
    pub version: String,
    pub image: String,
    pub initrd: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Xen {
    pub version: String,
    pub image: String,
    pub efi: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Package {
    pub name: String,
    pub version: String,
}

/// A built root file system in the cache.
pub struct Base {
    pub rootfs: PathBuf,
    pub info: Info,
}

impl Inputs {
    pub fn new(suite: &str, mirror: Mirror) -> Result<Inputs> {
        let debootstrap = Cmd::new(&["dpkg-query", "-W", "-f=${Version}", "debootstrap"])
            .run()
            .context("finding the debootstrap version")?;
        Ok(Inputs {
            suite: suite.to_string(),
            mirror,
            packages: PACKAGES.iter().map(|p| p.to_string()).collect(),
            debootstrap,
            recipe_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(RECIPE)),
        })
    }
}

impl Base {
    pub fn load(entry: &Path) -> Result<Base> {
        let json = fs::read(entry.join("base.json")).context("reading base.json")?;
        Ok(Base {
            rootfs: entry.join("rootfs"),
            info: serde_json::from_slice(&json).context("parsing base.json")?,
        })
    }
}

/// Builds the root file system into `entry/rootfs` and describes it in `entry/base.json`.
/// `debs` keeps downloaded packages between builds.
pub fn build(inputs: &Inputs, key: &str, debs: &Path, entry: &Path) -> Result<()> {
    let root = entry.join("rootfs");
    fs::create_dir_all(debs.join("partial"))?;
    let keyring = inputs
        .mirror
        .keyring
        .as_ref()
        .map(|k| format!("--keyring={k}"));
    let debootstrap = Cmd::new(&["debootstrap", "--variant=minbase", "--components=main"])
        .arg(format!("--cache-dir={}", debs.display()))
        .args(keyring)
        .arg(&inputs.suite)
        .arg(&root)
        .arg(&inputs.mirror.archive);
    timing::timed("debootstrap", || debootstrap.run_shown())?;

    fs::remove_file(root.join("etc/apt/sources.list"))
        .context("removing debootstrap's sources.list")?;
    write(
        &root,
        "etc/apt/sources.list.d/debian.sources",
        &inputs.mirror.deb822(&inputs.suite),
        0o644,
    )?;
    write(
        &root,
        "usr/sbin/policy-rc.d",
        "#!/bin/sh\n# no services start while the image is built\nexit 101\n",
        0o755,
    )?;
    write(&root, "tmp/debconf", DEBCONF, 0o644)?;
    // The initramfs is made here, before the host has an fstab, so its fsck hook cannot learn the
    // root's type from it; the dom0's root is always ext4 (xenprov-install makes it so).
    write(
        &root,
        "etc/initramfs-tools/conf.d/xenprov-fstype",
        "# The dom0's root is ext4: fsck it in the initramfs.\nFSTYPE=ext4\n",
        0o644,
    )?;
    // Written before mdadm is installed, whose postinst would otherwise write one listing the
    // arrays it finds on the build machine. It lists none, so the initramfs assembles whatever
    // array it finds at boot, a mirrored host's among them (its mdadm hook scans the build machine
    // for arrays to add, and finds none where the MD subsystem is not loaded, as on these build
    // machines). A mirrored host gets its own mdadm.conf from the plan, which the host's next
    // update-initramfs (a kernel upgrade) puts into its initramfs.
    write(&root, "etc/mdadm/mdadm.conf", MDADM_CONF, 0o644)?;

    let mut chroot = Chroot::enter(&root)?;
    chroot.bind(debs, "var/cache/apt/archives")?;
    timing::timed("installing packages", || {
        chroot
            .command(&["debconf-set-selections", "/tmp/debconf"])
            .run_shown()?;
        chroot.command(&["apt-get", "-q", "update"]).run_shown()?;
        chroot
            .command(&["apt-get", "-q", "-y", "install", "--no-install-recommends"])
            .args(["-o", "Dpkg::Options::=--force-confold"])
            .args(PACKAGES)
            .run_shown()
            .context("installing the dom0 packages")
    })?;
    chroot.command(&["passwd", "--lock", "root"]).run_shown()?;
    chroot.leave()?;

    clean(&root)?;
    let info = describe(&root, key, inputs)?;
    fs::write(entry.join("base.json"), serde_json::to_vec_pretty(&info)?)?;
    Ok(())
}

/// Removes what the build machine and the build itself left, and every identity an install must create
/// (SSH host keys, machine id, hostname): each installed host gets its own.
fn clean(root: &Path) -> Result<()> {
    xenprov_sys::mount::unmount_under(root)?;
    for dir in [
        "dev",
        "tmp",
        "var/tmp",
        "var/lib/apt/lists",
        "var/cache/apt",
        "var/log/apt",
    ] {
        empty_dir(&root.join(dir))?;
    }
    fs::create_dir_all(root.join("var/lib/apt/lists/partial"))?;
    fs::create_dir_all(root.join("var/cache/apt/archives/partial"))?;
    for pattern_dir in ["etc/ssh", "var/cache/debconf", "var/lib/dpkg", "var/log"] {
        for entry in fs::read_dir(root.join(pattern_dir))? {
            let path = entry?.path();
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let stale =
                name.starts_with("ssh_host_") || name.ends_with("-old") || name.ends_with(".log");
            if stale && path.is_file() {
                fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            }
        }
    }
    for file in [
        "usr/sbin/policy-rc.d",
        "etc/hostname",
        "etc/resolv.conf",
        "var/lib/dbus/machine-id",
        "var/lib/systemd/random-seed",
    ] {
        let path = root.join(file);
        if path.symlink_metadata().is_ok() {
            fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    write(root, "etc/machine-id", "", 0o444)?;
    write(root, "etc/fstab", "", 0o644)?;
    write(
        root,
        "etc/hosts",
        "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n",
        0o644,
    )?;
    Ok(())
}

fn describe(root: &Path, key: &str, inputs: &Inputs) -> Result<Info> {
    let admindir = format!("--admindir={}", root.join("var/lib/dpkg").display());
    let list = Cmd::new(&["dpkg-query", &admindir, "-W", "-f=${Package}\t${Version}\n"]).run()?;
    let packages: Vec<Package> = list
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(name, version)| Package {
            name: name.into(),
            version: version.into(),
        })
        .collect();
    let boot = |prefix: &str| -> Result<Vec<String>> {
        let mut names: Vec<String> = fs::read_dir(root.join("boot"))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(prefix))
            .collect();
        names.sort();
        Ok(names)
    };
    let [kernel] = &boot("vmlinuz-")?[..] else {
        bail!("expected exactly one kernel in /boot")
    };
    let version = kernel.trim_start_matches("vmlinuz-").to_string();
    let [xen] = &boot("xen-")?
        .into_iter()
        .filter(|n| n.ends_with(".gz"))
        .collect::<Vec<_>>()[..]
    else {
        bail!("expected exactly one Xen image in /boot")
    };
    let xen_package = packages
        .iter()
        .find(|p| p.name.starts_with("xen-hypervisor-") && p.name.ends_with("-amd64"))
        .context("no xen-hypervisor package installed")?;
    Ok(Info {
        cache_key: key.to_string(),
        suite: inputs.suite.clone(),
        mirror: inputs.mirror.archive.clone(),
        kernel: Kernel {
            image: format!("/boot/{kernel}"),
            initrd: format!("/boot/initrd.img-{version}"),
            version,
        },
        xen: Xen {
            version: xen_package.version.clone(),
            image: format!("/boot/{xen}"),
            efi: format!("/boot/{}", xen.trim_end_matches(".gz").to_string() + ".efi"),
        },
        packages,
    })
}

/// Removes a directory's contents, keeping the directory (and its owner and mode).
fn empty_dir(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.symlink_metadata()?.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        }
        .with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}
