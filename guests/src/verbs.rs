//! xenprov-guest's verbs, one function each, over the settings, the registry and the dom0 (`Env`).

use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use xenprov_core::guest::{Family, Guest, Host};
use xenprov_core::guest_render::{Output, RENDER_ONLY_TOKEN, Source, render};
use xenprov_core::password;
use xenprov_core::size::Size;
use xenprov_guest::ops::{self, Env};

use crate::cli::{DefinitionFlags, Phase, What};

pub fn fetch_installer(env: &Env<'_>, id: &str, repo_url: Option<String>) -> Result<()> {
    let os = env.registry.catalog().get(id).with_context(|| {
        format!(
            "unknown OS `{id}`; known: {}",
            env.registry.catalog().ids().collect::<Vec<_>>().join(", ")
        )
    })?;
    let repo_url = repo_url
        .or_else(|| env.config.repo_url.clone())
        .unwrap_or_else(|| format!("http://127.0.0.1:{}", env.config.repo_port));
    let tree_url = env.config.tree_url(&os.id, &os.tree, &repo_url);
    let i = xenprov_guest::installer::fetch(env.machine, env.config, os, &tree_url)?;
    println!(
        "kernel {}\ninitrd {}",
        i.kernel.display(),
        i.initrd.display()
    );
    Ok(())
}

pub fn render_cmd(
    env: &Env<'_>,
    from: &Path,
    what: What,
    phase: Phase,
    repo_url: Option<String>,
) -> Result<()> {
    let src =
        std::fs::read_to_string(from).with_context(|| format!("reading {}", from.display()))?;
    let host = Host {
        vg: env.config.vg.clone(),
        ..Host::default()
    };
    let guest = Guest::parse(&src, env.registry.catalog(), &host)
        .map_err(|e| xenprov_core::exit::invalid(format!("{}:\n{e}", from.display())))?;
    let os = env
        .registry
        .catalog()
        .get(&guest.os)
        .expect("parse checked the OS");
    let repo_url = repo_url
        .or_else(|| env.config.repo_url.clone())
        .unwrap_or_else(|| format!("http://dom0:{}", env.config.repo_port));
    let installer = xenprov_guest::installer::cached(env.config, os);
    let source = Source {
        tree_url: env.config.tree_url(&os.id, &os.tree, &repo_url),
        kernel: installer.kernel.display().to_string(),
        ramdisk: installer.initrd.display().to_string(),
        repo_url,
    };
    let out = match (what, phase, os.family) {
        (What::Kickstart, _, Family::Rhel) | (What::Preseed, _, Family::Debian) => Output::Answer,
        (What::Kickstart | What::Preseed, _, f) => bail!(
            "{} is installed from a {}, not a {}",
            os.title,
            if f == Family::Debian {
                "preseed"
            } else {
                "kickstart"
            },
            if f == Family::Debian {
                "kickstart"
            } else {
                "preseed"
            },
        ),
        (What::Xl, Phase::Install, _) => Output::XlInstall,
        (What::Xl, Phase::Run, _) => Output::XlRun,
        (What::Libvirt, Phase::Install, _) => Output::LibvirtInstall,
        (What::Libvirt, Phase::Run, _) => Output::LibvirtRun,
    };
    let text = render(
        env.registry.templates(),
        &guest,
        os,
        &source,
        RENDER_ONLY_TOKEN,
        out,
    )?;
    print!("{text}");
    Ok(())
}

/// A definition from flags, asking on a terminal for the required values that are missing.
pub fn definition(env: &Env<'_>, name: &str, f: DefinitionFlags) -> Result<String> {
    use dialoguer::{Input, Password, Select};
    let ask = std::io::stdin().is_terminal();
    let mut t = toml::Table::new();
    let mut set = |k: &str, v: toml::Value| {
        t.insert(k.to_string(), v);
    };
    set("name", name.into());
    let catalog = env.registry.catalog();
    let os = match f.os {
        Some(o) => Some(o),
        None if ask => {
            let items: Vec<String> = catalog
                .iter()
                .map(|p| format!("{} ({})", p.id, p.title))
                .collect();
            let i = Select::new()
                .with_prompt("OS")
                .items(&items)
                .default(0)
                .interact()?;
            catalog.iter().nth(i).map(|p| p.id.clone())
        }
        None => None,
    };
    let profile = os.as_deref().and_then(|o| catalog.get(o));
    let kind = match (f.kind, profile) {
        (Some(k), _) => Some(k),
        (None, Some(p)) if ask => {
            let items: Vec<String> = p.types.iter().map(|t| t.to_string()).collect();
            // PVH where the OS can: no emulated devices, no qemu in dom0.
            let default = items.iter().position(|t| t == "pvh").unwrap_or(0);
            let i = Select::new()
                .with_prompt("type")
                .items(&items)
                .default(default)
                .interact()?;
            Some(items[i].clone())
        }
        _ => None,
    };
    let size = |given: Option<String>, what: &str, default: String| -> Result<Option<String>> {
        Ok(match given {
            Some(s) => Some(s),
            None if ask => Some(
                Input::new()
                    .with_prompt(what)
                    .default(default)
                    .interact_text()?,
            ),
            None => None,
        })
    };
    // What a terminal offers: the OS's minimum, but not less than a useful floor.
    let offer = |min: Option<Size>, floor: Size| min.map_or(floor, |m| m.max(floor)).to_string();
    let memory = size(
        f.memory,
        "memory",
        offer(profile.map(|p| p.min_memory), Size::gib(1)),
    )?;
    let disk = size(
        f.disk,
        "disk",
        offer(profile.map(|p| p.min_disk), Size::gib(10)),
    )?;
    let hash = match f.root_password_hash {
        Some(h) => Some(h),
        None if ask => {
            let pw = Password::new()
                .with_prompt("root password")
                .with_confirmation("again", "the passwords differ")
                .interact()?;
            Some(password::sha512_crypt(&pw))
        }
        None => None,
    };
    for (k, v) in [
        ("os", os),
        ("type", kind),
        ("memory", memory),
        ("disk", disk),
        ("vg", f.vg),
        ("bridge", f.bridge),
        ("mac", f.mac),
        ("root-password-hash", hash),
    ] {
        if let Some(v) = v {
            set(k, v.into());
        }
    }
    if let Some(n) = f.vcpus {
        set("vcpus", i64::from(n).into());
    }
    let strings = |v: Vec<String>| toml::Value::Array(v.into_iter().map(Into::into).collect());
    if !f.ssh_keys.is_empty() {
        set("ssh-authorized-keys", strings(f.ssh_keys));
    }
    if !f.packages.is_empty() {
        set("packages", strings(f.packages));
    }
    if let Some(p) = f.post_install {
        let script =
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        set("post-install", script.into());
    }
    if f.autostart {
        set("autostart", true.into());
    }
    if let Some(ip) = f.ip {
        let mut n = toml::Table::new();
        n.insert("mode".into(), "static".into());
        n.insert("address".into(), ip.into());
        if let Some(g) = f.gateway {
            n.insert("gateway".into(), g.into());
        }
        n.insert("dns".into(), strings(f.dns));
        set("network", n.into());
    }
    Ok(toml::to_string(&t)?)
}

pub fn new(
    env: &Env<'_>,
    name: &str,
    from: Option<&Path>,
    flags: DefinitionFlags,
    no_wait: bool,
) -> Result<()> {
    let (src, origin) = match from {
        Some(p) => {
            let src =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            (src, p.display().to_string())
        }
        None => (
            definition(env, name, flags)?,
            "the command line".to_string(),
        ),
    };
    let guest = ops::check(env, &src, &origin)?;
    if guest.name != name {
        bail!("{origin} defines guest `{}`, not `{name}`", guest.name);
    }
    let guest = ops::create(env, &src, &origin)?;
    println!(
        "{}: installer started ({} {}, {} memory, {} disk on {}); console: xl console {}",
        guest.name, guest.os, guest.kind, guest.memory, guest.disk, guest.vg, guest.name
    );
    if no_wait {
        return Ok(());
    }
    wait(env, name)
}

pub fn wait(env: &Env<'_>, name: &str) -> Result<()> {
    ops::wait(
        env,
        name,
        Duration::from_secs(5),
        &mut std::thread::sleep,
        &mut |line| println!("{line}"),
    )?;
    println!("{name}: running");
    Ok(())
}

pub fn duration(secs: Option<u64>) -> String {
    secs.map_or("-".into(), |s| {
        humantime::format_duration(Duration::from_secs(s)).to_string()
    })
}

pub fn list(env: &Env<'_>, json: bool) -> Result<()> {
    let rows = ops::list(env)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<20} {:<16} {:<5} {:<11} {:>8} {:>5}  uptime",
        "name", "os", "type", "state", "mem(MiB)", "vcpus"
    );
    for r in rows {
        println!(
            "{:<20} {:<16} {:<5} {:<11} {:>8} {:>5}  {}",
            r.name,
            r.os,
            r.kind,
            r.state,
            r.memory_mib,
            r.vcpus,
            duration(r.uptime_secs)
        );
    }
    Ok(())
}

pub fn show(env: &Env<'_>, name: &str, json: bool) -> Result<()> {
    let d = ops::show(env, name)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&d)?);
        return Ok(());
    }
    println!("state: {}", d.state);
    if let Some(m) = &d.status.message {
        println!("reason: {m}");
    }
    for e in &d.status.events {
        println!(
            "event: {:?} at {}",
            e.event,
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(e.at))
        );
    }
    if let Some(dom) = &d.domain {
        println!(
            "domain: id {}, {} MiB, {} vCPUs, up {}",
            dom.domid,
            dom.memory_mib,
            dom.vcpus,
            duration(dom.uptime_secs)
        );
    }
    println!("run config: {}", d.run_config.display());
    println!("console log: {}", d.console_log.display());
    if let Some(l) = &d.install_log {
        println!("installer log: {}", l.display());
    }
    print!("\n{}", d.definition.to_toml());
    Ok(())
}

pub fn rm(env: &Env<'_>, name: &str, keep_disk: bool, force: bool) -> Result<()> {
    ops::remove(env, name, keep_disk, force)?;
    println!(
        "removed guest {name}{}",
        if keep_disk { " (disk kept)" } else { "" }
    );
    Ok(())
}
