//! `method = "debootstrap"`: the dom0 writes a Debian guest's system straight into its volume, as
//! xen-tools does, from the repo server (its verifying cache of the Debian mirror): one bootable
//! ext4 partition over the whole disk, the base system (debootstrapped once per suite, mirror and
//! recipe, then unpacked from a cached tarball), the definition's packages, network, users, keys
//! and post-install script, GRUB in the MBR (HVM) and its grub.cfg (pvgrub2, PV and PVH), and the
//! hook that grows the root file system when the volume grows. Nothing here runs without root
//! and a volume; the end-to-end test runs it for real on the installed host.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use xenprov_core::answer::NetMode;
use xenprov_core::guest::{Guest, GuestType};
use xenprov_sys::mount::Mounts;
use xenprov_sys::{Chroot, Cmd};

use crate::disk::{self, Loop};

/// What the base system holds besides debootstrap's minbase: a kernel that runs as PV, PVH and HVM,
/// its init, networking, SSH, GRUB for both pvgrub2's config and HVM's MBR, and the tools the grow
/// hook uses.
const BASE_PACKAGES: &[&str] = &[
    "linux-image-amd64",
    "systemd-sysv",
    "udev",
    "openssh-server",
    "grub-pc-bin",
    "grub2-common",
    "e2fsprogs",
    "fdisk",
];

/// This file, so that a change to the recipe is a new cached base.
const RECIPE: &str = include_str!("debootstrap.rs");

/// Grows the root partition and its ext4 to the end of the disk; run by udev when the disk grows
/// under the running guest (blkfront's capacity change), and at every boot for a disk grown while
/// it was off.
pub const GROW_SCRIPT: &str = r#"#!/bin/sh
# Written by xenprov-guest: grows the root partition (xvda1) and its ext4 to the end of xvda, after
# `xenprov-guest resize` grew the volume. A partition that already ends at the disk's end is left alone.
set -eu
disk=/sys/block/xvda
[ -e "$disk/xvda1/start" ] || exit 0
end=$(( $(cat "$disk/xvda1/start") + $(cat "$disk/xvda1/size") ))
[ $(( $(cat "$disk/size") - end )) -ge 2048 ] || exit 0
echo ', +' | sfdisk -q --no-reread --no-tell-kernel -N 1 /dev/xvda
partx -u -n 1 /dev/xvda
resize2fs /dev/xvda1
logger -t xenprov-grow-root "grew /dev/xvda1 to the end of xvda ($(cat "$disk/size") sectors)"
"#;

const GROW_RULE: &str = "# Written by xenprov-guest: the disk grew under the running guest.\n\
    ACTION==\"change\", SUBSYSTEM==\"block\", KERNEL==\"xvda\", ENV{RESIZE}==\"1\", \
    RUN+=\"/usr/local/sbin/xenprov-grow-root\"\n";

const GROW_UNIT: &str = "# Written by xenprov-guest: the disk grew while the guest was off.\n\
    [Unit]\nDescription=Grow the root file system to the end of its disk\n\
    After=local-fs.target\n\n[Service]\nType=oneshot\n\
    ExecStart=/usr/local/sbin/xenprov-grow-root\n\n[Install]\nWantedBy=multi-user.target\n";

/// Where a guest's system comes from, as the dom0 and as the guest reach the repo server.
pub struct Mirror {
    pub suite: String,
    /// The Debian tree as the dom0 reaches it (debootstrap, apt in the chroot).
    pub for_dom0: String,
    /// The same tree as the guest reaches it (its sources.list).
    pub for_guest: String,
}

/// Where the bases are kept: beside the installers, under the host's installer cache.
pub fn cache_dir(config: &xenprov_registry::settings::Config) -> PathBuf {
    config.installer_cache.join("debootstrap")
}

/// The cached base system's file for a suite: keyed by what makes it (this recipe and its package
/// list), not by where it was made, so that a base prepared on another machine of the same
/// release (`prepare-base`) is the one the dom0 would make.
pub fn base_path(cache: &Path, suite: &str) -> PathBuf {
    let mut h = Sha256::new();
    for part in [RECIPE, suite, &BASE_PACKAGES.join(",")] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let key = hex::encode(&h.finalize()[..8]);
    cache.join(format!("{suite}-{key}.tar.zst"))
}

/// Makes the suite's base in the cache, if it is not there yet, from `mirror`; its path.
pub fn prepare(
    suite: &str,
    mirror: &str,
    cache: &Path,
    say: &mut dyn FnMut(String),
) -> Result<PathBuf> {
    let base = base_path(cache, suite);
    if base.exists() {
        say(format!("{} is there already", base.display()));
        return Ok(base);
    }
    let scratch = cache.join(format!(".build-{}", std::process::id()));
    say(format!(
        "debootstrap {suite} from {mirror} into {}",
        scratch.display()
    ));
    let made = debootstrap_base(&scratch, suite, mirror, &base);
    fs::remove_dir_all(&scratch).with_context(|| format!("removing {}", scratch.display()))?;
    made.map(|()| base)
}

/// The guest's network, as systemd-networkd reads it, on whatever its vif is called.
pub fn network_file(g: &Guest) -> String {
    let mut s = String::from(
        "# Written by xenprov-guest from the guest's definition.\n[Match]\nName=en* eth*\n\n[Network]\n",
    );
    match (g.network.mode, g.network.address) {
        (NetMode::Static, Some(a)) => {
            s.push_str(&format!("Address={a}\n"));
            if let Some(gw) = g.network.gateway {
                s.push_str(&format!("Gateway={gw}\n"));
            }
            for d in &g.network.dns {
                s.push_str(&format!("DNS={d}\n"));
            }
        }
        _ => s.push_str("DHCP=yes\n"),
    }
    s
}

/// GRUB's settings: the console Xen gives each guest type, and a short menu.
pub fn grub_default(kind: GuestType) -> String {
    let console = match kind {
        GuestType::Hvm => "console=tty0 console=ttyS0,115200 console=hvc0",
        GuestType::Pv | GuestType::Pvh => "console=hvc0",
    };
    format!(
        "# Written by xenprov-guest.\nGRUB_DEFAULT=0\nGRUB_TIMEOUT=1\nGRUB_DISTRIBUTOR=Debian\n\
         GRUB_CMDLINE_LINUX_DEFAULT=\"\"\nGRUB_CMDLINE_LINUX=\"{console}\"\nGRUB_TERMINAL=console\n"
    )
}

fn write(root: &Path, rel: &str, text: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let p = root.join(rel);
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    fs::set_permissions(&p, fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", p.display()))
}

/// Installs `g` onto its volume, which `new` has just created; `say` reports each step.
pub fn install(g: &Guest, m: &Mirror, cache: &Path, say: &mut dyn FnMut(String)) -> Result<()> {
    let lv = g.disk_path();
    // One bootable Linux partition from 1 MiB to the end, in an MBR that HVM's BIOS boots from.
    disk::write_table(&lv, "label: dos\nstart=2048, type=83, bootable\n", true)?;
    let lo = Loop::attach(Path::new(&lv), false)?;
    let part = lo.partition(1)?;
    Cmd::new(&["mkfs.ext4", "-q", "-L", "root"])
        .arg(&part)
        .run()?;
    let uuid = Cmd::new(&["blkid", "-s", "UUID", "-o", "value"])
        .arg(&part)
        .run()?
        .trim()
        .to_string();
    let target = PathBuf::from(format!("/run/xenprov-guest/{}", g.name));
    let mut mounts = Mounts::new();
    mounts.mount(&part.display().to_string(), &target, "ext4", None)?;

    let base = base_path(cache, &m.suite);
    let fresh = !base.exists();
    if !fresh {
        say(format!(
            "{}: unpacking the base system {}",
            g.name,
            base.display()
        ));
    } else {
        say(format!(
            "{}: debootstrap {} from {} (once; kept as {})",
            g.name,
            m.suite,
            m.for_dom0,
            base.display()
        ));
        debootstrap_base(&target, &m.suite, &m.for_dom0, &base)?;
    }
    if !fresh {
        unpack(&base, &target)?;
    }
    configure(g, m, &target, &uuid, lo.device())?;
    mounts.unmount_all()?;
    lo.detach()?;
    say(format!("{}: installed on {lv} (root {uuid})", g.name));
    Ok(())
}

/// Debootstraps into `scratch` (the guest's own root, empty), cleans it of what each guest makes
/// afresh, and keeps it as `base`, which the next guest of the suite unpacks to the same tree.
fn debootstrap_base(scratch: &Path, suite: &str, mirror: &str, base: &Path) -> Result<()> {
    let dir = base
        .parent()
        .expect("the base lives in the cache directory");
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Cmd::new(&[
        "debootstrap",
        "--variant=minbase",
        "--components=main",
        &format!("--include={}", BASE_PACKAGES.join(",")),
        suite,
    ])
    .arg(scratch)
    .arg(mirror)
    .run_shown()
    .with_context(|| format!("debootstrap of {suite} from {mirror}"))?;
    // systemd-resolved (what turns DHCP's name servers into /etc/resolv.conf) cannot be configured
    // by debootstrap itself: its postinst moves resolv.conf into /run/systemd, which only exists
    // with a /run. apt installs it once the system is whole, with a /run of its own.
    let mut run = Mounts::new();
    run.mount("tmpfs", &scratch.join("run"), "tmpfs", Some("mode=755"))?;
    let chroot = Chroot::enter(scratch)?;
    chroot
        .command(&["apt-get", "-q", "-y", "install", "systemd-resolved"])
        .run_shown()
        .context("installing systemd-resolved in the base system")?;
    chroot.leave()?;
    run.unmount_all()?;
    // Identities are made per guest: machine id at first boot, SSH host keys below.
    write(scratch, "etc/machine-id", "", 0o444)?;
    for e in fs::read_dir(scratch.join("etc/ssh"))? {
        let p = e?.path();
        if p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("ssh_host_"))
        {
            fs::remove_file(&p)?;
        }
    }
    Cmd::new(&[
        "sh",
        "-c",
        "rm -rf \"$1\"/var/cache/apt/archives/*.deb \"$1\"/var/lib/apt/lists/*",
        "-",
    ])
    .arg(scratch)
    .run()?;
    let tmp = base.with_extension("part");
    Cmd::new(&[
        "sh",
        "-c",
        "tar -C \"$1\" --numeric-owner --xattrs -c . | zstd -q -T0 -3 -o \"$2\" -f",
        "-",
    ])
    .arg(scratch)
    .arg(&tmp)
    .run()
    .context("keeping the base system")?;
    fs::rename(&tmp, base).with_context(|| format!("writing {}", base.display()))
}

fn unpack(base: &Path, target: &Path) -> Result<()> {
    Cmd::new(&[
        "sh",
        "-c",
        "zstd -q -dc \"$1\" | tar -C \"$2\" --numeric-owner --xattrs -x",
        "-",
    ])
    .arg(base)
    .arg(target)
    .run()
    .with_context(|| format!("unpacking {}", base.display()))
    .map(drop)
}

fn configure(g: &Guest, m: &Mirror, root: &Path, uuid: &str, whole: &Path) -> Result<()> {
    write(root, "etc/hostname", &format!("{}\n", g.name), 0o644)?;
    write(
        root,
        "etc/hosts",
        &format!(
            "127.0.0.1\tlocalhost\n127.0.1.1\t{}\n::1\tlocalhost ip6-localhost ip6-loopback\n",
            g.name
        ),
        0o644,
    )?;
    write(
        root,
        "etc/fstab",
        &format!("# Written by xenprov-guest.\nUUID={uuid} / ext4 errors=remount-ro 0 1\n"),
        0o644,
    )?;
    write(
        root,
        "etc/systemd/network/80-xenprov.network",
        &network_file(g),
        0o644,
    )?;
    write(root, "etc/default/grub", &grub_default(g.kind), 0o644)?;
    write(root, "usr/local/sbin/xenprov-grow-root", GROW_SCRIPT, 0o755)?;
    write(
        root,
        "etc/udev/rules.d/90-xenprov-grow-root.rules",
        GROW_RULE,
        0o644,
    )?;
    write(
        root,
        "etc/systemd/system/xenprov-grow-root.service",
        GROW_UNIT,
        0o644,
    )?;
    let sources = |url: &str| format!("deb {url} {} main\n", m.suite);
    // apt in the chroot reaches the repo server as the dom0 does; the guest, as it will.
    write(root, "etc/apt/sources.list", &sources(&m.for_dom0), 0o644)?;
    if !g.ssh_authorized_keys.is_empty() {
        fs::create_dir_all(root.join("root/.ssh"))?;
        write(
            root,
            "root/.ssh/authorized_keys",
            &(g.ssh_authorized_keys.join("\n") + "\n"),
            0o600,
        )?;
    }
    // Services installed now must not start in the dom0.
    write(root, "usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n", 0o755)?;

    let chroot = Chroot::enter(root)?;
    let run = |argv: &[&str]| chroot.command(argv).run_shown();
    run(&[
        "systemctl",
        "enable",
        "-q",
        "systemd-networkd",
        "systemd-resolved",
        "xenprov-grow-root",
    ])?;
    if !g.packages.is_empty() {
        run(&["apt-get", "-q", "update"])?;
        let mut argv = vec!["apt-get", "-q", "-y", "--no-install-recommends", "install"];
        argv.extend(g.packages.iter().map(String::as_str));
        run(&argv).context("installing the definition's packages")?;
        run(&["apt-get", "clean"])?;
    }
    // The hash reaches chpasswd on its standard input, which is never logged.
    chroot
        .command(&["chpasswd", "-e"])
        .stdin(format!("root:{}\n", g.root_password_hash))
        .run()
        .context("setting root's password hash")?;
    run(&["ssh-keygen", "-q", "-A"])?;
    let whole = whole.display().to_string();
    run(&["grub-install", "--target=i386-pc", &whole])?;
    run(&["update-grub"])?;
    if let Some(script) = &g.post_install {
        write(root, "root/xenprov-post-install", script, 0o700)?;
        run(&["sh", "-e", "/root/xenprov-post-install"])
            .context("the definition's post-install script")?;
        fs::remove_file(root.join("root/xenprov-post-install"))?;
    }
    chroot.leave()?;
    fs::remove_file(root.join("usr/sbin/policy-rc.d"))?;
    write(root, "etc/apt/sources.list", &sources(&m.for_guest), 0o644)?;
    if !root.join("boot/grub/grub.cfg").exists() {
        bail!("update-grub wrote no /boot/grub/grub.cfg, which pvgrub2 needs");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cached_base_is_keyed_by_suite_and_recipe() {
        let c = Path::new("/c");
        let a = base_path(c, "bookworm");
        let s = a.to_string_lossy();
        assert!(
            s.starts_with("/c/bookworm-") && s.ends_with(".tar.zst"),
            "{s}"
        );
        assert_eq!(a, base_path(c, "bookworm"));
        assert_ne!(a, base_path(c, "trixie"));
    }

    #[test]
    fn network_and_grub_follow_the_definition() {
        let catalog = xenprov_core::guest::Catalog::from_templates(
            &xenprov_core::render::Templates::builtin(),
        )
        .unwrap();
        let def = "name = \"web1\"\nos = \"debian12\"\ntype = \"pv\"\nmethod = \"debootstrap\"\nmemory = \"512M\"\ndisk = \"4G\"\nroot-password-hash = \"!\"\n";
        let g = Guest::parse(def, &catalog, &Default::default()).unwrap();
        assert!(network_file(&g).ends_with("[Network]\nDHCP=yes\n"));
        let st = format!(
            "{def}[network]\nmode = \"static\"\naddress = \"192.0.2.20/24\"\ngateway = \"192.0.2.1\"\ndns = [\"192.0.2.53\"]\n"
        );
        let g = Guest::parse(&st, &catalog, &Default::default()).unwrap();
        assert!(
            network_file(&g)
                .ends_with("Address=192.0.2.20/24\nGateway=192.0.2.1\nDNS=192.0.2.53\n"),
            "{}",
            network_file(&g)
        );
        assert!(grub_default(GuestType::Pv).contains("GRUB_CMDLINE_LINUX=\"console=hvc0\""));
        assert!(grub_default(GuestType::Hvm).contains("console=ttyS0,115200"));
    }
}
