//! `xenprov-guest top`: what each domain uses, as `xm top` showed it — CPU %, memory, block and
//! network I/O — from Xen's own counters: `xl list`'s CPU seconds, and blkback's and netback's
//! statistics in the dom0's sysfs. Two samples a delay apart give the rates; the arithmetic is
//! pure and tested here.

use std::collections::BTreeMap;

use serde::Serialize;

/// One domain's counters at one moment, all since it started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    pub name: String,
    pub domid: u32,
    pub cpu_secs: f64,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub read_bytes: u64,
    pub written_bytes: u64,
    /// From the guest's side: what it sent (the vif's receive counter in the dom0) and received.
    pub net_tx_bytes: u64,
    pub net_rx_bytes: u64,
}

/// One line of `top`: rates over the interval between two samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub name: String,
    pub domid: u32,
    /// Percent of one physical CPU (a domain with 2 busy vCPUs shows 200).
    pub cpu_percent: f64,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub read_bytes_per_sec: f64,
    pub write_bytes_per_sec: f64,
    pub net_tx_bytes_per_sec: f64,
    pub net_rx_bytes_per_sec: f64,
}

/// The rates of the domains in both samples (one that started in between is left for the next
/// round; one whose domid changed was restarted, and its counters began again).
pub fn rates(before: &[Counters], now: &[Counters], secs: f64) -> Vec<Row> {
    let prev: BTreeMap<(&str, u32), &Counters> = before
        .iter()
        .map(|c| ((c.name.as_str(), c.domid), c))
        .collect();
    let per = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs.max(1e-3);
    now.iter()
        .filter_map(|c| {
            let p = prev.get(&(c.name.as_str(), c.domid))?;
            Some(Row {
                name: c.name.clone(),
                domid: c.domid,
                cpu_percent: ((c.cpu_secs - p.cpu_secs).max(0.0) / secs.max(1e-3)) * 100.0,
                memory_mib: c.memory_mib,
                vcpus: c.vcpus,
                read_bytes_per_sec: per(p.read_bytes, c.read_bytes),
                write_bytes_per_sec: per(p.written_bytes, c.written_bytes),
                net_tx_bytes_per_sec: per(p.net_tx_bytes, c.net_tx_bytes),
                net_rx_bytes_per_sec: per(p.net_rx_bytes, c.net_rx_bytes),
            })
        })
        .collect()
}

/// `xl list`'s name, domid, Mem, VCPUs and Time(s) columns.
pub fn parse_xl_list(out: &str) -> Vec<Counters> {
    out.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(Counters {
                name: f.first()?.to_string(),
                domid: f.get(1)?.parse().ok()?,
                memory_mib: f.get(2)?.parse().ok()?,
                vcpus: f.get(3)?.parse().ok()?,
                cpu_secs: f.get(5)?.parse().ok()?,
                ..Counters::default()
            })
        })
        .collect()
}

/// The table, as `top`'s screen and batch mode print it.
pub fn table(rows: &[Row]) -> String {
    let mut s = format!(
        "{:<20} {:>5} {:>7} {:>9} {:>5} {:>10} {:>10} {:>10} {:>10}\n",
        "name", "id", "cpu%", "mem(MiB)", "vcpu", "rd/s", "wr/s", "tx/s", "rx/s"
    );
    let h = |b: f64| xenprov_core::size::human(b as u64);
    for r in rows {
        s.push_str(&format!(
            "{:<20} {:>5} {:>7.1} {:>9} {:>5} {:>10} {:>10} {:>10} {:>10}\n",
            r.name,
            r.domid,
            r.cpu_percent,
            r.memory_mib,
            r.vcpus,
            h(r.read_bytes_per_sec),
            h(r.write_bytes_per_sec),
            h(r.net_tx_bytes_per_sec),
            h(r.net_rx_bytes_per_sec)
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_between_two_samples() {
        let list = "Name                                        ID   Mem VCPUs\tState\tTime(s)\nDomain-0                                     0   700     2     r-----     120.5\nweb1                                         3   512     1     -b----      10.0\n";
        let mut a = parse_xl_list(list);
        assert_eq!(a.len(), 2);
        assert_eq!(
            (
                a[1].name.as_str(),
                a[1].domid,
                a[1].memory_mib,
                a[1].cpu_secs
            ),
            ("web1", 3, 512, 10.0)
        );
        a[1].read_bytes = 1000;
        let mut b = a.clone();
        b[1].cpu_secs = 11.0;
        b[1].read_bytes = 5000;
        b[0].cpu_secs = 122.5;
        // web2 appeared in between: no rate yet. web1 restarted under a new id would be the same.
        b.push(Counters {
            name: "web2".into(),
            domid: 4,
            ..Counters::default()
        });
        let r = rates(&a, &b, 2.0);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].cpu_percent, 100.0);
        assert_eq!((r[1].cpu_percent, r[1].read_bytes_per_sec), (50.0, 2000.0));
        let t = table(&r);
        assert!(t.lines().nth(2).unwrap().starts_with("web1"), "{t}");
    }
}
