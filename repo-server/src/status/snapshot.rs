//! Everything the status page shows, gathered in one document: the host (Xen, memory, arrays), the
//! guests (the registry's state joined with the domain Xen has now, their graphs and install
//! events), the fleet's hosts, the repo content and the server's traffic. `/api/status` is this
//! document as JSON; the page renders it. It holds no secret: no token or its digest, no password
//! hash, no answer, no definition beyond what a listing shows.

use std::sync::Arc;

use serde::Serialize;
use xenprov_core::net::without_userinfo;
use xenprov_core::xen::Counters;
use xenprov_registry::settings::Paths;
use xenprov_registry::{Event, Registry, State};

use crate::content::inventory::Item;
use crate::content::pull_through::{Fetches, PullThrough};
use crate::fleet::{Fleet, Row as HostRow};
use crate::http::metrics::{Metrics, Totals};
use crate::status::host::{self, Array};
use crate::status::sampler::{History, Sampled, Sampler, XenInfo};

#[derive(Debug, Serialize)]
pub struct Snapshot {
    /// When it was gathered (Unix seconds).
    pub now: u64,
    pub server: Server,
    pub host: Host,
    /// `None` when the server has no guest registry (`guests` unset in repo.toml).
    pub guests: Option<Section<GuestRow>>,
    /// `None` when the server has no fleet (`hosts` unset or missing).
    pub fleet: Option<Section<HostRow>>,
    pub content: Vec<Content>,
    pub traffic: Traffic,
}

/// The rows of a table, or why it could not be read.
#[derive(Debug, Serialize)]
pub struct Section<T> {
    pub rows: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl<T> Section<T> {
    fn of(r: anyhow::Result<Vec<T>>) -> Section<T> {
        match r {
            Ok(rows) => Section { rows, error: None },
            Err(e) => Section {
                rows: Vec::new(),
                error: Some(format!("{e:#}")),
            },
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Server {
    pub version: &'static str,
    /// When the server started (Unix seconds).
    pub started: u64,
}

#[derive(Debug, Serialize)]
pub struct Host {
    pub name: String,
    pub uptime_secs: Option<u64>,
    /// Why no Xen is shown: this is not a dom0, or reading it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_xen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xen: Option<XenInfo>,
    /// Domain-0's memory now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dom0_memory_mib: Option<u64>,
    /// When the domains were last read (Unix seconds; 0: not yet).
    pub sampled: u64,
    pub arrays: Vec<Array>,
}

#[derive(Debug, Default, Serialize)]
pub struct GuestRow {
    pub name: String,
    /// defined, installing, running, paused, stopping, crashed, stopped or failed; unreadable
    /// when its files cannot be read (`problem` says why).
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// A guest of the registry; a domain made with xl by hand is not.
    pub managed: bool,
    #[serde(rename = "type")]
    pub kind: String,
    pub os: String,
    pub memory_mib: u64,
    pub vcpus: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_secs: Option<u64>,
    /// Xen's counters since the domain started, when it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<f64>,
    /// Rates over the last minutes, oldest first (empty when it is not running).
    pub history: History,
    pub install: Option<Install>,
    /// Whether xenconsoled has a log of its console (served at `/ui/guests/NAME/console`).
    pub console_log: bool,
}

/// The install in progress or last ended.
#[derive(Debug, Serialize)]
pub struct Install {
    /// The install tree it installs from.
    pub tree: Option<String>,
    pub started: Option<u64>,
    pub events: Vec<InstallEvent>,
    /// Why it failed.
    pub message: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct InstallEvent {
    pub at: u64,
    pub event: Event,
}

#[derive(Debug, Serialize)]
pub struct Content {
    #[serde(flatten)]
    pub item: Item,
    /// An upstream's fetches since the server started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetches: Option<Fetches>,
}

#[derive(Debug, Serialize)]
pub struct Traffic {
    #[serde(flatten)]
    pub totals: Totals,
    pub bytes_per_sec: Vec<f64>,
    pub requests_per_sec: Vec<f64>,
}

/// A domain that is not a guest of the registry.
fn unmanaged(d: &Counters, sampled: &Sampled, now: u64) -> GuestRow {
    GuestRow {
        name: d.name.clone(),
        state: d.run.as_str(),
        memory_mib: d.memory_mib,
        vcpus: d.vcpus,
        domid: Some(d.domid),
        uptime_secs: sampled.started.get(&d.name).map(|s| now.saturating_sub(*s)),
        cpu_seconds: Some(d.cpu_secs),
        history: sampled.history.get(&d.name).cloned().unwrap_or_default(),
        ..GuestRow::default()
    }
}

/// Whether the domains are known: Xen was read, and the last reading did not fail.
pub fn xen_known(sampler: &Sampler, sampled: &Sampled) -> bool {
    sampler.no_xen().is_none() && sampled.at > 0 && sampled.error.is_none()
}

/// A guest's state as `list` shows it when the domains are known (`xen`), and the registry's
/// otherwise.
pub fn shown(st: &xenprov_registry::Status, dom: Option<&Counters>, xen: bool) -> &'static str {
    if !xen {
        return st.recorded();
    }
    st.shown(dom.map(|d| d.run), xenprov_sys::command::alive)
}

/// Where a snapshot's parts come from.
pub struct Sources {
    pub started: u64,
    pub sampler: Arc<Sampler>,
    pub metrics: Arc<Metrics>,
    pub guests: Option<Guests>,
    pub fleet: Option<Fleet>,
    pub upstreams: Vec<Arc<PullThrough>>,
}

/// The guest registry the server renders installs from, and the guest tool's paths (where
/// xenconsoled logs consoles).
pub struct Guests {
    pub registry: Arc<Registry>,
    pub paths: Paths,
}

impl Guests {
    /// Every guest of the registry as `list` shows it, with `sampled`'s domains; `xen` says whether
    /// those are known (off Xen, a guest's state is the registry's alone).
    fn rows(&self, sampled: &Sampled, xen: bool, now: u64) -> anyhow::Result<Vec<GuestRow>> {
        Ok(self
            .registry
            .names()?
            .into_iter()
            .map(|name| match self.registry.record(&name, now) {
                Ok(r) => {
                    let dom = sampled.domains.get(&name);
                    let st = &r.status;
                    let install = (st.state != State::Defined).then(|| Install {
                        tree: st
                            .source
                            .as_ref()
                            .map(|s| without_userinfo(&s.tree_url).into_owned()),
                        started: st.install_started,
                        events: st
                            .events
                            .iter()
                            .map(|e| InstallEvent {
                                at: e.at,
                                event: e.event,
                            })
                            .collect(),
                        message: st.message.clone(),
                    });
                    GuestRow {
                        state: shown(st, dom, xen),
                        problem: None,
                        managed: true,
                        kind: r.guest.kind.to_string(),
                        os: r.guest.os.clone(),
                        memory_mib: dom.map_or(r.guest.memory.as_mib(), |d| d.memory_mib),
                        vcpus: dom.map_or(r.guest.vcpus, |d| d.vcpus),
                        domid: dom.map(|d| d.domid),
                        uptime_secs: sampled.started.get(&name).map(|s| now.saturating_sub(*s)),
                        cpu_seconds: dom.map(|d| d.cpu_secs),
                        history: sampled.history.get(&name).cloned().unwrap_or_default(),
                        install,
                        console_log: self.paths.console_log_of(&name).is_file(),
                        name,
                    }
                }
                Err(e) => GuestRow {
                    state: "unreadable",
                    problem: Some(format!("{e:#}")),
                    managed: true,
                    name,
                    ..GuestRow::default()
                },
            })
            .collect())
    }
}

impl Sources {
    /// Gathers a snapshot (blocking: it reads the registry's and the fleet's files) with `content`,
    /// the mounts as they were last described.
    pub fn gather(&self, content: Vec<Item>, now: u64) -> Snapshot {
        let sampled = self.sampler.read();
        let xen = xen_known(&self.sampler, &sampled);
        let mut guests = self
            .guests
            .as_ref()
            .map(|g| Section::of(g.rows(&sampled, xen, now)));
        if xen {
            // Domains made with xl by hand are shown too, after the registry's.
            let section = guests.get_or_insert_with(|| Section::of(Ok(Vec::new())));
            let known: std::collections::BTreeSet<String> =
                section.rows.iter().map(|r| r.name.clone()).collect();
            let others: Vec<GuestRow> = sampled
                .domains
                .values()
                .filter(|d| d.name != "Domain-0" && !known.contains(&d.name))
                .map(|d| unmanaged(d, &sampled, now))
                .collect();
            section.rows.extend(others);
        }
        let content = content
            .into_iter()
            .map(|item| Content {
                fetches: self
                    .upstreams
                    .iter()
                    .find(|u| item.kind == "upstream" && u.name() == item.name)
                    .map(|u| u.fetches()),
                item,
            })
            .collect();
        let no_xen = self
            .sampler
            .no_xen()
            .map(str::to_string)
            .or_else(|| sampled.error.clone());
        Snapshot {
            now,
            server: Server {
                version: env!("CARGO_PKG_VERSION"),
                started: self.started,
            },
            host: Host {
                name: host::hostname(),
                uptime_secs: host::uptime_secs(),
                no_xen,
                xen: sampled.info.clone(),
                dom0_memory_mib: sampled.domains.get("Domain-0").map(|d| d.memory_mib),
                sampled: sampled.at,
                arrays: host::arrays("/sys/block".as_ref(), "/dev/md".as_ref()),
            },
            guests,
            fleet: self.fleet.as_ref().map(|f| Section::of(f.rows())),
            content,
            traffic: Traffic {
                totals: self.metrics.totals(),
                bytes_per_sec: sampled.traffic_bytes_per_sec.iter().copied().collect(),
                requests_per_sec: sampled.requests_per_sec.iter().copied().collect(),
            },
        }
    }
}
