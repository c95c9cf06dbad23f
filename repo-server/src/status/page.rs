//! The status page: a snapshot made readable (`view`: sizes, durations, states and graphs as a
//! person reads them), rendered by the `status-page.html` template into plain tables that read
//! without JavaScript. The graphs are inline SVG drawn here, so they need no script either.

use std::fmt::Write;

use serde::Serialize;
use xenprov_core::size::human;

use crate::status::sampler::{EVERY, POINTS};
use crate::status::snapshot::{GuestRow, Snapshot};

#[derive(Debug, Serialize)]
pub struct Page {
    pub title: String,
    pub version: &'static str,
    /// Asset URLs with their content's digest, so a browser caches each until it changes.
    pub assets: Assets,
    pub updated: Time,
    pub host: Vec<Field>,
    pub no_xen: Option<String>,
    pub arrays: Vec<ArrayView>,
    pub guests: Option<Table<GuestView>>,
    pub fleet: Option<Table<HostView>>,
    pub content: Vec<ContentView>,
    pub traffic: Vec<Field>,
    pub traffic_graph: String,
    pub window: String,
}

#[derive(Debug, Serialize)]
pub struct Assets {
    pub script: String,
    pub style: String,
    pub icon: String,
}

#[derive(Debug, Serialize)]
pub struct Field {
    pub label: &'static str,
    pub value: String,
}

/// A moment: machine-readable for `<time datetime>`, and as "3 min ago".
#[derive(Debug, Serialize)]
pub struct Time {
    pub iso: String,
    pub ago: String,
}

#[derive(Debug, Serialize)]
pub struct Table<T> {
    pub rows: Vec<T>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ArrayView {
    pub device: String,
    pub level: String,
    pub state: String,
    pub disks: String,
    pub degraded: bool,
    pub sync: String,
}

#[derive(Debug, Serialize)]
pub struct GuestView {
    pub name: String,
    pub state: &'static str,
    pub problem: Option<String>,
    pub kind: String,
    pub os: String,
    pub memory: String,
    pub vcpus: u32,
    pub uptime: String,
    pub cpu: Graph,
    pub disk: Graph,
    pub net: Graph,
    pub install: Option<InstallView>,
    pub console: Option<String>,
}

/// A rate now, and its last minutes drawn.
#[derive(Debug, Serialize)]
pub struct Graph {
    pub now: String,
    pub svg: String,
}

#[derive(Debug, Serialize)]
pub struct InstallView {
    /// The last event, or that there is none yet.
    pub last: String,
    pub tree: Option<String>,
    pub started: Option<Time>,
    pub events: Vec<EventView>,
    pub message: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct EventView {
    pub event: String,
    pub at: Time,
}

#[derive(Debug, Serialize)]
pub struct HostView {
    pub name: String,
    pub matcher: String,
    pub state: &'static str,
    pub since: Option<Time>,
    pub last_event: Option<String>,
    pub last_event_at: Option<Time>,
    pub problem: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ContentView {
    pub kind: &'static str,
    pub name: String,
    pub source: String,
    pub holds: String,
    pub fetched: Option<String>,
    pub published: Option<Time>,
}

/// A duration as a person says it: the two largest units.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

fn time(at: u64, now: u64) -> Time {
    let iso = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(at),
    )
    .to_string();
    let ago = if at >= now {
        "just now".to_string()
    } else {
        format!("{} ago", duration(now - at))
    };
    Time { iso, ago }
}

fn rate(v: f64) -> String {
    format!("{}/s", human(v as u64))
}

/// The last `POINTS` values as a line, newest at the right, scaled to their largest (or to `floor`,
/// so that a quiet guest's noise is not drawn as a mountain). Empty when there is nothing to draw.
pub fn sparkline(values: &[f64], floor: f64, label: &str) -> String {
    let one;
    let values = match values {
        [] => return String::new(),
        // One rate is drawn as a short level line.
        [v] => {
            one = [*v, *v];
            &one[..]
        }
        v => v,
    };
    let (w, h) = (120.0, 24.0);
    let max = values.iter().copied().fold(floor, f64::max);
    let step = w / (POINTS - 1) as f64;
    let start = POINTS - values.len().min(POINTS);
    let mut points = String::new();
    for (i, v) in values.iter().rev().take(POINTS).rev().enumerate() {
        let x = (start + i) as f64 * step;
        let y = h - 1.0 - (v.max(0.0) / max) * (h - 2.0);
        let _ = write!(points, "{x:.1},{y:.1} ");
    }
    format!(
        "<svg class=\"spark\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{label}\"><polyline points=\"{}\"/></svg>",
        points.trim_end()
    )
}

fn graph(values: &[f64], floor: f64, what: &str, fmt: fn(f64) -> String) -> Graph {
    match values.last() {
        Some(v) => {
            let now = fmt(*v);
            let label = format!("{what} over the last minutes, now {now}");
            Graph {
                svg: sparkline(values, floor, &label),
                now,
            }
        }
        None => Graph {
            now: String::new(),
            svg: String::new(),
        },
    }
}

fn guest(g: &GuestRow, now: u64) -> GuestView {
    let h = &g.history;
    let v = |q: &std::collections::VecDeque<f64>| q.iter().copied().collect::<Vec<f64>>();
    GuestView {
        name: g.name.clone(),
        state: g.state,
        problem: g.problem.clone(),
        kind: g.kind.clone(),
        os: if g.managed {
            g.os.clone()
        } else {
            "(not in the registry: made with xl)".into()
        },
        memory: human(g.memory_mib << 20),
        vcpus: g.vcpus,
        uptime: g.uptime_secs.map(duration).unwrap_or_default(),
        cpu: graph(&v(&h.cpu_percent), 10.0, "CPU", |p| format!("{p:.1}%")),
        disk: graph(&v(&h.disk_bytes_per_sec), 64e3, "Disk I/O", rate),
        net: graph(&v(&h.net_bytes_per_sec), 16e3, "Network", rate),
        install: g.install.as_ref().map(|i| InstallView {
            last: match (i.events.last(), &i.message) {
                (Some(e), _) => e.event.as_str().into(),
                (None, Some(_)) => "failed".into(),
                // Installed by the dom0 itself (debootstrap): no installer to send events.
                (None, None) if g.state != "installing" => "installed by the dom0".into(),
                (None, None) => "no event yet".into(),
            },
            tree: i.tree.clone(),
            started: i.started.map(|t| time(t, now)),
            events: i
                .events
                .iter()
                .map(|e| EventView {
                    event: e.event.as_str().into(),
                    at: time(e.at, now),
                })
                .collect(),
            message: i.message.clone(),
        }),
        console: g
            .console_log
            .then(|| format!("/ui/guests/{}/console", g.name)),
    }
}

/// The page's view of `s`.
pub fn view(s: &Snapshot, assets: Assets) -> Page {
    let now = s.now;
    let h = &s.host;
    let mut host = vec![Field {
        label: "Name",
        value: h.name.clone(),
    }];
    if let Some(x) = &h.xen {
        host.push(Field {
            label: "Xen",
            value: x.version.clone(),
        });
        host.push(Field {
            label: "CPUs",
            value: x.nr_cpus.to_string(),
        });
        host.push(Field {
            label: "Memory",
            value: format!(
                "{} free of {}",
                human(x.free_memory_mib << 20),
                human(x.total_memory_mib << 20)
            ),
        });
    }
    if let Some(m) = h.dom0_memory_mib {
        host.push(Field {
            label: "Dom0 memory",
            value: human(m << 20),
        });
    }
    if let Some(up) = h.uptime_secs {
        host.push(Field {
            label: "Uptime",
            value: duration(up),
        });
    }
    if h.sampled > 0 {
        host.push(Field {
            label: "Domains read",
            value: time(h.sampled, now).ago,
        });
    }
    let t = &s.traffic.totals;
    let traffic = vec![
        Field {
            label: "Requests",
            value: format!(
                "{} (2xx {}, 3xx {}, 4xx {}, 5xx {})",
                t.requests, t.by_class[1], t.by_class[2], t.by_class[3], t.by_class[4]
            ),
        },
        Field {
            label: "Sent",
            value: human(t.bytes_sent),
        },
        Field {
            label: "Connections",
            value: format!(
                "{} open, {} since start",
                t.connections_open, t.connections_total
            ),
        },
        Field {
            label: "Memory cache",
            value: format!("{} hits, {} misses", t.cache_hits, t.cache_misses),
        },
        Field {
            label: "Up since",
            value: time(s.server.started, now).ago,
        },
    ];
    Page {
        title: format!("{} — xenprov", h.name),
        version: s.server.version,
        assets,
        updated: time(now, now),
        host,
        no_xen: h.no_xen.clone(),
        arrays: h
            .arrays
            .iter()
            .map(|a| ArrayView {
                device: match &a.name {
                    Some(n) => format!("{} ({n})", a.device),
                    None => a.device.clone(),
                },
                level: a.level.clone(),
                state: a.state.clone(),
                disks: format!(
                    "{} of {}",
                    a.raid_disks.saturating_sub(a.degraded),
                    a.raid_disks
                ),
                degraded: a.degraded > 0,
                sync: a.sync.clone().unwrap_or_default(),
            })
            .collect(),
        guests: s.guests.as_ref().map(|g| Table {
            rows: g.rows.iter().map(|r| guest(r, now)).collect(),
            error: g.error.clone(),
        }),
        fleet: s.fleet.as_ref().map(|f| Table {
            rows: f
                .rows
                .iter()
                .map(|r| HostView {
                    name: r.name.clone(),
                    matcher: r.matcher.clone(),
                    state: r.state,
                    since: (r.since > 0).then(|| time(r.since, now)),
                    last_event: r.last_event.clone(),
                    last_event_at: r.last_event_at.map(|t| time(t, now)),
                    problem: r.problem.clone(),
                })
                .collect(),
            error: f.error.clone(),
        }),
        content: s
            .content
            .iter()
            .map(|c| ContentView {
                kind: c.item.kind,
                name: c.item.name.clone(),
                source: c.item.source.clone(),
                holds: c.item.holds.clone(),
                fetched: c.fetches.map(|f| {
                    format!(
                        "{} verified ({}), {} refused, {} failed",
                        f.verified,
                        human(f.verified_bytes),
                        f.refused,
                        f.failed
                    )
                }),
                published: c.item.published.map(|t| time(t, now)),
            })
            .collect(),
        traffic,
        traffic_graph: sparkline(
            &s.traffic.bytes_per_sec,
            64e3,
            "Bytes sent per second over the last minutes",
        ),
        window: duration(EVERY.as_secs() * POINTS as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_graphs_read_as_a_person_reads_them() {
        assert_eq!(duration(12), "12s");
        assert_eq!(duration(250), "4m 10s");
        assert_eq!(duration(7500), "2h 5m");
        assert_eq!(duration(90000 + 3600), "1d 2h");
        assert_eq!(sparkline(&[], 1.0, "x"), "");
        let svg = sparkline(&[0.0, 50.0, 100.0], 10.0, "CPU");
        assert!(svg.starts_with("<svg class=\"spark\""), "{svg}");
        // Newest at the right edge, the largest at the top.
        assert!(svg.contains("120.0,1.0\"/>"), "{svg}");
        assert!(svg.contains("aria-label=\"CPU\""), "{svg}");
        // A quiet line is drawn against its floor, not stretched to the top.
        assert!(sparkline(&[1.0, 1.0], 10.0, "q").contains("120.0,20.8"));
        let t = time(1_000_000_000, 1_000_000_090);
        assert_eq!(
            (t.iso.as_str(), t.ago.as_str()),
            ("2001-09-09T01:46:40Z", "1m 30s ago")
        );
    }
}
