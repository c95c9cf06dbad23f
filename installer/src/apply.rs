//! `apply`: carries out a plan. The target is checked again right before the first write; after
//! that, any failure unmounts everything and erases the new partition table, so a disk never
//! looks installed when it is not.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use xenprov_core::exit;
use xenprov_core::gpt::Role;
use xenprov_core::inventory::DiskKind;
use xenprov_core::plan::{Content, FsType, MdArray, Plan, PlannedFile, TargetDisk, mount_order};
use xenprov_sys::{Cmd, Mounts};

use crate::blockdev::{self, Loop};
use crate::inventory;
use crate::io::progress::Mode;
use crate::md::{self, mdadm};
use crate::nvram;
use crate::payload;

pub struct Options {
    /// Directory holding `payload.json` and the archive it names.
    pub payload_dir: PathBuf,
    pub progress: Mode,
    /// Where the target's filesystems are mounted while installing.
    pub root: PathBuf,
    /// The install log, copied onto the target at the end.
    pub log: Option<PathBuf>,
}

/// Tools the plan needs, all looked up before anything is written.
fn required_tools(plan: &Plan) -> Vec<&'static str> {
    let mut t = vec![
        "wipefs",
        "pvcreate",
        "vgcreate",
        "lvcreate",
        "lvs",
        "vgchange",
        "mkfs.ext4",
        "chroot",
        "blkid",
    ];
    if plan.filesystems.iter().any(|f| f.fs == FsType::Swap) {
        t.push("mkswap");
    }
    if plan.bootloader.uefi {
        t.push("mkfs.vfat");
    }
    if plan.disks.iter().any(|d| d.kind == DiskKind::File) {
        t.push("losetup");
    }
    if plan.mirrored() {
        t.push("mdadm");
    }
    t
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// Re-checks everything the plan assumed about the target and the medium.
pub fn preflight(plan: &Plan, opts: &Options) -> Result<()> {
    let missing: Vec<&str> = required_tools(plan)
        .into_iter()
        .filter(|t| !on_path(t))
        .collect();
    if !missing.is_empty() {
        bail!(
            "missing tools: {} (this environment cannot install)",
            missing.join(", ")
        );
    }
    for d in &plan.disks {
        preflight_disk(d)?;
    }
    let Some(m) = &plan.payload else {
        bail!("the plan has no payload manifest; give --payload");
    };
    // The archive and each package are there and of the size the manifest says (their hashes are
    // checked as they are read).
    let files = std::iter::once(("payload", &m.file, m.size))
        .chain(m.debs.iter().map(|d| ("package", &d.file, d.size)));
    for (what, file, size) in files {
        let path = opts.payload_dir.join(file);
        let len = fs::metadata(&path)
            .with_context(|| format!("{what} {}", path.display()))?
            .len();
        if len != size {
            bail!(
                "{what} {} is {len} bytes, the payload's manifest says {size}",
                path.display()
            );
        }
    }
    Ok(())
}

/// One target disk is the one the plan was made for: size, sectors, serial, contents.
fn preflight_disk(disk: &TargetDisk) -> Result<()> {
    let path = Path::new(&disk.path);
    let f = fs::File::open(path).with_context(|| format!("opening target {}", path.display()))?;
    let size = blockdev::size(&f, path)?;
    if size != disk.size {
        return Err(exit::refused(format!(
            "{} is {size} bytes now but the plan was made for {} bytes: not the same disk, refusing to write",
            path.display(),
            disk.size
        )).into());
    }
    let sector = blockdev::logical_sector(&f, path)?;
    if sector != disk.sector {
        bail!(
            "{} has {sector}-byte sectors now, the plan assumed {}",
            path.display(),
            disk.sector
        );
    }
    recheck_contents(disk)?;
    if blockdev::is_block_device(path) {
        let inv = inventory::gather();
        let d = inv.disk(&disk.path).with_context(|| {
            format!(
                "{} is no longer listed among this machine's disks",
                path.display()
            )
        })?;
        if d.serial != disk.serial {
            return Err(exit::refused(format!(
                "{} has serial {:?} now, the plan was made for {:?}: refusing to write",
                path.display(),
                d.serial,
                disk.serial
            ))
            .into());
        }
        if let Some(why) = d.never_target() {
            return Err(
                exit::refused(format!("{} cannot be written: {why}", path.display())).into(),
            );
        }
    }
    Ok(())
}

/// Probes a target again: what is on it must be what the plan was made for (nothing, or what
/// its wipe was told to erase), or nothing is written.
fn recheck_contents(disk: &TargetDisk) -> Result<()> {
    let mut inv = inventory::gather();
    inventory::add_image_target(&mut inv, &disk.path)?;
    let d = inv.disk(&disk.path).with_context(|| {
        format!(
            "{} is no longer listed among this machine's disks",
            disk.path
        )
    })?;
    let now = d.found();
    let vgs = disk.deactivate_vgs.len();
    let planned = &disk.destroys[..disk.destroys.len().saturating_sub(vgs)];
    if now != planned {
        let list = |l: &[String]| {
            if l.is_empty() {
                "nothing".to_string()
            } else {
                l.join(", ")
            }
        };
        return Err(exit::refused(format!(
            "{} now holds {}, but the plan was made when it held {}: refusing to write (plan again)",
            disk.path,
            list(&now),
            list(planned)
        )).into());
    }
    Ok(())
}

/// The disks being installed and what is mounted of them; the steps below work on them in turn.
/// Dropping it unmounts the bind mounts, then the target's filesystems.
struct Target<'a> {
    plan: &'a Plan,
    opts: &'a Options,
    /// Each disk's block device (a loop device over an image file), in the plan's order.
    devs: Vec<String>,
    binds: Mounts,
    mounts: Mounts,
}

/// One step of the install: the progress line it logs, and what it does.
struct Step {
    title: fn(&Target) -> String,
    run: fn(&mut Target) -> Result<()>,
}

impl Target<'_> {
    fn devs(&self) -> Vec<&str> {
        self.devs.iter().map(String::as_str).collect()
    }
}

/// What `apply` does for this plan, in order; its progress lines (`[n/total]`) count this list.
fn steps(plan: &Plan) -> Vec<Step> {
    let mirrored = plan.mirrored();
    let mut steps = vec![
        Step {
            title: |t| format!("Erasing {}", t.plan.disk_paths().join(" and ")),
            run: wipe,
        },
        Step {
            title: |t| {
                if t.plan.mirrored() {
                    "Writing the GPT on each disk".into()
                } else {
                    "Writing the GPT".into()
                }
            },
            run: write_gpt,
        },
    ];
    if mirrored {
        steps.push(Step {
            title: |t| {
                let names: Vec<String> = t
                    .plan
                    .arrays
                    .iter()
                    .map(|a| format!("/dev/md/{}", a.name))
                    .collect();
                format!(
                    "Creating the RAID1 arrays {} (they resync while the install goes on)",
                    names.join(" and ")
                )
            },
            run: create_arrays,
        });
    }
    steps.extend([
        Step {
            title: |t| {
                let vg = &t.plan.vg.name;
                format!("Creating volume group {vg} and its logical volumes")
            },
            run: create_volumes,
        },
        Step {
            title: |_| "Making filesystems".into(),
            run: make_filesystems,
        },
        Step {
            title: |t| format!("Mounting the target on {}", t.opts.root.display()),
            run: mount_target,
        },
        Step {
            title: |_| "Unpacking the dom0 payload".into(),
            run: unpack_payload,
        },
        Step {
            title: |t| {
                format!(
                    "Binding /dev, /proc, /sys and /run into {}",
                    t.opts.root.display()
                )
            },
            run: bind_host,
        },
        Step {
            title: |t| {
                let m = t.plan.payload.as_ref();
                let names: Vec<&str> = m
                    .into_iter()
                    .flat_map(|m| &m.debs)
                    .map(|d| d.package.as_str())
                    .collect();
                format!("Installing the packages with dpkg: {}", names.join(", "))
            },
            run: install_debs,
        },
        Step {
            title: |_| "Writing the host's configuration".into(),
            run: |t| {
                t.plan
                    .files
                    .iter()
                    .try_for_each(|f| write_file(&t.opts.root, f))
            },
        },
        Step {
            title: |_| "Setting passwords and users".into(),
            run: set_users,
        },
    ]);
    steps.extend([
        Step {
            title: |t| {
                if t.plan.mirrored() {
                    "Installing GRUB on each disk".into()
                } else {
                    "Installing GRUB".into()
                }
            },
            run: |t| install_grub(t.plan, &t.opts.root, &t.devs()),
        },
        Step {
            title: |_| "Checking the result".into(),
            run: |t| verify(t.plan, &t.opts.root),
        },
        Step {
            title: |_| "Saving the install log and unmounting".into(),
            run: finish,
        },
    ]);
    if mirrored {
        steps.push(Step {
            title: |_| "Waiting for the arrays to finish their first resync".into(),
            run: |t| wait_for_sync(t.plan),
        });
    }
    steps
}

/// Runs the whole install. Call `preflight` first.
pub fn apply(plan: &Plan, opts: &Options) -> Result<()> {
    xenprov_sys::mount::private_namespace()?;
    let mut loops = Vec::new();
    let mut devs = Vec::new();
    for d in &plan.disks {
        if d.kind == DiskKind::File {
            let l = Loop::attach(Path::new(&d.path))?;
            devs.push(l.dev.clone());
            loops.push(l);
        } else {
            devs.push(d.path.clone());
        }
    }
    let result = {
        let mut target = Target {
            plan,
            opts,
            devs: devs.clone(),
            binds: Mounts::new(),
            mounts: Mounts::new(),
        };
        let steps = steps(plan);
        steps.iter().enumerate().try_for_each(|(n, step)| {
            tracing::info!("[{}/{}] {}", n + 1, steps.len(), (step.title)(&target));
            (step.run)(&mut target)
        })
        // The target drops here: everything is unmounted before a failed install is cleaned up.
    };
    if let Err(e) = &result {
        // Say what failed before cleaning up, so a second error cannot hide it.
        tracing::error!("install failed: {e:#}");
        deactivate_vg(&plan.vg.name).ok();
        for a in &plan.arrays {
            mdadm(&["mdadm", "--stop", &format!("/dev/md/{}", a.name)])
                .run()
                .ok();
        }
        let dev_names: Vec<&str> = devs.iter().map(String::as_str).collect();
        // The members' superblocks go too: a blank GPT over live md metadata would be assembled
        // again at the next boot.
        for m in plan.arrays.iter().flat_map(|a| &a.members) {
            mdadm(&["mdadm", "--zero-superblock", &plan.device(&dev_names, m)])
                .run()
                .ok();
        }
        for (d, dev) in plan.disks.iter().zip(&devs) {
            match blockdev::open_rw(Path::new(dev))
                .and_then(|mut f| blockdev::zero_ends(&mut f, d.size))
            {
                Ok(()) => tracing::error!(
                    "{} was left blank (partition table erased), not half-installed",
                    d.path
                ),
                Err(z) => {
                    tracing::error!("could not erase the partition table of {}: {z:#}", d.path)
                }
            }
        }
    }
    drop(loops);
    result
}

/// Tears down what lives on each disk: volume groups, then every signature (old md superblocks
/// among them), then the ends.
fn wipe(t: &mut Target) -> Result<()> {
    let inv = inventory::gather();
    for (disk, dev) in t.plan.disks.iter().zip(&t.devs) {
        for vg in &disk.deactivate_vgs {
            Cmd::new(&["vgchange", "-an", vg]).run()?;
        }
        erase(&inv, dev, disk.size)?;
    }
    Ok(())
}

/// Every signature of the disk's partitions and of the disk itself, then its first and last MiB.
pub fn erase(inv: &xenprov_core::inventory::Inventory, dev: &str, size: u64) -> Result<()> {
    if let Some(d) = inv.disk(dev) {
        for p in &d.partitions {
            Cmd::new(&["wipefs", "--all", "--quiet", &p.path]).run()?;
        }
    }
    Cmd::new(&["wipefs", "--all", "--quiet", dev]).run()?;
    let mut f = blockdev::open_rw(Path::new(dev))?;
    blockdev::zero_ends(&mut f, size)
}

/// The arrays, with the names, UUIDs, sizes and offsets of the plan, so that the mdadm.conf
/// written later describes them and a replacement disk can be given the same layout. They start
/// their first resync at once; the install writes on top of it.
fn create_arrays(t: &mut Target) -> Result<()> {
    let devs = t.devs();
    for a in &t.plan.arrays {
        let members: Vec<String> = a.members.iter().map(|m| t.plan.device(&devs, m)).collect();
        let mut args = vec![
            "mdadm".to_string(),
            "--create".into(),
            format!("/dev/md/{}", a.name),
            "--run".into(),
            "--level=1".into(),
            format!("--raid-devices={}", members.len()),
            format!("--metadata={}", a.metadata),
            format!("--name={}", a.name),
            format!("--homehost={}", a.homehost),
            format!("--uuid={}", a.uuid),
            format!("--size={}", a.size / 1024),
            "--bitmap=internal".into(),
        ];
        if a.data_offset > 0 {
            args.push(format!("--data-offset={}K", a.data_offset / 1024));
        }
        args.extend(members);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        mdadm(&argv).run()?;
        check_array(a)?;
    }
    Ok(())
}

/// The kernel's view of an array: RAID1, as many members as planned, of the planned size.
fn check_array(a: &MdArray) -> Result<()> {
    let md = md::sysfs(&a.name)?;
    let read = |f: &str| -> Result<String> {
        Ok(fs::read_to_string(md.join(f))
            .with_context(|| format!("reading {}", md.join(f).display()))?
            .trim()
            .to_string())
    };
    let level = read("level")?;
    let disks = read("raid_disks")?;
    let size_kib: u64 = read("component_size")?.parse().context("component_size")?;
    if level != "raid1" || disks != a.members.len().to_string() || size_kib * 1024 != a.size {
        bail!(
            "/dev/md/{} is {level} over {disks} disks of {size_kib} KiB; the plan says raid1 over {} of {} KiB",
            a.name,
            a.members.len(),
            a.size / 1024
        );
    }
    Ok(())
}

/// Waits until every array is consistent, logging the progress, then stops them: the host must
/// not power off onto a mirror whose second half is not yet a copy of the first.
fn wait_for_sync(plan: &Plan) -> Result<()> {
    for a in &plan.arrays {
        let took = md::wait_for_sync(&a.name, &|line| tracing::info!("{line}"))?;
        tracing::info!(
            "/dev/md/{}: consistent after {:.1} s more",
            a.name,
            took.as_secs_f64()
        );
    }
    for a in &plan.arrays {
        mdadm(&["mdadm", "--stop", &format!("/dev/md/{}", a.name)]).run()?;
    }
    Ok(())
}

/// Deactivates the volume group once udev has let go of its volumes: tune2fs's close sets off a
/// udev probe that holds a volume open for a moment, and `vgchange -an` fails on a volume in use.
fn deactivate_vg(vg: &str) -> Result<()> {
    let mut tries = 0;
    loop {
        blockdev::settle();
        match lvm(&["vgchange", "-an", vg]).run() {
            Ok(_) => return Ok(()),
            Err(e) if tries < 10 => {
                tracing::info!("{e:#}; trying again");
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
            Err(e) => return Err(e),
        }
    }
}

fn lvm(args: &[&str]) -> Cmd {
    let c = Cmd::new(args);
    // Without udev, device-mapper would wait forever for udev to create the nodes.
    if Path::new("/run/udev/control").exists() {
        c
    } else {
        c.env("DM_DISABLE_UDEV", "1")
    }
}

/// The GPT of each disk, then each new partition cleared of what an earlier one left.
fn write_gpt(t: &mut Target) -> Result<()> {
    let plan = t.plan;
    for (disk, disk_dev) in plan.disks.iter().zip(&t.devs) {
        write_disk_gpt(plan, disk, disk_dev)?;
    }
    Ok(())
}

fn write_disk_gpt(plan: &Plan, disk: &TargetDisk, disk_dev: &str) -> Result<()> {
    {
        let mut f = blockdev::open_rw(Path::new(disk_dev))?;
        blockdev::write_gpt(&mut f, disk, &plan.bootloader)?;
        blockdev::reread_partitions(&f, Path::new(disk_dev))?;
    }
    let part_devs: Vec<String> = disk
        .partitions
        .iter()
        .map(|p| xenprov_core::inventory::partition_path(disk_dev, p.number))
        .collect();
    blockdev::wait_for(&part_devs)?;
    for (p, dev) in disk.partitions.iter().zip(&part_devs) {
        // Old data under a new partition must not be mistaken for a filesystem or PV.
        let mut f = blockdev::open_rw(Path::new(dev))?;
        blockdev::zero(&mut f, 0, p.size.min(1 << 20))?;
        blockdev::flush(&f);
        if p.role != Role::BiosBoot {
            Cmd::new(&["wipefs", "--all", "--quiet", dev]).run()?;
        }
    }
    Ok(())
}

fn create_volumes(t: &mut Target) -> Result<()> {
    let plan = t.plan;
    let pv = plan.device(&t.devs(), &plan.vg.pv);
    lvm(&["pvcreate", "-ff", "-y", "--dataalignment", "1m", &pv]).run()?;
    lvm(&["vgcreate", "-s", "4m", &plan.vg.name, &pv]).run()?;
    for lv in &plan.vg.volumes {
        lvm(&[
            "lvcreate",
            "-y",
            "-Wy",
            "-Zy",
            "-l",
            &lv.extents.to_string(),
            "-n",
            &lv.name,
            &plan.vg.name,
        ])
        .run()?;
    }
    check_lvs(plan)?;
    Ok(())
}

fn make_filesystems(t: &mut Target) -> Result<()> {
    let (plan, devs) = (t.plan, t.devs());
    // The ext4 filesystems get their journal after the payload is written: under emulation,
    // journaling and the background inode-table zeroing (held off by noinit_itable) more than
    // doubled the unpack. A failed install is erased anyway, so nothing relies on the journal
    // before then.
    for f in &plan.filesystems {
        let dev = plan.device(&devs, &f.on);
        match f.fs {
            FsType::Ext4 => Cmd::new(&[
                "mkfs.ext4",
                "-q",
                "-F",
                "-O",
                "^has_journal",
                "-U",
                &f.uuid,
                "-L",
                &f.label,
                &dev,
            ])
            .run()?,
            FsType::Vfat => {
                Cmd::new(&["mkfs.vfat", "-F", "32", "-i", &f.uuid, "-n", &f.label, &dev]).run()?
            }
            FsType::Swap => Cmd::new(&["mkswap", "-U", &f.uuid, "-L", &f.label, &dev]).run()?,
        };
    }
    Ok(())
}

fn mount_target(t: &mut Target) -> Result<()> {
    let (plan, opts) = (t.plan, t.opts);
    let devs = t.devs.clone();
    let devs: Vec<&str> = devs.iter().map(String::as_str).collect();
    let mut order: Vec<_> = plan
        .filesystems
        .iter()
        .filter(|f| f.mount.is_some())
        .collect();
    order.sort_by_key(|f| mount_order(f.mount.as_deref().unwrap_or("none")));
    for f in order {
        let m = f.mount.as_deref().expect("filtered");
        let (fstype, options) = match f.fs {
            FsType::Vfat => ("vfat", None),
            _ => ("ext4", Some("noinit_itable")),
        };
        t.mounts.mount(
            &plan.device(&devs, &f.on),
            &opts.root.join(m.trim_start_matches('/')),
            fstype,
            options,
        )?;
    }
    Ok(())
}

fn unpack_payload(t: &mut Target) -> Result<()> {
    let (plan, opts) = (t.plan, t.opts);
    let m = plan.payload.as_ref().context("the plan has no payload")?;
    let started = std::time::Instant::now();
    let n = payload::unpack(
        &opts.payload_dir.join(&m.file),
        m,
        &opts.root,
        opts.progress,
    )?;
    tracing::info!(
        "payload: {} MiB read, {} MiB unpacked in {:.1} s, SHA-256 verified",
        n >> 20,
        m.unpacked_size >> 20,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What the tools run in the target (dpkg, chpasswd, ssh-keygen, grub-install) need of the live system.
fn bind_host(t: &mut Target) -> Result<()> {
    for (d, recursive) in [("dev", true), ("proc", true), ("sys", true), ("run", false)] {
        t.binds
            .bind(&Path::new("/").join(d), &t.opts.root.join(d), recursive)?;
    }
    Ok(())
}

/// Our packages, copied from the medium and checked against the manifest, installed by the target's
/// own dpkg so that it knows every file of them; then the copies go. Before the host's configuration
/// is written, so that the host's settings replace the packaged ones rather than meet them as a
/// conffile question.
fn install_debs(t: &mut Target) -> Result<()> {
    let (plan, opts) = (t.plan, t.opts);
    let m = plan.payload.as_ref().context("the plan has no payload")?;
    if m.debs.is_empty() {
        return Ok(());
    }
    let inside = Path::new("/var/cache/xenprov/debs");
    let dir = opts.root.join(inside.strip_prefix("/")?);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut args = vec!["dpkg".to_string(), "--install".to_string()];
    for d in &m.debs {
        let copy = payload::copy_deb(&opts.payload_dir, d, &dir)?;
        let name = copy.file_name().context("a copied package has a name")?;
        args.push(inside.join(name).to_string_lossy().into_owned());
    }
    let out = Cmd::chroot(&opts.root, &args)
        .run()
        .context("installing the payload's packages")?;
    for line in out.lines() {
        tracing::info!("dpkg: {line}");
    }
    fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok(())
}

fn set_users(t: &mut Target) -> Result<()> {
    let plan = t.plan;
    let root = &t.opts.root;
    Cmd::chroot(root, &["chpasswd", "--encrypted"])
        .stdin(format!("root:{}\n", plan.users.root_password_hash))
        .run()
        .context("setting root's password")?;
    if let Some(a) = &plan.users.admin {
        Cmd::chroot(
            root,
            &[
                "useradd",
                "--create-home",
                "--shell",
                "/bin/bash",
                "--groups",
                &a.groups.join(","),
                &a.name,
            ],
        )
        .run()?;
        Cmd::chroot(root, &["chpasswd", "--encrypted"])
            .stdin(format!("{}:{}\n", a.name, a.password_hash))
            .run()
            .with_context(|| format!("setting {}'s password", a.name))?;
    }
    for f in plan.files.iter().filter(|f| f.owner != "root") {
        Cmd::chroot(
            root,
            &["chown", "-h", &format!("{0}:{0}", f.owner), &f.path],
        )
        .run()?;
    }
    Cmd::chroot(root, &["ssh-keygen", "-A"])
        .run()
        .context("making SSH host keys")?;
    Ok(())
}

/// Saves the plan and the log on the target, unmounts it, and gives the filesystems their journal.
fn finish(t: &mut Target) -> Result<()> {
    let (plan, opts) = (t.plan, t.opts);
    let devs = t.devs.clone();
    let devs: Vec<&str> = devs.iter().map(String::as_str).collect();
    let logdir = opts.root.join("var/log/xenprov");
    fs::create_dir_all(&logdir)?;
    fs::write(logdir.join("plan.json"), plan.to_json())?;
    if let Some(log) = &opts.log {
        fs::copy(log, logdir.join("install.log"))
            .with_context(|| format!("copying {}", log.display()))?;
    }
    for f in ["plan.json", "install.log"] {
        fs::set_permissions(logdir.join(f), fs::Permissions::from_mode(0o600)).ok();
    }
    t.binds.unmount_all()?;
    t.mounts.unmount_all()?;
    for f in plan.filesystems.iter().filter(|f| f.fs == FsType::Ext4) {
        Cmd::new(&["tune2fs", "-O", "has_journal", &plan.device(&devs, &f.on)]).run()?;
    }
    deactivate_vg(&plan.vg.name)?;
    for dev in &devs {
        blockdev::flush(&fs::File::open(dev)?);
    }
    Ok(())
}

/// Compares what LVM made with the plan, extent for extent.
fn check_lvs(plan: &Plan) -> Result<()> {
    let out = lvm(&[
        "lvs",
        "--reportformat",
        "json",
        "--units",
        "b",
        "--nosuffix",
        "-o",
        "lv_name,lv_size",
        &plan.vg.name,
    ])
    .run()?;
    let v: serde_json::Value = serde_json::from_str(&out).context("reading lvs output")?;
    for lv in &plan.vg.volumes {
        let got = v["report"][0]["lv"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| x["lv_name"] == lv.name.as_str())
            .and_then(|x| x["lv_size"].as_str()?.parse::<u64>().ok());
        let want = lv.extents * plan.vg.extent_size;
        if got != Some(want) {
            bail!(
                "logical volume {} is {got:?} bytes, the plan says {want}",
                lv.name
            );
        }
    }
    Ok(())
}

fn write_file(root: &Path, f: &PlannedFile) -> Result<()> {
    let p = root.join(f.path.trim_start_matches('/'));
    let ctx = || format!("writing {}", f.path);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).with_context(ctx)?;
    }
    let mode = u32::from_str_radix(&f.mode, 8).with_context(ctx)?;
    match &f.content {
        Content::File(body) => {
            fs::write(&p, body).with_context(ctx)?;
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).with_context(ctx)?;
        }
        Content::Symlink(target) => {
            if p.symlink_metadata().is_ok() {
                fs::remove_file(&p).with_context(ctx)?;
            }
            symlink(target, &p).with_context(ctx)?;
        }
        Content::Dir => {
            fs::create_dir_all(&p).with_context(ctx)?;
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).with_context(ctx)?;
        }
    }
    Ok(())
}

/// The GRUB scripts whose entries must stay bootable when a superuser is set.
const ENTRY_SCRIPTS: [&str; 2] = ["etc/grub.d/10_linux", "etc/grub.d/20_linux_xen"];
const CLASS_LINE: &str = "CLASS=\"--class gnu-linux --class gnu --class os";

/// Marks the normal entries `--unrestricted`: with a GRUB superuser set, an entry without it
/// would ask for the password at every boot.
fn unrestrict_entries(root: &Path) -> Result<()> {
    for s in ENTRY_SCRIPTS {
        let p = root.join(s);
        let text = fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        if text.contains("--unrestricted") {
            continue;
        }
        let Some(at) = text.find(CLASS_LINE) else {
            bail!("{s} has no `{CLASS_LINE}` line to mark --unrestricted; GRUB's scripts changed");
        };
        let mut new = text.clone();
        new.insert_str(at + CLASS_LINE.len(), " --unrestricted");
        fs::write(&p, new)?;
    }
    Ok(())
}

/// grub-install's `--bootloader-id`: the ESP's `EFI/debian` directory and the NVRAM entries' label,
/// Debian's own so that the host's grub-efi upgrades keep to the same entry.
pub const BOOTLOADER_ID: &str = "debian";

fn install_grub(plan: &Plan, root: &Path, devs: &[&str]) -> Result<()> {
    if plan.bootloader.password {
        unrestrict_entries(root)?;
    }
    if plan.bootloader.bios {
        // The BIOS stage on every disk: the firmware boots whichever disk is left.
        for dev in devs {
            Cmd::chroot(root, &["grub-install", "--target=i386-pc", dev]).run()?;
        }
    }
    if plan.bootloader.uefi {
        let id = format!("--bootloader-id={BOOTLOADER_ID}");
        let mut args = vec![
            "grub-install",
            "--target=x86_64-efi",
            "--efi-directory=/boot/efi",
            &id,
        ];
        if !plan.bootloader.nvram {
            args.push("--no-nvram");
        }
        Cmd::chroot(root, &args).run()?;
        // Firmware that loses or lacks NVRAM entries boots the removable path.
        Cmd::chroot(
            root,
            &[
                "grub-install",
                "--target=x86_64-efi",
                "--efi-directory=/boot/efi",
                "--removable",
                "--no-nvram",
            ],
        )
        .run()?;
        if plan.mirrored() {
            // The other disks' ESPs become copies of this one, by the script the host keeps
            // running after upgrades; each gets its own boot entry.
            Cmd::chroot(root, &["/usr/lib/xenprov/sync-esp"]).run()?;
            if plan.bootloader.nvram {
                add_boot_entries(plan, root, devs)?;
            }
        }
    }
    Cmd::chroot(root, &["update-grub"]).run()?;
    Ok(())
}

/// One NVRAM entry per further disk, for the loader grub-install put on the first ESP.
fn add_boot_entries(plan: &Plan, root: &Path, devs: &[&str]) -> Result<()> {
    let loader = if root
        .join(format!("boot/efi/EFI/{BOOTLOADER_ID}/shimx64.efi"))
        .exists()
    {
        format!("\\EFI\\{BOOTLOADER_ID}\\shimx64.efi")
    } else {
        format!("\\EFI\\{BOOTLOADER_ID}\\grubx64.efi")
    };
    for (i, f) in plan
        .filesystems
        .iter()
        .filter(|f| f.fs == FsType::Vfat && f.mount.is_none())
        .enumerate()
    {
        let xenprov_core::plan::On::Partition { disk, number } = f.on else {
            continue;
        };
        Cmd::chroot(
            root,
            &[
                "efibootmgr",
                "--quiet",
                "--create",
                "--disk",
                devs[disk],
                "--part",
                &number.to_string(),
                "--label",
                &format!("{BOOTLOADER_ID} (disk {})", i + 2),
                "--loader",
                &loader,
            ],
        )
        .run()?;
    }
    Ok(())
}

/// Checks the installed boot configuration says what the plan says.
fn verify(plan: &Plan, root: &Path) -> Result<()> {
    let cfg_path = root.join("boot/grub/grub.cfg");
    let cfg = fs::read_to_string(&cfg_path).context("reading the generated grub.cfg")?;
    let xen_line = cfg
        .lines()
        .find(|l| l.trim_start().starts_with("multiboot2") && l.contains("xen"))
        .context("grub.cfg has no multiboot2 entry for Xen")?;
    if !xen_line.contains(&plan.xen_cmdline) {
        bail!(
            "grub.cfg's Xen entry does not carry the planned options:\n  {}\n  wanted: {}",
            xen_line.trim(),
            plan.xen_cmdline
        );
    }
    Cmd::chroot(root, &["grub-script-check", "/boot/grub/grub.cfg"]).run()?;
    if plan.bootloader.uefi && !root.join("boot/efi/EFI/BOOT/BOOTX64.EFI").exists() {
        bail!("the removable UEFI loader EFI/BOOT/BOOTX64.EFI is missing on the ESP");
    }
    if plan.bootloader.uefi && plan.bootloader.nvram {
        // The installed disk boots next by the firmware's own order, not by a netboot server's
        // word: read back what grub-install left.
        let next = nvram::next_boot(&Cmd::chroot(root, &["efibootmgr"]).run()?)?;
        if !next.label.starts_with(BOOTLOADER_ID) {
            bail!(
                "the firmware boots Boot{} ({:?}) next, not the disk just installed ({BOOTLOADER_ID:?}); \
                 grub-install did not put its entry first",
                next.number,
                next.label
            );
        }
        tracing::info!(
            "next boot: Boot{} {:?}, the installed disk",
            next.number,
            next.label
        );
    }
    if plan.mirrored() {
        let conf = fs::read_to_string(root.join("etc/mdadm/mdadm.conf"))
            .context("reading the target's mdadm.conf")?;
        for a in &plan.arrays {
            if !conf.contains(&format!("UUID={}", a.uuid)) {
                bail!(
                    "the target's mdadm.conf does not name /dev/md/{} (UUID {})",
                    a.name,
                    a.uuid
                );
            }
        }
    }
    // A planned link whose target is missing (a unit whose package did not install) would enable
    // nothing, silently.
    for f in &plan.files {
        if let Content::Symlink(to) = &f.content {
            let at = root.join(f.path.trim_start_matches('/'));
            let to = match to.strip_prefix('/') {
                Some(absolute) => root.join(absolute),
                None => at.parent().unwrap_or(root).join(to),
            };
            if !to.exists() {
                bail!(
                    "{} links to {}, which is not on the target",
                    f.path,
                    to.display()
                );
            }
        }
    }
    Ok(())
}
