//! The live environment the installer runs in: the dom0 root file system itself as a read-only squashfs,
//! a small live-only layer over it, a tmpfs on top, assembled by a `boot=xenprov` initrd that the root
//! file system's own initramfs-tools builds. Reusing the dom0 root gives the installer systemd, udev, lvm2,
//! GRUB and the very kernel it installs, at the cost of one more compressed copy on the medium.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use xenprov_sys::{Chroot, Cmd};

use crate::cpio::Entry;
use crate::rootfs::Base;
use crate::timing;
use crate::tree::{install_binary, write};

pub const VMLINUZ: &str = "vmlinuz";
pub const INITRD: &str = "initrd.img";
pub const ROOT_SQUASHFS: &str = "root.squashfs";
pub const LAYER_SQUASHFS: &str = "layer.squashfs";

const HOOK: &str = include_str!("../live/initramfs/hook");
const SCRIPT: &str = include_str!("../live/initramfs/script");
const MDADM_CONF: &str = include_str!("../live/layer/etc/mdadm/mdadm.conf");
const RECIPE: &str = include_str!("live.rs");

/// zstd: the root is 182 MB against 251 MB with lz4 -Xhc, and under TCG reading all of it took 12-30 s
/// with either (too noisy to rank them), while the live boot reads only a small part of it.
const SQUASHFS_COMP: &[&str] = &["-comp", "zstd", "-Xcompression-level", "15"];

/// Not needed to run the installer; the payload keeps them.
const LIVE_EXCLUDES: &[&str] = &[
    "boot/*",
    "usr/share/doc/*",
    "usr/share/man/*",
    "usr/share/info/*",
    "usr/share/locale/*",
];

/// Files of the live layer: (path, text, mode).
const LAYER_FILES: &[(&str, &str, u32)] = &[
    (
        "etc/systemd/system/xenprov-live.service",
        include_str!("../live/layer/etc/systemd/system/xenprov-live.service"),
        0o644,
    ),
    (
        "etc/systemd/system/xenprov-dhcp.service",
        include_str!("../live/layer/etc/systemd/system/xenprov-dhcp.service"),
        0o644,
    ),
    ("etc/mdadm/mdadm.conf", MDADM_CONF, 0o644),
    (
        "etc/xenprov/dhclient.conf",
        include_str!("../live/layer/etc/xenprov/dhclient.conf"),
        0o644,
    ),
    (
        "usr/lib/xenprov/live",
        include_str!("../live/layer/usr/lib/xenprov/live"),
        0o755,
    ),
];

/// Units enabled in the live layer: (wants directory, unit).
const LAYER_ENABLED: &[(&str, &str)] = &[
    ("multi-user.target.wants", "xenprov-live.service"),
    ("network-online.target.wants", "xenprov-dhcp.service"),
];

/// Units masked in the live layer: nothing else may read the console, serve SSH without host keys, start
/// Xen's daemons outside Xen, or run maintenance while the installer works.
const LAYER_MASKED: &[&str] = &[
    "serial-getty@ttyS0.service",
    "getty@tty1.service",
    "ssh.service",
    "xen.service",
    "xendomains.service",
    "lvm2-monitor.service",
    "mdmonitor.service",
    "mdmonitor-oneshot.timer",
    "mdcheck_start.timer",
    "mdcheck_continue.timer",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
];

/// Inputs of the cached part (kernel, initrd, root squashfs): the root file system and this recipe.
#[derive(Serialize)]
pub struct Inputs<'a> {
    pub rootfs_key: &'a str,
    pub recipe_sha256: String,
    pub hook_sha256: String,
    pub script_sha256: String,
    pub mdadm_conf_sha256: String,
}

impl<'a> Inputs<'a> {
    pub fn new(rootfs_key: &'a str) -> Inputs<'a> {
        let sha = |text: &str| hex::encode(Sha256::digest(text));
        Inputs {
            rootfs_key,
            recipe_sha256: sha(RECIPE),
            hook_sha256: sha(HOOK),
            script_sha256: sha(SCRIPT),
            mdadm_conf_sha256: sha(MDADM_CONF),
        }
    }
}

/// Builds the kernel, the live initrd and the root squashfs into `entry`.
pub fn build_base(base: &Base, entry: &Path) -> Result<()> {
    let kernel = &base.info.kernel;
    fs::copy(
        base.rootfs.join(kernel.image.trim_start_matches('/')),
        entry.join(VMLINUZ),
    )
    .context("copying the kernel")?;
    timing::timed("live initrd", || build_initrd(base, entry))?;
    timing::timed("live root squashfs", || {
        Cmd::new(&["mksquashfs"])
            .arg(&base.rootfs)
            .arg(entry.join(ROOT_SQUASHFS))
            .args(["-noappend", "-quiet", "-no-progress"])
            .args(SQUASHFS_COMP)
            .args(["-wildcards", "-e"])
            .args(LIVE_EXCLUDES)
            .run_shown()
    })
}

/// The rootfs's own mkinitramfs, in a chroot on an overlay so the hook and script never touch the cached
/// root file system (and so never reach the payload).
fn build_initrd(base: &Base, entry: &Path) -> Result<()> {
    let scratch = entry.join("initrd-build");
    let chroot = Chroot::enter_overlay(&base.rootfs, &scratch)?;
    let root = chroot.root().to_path_buf();
    write(&root, "etc/initramfs-tools/hooks/xenprov", HOOK, 0o755)?;
    // mdadm's hook copies this file and its udev rules into the initrd: with `AUTO -all`, the
    // rules assemble no array of the machine's disks before the live layer is even mounted.
    write(&root, "etc/mdadm/mdadm.conf", MDADM_CONF, 0o644)?;
    write(
        &root,
        "usr/share/initramfs-tools/scripts/xenprov",
        SCRIPT,
        0o644,
    )?;
    chroot
        .command(&["mkinitramfs", "-o", "/tmp/xenprov-initrd.img"])
        .arg(&base.info.kernel.version)
        .run_shown()?;
    fs::copy(root.join("tmp/xenprov-initrd.img"), entry.join(INITRD))
        .context("copying the initrd")?;
    chroot.leave()?;
    crate::cache::remove(&scratch)
}

/// Where the live initrd finds what it must fetch when booted from the network (`xenprov.medium=URL`).
pub const MEDIUM_SHA256: &str = "etc/xenprov/medium.sha256";
pub const MEDIUM_FETCH: &str = "etc/xenprov/medium.fetch";

/// Writes to `out` the initrd `initrd` with the medium pinned in it: the SHA-256 of each of `pinned`
/// (path on the medium, file here), which the initrd checks before it uses a fetched medium, and the
/// paths of `fetched`, which it fetches unchecked because the installer checks them itself (the
/// payload's manifest, pinned, holds their hashes). The kernel and this initrd are what the network
/// boot trusts, as with any PXE boot; a medium swapped on the server is refused. Appended as a second
/// archive: the cached initrd stays as it is.
pub fn pin_initrd(
    initrd: &Path,
    pinned: &[(&str, &Path)],
    fetched: &[&str],
    out: &Path,
) -> Result<()> {
    let mut sums = String::new();
    for (on_medium, file) in pinned {
        let (sha, _) = crate::payload::hash_file(file)?;
        sums += &format!("{sha}  {}\n", on_medium.trim_start_matches('/'));
    }
    let fetch: String = fetched
        .iter()
        .map(|p| format!("{}\n", p.trim_start_matches('/')))
        .collect();
    let mut bytes = fs::read(initrd).with_context(|| format!("reading {}", initrd.display()))?;
    // The kernel looks for the next archive on a four-byte boundary, after zeros.
    bytes.resize(bytes.len().next_multiple_of(4), 0);
    bytes.extend(crate::cpio::archive(&[
        Entry::dir("etc", 0o755),
        Entry::dir("etc/xenprov", 0o755),
        Entry::file(MEDIUM_SHA256, 0o644, sums.as_bytes()),
        Entry::file(MEDIUM_FETCH, 0o644, fetch.as_bytes()),
    ]));
    fs::write(out, bytes).with_context(|| format!("writing {}", out.display()))
}

/// Builds the live-only layer: our units and scripts, the masks, and the installer at /usr/sbin/xenprov-install.
pub fn build_layer(installer: &Path, out: &Path) -> Result<()> {
    let stage = out.with_extension("d");
    crate::cache::remove(&stage)?;
    for (path, text, mode) in LAYER_FILES {
        write(&stage, path, text, *mode)?;
    }
    let units = stage.join("etc/systemd/system");
    for (wants, unit) in LAYER_ENABLED {
        fs::create_dir_all(units.join(wants))?;
        symlink(format!("../{unit}"), units.join(wants).join(unit))?;
    }
    for unit in LAYER_MASKED {
        symlink("/dev/null", units.join(unit))?;
    }
    // No LVM auto-activation and no md auto-assembly on the machine's disks while the installer
    // may be wiping them: an array assembled from a disk nobody named could start a resync there.
    fs::create_dir_all(stage.join("etc/udev/rules.d"))?;
    symlink("/dev/null", stage.join("etc/udev/rules.d/69-lvm.rules"))?;
    symlink(
        "/dev/null",
        stage.join("etc/udev/rules.d/64-md-raid-assembly.rules"),
    )?;
    install_binary(installer, &stage.join("usr/sbin/xenprov-install"))?;

    Cmd::new(&["mksquashfs"])
        .arg(&stage)
        .arg(out)
        .args(["-noappend", "-quiet", "-no-progress", "-all-root"])
        .args(SQUASHFS_COMP)
        .run_shown()?;
    crate::cache::remove(&stage)
}
