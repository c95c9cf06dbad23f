//! Install state of a fleet's hosts, kept by the repo server in its `hosts-state` directory (mode
//! 0700): `NAME.json` per host, the answer rendered for the install in progress (`NAME.answer`), the
//! log tail of a failed install (`NAME.log`), and the live tokens by digest in `.tokens/`.
//!
//! States: `armed` (a host entry with no state yet, or re-armed by `xenprov-repo hosts arm`) →
//! `installing` (its netboot was answered with an install: a fresh token, and the answer rendered
//! then, so the answer fetched is the one whose SHA-256 the boot script carries) → `installed` on
//! `done` | `failed`. Only an armed host is offered an install, or an installing one whose installer
//! has not fetched its answer yet (the machine reset before the installer ran). An installing host
//! that netboots again after its installer fetched the answer is failed: that is how an install loop
//! starts, and a host never reinstalls without the server's word.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::{
    Event, Logged, Refused, TokenIndex, locked_update, new_token, parse_event, sha256_hex,
    write_atomic,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostState {
    Armed,
    Installing,
    Installed,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStatus {
    pub state: HostState,
    /// When the state last changed (Unix seconds; 0 for a host never seen).
    pub since: u64,
    /// SHA-256 of the install token, only while installing; the token itself is not stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
    /// SHA-256 of the answer handed out for this install.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_sha256: Option<String>,
    /// When the installer fetched its answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_fetched: Option<u64>,
    /// This install's events.
    #[serde(default)]
    pub events: Vec<Logged>,
    /// Why the install failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl HostStatus {
    fn armed(now: u64) -> HostStatus {
        HostStatus {
            state: HostState::Armed,
            since: now,
            token_sha256: None,
            answer_sha256: None,
            answer_fetched: None,
            events: Vec::new(),
            message: None,
        }
    }

    fn end(&mut self, state: HostState, message: Option<String>, now: u64) {
        self.state = state;
        self.since = now;
        self.token_sha256 = None;
        self.message = message;
    }

    /// The last event, or the state's change when there is none.
    pub fn last_activity(&self) -> u64 {
        self.events
            .last()
            .map_or(self.since, |e| e.at.max(self.since))
    }
}

/// What the repo server answers a netbooting host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// Install, with this token.
    Install(String),
    /// Boot from disk, in this state, for this reason.
    Decline(HostState, String),
}

pub struct Hosts {
    dir: PathBuf,
}

impl Hosts {
    /// The state directory `dir` (created on the first change).
    pub fn open(dir: &Path) -> Hosts {
        Hosts {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self, name: &str, ext: &str) -> Result<PathBuf> {
        xenprov_core::fleet::check_host_name(name).map_err(anyhow::Error::msg)?;
        Ok(self.dir.join(format!("{name}.{ext}")))
    }

    fn tokens(&self) -> TokenIndex {
        TokenIndex {
            dir: self.dir.join(".tokens"),
        }
    }

    /// The host's state: armed with `since` 0 when it has none yet.
    pub fn status(&self, name: &str) -> Result<HostStatus> {
        let path = self.path(name, "json")?;
        match fs::read(&path) {
            Ok(data) => {
                serde_json::from_slice(&data).with_context(|| format!("reading {}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HostStatus::armed(0)),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    fn update<T>(&self, name: &str, f: impl FnOnce(&mut HostStatus) -> T) -> Result<T> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", self.dir.display()))?;
        let path = self.path(name, "json")?;
        let (before, st, out) = locked_update(
            &self.path(name, "lock")?,
            || self.status(name),
            |st| {
                write_atomic(
                    &path,
                    &serde_json::to_vec_pretty(st).expect("a status serializes"),
                )
            },
            f,
        )?;
        self.tokens().replace(
            before.token_sha256.as_deref(),
            st.token_sha256.as_deref(),
            name,
        )?;
        if st.state != HostState::Installing {
            remove_if_there(&self.path(name, "answer")?)?;
        }
        Ok(out)
    }

    /// Arms the host for a new install, whatever its state: its next netboot installs it.
    pub fn arm(&self, name: &str, now: u64) -> Result<()> {
        self.update(name, |st| *st = HostStatus::armed(now))?;
        remove_if_there(&self.path(name, "log")?)
    }

    /// The host netboots: an install with a fresh token when it is armed (or installing without
    /// having fetched its answer), its answer being `answer` (rendered now, kept until the install
    /// ends); otherwise why not.
    pub fn offer(&self, name: &str, answer: &str, now: u64) -> Result<Offer> {
        let token = new_token();
        let answer_path = self.path(name, "answer")?;
        self.update(name, |st| match (st.state, st.answer_fetched) {
            (HostState::Armed, _) | (HostState::Installing, None) => {
                write_secret(&answer_path, answer.as_bytes())?;
                *st = HostStatus {
                    state: HostState::Installing,
                    since: now,
                    token_sha256: Some(sha256_hex(&token)),
                    answer_sha256: Some(sha256_hex(answer)),
                    ..HostStatus::armed(now)
                };
                Ok(Offer::Install(token.clone()))
            }
            (HostState::Installing, Some(_)) => {
                let why = "it netbooted again after its installer had fetched the answer; \
                           `xenprov-repo hosts arm` installs it again";
                st.end(HostState::Failed, Some(why.into()), now);
                Ok(Offer::Decline(HostState::Failed, why.into()))
            }
            (HostState::Installed, _) => Ok(Offer::Decline(
                HostState::Installed,
                "`xenprov-repo hosts arm` installs it again".into(),
            )),
            (HostState::Failed, _) => Ok(Offer::Decline(
                HostState::Failed,
                format!(
                    "its install failed ({}); `xenprov-repo hosts arm` installs it again",
                    st.message.as_deref().unwrap_or("no reason given")
                ),
            )),
        })?
    }

    /// The status, if `token` is this host's live install token.
    fn installing(&self, name: &str, token: &str) -> Option<HostStatus> {
        let (digest, owner) = self.tokens().owner(token)?;
        if owner != name.as_bytes() {
            return None;
        }
        let st = self.status(name).ok()?;
        (st.state == HostState::Installing && st.token_sha256.as_deref() == Some(digest.as_str()))
            .then_some(st)
    }

    /// Whether `token` opens `name`'s install now (asked before an event's body is read).
    pub fn is_installing(&self, name: &str, token: &str) -> bool {
        self.installing(name, token).is_some()
    }

    /// `GET /answer/NAME/TOKEN`: the answer handed out with this install's token, while it runs.
    pub fn answer(&self, name: &str, token: &str, now: u64) -> Option<String> {
        self.installing(name, token)?;
        let text = fs::read_to_string(self.path(name, "answer").ok()?).ok()?;
        self.update(name, |st| {
            st.answer_fetched.get_or_insert(now);
        })
        .ok()?;
        Some(text)
    }

    /// `POST /events/host/NAME/TOKEN`: started, done (the host is installed: its netboot is
    /// answered with its disk from now on) or failed with the installer's log.
    pub fn record_event(
        &self,
        name: &str,
        token: &str,
        body: &[u8],
        now: u64,
    ) -> Result<HostState, Refused> {
        let (event, tail) = parse_event(body)?;
        let st = self.installing(name, token).ok_or(Refused::NotFound)?;
        if !tail.is_empty() {
            let path = self.path(name, "log").map_err(|_| Refused::NotFound)?;
            write_secret(&path, &tail).map_err(|_| Refused::NotFound)?;
        }
        let digest = st.token_sha256;
        self.update(name, |st| {
            // Re-checked under the lock: a concurrent event may have ended the install.
            if st.state != HostState::Installing || st.token_sha256 != digest {
                return Err(Refused::NotFound);
            }
            if event == Event::Started && st.events.iter().any(|e| e.event == Event::Started) {
                return Ok(st.state);
            }
            st.events.push(Logged { at: now, event });
            match event {
                Event::Started => {}
                Event::Done => st.end(HostState::Installed, None, now),
                Event::Failed => st.end(
                    HostState::Failed,
                    Some("the installer reported a failure".into()),
                    now,
                ),
            }
            Ok(st.state)
        })
        .map_err(|_| Refused::NotFound)?
    }

    /// The log tail of the host's failed install, if any (at most [`crate::LOG_CAP`] bytes).
    pub fn log(&self, name: &str) -> Option<Vec<u8>> {
        fs::read(self.path(name, "log").ok()?).ok()
    }
}

/// Written for the server's eyes only: an answer holds password hashes.
fn write_secret(path: &Path, data: &[u8]) -> Result<()> {
    write_atomic(path, data)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))
}

fn remove_if_there(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LOG_CAP;

    fn token(o: Offer) -> String {
        match o {
            Offer::Install(t) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_install_runs_once_and_then_boots_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = Hosts::open(&dir.path().join("state"));
        assert_eq!(hosts.status("rack-a1").unwrap().state, HostState::Armed);
        let t = token(hosts.offer("rack-a1", "answer one", 10).unwrap());
        // reset before the installer ran: offered again, with a new token; the old one is dead
        let t2 = token(hosts.offer("rack-a1", "answer two", 11).unwrap());
        assert_ne!(t, t2);
        assert_eq!(hosts.answer("rack-a1", &t, 12), None);
        assert_eq!(
            hosts.answer("rack-b1", &t2, 12),
            None,
            "another host's name"
        );
        assert_eq!(
            hosts.answer("rack-a1", &t2, 12).as_deref(),
            Some("answer two")
        );
        let st = hosts.status("rack-a1").unwrap();
        assert_eq!(
            st.answer_sha256.as_deref(),
            Some(sha256_hex("answer two").as_str())
        );
        assert_eq!(st.answer_fetched, Some(12));
        let mode = fs::metadata(dir.path().join("state"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        let mode = fs::metadata(dir.path().join("state/rack-a1.answer"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(
            hosts.record_event("rack-a1", &t2, b"rebooted", 13),
            Err(Refused::BadEvent(_))
        ));
        assert_eq!(
            hosts.record_event("rack-a1", &t2, b"started", 13),
            Ok(HostState::Installing)
        );
        assert_eq!(
            hosts.record_event("rack-a1", &t2, b"done\n", 14),
            Ok(HostState::Installed)
        );
        // the token is spent, the answer gone, and the next netboot goes to disk
        assert_eq!(
            hosts.record_event("rack-a1", &t2, b"done", 15),
            Err(Refused::NotFound)
        );
        assert_eq!(hosts.answer("rack-a1", &t2, 15), None);
        assert!(!dir.path().join("state/rack-a1.answer").exists());
        assert!(matches!(
            hosts.offer("rack-a1", "answer", 16).unwrap(),
            Offer::Decline(HostState::Installed, _)
        ));
        hosts.arm("rack-a1", 17).unwrap();
        token(hosts.offer("rack-a1", "answer three", 18).unwrap());
    }

    #[test]
    fn a_host_that_netboots_after_fetching_its_answer_is_failed_not_reinstalled() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = Hosts::open(dir.path());
        let t = token(hosts.offer("rack-a1", "answer", 10).unwrap());
        hosts.answer("rack-a1", &t, 11).unwrap();
        let Offer::Decline(state, why) = hosts.offer("rack-a1", "answer", 12).unwrap() else {
            panic!("offered twice")
        };
        assert_eq!(state, HostState::Failed);
        assert!(why.contains("netbooted again"), "{why}");
        assert_eq!(hosts.answer("rack-a1", &t, 13), None);
        assert!(matches!(
            hosts.offer("rack-a1", "answer", 14).unwrap(),
            Offer::Decline(HostState::Failed, _)
        ));
    }

    #[test]
    fn a_failed_install_keeps_its_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = Hosts::open(dir.path());
        let t = token(hosts.offer("rack-a1", "answer", 10).unwrap());
        let mut body = b"failed\n".to_vec();
        body.extend(std::iter::repeat_n(b'x', LOG_CAP + 10));
        body.extend(b"the end");
        assert_eq!(
            hosts.record_event("rack-a1", &t, &body, 11),
            Ok(HostState::Failed)
        );
        let log = hosts.log("rack-a1").unwrap();
        assert_eq!(log.len(), LOG_CAP);
        assert!(log.ends_with(b"the end"));
        assert!(hosts.status("../x").is_err(), "names are checked");
    }
}
