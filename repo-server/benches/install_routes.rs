//! How long the install routes take to refuse a wrong token, for a guest that exists and for one
//! that does not: the two must cost the same, or the answer's timing tells a client without any
//! token which guests a host has. The route's handler is called in process (no network in the
//! way, which is what an attacker averaging many requests would see through), the two cases
//! interleaved round by round so that the machine's noise falls on both alike.

use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use xenprov_core::guest::{Guest, Host};
use xenprov_core::guest_render::Source;
use xenprov_core::render::Templates;
use xenprov_registry::Registry;
use xenprov_repo::provision::Provision;

const HASH: &str = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
const ROUNDS: usize = 20;
const PER_ROUND: usize = 1000;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path(), Templates::builtin()).unwrap();
    let src = format!(
        "name = \"web1\"\nos = \"debian12\"\ntype = \"pv\"\nmemory = \"1G\"\ndisk = \"8G\"\nroot-password-hash = '{HASH}'\n"
    );
    let host = Host {
        vg: "vg0".into(),
        ..Host::default()
    };
    reg.create(&Guest::parse(&src, reg.catalog(), &host).unwrap(), 0)
        .unwrap();
    let source = Source {
        repo_url: "http://10.0.2.15:8080".into(),
        tree_url: "http://10.0.2.15:8080/debian".into(),
        kernel: "/k".into(),
        ramdisk: "/i".into(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = reg.arm("web1", source, 3600, now).unwrap();
    let provision = Provision::new(Registry::open(dir.path(), Templates::builtin()).unwrap());
    let wrong = "0".repeat(token.len());
    let cases = [
        ("known guest, wrong token", format!("/preseed/web1/{wrong}")),
        (
            "unknown guest, wrong token",
            format!("/preseed/web2/{wrong}"),
        ),
    ];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut samples = vec![Vec::with_capacity(ROUNDS * PER_ROUND); cases.len()];
    rt.block_on(async {
        let right = get(&provision, &format!("/preseed/web1/{token}")).await;
        assert_eq!(right, StatusCode::OK, "the right token opens the route");
        for round in 0..ROUNDS {
            for k in 0..cases.len() {
                // Alternate which case goes first, so neither always follows the other.
                let (_, path) = &cases[(k + round) % cases.len()];
                let out = &mut samples[(k + round) % cases.len()];
                for _ in 0..PER_ROUND {
                    let start = Instant::now();
                    assert_eq!(get(&provision, path).await, StatusCode::NOT_FOUND);
                    out.push(start.elapsed().as_nanos() as u64);
                }
            }
        }
    });
    let mut medians = Vec::new();
    for ((label, _), s) in cases.iter().zip(&mut samples) {
        s.sort_unstable();
        let (p10, p50, p90) = (s[s.len() / 10], s[s.len() / 2], s[s.len() * 9 / 10]);
        println!(
            "{label:28} p10 {:6.1} µs  median {:6.1} µs  p90 {:6.1} µs  ({} requests)",
            p10 as f64 / 1e3,
            p50 as f64 / 1e3,
            p90 as f64 / 1e3,
            s.len()
        );
        medians.push(p50 as f64);
    }
    println!(
        "median known / unknown: {:.3}  (difference {:+.1} µs)",
        medians[0] / medians[1],
        (medians[0] - medians[1]) / 1e3
    );
}

async fn get(provision: &Provision, path: &str) -> StatusCode {
    let req = Request::get(path).body(Full::new(Bytes::new())).unwrap();
    let resp = provision.handle(req).await;
    let status = resp.status();
    resp.into_body().collect().await.unwrap();
    status
}
