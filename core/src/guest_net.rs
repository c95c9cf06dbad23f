//! How a guest's network interface joins the host: on a bridge of the uplink (optionally tagged
//! with a VLAN), behind the dom0's NAT (a private bridge with DHCP, masquerading and declared port
//! forwards), or routed by the dom0 (proxy ARP, as Xen's `vif-route` does). Pure: a NAT guest's
//! address is chosen from what the [`Host`](crate::guest::Host) snapshot says is taken, and kept
//! in its definition from then on, so that its DHCP reservation and port forwards stay put.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::Serialize;

use crate::net::Cidr;

/// The dom0's private bridge that NAT guests join.
pub const NAT_BRIDGE: &str = "xpnat0";

/// The NAT subnet unless `nat-subnet` in the host's guest settings says otherwise.
pub const DEFAULT_NAT_SUBNET: Cidr = Cidr {
    addr: Ipv4Addr::new(10, 213, 0, 0),
    prefix: 24,
};

/// Where a guest's vif goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Attach {
    /// On the uplink's bridge, like any machine on that network (optionally in a VLAN).
    #[default]
    Bridge,
    /// On the dom0's private bridge: DHCP from the dom0, out through its masquerade, in only
    /// through declared forwards.
    Nat,
    /// Its own address on the uplink's network, routed by the dom0, which answers ARP for it.
    Routed,
}

impl Attach {
    pub fn name(self) -> &'static str {
        ATTACH.iter().find(|(_, a)| *a == self).unwrap().0
    }
}

pub const ATTACH: [(&str, Attach); 3] = [
    ("bridge", Attach::Bridge),
    ("nat", Attach::Nat),
    ("routed", Attach::Routed),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A port of the dom0 forwarded to a port of a NAT guest: `[tcp:|udp:]HOST:GUEST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Forward {
    pub proto: Proto,
    pub host: u16,
    pub guest: u16,
}

impl fmt::Display for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.proto.name(), self.host, self.guest)
    }
}

impl FromStr for Forward {
    type Err = String;
    fn from_str(s: &str) -> Result<Forward, String> {
        let accepted = || {
            format!(
                "`{s}` is not a port forward: [tcp:|udp:]DOM0-PORT:GUEST-PORT, e.g. \"2222:22\" or \"udp:5353:53\", ports 1 to 65535"
            )
        };
        let (proto, rest) = match s.split_once(':') {
            Some(("tcp", r)) => (Proto::Tcp, r),
            Some(("udp", r)) => (Proto::Udp, r),
            _ => (Proto::Tcp, s),
        };
        // Digits only: u16's parser would take "+22".
        let port = |p: &str| {
            (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse::<u16>().ok())
                .flatten()
                .filter(|p| *p > 0)
        };
        match rest.split_once(':').map(|(h, g)| (port(h), port(g))) {
            Some((Some(host), Some(guest))) => Ok(Forward { proto, host, guest }),
            _ => Err(accepted()),
        }
    }
}

string_serde!(Forward, "Forward", {
    "type": "string",
    "pattern": r"^((tcp|udp):)?[0-9]{1,5}:[0-9]{1,5}$",
    "description": "a dom0 port forwarded to a NAT guest's port: [tcp:|udp:]DOM0-PORT:GUEST-PORT",
});

/// The dom0's own address in a NAT subnet: its first host address, the guests' gateway and
/// name server.
pub fn nat_gateway(subnet: &Cidr) -> Ipv4Addr {
    Ipv4Addr::from((u32::from(subnet.addr) & u32::from(subnet.netmask())) + 1)
}

/// Whether `ip` can be a NAT guest's address in `subnet`: inside it, neither its network nor its
/// broadcast address, nor the dom0's.
pub fn check_nat_address(subnet: &Cidr, ip: Ipv4Addr) -> Result<(), String> {
    if !subnet.contains(ip) || subnet.is_network_or_broadcast(ip) {
        Err(format!(
            "{ip} is not a host address of the NAT subnet {subnet} (nat-subnet in the host's guest settings)"
        ))
    } else if ip == nat_gateway(subnet) {
        Err(format!("{ip} is the dom0's own address on the NAT bridge"))
    } else {
        Ok(())
    }
}

/// The lowest address of `subnet` that no one has, after the dom0's.
pub fn free_nat_address(subnet: &Cidr, taken: &[Ipv4Addr]) -> Option<Ipv4Addr> {
    let first = u32::from(nat_gateway(subnet)) + 1;
    let broadcast = u32::from(subnet.addr) | !u32::from(subnet.netmask());
    (first..broadcast)
        .map(Ipv4Addr::from)
        .find(|ip| !taken.contains(ip))
}

/// A subnet for `nat-subnet`: a private (RFC 1918) network of at most /30, given by its network
/// address.
pub fn check_nat_subnet(s: &str) -> Result<Cidr, String> {
    // Not Cidr's parser, which holds an address to be a host's.
    let c = s.split_once('/').and_then(|(a, p)| {
        Some(Cidr {
            addr: a.parse().ok()?,
            prefix: p.parse().ok().filter(|p| (8..=30).contains(p))?,
        })
    });
    let ok = c.filter(|c| {
        let net = Ipv4Addr::from(u32::from(c.addr) & u32::from(c.netmask()));
        c.addr.is_private() && net == c.addr
    });
    ok.ok_or_else(|| {
        format!(
            "`{s}` is not a NAT subnet: a private network (10/8, 172.16/12, 192.168/16) written by its network address, /8 to /30, e.g. \"{DEFAULT_NAT_SUBNET}\""
        )
    })
}

/// The bridge of a VLAN on an uplink bridge, which the dom0 makes for its guests: `BRIDGEvVID`.
pub fn vlan_bridge(uplink: &str, vlan: u16) -> String {
    format!("{uplink}v{vlan}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_read_and_print() {
        let f: Forward = "2222:22".parse().unwrap();
        assert_eq!(
            f,
            Forward {
                proto: Proto::Tcp,
                host: 2222,
                guest: 22
            }
        );
        assert_eq!(f.to_string(), "tcp:2222:22");
        assert_eq!(
            "udp:5353:53".parse::<Forward>().unwrap().to_string(),
            "udp:5353:53"
        );
        for bad in [
            "22",
            "0:22",
            "tcp:70000:22",
            "sctp:1:2",
            "1:2:3",
            ":22",
            "+22:22",
            "tcp:",
        ] {
            let e = bad.parse::<Forward>().unwrap_err();
            assert!(e.contains("[tcp:|udp:]DOM0-PORT:GUEST-PORT"), "{bad}: {e}");
        }
    }

    #[test]
    fn nat_addresses_skip_the_dom0_and_what_is_taken() {
        let s = DEFAULT_NAT_SUBNET;
        assert_eq!(nat_gateway(&s), Ipv4Addr::new(10, 213, 0, 1));
        assert_eq!(
            free_nat_address(&s, &[]),
            Some(Ipv4Addr::new(10, 213, 0, 2))
        );
        let taken = [Ipv4Addr::new(10, 213, 0, 2), Ipv4Addr::new(10, 213, 0, 4)];
        assert_eq!(
            free_nat_address(&s, &taken),
            Some(Ipv4Addr::new(10, 213, 0, 3))
        );
        let tiny = check_nat_subnet("192.168.9.0/30").unwrap();
        assert_eq!(
            free_nat_address(&tiny, &[]),
            Some(Ipv4Addr::new(192, 168, 9, 2))
        );
        assert_eq!(
            free_nat_address(&tiny, &[Ipv4Addr::new(192, 168, 9, 2)]),
            None
        );
        assert!(check_nat_address(&s, Ipv4Addr::new(10, 213, 0, 1)).is_err());
        assert!(check_nat_address(&s, Ipv4Addr::new(10, 213, 0, 255)).is_err());
        assert!(check_nat_address(&s, Ipv4Addr::new(10, 214, 0, 5)).is_err());
        assert!(check_nat_address(&s, Ipv4Addr::new(10, 213, 0, 9)).is_ok());
    }

    #[test]
    fn nat_subnets_are_private_networks() {
        assert_eq!(check_nat_subnet("192.168.50.0/24").unwrap().prefix, 24);
        for bad in ["8.8.8.0/24", "10.0.0.5/24", "10.0.0.0/31", "10.0.0.0"] {
            assert!(check_nat_subnet(bad).is_err(), "{bad}");
        }
    }
}
