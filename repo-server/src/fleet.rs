//! Network installs of a fleet's hosts, from the host entries in the `hosts` directory (one
//! `NAME.toml` per host, see `xenprov_core::fleet`) and their state in `hosts-state`
//! (`xenprov_registry::hosts`):
//!
//! - `GET /boot.ipxe`: a static iPXE script, the one a DHCP server or QEMU's `bootfile=` names; it
//!   chains to `/ipxe` with what the machine says of itself (MAC, SMBIOS UUID and serial);
//! - `GET /ipxe?mac=…&uuid=…&serial=…`: for an armed host whose entry and answer are sound, a script
//!   that boots the installer from the install ISO served in place, with `xenprov.answer=URL` and
//!   `xenprov.answer-sha256=HEX` on its kernel line (a fresh token per install); for anything else
//!   (an unknown machine, a broken entry, two entries matching, an installed or failed host) a
//!   script that boots the next device, so that no host ever reinstalls without the server's word;
//! - `GET /answer/NAME/TOKEN`: that install's answer, only with its token and while it runs;
//! - `POST /events/host/NAME/TOKEN`: `started`, `done` (the host is installed; netboot sends it to
//!   its disk from now on) or `failed` with the installer's log tail.
//!
//! Entries are read again at each netboot, so an edit needs no restart; `xenprov-repo hosts --check`
//! and the server's start report every broken one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper::header;
use hyper::{Method, Request, Response, StatusCode};
use xenprov_core::fleet::{self, HostEntry, Match};
use xenprov_registry::hosts::{HostState, HostStatus, Hosts, Offer};

use crate::http::body::Body;
use crate::http::responses::{error, method_not_allowed};
use crate::provision::{RequestBody, now};
use crate::settings::config::Config;

/// One host entry as read from the directory: what it says, if it reads, and what is wrong with it
/// (it, its answer, or its match shared with another entry). Only an entry without a problem is
/// ever installed.
pub struct Entry {
    pub name: String,
    pub file: PathBuf,
    pub host: Option<HostEntry>,
    pub problem: Option<String>,
    /// Its rendered answer, once `check` rendered it.
    pub answer: Option<String>,
}

impl Entry {
    pub fn sound(&self) -> Option<&HostEntry> {
        self.host.as_ref().filter(|_| self.problem.is_none())
    }
}

/// Every entry of the hosts directory, each with its problems (syntax, keys, an identity shared with
/// another entry), sorted by name. Answers are not rendered: a netboot renders only its host's.
pub fn load(dir: &Path) -> anyhow::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let list = match std::fs::read_dir(dir) {
        Ok(list) => list,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(entries),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", dir.display()))),
    };
    for item in list {
        let path = item?.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".toml"))
            .map(str::to_string)
        else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let (host, problem) = match read_entry(&name, &path) {
            Ok(host) => (Some(host), None),
            Err(problem) => (None, Some(problem)),
        };
        entries.push(Entry {
            name,
            file: path,
            host,
            problem,
            answer: None,
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let read: Vec<HostEntry> = entries.iter().filter_map(|e| e.host.clone()).collect();
    for (a, b, what) in fleet::conflicts(&read) {
        for (me, other) in [(&a, &b), (&b, &a)] {
            if let Some(e) = entries.iter_mut().find(|e| &e.name == me) {
                let clash = format!(
                    "{}: [match] gives {what}, as {other}.toml does: a machine with it would match both, so neither is installed",
                    e.file.display()
                );
                e.problem = Some(match e.problem.take() {
                    Some(p) => format!("{p}\n{clash}"),
                    None => clash,
                });
            }
        }
    }
    Ok(entries)
}

/// `load`, and each sound entry's answer rendered: one that does not render or read becomes the
/// entry's problem. What the server reports at start and the `hosts` verbs show.
pub fn check(dir: &Path) -> anyhow::Result<Vec<Entry>> {
    let mut entries = load(dir)?;
    for e in &mut entries {
        if let Some(host) = e.sound() {
            match render(dir, host) {
                Ok(answer) => e.answer = Some(answer),
                Err(problem) => e.problem = Some(problem),
            }
        }
    }
    Ok(entries)
}

fn read_entry(name: &str, path: &Path) -> Result<HostEntry, String> {
    fleet::check_host_name(name).map_err(|e| format!("{}: {e}", path.display()))?;
    let src = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    fleet::parse_entry(name, &src).map_err(|d| d.in_file(path))
}

/// The answer `host` gets now: its template, rendered and read as an answer file.
pub fn render(dir: &Path, host: &HostEntry) -> Result<String, String> {
    let template = dir.join(&host.answer);
    let src = std::fs::read_to_string(&template)
        .map_err(|e| format!("{}: answer template: {e}", template.display()))?;
    fleet::render_answer(host, &src)
        .map(|(text, _)| text)
        .map_err(|e| e.describe(&host.name, &template))
}

/// Each entry's name and problems, as the server reports them when it starts.
pub fn report(dir: &Path) {
    match check(dir) {
        Ok(entries) => {
            let broken = entries.iter().filter(|e| e.problem.is_some()).count();
            tracing::info!(
                "fleet: {} host entries in {}, {broken} broken",
                entries.len(),
                dir.display()
            );
            for e in &entries {
                if let Some(why) = &e.problem {
                    tracing::error!("fleet: host {} is never installed: {why}", e.name);
                }
            }
        }
        Err(e) => tracing::error!("fleet: {e:#}"),
    }
}

#[derive(Clone)]
pub struct Fleet {
    dir: PathBuf,
    hosts: Arc<Hosts>,
    iso: Option<String>,
}

/// iPXE's script for the first boot: it asks `/ipxe` what to do with this machine. The MAC as
/// `hexhyp` and the UUID in its own type, both URL-safe text: `:uristring` of either would send its
/// raw bytes (a MAC's first zero byte ends it). The SMBIOS serial is text, so URI-escaped.
const BOOT_IPXE: &str = "#!ipxe\n\
echo xenprov: asking the repo server about ${net0/mac}\n\
chain /ipxe?mac=${net0/mac:hexhyp}&uuid=${uuid}&serial=${serial:uristring} || exit\n";

impl Fleet {
    /// The fleet of `config`, when its `hosts` directory exists.
    pub fn from_config(config: &Config) -> Option<Fleet> {
        let dir = config.hosts.as_ref().filter(|d| d.is_dir())?;
        Some(Fleet {
            dir: dir.clone(),
            hosts: Arc::new(Hosts::open(&config.hosts_state)),
            iso: config.install_iso().map(str::to_string),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every host with its state, as `xenprov-repo hosts` lists them.
    pub fn rows(&self) -> anyhow::Result<Vec<Row>> {
        rows(&self.dir, &self.hosts)
    }

    /// Whether `path` is one of these routes; they shadow files of the tree of the same names.
    pub fn is_route(path: &str) -> bool {
        path == "/boot.ipxe"
            || path == "/ipxe"
            || path.starts_with("/answer/")
            || path.starts_with("/events/host/")
    }

    pub async fn handle<B: RequestBody>(&self, req: Request<B>) -> Response<Body> {
        let head = req.method() == Method::HEAD;
        let path = req.uri().path().to_owned();
        let parts: Vec<&str> = path.split('/').skip(1).collect();
        match (parts.as_slice(), req.method()) {
            (["boot.ipxe"], &Method::GET | &Method::HEAD) => script(BOOT_IPXE.into(), head),
            (["ipxe"], &Method::GET | &Method::HEAD) => {
                let Some(base) = base_url(&req) else {
                    return error(StatusCode::BAD_REQUEST, head);
                };
                let client = client_of(req.uri().query().unwrap_or(""));
                let (dir, hosts, iso) = (self.dir.clone(), self.hosts.clone(), self.iso.clone());
                let answer = tokio::task::spawn_blocking(move || {
                    netboot(&dir, &hosts, iso.as_deref(), &client, &base)
                })
                .await
                .unwrap_or_else(|_| decline("the server failed to decide"));
                script(answer, head)
            }
            (["answer", name, token], &Method::GET | &Method::HEAD) => {
                let (hosts, name, token) =
                    (self.hosts.clone(), name.to_string(), token.to_string());
                let text = tokio::task::spawn_blocking(move || {
                    let text = hosts.answer(&name, &token, now());
                    if text.is_some() {
                        tracing::info!("fleet: host {name} fetched its answer");
                    }
                    text
                })
                .await
                .ok()
                .flatten();
                match text {
                    Some(t) => script(t, head),
                    None => error(StatusCode::NOT_FOUND, head),
                }
            }
            (["events", "host", name, token], &Method::POST) => {
                let (name, token) = (name.to_string(), token.to_string());
                let (open, record) = (
                    (self.hosts.clone(), name.clone(), token.clone()),
                    self.hosts.clone(),
                );
                crate::provision::event(
                    req,
                    move || open.0.is_installing(&open.1, &open.2),
                    move |body| {
                        let state = record.record_event(&name, &token, &body, now())?;
                        tracing::info!("fleet: host {name} is {}", state_word(state));
                        Ok(state_word(state).to_string())
                    },
                )
                .await
            }
            (["events", "host", ..], _) => method_not_allowed("POST"),
            _ => match req.method() {
                &Method::GET | &Method::HEAD => error(StatusCode::NOT_FOUND, head),
                _ => method_not_allowed("GET, HEAD"),
            },
        }
    }
}

pub fn state_word(state: HostState) -> &'static str {
    match state {
        HostState::Armed => "armed",
        HostState::Installing => "installing",
        HostState::Installed => "installed",
        HostState::Failed => "failed",
    }
}

/// What the machine `client` is told to do: install, or boot its next device.
fn netboot(dir: &Path, hosts: &Hosts, iso: Option<&str>, client: &Match, base: &str) -> String {
    let entries = match load(dir) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::error!("fleet: {e:#}");
            return decline("the server cannot read its host entries");
        }
    };
    // A broken entry still names its machine when its match reads: that machine is told no.
    let matching: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.host.as_ref().is_some_and(|h| h.matcher.matches(client)))
        .collect();
    let entry = match matching.as_slice() {
        [] => {
            tracing::info!("fleet: no host entry matches {client}; it boots its next device");
            return decline("this machine has no install here");
        }
        [one] => *one,
        many => {
            let names: Vec<&str> = many.iter().map(|e| e.name.as_str()).collect();
            tracing::warn!(
                "fleet: {client} matches hosts {}; none is installed",
                names.join(", ")
            );
            return decline("this machine has no install here");
        }
    };
    let Some(host) = entry.sound() else {
        tracing::error!(
            "fleet: host {} ({client}) netboots, but its entry is broken: {}",
            entry.name,
            entry.problem.as_deref().unwrap_or_default()
        );
        return decline("this machine has no install here");
    };
    let Some(iso) = iso else {
        tracing::error!(
            "fleet: host {} is armed, but the config names no install ISO (install-iso, or a single [[iso]])",
            host.name
        );
        return decline("the server has no install medium");
    };
    let answer = match render(dir, host) {
        Ok(a) => a,
        Err(why) => {
            tracing::error!("fleet: host {} is never installed: {why}", host.name);
            return decline("this machine has no install here");
        }
    };
    match hosts.offer(&host.name, &answer, now()) {
        Ok(Offer::Install(token)) => {
            tracing::info!("fleet: host {} ({client}) netboots: installing", host.name);
            let sha256 = crate::content::verify::digest::hash_bytes(answer.as_bytes()).to_hex();
            install_script(base, iso, &host.name, &token, &sha256)
        }
        Ok(Offer::Decline(state, why)) => {
            tracing::info!(
                "fleet: host {} ({client}) is {}: it boots its next device; {why}",
                host.name,
                state_word(state)
            );
            decline("this machine is not to be installed now")
        }
        Err(e) => {
            tracing::error!("fleet: host {}: {e:#}", host.name);
            decline("the server cannot record the install")
        }
    }
}

/// The installer from the ISO mounted at `/ISO/`, booted as the medium's default entry does, with
/// this install's answer and where it reports its events. The live initrd fetches the rest of the
/// medium from `xenprov.medium=` over the NIC iPXE booted from (`BOOTIF=`, DHCP by `ip=dhcp`), and
/// checks it against the hashes built into it. `initrd=` names the initrd for the kernel's EFI stub
/// under UEFI iPXE.
fn install_script(base: &str, iso: &str, name: &str, token: &str, sha256: &str) -> String {
    format!(
        "#!ipxe\n\
echo xenprov: installing host {name}\n\
kernel {base}/{iso}/boot/vmlinuz initrd=initrd.img boot=xenprov console=tty0 console=ttyS0,115200n8 \
ip=dhcp BOOTIF=01-${{netX/mac:hexhyp}} xenprov.mode=auto xenprov.medium={base}/{iso} xenprov.answer={base}/answer/{name}/{token} \
xenprov.answer-sha256={sha256} xenprov.events={base}/events/host/{name}/{token}\n\
initrd {base}/{iso}/boot/initrd.img\n\
boot\n"
    )
}

/// Boots the next device (iPXE's `exit` returns to the firmware's boot order).
fn decline(why: &str) -> String {
    format!("#!ipxe\necho xenprov: {why}; booting the next device\nexit\n")
}

/// `http://HOST` as the client named this server: the address the installer can reach it at.
fn base_url<B>(req: &Request<B>) -> Option<String> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))?;
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    ok.then(|| format!("http://{host}"))
}

/// What iPXE sent of the machine: `mac`, `uuid` and `serial`, percent-decoded.
fn client_of(query: &str) -> Match {
    let mut mac = None;
    let mut uuid = None;
    let mut serial = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let Ok(v) = crate::static_files::path::percent_decode(v.as_bytes()) else {
            continue;
        };
        let v = String::from_utf8_lossy(&v).into_owned();
        match k {
            "mac" => mac = Some(v),
            "uuid" => uuid = Some(v),
            "serial" => serial = Some(v),
            _ => {}
        }
    }
    Match::of_client(mac.as_deref(), uuid.as_deref(), serial.as_deref())
}

/// iPXE scripts and answers alike carry a token: never cached anywhere.
fn script(text: String, head: bool) -> Response<Body> {
    crate::provision::text(StatusCode::OK, text, head)
}

/// A host's row in `xenprov-repo hosts`.
#[derive(Debug, serde::Serialize)]
pub struct Row {
    pub name: String,
    #[serde(rename = "match")]
    pub matcher: String,
    pub state: &'static str,
    pub since: u64,
    pub last_event: Option<String>,
    /// When the last event came (Unix seconds).
    pub last_event_at: Option<u64>,
    pub problem: Option<String>,
}

/// Every host of the directory with its state, for `xenprov-repo hosts`.
pub fn rows(dir: &Path, hosts: &Hosts) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for e in check(dir)? {
        let status = hosts.status(&e.name).unwrap_or_else(|_| HostStatus {
            state: HostState::Failed,
            since: 0,
            token_sha256: None,
            answer_sha256: None,
            answer_fetched: None,
            events: Vec::new(),
            message: Some("its state file cannot be read".into()),
        });
        rows.push(Row {
            matcher: e
                .host
                .as_ref()
                .map(|h| h.matcher.to_string())
                .unwrap_or_default(),
            state: if e.problem.is_some() {
                "broken"
            } else {
                state_word(status.state)
            },
            since: status.since,
            last_event: status.events.last().map(|l| l.event.as_str().to_string()),
            last_event_at: status.events.last().map(|l| l.at),
            problem: e.problem.or(status.message),
            name: e.name,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_ipxe_sends_is_read() {
        let m = client_of("mac=52%3A54%3A00%3Aac%3A01%3A01&uuid=&serial=CZ%201234");
        assert_eq!(m.mac.as_deref(), Some("52:54:00:ac:01:01"));
        assert_eq!(m.uuid, None);
        assert_eq!(m.serial.as_deref(), Some("CZ 1234"));
        assert_eq!(client_of("mac=%zz"), Match::default());
    }

    #[test]
    fn the_base_url_is_the_host_the_client_asked() {
        let req = |h: &str| Request::get("/ipxe").header("host", h).body(()).unwrap();
        assert_eq!(
            base_url(&req("10.0.2.2:8080")).as_deref(),
            Some("http://10.0.2.2:8080")
        );
        assert_eq!(
            base_url(&req("[::1]:80")).as_deref(),
            Some("http://[::1]:80")
        );
        assert_eq!(base_url(&req("a b")), None);
        assert_eq!(base_url(&req("x/y")), None);
    }
}
