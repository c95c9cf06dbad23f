//! The plain verbs: validate, schema, inventory, plan, apply, hash-password.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use xenprov_core::answer::{self, Answer};
use xenprov_core::exit;
use xenprov_core::inventory::Inventory;
use xenprov_core::password;
use xenprov_core::payload::Manifest;
use xenprov_core::plan::{self, Inputs, Plan, Refusal};
use xenprov_core::render::Templates;
use xenprov_core::size::human;

use crate::cli::{ApplyArgs, HashArgs, InventoryArgs, PlanArgs, Sources, ValidateArgs};
use crate::io::progress::Mode;
use crate::prompt::{Prompter, Terminal};
use crate::{apply, inventory, logging, payload};

/// Where the live environment mounts the install medium.
pub const MEDIUM: &str = "/run/xenprov/medium";

/// Reads and checks an answer file; every problem is printed as `FILE:LINE:COL: key: message`.
pub fn load_answer(path: &Path) -> Result<Answer> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Answer::parse(&text).map_err(|diags| exit::invalid(diags.in_file(path)).into())
}

pub fn validate(a: ValidateArgs) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("reading {}", a.file.display()))?;
    match Answer::parse(&text) {
        Ok(_) if a.json => println!("{}", serde_json::json!({"valid": true, "errors": []})),
        Ok(_) => println!("{}: valid", a.file.display()),
        Err(d) if a.json => {
            println!("{}", serde_json::json!({"valid": false, "errors": d.0}));
            return Ok(ExitCode::from(exit::INVALID));
        }
        Err(d) => {
            for e in &d.0 {
                eprintln!("{}:{e}", a.file.display());
            }
            eprintln!(
                "{}: {} problem(s), nothing was written",
                a.file.display(),
                d.0.len()
            );
            return Ok(ExitCode::from(exit::INVALID));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn schema() -> Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(&answer::schema())?);
    Ok(ExitCode::SUCCESS)
}

pub fn inventory(a: InventoryArgs) -> Result<ExitCode> {
    let inv = inventory::gather();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&inv)?);
    } else {
        print!("{}", describe_inventory(&inv));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn describe_inventory(inv: &Inventory) -> String {
    let mut s = format!(
        "Firmware: {:?}\nCPU: {} x {}\nMemory: {}\n",
        inv.firmware,
        inv.cpu.count,
        inv.cpu.model,
        human(inv.memory)
    );
    match &inv.cpu.hvm {
        Some(f) => s += &format!("Hardware virtualization: {f}: PV, PVH and HVM guests can run\n"),
        None => {
            s += "Hardware virtualization: none (no vmx or svm flag; it may be off in the firmware): \
                  only PV guests will run; PVH and HVM guests need VT-x or AMD-V\n"
        }
    }
    s += "\nDisks:\n";
    for d in &inv.disks {
        let mut notes = Vec::new();
        if let Some(m) = &d.model {
            notes.push(format!("model {m}"));
        }
        if let Some(x) = &d.serial {
            notes.push(format!("serial {x}"));
        }
        notes.push(format!(
            "sectors {}/{}",
            d.logical_sector, d.physical_sector
        ));
        if d.rotational {
            notes.push("rotational".into());
        }
        if d.removable {
            notes.push("removable".into());
        }
        s += &format!("  {} {} ({})\n", d.path, human(d.size), notes.join(", "));
        if !d.signatures.is_empty() {
            s += &format!("      signatures: {}\n", d.signatures.join(", "));
        }
        for p in &d.partitions {
            s += &format!(
                "      {} {} {} {}\n",
                p.path,
                human(p.size),
                p.fstype.as_deref().unwrap_or("-"),
                p.label.as_deref().unwrap_or("")
            );
        }
        if !d.holders.is_empty() {
            s += &format!("      held by: {}\n", d.holders.join(", "));
        }
        if let Some(why) = d.never_target() {
            s += &format!("      never a target: {why}\n");
        }
    }
    s += "\nNetwork interfaces:\n";
    for n in &inv.nics {
        let link = match n.carrier {
            Some(true) => "link up",
            Some(false) => "no link",
            None => "link unknown",
        };
        s += &format!("  {} {} ({link})\n", n.name, n.mac);
    }
    if !inv.volume_groups.is_empty() {
        s += "\nVolume groups:\n";
        for v in &inv.volume_groups {
            s += &format!("  {} on {}\n", v.name, v.pvs.join(", "));
        }
    }
    s
}

/// The inventory to plan against: recorded, or this machine with a disk image target added.
pub fn machine(sources: &Sources, answer: Option<&Answer>) -> Result<Inventory> {
    let mut inv = match &sources.inventory {
        Some(p) => inventory::load(p)?,
        None => inventory::gather(),
    };
    if let Some(t) = answer.and_then(|a| a.disk.target.as_deref()) {
        inventory::add_image_target(&mut inv, t)?;
    }
    Ok(inv)
}

pub fn payload_dir(sources: &Sources) -> PathBuf {
    sources
        .payload
        .clone()
        .unwrap_or_else(|| Path::new(MEDIUM).join("xenprov"))
}

/// The payload's manifest when there is one; planning without it cannot check the volumes fit.
pub fn manifest(sources: &Sources) -> Result<Option<Manifest>> {
    let p = payload_dir(sources).join("payload.json");
    if sources.payload.is_none() && !p.exists() {
        return Ok(None);
    }
    payload::load_manifest(&p).map(Some)
}

pub fn templates(sources: &Sources) -> Result<Templates> {
    match &sources.templates {
        Some(d) => Ok(Templates::with_overrides(d)?),
        None => Ok(Templates::builtin()),
    }
}

pub fn make_plan(answer: &Answer, inv: &Inventory, sources: &Sources) -> Result<Plan> {
    let m = manifest(sources)?;
    let t = templates(sources)?;
    plan::plan(Inputs {
        answer,
        inventory: inv,
        payload: m.as_ref(),
        templates: &t,
    })
    .map_err(|r| match r {
        Refusal::Unfit(es) => {
            let lines: Vec<String> = es.iter().map(|e| e.to_string()).collect();
            anyhow::Error::new(exit::refused(format!(
                "this answer cannot be installed here; nothing was written:\n{}",
                lines.join("\n")
            )))
        }
        Refusal::Render(e) => anyhow::anyhow!(e),
    })
}

pub fn plan(a: PlanArgs) -> Result<ExitCode> {
    let answer = load_answer(&a.answer)?;
    let inv = machine(&a.sources, Some(&answer))?;
    let p = make_plan(&answer, &inv, &a.sources)?;
    if a.json {
        print!("{}", p.to_json());
    } else {
        print!("{}", p.describe(a.show_files));
        if p.payload.is_none() {
            println!(
                "\n(no payload manifest found: the volumes were not checked against the payload's size)"
            );
        }
        println!("\nThis was a plan only; nothing was written.");
    }
    Ok(ExitCode::SUCCESS)
}

/// Shows the plan and asks for the disks' paths to be typed back.
pub fn confirm(p: &Plan, prompt: &mut dyn Prompter) -> Result<bool> {
    eprint!("{}", p.describe(false));
    let want = p.disk_paths().join(" ");
    let typed = prompt.input(
        &format!(
            "Type {want} to erase {} and install, or anything else to stop",
            if p.disks.len() > 1 { "them" } else { "it" }
        ),
        None,
        &|_| Ok(()),
    )?;
    Ok(typed.split_whitespace().collect::<Vec<_>>().join(" ") == want)
}

/// Applies a plan with logging to the console and to `/run/xenprov/install.log`.
pub fn run_apply(p: &Plan, sources: &Sources, progress: Mode) -> Result<()> {
    let log = logging::log_file();
    let opts = apply::Options {
        payload_dir: payload_dir(sources),
        progress: progress.resolve(),
        root: PathBuf::from("/run/xenprov/target"),
        log: log.clone(),
    };
    apply::preflight(p, &opts)?;
    apply::apply(p, &opts)
}

pub fn apply(a: ApplyArgs) -> Result<ExitCode> {
    let answer = load_answer(&a.answer)?;
    let inv = machine(&a.sources, Some(&answer))?;
    let p = make_plan(&answer, &inv, &a.sources)?;
    if !a.yes {
        if !std::io::stdin().is_terminal() {
            bail!(
                "apply asks for confirmation on a terminal and there is none; pass --yes to install unattended"
            );
        }
        if !confirm(&p, &mut Terminal)? {
            eprintln!("Stopped; nothing was written.");
            return Ok(ExitCode::from(exit::REFUSED));
        }
    }
    logging::init(true);
    for w in &p.warnings {
        tracing::warn!("{w}");
    }
    run_apply(&p, &a.sources, a.progress)?;
    tracing::info!(
        "xenprov: install complete on {}",
        p.disk_paths().join(" and ")
    );
    Ok(ExitCode::SUCCESS)
}

pub fn hash_password(a: HashArgs) -> Result<ExitCode> {
    let pw = if std::io::stdin().is_terminal() {
        Terminal.password("Password")?
    } else {
        // For scripts: the first line of standard input, never an argument (it would show in ps).
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if pw.is_empty() {
        bail!("an empty password is refused");
    }
    println!(
        "{}",
        if a.grub {
            password::grub_pbkdf2(&pw)
        } else {
            password::sha512_crypt(&pw)
        }
    );
    Ok(ExitCode::SUCCESS)
}
