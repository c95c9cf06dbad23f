//! Reading Xen's counters on the dom0: `xl list` for every domain's CPU time, memory and state, and
//! blkback's and netback's statistics in sysfs for its disk and network bytes, one directory per disk
//! and per vif. The guest tool's `top` and the repo server's sampler read domains through this.

use std::path::Path;

use anyhow::Result;
use xenprov_core::xen::{Counters, parse_xl_list, parse_xl_uptime};

use crate::Cmd;

/// Where blkback lists its devices (`vbd-DOMID-DEVID`), and where netback's vifs (`vifDOMID.N`) are.
const BACKENDS: &str = "/sys/bus/xen-backend/devices";
const NET: &str = "/sys/class/net";

/// Every domain's counters now.
pub fn counters() -> Result<Vec<Counters>> {
    let mut all = parse_xl_list(&Cmd::new(&["xl", "list"]).run()?);
    for c in &mut all {
        add_io(c, Path::new(BACKENDS), Path::new(NET));
    }
    Ok(all)
}

/// Seconds each domain has run, by name (`xl uptime`).
pub fn uptimes() -> Result<std::collections::BTreeMap<String, u64>> {
    Ok(parse_xl_uptime(&Cmd::new(&["xl", "uptime"]).run()?))
}

/// `xl info`, whose fields `xenprov_core::xen::info_field` reads.
pub fn info() -> Result<String> {
    Cmd::new(&["xl", "info"]).run()
}

/// Adds the disk and network bytes of `c`'s devices under `backends` and `net`.
fn add_io(c: &mut Counters, backends: &Path, net: &Path) {
    let sum = |dir: &Path, prefix: &str, file: &str| -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
            .filter_map(|e| std::fs::read_to_string(e.path().join(file)).ok())
            .filter_map(|v| v.trim().parse::<u64>().ok())
            .sum()
    };
    let vbd = format!("vbd-{}-", c.domid);
    let vif = format!("vif{}.", c.domid);
    c.read_bytes = sum(backends, &vbd, "statistics/rd_sect") * 512;
    c.written_bytes = sum(backends, &vbd, "statistics/wr_sect") * 512;
    // The vif's receive counter is what the guest sent.
    c.net_tx_bytes = sum(net, &vif, "statistics/rx_bytes");
    c.net_rx_bytes = sum(net, &vif, "statistics/tx_bytes");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_the_devices_of_the_domain_only() {
        let t = tempfile::tempdir().unwrap();
        let put = |rel: &str, v: &str| {
            let p = t.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, v).unwrap();
        };
        put("be/vbd-3-51712/statistics/rd_sect", "10\n");
        put("be/vbd-3-51728/statistics/rd_sect", "6\n");
        put("be/vbd-3-51712/statistics/wr_sect", "2\n");
        put("be/vbd-31-51712/statistics/rd_sect", "1000\n");
        put("net/vif3.0/statistics/rx_bytes", "700\n");
        put("net/vif3.0/statistics/tx_bytes", "900\n");
        put("net/vif33.0/statistics/rx_bytes", "5\n");
        let mut c = Counters {
            domid: 3,
            ..Counters::default()
        };
        add_io(&mut c, &t.path().join("be"), &t.path().join("net"));
        assert_eq!((c.read_bytes, c.written_bytes), (16 * 512, 2 * 512));
        assert_eq!((c.net_tx_bytes, c.net_rx_bytes), (700, 900));
    }
}
