//! xenprov-guest: define, install and run Xen guests on this dom0.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use xenprov_core::answer::{check_lvm_name, check_ssh_key};
use xenprov_core::guest::{Family, Guest, GuestType, Host, check_guest_name, check_package};
use xenprov_core::guest_render::{Output, RENDER_ONLY_TOKEN, Source, render};
use xenprov_core::net::{self, Cidr};
use xenprov_core::password;
use xenprov_core::render::Templates;
use xenprov_core::size::Size;
use xenprov_guest::machine::Dom0;
use xenprov_guest::ops::{self, Env};
use xenprov_registry::Registry;
use xenprov_registry::settings::{self, Config};

#[derive(Parser)]
#[command(
    version,
    about = "Define, install and run Xen guests (PV, PVH, HVM) on this dom0",
    after_help = xenprov_core::exit::HELP
)]
struct Cli {
    /// Host settings for guests.
    #[arg(long, default_value = settings::DEFAULT_PATH, global = true)]
    config: PathBuf,
    #[command(subcommand)]
    verb: Verb,
}

/// A flag that reaches a definition, checked by the function that checks its key in a definition
/// file, so that clap's error names the flag; the definition the flags make is then read like
/// any file, for what no single flag can tell (the OS's minimum sizes, the host's free space).
fn checked(
    check: fn(&str) -> Result<(), String>,
) -> impl Fn(&str) -> Result<String, String> + Clone + Send + Sync + 'static {
    move |s: &str| check(s).map(|()| s.to_string())
}

fn size(s: &str) -> Result<(), String> {
    s.parse::<Size>().map(drop)
}

fn ipv4(s: &str) -> Result<(), String> {
    net::parse_ipv4(s).map(drop)
}

#[derive(Clone, Copy, ValueEnum)]
enum What {
    /// The kickstart of a RHEL-family guest.
    Kickstart,
    /// The preseed of a Debian guest.
    Preseed,
    /// The xl config.
    Xl,
    /// The libvirt domain XML.
    Libvirt,
}

#[derive(Clone, Copy, ValueEnum)]
enum Phase {
    Install,
    Run,
}

#[derive(clap::Args, Default)]
struct DefinitionFlags {
    /// OS profile, e.g. debian12, rocky9.
    #[arg(long)]
    os: Option<String>,
    /// pv, pvh or hvm.
    #[arg(long = "type", value_parser = checked(|s| s.parse::<GuestType>().map(drop)))]
    kind: Option<String>,
    /// Memory, e.g. 2G (at least what the OS's installer needs).
    #[arg(long, value_parser = checked(size))]
    memory: Option<String>,
    /// Virtual CPUs, 1 to 128 [default: 1].
    #[arg(long)]
    vcpus: Option<u32>,
    /// Size of its disk, e.g. 20G.
    #[arg(long, value_parser = checked(size))]
    disk: Option<String>,
    /// Volume group for its disk [default: vg from the config, dsk].
    #[arg(long, value_parser = checked(|s| check_lvm_name(s, "volume group")))]
    vg: Option<String>,
    /// Bridge its NIC is plugged into [default: xenbr0].
    #[arg(long, value_parser = checked(net::check_ifname))]
    bridge: Option<String>,
    /// Its NIC's MAC, aa:bb:cc:dd:ee:ff [default: derived from the name, in Xen's 00:16:3e].
    #[arg(long, value_parser = checked(|s| net::parse_mac(s).map(drop)))]
    mac: Option<String>,
    /// A crypt(3) hash ($6$, $y$); without it a terminal asks for a password and hashes it.
    #[arg(long, value_parser = checked(password::check_crypt_hash))]
    root_password_hash: Option<String>,
    /// A public key for root's authorized_keys, e.g. "ssh-ed25519 AAAA... me@host" (repeatable).
    #[arg(long = "ssh-key", value_parser = checked(check_ssh_key))]
    ssh_keys: Vec<String>,
    /// A package to install besides the OS's minimal set (repeatable).
    #[arg(long = "package", value_parser = checked(check_package))]
    packages: Vec<String>,
    /// Static address with prefix, e.g. 192.0.2.20/24 (default: DHCP).
    #[arg(long, value_parser = checked(|s| s.parse::<Cidr>().map(drop)))]
    ip: Option<String>,
    /// Gateway of the static address, in its subnet.
    #[arg(long, requires = "ip", value_parser = checked(ipv4))]
    gateway: Option<String>,
    /// Name server for the static address (repeatable; at least one with --ip).
    #[arg(long, requires = "ip", value_parser = checked(ipv4))]
    dns: Vec<String>,
    /// A script run in the installed system at the end of the install.
    #[arg(long)]
    post_install: Option<PathBuf>,
    /// Start it with the host (a link in /etc/xen/auto).
    #[arg(long)]
    autostart: bool,
}

// Parsed once per run; boxing the big variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Verb {
    /// Print a guest's kickstart, preseed, xl config or libvirt XML; touches nothing.
    Render {
        /// The guest definition (TOML) to render.
        #[arg(long)]
        from: PathBuf,
        /// What to print.
        what: What,
        /// For xl and libvirt: the install phase (installer kernel) or the run phase (own disk).
        #[arg(long, value_enum, default_value = "install")]
        phase: Phase,
        /// The repo server URL as guests see it (default: repo-url from the config).
        #[arg(long, value_parser = settings::check_url)]
        repo_url: Option<String>,
    },
    /// Create a guest and install it; prompts for what is missing when on a terminal.
    New {
        /// The guest's name: its Xen domain, host name and LV (NAME-disk).
        #[arg(value_parser = checked(check_guest_name))]
        name: String,
        /// A guest definition file instead of flags.
        #[arg(long, conflicts_with_all = ["os", "kind", "memory", "disk"])]
        from: Option<PathBuf>,
        #[command(flatten)]
        flags: DefinitionFlags,
        /// Return once the installer boots; `xenprov-guest wait NAME` finishes the job.
        #[arg(long)]
        no_wait: bool,
    },
    /// Follow an install to its end and start the guest from its own disk.
    Wait {
        /// The guest being installed.
        name: String,
    },
    /// Guests with their state, memory, vCPUs and uptime.
    List {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// One guest: its definition, state, configs and install progress.
    Show {
        /// The guest to show.
        name: String,
        /// Print the details as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a guest: its configs, autostart link and (unless kept) its disk. Stops its installer;
    /// a guest running from its own disk must be shut down first, or destroyed with --force.
    Rm {
        /// The guest to delete.
        name: String,
        /// Keep its logical volume (NAME-disk) and the data on it.
        #[arg(long)]
        keep_disk: bool,
        /// Destroy it even when it runs from its own disk.
        #[arg(long)]
        force: bool,
    },
    /// Fetch an OS's installer kernel and initrd into the cache, checked against its tree's
    /// checksum list (SHA256SUMS or .treeinfo); `new` does this itself. Prints their paths.
    FetchInstaller {
        /// OS profile, e.g. debian12, rocky9.
        os: String,
        /// The repo server's URL as this host reaches it [default: repo-url of the settings, else
        /// http://127.0.0.1:REPO-PORT].
        #[arg(long)]
        repo_url: Option<String>,
    },
    /// Write the man pages and the bash and zsh completions below DIR (a package's usr/share)
    #[command(hide = true)]
    Docs {
        /// Directory to write man/man8/ and the completions' directories into
        dir: PathBuf,
    },
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn templates(cfg: &Config) -> Result<Templates> {
    Ok(match &cfg.templates {
        Some(dir) => Templates::with_overrides(dir)?,
        None => Templates::builtin(),
    })
}

fn main() -> std::process::ExitCode {
    xenprov_core::exit::report(run(Cli::parse()))
}

fn run(cli: Cli) -> Result<()> {
    // Before the settings and the registry: a packager runs it on a machine that has neither.
    if let Verb::Docs { dir } = &cli.verb {
        xenprov_core::clap_help::write_docs(&Cli::command(), dir)?;
        return Ok(());
    }
    let cfg = Config::load(&cli.config)?;
    let registry = Registry::open(&cfg.paths.registry, templates(&cfg)?)?;
    let env = Env {
        config: &cfg,
        registry: &registry,
        machine: &Dom0,
        now: &now,
    };
    match cli.verb {
        Verb::Render {
            from,
            what,
            phase,
            repo_url,
        } => render_cmd(&env, &from, what, phase, repo_url),
        Verb::New {
            name,
            from,
            flags,
            no_wait,
        } => new(&env, &name, from.as_deref(), flags, no_wait),
        Verb::Wait { name } => wait(&env, &name),
        Verb::List { json } => list(&env, json),
        Verb::Show { name, json } => show(&env, &name, json),
        Verb::FetchInstaller { os, repo_url } => fetch_installer(&env, &os, repo_url),
        Verb::Rm {
            name,
            keep_disk,
            force,
        } => {
            ops::remove(&env, &name, keep_disk, force)?;
            println!(
                "removed guest {name}{}",
                if keep_disk { " (disk kept)" } else { "" }
            );
            Ok(())
        }
        Verb::Docs { .. } => unreachable!("written before the settings are read"),
    }
}

fn fetch_installer(env: &Env<'_>, id: &str, repo_url: Option<String>) -> Result<()> {
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

fn render_cmd(
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
fn definition(env: &Env<'_>, name: &str, f: DefinitionFlags) -> Result<String> {
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

fn new(
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

fn wait(env: &Env<'_>, name: &str) -> Result<()> {
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

fn duration(secs: Option<u64>) -> String {
    secs.map_or("-".into(), |s| {
        humantime::format_duration(Duration::from_secs(s)).to_string()
    })
}

fn list(env: &Env<'_>, json: bool) -> Result<()> {
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

fn show(env: &Env<'_>, name: &str, json: bool) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_flag_argument_and_verb_has_help() {
        xenprov_core::clap_help::assert_documented(&super::Cli::command());
    }

    #[test]
    fn flags_that_reach_generated_files_are_checked_as_their_keys_are() {
        use clap::Parser;
        let refused = |args: &[&str], flag: &str, why: &str| {
            let e = super::Cli::try_parse_from(args)
                .err()
                .unwrap_or_else(|| panic!("{args:?} was accepted"))
                .to_string();
            assert!(e.contains(flag) && e.contains(why), "{args:?}: {e}");
        };
        for url in [
            "http://h:8080\nextra = 1",
            "http://h;reboot",
            "http://h/a%s",
        ] {
            let args = [
                "xenprov-guest",
                "render",
                "--from",
                "g.toml",
                "xl",
                "--repo-url",
                url,
            ];
            refused(&args, "--repo-url", "is not an http:// URL");
        }
        // FLAG=VALUE, so that a value starting with '-' is taken as one.
        for (flag_value, why) in [
            ("--bridge=-br", "start with '-'"),
            ("--bridge=br0\nvif = []", "not an interface name"),
            ("--mac=00:00:00:00:00:00", "all-zero"),
            ("--mac=ff:ff:ff:ff:ff:ff", "broadcast"),
            ("--ssh-key=ssh-ed25519 AAAAC3Nz me\n%end", "comment has"),
            ("--package=vim\n%end", "not a package name"),
            ("--vg=-dsk", "not a valid volume group name"),
            ("--memory= 6G", "holds a space"),
            ("--disk=6.G", "is not a size"),
            ("--type=pvhx", "not a guest type"),
            ("--ip=127.0.0.1/8", "loopback"),
            (
                "--root-password-hash=hunter2",
                "xenprov-install hash-password",
            ),
        ] {
            let flag = flag_value.split('=').next().unwrap();
            refused(&["xenprov-guest", "new", "web1", flag_value], flag, why);
        }
        refused(
            &["xenprov-guest", "new", "web.1"],
            "<NAME>",
            "not a guest name",
        );
        refused(
            &["xenprov-guest", "new", "web1", "--gateway", "192.0.2.1"],
            "--ip",
            "required",
        );
        assert!(
            super::Cli::try_parse_from(["xenprov-guest", "new", "web1", "--bridge=xenbr1"]).is_ok()
        );
    }
}
