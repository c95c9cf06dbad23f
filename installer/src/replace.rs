//! `disk replace`: brings a degraded mirror back to two disks on the installed host. The new disk
//! gets the GPT the install plan gave the missing one, joins both arrays, gets the ESP and GRUB's
//! BIOS stage, and the resync is reported until it ends.

use std::fs;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use xenprov_core::exit;
use xenprov_core::plan::{On, Plan};
use xenprov_core::replace::{Replacement, replacement};
use xenprov_core::size::human;
use xenprov_sys::Cmd;

use crate::apply::BOOTLOADER_ID;
use crate::blockdev;
use crate::cli::ReplaceArgs;
use crate::inventory;
use crate::md::{self, mdadm};

pub fn replace(args: &ReplaceArgs) -> Result<ExitCode> {
    let text = fs::read_to_string(&args.plan)
        .with_context(|| format!("reading the install plan {}", args.plan.display()))?;
    let plan: Plan = serde_json::from_str(&text)
        .with_context(|| format!("{} is not an install plan", args.plan.display()))?;
    let inv = inventory::gather();
    let new = inv.disk(&args.new).with_context(|| {
        format!(
            "{} is not a disk of this machine; its disks are:\n{}",
            args.new,
            crate::verbs::describe_inventory(&inv)
        )
    })?;
    let slot = missing_slot(&plan)?;
    let r = replacement(&plan, slot, new, args.wipe).map_err(|es| {
        let text: Vec<String> = es.iter().map(|e| e.to_string()).collect();
        exit::refused(text.join("\n"))
    })?;
    println!(
        "{} takes the place of disk {} of the mirror ({} before):",
        r.disk.path,
        slot + 1,
        plan.disks[slot].path
    );
    for p in &r.disk.partitions {
        println!("  partition {} {} {}", p.number, p.name, human(p.size));
    }
    let added = write(&plan, &r, args.wipe)?;
    if args.no_wait {
        println!("the arrays resync in the background; see /proc/mdstat");
        return Ok(ExitCode::SUCCESS);
    }
    // The resync of each array runs from its member's add, through GRUB and the ESP copy, to
    // its end: that whole time is its rate, whatever part of it the wait saw.
    for (a, added) in plan.arrays.iter().zip(added) {
        md::wait_for_sync(&a.name, &|l| println!("{l}"))?;
        let secs = added.elapsed().as_secs_f64().max(0.001);
        println!(
            "/dev/md/{}: {} resynced {:.1} s after its member was added, {:.1} MiB/s",
            a.name,
            human(a.size),
            secs,
            a.size as f64 / secs / (1 << 20) as f64
        );
    }
    println!("the mirror is whole again");
    Ok(ExitCode::SUCCESS)
}

/// The plan's disk none of whose partitions is a member of a running array: the one to replace.
fn missing_slot(plan: &Plan) -> Result<usize> {
    if !plan.mirrored() {
        return Err(exit::refused(
            "this host was installed on one disk; there is no mirror to bring back",
        )
        .into());
    }
    let mut present = vec![false; plan.disks.len()];
    for a in &plan.arrays {
        for dev in md::members(&a.name)? {
            let guid = Cmd::new(&["blkid", "-p", "-o", "value", "-s", "PART_ENTRY_UUID", &dev])
                .run()
                .unwrap_or_default()
                .trim()
                .to_uppercase();
            for (i, d) in plan.disks.iter().enumerate() {
                if d.partitions.iter().any(|p| p.guid == guid) {
                    present[i] = true;
                }
            }
        }
    }
    match present.iter().position(|p| !p) {
        Some(i) if present.iter().any(|p| *p) => Ok(i),
        Some(_) => {
            bail!("no member of the plan's arrays is running; is this the host the plan installed?")
        }
        None => Err(exit::refused(
            "both disks of the mirror are in the arrays; there is nothing to replace",
        )
        .into()),
    }
}

/// Writes the new disk and adds its members; gives when each array's member was added.
fn write(plan: &Plan, r: &Replacement, wipe: bool) -> Result<Vec<Instant>> {
    let dev = r.disk.path.as_str();
    if wipe {
        crate::apply::erase(&inventory::gather(), dev, r.disk.size)?;
    }
    {
        let mut f = blockdev::open_rw(Path::new(dev))?;
        blockdev::zero_ends(&mut f, r.disk.size)?;
        blockdev::write_gpt(&mut f, &r.disk, &plan.bootloader)?;
        blockdev::reread_partitions(&f, Path::new(dev))?;
    }
    let part = |n: u32| xenprov_core::inventory::partition_path(dev, n);
    let parts: Vec<String> = r.disk.partitions.iter().map(|p| part(p.number)).collect();
    blockdev::wait_for(&parts)?;
    for p in &parts {
        Cmd::new(&["wipefs", "--all", "--quiet", p]).run()?;
    }
    let mut added = Vec::new();
    for a in &plan.arrays {
        let Some(On::Partition { number, .. }) = a.members.get(r.slot) else {
            bail!(
                "the plan's /dev/md/{} has no member on disk {}",
                a.name,
                r.slot + 1
            );
        };
        let array = md::sysfs(&a.name)?;
        let array = format!(
            "/dev/{}",
            array
                .parent()
                .and_then(|p| p.file_name())
                .context("an md sysfs directory has a device")?
                .to_string_lossy()
        );
        mdadm(&["mdadm", "--manage", &array, "--add", &part(*number)]).run()?;
        added.push(Instant::now());
        println!("added {} to /dev/md/{}", part(*number), a.name);
    }
    if plan.bootloader.bios {
        Cmd::new(&["grub-install", "--target=i386-pc", dev]).run()?;
        println!("GRUB's BIOS stage written to {dev}");
    }
    if let Some((number, id, label)) = &r.esp {
        let fat_id: String = id.chars().filter(|c| *c != '-').collect();
        Cmd::new(&[
            "mkfs.vfat",
            "-F",
            "32",
            "-i",
            &fat_id,
            "-n",
            label,
            &part(*number),
        ])
        .run()?;
        let efi = Path::new("/boot/efi");
        if !is_mounted(efi) {
            // The ESP that /boot/efi mounts was the missing disk's: the new one has its id.
            Cmd::new(&["mount", "/boot/efi"]).run()?;
            for extra in [
                &["--bootloader-id=debian", "--no-nvram"][..],
                &["--removable", "--no-nvram"],
            ] {
                Cmd::new(&[
                    "grub-install",
                    "--target=x86_64-efi",
                    "--efi-directory=/boot/efi",
                ])
                .args(extra)
                .run()?;
            }
        }
        Cmd::new(&["/usr/lib/xenprov/sync-esp"]).run()?;
        println!(
            "ESP {label} (id {id}) on {} is a copy of /boot/efi",
            part(*number)
        );
        if Path::new("/sys/firmware/efi").exists() {
            let started = Instant::now();
            Cmd::new(&[
                "efibootmgr",
                "--quiet",
                "--create",
                "--disk",
                dev,
                "--part",
                &number.to_string(),
                "--label",
                &format!("{BOOTLOADER_ID} (disk {})", r.slot + 1),
                "--loader",
                &format!("\\EFI\\{BOOTLOADER_ID}\\grubx64.efi"),
            ])
            .run()?;
            println!(
                "NVRAM boot entry added ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(added)
}

fn is_mounted(p: &Path) -> bool {
    Cmd::new(&["mountpoint", "-q"]).arg(p).run().is_ok()
}
