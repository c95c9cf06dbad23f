//! Host settings for guests (`/etc/xenprov/guests.toml`, optional): where the registry, the xl
//! configs and the repo server's files are, how guests reach the repo server, and which URL serves
//! each OS's install tree when it is not the repo server's own copy.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use xenprov_core::guest_net::{DEFAULT_NAT_SUBNET, check_nat_subnet};
use xenprov_core::net::Cidr;
use xenprov_core::reader::{Diags, Reader};

pub const DEFAULT_PATH: &str = "/etc/xenprov/guests.toml";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The volume group guests go in unless their definition names one.
    pub vg: String,
    /// How guests reach the repo server, e.g. `http://192.0.2.10:8080`; by default the dom0's
    /// address on the guest's bridge and `repo-port`.
    pub repo_url: Option<String>,
    pub repo_port: u16,
    /// The repo server's root on this host: installer kernels are read from here by xl.
    pub repo_root: PathBuf,
    /// Install tree URLs by OS id, overriding `REPO_URL/TREE` from the OS profile.
    pub trees: Vec<(String, String)>,
    /// URLs of installer checksum lists by OS id, overriding `TREE_URL/INSTALLER` from the profile
    /// (another build of d-i, a local copy); the files are still checked against the list.
    pub installers: Vec<(String, String)>,
    /// Where fetched and verified installer kernels and initrds are kept for xl.
    pub installer_cache: PathBuf,
    /// An install with no event for this long is failed.
    pub install_timeout: Duration,
    /// The subnet behind the dom0's NAT (`network.attach = "nat"` guests); the dom0 is its first
    /// address.
    pub nat_subnet: Cidr,
    pub paths: Paths,
    /// A directory whose files replace the built-in templates of the same name.
    pub templates: Option<PathBuf>,
}

/// Where guests live on the dom0.
#[derive(Debug, Clone, PartialEq)]
pub struct Paths {
    /// One directory per guest: definition, state, install config, install log.
    pub registry: PathBuf,
    /// Run-phase xl configs (`NAME.cfg`), as xendomains expects.
    pub xen: PathBuf,
    /// Links here are started at boot by xendomains.
    pub auto: PathBuf,
    /// xenconsoled's per-guest logs (`guest-NAME.log`).
    pub console_log: PathBuf,
    /// The host side of guest networks that `xenprov-guest network apply` writes: the nftables
    /// ruleset, the NAT bridge's DHCP settings and leases.
    pub network: PathBuf,
}

impl Paths {
    /// The console log xenconsoled keeps of guest `name`.
    pub fn console_log_of(&self, name: &str) -> PathBuf {
        self.console_log.join(format!("guest-{name}.log"))
    }
}

impl Default for Paths {
    fn default() -> Paths {
        Paths {
            registry: "/var/lib/xenprov/guests".into(),
            xen: "/etc/xen".into(),
            auto: "/etc/xen/auto".into(),
            console_log: "/var/log/xen/console".into(),
            network: "/var/lib/xenprov/network".into(),
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            vg: "dsk".into(),
            repo_url: None,
            repo_port: 8080,
            repo_root: "/srv/xenprov/repo".into(),
            trees: Vec::new(),
            installers: Vec::new(),
            installer_cache: "/var/cache/xenprov/installers".into(),
            install_timeout: Duration::from_secs(2 * 3600),
            nat_subnet: DEFAULT_NAT_SUBNET,
            paths: Paths::default(),
            templates: None,
        }
    }
}

/// An install source's URL, as `repo-url` and `trees` in the settings and `render --repo-url`
/// give it. It reaches xl configs, kernel command lines, kickstarts and a preseed's shell
/// commands (its host unquoted, its path inside printf's format), so it is held to a host name or
/// address, an optional port and a path of characters that mean nothing to any of them.
pub fn check_url(s: &str) -> Result<String, String> {
    const PATH: &str = "-._~/+=,:@";
    let accepted = || {
        format!(
            "`{s}` is not an http:// URL (installers fetch over plain HTTP): a host name or address, \
             an optional :port and a path of letters, digits and {PATH}"
        )
    };
    let rest = s.strip_prefix("http://").ok_or_else(accepted)?;
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let (host, port) = match authority.rsplit_once(':') {
        // The last ':' of `[::1]` alone is inside the brackets, not before a port.
        Some((h, p)) if !p.contains(']') => (h, Some(p)),
        _ => (authority, None),
    };
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
        }
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    let path_ok = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || PATH.contains(c));
    if host_ok && port_ok && path_ok {
        Ok(s.trim_end_matches('/').to_string())
    } else {
        Err(accepted())
    }
}

impl Config {
    /// Reads the settings file; a missing file means every default.
    pub fn load(path: &Path) -> Result<Config> {
        match std::fs::read_to_string(path) {
            Ok(src) => Config::parse(&src).map_err(|d| {
                xenprov_core::exit::invalid(format!("{}:\n{d}", path.display())).into()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn parse(src: &str) -> Result<Config, Diags> {
        let d = Config::default();
        let r = Reader::new(src);
        let doc = r.parse();
        let t = r.root(&doc);
        let vg = t
            .parsed("vg", |s| {
                xenprov_core::answer::check_lvm_name(s, "volume group").map(|_| s.to_string())
            })
            .map_or(d.vg, |a| a.value);
        let repo_url = t.parsed("repo-url", check_url).map(|a| a.value);
        let repo_port = t
            .int("repo-port")
            .and_then(|a| {
                u16::try_from(a.value).ok().filter(|p| *p > 0).or_else(|| {
                    t.error("repo-port", a.offset, "not a TCP port");
                    None
                })
            })
            .unwrap_or(d.repo_port);
        let repo_root = t.path("repo-root").unwrap_or(d.repo_root);
        let by_os = |key, what| {
            t.array(key, |it| {
                let e = it.table()?;
                let os = e.req_str("os", "the OS id");
                let url = e.parsed("url", check_url);
                if !e.has("url") {
                    e.error("url", e.offset(), what);
                }
                e.finish();
                Some((os?.value, url?.value))
            })
            .unwrap_or_default()
        };
        let trees = by_os("trees", "missing: the install tree's URL");
        let installers = by_os(
            "installers",
            "missing: the URL of the installer's checksum list (SHA256SUMS or .treeinfo)",
        );
        let installer_cache = t.path("installer-cache").unwrap_or(d.installer_cache);
        let install_timeout = t
            .parsed("install-timeout", |s| {
                humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e}; e.g. \"90m\""))
            })
            .map_or(d.install_timeout, |a| a.value);
        let nat_subnet = t
            .parsed("nat-subnet", check_nat_subnet)
            .map_or(d.nat_subnet, |a| a.value);
        let paths = match t.table("paths") {
            Some(p) => {
                let get = |key, def: PathBuf| p.path(key).unwrap_or(def);
                let dp = Paths::default();
                let v = Paths {
                    registry: get("registry", dp.registry),
                    xen: get("xen", dp.xen),
                    auto: get("auto", dp.auto),
                    console_log: get("console-log", dp.console_log),
                    network: get("network", dp.network),
                };
                p.finish();
                v
            }
            None => d.paths,
        };
        let templates = t.path("templates");
        t.finish();
        r.finish()?;
        Ok(Config {
            vg,
            repo_url,
            repo_port,
            repo_root,
            trees,
            installers,
            installer_cache,
            install_timeout,
            nat_subnet,
            paths,
            templates,
        })
    }

    /// The repo server as the dom0 itself reaches it: on loopback, at `repo-port`.
    pub fn local_repo_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.repo_port)
    }

    /// The install tree URL for an OS profile's tree, given the repo server's URL.
    pub fn tree_url(&self, os: &str, tree: &str, repo_url: &str) -> String {
        self.trees
            .iter()
            .find(|(id, _)| id == os)
            .map(|(_, u)| u.clone())
            .unwrap_or_else(|| format!("{repo_url}/{}", tree.trim_matches('/')))
    }

    /// Where the installer's checksum list of OS `os` is read: `TREE_URL/INSTALLER` unless
    /// `[[installers]]` says otherwise.
    pub fn installer_list_url(&self, os: &str, installer: &str, tree_url: &str) -> String {
        self.installers
            .iter()
            .find(|(id, _)| id == os)
            .map(|(_, u)| u.clone())
            .unwrap_or_else(|| format!("{tree_url}/{}", installer.trim_start_matches('/')))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packaged_file_says_the_defaults_and_its_examples_read() {
        let shipped = include_str!("../../templates/guests.toml");
        assert_eq!(Config::parse(shipped).unwrap(), Config::default());
        // Uncommented (`#key`, `#[table]`; prose is `# ...`), every example reads, and those shown as
        // the defaults are.
        let examples: Vec<&str> = shipped
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if !rest.is_empty() && !rest.starts_with(' ') => rest,
                _ => l,
            })
            .collect();
        let c = Config::parse(&examples.join("\n")).unwrap();
        let d = Config::default();
        assert_eq!(
            (c.vg, c.repo_port, c.repo_root, c.installer_cache),
            (d.vg, d.repo_port, d.repo_root, d.installer_cache)
        );
        assert_eq!((c.install_timeout, c.paths), (d.install_timeout, d.paths));
        assert_eq!(c.trees.len(), 1);
        assert_eq!(c.installers.len(), 1);
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn reads_every_key_and_reports_bad_ones() {
        let c = Config::parse(
            "vg = \"vg0\"\nrepo-url = \"http://10.0.2.15:8080/\"\ninstall-timeout = \"90m\"\n\
             trees = [{ os = \"debian12\", url = \"http://10.0.2.2:3142/debian\" }]\n\
             [paths]\nregistry = \"/tmp/r\"\n",
        )
        .unwrap();
        assert_eq!(c.vg, "vg0");
        assert_eq!(c.repo_url.as_deref(), Some("http://10.0.2.15:8080"));
        assert_eq!(c.install_timeout, Duration::from_secs(5400));
        assert_eq!(c.paths.registry, PathBuf::from("/tmp/r"));
        assert_eq!(c.paths.xen, PathBuf::from("/etc/xen"));
        assert_eq!(
            c.tree_url("debian12", "debian", "http://h:8080"),
            "http://10.0.2.2:3142/debian"
        );
        assert_eq!(
            c.tree_url("rocky9", "rocky/9", "http://h:8080"),
            "http://h:8080/rocky/9"
        );
        let e = Config::parse("repo-url = \"ftp://x\"\nrepo-port = 0\ninstall_timeout = \"1h\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("1:12: repo-url: `ftp://x` is not an http:// URL"),
            "{e}"
        );
        assert!(e.contains("repo-port: not a TCP port"), "{e}");
        assert!(e.contains("did you mean `install-timeout`?"), "{e}");
    }

    #[test]
    fn urls_carry_nothing_that_a_generated_file_would_read() {
        for ok in [
            "http://10.0.2.15:8080",
            "http://repo.example.org/",
            "http://[fe80::1]:8080/debian",
            "http://[::1]",
            "http://h/rocky/9/BaseOS/x86_64/os",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://h:8080\nextra = 1",
            "http://h\u{1}",
            "http://h;reboot:8080",
            "http://h:80/a%sb",
            "http://h:80/a'b",
            "http://h:80/a\"b",
            "http://h:80/a b",
            "http://h:0",
            "http://h:99999",
            "http://",
            "https://h",
            "http://[not-v6]:80",
            "http://fe80::1/",
        ] {
            assert!(check_url(bad).is_err(), "{bad:?}");
        }
    }
}
