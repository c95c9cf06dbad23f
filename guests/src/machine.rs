//! The side effects on the dom0 — LVM, xl and HTTP downloads — behind one trait, so the guest
//! verbs are tested without a hypervisor and the real commands run in the end-to-end test inside
//! QEMU.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use xenprov_core::guest::Guest;
use xenprov_core::size::Size;
use xenprov_core::xen::{Counters, info_field, parse_xl_list, parse_xl_uptime};
use xenprov_sys::Cmd;

use crate::debootstrap::Mirror;

/// A domain, as `xl list -l`, `xl list` and `xl uptime` describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Domain {
    pub name: String,
    pub domid: u32,
    /// What it has now (`xl list`'s Mem and VCPUs), and the most it may have while it runs.
    pub memory_mib: u64,
    pub vcpus: u32,
    pub maxmem_mib: u64,
    pub max_vcpus: u32,
    pub uptime_secs: Option<u64>,
    pub run: Run,
}

pub use xenprov_core::xen::Run;

pub trait Machine {
    /// Free space of every volume group.
    fn vg_free(&self) -> Result<BTreeMap<String, Size>>;
    fn lv_create(&self, vg: &str, lv: &str, size: Size) -> Result<()>;
    fn lv_remove(&self, vg: &str, lv: &str) -> Result<()>;
    /// Whether Xen can build hardware-assisted guests (PVH, HVM): `hvm` and a paging mode (`hap`
    /// or `shadow`) in `xl info`'s `virt_caps`.
    fn hvm(&self) -> Result<bool>;
    /// The dom0's IPv4 address on a bridge, which guests on it use to reach the repo server.
    fn bridge_address(&self, bridge: &str) -> Result<Option<Ipv4Addr>>;
    fn xl_create(&self, config: &Path) -> Result<()>;
    fn xl_destroy(&self, name: &str) -> Result<()>;
    /// Any other `xl` verb (shutdown, pause, mem-set, save, …); its standard output.
    fn xl(&self, args: &[&str]) -> Result<String>;
    /// Any other lvm2 tool (lvextend, lvs, lvcreate -s, …); its standard output.
    fn lvm(&self, args: &[&str]) -> Result<String>;
    fn domains(&self) -> Result<Vec<Domain>>;
    /// Every domain's counters now, for `top`.
    fn counters(&self) -> Result<Vec<Counters>>;
    /// Physical CPUs Xen has (`xl info`'s nr_cpus).
    fn host_cpus(&self) -> Result<u32>;
    /// Whether process `pid` of the dom0 still runs.
    fn alive(&self, pid: u32) -> bool;
    /// Installs `guest` onto its new volume with debootstrap (see [`crate::debootstrap`]).
    fn debootstrap(
        &self,
        guest: &Guest,
        mirror: &Mirror,
        cache: &Path,
        say: &mut dyn FnMut(String),
    ) -> Result<()>;
    /// The body of a `200 OK` answer to `GET url`; any other answer is an error naming the URL.
    fn fetch(&self, url: &str) -> Result<Vec<u8>>;
    /// Makes the host's guest networks what `r` says (see [`crate::network`]), its files in `dir`.
    fn apply_network(&self, r: &crate::network::Rendered, dir: &Path) -> Result<()>;
}

/// The real dom0: lvm2 and xl.
pub struct Dom0;

impl Machine for Dom0 {
    fn vg_free(&self) -> Result<BTreeMap<String, Size>> {
        let out = Cmd::new(&[
            "vgs",
            "--noheadings",
            "--units",
            "b",
            "--nosuffix",
            "-o",
            "vg_name,vg_free",
        ])
        .run()?;
        parse_vgs(&out)
    }

    fn lv_create(&self, vg: &str, lv: &str, size: Size) -> Result<()> {
        // -W y --yes: a disk left over from an earlier guest must not keep its signatures.
        Cmd::new(&[
            "lvcreate",
            "--yes",
            "-W",
            "y",
            "-n",
            lv,
            "-L",
            &format!("{}b", size.bytes()),
            vg,
        ])
        .run()
        .map(drop)
    }

    fn lv_remove(&self, vg: &str, lv: &str) -> Result<()> {
        // A loop device left attached by a build or mount that was killed holds the volume open.
        let path = format!("/dev/{vg}/{lv}");
        let loops = Cmd::new(&["losetup", "-j", &path])
            .run()
            .unwrap_or_default();
        for dev in loops.lines().filter_map(|l| l.split(':').next()) {
            Cmd::new(&["losetup", "-d", dev]).run()?;
        }
        Cmd::new(&["lvremove", "--yes", &format!("{vg}/{lv}")])
            .run()
            .map(drop)
    }

    fn bridge_address(&self, bridge: &str) -> Result<Option<Ipv4Addr>> {
        let out = Cmd::new(&["ip", "-4", "-o", "addr", "show", "dev", bridge]).run()?;
        Ok(parse_ip_addr(&out))
    }

    fn host_cpus(&self) -> Result<u32> {
        let info = Cmd::new(&["xl", "info"]).run()?;
        info_field(&info, "nr_cpus")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("`xl info` has no nr_cpus"))
    }

    fn alive(&self, pid: u32) -> bool {
        xenprov_sys::command::alive(pid)
    }

    fn counters(&self) -> Result<Vec<Counters>> {
        xenprov_sys::xen::counters()
    }

    fn debootstrap(
        &self,
        guest: &Guest,
        mirror: &Mirror,
        cache: &Path,
        say: &mut dyn FnMut(String),
    ) -> Result<()> {
        // Its own mount namespace: the guest's root and the chroot's /proc, /sys and /dev are
        // gone with the process, however it ends, and no service of the dom0 ever sees them.
        xenprov_sys::mount::private_namespace()?;
        crate::debootstrap::install(guest, mirror, cache, say)
    }

    fn apply_network(&self, r: &crate::network::Rendered, dir: &Path) -> Result<()> {
        crate::network::converge(r, dir)
    }

    fn hvm(&self) -> Result<bool> {
        // Debian's Xen has no shadow paging: without hap (VT-x EPT / AMD NPT) no PVH or HVM
        // domain can be built, though `hvm` is listed.
        let caps = parse_virt_caps(&Cmd::new(&["xl", "info"]).run()?);
        let has = |c: &str| caps.iter().any(|x| x == c);
        Ok(has("hvm") && (has("hap") || has("shadow")))
    }

    fn xl_create(&self, config: &Path) -> Result<()> {
        Cmd::new(&["xl", "create"]).arg(config).run().map(drop)
    }

    fn xl_destroy(&self, name: &str) -> Result<()> {
        Cmd::new(&["xl", "destroy", name]).run().map(drop)
    }

    fn xl(&self, args: &[&str]) -> Result<String> {
        Cmd::new(&["xl"]).args(args).run()
    }

    fn lvm(&self, args: &[&str]) -> Result<String> {
        Cmd::new(args).run()
    }

    fn domains(&self) -> Result<Vec<Domain>> {
        let list = Cmd::new(&["xl", "list", "-l"]).run()?;
        let states = Cmd::new(&["xl", "list"]).run()?;
        let uptime = Cmd::new(&["xl", "uptime"]).run()?;
        parse_domains(&list, &states, &uptime)
    }

    fn fetch(&self, url: &str) -> Result<Vec<u8>> {
        // An installer's initrd is tens of MB from the repo server on this host or its LAN.
        let client = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(600))
            .build()?;
        let resp = client
            .get(url)
            .send()
            .with_context(|| format!("GET {url}"))?;
        if !resp.status().is_success() {
            bail!("GET {url}: {}", resp.status());
        }
        Ok(resp.bytes().with_context(|| format!("GET {url}"))?.to_vec())
    }
}

fn parse_vgs(out: &str) -> Result<BTreeMap<String, Size>> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut f = l.split_whitespace();
            match (f.next(), f.next().and_then(|b| b.parse::<u64>().ok())) {
                (Some(vg), Some(bytes)) => Ok((vg.to_string(), Size(bytes))),
                _ => bail!("unexpected line from vgs: {l:?}"),
            }
        })
        .collect()
}

/// The words of `xl info`'s `virt_caps : pv hvm hap ...` line.
fn parse_virt_caps(info: &str) -> Vec<String> {
    info_field(info, "virt_caps")
        .map(|v| v.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

fn parse_ip_addr(out: &str) -> Option<Ipv4Addr> {
    out.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next()?.parse().ok())
}

fn parse_domains(list_json: &str, states: &str, uptime: &str) -> Result<Vec<Domain>> {
    let runs: BTreeMap<String, Counters> = parse_xl_list(states)
        .into_iter()
        .map(|c| (c.name.clone(), c))
        .collect();
    let v: serde_json::Value =
        serde_json::from_str(list_json).context("reading the JSON of `xl list -l`")?;
    let ups = parse_xl_uptime(uptime);
    let mut out = Vec::new();
    for d in v.as_array().into_iter().flatten() {
        let cfg = &d["config"];
        let Some(name) = cfg["c_info"]["name"].as_str() else {
            continue;
        };
        let b = &cfg["b_info"];
        let max_vcpus = b["max_vcpus"].as_u64().unwrap_or(0) as u32;
        // A domain that ended between the two listings is not listed.
        let Some(now) = runs.get(name) else {
            continue;
        };
        out.push(Domain {
            name: name.to_string(),
            domid: d["domid"].as_u64().unwrap_or(0) as u32,
            memory_mib: now.memory_mib,
            vcpus: now.vcpus,
            maxmem_mib: b["max_memkb"].as_u64().unwrap_or(0) / 1024,
            max_vcpus,
            uptime_secs: ups.get(name).copied(),
            run: now.run,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lvm_ip_and_xl_output() {
        let vgs = parse_vgs("  dsk 21474836480\n  vg1 0\n").unwrap();
        assert_eq!(vgs["dsk"], Size::gib(20));
        assert_eq!(vgs["vg1"], Size(0));
        assert!(parse_vgs("dsk many\n").is_err());
        assert_eq!(
            parse_ip_addr(
                "5: xenbr0    inet 10.0.2.15/24 brd 10.0.2.255 scope global dynamic xenbr0\n"
            ),
            Some(Ipv4Addr::new(10, 0, 2, 15))
        );
        assert_eq!(parse_ip_addr(""), None);
        let info = "release                : 6.1.0-50-amd64\nvirt_caps              : pv hvm hap gnttab-v1 gnttab-v2\n";
        assert_eq!(
            parse_virt_caps(info),
            ["pv", "hvm", "hap", "gnttab-v1", "gnttab-v2"]
        );
        assert!(!parse_virt_caps("virt_caps : pv gnttab-v1\n").contains(&"hvm".to_string()));
        let list = r#"[{"domid":0,"config":{"c_info":{"type":"pv","name":"Domain-0"},"b_info":{"max_vcpus":2,"max_memkb":1048576,"target_memkb":1048576}}},
                      {"domid":3,"config":{"c_info":{"type":"pvh","name":"web1"},"b_info":{"max_vcpus":1,"max_memkb":524288,"target_memkb":524288}}}]"#;
        let up = "Name                                ID Uptime\nDomain-0                             0  1 day,  2:03:04\nweb1                                 3  0:01:02\n";
        let states = "Name                                        ID   Mem VCPUs\tState\tTime(s)\nDomain-0                                     0   700     2     r-----      50.3\nweb1                                         3   512     1     --p---       3.2\n";
        let d = parse_domains(list, states, up).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].run, Run::Running);
        assert_eq!(d[0].uptime_secs, Some(86400 + 7384));
        assert_eq!(
            d[1],
            Domain {
                name: "web1".into(),
                domid: 3,
                memory_mib: 512,
                vcpus: 1,
                maxmem_mib: 512,
                max_vcpus: 1,
                uptime_secs: Some(62),
                run: Run::Paused,
            }
        );
    }
}
