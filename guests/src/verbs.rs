//! xenprov-guest's verbs, one function each, over the settings, the registry and the dom0 (`Env`).

use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use std::io::Read;

use anyhow::{Context, Result, bail};
use xenprov_core::guest::{Family, Guest, Host, Method};
use xenprov_core::guest_render::{Output, RENDER_ONLY_TOKEN, Source, render};
use xenprov_core::password;
use xenprov_core::size::Size;
use xenprov_guest::lifecycle::{self, Stopped};
use xenprov_guest::ops::{self, Env};
use xenprov_guest::{backup, network, storage, top};

use crate::cli::{DefinitionFlags, NetworkAction, Phase, SnapshotAction, What};

pub fn fetch_installer(env: &Env<'_>, id: &str, repo_url: Option<String>) -> Result<()> {
    let os = env.registry.catalog().get(id).with_context(|| {
        format!(
            "unknown OS `{id}`; known: {}",
            env.registry.catalog().ids().collect::<Vec<_>>().join(", ")
        )
    })?;
    let repo_url = repo_url
        .or_else(|| env.config.repo_url.clone())
        .unwrap_or_else(|| env.config.local_repo_url());
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
    let install_phase =
        matches!(what, What::Kickstart | What::Preseed) || matches!(phase, Phase::Install);
    if guest.method == Method::Debootstrap && install_phase {
        return Err(xenprov_core::exit::refused(format!(
            "guest `{}` is written into its disk by debootstrap in the dom0: it has no answer file and no install phase; render xl --phase run or libvirt --phase run",
            guest.name
        ))
        .into());
    }
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
        ("method", f.method),
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
    if guest.method == Method::Debootstrap {
        println!(
            "{}: running from its own disk ({} {}, {} memory, {} disk on {}); console: xenprov-guest console {}",
            guest.name, guest.os, guest.kind, guest.memory, guest.disk, guest.vg, guest.name
        );
        return Ok(());
    }
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

pub fn start(env: &Env<'_>, name: &str) -> Result<()> {
    lifecycle::start(env, name)?;
    println!("{name}: started from its own disk; console: xenprov-guest console {name}");
    Ok(())
}

pub fn stop(env: &Env<'_>, name: &str, timeout: Duration) -> Result<()> {
    match lifecycle::stop(env, name, timeout, &mut std::thread::sleep)? {
        Stopped::Clean(t) => println!("{name}: shut down in {}", duration(Some(t.as_secs()))),
        Stopped::Destroyed => println!(
            "{name}: still up after {}; destroyed",
            duration(Some(timeout.as_secs()))
        ),
    }
    Ok(())
}

/// The one-word verbs on a domain.
pub fn simple(env: &Env<'_>, name: &str, verb: &str) -> Result<()> {
    match verb {
        "reboot" => lifecycle::reboot(env, name)?,
        "destroy" => lifecycle::destroy(env, name)?,
        "pause" => lifecycle::pause(env, name, true)?,
        "unpause" => lifecycle::pause(env, name, false)?,
        _ => unreachable!("{verb} is not a domain verb"),
    }
    println!("{name}: {verb} done");
    Ok(())
}

pub fn console(env: &Env<'_>, name: &str) -> Result<()> {
    use std::os::unix::process::CommandExt;
    lifecycle::domain_of(env, name)?;
    let e = std::process::Command::new("xl")
        .args(["console", name])
        .exec();
    Err(e).context("running xl console")
}

pub fn save(env: &Env<'_>, name: &str, file: &Path) -> Result<()> {
    lifecycle::save(env, name, file)?;
    println!(
        "{name}: saved to {}; xenprov-guest restore {} resumes it",
        file.display(),
        file.display()
    );
    Ok(())
}

pub fn restore(env: &Env<'_>, file: &Path) -> Result<()> {
    let mut head = [0u8; 40];
    let n = std::fs::File::open(file)
        .and_then(|mut f| f.read(&mut head))
        .with_context(|| format!("reading {}", file.display()))?;
    let head = &head[..n];
    if head.starts_with(lifecycle::XL_SAVE_MAGIC) {
        lifecycle::restore_saved(env, file)?;
        println!("resumed the guest saved in {}", file.display());
    } else if head.starts_with(backup::MAGIC) {
        let g = backup::restore(env, file)?;
        println!(
            "{}: restored from {} (stopped; xenprov-guest start {})",
            g.name,
            file.display(),
            g.name
        );
    } else {
        bail!(
            "{} is neither a file of `xenprov-guest save` (xl's save image) nor of `xenprov-guest backup`",
            file.display()
        );
    }
    Ok(())
}

pub fn set(env: &Env<'_>, name: &str, c: &lifecycle::Changes) -> Result<()> {
    for line in lifecycle::set(env, name, c)? {
        println!("{name}: {line}");
    }
    Ok(())
}

pub fn resize(env: &Env<'_>, name: &str, to: Size) -> Result<()> {
    match storage::resize(env, name, to)? {
        storage::Resized::Grown { to, live: true } => println!(
            "{name}: disk grown to {to}; the running guest sees it at its next disk access, and its root grows with it"
        ),
        storage::Resized::Grown { to, live: false } => {
            println!("{name}: disk grown to {to}; its root grows at its next boot")
        }
        storage::Resized::Shrunk { to } => {
            println!("{name}: file system, partition and disk shrunk to {to}")
        }
    }
    Ok(())
}

pub fn snapshot(
    env: &Env<'_>,
    name: &str,
    action: SnapshotAction,
    snap: Option<&str>,
    size: Option<Size>,
) -> Result<()> {
    let need = || {
        snap.ok_or_else(|| {
            anyhow::anyhow!(
                "give the snapshot's name: xenprov-guest snapshot {name} ACTION SNAPSHOT"
            )
        })
    };
    match action {
        SnapshotAction::Create => {
            let s = storage::snapshot_create(env, name, need()?, size)?;
            println!(
                "{name}: snapshot {} taken ({} of room for changes)",
                s.name, s.size
            );
        }
        SnapshotAction::List => {
            println!("{:<24} {:>10} {:>6}  created", "snapshot", "size", "used");
            for s in storage::snapshot_list(env, name)? {
                let warn = if s.used_percent >= 100.0 {
                    "  INVALID: full, LVM dropped it"
                } else if s.used_percent >= 80.0 {
                    "  nearly full: remove it, or grow it with lvextend"
                } else {
                    ""
                };
                println!(
                    "{:<24} {:>10} {:>5.1}%  {}{warn}",
                    s.name,
                    s.size.to_string(),
                    s.used_percent,
                    s.created
                );
            }
        }
        SnapshotAction::Rollback => {
            storage::snapshot_rollback(env, name, need()?)?;
            println!(
                "{name}: disk rolled back to snapshot {} (merged: the snapshot is used up)",
                need()?
            );
        }
        SnapshotAction::Rm => {
            storage::snapshot_remove(env, name, need()?)?;
            println!("{name}: snapshot {} removed", need()?);
        }
    }
    Ok(())
}

pub fn backup_cmd(env: &Env<'_>, name: &str, file: &Path) -> Result<()> {
    let w = backup::backup(env, name, file)?;
    println!(
        "{name}: backed up to {} ({} chunks written{}, {} in the file)",
        file.display(),
        w.written,
        if w.resumed > 0 {
            format!(", {} from the run before", w.resumed)
        } else {
            String::new()
        },
        xenprov_core::size::human(w.bytes)
    );
    Ok(())
}

pub fn mount(env: &Env<'_>, name: &str, dir: &Path, partition: u32, rw: bool) -> Result<()> {
    let m = storage::mount(env, name, dir, partition, rw)?;
    println!(
        "{name}: partition {partition} mounted {} on {} (xenprov-guest umount {name})",
        if m.read_write {
            "read-write"
        } else {
            "read-only"
        },
        m.dir.display()
    );
    Ok(())
}

pub fn umount(env: &Env<'_>, name: &str) -> Result<()> {
    let m = storage::umount(env, name)?;
    println!("{name}: unmounted from {}", m.dir.display());
    Ok(())
}

pub fn network(env: &Env<'_>, action: NetworkAction, json: bool) -> Result<()> {
    match action {
        NetworkAction::Apply => {
            let r = network::apply(env)?;
            let nat = r.net.nat.as_ref().map_or(0, |n| n.leases.len());
            println!(
                "guest networks: {nat} NAT guest(s), {} VLAN bridge(s), {} routed uplink(s); rules in {}",
                r.net.vlans.len(),
                r.net.routed.len(),
                env.config.paths.network.join("guests.nft").display()
            );
        }
        NetworkAction::Show => {
            let r = network::current(env)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r.net)?);
            } else {
                match &r.net.nat {
                    Some(n) => {
                        println!("NAT bridge {} {} ({})", n.bridge, n.gateway, n.subnet);
                        for l in &n.leases {
                            println!("  {:<16} {:<17} {}", l.guest, l.mac, l.ip);
                        }
                        for f in &n.forwards {
                            println!(
                                "  forward {}/{} -> {}:{} ({})",
                                f.proto, f.port, f.to_ip, f.to_port, f.guest
                            );
                        }
                    }
                    None => println!("no NAT guests"),
                }
                for v in &r.net.vlans {
                    println!("VLAN {} on {}: bridge {}", v.id, v.uplink, v.bridge);
                }
                for rt in &r.net.routed {
                    for (g, ip) in &rt.guests {
                        println!("routed {ip} ({g}) via {}", rt.uplink);
                    }
                }
                print!("{}", r.ruleset);
            }
        }
    }
    Ok(())
}

pub fn top(
    env: &Env<'_>,
    json: bool,
    batch: bool,
    iterations: Option<u32>,
    delay: Duration,
) -> Result<()> {
    let screen = !json && !batch;
    let n = iterations.unwrap_or(if screen { u32::MAX } else { 1 });
    let mut before = env.machine.counters()?;
    let mut at = std::time::Instant::now();
    for _ in 0..n {
        std::thread::sleep(delay);
        let now = env.machine.counters()?;
        let secs = at.elapsed().as_secs_f64();
        at = std::time::Instant::now();
        let rows = xenprov_core::xen::rates(&before, &now, secs);
        if json {
            println!("{}", serde_json::to_string(&rows)?);
        } else {
            if screen {
                // Home and clear, as top does.
                print!("\x1b[H\x1b[2J");
            }
            print!("{}", top::table(&rows));
            if !screen {
                println!();
            }
        }
        before = now;
    }
    Ok(())
}

pub fn prepare_base(
    cfg: &xenprov_registry::settings::Config,
    templates: &xenprov_core::render::Templates,
    id: &str,
    mirror: Option<String>,
) -> Result<()> {
    let catalog =
        xenprov_core::guest::Catalog::from_templates(templates).map_err(anyhow::Error::msg)?;
    let os = catalog.get(id).with_context(|| {
        format!(
            "unknown OS `{id}`; known: {}",
            catalog.ids().collect::<Vec<_>>().join(", ")
        )
    })?;
    let suite = match (os.family, &os.release) {
        (Family::Debian, Some(s)) => s.clone(),
        _ => bail!(
            "{} is not debootstrapped: only Debian has a base system",
            os.title
        ),
    };
    let mirror = mirror.unwrap_or_else(|| cfg.tree_url(&os.id, &os.tree, &cfg.local_repo_url()));
    let cache = xenprov_guest::debootstrap::cache_dir(cfg);
    let base =
        xenprov_guest::debootstrap::prepare(&suite, &mirror, &cache, &mut |l| eprintln!("{l}"))?;
    println!("{}", base.display());
    Ok(())
}
