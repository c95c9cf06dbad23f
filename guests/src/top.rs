//! `xenprov-guest top`: what each domain uses, as `xm top` showed it — CPU %, memory, block and
//! network I/O — from Xen's own counters (`xenprov_sys::xen`). Two samples a delay apart give the
//! rates (`xenprov_core::xen::rates`); this is their table.

use xenprov_core::xen::Rates;

/// The table, as `top`'s screen and batch mode print it.
pub fn table(rows: &[Rates]) -> String {
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
    use xenprov_core::xen::{Counters, parse_xl_list, rates};

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
