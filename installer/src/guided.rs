//! Guided mode: a few questions that produce an `Answer`, the same type an answer file gives, which
//! then goes through the same plan and apply. It has no install path of its own.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use xenprov_core::answer::{
    self, Answer, BAUDS, DiskSpec, Firmware, Lvm, NetMode, Raid, Serial, Volume,
};
use xenprov_core::inventory::{Disk, Inventory};
use xenprov_core::net::{self, Cidr};
use xenprov_core::password;
use xenprov_core::size::{MIB, Size, human};

use crate::cli::GuidedArgs;
use crate::prompt::{Prompter, Terminal};
use crate::{logging, verbs};

fn parse_check<T>(f: impl Fn(&str) -> Result<T, String>) -> impl Fn(&str) -> Result<(), String> {
    move |s| f(s).map(|_| ())
}

fn ask_size(p: &mut dyn Prompter, prompt: &str, default: Size) -> Result<Size> {
    let s = p.input(
        prompt,
        Some(&default.to_string()),
        &parse_check(str::parse::<Size>),
    )?;
    Ok(s.parse().expect("checked"))
}

/// Asks everything an answer file holds; returns it checked by the answer file's own reader.
pub fn ask(p: &mut dyn Prompter, inv: &Inventory) -> Result<Answer> {
    let mut a: Answer = Answer::parse(concat!(
        "[disk]\ntarget = \"/dev/null\"\n",
        "[system]\nhostname = \"xen\"\nroot-password-hash = \"!\"\n"
    ))
    .expect("the defaults parse");
    ask_disk(p, inv, &mut a)?;
    ask_layout(p, &mut a)?;
    ask_xen(p, inv, &mut a)?;
    ask_console(p, &mut a)?;
    ask_network(p, inv, &mut a)?;
    ask_system(p, &mut a)?;
    if p.confirm(
        "Protect GRUB's command line and menu editing with a password?",
        false,
    )? {
        a.grub.password_hash = Some(password::grub_pbkdf2(&p.password("GRUB password")?));
    }
    a.repo.enable = p.confirm("Run the repo server for guest installs?", true)?;

    // The answer file's reader has the last word, so both paths accept exactly the same answers.
    Answer::parse(&a.to_toml())
        .map_err(|d| anyhow::anyhow!("the answers do not make a valid answer file:\n{d}"))
}

/// Disks smaller than this are not offered as halves of a mirror: the default dom0 alone takes 10 GiB.
const MIRROR_MIN: u64 = 8 << 30;

/// The disk, among those that may be written, or two of them mirrored when the machine has two
/// that could be, and whether to erase what they hold.
fn ask_disk(p: &mut dyn Prompter, inv: &Inventory, a: &mut Answer) -> Result<()> {
    let disks: Vec<_> = inv
        .disks
        .iter()
        .filter(|d| d.never_target().is_none())
        .collect();
    if disks.is_empty() {
        bail!(
            "no disk here can be installed on:\n{}",
            verbs::describe_inventory(inv)
        );
    }
    let mirrorable: Vec<_> = disks
        .iter()
        .copied()
        .filter(|d| !d.removable && d.size >= MIRROR_MIN)
        .collect();
    let mirror = mirrorable.len() >= 2
        && p.confirm(
            "Mirror the dom0 across two disks (RAID1), so that the host survives either one failing?",
            true,
        )?;
    let chosen = if mirror {
        let first = pick_disk(
            p,
            &mirrorable,
            "First disk of the mirror (everything on it will be erased)",
        )?;
        let rest: Vec<_> = mirrorable
            .into_iter()
            .filter(|d| d.path != first.path)
            .collect();
        let second = pick_disk(
            p,
            &rest,
            "Second disk of the mirror (everything on it will be erased)",
        )?;
        vec![first, second]
    } else {
        vec![pick_disk(
            p,
            &disks,
            "Disk to install on (everything on it will be erased)",
        )?]
    };
    let mut wipe = false;
    for d in &chosen {
        if d.has_data() {
            let what = if d.partitions.is_empty() {
                d.signatures.join(", ")
            } else {
                format!("{} partitions", d.partitions.len())
            };
            if !p.confirm(&format!("{} holds data ({what}). Erase it?", d.path), false)? {
                bail!("stopped: {} holds data and erasing it was declined", d.path);
            }
            wipe = true;
        }
    }
    let paths: Vec<String> = chosen.iter().map(|d| d.path.clone()).collect();
    a.disk = DiskSpec {
        target: (!mirror).then(|| paths[0].clone()),
        targets: if mirror { paths } else { Vec::new() },
        matcher: None,
        raid: if mirror { Raid::Raid1 } else { Raid::None },
        raid_mail: a.disk.raid_mail.clone(),
        wipe,
    };
    Ok(())
}

fn pick_disk<'i>(p: &mut dyn Prompter, disks: &[&'i Disk], prompt: &str) -> Result<&'i Disk> {
    let items: Vec<String> = disks
        .iter()
        .map(|d| {
            let mut s = format!("{}  {}", d.path, human(d.size));
            if let Some(m) = &d.model {
                s += &format!("  {m}");
            }
            if let Some(x) = &d.serial {
                s += &format!("  serial {x}");
            }
            if d.has_data() {
                s += "  (holds data)";
            }
            s
        })
        .collect();
    Ok(disks[p.select(prompt, &items, 0)?])
}

/// Firmware, volume group and the size of each dom0 volume.
fn ask_layout(p: &mut dyn Prompter, a: &mut Answer) -> Result<()> {
    let fw = [Firmware::BiosUefi, Firmware::Uefi, Firmware::Bios];
    let names: Vec<String> = ["BIOS and UEFI", "UEFI only", "BIOS only"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.boot.firmware = fw[p.select("Boot firmware to install for", &names, 0)?];

    a.lvm.vg = p.input("Volume group name", Some("dsk"), &|s| {
        answer::check_lvm_name(s, "volume group")
    })?;
    a.lvm.volumes = Lvm::default_volumes()
        .into_iter()
        .map(|v| -> Result<Volume> {
            let label = v.mount.clone().unwrap_or_else(|| "swap".into());
            Ok(Volume {
                size: ask_size(
                    p,
                    &format!("Size of {label} (logical volume {})", v.name),
                    v.size,
                )?,
                ..v
            })
        })
        .collect::<Result<_>>()?;
    Ok(())
}

/// The dom0's memory and vCPUs.
fn ask_xen(p: &mut dyn Prompter, inv: &Inventory, a: &mut Answer) -> Result<()> {
    let mem_default = Size(((inv.memory / 2).min(2048 * MIB) / (256 * MIB)).max(2) * 256 * MIB);
    let m = ask_size(p, "dom0 memory", mem_default)?;
    a.xen.dom0_mem = xenprov_core::size::XenSize::new(Size(m.bytes() / MIB * MIB));
    let vcpus = p.input(
        "dom0 vCPUs",
        Some(&inv.cpu.count.min(2).to_string()),
        &|s| {
            s.parse::<u32>()
                .ok()
                .filter(|n| (1..=512).contains(n))
                .map(|_| ())
                .ok_or_else(|| "a number from 1 to 512".into())
        },
    )?;
    a.xen.dom0_max_vcpus = vcpus.parse().expect("checked");
    Ok(())
}

/// The serial console and its speed.
fn ask_console(p: &mut dyn Prompter, a: &mut Answer) -> Result<()> {
    let serials = [Serial::Com1, Serial::Com2, Serial::None];
    let names: Vec<String> = ["com1 (ttyS0)", "com2 (ttyS1)", "none"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.console.serial = serials[p.select("Serial console", &names, 0)?];
    if a.console.serial != Serial::None {
        let bauds: Vec<String> = BAUDS.iter().map(u32::to_string).collect();
        a.console.baud = BAUDS[p.select("Serial speed", &bauds, BAUDS.len() - 1)?];
    }
    Ok(())
}

/// The bridge's interface and its address.
fn ask_network(p: &mut dyn Prompter, inv: &Inventory, a: &mut Answer) -> Result<()> {
    if inv.nics.is_empty() {
        bail!("this machine has no network interface; a Xen host needs one for its bridge");
    }
    let nics: Vec<String> = inv
        .nics
        .iter()
        .map(|n| {
            format!(
                "{}  {}  {}",
                n.name,
                n.mac,
                if n.carrier == Some(true) {
                    "link up"
                } else {
                    "no link"
                }
            )
        })
        .collect();
    let first_up = inv
        .nics
        .iter()
        .position(|n| n.carrier == Some(true))
        .unwrap_or(0);
    a.network.interface = inv.nics
        [p.select("Network interface for the bridge", &nics, first_up)?]
    .name
    .clone();
    let modes: Vec<String> = vec!["dhcp".into(), "static".into()];
    a.network.mode = [NetMode::Dhcp, NetMode::Static][p.select("Address", &modes, 0)?];
    if a.network.mode == NetMode::Static {
        let addr = p.input(
            "Address/prefix (e.g. 192.0.2.10/24)",
            None,
            &parse_check(str::parse::<Cidr>),
        )?;
        let addr: Cidr = addr.parse().expect("checked");
        a.network.address = Some(addr);
        let gw = p.input("Gateway", None, &|s| {
            net::parse_ipv4(s).and_then(|g| net::check_gateway(&addr, g))
        })?;
        a.network.gateway = Some(gw.parse().expect("checked"));
        let dns = p.input(
            "DNS servers (space-separated, may be empty)",
            Some(""),
            &|s| {
                s.split_whitespace()
                    .try_for_each(|x| net::parse_ipv4(x).map(|_| ()))
            },
        )?;
        a.network.dns = dns
            .split_whitespace()
            .map(|x| x.parse().expect("checked"))
            .collect();
    }
    Ok(())
}

/// Host name, root's password, the admin user and their SSH key.
fn ask_system(p: &mut dyn Prompter, a: &mut Answer) -> Result<()> {
    a.system.hostname = p.input("Host name", Some("xen1"), &net::check_hostname)?;
    let root_pw = p.password("Root password")?;
    a.system.root_password_hash = password::sha512_crypt(&root_pw);
    // Each answer is checked as the answer file's key is, so a mistake is asked again at once.
    let admin = p.input("Admin user in group sudo (empty: none)", Some(""), &|s| {
        if s.is_empty() {
            Ok(())
        } else {
            answer::check_user_name(s).map(drop)
        }
    })?;
    if !admin.is_empty() {
        a.system.admin_user = Some(admin.clone());
        if !p.confirm(&format!("Same password for {admin} as for root?"), true)? {
            a.system.admin_password_hash = Some(password::sha512_crypt(
                &p.password(&format!("Password for {admin}"))?,
            ));
        }
        let key = p.input(
            &format!("SSH public key for {admin} (empty: none)"),
            Some(""),
            &|s| {
                if s.trim().is_empty() {
                    Ok(())
                } else {
                    answer::check_ssh_key(s.trim())
                }
            },
        )?;
        if !key.trim().is_empty() {
            a.system.ssh_authorized_keys = vec![key.trim().to_string()];
        }
    }
    Ok(())
}

pub fn guided(args: GuidedArgs) -> Result<ExitCode> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "guided mode asks questions on a terminal and there is none; use an answer file with `apply`"
        );
    }
    let inv = verbs::machine(&args.sources, None)?;
    let answer = ask(&mut Terminal, &inv)?;
    if let Some(path) = &args.save {
        std::fs::write(path, answer.to_toml())
            .with_context(|| format!("saving {}", path.display()))?;
        eprintln!("Saved the answer file as {}", path.display());
    }
    if args.no_install {
        return Ok(ExitCode::SUCCESS);
    }
    let p = verbs::make_plan(&answer, &inv, &args.sources)?;
    if !verbs::confirm(&p, &mut Terminal)? {
        eprintln!("Stopped; nothing was written.");
        return Ok(ExitCode::from(xenprov_core::exit::REFUSED));
    }
    logging::init(true);
    verbs::run_apply(&p, &args.sources, args.progress)?;
    tracing::info!(
        "xenprov: install complete on {}",
        p.disk_paths().join(" and ")
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::Script;
    use xenprov_core::inventory::{BootMode, Cpu, Nic};

    fn inv() -> Inventory {
        Inventory {
            firmware: BootMode::Uefi,
            cpu: Cpu {
                model: "x".into(),
                count: 4,
                hvm: Some("vmx".into()),
            },
            memory: 16 << 30,
            disks: vec![
                Disk {
                    path: "/dev/sr0".into(),
                    size: 1 << 30,
                    logical_sector: 2048,
                    install_medium: true,
                    ..Default::default()
                },
                Disk {
                    path: "/dev/nvme0n1".into(),
                    size: 500 << 30,
                    logical_sector: 512,
                    serial: Some("S1".into()),
                    signatures: vec!["gpt".into()],
                    ..Default::default()
                },
            ],
            nics: vec![
                Nic {
                    name: "eno1".into(),
                    mac: "00:16:3e:00:00:01".into(),
                    carrier: Some(false),
                },
                Nic {
                    name: "eno2".into(),
                    mac: "00:16:3e:00:00:02".into(),
                    carrier: Some(true),
                },
            ],
            volume_groups: vec![],
        }
    }

    #[test]
    fn guided_answers_make_the_same_answer_a_file_would() {
        let mut s = Script::new(&[
            "/dev/nvme0n1",
            "y", // disk, erase
            "UEFI only",
            "vg0",
            "8G",
            "",
            "",
            "",
            "2G", // firmware, vg, sizes
            "4096M",
            "4",
            "com2",
            "38400", // dom0, console
            "",
            "static",
            "192.0.2.10/24",
            "192.0.2.1",
            "192.0.2.53", // network
            "xen7",
            "secret",
            "ops",
            "y",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB ops@x",
            "n",
            "y",
        ]);
        let a = ask(&mut s, &inv()).unwrap();
        assert!(s.answers.is_empty(), "unused answers: {:?}", s.answers);
        assert!(
            !s.asked.iter().any(|q| q.contains("sr0")),
            "the install medium must not be offered"
        );
        let want = Answer::parse(&format!(
            r#"[disk]
target = "/dev/nvme0n1"
wipe = true
[boot]
firmware = "uefi"
[lvm]
vg = "vg0"
volumes = [
  {{ name = "root", mount = "/", size = "8G" }},
  {{ name = "var", mount = "/var", size = "2G" }},
  {{ name = "tmp", mount = "/tmp", size = "512M" }},
  {{ name = "home", mount = "/home", size = "512M" }},
  {{ name = "swap", fs = "swap", size = "2G" }},
]
[xen]
dom0-mem = "4G"
dom0-max-vcpus = 4
[console]
serial = "com2"
baud = 38400
[network]
interface = "eno2"
mode = "static"
address = "192.0.2.10/24"
gateway = "192.0.2.1"
dns = ["192.0.2.53"]
[system]
hostname = "xen7"
root-password-hash = '{h}'
admin-user = "ops"
ssh-authorized-keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB ops@x"]
[repo]
enable = true
"#,
            h = a.system.root_password_hash
        ))
        .unwrap();
        assert_eq!(a, want);
        assert!(a.system.root_password_hash.starts_with("$6$"));
        assert!(
            !a.to_toml().contains("secret"),
            "no plaintext in the answer"
        );
    }

    #[test]
    fn each_answer_is_checked_as_the_file_key_is() {
        let up_to_admin = [
            "/dev/nvme0n1",
            "y",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "xen7",
            "secret",
        ];
        let mut s = Script::new(&[&up_to_admin[..], &["root"]].concat());
        let e = ask(&mut s, &inv()).unwrap_err().to_string();
        assert!(
            e.starts_with("Admin user in group sudo (empty: none): `root` is a system account"),
            "{e}"
        );
        let mut s = Script::new(&[&up_to_admin[..], &["ops", "y", "AAAAC3Nz ops@x"]].concat());
        let e = ask(&mut s, &inv()).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "SSH public key for ops (empty: none): `AAAAC3Nz` is not an SSH key type"
            ),
            "{e}"
        );
    }

    #[test]
    fn two_suitable_disks_are_offered_as_a_mirror() {
        let mut i = inv();
        i.disks.push(Disk {
            path: "/dev/nvme1n1".into(),
            size: 480 << 30,
            logical_sector: 512,
            serial: Some("S2".into()),
            ..Default::default()
        });
        let mut s = Script::new(&["y", "/dev/nvme1n1", "/dev/nvme0n1", "y"]);
        let mut a = Answer::parse(
            "[disk]\ntarget = \"/x\"\n[system]\nhostname = \"h\"\nroot-password-hash = \"!\"\n",
        )
        .unwrap();
        ask_disk(&mut s, &i, &mut a).unwrap();
        assert!(s.answers.is_empty(), "unused answers: {:?}", s.answers);
        assert_eq!(a.disk.targets, ["/dev/nvme1n1", "/dev/nvme0n1"]);
        assert_eq!(
            (a.disk.raid, a.disk.target.as_deref(), a.disk.wipe),
            (Raid::Raid1, None, true)
        );
        assert!(s.asked.iter().any(|q| q.starts_with("Mirror the dom0")));
        // The saved answer reads back as a file would.
        assert_eq!(Answer::parse(&a.to_toml()).unwrap().disk, a.disk);
    }

    #[test]
    fn declining_to_erase_stops() {
        let mut s = Script::new(&["/dev/nvme0n1", "n"]);
        let e = ask(&mut s, &inv()).unwrap_err().to_string();
        assert!(e.contains("holds data"), "{e}");
    }
}
