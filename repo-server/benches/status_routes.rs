//! What the status routes cost with many guests, in process: `/metrics`, `/api/status` and `/ui/`
//! with N guests in the registry and N running domains in the sampler (a recorded reading, as a dom0
//! with that many would give), each against the static route serving the same bytes from the same
//! router's memory cache (the cheapest answer the server has, and the anchor). Rounds alternate the
//! two so that the machine's noise falls on both alike.
//!
//! Usage: cargo bench -p xenprov-repo --bench status_routes [-- GUESTS...] (default 100 1000)

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use xenprov_core::guest::{Guest, Host};
use xenprov_core::render::Templates;
use xenprov_core::xen::{Counters, Run};
use xenprov_registry::Registry;
use xenprov_registry::settings::Paths;
use xenprov_repo::http::metrics::Metrics;
use xenprov_repo::server::router::Router;
use xenprov_repo::settings::config::Config;
use xenprov_repo::status::Status;
use xenprov_repo::status::sampler::{Reading, Sampler};
use xenprov_repo::status::snapshot::{Guests, Sources};

const HASH: &str = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
const ROUNDS: usize = 10;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn lab(n: usize, dir: &std::path::Path) -> Router {
    let reg = Registry::open(&dir.join("guests"), Templates::builtin()).unwrap();
    let host = Host {
        vg: "vg0".into(),
        ..Host::default()
    };
    for i in 0..n {
        let src = format!(
            "name = \"g{i}\"\nos = \"debian12\"\ntype = \"pv\"\nmemory = \"1G\"\ndisk = \"8G\"\nroot-password-hash = '{HASH}'\n"
        );
        reg.create(&Guest::parse(&src, reg.catalog(), &host).unwrap(), now())
            .unwrap();
    }
    let sampler = Arc::new(Sampler::fixed(None));
    let reading = |k: f64| Reading {
        counters: (0..n)
            .map(|i| Counters {
                name: format!("g{i}"),
                domid: i as u32 + 1,
                run: Run::Running,
                cpu_secs: k * i as f64,
                memory_mib: 1024,
                vcpus: 1,
                read_bytes: (k as u64) << 20,
                ..Counters::default()
            })
            .collect(),
        info: Some(
            "xen_version : 4.17.6\ntotal_memory : 262144\nfree_memory : 1024\nnr_cpus : 64\n"
                .into(),
        ),
        uptimes: Some((0..n).map(|i| (format!("g{i}"), 3600)).collect()),
    };
    for k in 0..60 {
        sampler.write().record(reading(k as f64), 5.0, now());
    }
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let config = Config {
        root,
        ..Config::default()
    };
    let metrics = Arc::new(Metrics::default());
    let sources = Sources {
        started: now(),
        sampler,
        metrics: metrics.clone(),
        guests: Some(Guests {
            registry: Arc::new(reg),
            paths: Paths::default(),
        }),
        fleet: None,
        upstreams: Vec::new(),
    };
    Router::from_config(&config, metrics)
        .unwrap()
        .with_status(Status::new(sources, &config))
}

async fn get(router: &Router, path: &str) -> Bytes {
    let req = Request::get(path)
        .header("host", "127.0.0.1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = router.handle(req).await;
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    resp.into_body().collect().await.unwrap().to_bytes()
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![100, 1000]
    } else {
        sizes
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for n in sizes {
        let dir = tempfile::tempdir().unwrap();
        let router = lab(n, dir.path());
        rt.block_on(async {
            for (route, copy) in [
                ("/metrics", "metrics.txt"),
                ("/api/status", "status.json"),
                ("/ui/", "page.html"),
            ] {
                let body = get(&router, route).await;
                std::fs::write(dir.path().join("root").join(copy), &body).unwrap();
                let anchor = format!("/{copy}");
                let per = (2000 / n).max(5);
                let (mut ours, mut theirs) = (Vec::new(), Vec::new());
                for round in 0..ROUNDS {
                    for k in 0..2 {
                        let (path, out) = if (k + round) % 2 == 0 {
                            (route, &mut ours)
                        } else {
                            (anchor.as_str(), &mut theirs)
                        };
                        for _ in 0..per {
                            let start = Instant::now();
                            get(&router, path).await;
                            out.push(start.elapsed().as_nanos() as f64);
                        }
                    }
                }
                let median = |v: &mut Vec<f64>| {
                    v.sort_by(f64::total_cmp);
                    v[v.len() / 2]
                };
                let (o, t) = (median(&mut ours), median(&mut theirs));
                println!(
                    "{n:5} guests  {route:12} {:8} bytes  median {:9.1} µs   same bytes as a file {:7.1} µs   ratio {:6.1}x",
                    body.len(),
                    o / 1e3,
                    t / 1e3,
                    o / t
                );
            }
        });
    }
}
