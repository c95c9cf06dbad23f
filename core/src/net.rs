//! Network values found in answer files and guest definitions: addresses with a prefix, MACs,
//! host names and interface names; URLs as they may be shown.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

/// An IPv4 address with its prefix length, `192.0.2.10/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(
            u32::MAX
                .checked_shl(32 - u32::from(self.prefix))
                .unwrap_or(0),
        )
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let m = u32::from(self.netmask());
        u32::from(ip) & m == u32::from(self.addr) & m
    }

    /// Whether `ip` is the network or broadcast address of this subnet (a /31 or /32 has neither).
    pub fn is_network_or_broadcast(&self, ip: Ipv4Addr) -> bool {
        let m = u32::from(self.netmask());
        let host = u32::from(ip) & !m;
        self.prefix < 31 && (host == 0 || host == !m)
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let accepted = "an IPv4 address with a prefix length, e.g. 192.0.2.10/24";
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` has no prefix length; expected {accepted}"))?;
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("`{a}` is not an IP address; expected {accepted}"))?;
        let IpAddr::V4(addr) = addr else {
            return Err(format!(
                "`{s}` is IPv6, which is not supported here yet; expected {accepted}"
            ));
        };
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p| (1..=32).contains(p))
            .ok_or_else(|| {
                format!("`/{p}` is not a prefix length from 1 to 32; expected {accepted}")
            })?;
        let c = Cidr { addr, prefix };
        let kind = if addr.octets()[0] == 0 {
            Some("in 0.0.0.0/8, which means \"this host\" and is never assigned")
        } else if addr.is_loopback() {
            Some("a loopback address, which never leaves the machine")
        } else if addr.is_multicast() {
            Some("a multicast address")
        } else if addr.is_broadcast() {
            Some("the broadcast address")
        } else {
            None
        };
        if let Some(kind) = kind {
            return Err(format!(
                "`{s}` is {kind}; a host needs a unicast address of its network"
            ));
        }
        if c.is_network_or_broadcast(addr) {
            return Err(format!(
                "`{s}` is the network or broadcast address of its subnet, not a host address"
            ));
        }
        Ok(c)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

string_serde!(Cidr, "Cidr", {
    "type": "string",
    "pattern": r"^[0-9.]+/[0-9]{1,2}$",
    "description": "an IPv4 address with its prefix length, e.g. 192.0.2.10/24",
});

/// An IPv4 unicast address usable as a gateway or name server.
/// `url` without the user and password of its authority (`http://user:pw@host/` → `http://host/`),
/// for pages and listings that must not show a credential.
pub fn without_userinfo(url: &str) -> std::borrow::Cow<'_, str> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.into();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]).into(),
        None => url.into(),
    }
}

pub fn parse_ipv4(s: &str) -> Result<Ipv4Addr, String> {
    match s.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) if !a.is_unspecified() && !a.is_broadcast() && !a.is_multicast() => Ok(a),
        Ok(IpAddr::V4(_)) => Err(format!("`{s}` is not a unicast address")),
        Ok(IpAddr::V6(_)) => Err(format!(
            "`{s}` is IPv6, which is not supported here yet; expected an IPv4 address"
        )),
        Err(_) => Err(format!(
            "`{s}` is not an IP address; expected e.g. 192.0.2.1"
        )),
    }
}

/// A static configuration's gateway: on the address's subnet, and neither the address itself nor
/// the subnet's network or broadcast address (which no router answers on).
pub fn check_gateway(address: &Cidr, gateway: Ipv4Addr) -> Result<(), String> {
    if !address.contains(gateway) {
        Err(format!(
            "{gateway} is not in the subnet of address {address}"
        ))
    } else if gateway == address.addr {
        Err(format!(
            "{gateway} is this address itself; the gateway is another host on {address}"
        ))
    } else if address.is_network_or_broadcast(gateway) {
        Err(format!(
            "{gateway} is the network or broadcast address of {address}, not a router"
        ))
    } else {
        Ok(())
    }
}

/// A MAC address, written `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff` (either case, as Linux and
/// as Windows or a BMC print it); returned with colons, in lower case.
pub fn parse_mac(s: &str) -> Result<String, String> {
    let sep = if s.contains('-') { '-' } else { ':' };
    let parts: Vec<&str> = s.split(sep).collect();
    if parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
    {
        let mac = parts.join(":").to_ascii_lowercase();
        let first = u8::from_str_radix(parts[0], 16).unwrap_or(0);
        let kind = if mac == "ff:ff:ff:ff:ff:ff" {
            Some("the broadcast MAC address")
        } else if first & 1 == 1 {
            Some("a multicast MAC address (the low bit of its first octet is set)")
        } else if mac == "00:00:00:00:00:00" {
            Some("the all-zero MAC address, which marks no NIC")
        } else {
            None
        };
        match kind {
            Some(kind) => Err(format!("`{s}` is {kind}; a NIC needs a unicast one")),
            None => Ok(mac),
        }
    } else {
        Err(format!(
            "`{s}` is not a MAC address; expected six hex pairs, e.g. 00:16:3e:12:34:56 or 00-16-3E-12-34-56"
        ))
    }
}

/// A host name: RFC 1123 labels, the first being the short name.
pub fn check_hostname(s: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "`{s}` is not a valid host name: {why}; expected e.g. xen1 or xen1.example.org"
        ))
    };
    if s.is_empty() || s.len() > 253 {
        return bad("it must be 1 to 253 characters");
    }
    for label in s.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad("each dot-separated part must be 1 to 63 characters");
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return bad("only letters, digits and '-' are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a part may not start or end with '-'");
        }
    }
    Ok(())
}

/// A Linux network interface name: what the kernel's `dev_valid_name` takes (1 to 15 bytes, not
/// `.` or `..`, no `/`, `:` or space), narrowed to characters that are safe in every file that
/// names it, and not starting with `-`, which `ip`, `brctl` and ifupdown would read as an option.
pub fn check_ifname(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 15 {
        return Err(format!(
            "`{s}` is not an interface name: it must be 1 to 15 characters"
        ));
    }
    if s == "." || s == ".." || s.starts_with('-') {
        return Err(format!(
            "`{s}` is not an interface name: it may not be `.` or `..` or start with '-'"
        ));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!(
            "`{s}` is not an interface name: only letters, digits, '-', '_' and '.' are allowed"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_are_shown_without_their_credentials() {
        for (url, shown) in [
            (
                "http://user:secret@mirror.example/debian",
                "http://mirror.example/debian",
            ),
            ("https://u@h:8443/p?x=a@b", "https://h:8443/p?x=a@b"),
            ("http://mirror.example/a@b", "http://mirror.example/a@b"),
            ("http://10.0.2.2:8080", "http://10.0.2.2:8080"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(super::without_userinfo(url), shown, "{url}");
        }
    }

    use super::*;

    #[test]
    fn cidr() {
        let c: Cidr = "192.0.2.10/24".parse().unwrap();
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert!(c.contains(Ipv4Addr::new(192, 0, 2, 1)));
        assert!(!c.contains(Ipv4Addr::new(192, 0, 3, 1)));
        for bad in [
            "192.0.2.10",
            "192.0.2.10/33",
            "192.0.2.0/24",
            "192.0.2.255/24",
            "fe80::1/64",
            "x/24",
            "127.0.0.1/8",
            "127.1.2.3/24",
            "0.0.0.0/8",
            "0.1.2.3/24",
            "224.0.0.5/24",
            "239.1.2.3/32",
            "255.255.255.255/32",
            "10.0.0.0/8",
            "10.255.255.255/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        let e = "127.0.0.1/8".parse::<Cidr>().unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        assert!("10.0.0.1/32".parse::<Cidr>().is_ok());
        assert!("10.0.0.0/31".parse::<Cidr>().is_ok());
    }

    #[test]
    fn gateways() {
        let c: Cidr = "192.0.2.10/24".parse().unwrap();
        assert!(check_gateway(&c, Ipv4Addr::new(192, 0, 2, 1)).is_ok());
        for (gw, why) in [
            ([192, 0, 2, 10], "this address itself"),
            ([192, 0, 3, 1], "not in the subnet"),
            ([192, 0, 2, 0], "network or broadcast"),
            ([192, 0, 2, 255], "network or broadcast"),
        ] {
            let e = check_gateway(&c, Ipv4Addr::from(gw)).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        let p2p: Cidr = "198.51.100.0/31".parse().unwrap();
        assert!(check_gateway(&p2p, Ipv4Addr::new(198, 51, 100, 1)).is_ok());
    }

    #[test]
    fn names_and_macs() {
        assert!(check_hostname("xen1.example.org").is_ok());
        assert!(check_hostname("-bad").is_err());
        assert!(check_hostname("bad_name").is_err());
        assert_eq!(parse_mac("00:16:3E:AA:bb:01").unwrap(), "00:16:3e:aa:bb:01");
        assert_eq!(parse_mac("00-16-3E-AA-BB-01").unwrap(), "00:16:3e:aa:bb:01");
        for (bad, why) in [
            ("01:00:5e:00:00:01", "multicast"),
            ("33:33:00:00:00:01", "multicast"),
            ("ff:ff:ff:ff:ff:ff", "broadcast"),
            ("FF:FF:FF:FF:FF:FF", "broadcast"),
            ("00:00:00:00:00:00", "all-zero"),
            ("00:16:3e", "not a MAC"),
            ("00:16-3e:aa:bb:01", "not a MAC"),
            ("0016.3eaa.bb01", "not a MAC"),
        ] {
            let e = parse_mac(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(check_ifname("xenbr0").is_ok());
        assert!(check_ifname("br-lan.10").is_ok());
        for bad in [
            "",
            "a-very-long-bridge-name",
            "-br",
            ".",
            "..",
            "br/0",
            "br:0",
            "br 0",
            "br\t0",
            "br\n0",
        ] {
            assert!(check_ifname(bad).is_err(), "{bad:?}");
        }
    }
}
