//! Guest definitions, read against the shipped OS catalog and a host with a guest and a full volume
//! group (so the host checks run too): no panic, every refusal carries a diagnostic, and an accepted
//! definition written back with `to_toml` (as the registry stores it) reads back as the same guest.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use xenprov_core::guest::{Catalog, Existing, Guest, Host};
use xenprov_core::render::Templates;
use xenprov_core::size::Size;

fn setup() -> &'static (Catalog, Host) {
    static SETUP: OnceLock<(Catalog, Host)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let catalog = Catalog::from_templates(&Templates::builtin()).unwrap();
        let host = Host {
            vg: "dsk".into(),
            vg_free: Some(BTreeMap::from([("dsk".to_string(), Size::gib(30))])),
            guests: vec![Existing {
                name: "old".into(),
                mac: "00:16:3e:00:00:01".into(),
                nat_address: Some(std::net::Ipv4Addr::new(10, 213, 0, 2)),
                forward: vec!["2222:22".parse().unwrap()],
            }],
            hvm: Some(true),
            nat_subnet: Some(xenprov_core::guest_net::DEFAULT_NAT_SUBNET),
            reserved_ports: vec![22, 8080],
        };
        (catalog, host)
    })
}

fuzz_target!(|src: &str| {
    let (catalog, host) = setup();
    match Guest::parse(src, catalog, host) {
        Ok(guest) => {
            let text = guest.to_toml();
            match Guest::parse(&text, catalog, host) {
                Ok(again) => assert_eq!(again, guest, "written back as:\n{text}"),
                Err(e) => panic!("written back as:\n{text}\nand refused:\n{e}"),
            }
        }
        Err(diags) => {
            assert!(!diags.0.is_empty(), "refused without a diagnostic");
            let _ = diags.to_string();
        }
    }
});
