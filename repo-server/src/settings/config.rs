//! Settings of `xenprov-repo serve`: defaults, then a TOML file (`--config`), then command-line flags. The
//! file is read by the spanned reader, as the answer file is: every problem at once, each with its line,
//! column and key, and sizes with their unit (`8M`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, ensure};
use xenprov_core::reader::{At, Diags, Reader, Table};

use crate::settings::specs::{self, DurationText, IsoSpec, MirrorSpec, UpstreamSpec};

/// hyper refuses read buffers smaller than this, and requests with longer headers get 431.
pub const MIN_HEADER_BYTES: usize = 8192;

/// The repo server's settings (`repo.toml`); every key is optional.
#[derive(Debug, Clone, PartialEq, schemars::JsonSchema)]
#[schemars(
    title = "xenprov-repo settings (repo.toml)",
    rename_all = "kebab-case",
    deny_unknown_fields,
    transform = no_key_required
)]
pub struct Config {
    /// Directory served at `/`.
    pub root: PathBuf,
    pub listen: SocketAddr,
    /// Open connections at most; at the cap, idle connections are closed to make room.
    pub max_connections: usize,
    /// Time a client has to send complete request headers, also between keep-alive requests.
    #[schemars(with = "DurationText")]
    pub header_read_timeout: Duration,
    /// A connection on which no bytes move for this long, and no handler is working, is closed.
    #[schemars(with = "DurationText")]
    pub idle_timeout: Duration,
    /// On SIGTERM, time given to responses in progress before the process exits anyway.
    #[schemars(with = "DurationText")]
    pub shutdown_timeout: Duration,
    /// Request line plus headers, in bytes; longer requests get 431.
    #[schemars(with = "xenprov_core::size::SizeOrBytes")]
    pub max_header_bytes: usize,
    /// Files up to this size are kept in memory.
    #[schemars(with = "xenprov_core::size::SizeOrBytes")]
    pub cache_max_file: u64,
    /// Memory for cached files, in bytes (0 disables the cache).
    #[schemars(with = "xenprov_core::size::SizeOrBytes")]
    pub cache_capacity: u64,
    /// Send large file bodies with sendfile(2) on HTTP/1 connections.
    pub sendfile: bool,
    /// Write one log line per request (tracing target `xenprov_repo::access`).
    pub access_log: bool,
    /// Serve the host's status page at `/ui/` and its JSON at `/api/status`, and the guests' series in
    /// `/metrics`; off, `/ui/` and `/api/` are 404 and `/metrics` has the server's counters only.
    pub status_page: bool,
    /// Event-loop threads; 0 runs one per CPU.
    pub workers: usize,
    /// ISO images served in place, each at `/NAME/`.
    pub iso: Vec<IsoSpec>,
    /// Upstream repositories served through a verifying cache, each at `/NAME/`.
    pub upstream: Vec<UpstreamSpec>,
    /// Mirrors synced by `xenprov-repo mirror NAME` and served at `/NAME/`.
    pub mirror: Vec<MirrorSpec>,
    /// Directory of the upstream caches, one subdirectory per upstream.
    pub cache: PathBuf,
    /// Directory of the mirrors, one subdirectory (snapshots and `current`) per mirror.
    pub mirrors: PathBuf,
    /// Keyring that signs upstream repositories unless an upstream or mirror names its own.
    pub keyring: PathBuf,
    /// xenprov-guest's settings file (`/etc/xenprov/guests.toml` on a host): the guest registry it names
    /// serves `/ks/`, `/preseed/` and `/events/`. Without it the server has no install routes.
    #[schemars(with = "PathBuf")]
    pub guests: Option<PathBuf>,
    /// Directory of the fleet's host entries (`NAME.toml` each; a host's packaged config names
    /// `/etc/xenprov/hosts`): when it is set and exists, the server answers netboots at `/boot.ipxe`
    /// and `/ipxe` and serves `/answer/` and `/events/host/`. Without it, no fleet routes.
    #[schemars(with = "PathBuf")]
    pub hosts: Option<PathBuf>,
    /// Where the server keeps each host's install state and the answers of installs in progress.
    pub hosts_state: PathBuf,
    /// The `[[iso]]` that network installs boot (its `/boot/vmlinuz` and `/boot/initrd.img`); by
    /// default the only `[[iso]]` there is.
    #[schemars(with = "String")]
    pub install_iso: Option<String>,
}

/// Every key of `repo.toml` has a default.
fn no_key_required(schema: &mut schemars::Schema) {
    schema.remove("required");
}

/// JSON Schema of `repo.toml`, for editors and `xenprov-repo schema`.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Config)).expect("a schema serializes")
}

impl Default for Config {
    fn default() -> Config {
        Config {
            root: PathBuf::from("/srv/xenprov/repo"),
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(10),
            max_header_bytes: 16 << 10,
            cache_max_file: 256 << 10,
            cache_capacity: 8 << 20,
            sendfile: true,
            access_log: true,
            status_page: true,
            workers: 0,
            iso: Vec::new(),
            upstream: Vec::new(),
            mirror: Vec::new(),
            cache: PathBuf::from("/var/cache/xenprov/upstream"),
            mirrors: PathBuf::from("/var/lib/xenprov/mirrors"),
            keyring: PathBuf::from(crate::settings::specs::DEBIAN_KEYRING),
            guests: None,
            hosts: None,
            hosts_state: PathBuf::from("/var/lib/xenprov/hosts"),
            install_iso: None,
        }
    }
}

/// Command-line flags of `serve`; each overrides the key of the same name in the config file.
#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML file with the settings below (kebab-case keys)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory to serve [default: /srv/xenprov/repo]
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Address and port to listen on [default: 0.0.0.0:8080]
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Open connections at most [default: 10000]
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Time allowed for request headers, e.g. 30s
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Option<Duration>,
    /// Close connections idle this long, e.g. 60s
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// Grace period for responses in progress on SIGTERM, e.g. 10s
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Option<Duration>,
    /// Longest request head, e.g. 16K or 16384 (bytes) [default: 16K]
    #[arg(long, value_name = "SIZE", value_parser = size_flag)]
    pub max_header_bytes: Option<u64>,
    /// Largest file kept in memory, e.g. 256K [default: 256K]
    #[arg(long, value_name = "SIZE", value_parser = size_flag)]
    pub cache_max_file: Option<u64>,
    /// Memory for cached files, e.g. 8M; 0 disables the cache [default: 8M]
    #[arg(long, value_name = "SIZE", value_parser = size_flag)]
    pub cache_capacity: Option<u64>,
    /// Use sendfile(2) for large files on HTTP/1 [default: true]
    #[arg(long, value_name = "BOOL")]
    pub sendfile: Option<bool>,
    /// Log every request [default: true]
    #[arg(long, value_name = "BOOL")]
    pub access_log: Option<bool>,
    /// Serve the status page at /ui/ and /api/status [default: true]
    #[arg(long, value_name = "BOOL")]
    pub status_page: Option<bool>,
    /// Event-loop threads, 0 for one per CPU [default: 0]
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Serve an ISO image in place at /NAME/ (repeatable; adds to the config file's)
    #[arg(long = "iso", value_name = "NAME=PATH", value_parser = IsoSpec::parse_flag)]
    pub iso: Vec<IsoSpec>,
    /// Serve an upstream repository through the verifying cache at /NAME/; NAME alone is this machine's
    /// Debian mirror (repeatable; adds to the config file's)
    #[arg(long = "upstream", value_name = "NAME[=URL]", value_parser = UpstreamSpec::parse_flag)]
    pub upstream: Vec<UpstreamSpec>,
    /// Directory of the upstream caches [default: /var/cache/xenprov/upstream]
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Directory of the mirrors [default: /var/lib/xenprov/mirrors]
    #[arg(long, value_name = "DIR")]
    pub mirrors: Option<PathBuf>,
    /// Keyring of upstream repositories [default: Debian's archive keyring]
    #[arg(long, value_name = "FILE")]
    pub keyring: Option<PathBuf>,
    /// xenprov-guest's settings file, whose guest registry serves /ks/, /preseed/ and /events/ [default: none]
    #[arg(long, value_name = "FILE")]
    pub guests: Option<PathBuf>,
    /// Directory of the fleet's host entries, which serves /boot.ipxe and /ipxe [default: none; for the hosts verbs, /etc/xenprov/hosts]
    #[arg(long, value_name = "DIR")]
    pub hosts: Option<PathBuf>,
    /// Directory of the hosts' install state [default: /var/lib/xenprov/hosts]
    #[arg(long, value_name = "DIR")]
    pub hosts_state: Option<PathBuf>,
    /// The --iso NAME that network installs boot [default: the only one]
    #[arg(long, value_name = "NAME")]
    pub install_iso: Option<String>,
}

/// A size flag: a number of bytes, or a size with its unit as in the config file (`8M`).
fn size_flag(s: &str) -> Result<u64, String> {
    s.parse::<u64>()
        .or_else(|_| s.parse::<xenprov_core::size::Size>().map(|z| z.bytes()))
}

impl ServeArgs {
    /// The effective configuration: defaults, the config file if given, then these flags.
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        macro_rules! override_with_flags {
            ($($key:ident),*) => {
                $(if let Some(value) = &self.$key { config.$key = value.clone(); })*
            };
        }
        override_with_flags!(
            root,
            listen,
            max_connections,
            header_read_timeout,
            idle_timeout,
            shutdown_timeout,
            cache_max_file,
            cache_capacity,
            sendfile,
            access_log,
            status_page,
            workers,
            cache,
            mirrors,
            keyring,
            hosts_state
        );
        if let Some(hosts) = &self.hosts {
            config.hosts = Some(hosts.clone());
        }
        if let Some(iso) = &self.install_iso {
            config.install_iso = Some(iso.clone());
        }
        if let Some(n) = self.max_header_bytes {
            config.max_header_bytes = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(guests) = &self.guests {
            config.guests = Some(guests.clone());
        }
        config.iso.extend(self.iso.iter().cloned());
        config.upstream.extend(self.upstream.iter().cloned());
        config.validate()?;
        Ok(config)
    }
}

impl Config {
    /// The file at `path`; its problems are listed as `PATH:LINE:COLUMN: key: what is wrong`.
    pub fn from_file(path: &Path) -> anyhow::Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Config::parse(&text).map_err(|d| xenprov_core::exit::invalid(d.in_file(path)).into())
    }

    /// A config file's text, over the defaults.
    pub fn parse(src: &str) -> Result<Config, Diags> {
        let d = Config::default();
        let r = Reader::new(src);
        let doc = r.parse();
        let t = r.root(&doc);
        let timeout = |key, zero_ok: bool| {
            t.parsed(key, |s| {
                let v = specs::duration(s)?;
                if v.is_zero() && !zero_ok {
                    return Err(format!("`{s}`: must be longer than 0s"));
                }
                Ok(v)
            })
            .map(|a| a.value)
        };
        let count = |key, min: i64| {
            t.int(key).and_then(|a| {
                usize::try_from(a.value)
                    .ok()
                    .filter(|n| *n as i64 >= min)
                    .or_else(|| {
                        t.error(
                            key,
                            a.offset,
                            format!("expected a whole number, {min} or more"),
                        );
                        None
                    })
            })
        };
        let listen = t.parsed("listen", |s| {
            s.parse::<SocketAddr>().map_err(|_| {
                format!(
                    "`{s}` is not ADDRESS:PORT; expected e.g. \"0.0.0.0:8080\" or \"[::]:8080\""
                )
            })
        });
        let max_header_bytes = t.size("max-header-bytes").and_then(|a| {
            let ok = usize::try_from(a.value).is_ok_and(|n| n >= MIN_HEADER_BYTES);
            if !ok {
                t.error(
                    "max-header-bytes",
                    a.offset,
                    format!("must be at least {MIN_HEADER_BYTES} bytes (8K)"),
                );
            }
            ok.then_some(a.value as usize)
        });
        let mut names: Vec<At<String>> = Vec::new();
        let iso = tables(&t, "iso", IsoSpec::read, &mut names);
        let upstream = tables(&t, "upstream", UpstreamSpec::read, &mut names);
        let mirror = tables(&t, "mirror", MirrorSpec::read, &mut names);
        let mut seen = std::collections::HashSet::new();
        for n in &names {
            if !seen.insert(n.value.as_str()) {
                r.report_at(
                    n.offset,
                    &n.key,
                    format!(
                        "name {:?} is used twice: each mount has its own /NAME/",
                        n.value
                    ),
                );
            }
        }
        let config = Config {
            root: t.path("root").unwrap_or(d.root),
            listen: listen.map_or(d.listen, |a| a.value),
            max_connections: count("max-connections", 1).unwrap_or(d.max_connections),
            header_read_timeout: timeout("header-read-timeout", false)
                .unwrap_or(d.header_read_timeout),
            idle_timeout: timeout("idle-timeout", false).unwrap_or(d.idle_timeout),
            shutdown_timeout: timeout("shutdown-timeout", true).unwrap_or(d.shutdown_timeout),
            max_header_bytes: max_header_bytes.unwrap_or(d.max_header_bytes),
            cache_max_file: t
                .size("cache-max-file")
                .map_or(d.cache_max_file, |a| a.value),
            cache_capacity: t
                .size("cache-capacity")
                .map_or(d.cache_capacity, |a| a.value),
            sendfile: t.bool("sendfile").unwrap_or(d.sendfile),
            access_log: t.bool("access-log").unwrap_or(d.access_log),
            status_page: t.bool("status-page").unwrap_or(d.status_page),
            workers: count("workers", 0).unwrap_or(d.workers),
            iso,
            upstream,
            mirror,
            cache: t.path("cache").unwrap_or(d.cache),
            mirrors: t.path("mirrors").unwrap_or(d.mirrors),
            keyring: t.path("keyring").unwrap_or(d.keyring),
            guests: t.path("guests").or(d.guests),
            hosts: t.path("hosts").or(d.hosts),
            hosts_state: t.path("hosts-state").unwrap_or(d.hosts_state),
            install_iso: t.str("install-iso").map(|a| a.value).or(d.install_iso),
        };
        t.finish();
        r.finish()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        ensure!(
            self.max_header_bytes >= MIN_HEADER_BYTES,
            "max-header-bytes must be at least {MIN_HEADER_BYTES}"
        );
        ensure!(
            self.max_connections > 0,
            "max-connections must be at least 1"
        );
        for (key, value) in [
            ("header-read-timeout", self.header_read_timeout),
            ("idle-timeout", self.idle_timeout),
        ] {
            ensure!(!value.is_zero(), "{key} must be longer than 0s");
        }
        let names = (self.iso.iter().map(|m| ("iso", &m.name)))
            .chain(self.upstream.iter().map(|u| ("upstream", &u.name)))
            .chain(self.mirror.iter().map(|m| ("mirror", &m.name)));
        let mut seen = std::collections::HashSet::new();
        for (kind, name) in names {
            specs::check_name(kind, name).map_err(anyhow::Error::msg)?;
            ensure!(seen.insert(name), "{kind} name {name:?} is used twice");
        }
        if let Some(iso) = &self.install_iso {
            let names: Vec<&str> = self.iso.iter().map(|i| i.name.as_str()).collect();
            ensure!(
                names.contains(&iso.as_str()),
                "install-iso {iso:?} is not an [[iso]] of this config; its ISOs are: {}",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            );
        }
        Ok(())
    }

    /// The hosts directory the `hosts` verbs read: the configured one, else `/etc/xenprov/hosts`.
    pub fn hosts_dir(&self) -> PathBuf {
        self.hosts
            .clone()
            .unwrap_or_else(|| PathBuf::from("/etc/xenprov/hosts"))
    }

    /// The name of the ISO that network installs boot: `install-iso`, or the only `[[iso]]`.
    pub fn install_iso(&self) -> Option<&str> {
        match (&self.install_iso, self.iso.as_slice()) {
            (Some(name), _) => Some(name),
            (None, [only]) => Some(&only.name),
            _ => None,
        }
    }
}

/// The `[[KEY]]` tables of `t`, each read by `read`, which adds its name to `names`.
fn tables<T>(
    t: &Table,
    key: &'static str,
    read: fn(Table, &mut Vec<At<String>>) -> Option<T>,
    names: &mut Vec<At<String>>,
) -> Vec<T> {
    t.array(key, |it| read(it.table()?, names))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys the reader accepts in a table, as its error for an unknown key lists them.
    fn accepted(doc: &str) -> Vec<String> {
        let e = Config::parse(doc).unwrap_err().to_string();
        let list = e
            .split("accepted keys here: ")
            .nth(1)
            .unwrap_or_else(|| panic!("no list of keys in: {e}"));
        let mut keys: Vec<String> = list
            .lines()
            .next()
            .unwrap()
            .split(", ")
            .map(String::from)
            .collect();
        keys.sort();
        keys
    }

    #[test]
    fn schema_and_reader_take_the_same_keys() {
        let schema = schema();
        let keys = |v: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = v["properties"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            k.sort();
            k
        };
        assert_eq!(keys(&schema), accepted("zzzz-unknown = 1\n"));
        for (table, def, doc) in [
            ("iso", "IsoSpec", "name = \"a\"\npath = \"/a.iso\"\n"),
            ("upstream", "UpstreamSpec", "name = \"a\"\n"),
            (
                "mirror",
                "MirrorSpec",
                "name = \"a\"\nsuites = [\"bookworm\"]\n",
            ),
        ] {
            let def = &schema["$defs"][def];
            assert_eq!(
                keys(def),
                accepted(&format!("[[{table}]]\n{doc}zzzz-unknown = 1\n")),
                "[[{table}]]"
            );
            assert_eq!(def["additionalProperties"], false, "[[{table}]]");
        }
        assert!(
            schema.get("required").is_none(),
            "every top-level key has a default"
        );
        // What the reader takes as a size or a duration, the schema says so.
        assert_eq!(
            schema["properties"]["cache-capacity"]["$ref"],
            "#/$defs/SizeOrBytes"
        );
        assert_eq!(
            schema["properties"]["idle-timeout"]["$ref"],
            "#/$defs/Duration"
        );
        assert_eq!(schema["properties"]["guests"]["type"], "string");
    }

    #[test]
    fn file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("repo.toml");
        std::fs::write(
            &file,
            "root = \"/srv/r\"\nlisten = \"127.0.0.1:9000\"\nidle-timeout = \"2m\"\naccess-log = false\nstatus-page = false\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(file.clone()),
            listen: Some("[::1]:8081".parse().unwrap()),
            ..ServeArgs::default()
        };
        let config = args.config().unwrap();
        assert!(!config.status_page);
        assert_eq!(config.root, Path::new("/srv/r"));
        assert_eq!(config.listen, "[::1]:8081".parse().unwrap());
        assert_eq!(config.idle_timeout, Duration::from_secs(120));
        assert!(!config.access_log);
        assert_eq!(config.max_connections, Config::default().max_connections);
        assert_eq!(
            config.guests, None,
            "install routes only when the config says so"
        );
    }

    #[test]
    fn mounts_from_file_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("repo.toml");
        // What the installer writes on a dom0, plus an ISO.
        let installed = include_str!("../../../templates/xenprov-repo.toml.tera")
            .replace("{{ repo_listen }}", "0.0.0.0:8080");
        std::fs::write(
            &file,
            format!("{installed}\n[[iso]]\nname = \"dvd\"\npath = \"/srv/dvd.iso\"\n"),
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(file),
            iso: vec![IsoSpec::parse_flag("net=/srv/net.iso").unwrap()],
            upstream: vec![UpstreamSpec::parse_flag("rocky=http://127.0.0.1:1/rocky").unwrap()],
            ..ServeArgs::default()
        };
        let config = args.config().unwrap();
        let isos: Vec<_> = config.iso.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(isos, ["dvd", "net"]);
        assert_eq!(config.upstream[0].name, "debian");
        assert_eq!(config.upstream[0].url, None);
        assert_eq!(
            config.upstream[1].url.as_deref(),
            Some("http://127.0.0.1:1/rocky")
        );
        assert_eq!(config.upstream[0].metadata_ttl, Duration::from_secs(60));
        // A host's server has install routes because its config file names the guests' settings.
        assert_eq!(
            config.guests.as_deref(),
            Some(Path::new("/etc/xenprov/guests.toml"))
        );
        // ... and netboots its fleet because it names the hosts directory.
        assert_eq!(
            config.hosts.as_deref(),
            Some(Path::new("/etc/xenprov/hosts"))
        );
    }

    #[test]
    fn every_problem_at_once_with_line_and_column() {
        let src = "listen = \"nowhere\"\nidle-timeout = \"0s\"\nmax-header-bytes = \"1K\"\n\
                   cache-capacity = \"8 MB\"\nacess-log = false\n\n[[iso]]\nname = \"a/b\"\n\
                   path = \"/x.iso\"\n\n[[iso]]\nname = \"d\"\n\n[[upstream]]\nname = \"d\"\n\
                   metadata-ttl = \"soon\"\n";
        let got: Vec<String> = Config::parse(src)
            .unwrap_err()
            .0
            .iter()
            .map(|d| d.to_string())
            .collect();
        for (line, want) in got.iter().zip([
            "1:10: listen: `nowhere` is not ADDRESS:PORT",
            "2:16: idle-timeout: `0s`: must be longer than 0s",
            "3:20: max-header-bytes: must be at least 8192 bytes (8K)",
            "4:18: cache-capacity: `8 MB` holds a space",
            "5:1: acess-log: unknown key; did you mean `access-log`?",
            "8:8: iso[0].name: iso name \"a/b\" must be one path component",
            "11:1: iso[1].path: missing: the ISO image's path",
            "15:8: upstream[0].name: name \"d\" is used twice",
            "16:16: upstream[0].metadata-ttl: `soon`: ",
        ]) {
            assert!(
                line.starts_with(want),
                "{line:?} does not start with {want:?}"
            );
        }
        assert_eq!(got.len(), 9, "{got:#?}");
        // Sizes take their unit; a plain integer is bytes.
        let c = Config::parse("cache-max-file = \"1M\"\ncache-capacity = 4096\n").unwrap();
        assert_eq!((c.cache_max_file, c.cache_capacity), (1 << 20, 4096));
    }

    #[test]
    fn refusals_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("repo.toml");
        for (text, needle) in [
            ("listen = \"nowhere\"", "listen"),
            ("idle-timeout = \"soon\"", "idle-timeout"),
            ("no-such-key = 1", "no-such-key"),
            ("max-header-bytes = 100", "max-header-bytes"),
            ("[[iso]]\nname = \"a/b\"\npath = \"/x.iso\"", "a/b"),
            (
                "[[iso]]\nname = \"d\"\npath = \"/x.iso\"\n[[upstream]]\nname = \"d\"",
                "used twice",
            ),
            (
                "[[upstream]]\nname = \"d\"\nmetadata-ttl = \"soon\"",
                "metadata-ttl",
            ),
        ] {
            std::fs::write(&file, text).unwrap();
            let args = ServeArgs {
                config: Some(file.clone()),
                ..ServeArgs::default()
            };
            let err = format!("{:#}", args.config().unwrap_err());
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
