//! The guest registry: one directory per guest under `/var/lib/xenprov/guests/NAME/` with its
//! definition (`guest.toml`), its state (`status.json`), its install-phase xl config and the log
//! tail of a failed install. `xenprov-guest` writes it; the repo server reads it to render answer
//! files and records install events in it, both only with the install's token. The armed tokens
//! are indexed by digest in `.armed/`, so that a request is checked by its token before anything
//! of the guest it names is read.
//!
//! States: defined → installing (armed: a token exists) → installed | failed. An install with no
//! event for its timeout becomes failed. "running" is not stored: it is an installed guest whose
//! domain exists.
//!
//! Its own crate, with the settings file that says where it is (`settings`), so that the repo server reads the
//! registry without linking the guest tool. `hosts` is its counterpart for a fleet's hosts, which the
//! repo server keeps itself; both share the token index, the event reader and the locked update here.

pub mod hosts;
pub mod settings;

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use xenprov_core::guest::{Catalog, Existing, Guest, Host, check_guest_name};
use xenprov_core::guest_net::Attach;
use xenprov_core::render::Templates;
use xenprov_core::xen::Run;

use xenprov_core::guest_render::{Output, Source, render};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Defined,
    Installing,
    Installed,
    Failed,
}

/// What an installer reports, as the first line of a `POST /events/NAME` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    Started,
    Done,
    Failed,
}

impl Event {
    /// The event's word, as installers post it.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Started => "started",
            Event::Done => "done",
            Event::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logged {
    pub at: u64,
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub state: State,
    /// When the state last changed (Unix seconds).
    pub since: u64,
    /// SHA-256 of the install token, only while installing; the token itself is not stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// When the install started, and how long it may go without an event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_started: Option<u64>,
    #[serde(default)]
    pub timeout_secs: u64,
    /// This install's events: at most one of each, since `done` and `failed` end the install and a
    /// repeated `started` is not kept.
    #[serde(default)]
    pub events: Vec<Logged>,
    /// Why the install failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the run-phase config was first started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switched: Option<u64>,
    /// The dom0 process that installs the guest itself (`method = "debootstrap"`), while it does:
    /// an install whose process is gone has failed, whatever the file says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builder_pid: Option<u32>,
}

impl Status {
    fn new(now: u64) -> Status {
        Status {
            state: State::Defined,
            since: now,
            token_sha256: None,
            source: None,
            install_started: None,
            timeout_secs: 0,
            events: Vec::new(),
            message: None,
            switched: None,
            builder_pid: None,
        }
    }

    /// The state a person is told (`list`, the status page): the registry's, and the domain as Xen
    /// has it now (`run`, `None` when there is none), whoever started, paused or stopped it; `alive`
    /// says whether a dom0 process still runs. One of defined, installing, running, paused,
    /// stopping, crashed, stopped or failed.
    pub fn shown(&self, run: Option<Run>, alive: impl Fn(u32) -> bool) -> &'static str {
        match (self.state, run) {
            (State::Installed, Some(r)) if self.switched.is_some() => r.as_str(),
            (State::Defined, _) => "defined",
            // Installed by the dom0 itself: installing while that process lives.
            (State::Installing, _) if self.builder_pid.is_some() => {
                if self.builder_pid.is_some_and(alive) {
                    "installing"
                } else {
                    "failed"
                }
            }
            // The installer reports done before it powers off: a domain gone without it has failed.
            (State::Installing, None) => "failed",
            (State::Installing, Some(_)) | (State::Installed, Some(_)) => "installing",
            (State::Installed, None) => "stopped",
            (State::Failed, _) => "failed",
        }
    }

    /// The registry's state alone, for where no domain can be known (a server off Xen): defined,
    /// installing, installed or failed.
    pub fn recorded(&self) -> &'static str {
        match self.state {
            State::Defined => "defined",
            State::Installing => "installing",
            State::Installed => "installed",
            State::Failed => "failed",
        }
    }

    fn last_activity(&self) -> u64 {
        self.events
            .last()
            .map(|e| e.at)
            .into_iter()
            .chain(self.install_started)
            .max()
            .unwrap_or(self.since)
    }

    fn fail(&mut self, message: String, now: u64) {
        self.state = State::Failed;
        self.since = now;
        self.token_sha256 = None;
        self.message = Some(message);
    }
}

/// A failed install's log is kept up to this size (its tail), like Foreman's build errors.
pub const LOG_CAP: usize = 64 * 1024;

/// Why the repo server refuses an event: 404 hides whether the guest exists.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    NotFound,
    BadEvent(String),
}

#[derive(Debug, Clone)]
pub struct Record {
    pub guest: Guest,
    pub status: Status,
}

pub struct Registry {
    dir: PathBuf,
    templates: Templates,
    catalog: Catalog,
}

/// The index of armed tokens, under the registry: `.armed/DIGEST` holds the name of the guest
/// whose install `sha256(token) = DIGEST` opens. A dot name is never a guest's.
const ARMED: &str = ".armed";

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Live install tokens by digest (`DIR/DIGEST` holds the name the token opens), so that a request is
/// checked by its token before anything of the install it names is read: a wrong token costs one
/// failed open of a path made from its digest, the same for a name that exists and one that does not.
struct TokenIndex {
    dir: PathBuf,
}

impl TokenIndex {
    /// The name `token` opens, if it is in the index.
    fn owner(&self, token: &str) -> Option<(String, Vec<u8>)> {
        let digest = sha256_hex(token);
        let owner = fs::read(self.dir.join(&digest)).ok()?;
        Some((digest, owner))
    }

    /// Follows a status's token from `old` to `new` (digests). Called after the status is saved: a
    /// crash between the two leaves either no entry for a live token (the install is refused and
    /// times out) or an entry for a dead one (which callers check against the status): never a
    /// token that opens what it should not.
    fn replace(&self, old: Option<&str>, new: Option<&str>, name: &str) -> Result<()> {
        if old == new {
            return Ok(());
        }
        if let Some(old) = old {
            self.remove(old)?;
        }
        if let Some(new) = new {
            fs::create_dir_all(&self.dir)
                .with_context(|| format!("creating {}", self.dir.display()))?;
            write_atomic(&self.dir.join(new), name.as_bytes())?;
        }
        Ok(())
    }

    fn remove(&self, digest: &str) -> Result<()> {
        let path = self.dir.join(digest);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", path.display()))
            }
            _ => Ok(()),
        }
    }
}

/// An install event's body: its first line is started, done or failed; after failed comes the
/// installer's log, of which the last [`LOG_CAP`] bytes are kept (empty when there is none).
fn parse_event(body: &[u8]) -> Result<(Event, Vec<u8>), Refused> {
    let text = String::from_utf8_lossy(body);
    let (first, log) = text.split_once('\n').unwrap_or((&text, ""));
    let event = match first.trim() {
        "started" => Event::Started,
        "done" => Event::Done,
        "failed" => Event::Failed,
        other => {
            return Err(Refused::BadEvent(format!(
                "`{}` is not an event; expected started, done or failed",
                other.chars().take(40).collect::<String>()
            )));
        }
    };
    let tail = if event == Event::Failed {
        log.as_bytes()[log.len().saturating_sub(LOG_CAP)..].to_vec()
    } else {
        Vec::new()
    };
    Ok((event, tail))
}

/// Runs `f` on the state at `path` under an exclusive lock on `lock`, and writes it back if `f`
/// changed it: a repo server's events and a command's changes cannot overwrite each other.
fn locked_update<S, T>(
    lock: &Path,
    load: impl FnOnce() -> Result<S>,
    save: impl FnOnce(&S) -> Result<()>,
    f: impl FnOnce(&mut S) -> T,
) -> Result<(S, S, T)>
where
    S: Clone + PartialEq,
{
    // Opened, not truncated: a read through here (the status page, a scrape) writes nothing to disk.
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock)
        .with_context(|| format!("locking {}", lock.display()))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)?;
    let mut st = load()?;
    let before = st.clone();
    let out = f(&mut st);
    if st != before {
        save(&st)?;
    }
    Ok((before, st, out))
}

/// 128 random bits, as hex: unguessable, and safe in URLs and kernel command lines.
pub fn new_token() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the kernel's random source is unavailable");
    hex::encode(b)
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

impl Registry {
    pub fn open(dir: &Path, templates: Templates) -> Result<Registry> {
        let catalog = Catalog::from_templates(&templates).map_err(anyhow::Error::msg)?;
        Ok(Registry {
            dir: dir.to_path_buf(),
            templates,
            catalog,
        })
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn templates(&self) -> &Templates {
        &self.templates
    }

    /// The guest's directory; the name is checked first, as it may come from a URL.
    pub fn guest_dir(&self, name: &str) -> Result<PathBuf> {
        check_guest_name(name).map_err(anyhow::Error::msg)?;
        Ok(self.dir.join(name))
    }

    pub fn names(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.dir.display())),
        };
        for e in entries {
            let name = e?.file_name().to_string_lossy().into_owned();
            if check_guest_name(&name).is_ok() && self.dir.join(&name).join("guest.toml").exists() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Names and MACs already taken, for [`Guest::parse`].
    pub fn existing(&self) -> Result<Vec<Existing>> {
        self.names()?
            .into_iter()
            .map(|n| {
                let g = self.guest(&n)?;
                let nat_address = (g.network.attach == Attach::Nat)
                    .then_some(g.network.address)
                    .flatten()
                    .map(|a| a.addr);
                Ok(Existing {
                    name: g.name,
                    mac: g.mac,
                    nat_address,
                    forward: g.network.forward,
                })
            })
            .collect()
    }

    pub fn guest(&self, name: &str) -> Result<Guest> {
        let path = self.guest_dir(name)?.join("guest.toml");
        let src = fs::read_to_string(&path).with_context(|| format!("no guest `{name}`"))?;
        Guest::parse(&src, &self.catalog, &Host::default())
            .map_err(|e| anyhow::anyhow!("{}:\n{e}", path.display()))
    }

    /// Adds a guest in state `defined`; refuses a name that exists.
    pub fn create(&self, guest: &Guest, now: u64) -> Result<()> {
        let dir = self.guest_dir(&guest.name)?;
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                bail!("a guest named `{}` already exists", guest.name)
            }
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
        write_atomic(&dir.join("guest.toml"), guest.to_toml().as_bytes())?;
        self.save(&guest.name, &Status::new(now))
    }

    /// Replaces a guest's definition (`set`, `resize`), which `parse` has checked.
    pub fn redefine(&self, guest: &Guest) -> Result<()> {
        let dir = self.guest_dir(&guest.name)?;
        if !dir.join("guest.toml").exists() {
            bail!("no guest `{}`", guest.name);
        }
        write_atomic(&dir.join("guest.toml"), guest.to_toml().as_bytes())
    }

    pub fn remove(&self, name: &str) -> Result<()> {
        let dir = self.guest_dir(name)?;
        if let Some(digest) = self.load_status(name).ok().and_then(|st| st.token_sha256) {
            self.tokens().remove(&digest)?;
        }
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))
    }

    fn save(&self, name: &str, st: &Status) -> Result<()> {
        let path = self.guest_dir(name)?.join("status.json");
        let json = serde_json::to_vec_pretty(st).expect("a status serializes");
        write_atomic(&path, &json)
    }

    fn load_status(&self, name: &str) -> Result<Status> {
        let path = self.guest_dir(name)?.join("status.json");
        let data = fs::read(&path).with_context(|| format!("no guest `{name}`"))?;
        serde_json::from_slice(&data).with_context(|| format!("reading {}", path.display()))
    }

    /// Reads, changes and writes a guest's status under an exclusive lock, so the repo server's
    /// events and xenprov-guest's timeouts cannot overwrite each other. The token index follows
    /// the status here, the one place a token is set or cleared.
    fn update<T>(&self, name: &str, f: impl FnOnce(&mut Status) -> T) -> Result<T> {
        let (before, st, out) = locked_update(
            &self.guest_dir(name)?.join(".lock"),
            || self.load_status(name),
            |st| self.save(name, st),
            f,
        )?;
        self.tokens().replace(
            before.token_sha256.as_deref(),
            st.token_sha256.as_deref(),
            name,
        )?;
        Ok(out)
    }

    fn tokens(&self) -> TokenIndex {
        TokenIndex {
            dir: self.dir.join(ARMED),
        }
    }

    /// The guest's status now: a stalled install is failed here, and stays failed.
    pub fn status(&self, name: &str, now: u64) -> Result<Status> {
        self.update(name, |st| {
            let quiet = now.saturating_sub(st.last_activity());
            if st.state == State::Installing && quiet > st.timeout_secs {
                st.fail(
                    format!(
                        "no install event for {}; the install stalled",
                        humantime::format_duration(std::time::Duration::from_secs(quiet))
                    ),
                    now,
                );
            }
            st.clone()
        })
    }

    pub fn record(&self, name: &str, now: u64) -> Result<Record> {
        Ok(Record {
            guest: self.guest(name)?,
            status: self.status(name, now)?,
        })
    }

    /// Starts an install window: a new token (returned, never stored), state `installing`.
    pub fn arm(&self, name: &str, source: Source, timeout_secs: u64, now: u64) -> Result<String> {
        let token = new_token();
        let hash = sha256_hex(&token);
        self.update(name, |st| {
            *st = Status {
                state: State::Installing,
                since: now,
                token_sha256: Some(hash),
                source: Some(source),
                install_started: Some(now),
                timeout_secs,
                ..Status::new(now)
            };
        })?;
        Ok(token)
    }

    /// Starts an install that process `pid` of the dom0 does itself: no token, nothing served.
    pub fn begin_build(&self, name: &str, pid: u32, timeout_secs: u64, now: u64) -> Result<()> {
        self.update(name, |st| {
            *st = Status {
                state: State::Installing,
                install_started: Some(now),
                timeout_secs,
                builder_pid: Some(pid),
                ..Status::new(now)
            };
        })
    }

    /// Ends the install that `begin_build` started, as `done` ends an installer's.
    pub fn built(&self, name: &str, now: u64) -> Result<()> {
        self.update(name, |st| {
            st.state = State::Installed;
            st.since = now;
            st.builder_pid = None;
        })
    }

    pub fn fail(&self, name: &str, message: &str, now: u64) -> Result<()> {
        self.update(name, |st| {
            st.builder_pid = None;
            st.fail(message.to_string(), now)
        })
    }

    pub fn mark_switched(&self, name: &str, now: u64) -> Result<()> {
        self.update(name, |st| st.switched = Some(now))
    }

    pub fn install_config_path(&self, name: &str) -> Result<PathBuf> {
        Ok(self.guest_dir(name)?.join("install.cfg"))
    }

    pub fn log_path(&self, name: &str) -> Result<PathBuf> {
        Ok(self.guest_dir(name)?.join("install.log"))
    }

    /// The status, if `token` is this guest's current install token; `None` otherwise, whether
    /// the guest is unknown, not installing, timed out or the token is wrong.
    ///
    /// The token is looked up before the name: a wrong one costs a single failed open of a path
    /// made from its digest, and nothing of the guest is read, so the time taken is the same for a
    /// guest that exists and one that does not. Only a client holding the token gets further.
    fn armed(&self, name: &str, token: &str, now: u64) -> Option<Status> {
        let (digest, owner) = self.tokens().owner(token)?;
        if owner != name.as_bytes() {
            return None;
        }
        let st = self.status(name, now).ok()?;
        (st.state == State::Installing && st.token_sha256.as_deref() == Some(digest.as_str()))
            .then_some(st)
    }

    /// Whether `token` opens `name`'s install now: the repo server asks before it reads a request
    /// body, so that a client without the token cannot hold a connection open with a slow body.
    pub fn is_armed(&self, name: &str, token: &str, now: u64) -> bool {
        self.armed(name, token, now).is_some()
    }

    /// The kickstart or preseed for `GET /ks/NAME/TOKEN` or `/preseed/NAME/TOKEN`: rendered
    /// now from the definition, and only for the installing guest's token.
    pub fn render_for(&self, route: &str, name: &str, token: &str, now: u64) -> Option<String> {
        let st = self.armed(name, token, now)?;
        let guest = self.guest(name).ok()?;
        let os = self.catalog.get(&guest.os)?;
        if os.family.answer_route() != route {
            return None;
        }
        let src = st.source?;
        render(&self.templates, &guest, os, &src, token, Output::Answer).ok()
    }

    /// `POST /events/NAME/TOKEN`: the body's first line is started, done or failed; after
    /// failed comes the installer's log, of which the last [`LOG_CAP`] bytes are kept.
    pub fn record_event(
        &self,
        name: &str,
        token: &str,
        body: &[u8],
        now: u64,
    ) -> Result<State, Refused> {
        let (event, tail) = parse_event(body)?;
        self.armed(name, token, now).ok_or(Refused::NotFound)?;
        if !tail.is_empty() {
            let path = self.log_path(name).map_err(|_| Refused::NotFound)?;
            write_atomic(&path, &tail).map_err(|_| Refused::NotFound)?;
        }
        self.update(name, |st| {
            // Re-checked under the lock: a concurrent event may have ended the install.
            if st.state != State::Installing {
                return Err(Refused::NotFound);
            }
            // One `started` per install: installers send it once, so a repeat tells nothing, and
            // keeping each would let a client with the token grow status.json (and cost an fsync)
            // per request. Nothing changes, so nothing is written.
            if event == Event::Started && st.events.iter().any(|e| e.event == Event::Started) {
                return Ok(st.state);
            }
            st.events.push(Logged { at: now, event });
            match event {
                Event::Started => {}
                Event::Done => {
                    st.state = State::Installed;
                    st.since = now;
                    st.token_sha256 = None;
                }
                Event::Failed => st.fail("the installer reported a failure".into(), now),
            }
            Ok(st.state)
        })
        .map_err(|_| Refused::NotFound)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xenprov_core::guest::Host;

    pub const HASH: &str = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";

    fn setup() -> (tempfile::TempDir, Registry) {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path(), Templates::builtin()).unwrap();
        let src = format!(
            "name = \"web1\"\nos = \"debian12\"\ntype = \"pv\"\nmemory = \"1G\"\ndisk = \"8G\"\nroot-password-hash = '{HASH}'\n"
        );
        let host = Host {
            vg: "dsk".into(),
            ..Host::default()
        };
        let g = Guest::parse(&src, reg.catalog(), &host).unwrap();
        reg.create(&g, 100).unwrap();
        (dir, reg)
    }

    fn source() -> Source {
        Source {
            repo_url: "http://10.0.2.15:8080".into(),
            tree_url: "http://10.0.2.15:8080/debian".into(),
            kernel: "/srv/k".into(),
            ramdisk: "/srv/i".into(),
        }
    }

    #[test]
    fn answers_only_the_armed_token_while_installing() {
        let (_d, reg) = setup();
        assert_eq!(
            reg.render_for("preseed", "web1", "x", 100),
            None,
            "not armed yet"
        );
        let token = reg.arm("web1", source(), 3600, 100).unwrap();
        assert_eq!(token.len(), 32);
        let body = reg.render_for("preseed", "web1", &token, 101).unwrap();
        assert!(body.contains(HASH) && body.contains(&format!("/events/web1/{token}")));
        assert_eq!(
            reg.render_for("ks", "web1", &token, 101),
            None,
            "wrong route"
        );
        assert_eq!(reg.render_for("preseed", "web1", "0123", 101), None);
        assert_eq!(reg.render_for("preseed", "web2", &token, 101), None);
        assert_eq!(reg.render_for("preseed", "../web1", &token, 101), None);
        let st = fs::read_to_string(reg.guest_dir("web1").unwrap().join("status.json")).unwrap();
        assert!(!st.contains(&token), "only the token's hash is stored");
        assert_ne!(
            reg.arm("web1", source(), 3600, 102).unwrap(),
            token,
            "a new install, a new token"
        );
        assert_eq!(
            reg.render_for("preseed", "web1", &token, 102),
            None,
            "the old token is void"
        );
    }

    /// A wrong token is refused without the guest's own files being read: a FIFO in place of an
    /// armed guest's status would block any reader, so the answer can only come from the token.
    /// This is what makes an unknown name and a known one cost the same (no timing oracle).
    #[test]
    fn a_wrong_token_reads_nothing_of_the_guest() {
        let (_d, reg) = setup();
        let token = reg.arm("web1", source(), 3600, 100).unwrap();
        let status = reg.guest_dir("web1").unwrap().join("status.json");
        let saved = fs::read(&status).unwrap();
        fs::remove_file(&status).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &status,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let reg = std::sync::Arc::new(reg);
        let (tx, rx) = std::sync::mpsc::channel();
        let r = reg.clone();
        std::thread::spawn(move || {
            let answers = [
                r.is_armed("web1", "0123", 101),
                r.is_armed("web1", &"0".repeat(32), 101),
                r.render_for("preseed", "web1", "0123", 101).is_some(),
                r.record_event("web1", "0123", b"done", 101).is_ok(),
            ];
            tx.send(answers).unwrap();
        });
        let answers = rx.recv_timeout(std::time::Duration::from_secs(10));
        // Release a reader that did block, so that the thread ends either way.
        use rustix::fs::{Mode, OFlags};
        let _ = rustix::fs::open(&status, OFlags::WRONLY | OFlags::NONBLOCK, Mode::empty());
        assert_eq!(
            answers.expect("a wrong token made the registry open the guest's status"),
            [false; 4]
        );
        fs::remove_file(&status).unwrap();
        fs::write(&status, saved).unwrap();
        assert!(
            reg.is_armed("web1", &token, 101),
            "the right token still opens it"
        );
    }

    #[test]
    fn events_drive_the_state_and_end_the_window() {
        let (_d, reg) = setup();
        let token = reg.arm("web1", source(), 3600, 100).unwrap();
        assert_eq!(
            reg.record_event("web1", "bad", b"started", 101),
            Err(Refused::NotFound)
        );
        assert!(matches!(
            reg.record_event("web1", &token, b"rebooting", 101),
            Err(Refused::BadEvent(_))
        ));
        assert_eq!(
            reg.record_event("web1", &token, b"started\n", 101),
            Ok(State::Installing)
        );
        assert_eq!(
            reg.record_event("web1", &token, b"done", 200),
            Ok(State::Installed)
        );
        let st = reg.status("web1", 300).unwrap();
        assert_eq!(
            (st.state, st.since, st.events.len()),
            (State::Installed, 200, 2)
        );
        assert_eq!(st.token_sha256, None);
        assert_eq!(
            armed_entries(&reg),
            0,
            "the ended install's token left the index"
        );
        assert_eq!(
            reg.record_event("web1", &token, b"failed", 201),
            Err(Refused::NotFound)
        );
        assert_eq!(reg.render_for("preseed", "web1", &token, 201), None);
        reg.arm("web1", source(), 3600, 300).unwrap();
        reg.arm("web1", source(), 3600, 301).unwrap();
        assert_eq!(
            armed_entries(&reg),
            1,
            "a new install replaces the old token"
        );
        reg.remove("web1").unwrap();
        assert_eq!(armed_entries(&reg), 0, "a removed guest leaves no token");
    }

    fn armed_entries(reg: &Registry) -> usize {
        fs::read_dir(reg.dir.join(ARMED)).unwrap().count()
    }

    #[test]
    fn a_failure_keeps_the_log_tail() {
        let (_d, reg) = setup();
        let token = reg.arm("web1", source(), 3600, 100).unwrap();
        let mut body = b"failed\n".to_vec();
        body.extend(std::iter::repeat_n(b'a', LOG_CAP));
        body.extend(b"the end");
        assert_eq!(
            reg.record_event("web1", &token, &body, 150),
            Ok(State::Failed)
        );
        let log = fs::read(reg.log_path("web1").unwrap()).unwrap();
        assert_eq!(log.len(), LOG_CAP);
        assert!(log.ends_with(b"the end"));
        let st = reg.status("web1", 151).unwrap();
        assert_eq!(
            st.message.as_deref(),
            Some("the installer reported a failure")
        );
    }

    #[test]
    fn a_stalled_install_fails_after_its_timeout() {
        let (_d, reg) = setup();
        let token = reg.arm("web1", source(), 600, 100).unwrap();
        reg.record_event("web1", &token, b"started", 400).unwrap();
        assert_eq!(reg.status("web1", 1000).unwrap().state, State::Installing);
        assert!(reg.render_for("preseed", "web1", &token, 1000).is_some());
        let st = reg.status("web1", 1001).unwrap();
        assert_eq!(st.state, State::Failed);
        assert!(st.message.unwrap().contains("stalled"));
        assert_eq!(armed_entries(&reg), 0);
        assert_eq!(
            reg.record_event("web1", &token, b"done", 1002),
            Err(Refused::NotFound)
        );
    }

    #[test]
    fn names_and_macs_are_listed_and_duplicates_refused() {
        let (_d, reg) = setup();
        assert_eq!(reg.names().unwrap(), ["web1"]);
        let e = reg.existing().unwrap();
        assert_eq!(e[0].mac, xenprov_core::guest::derived_mac("web1"));
        let g = reg.guest("web1").unwrap();
        assert!(
            reg.create(&g, 1)
                .unwrap_err()
                .to_string()
                .contains("already exists")
        );
        reg.remove("web1").unwrap();
        assert!(reg.names().unwrap().is_empty());
    }
}
