//! The status part of `/metrics`, named by Prometheus's conventions (`_total` for counters, base
//! units `_bytes` and `_seconds`, one `guest` label): every domain's counters from the sampler's last
//! reading of Xen (Domain-0 included, as `guest="Domain-0"`), each registry guest's state as one
//! series per state (1 for the one it is in), the host's memory and arrays, the verifying caches'
//! fetches and the build. A scrape runs no Xen tool; it reads each guest's small state file.

use std::fmt::Write;

use crate::content::pull_through::Fetches;
use crate::status::host;
use crate::status::snapshot::{Sources, shown, xen_known};

/// Every state `snapshot::shown` gives, and `unreadable`.
const STATES: [&str; 10] = [
    "defined",
    "installing",
    "installed",
    "running",
    "paused",
    "stopping",
    "crashed",
    "stopped",
    "failed",
    "unreadable",
];

/// A label value, escaped as the text format asks.
fn label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

pub fn render(sources: &Sources, now: u64) -> String {
    let mut out = String::with_capacity(4096);
    family(
        &mut out,
        "xenprov_build_info",
        "gauge",
        "The running xenprov-repo's version.",
    );
    let _ = writeln!(
        out,
        "xenprov_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    let fetches: Vec<(&str, Fetches)> = sources
        .upstreams
        .iter()
        .map(|u| (u.name(), u.fetches()))
        .collect();
    if !fetches.is_empty() {
        family(
            &mut out,
            "xenprov_repo_upstream_fetches_total",
            "counter",
            "Files fetched from each upstream: verified, refused (digest, signature or validity) or failed (not found, unreachable).",
        );
        for (name, f) in &fetches {
            for (result, n) in [
                ("verified", f.verified),
                ("refused", f.refused),
                ("failed", f.failed),
            ] {
                let _ = writeln!(
                    out,
                    "xenprov_repo_upstream_fetches_total{{upstream=\"{}\",result=\"{result}\"}} {n}",
                    label(name)
                );
            }
        }
        family(
            &mut out,
            "xenprov_repo_upstream_verified_bytes_total",
            "counter",
            "Bytes fetched from each upstream and verified.",
        );
        for (name, f) in &fetches {
            let _ = writeln!(
                out,
                "xenprov_repo_upstream_verified_bytes_total{{upstream=\"{}\"}} {}",
                label(name),
                f.verified_bytes
            );
        }
    }
    let arrays = host::arrays("/sys/block".as_ref(), "/dev/md".as_ref());
    if !arrays.is_empty() {
        family(
            &mut out,
            "xenprov_host_array_degraded_disks",
            "gauge",
            "Members missing from each md array.",
        );
        for a in &arrays {
            let _ = writeln!(
                out,
                "xenprov_host_array_degraded_disks{{array=\"{}\"}} {}",
                label(&a.device),
                a.degraded
            );
        }
    }
    let sampled = sources.sampler.read();
    if let Some(x) = &sampled.info {
        for (name, help, mib) in [
            (
                "xenprov_host_memory_bytes",
                "Memory Xen has.",
                x.total_memory_mib,
            ),
            (
                "xenprov_host_memory_free_bytes",
                "Memory Xen has not given to any domain.",
                x.free_memory_mib,
            ),
        ] {
            family(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name} {}", mib << 20);
        }
    }
    if !sampled.domains.is_empty() {
        type Value = fn(&xenprov_core::xen::Counters) -> String;
        let series: [(&str, &str, &str, Value); 7] = [
            (
                "cpu_seconds_total",
                "counter",
                "CPU time the domain used, all its vCPUs.",
                |c| format!("{:.3}", c.cpu_secs),
            ),
            ("memory_bytes", "gauge", "Memory the domain has now.", |c| {
                (c.memory_mib << 20).to_string()
            }),
            ("vcpus", "gauge", "vCPUs the domain has now.", |c| {
                c.vcpus.to_string()
            }),
            (
                "block_read_bytes_total",
                "counter",
                "Bytes read from the domain's disks.",
                |c| c.read_bytes.to_string(),
            ),
            (
                "block_written_bytes_total",
                "counter",
                "Bytes written to the domain's disks.",
                |c| c.written_bytes.to_string(),
            ),
            (
                "network_receive_bytes_total",
                "counter",
                "Bytes the domain received on its vifs.",
                |c| c.net_rx_bytes.to_string(),
            ),
            (
                "network_transmit_bytes_total",
                "counter",
                "Bytes the domain sent on its vifs.",
                |c| c.net_tx_bytes.to_string(),
            ),
        ];
        for (name, kind, help, value) in series {
            family(&mut out, &format!("xenprov_guest_{name}"), kind, help);
            for c in sampled.domains.values() {
                let _ = writeln!(
                    out,
                    "xenprov_guest_{name}{{guest=\"{}\"}} {}",
                    label(&c.name),
                    value(c)
                );
            }
        }
        if !sampled.started.is_empty() {
            family(
                &mut out,
                "xenprov_guest_start_time_seconds",
                "gauge",
                "When the domain started (Unix seconds).",
            );
            for (name, at) in &sampled.started {
                let _ = writeln!(
                    out,
                    "xenprov_guest_start_time_seconds{{guest=\"{}\"}} {at}",
                    label(name)
                );
            }
        }
    }
    if let Some(g) = &sources.guests {
        let xen = xen_known(&sources.sampler, &sampled);
        family(
            &mut out,
            "xenprov_guest_state",
            "gauge",
            "The state of each guest of the registry as `xenprov-guest list` shows it (off Xen, the registry's own: installed, not running or stopped); 1 for the one it is in.",
        );
        for name in g.registry.names().unwrap_or_default() {
            let state = match g.registry.status(&name, now) {
                Ok(st) => shown(&st, sampled.domains.get(&name), xen),
                Err(_) => "unreadable",
            };
            for s in STATES {
                let _ = writeln!(
                    out,
                    "xenprov_guest_state{{guest=\"{}\",state=\"{s}\"}} {}",
                    label(&name),
                    u8::from(s == state)
                );
            }
        }
    }
    out
}
