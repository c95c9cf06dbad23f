//! A thread that reads Xen's counters every `EVERY`, so that neither the page nor a `/metrics`
//! scrape runs `xl` (however many ask, and however often), and the graphs have their last
//! `POINTS` rates. It samples the server's own traffic too, Xen or not.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use xenprov_core::xen::{Counters, info_field, rates};

use crate::http::metrics::Metrics;
use crate::provision::now;

/// How often the machine is read: `xl list` costs tens of milliseconds on a busy host.
pub const EVERY: Duration = Duration::from_secs(5);
/// Points kept per graph: five minutes at `EVERY`.
pub const POINTS: usize = 60;
/// `xl info` (memory, version) is read every this many samples: free memory moves slowly.
const INFO_EVERY: u64 = 4;

/// One read of the machine: every domain's counters, and when asked `xl info` and `xl uptime`.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    pub counters: Vec<Counters>,
    pub info: Option<String>,
    pub uptimes: Option<BTreeMap<String, u64>>,
}

/// Where readings come from: Xen's tools on a dom0, a recorded reading in the tests.
pub trait Source: Send {
    fn read(&mut self, info: bool, uptimes: bool) -> anyhow::Result<Reading>;
}

/// The dom0's own tools.
pub struct Xl;

impl Source for Xl {
    fn read(&mut self, info: bool, uptimes: bool) -> anyhow::Result<Reading> {
        Ok(Reading {
            counters: xenprov_sys::xen::counters()?,
            info: if info {
                Some(xenprov_sys::xen::info()?)
            } else {
                None
            },
            uptimes: if uptimes {
                Some(xenprov_sys::xen::uptimes()?)
            } else {
                None
            },
        })
    }
}

/// Whether this machine is a Xen dom0 (the control domain), and if not why not.
pub fn dom0() -> Result<(), String> {
    const CAPS: &str = "/proc/xen/capabilities";
    match std::fs::read_to_string(CAPS) {
        Ok(c) if c.contains("control_d") => Ok(()),
        Ok(_) => Err(format!(
            "{CAPS} has no control_d: this is a Xen guest, not its dom0"
        )),
        Err(e) => Err(format!("{CAPS}: {e}: this server does not run on Xen")),
    }
}

/// What `xl info` says of the host.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct XenInfo {
    pub version: String,
    pub total_memory_mib: u64,
    pub free_memory_mib: u64,
    pub nr_cpus: u32,
}

impl XenInfo {
    pub fn parse(info: &str) -> XenInfo {
        let num = |k| {
            info_field(info, k)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        XenInfo {
            version: info_field(info, "xen_version").unwrap_or("").to_string(),
            total_memory_mib: num("total_memory"),
            free_memory_mib: num("free_memory"),
            nr_cpus: num("nr_cpus") as u32,
        }
    }
}

/// A domain's last rates, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct History {
    pub cpu_percent: VecDeque<f64>,
    pub disk_bytes_per_sec: VecDeque<f64>,
    pub net_bytes_per_sec: VecDeque<f64>,
}

fn push(q: &mut VecDeque<f64>, v: f64) {
    if q.len() == POINTS {
        q.pop_front();
    }
    q.push_back(v);
}

/// What the sampler knows now.
#[derive(Debug, Default)]
pub struct Sampled {
    /// When the last reading was taken (Unix seconds; 0: none yet).
    pub at: u64,
    pub domains: BTreeMap<String, Counters>,
    /// When each domain started (Unix seconds), by name: from `xl uptime`, read again only when a
    /// domain is new or its id changed.
    pub started: BTreeMap<String, u64>,
    pub history: BTreeMap<String, History>,
    pub info: Option<XenInfo>,
    /// Why the last reading failed, when it did.
    pub error: Option<String>,
    /// The server's response bytes and requests per second.
    pub traffic_bytes_per_sec: VecDeque<f64>,
    pub requests_per_sec: VecDeque<f64>,
}

impl Sampled {
    /// Takes `reading`, made `secs` after the previous one, at `now`.
    pub fn record(&mut self, reading: Reading, secs: f64, now: u64) {
        let before: Vec<Counters> = self.domains.values().cloned().collect();
        for r in rates(&before, &reading.counters, secs) {
            let h = self.history.entry(r.name).or_default();
            push(&mut h.cpu_percent, r.cpu_percent);
            push(
                &mut h.disk_bytes_per_sec,
                r.read_bytes_per_sec + r.write_bytes_per_sec,
            );
            push(
                &mut h.net_bytes_per_sec,
                r.net_tx_bytes_per_sec + r.net_rx_bytes_per_sec,
            );
        }
        let domains: BTreeMap<String, Counters> = reading
            .counters
            .into_iter()
            .map(|c| (c.name.clone(), c))
            .collect();
        // A domain gone, or restarted under a new id, starts its graphs again.
        for (name, old) in &self.domains {
            if domains.get(name).is_none_or(|c| c.domid != old.domid) {
                self.history.remove(name);
                self.started.remove(name);
            }
        }
        if let Some(up) = reading.uptimes {
            self.started = up
                .into_iter()
                .filter(|(n, _)| domains.contains_key(n))
                .map(|(n, secs)| (n, now.saturating_sub(secs)))
                .collect();
        }
        if let Some(info) = reading.info {
            self.info = Some(XenInfo::parse(&info));
        }
        self.domains = domains;
        self.at = now;
        self.error = None;
    }

    /// Whether `xl uptime` must be read again: nothing was read yet, or a domain has no start
    /// (it is new, or restarted under a new id, which `record` forgets the start of).
    fn needs_uptimes(&self) -> bool {
        self.at == 0 || self.started.len() != self.domains.len()
    }
}

pub struct Sampler {
    state: RwLock<Sampled>,
    /// Why there are no domains to read, on a machine that is not a dom0.
    no_xen: Option<String>,
}

impl Sampler {
    /// Reads `source` (none: not a dom0, for this reason) and `metrics` every `EVERY`, on a thread of
    /// its own for as long as the process runs.
    pub fn start(source: Result<Box<dyn Source>, String>, metrics: Arc<Metrics>) -> Arc<Sampler> {
        let (source, no_xen) = match source {
            Ok(s) => (Some(s), None),
            Err(why) => (None, Some(why)),
        };
        let sampler = Arc::new(Sampler::fixed(no_xen));
        let s = sampler.clone();
        std::thread::Builder::new()
            .name("status-sampler".into())
            .spawn(move || s.run(source, &metrics))
            .expect("a thread can be started");
        sampler
    }

    /// A sampler with nothing read, that reads nothing itself: what `start` gives its thread, and
    /// what in-process tests and benchmarks `record` into.
    pub fn fixed(no_xen: Option<String>) -> Sampler {
        Sampler {
            state: RwLock::default(),
            no_xen,
        }
    }

    fn run(&self, mut source: Option<Box<dyn Source>>, metrics: &Metrics) {
        let mut last = Instant::now();
        let (mut sent, mut sent_at) = (metrics.totals(), Instant::now());
        let mut round = 0u64;
        loop {
            if let Some(src) = source.as_mut() {
                let uptimes = self.read().needs_uptimes();
                let reading = src.read(round.is_multiple_of(INFO_EVERY), uptimes);
                let secs = last.elapsed().as_secs_f64();
                last = Instant::now();
                let mut st = self.write();
                match reading {
                    Ok(r) => st.record(r, secs, now()),
                    Err(e) => {
                        let e = format!("{e:#}");
                        // Once per new failure, not every few seconds while it lasts.
                        if st.error.as_ref() != Some(&e) {
                            tracing::warn!("status: reading Xen: {e}");
                        }
                        st.error = Some(e);
                    }
                }
            }
            let totals = metrics.totals();
            {
                // The real interval: EVERY plus however long reading Xen took.
                let secs = sent_at.elapsed().as_secs_f64();
                sent_at = Instant::now();
                let mut st = self.write();
                let bytes = totals.bytes_sent.saturating_sub(sent.bytes_sent) as f64 / secs;
                let reqs = totals.requests.saturating_sub(sent.requests) as f64 / secs;
                push(&mut st.traffic_bytes_per_sec, bytes);
                push(&mut st.requests_per_sec, reqs);
            }
            sent = totals;
            round += 1;
            std::thread::sleep(EVERY);
        }
    }

    pub fn read(&self) -> RwLockReadGuard<'_, Sampled> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, Sampled> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Why there is no Xen to read here, on a machine that is not a dom0.
    pub fn no_xen(&self) -> Option<&str> {
        self.no_xen.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dom(name: &str, domid: u32, cpu_secs: f64, read_bytes: u64) -> Counters {
        Counters {
            name: name.into(),
            domid,
            cpu_secs,
            read_bytes,
            ..Counters::default()
        }
    }

    #[test]
    fn graphs_follow_a_domain_and_restart_with_it() {
        let mut s = Sampled::default();
        let reading = |c: Vec<Counters>| Reading {
            counters: c,
            info: None,
            uptimes: None,
        };
        s.record(reading(vec![dom("web1", 3, 10.0, 0)]), 5.0, 100);
        assert!(s.history.is_empty(), "one reading gives no rate");
        s.record(reading(vec![dom("web1", 3, 12.5, 5000)]), 5.0, 105);
        let h = &s.history["web1"];
        assert_eq!(h.cpu_percent, [50.0]);
        assert_eq!(h.disk_bytes_per_sec, [1000.0]);
        assert!(s.needs_uptimes(), "no start known yet");
        s.record(
            Reading {
                counters: vec![dom("web1", 3, 13.0, 5000)],
                info: Some(
                    "xen_version : 4.17.6\nfree_memory : 900\ntotal_memory : 4000\nnr_cpus : 2\n"
                        .into(),
                ),
                uptimes: Some([("web1".to_string(), 30)].into()),
            },
            5.0,
            110,
        );
        assert_eq!(s.history["web1"].cpu_percent.len(), 2);
        assert_eq!(s.started["web1"], 80);
        assert_eq!(
            s.info,
            Some(XenInfo {
                version: "4.17.6".into(),
                total_memory_mib: 4000,
                free_memory_mib: 900,
                nr_cpus: 2
            })
        );
        assert!(!s.needs_uptimes());
        // Restarted under a new id: its graph and start begin again.
        s.record(reading(vec![dom("web1", 4, 0.5, 0)]), 5.0, 115);
        assert!(!s.history.contains_key("web1"));
        assert!(!s.started.contains_key("web1"));
        assert!(
            s.needs_uptimes(),
            "the restarted domain's start is read again"
        );
        for _ in 0..POINTS + 5 {
            push(&mut s.traffic_bytes_per_sec, 1.0);
        }
        assert_eq!(s.traffic_bytes_per_sec.len(), POINTS);
    }
}
