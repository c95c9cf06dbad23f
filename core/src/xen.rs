//! What Xen's tools print, read: `xl list`'s table, `xl uptime`, `xl info`'s fields. The guest tool
//! (`list`, `top`) and the repo server (status page, `/metrics`) read domains through these, so they
//! never disagree on what a domain's state is.

use std::collections::BTreeMap;

use serde::Serialize;

/// What `xl list`'s State column says of a domain that exists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Run {
    /// Running or blocked (`r`, `b`, or nothing: waiting for a CPU).
    #[default]
    Running,
    Paused,
    /// Shut down or dying: on its way out.
    Ending,
    Crashed,
}

impl Run {
    /// The word a person is told: running, paused, stopping or crashed.
    pub fn as_str(self) -> &'static str {
        match self {
            Run::Running => "running",
            Run::Paused => "paused",
            Run::Ending => "stopping",
            Run::Crashed => "crashed",
        }
    }

    /// The State column's flags (`r-----`, `-b----`, `--p---`, `---s--`, `----c-`, `-----d`).
    pub fn of_flags(flags: &str) -> Run {
        let has = |i: usize, c: u8| flags.as_bytes().get(i) == Some(&c);
        if has(4, b'c') {
            Run::Crashed
        } else if has(3, b's') || has(5, b'd') {
            Run::Ending
        } else if has(2, b'p') {
            Run::Paused
        } else {
            Run::Running
        }
    }
}

/// One domain's counters at one moment, all since it started: `xl list`'s columns, and the I/O
/// counters that blkback and netback keep in the dom0's sysfs (added by whoever reads them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    pub name: String,
    pub domid: u32,
    pub run: Run,
    pub cpu_secs: f64,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub read_bytes: u64,
    pub written_bytes: u64,
    /// From the guest's side: what it sent (the vif's receive counter in the dom0) and received.
    pub net_tx_bytes: u64,
    pub net_rx_bytes: u64,
}

/// What a domain used over the interval between two samples: a line of `top`, a point of the
/// status page's graphs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rates {
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
pub fn rates(before: &[Counters], now: &[Counters], secs: f64) -> Vec<Rates> {
    let prev: BTreeMap<(&str, u32), &Counters> = before
        .iter()
        .map(|c| ((c.name.as_str(), c.domid), c))
        .collect();
    let per = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs.max(1e-3);
    now.iter()
        .filter_map(|c| {
            let p = prev.get(&(c.name.as_str(), c.domid))?;
            Some(Rates {
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

/// `xl list`'s name, domid, Mem, VCPUs, State and Time(s) columns; lines that are not a domain
/// (the header) are skipped.
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
                run: Run::of_flags(f.get(4)?),
                cpu_secs: f.get(5)?.parse().ok()?,
                ..Counters::default()
            })
        })
        .collect()
}

/// `xl uptime`'s lines, `NAME ID [N day(s), ]H:MM:SS`, as seconds by name.
pub fn parse_xl_uptime(out: &str) -> BTreeMap<String, u64> {
    out.lines()
        .skip(1)
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (name, _id) = (f.next()?, f.next()?);
            let rest: Vec<&str> = f.collect();
            Some((name.to_string(), parse_uptime(&rest.join(" "))?))
        })
        .collect()
}

/// One uptime of `xl uptime`: `[N day(s), ]H:MM:SS`.
fn parse_uptime(s: &str) -> Option<u64> {
    let (days, clock) = match s.split_once(',') {
        Some((d, c)) => (d.split_whitespace().next()?.parse::<u64>().ok()?, c.trim()),
        None => (0, s.trim()),
    };
    let hms: Vec<u64> = clock
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let secs = hms.iter().fold(0, |acc, x| acc * 60 + x);
    Some(days * 86400 + secs)
}

/// The value of `xl info`'s `KEY : VALUE` line, trimmed.
pub fn info_field<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    info.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then_some(v.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_xl_list_uptime_and_info() {
        let list = "Name                                        ID   Mem VCPUs\tState\tTime(s)\nDomain-0                                     0   700     2     r-----     120.5\nweb1                                         3   512     1     --p---      10.0\n";
        let d = parse_xl_list(list);
        assert_eq!(d.len(), 2);
        assert_eq!(
            (d[1].name.as_str(), d[1].domid, d[1].memory_mib, d[1].vcpus),
            ("web1", 3, 512, 1)
        );
        assert_eq!((d[1].run, d[1].cpu_secs), (Run::Paused, 10.0));
        assert_eq!(d[0].run, Run::Running);
        let runs: Vec<Run> = ["-b----", "---s--", "----c-", "-----d", "------"]
            .iter()
            .map(|f| Run::of_flags(f))
            .collect();
        assert_eq!(
            runs,
            [
                Run::Running,
                Run::Ending,
                Run::Crashed,
                Run::Ending,
                Run::Running
            ]
        );
        let up = parse_xl_uptime(
            "Name                                ID Uptime\nDomain-0                             0  1 day,  2:03:04\nweb1                                 3  0:01:02\nbad 4 soon\n",
        );
        assert_eq!(up.get("Domain-0"), Some(&(86400 + 7384)));
        assert_eq!(up.get("web1"), Some(&62));
        assert_eq!(up.get("bad"), None);
        let info = "xen_version            : 4.17.6-pre\nfree_memory            : 1234\n";
        assert_eq!(info_field(info, "xen_version"), Some("4.17.6-pre"));
        assert_eq!(info_field(info, "free_memory"), Some("1234"));
        assert_eq!(info_field(info, "total_memory"), None);
    }
}
