//! The dom0's side of guest networks, made from every guest's definition at once: the NAT bridge
//! with its DHCP reservations (dnsmasq) and its masquerade and port forwards (one nftables table of
//! our own), the bridges of VLANs on an uplink, and proxy ARP for routed guests. `network apply`
//! (run by `new`, `rm`, `restore`, and at boot by `xenprov-guest-network.service`, before
//! xendomains starts the guests) converges the host on it, so the rules survive reboots by being
//! made again from the definitions rather than saved.

use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use xenprov_core::guest::Guest;
use xenprov_core::guest_net::{Attach, Forward, NAT_BRIDGE, nat_gateway, vlan_bridge};
use xenprov_core::net::Cidr;
use xenprov_core::render::Templates;
use xenprov_sys::Cmd;

use crate::ops::Env;

/// nftables table that holds every rule we write, and nothing else.
pub const TABLE: &str = "xenprov-guests";

/// What the host needs for its guests' networks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct HostNet {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nat: Option<Nat>,
    /// VLAN bridges: each on a VLAN device of its uplink bridge.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vlans: Vec<Vlan>,
    /// Uplink bridges on which the dom0 answers ARP for routed guests.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routed: Vec<Routed>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Nat {
    pub bridge: String,
    pub subnet: String,
    /// The dom0's address on the NAT bridge, with the subnet's prefix.
    pub gateway: String,
    pub gateway_ip: Ipv4Addr,
    /// The subnet's network address and netmask, as dnsmasq takes them.
    pub network: Ipv4Addr,
    pub netmask: Ipv4Addr,
    pub leases: Vec<Lease>,
    pub forwards: Vec<Forwarded>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    pub guest: String,
    pub mac: String,
    pub ip: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Forwarded {
    pub guest: String,
    pub proto: &'static str,
    pub port: u16,
    pub to_ip: Ipv4Addr,
    pub to_port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Vlan {
    pub uplink: String,
    pub id: u16,
    /// `UPLINK.ID`, the VLAN device on the uplink bridge.
    pub device: String,
    /// `UPLINKvID`, the bridge guests of that VLAN join.
    pub bridge: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Routed {
    pub uplink: String,
    pub guests: Vec<(String, Ipv4Addr)>,
}

impl HostNet {
    /// Whether the dom0 routes for its guests (NAT or routed), which needs IPv4 forwarding.
    pub fn forwards_ipv4(&self) -> bool {
        self.nat.is_some() || !self.routed.is_empty()
    }
}

/// What the guests' definitions need of the host. Pure.
pub fn plan(nat_subnet: &Cidr, guests: &[Guest]) -> HostNet {
    let mut net = HostNet::default();
    let mut leases = Vec::new();
    let mut forwards = Vec::new();
    for g in guests {
        let addr = g.network.address.map(|a| a.addr);
        match (g.network.attach, g.vlan, addr) {
            (Attach::Nat, _, Some(ip)) => {
                leases.push(Lease {
                    guest: g.name.clone(),
                    mac: g.mac.clone(),
                    ip,
                });
                forwards.extend(g.network.forward.iter().map(|f: &Forward| Forwarded {
                    guest: g.name.clone(),
                    proto: f.proto.name(),
                    port: f.host,
                    to_ip: ip,
                    to_port: f.guest,
                }));
            }
            (Attach::Routed, _, Some(ip)) => {
                match net.routed.iter_mut().find(|r| r.uplink == g.bridge) {
                    Some(r) => r.guests.push((g.name.clone(), ip)),
                    None => net.routed.push(Routed {
                        uplink: g.bridge.clone(),
                        guests: vec![(g.name.clone(), ip)],
                    }),
                }
            }
            (Attach::Bridge, Some(id), _) => net.vlans.push(Vlan {
                uplink: g.bridge.clone(),
                id,
                device: format!("{}.{id}", g.bridge),
                bridge: vlan_bridge(&g.bridge, id),
            }),
            _ => {}
        }
    }
    net.vlans.sort();
    net.vlans.dedup();
    net.routed.sort();
    if !leases.is_empty() {
        let gw = nat_gateway(nat_subnet);
        forwards.sort_by(|a: &Forwarded, b| (a.proto, a.port).cmp(&(b.proto, b.port)));
        net.nat = Some(Nat {
            bridge: NAT_BRIDGE.to_string(),
            subnet: nat_subnet.to_string(),
            gateway: Cidr {
                addr: gw,
                prefix: nat_subnet.prefix,
            }
            .to_string(),
            gateway_ip: gw,
            network: nat_subnet.addr,
            netmask: nat_subnet.netmask(),
            leases,
            forwards,
        });
    }
    net
}

/// The files that carry the plan: the nftables ruleset (always: with nothing to do, it only
/// removes our table) and, with NAT guests, dnsmasq's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub net: HostNet,
    pub ruleset: String,
    pub dnsmasq: Option<String>,
}

pub fn render(templates: &Templates, net: HostNet) -> Result<Rendered> {
    let ctx = serde_json::json!({ "table": TABLE, "nat": net.nat });
    let ruleset = templates.render("templates/guest-networks.nft.tera", &ctx)?;
    let dnsmasq = match net.nat {
        Some(_) => Some(templates.render("templates/guest-nat-dnsmasq.conf.tera", &ctx)?),
        None => None,
    };
    Ok(Rendered {
        net,
        ruleset,
        dnsmasq,
    })
}

/// The plan for the guests in the registry now.
pub fn current(env: &Env<'_>) -> Result<Rendered> {
    let guests = env
        .registry
        .names()?
        .iter()
        .map(|n| env.registry.guest(n))
        .collect::<Result<Vec<_>>>()?;
    render(
        env.registry.templates(),
        plan(&env.config.nat_subnet, &guests),
    )
}

/// Brings the host's guest networks in line with the registry.
pub fn apply(env: &Env<'_>) -> Result<Rendered> {
    let r = current(env)?;
    env.machine.apply_network(&r, &env.config.paths.network)?;
    Ok(r)
}

/// The transient unit that runs dnsmasq for the NAT bridge (made again by every apply).
const DHCP_UNIT: &str = "xenprov-guest-nat-dhcp.service";

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

fn sysctl(path: &str) -> Result<()> {
    fs::write(path, "1\n").with_context(|| format!("writing 1 to {path}"))
}

/// A bridge named `name`, up; made if missing.
fn bridge_up(name: &str) -> Result<()> {
    if !link_exists(name) {
        Cmd::new(&["ip", "link", "add", name, "type", "bridge"]).run()?;
    }
    Cmd::new(&["ip", "link", "set", name, "up"]).run().map(drop)
}

/// Makes the host what `r` says, on the real dom0: links, addresses, sysctls, the ruleset and
/// the DHCP server. Every step can run again; nothing is removed that is not ours.
pub fn converge(r: &Rendered, dir: &Path) -> Result<()> {
    let net = &r.net;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if let Some(nat) = &net.nat {
        xenprov_sys::command::require(&[("nft", "nftables"), ("dnsmasq", "dnsmasq-base")])?;
        bridge_up(&nat.bridge)?;
        Cmd::new(&["ip", "addr", "replace", &nat.gateway, "dev", &nat.bridge]).run()?;
    } else if link_exists(NAT_BRIDGE)
        && fs::read_dir(format!("/sys/class/net/{NAT_BRIDGE}/brif"))
            .map(|mut d| d.next().is_none())
            .unwrap_or(false)
    {
        // No NAT guest is left, and no vif is on the bridge.
        Cmd::new(&["ip", "link", "del", NAT_BRIDGE]).run()?;
    }
    for v in &net.vlans {
        if !link_exists(&v.device) {
            Cmd::new(&[
                "ip", "link", "add", "link", &v.uplink, "name", &v.device, "type", "vlan", "id",
            ])
            .arg(v.id.to_string())
            .run()?;
        }
        bridge_up(&v.bridge)?;
        Cmd::new(&["ip", "link", "set", &v.device, "master", &v.bridge, "up"]).run()?;
    }
    for rt in &net.routed {
        sysctl(&format!("/proc/sys/net/ipv4/conf/{}/proxy_arp", rt.uplink))?;
    }
    if net.forwards_ipv4() {
        sysctl("/proc/sys/net/ipv4/ip_forward")?;
    }
    let rules = dir.join("guests.nft");
    fs::write(&rules, &r.ruleset).with_context(|| format!("writing {}", rules.display()))?;
    // With nothing to forward, the ruleset is loaded only to take away a table of ours that an
    // earlier apply left (a host without nftables has none).
    let ours = || {
        Cmd::new(&["nft", "list", "table", "inet", TABLE])
            .run()
            .is_ok()
    };
    if net.nat.is_some() || ours() {
        Cmd::new(&["nft", "-f"]).arg(&rules).run()?;
    }
    let conf = dir.join("dnsmasq.conf");
    let active = || {
        Cmd::new(&["systemctl", "is-active", "--quiet", DHCP_UNIT])
            .run()
            .is_ok()
    };
    match &r.dnsmasq {
        Some(text) if fs::read_to_string(&conf).ok().as_ref() == Some(text) && active() => {}
        Some(text) => {
            fs::write(&conf, text).with_context(|| format!("writing {}", conf.display()))?;
            let _ = Cmd::new(&["systemctl", "stop", DHCP_UNIT]).run();
            Cmd::new(&[
                "systemd-run",
                "--quiet",
                "--collect",
                "--unit",
                DHCP_UNIT,
                "--property=Restart=on-failure",
                "--",
                "dnsmasq",
                "--keep-in-foreground",
            ])
            .arg(format!("--conf-file={}", conf.display()))
            .run()?;
        }
        None => {
            if active() {
                Cmd::new(&["systemctl", "stop", DHCP_UNIT]).run()?;
            }
            let _ = fs::remove_file(&conf);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use xenprov_core::guest::{Catalog, Host};
    use xenprov_core::guest_net::DEFAULT_NAT_SUBNET;

    const HASH: &str = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";

    fn guest(name: &str, extra: &str) -> Guest {
        let src = format!(
            "name = \"{name}\"\nos = \"debian12\"\ntype = \"pv\"\nmemory = \"1G\"\ndisk = \"4G\"\nroot-password-hash = '{HASH}'\n{extra}"
        );
        Guest::parse(
            &src,
            &Catalog::from_templates(&Templates::builtin()).unwrap(),
            &Host::default(),
        )
        .unwrap()
    }

    #[test]
    fn bridged_guests_need_nothing_and_the_ruleset_only_removes_ours() {
        let net = plan(&DEFAULT_NAT_SUBNET, &[guest("a", "")]);
        assert_eq!(net, HostNet::default());
        let r = render(&Templates::builtin(), net).unwrap();
        assert_eq!(r.dnsmasq, None);
        let rules: Vec<&str> = r
            .ruleset
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .collect();
        assert_eq!(
            rules,
            [
                "table inet xenprov-guests",
                "delete table inet xenprov-guests"
            ]
        );
    }

    #[test]
    fn nat_guests_get_reservations_masquerade_and_their_forwards() {
        let web = guest(
            "web",
            "[network]\nattach = \"nat\"\nforward = [\"8443:443\", \"udp:5353:53\"]\n",
        );
        let db = guest(
            "db",
            "[network]\nattach = \"nat\"\naddress = \"10.213.0.9/24\"\n",
        );
        let vlan = guest("v", "vlan = 42\n");
        let routed = guest(
            "r",
            "[network]\nattach = \"routed\"\nmode = \"static\"\naddress = \"192.0.2.50/24\"\ngateway = \"192.0.2.10\"\ndns = [\"192.0.2.53\"]\n",
        );
        let net = plan(&DEFAULT_NAT_SUBNET, &[web, db, vlan, routed]);
        let nat = net.nat.as_ref().unwrap();
        assert_eq!(nat.gateway, "10.213.0.1/24");
        assert_eq!(
            nat.leases
                .iter()
                .map(|l| (l.guest.as_str(), l.ip.to_string()))
                .collect::<Vec<_>>(),
            [("web", "10.213.0.2".into()), ("db", "10.213.0.9".into())]
        );
        assert_eq!(
            net.vlans,
            [Vlan {
                uplink: "xenbr0".into(),
                id: 42,
                device: "xenbr0.42".into(),
                bridge: "xenbr0v42".into()
            }]
        );
        assert_eq!(
            net.routed[0].guests,
            [("r".into(), Ipv4Addr::new(192, 0, 2, 50))]
        );
        assert!(net.forwards_ipv4());
        let r = render(&Templates::builtin(), net).unwrap();
        for want in [
            "iifname != \"xpnat0\" fib daddr type local tcp dport 8443 dnat ip to 10.213.0.2:443",
            "iifname != \"xpnat0\" fib daddr type local udp dport 5353 dnat ip to 10.213.0.2:53",
            "ip saddr 10.213.0.0/24 ip daddr != 10.213.0.0/24 masquerade",
            "oifname \"xpnat0\" iifname != \"xpnat0\" drop",
        ] {
            assert!(r.ruleset.contains(want), "{want}\n{}", r.ruleset);
        }
        let d = r.dnsmasq.unwrap();
        for want in [
            "interface=xpnat0",
            "dhcp-range=10.213.0.0,static,255.255.255.0",
            "dhcp-host=00:16:3e:",
            ",10.213.0.9,db",
            "dhcp-option=option:router,10.213.0.1",
        ] {
            assert!(d.contains(want), "{want}\n{d}");
        }
    }
}
