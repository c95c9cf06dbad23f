//! The guest verbs — create and install, wait and switch to the run phase, list, show, remove —
//! over the registry and a [`Machine`].

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use xenprov_core::guest::{Guest, Host, OsProfile};

use crate::machine::{Domain, Machine};
use xenprov_core::guest::Method;
use xenprov_core::guest_net::{Attach, nat_gateway};
use xenprov_core::guest_render::{Output, Source, render, run_config};
use xenprov_registry::settings::Config;
use xenprov_registry::{Registry, State, Status};

pub struct Env<'a> {
    pub config: &'a Config,
    pub registry: &'a Registry,
    pub machine: &'a dyn Machine,
    /// Unix seconds.
    pub now: &'a dyn Fn() -> u64,
}

impl Env<'_> {
    pub fn run_config(&self, name: &str) -> PathBuf {
        self.config.paths.xen.join(format!("{name}.cfg"))
    }

    fn auto_link(&self, name: &str) -> PathBuf {
        self.config.paths.auto.join(format!("{name}.cfg"))
    }

    fn console_log(&self, name: &str) -> PathBuf {
        self.config.paths.console_log_of(name)
    }

    fn os(&self, guest: &Guest) -> Result<&OsProfile> {
        self.registry.catalog().get(&guest.os).ok_or_else(|| {
            anyhow!(
                "guest `{}` names OS `{}`, which is no longer known",
                guest.name,
                guest.os
            )
        })
    }

    pub fn domain(&self, name: &str) -> Result<Option<Domain>> {
        Ok(self.machine.domains()?.into_iter().find(|d| d.name == name))
    }

    /// Writes the run-phase xl config from the definition.
    pub fn write_run_config(&self, guest: &Guest) -> Result<()> {
        let text = run_config(self.registry.templates(), guest, self.os(guest)?)?;
        let path = self.run_config(&guest.name);
        fs::create_dir_all(&self.config.paths.xen)?;
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// The repo server's URL as the guest reaches it: at the dom0's address on its bridge (for a
    /// NAT guest, the dom0's on the NAT bridge, known before that bridge is made).
    fn repo_url(&self, guest: &Guest) -> Result<String> {
        let bridge = guest.dom0_bridge();
        Ok(match &self.config.repo_url {
            Some(u) => u.clone(),
            None if guest.network.attach == Attach::Nat => format!(
                "http://{}:{}",
                nat_gateway(&self.config.nat_subnet),
                self.config.repo_port
            ),
            None => {
                let ip = self.machine.bridge_address(bridge)?.ok_or_else(|| {
                    anyhow!(
                        "the dom0 has no IPv4 address on bridge {bridge}, so guests cannot reach its repo server; set repo-url in {}",
                        xenprov_registry::settings::DEFAULT_PATH
                    )
                })?;
                format!("http://{ip}:{}", self.config.repo_port)
            }
        })
    }

    /// Where this guest's install comes from: the repo server as the guest sees it.
    fn source(&self, guest: &Guest, os: &OsProfile) -> Result<Source> {
        let repo_url = self.repo_url(guest)?;
        let tree_url = self.config.tree_url(&os.id, &os.tree, &repo_url);
        // A NAT guest sees the repo server on a bridge that may not be up yet: the dom0 fetches
        // on loopback what the guest would.
        let fetch_from = if guest.network.attach == Attach::Nat && self.config.repo_url.is_none() {
            self.config
                .tree_url(&os.id, &os.tree, &self.config.local_repo_url())
        } else {
            tree_url.clone()
        };
        let installer = crate::installer::fetch(self.machine, self.config, os, &fetch_from)?;
        Ok(Source {
            tree_url,
            kernel: installer.kernel.display().to_string(),
            ramdisk: installer.initrd.display().to_string(),
            repo_url,
        })
    }
}

/// Reads a definition and refuses what cannot work on this host, naming the file in errors.
pub fn check(env: &Env<'_>, src: &str, origin: &str) -> Result<Guest> {
    let host = Host {
        vg: env.config.vg.clone(),
        vg_free: Some(env.machine.vg_free()?),
        guests: env.registry.existing()?,
        hvm: Some(env.machine.hvm()?),
        nat_subnet: Some(env.config.nat_subnet),
        reserved_ports: vec![22, env.config.repo_port],
    };
    Guest::parse(src, env.registry.catalog(), &host)
        .map_err(|e| xenprov_core::exit::invalid(format!("{origin}:\n{e}")).into())
}

/// Adds the guest to the registry with its new disk, and the host's networks with what it needs
/// (its NAT reservation and forwards, its VLAN's bridge); none of it is left if a step fails.
pub(crate) fn add(env: &Env<'_>, guest: &Guest, now: u64) -> Result<()> {
    env.registry.create(guest, now)?;
    if let Err(e) = env
        .machine
        .lv_create(&guest.vg, &guest.lv_name(), guest.disk)
    {
        env.registry.remove(&guest.name)?;
        return Err(e.context(format!("creating the disk of guest `{}`", guest.name)));
    }
    if let Err(e) = crate::network::apply(env) {
        env.machine.lv_remove(&guest.vg, &guest.lv_name())?;
        env.registry.remove(&guest.name)?;
        crate::network::apply(env)?;
        return Err(e.context(format!("setting up the network of guest `{}`", guest.name)));
    }
    Ok(())
}

/// Creates the guest and starts its install: LV, configs, registry entry armed with a token,
/// `xl create` of the install phase. Returns once the installer is booting.
pub fn create(env: &Env<'_>, src: &str, origin: &str) -> Result<Guest> {
    let guest = check(env, src, origin)?;
    if guest.method == Method::Debootstrap {
        return build(env, guest, &mut |l| println!("{l}"));
    }
    let os = env.os(&guest)?;
    let source = env.source(&guest, os)?;
    let templates = env.registry.templates();
    let run_cfg = run_config(templates, &guest, os)?;
    let now = (env.now)();
    add(env, &guest, now)?;
    fs::create_dir_all(&env.config.paths.xen)?;
    fs::write(env.run_config(&guest.name), run_cfg)
        .with_context(|| format!("writing {}", env.run_config(&guest.name).display()))?;
    let timeout = env.config.install_timeout.as_secs();
    let token = env
        .registry
        .arm(&guest.name, source.clone(), timeout, now)?;
    let install_cfg = render(templates, &guest, os, &source, &token, Output::XlInstall)?;
    let path = env.registry.install_config_path(&guest.name)?;
    fs::write(&path, install_cfg).with_context(|| format!("writing {}", path.display()))?;
    if let Err(e) = env.machine.xl_create(&path) {
        env.registry
            .fail(&guest.name, &format!("xl create failed: {e:#}"), now)?;
        return Err(e.context(format!("starting the installer of guest `{}`", guest.name)));
    }
    Ok(guest)
}

/// `method = "debootstrap"`: the dom0 installs the guest into its volume itself, then starts it
/// from its own disk. Returns once it is started.
pub fn build(env: &Env<'_>, guest: Guest, say: &mut dyn FnMut(String)) -> Result<Guest> {
    let os = env.os(&guest)?;
    let suite = os
        .release
        .clone()
        .expect("parse allows debootstrap only with a suite");
    // The dom0 reaches its own repo server on loopback; the guest, on its bridge.
    let mirror = crate::debootstrap::Mirror {
        suite,
        for_dom0: env
            .config
            .tree_url(&os.id, &os.tree, &env.config.local_repo_url()),
        for_guest: env
            .config
            .tree_url(&os.id, &os.tree, &env.repo_url(&guest)?),
    };
    let now = (env.now)();
    add(env, &guest, now)?;
    let timeout = env.config.install_timeout.as_secs();
    env.registry
        .begin_build(&guest.name, std::process::id(), timeout, now)?;
    let cache = crate::debootstrap::cache_dir(env.config);
    if let Err(e) = env.machine.debootstrap(&guest, &mirror, &cache, say) {
        env.registry
            .fail(&guest.name, &format!("{e:#}"), (env.now)())?;
        return Err(e.context(format!("installing guest `{}`", guest.name)));
    }
    env.write_run_config(&guest)?;
    env.registry.built(&guest.name, (env.now)())?;
    start_run(env, &guest, &mut std::thread::sleep)?;
    Ok(guest)
}

/// Follows an install until the guest runs from its own disk: reports installer events, and once
/// the installer has reported done and its domain has gone, starts the run-phase config (and
/// links it into the autostart directory when asked). Fails on a failed or stalled install.
pub fn wait(
    env: &Env<'_>,
    name: &str,
    poll: Duration,
    sleep: &mut dyn FnMut(Duration),
    say: &mut dyn FnMut(String),
) -> Result<()> {
    let guest = env.registry.guest(name)?;
    let mut seen = 0;
    loop {
        let st = env.registry.status(name, (env.now)())?;
        for e in &st.events[seen.min(st.events.len())..] {
            say(format!("{name}: installer reported {:?}", e.event).to_lowercase());
        }
        seen = st.events.len();
        let running = env.domain(name)?.is_some();
        match st.state {
            State::Defined => bail!("guest `{name}` is not installing; nothing to wait for"),
            State::Failed => {
                if running {
                    env.machine.xl_destroy(name)?;
                }
                bail!("{}", failure(env, name, &st));
            }
            State::Installing if !running => {
                // Re-read: `done` may have come in just before the domain went away.
                let st = env.registry.status(name, (env.now)())?;
                if st.state == State::Installing {
                    let why = format!(
                        "the installer's domain ended before it reported done; its console is in {}",
                        env.console_log(name).display()
                    );
                    env.registry.fail(name, &why, (env.now)())?;
                    bail!("guest `{name}`: {why}");
                }
                continue;
            }
            State::Installed if st.switched.is_some() => return Ok(()),
            State::Installed if !running => {
                start_run(env, &guest, sleep)?;
                say(format!("{name}: installed; started from its own disk"));
                return Ok(());
            }
            State::Installing | State::Installed => {}
        }
        sleep(poll);
    }
}

fn failure(env: &Env<'_>, name: &str, st: &Status) -> String {
    let mut msg = format!(
        "guest `{name}`: install failed: {}",
        st.message.as_deref().unwrap_or("no reason recorded")
    );
    if let Ok(p) = env.registry.log_path(name)
        && p.exists()
    {
        msg.push_str(&format!("; installer log: {}", p.display()));
    }
    msg
}

pub(crate) fn start_run(
    env: &Env<'_>,
    guest: &Guest,
    sleep: &mut dyn FnMut(Duration),
) -> Result<()> {
    let cfg = env.run_config(&guest.name);
    // A domain that has just been destroyed can hold its name for a moment while it dies.
    let mut tries = 0;
    while let Err(e) = env.machine.xl_create(&cfg) {
        tries += 1;
        if tries >= 5 {
            return Err(e.context(format!("starting guest `{}` from its disk", guest.name)));
        }
        sleep(Duration::from_secs(2));
    }
    env.registry.mark_switched(&guest.name, (env.now)())?;
    if guest.autostart {
        fs::create_dir_all(&env.config.paths.auto)?;
        let link = env.auto_link(&guest.name);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&cfg, &link)
            .with_context(|| format!("linking {}", link.display()))?;
    }
    Ok(())
}

/// One line of `list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub name: String,
    pub os: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// defined, installing, running, paused, stopping, crashed, stopped or failed.
    pub state: String,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub uptime_secs: Option<u64>,
}

pub fn list(env: &Env<'_>) -> Result<Vec<Row>> {
    let domains = env.machine.domains()?;
    let now = (env.now)();
    env.registry
        .names()?
        .into_iter()
        .map(|name| {
            let r = env.registry.record(&name, now)?;
            let dom = domains.iter().find(|d| d.name == name);
            Ok(Row {
                state: r
                    .status
                    .shown(dom.map(|d| d.run), |p| env.machine.alive(p))
                    .to_string(),
                os: r.guest.os.clone(),
                kind: r.guest.kind.to_string(),
                memory_mib: dom.map_or(r.guest.memory.as_mib(), |d| d.memory_mib),
                vcpus: dom.map_or(r.guest.vcpus, |d| d.vcpus),
                uptime_secs: dom.and_then(|d| d.uptime_secs),
                name,
            })
        })
        .collect()
}

/// Everything known about one guest, for `show`.
#[derive(Debug, Serialize)]
pub struct Details {
    pub state: String,
    pub definition: Guest,
    pub status: Status,
    pub domain: Option<Domain>,
    pub run_config: PathBuf,
    pub console_log: PathBuf,
    pub install_log: Option<PathBuf>,
}

pub fn show(env: &Env<'_>, name: &str) -> Result<Details> {
    let r = env.registry.record(name, (env.now)())?;
    let domain = env.domain(name)?;
    let log = env.registry.log_path(name)?;
    Ok(Details {
        state: r
            .status
            .shown(domain.as_ref().map(|d| d.run), |p| env.machine.alive(p))
            .to_string(),
        definition: r.guest,
        status: r.status,
        domain,
        run_config: env.run_config(name),
        console_log: env.console_log(name),
        install_log: log.exists().then_some(log),
    })
}

/// Stops and forgets a guest: its domain, configs, autostart link, registry entry and (unless
/// kept) its disk. A guest running from its own disk is only destroyed with `force`; an installer
/// is always stopped.
pub fn remove(env: &Env<'_>, name: &str, keep_disk: bool, force: bool) -> Result<()> {
    let guest = env.registry.guest(name)?;
    if env.domain(name)?.is_some() {
        let st = env.registry.status(name, (env.now)())?;
        if st.switched.is_some() && !force {
            return Err(xenprov_core::exit::refused(format!(
                "guest `{name}` is running from its own disk: shut it down first \
                 (xl shutdown -w {name}), or give --force to destroy it"
            ))
            .into());
        }
        env.machine.xl_destroy(name)?;
    }
    for p in [env.auto_link(name), env.run_config(name)] {
        match fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", p.display()));
            }
            _ => {}
        }
    }
    if !keep_disk {
        env.machine.lv_remove(&guest.vg, &guest.lv_name())?;
    }
    env.registry.remove(name)?;
    // Its reservation and forwards go with it.
    crate::network::apply(env).map(drop)
}

#[cfg(test)]
mod tests {
    use crate::machine::Run;
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::net::Ipv4Addr;
    use std::path::Path;

    use xenprov_core::guest::Guest;
    use xenprov_core::render::Templates;
    use xenprov_core::size::Size;

    use sha2::{Digest, Sha256};

    use super::*;
    use xenprov_registry::settings::Paths;

    /// Stands in for lvm2 and xl, which need a hypervisor; the e2e test runs the real ones.
    #[derive(Default)]
    struct Fake {
        log: RefCell<Vec<String>>,
        running: RefCell<Vec<String>>,
        /// What `fetch` answers with 200, by URL; every other URL is a 404.
        served: RefCell<BTreeMap<String, Vec<u8>>>,
        paused: RefCell<Vec<String>>,
        /// What `lvm` prints for `lvs`.
        lvs: RefCell<String>,
    }

    impl Machine for Fake {
        fn vg_free(&self) -> Result<BTreeMap<String, Size>> {
            Ok(BTreeMap::from([("dsk".to_string(), Size::gib(20))]))
        }
        fn lv_create(&self, vg: &str, lv: &str, size: Size) -> Result<()> {
            self.log
                .borrow_mut()
                .push(format!("lvcreate {vg}/{lv} {size}"));
            Ok(())
        }
        fn lv_remove(&self, vg: &str, lv: &str) -> Result<()> {
            self.log.borrow_mut().push(format!("lvremove {vg}/{lv}"));
            Ok(())
        }
        fn apply_network(&self, r: &crate::network::Rendered, _: &Path) -> Result<()> {
            let leases: Vec<String> = r
                .net
                .nat
                .iter()
                .flat_map(|n| n.leases.iter().map(|l| format!("{}={}", l.guest, l.ip)))
                .collect();
            self.log
                .borrow_mut()
                .push(format!("network nat [{}]", leases.join(" ")));
            Ok(())
        }
        fn fetch(&self, url: &str) -> Result<Vec<u8>> {
            self.log.borrow_mut().push(format!("GET {url}"));
            match self.served.borrow().get(url) {
                Some(b) => Ok(b.clone()),
                None => bail!("GET {url}: 404 Not Found"),
            }
        }
        fn hvm(&self) -> Result<bool> {
            Ok(true)
        }
        fn bridge_address(&self, _: &str) -> Result<Option<Ipv4Addr>> {
            Ok(Some(Ipv4Addr::new(10, 0, 2, 15)))
        }
        fn xl_create(&self, config: &Path) -> Result<()> {
            let text = fs::read_to_string(config)?;
            let name = text
                .lines()
                .find_map(|l| l.strip_prefix("name = "))
                .unwrap();
            self.running
                .borrow_mut()
                .push(name.trim_matches('"').to_string());
            self.log.borrow_mut().push(format!(
                "xl create {}",
                config.file_name().unwrap().to_string_lossy()
            ));
            Ok(())
        }
        fn xl_destroy(&self, name: &str) -> Result<()> {
            self.running.borrow_mut().retain(|n| n != name);
            self.log.borrow_mut().push(format!("xl destroy {name}"));
            Ok(())
        }
        fn xl(&self, args: &[&str]) -> Result<String> {
            match args {
                ["pause", n] => self.paused.borrow_mut().push(n.to_string()),
                ["unpause", n] => self.paused.borrow_mut().retain(|p| p != n),
                ["shutdown", n] => self.running.borrow_mut().retain(|p| p != n),
                _ => {}
            }
            self.log.borrow_mut().push(format!("xl {}", args.join(" ")));
            Ok(String::new())
        }
        fn lvm(&self, args: &[&str]) -> Result<String> {
            self.log.borrow_mut().push(args.join(" "));
            Ok(if args[0] == "lvs" {
                self.lvs.borrow().clone()
            } else {
                String::new()
            })
        }
        fn host_cpus(&self) -> Result<u32> {
            Ok(2)
        }
        fn counters(&self) -> Result<Vec<xenprov_core::xen::Counters>> {
            Ok(Vec::new())
        }
        fn alive(&self, pid: u32) -> bool {
            pid == std::process::id()
        }
        fn debootstrap(
            &self,
            guest: &Guest,
            mirror: &crate::debootstrap::Mirror,
            _: &Path,
            _: &mut dyn FnMut(String),
        ) -> Result<()> {
            self.log.borrow_mut().push(format!(
                "debootstrap {} {} from {} for {}",
                guest.name, mirror.suite, mirror.for_dom0, mirror.for_guest
            ));
            Ok(())
        }
        fn domains(&self) -> Result<Vec<Domain>> {
            Ok(self
                .running
                .borrow()
                .iter()
                .map(|n| Domain {
                    name: n.clone(),
                    domid: 7,
                    memory_mib: 1024,
                    vcpus: 1,
                    maxmem_mib: 1024,
                    max_vcpus: 1,
                    uptime_secs: Some(5),
                    run: if self.paused.borrow().contains(n) {
                        Run::Paused
                    } else {
                        Run::Running
                    },
                })
                .collect())
        }
    }

    const HASH: &str = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";

    fn def(name: &str) -> String {
        format!(
            "name = \"{name}\"\nos = \"debian12\"\ntype = \"pvh\"\nmemory = \"1G\"\ndisk = \"8G\"\nautostart = true\nroot-password-hash = '{HASH}'\n"
        )
    }

    struct Lab {
        dir: tempfile::TempDir,
        config: Config,
        registry: Registry,
        fake: Fake,
    }

    impl Lab {
        fn new() -> Lab {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path();
            let config = Config {
                repo_root: p.join("repo"),
                installer_cache: p.join("installers"),
                paths: Paths {
                    registry: p.join("reg"),
                    xen: p.join("xen"),
                    auto: p.join("xen/auto"),
                    console_log: p.join("console"),
                    network: p.join("network"),
                },
                ..Config::default()
            };
            let fake = Fake::default();
            serve_installer(&fake, b"kernel", b"initrd");
            let registry = Registry::open(&config.paths.registry, Templates::builtin()).unwrap();
            Lab {
                dir,
                config,
                registry,
                fake,
            }
        }

        fn env(&self) -> Env<'_> {
            Env {
                config: &self.config,
                registry: &self.registry,
                machine: &self.fake,
                now: &|| 1000,
            }
        }
    }

    const IMAGES: &str =
        "http://10.0.2.15:8080/debian/dists/bookworm/main/installer-amd64/current/images";

    /// d-i's netboot files and their SHA256SUMS where debian12's profile looks for them.
    fn serve_installer(fake: &Fake, kernel: &[u8], initrd: &[u8]) {
        let sum = |b: &[u8]| hex::encode(Sha256::digest(b));
        let mut served = fake.served.borrow_mut();
        let list = format!(
            "{}  ./netboot/debian-installer/amd64/linux\n{}  ./netboot/debian-installer/amd64/initrd.gz\n",
            sum(b"kernel"),
            sum(b"initrd")
        );
        served.insert(format!("{IMAGES}/SHA256SUMS"), list.into_bytes());
        let dir = format!("{IMAGES}/netboot/debian-installer/amd64");
        served.insert(format!("{dir}/linux"), kernel.to_vec());
        served.insert(format!("{dir}/initrd.gz"), initrd.to_vec());
    }

    fn token_of(install_cfg: &str) -> String {
        let i = install_cfg.find("/preseed/web1/").unwrap() + 14;
        install_cfg[i..i + 32].to_string()
    }

    #[test]
    fn an_installer_gone_without_done_is_listed_as_failed() {
        let lab = Lab::new();
        let env = lab.env();
        create(&env, &def("web1"), "web1.toml").unwrap();
        assert_eq!(list(&env).unwrap()[0].state, "installing");
        lab.fake.running.borrow_mut().clear(); // the installer's domain crashed
        assert_eq!(list(&env).unwrap()[0].state, "failed");
    }

    #[test]
    fn new_installs_then_switches_to_the_own_disk() {
        let lab = Lab::new();
        let env = lab.env();
        let g = create(&env, &def("web1"), "web1.toml").unwrap();
        // The installer is fetched and checked before anything is created.
        let dir = format!("{IMAGES}/netboot/debian-installer/amd64");
        assert_eq!(
            *lab.fake.log.borrow(),
            [
                format!("GET {IMAGES}/SHA256SUMS"),
                format!("GET {dir}/linux"),
                format!("GET {dir}/initrd.gz"),
                "lvcreate dsk/web1-disk 8G".into(),
                "network nat []".into(),
                "xl create install.cfg".into()
            ]
        );
        let install =
            fs::read_to_string(lab.registry.install_config_path("web1").unwrap()).unwrap();
        assert!(
            install.contains("url=http://10.0.2.15:8080/preseed/web1/"),
            "{install}"
        );
        // xl boots the checked copies from the cache.
        let cache = lab.dir.path().join("installers/debian12");
        assert!(install.contains(&format!("kernel = \"{}/kernel\"", cache.display())));
        assert_eq!(fs::read(cache.join("initrd")).unwrap(), b"initrd");
        let run = fs::read_to_string(lab.dir.path().join("xen/web1.cfg")).unwrap();
        assert!(run.contains("grub-i386-xen_pvh.bin"));
        assert_eq!(list(&env).unwrap()[0].state, "installing");

        let token = token_of(&install);
        lab.registry
            .record_event("web1", &token, b"started", 1000)
            .unwrap();
        lab.registry
            .record_event("web1", &token, b"done", 1000)
            .unwrap();
        assert_eq!(
            list(&env).unwrap()[0].state,
            "installing",
            "the installer is still powering off"
        );
        let mut said = Vec::new();
        let mut polls = 0;
        let fake = &lab.fake;
        wait(
            &env,
            "web1",
            Duration::ZERO,
            &mut |_| {
                polls += 1;
                fake.running.borrow_mut().clear(); // on_reboot = destroy ends the domain
            },
            &mut |l| said.push(l),
        )
        .unwrap();
        assert_eq!(polls, 1);
        assert_eq!(
            said,
            [
                "web1: installer reported started",
                "web1: installer reported done",
                "web1: installed; started from its own disk"
            ]
        );
        assert_eq!(lab.fake.log.borrow().last().unwrap(), "xl create web1.cfg");
        let link = fs::read_link(lab.dir.path().join("xen/auto/web1.cfg")).unwrap();
        assert_eq!(link, lab.dir.path().join("xen/web1.cfg"));
        let rows = list(&env).unwrap();
        assert_eq!(
            (rows[0].state.as_str(), rows[0].uptime_secs),
            ("running", Some(5))
        );
        assert_eq!(g.name, "web1");

        let e = remove(&env, "web1", false, false).unwrap_err();
        assert!(e.to_string().contains("--force"), "{e}");
        assert_eq!(
            lab.fake.log.borrow().len(),
            7,
            "a refused rm touched something"
        );
        assert!(lab.dir.path().join("xen/web1.cfg").exists());
        remove(&env, "web1", false, true).unwrap();
        assert_eq!(
            &lab.fake.log.borrow()[7..],
            [
                "xl destroy web1",
                "lvremove dsk/web1-disk",
                "network nat []"
            ]
        );
        assert!(!lab.dir.path().join("xen/web1.cfg").exists());
        assert!(fs::symlink_metadata(lab.dir.path().join("xen/auto/web1.cfg")).is_err());
        assert!(list(&env).unwrap().is_empty());
    }

    #[test]
    fn an_installer_that_dies_without_done_fails_the_guest() {
        let lab = Lab::new();
        let env = lab.env();
        create(&env, &def("web1"), "web1.toml").unwrap();
        lab.fake.running.borrow_mut().clear();
        let e = wait(&env, "web1", Duration::ZERO, &mut |_| {}, &mut |_| {}).unwrap_err();
        assert!(
            e.to_string().contains("ended before it reported done"),
            "{e}"
        );
        assert!(e.to_string().contains("guest-web1.log"), "{e}");
        assert_eq!(list(&env).unwrap()[0].state, "failed");
        remove(&env, "web1", true, false).unwrap();
        assert!(
            !lab.fake
                .log
                .borrow()
                .iter()
                .any(|l| l.starts_with("lvremove"))
        );
    }

    #[test]
    fn a_debootstrap_guest_is_built_in_the_dom0_and_started_from_its_disk() {
        let lab = Lab::new();
        let env = lab.env();
        let src = def("web1").replace("type = \"pvh\"", "type = \"pv\"\nmethod = \"debootstrap\"");
        create(&env, &src, "web1.toml").unwrap();
        assert_eq!(
            *lab.fake.log.borrow(),
            [
                "lvcreate dsk/web1-disk 8G",
                "network nat []",
                "debootstrap web1 bookworm from http://127.0.0.1:8080/debian for http://10.0.2.15:8080/debian",
                "xl create web1.cfg",
            ],
            "no installer is fetched, no installer domain"
        );
        let st = lab.registry.status("web1", 1000).unwrap();
        assert_eq!((st.state, st.token_sha256), (State::Installed, None));
        assert_eq!(list(&env).unwrap()[0].state, "running");
    }

    #[test]
    fn a_nat_guest_reaches_the_repo_server_on_the_nat_bridge_and_its_lease_goes_with_it() {
        let lab = Lab::new();
        let env = lab.env();
        let src = def("web1").replace("type = \"pvh\"", "type = \"pv\"\nmethod = \"debootstrap\"")
            + "[network]\nattach = \"nat\"\n";
        create(&env, &src, "web1.toml").unwrap();
        // An installer guest behind the NAT: the dom0 fetches its installer on loopback.
        let local: Vec<(String, Vec<u8>)> = lab
            .fake
            .served
            .borrow()
            .iter()
            .map(|(u, b)| (u.replace("10.0.2.15", "127.0.0.1"), b.clone()))
            .collect();
        lab.fake.served.borrow_mut().extend(local);
        let src2 = src
            .replace("web1", "web2")
            .replace("method = \"debootstrap\"\n", "");
        create(&env, &src2, "web2.toml").unwrap();
        let install =
            fs::read_to_string(lab.registry.install_config_path("web2").unwrap()).unwrap();
        assert!(
            install.contains("url=http://10.213.0.1:8080/preseed/web2/")
                && install.contains("bridge=xpnat0"),
            "{install}"
        );
        let log = lab.fake.log.borrow().clone();
        let has = |l: &str| log.iter().any(|x| x == l);
        assert!(has("network nat [web1=10.213.0.2]"), "{log:?}");
        assert!(
            has(
                "debootstrap web1 bookworm from http://127.0.0.1:8080/debian for http://10.213.0.1:8080/debian"
            ),
            "{log:?}"
        );
        assert!(
            has("network nat [web1=10.213.0.2 web2=10.213.0.3]"),
            "{log:?}"
        );
        remove(&env, "web1", false, true).unwrap();
        assert_eq!(
            lab.fake.log.borrow().last().unwrap(),
            "network nat [web2=10.213.0.3]"
        );
    }

    #[test]
    fn list_tells_the_domain_s_state_whoever_changed_it() {
        let lab = Lab::new();
        let env = lab.env();
        let src = def("web1").replace("type = \"pvh\"", "type = \"pv\"\nmethod = \"debootstrap\"");
        create(&env, &src, "web1.toml").unwrap();
        use crate::lifecycle::{self, Changes, Stopped};
        let refused = |r: Result<()>, want: &str| {
            let e = r.unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
            assert_eq!(
                e.downcast_ref::<xenprov_core::exit::Status>()
                    .map(|s| s.code),
                Some(xenprov_core::exit::REFUSED),
                "{e}"
            );
        };
        refused(lifecycle::start(&env, "web1"), "already running (domain 7)");
        lifecycle::pause(&env, "web1", true).unwrap();
        assert_eq!(list(&env).unwrap()[0].state, "paused");
        refused(lifecycle::pause(&env, "web1", true), "already paused");
        lifecycle::pause(&env, "web1", false).unwrap();
        refused(lifecycle::pause(&env, "web1", false), "is not paused");
        refused(
            crate::storage::mount(&env, "web1", Path::new("/mnt"), 1, false).map(drop),
            "running (domain 7): its disk is mounted only with it off",
        );
        let e =
            crate::storage::snapshot_create(&env, "web1", "big", Some(Size::gib(30))).unwrap_err();
        assert!(
            e.to_string().contains("volume group `dsk` has 20 GiB free"),
            "{e}"
        );
        // Shut down by hand with xl: the tool sees it.
        lab.fake.running.borrow_mut().clear();
        assert_eq!(list(&env).unwrap()[0].state, "stopped");
        refused(
            lifecycle::pause(&env, "web1", true),
            "is not running: xenprov-guest start web1",
        );
        lifecycle::start(&env, "web1").unwrap();
        assert_eq!(
            lifecycle::stop(&env, "web1", Duration::from_secs(5), &mut |_| {}).unwrap(),
            Stopped::Clean(Duration::ZERO)
        );
        lifecycle::start(&env, "web1").unwrap();

        let set = |c: Changes| lifecycle::set(&env, "web1", &c);
        let set_refused = |c: Changes, want: &str| {
            let e = format!("{:#}", set(c).unwrap_err());
            assert!(e.contains(want), "{e}");
        };
        set_refused(
            Changes {
                vcpus: Some(3),
                ..Changes::default()
            },
            "3 vCPUs is more than this host's 2 physical CPUs",
        );
        set_refused(
            Changes {
                cpus: Some("1-2".into()),
                ..Changes::default()
            },
            "names CPU 2, but this host has CPUs 0 to 1",
        );
        set_refused(
            Changes {
                memory: Some(Size::gib(2)),
                maxmem: Some(Size::gib(1)),
                ..Changes::default()
            },
            "maxmem: 1G is less than memory = 2G",
        );
        lab.fake.log.borrow_mut().clear();
        let said = set(Changes {
            memory: Some(Size::mib(768)),
            vcpus: Some(2),
            ..Changes::default()
        })
        .unwrap();
        assert_eq!(*lab.fake.log.borrow(), ["xl mem-set web1 768m"]);
        assert_eq!(said[0], "memory 768M now");
        assert_eq!(
            said[1],
            "2 vCPUs at its next boot (it booted with at most 1)"
        );
        let run = fs::read_to_string(lab.dir.path().join("xen/web1.cfg")).unwrap();
        assert!(
            run.contains("memory = 768\n") && run.contains("vcpus = 2\n"),
            "{run}"
        );
        assert_eq!(lab.registry.guest("web1").unwrap().memory, Size::mib(768));

        // A disk below what the OS needs is refused before any tool runs, and the definition
        // stays readable (found on the host: a shrink to 3G left a guest.toml that no longer read).
        lab.fake.log.borrow_mut().clear();
        let e = format!(
            "{:#}",
            crate::storage::resize(&env, "web1", Size::gib(3)).unwrap_err()
        );
        assert!(
            e.contains("guest `web1` with these changes")
                && e.contains("disk: 3G is less than the 4G the OS needs"),
            "{e}"
        );
        assert!(
            lab.fake.log.borrow().is_empty(),
            "{:?}",
            lab.fake.log.borrow()
        );
        assert_eq!(lab.registry.guest("web1").unwrap().disk, Size::gib(8));
    }

    #[test]
    fn refusals_touch_nothing() {
        let lab = Lab::new();
        let env = lab.env();
        create(&env, &def("web1"), "web1.toml").unwrap();
        let e = create(&env, &def("web1").replace("8G", "30G"), "again.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("again.toml:\n"), "{e}");
        assert!(
            e.contains("already exists") && e.contains("30G does not fit"),
            "{e}"
        );
        // An installer whose bytes are not what its SHA256SUMS says is never handed to xl (the
        // cached copy from web1 matches its list, so it is dropped to make the tool fetch again).
        fs::remove_dir_all(&lab.config.installer_cache).unwrap();
        serve_installer(&lab.fake, b"kernel", b"tampered");
        let e = format!("{:#}", create(&env, &def("web2"), "web2.toml").unwrap_err());
        assert!(
            e.contains("initrd.gz has SHA-256") && e.contains("refusing to boot it"),
            "{e}"
        );
        lab.fake.served.borrow_mut().clear();
        let e = format!("{:#}", create(&env, &def("web2"), "web2.toml").unwrap_err());
        assert!(e.contains("SHA256SUMS: 404"), "{e}");
        lab.fake.log.borrow_mut().retain(|l| !l.starts_with("GET "));
        assert_eq!(
            lab.fake.log.borrow().len(),
            3,
            "only web1's lvcreate, network and xl create ran"
        );
        assert_eq!(lab.registry.names().unwrap(), ["web1"]);
    }
}
