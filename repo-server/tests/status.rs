//! The status page, its JSON and the guests' series of `/metrics` in process: a registry with a
//! guest running (as a recorded reading of Xen says), one installing and one failed, and requests
//! straight to the router. The real page in a real browser is `tests/suites/17-status-page.sh`.

mod common;
use common::send;

use std::sync::Arc;

use hyper::{Method, StatusCode};
use xenprov_core::guest::{Guest, Host};
use xenprov_core::guest_render::Source;
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

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn guest(reg: &Registry, name: &str) {
    let src = format!(
        "name = \"{name}\"\nos = \"debian12\"\ntype = \"pv\"\nmemory = \"1G\"\ndisk = \"8G\"\nroot-password-hash = '{HASH}'\n"
    );
    let host = Host {
        vg: "dsk".into(),
        ..Host::default()
    };
    reg.create(&Guest::parse(&src, reg.catalog(), &host).unwrap(), now())
        .unwrap();
}

fn dom(name: &str, domid: u32, cpu_secs: f64) -> Counters {
    Counters {
        name: name.into(),
        domid,
        run: Run::Running,
        cpu_secs,
        memory_mib: 1024,
        vcpus: 1,
        read_bytes: 4096,
        ..Counters::default()
    }
}

struct Lab {
    router: Router,
    token: String,
    _dir: tempfile::TempDir,
}

/// web1 installed and running (domain 5, 2 s of CPU in the last 10 s), web2 installing, web3
/// failed with a message that is HTML.
fn lab(xen: bool) -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(&dir.path().join("guests"), Templates::builtin()).unwrap();
    for n in ["web1", "web2", "web3"] {
        guest(&reg, n);
    }
    let source = Source {
        repo_url: "http://10.0.2.15:8080".into(),
        tree_url: "http://10.0.2.15:8080/debian".into(),
        kernel: "/k".into(),
        ramdisk: "/i".into(),
    };
    let t = reg.arm("web1", source.clone(), 3600, now()).unwrap();
    reg.record_event("web1", &t, b"done\n", now()).unwrap();
    reg.mark_switched("web1", now()).unwrap();
    let token = reg.arm("web2", source.clone(), 3600, now()).unwrap();
    reg.arm("web3", source, 3600, now()).unwrap();
    reg.fail("web3", "<script>alert(1)</script>", now())
        .unwrap();
    let console = dir.path().join("console");
    std::fs::create_dir_all(&console).unwrap();
    let mut log = "early boot line\n".repeat(10_000);
    log.push_str("web1 login: \n");
    std::fs::write(console.join("guest-web1.log"), log).unwrap();

    let sampler = Arc::new(Sampler::fixed(
        (!xen).then(|| "not a dom0 (test)".to_string()),
    ));
    if xen {
        let mut s = sampler.write();
        let reading = |cpu| Reading {
            counters: vec![dom("Domain-0", 0, 100.0), dom("web1", 5, cpu)],
            info: Some(
                "xen_version : 4.17.6\ntotal_memory : 4096\nfree_memory : 1024\nnr_cpus : 2\n"
                    .into(),
            ),
            uptimes: Some([("web1".to_string(), 60)].into()),
        };
        s.record(reading(10.0), 10.0, now());
        s.record(reading(12.0), 10.0, now());
    }
    let metrics = Arc::new(Metrics::default());
    let config = Config {
        root: dir.path().to_owned(),
        ..Config::default()
    };
    let paths = Paths {
        console_log: console,
        ..Paths::default()
    };
    let sources = Sources {
        started: now(),
        sampler,
        metrics: metrics.clone(),
        guests: Some(Guests {
            registry: Arc::new(reg),
            paths,
        }),
        fleet: None,
        upstreams: Vec::new(),
    };
    let router = Router::from_config(&config, metrics)
        .unwrap()
        .with_status(Status::new(sources, &config));
    Lab {
        router,
        token,
        _dir: dir,
    }
}

#[tokio::test]
async fn the_page_shows_each_guest_as_xen_and_the_registry_say() {
    let lab = lab(true);
    let (st, page) = send(&lab.router, Method::GET, "/ui/", "").await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        page.contains("<tr id=\"guest-web1\" data-state=\"running\">"),
        "{page}"
    );
    assert!(page.contains("data-cpu=\"20.0%\""), "web1's CPU: {page}");
    assert!(page.contains("<svg class=\"spark\""), "no graph: {page}");
    assert!(page.contains("<tr id=\"guest-web3\" data-state=\"failed\">"));
    // Installing, with its domain not there: as `list` says, that install has failed.
    assert!(page.contains("<tr id=\"guest-web2\" data-state=\"failed\">"));
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(
        !page.contains("<script>alert"),
        "a message reached the page as HTML"
    );
    assert!(page.contains("href=\"/ui/guests/web1/console\""));
    assert!(page.contains("<dd>4.17.6</dd>") && page.contains("1 GiB free of 4 GiB"));
    for secret in [HASH, lab.token.as_str()] {
        assert!(!page.contains(secret), "the page holds a secret");
    }

    let (st, json) = send(&lab.router, Method::GET, "/api/status", "").await;
    assert_eq!(st, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let rows = v["guests"]["rows"].as_array().unwrap();
    let web1 = rows.iter().find(|r| r["name"] == "web1").unwrap();
    assert_eq!(web1["state"], "running");
    assert_eq!(web1["domid"], 5);
    assert_eq!(web1["history"]["cpu_percent"][0], 20.0);
    assert_eq!(v["host"]["dom0_memory_mib"], 1024);
    let digest = hex_sha256(&lab.token);
    for secret in [HASH, lab.token.as_str(), digest.as_str()] {
        assert!(!json.contains(secret), "the JSON holds a secret");
    }

    let (st, m) = send(&lab.router, Method::GET, "/metrics", "").await;
    assert_eq!(st, StatusCode::OK);
    for line in [
        "xenprov_guest_cpu_seconds_total{guest=\"web1\"} 12.000",
        "xenprov_guest_memory_bytes{guest=\"web1\"} 1073741824",
        "xenprov_guest_block_read_bytes_total{guest=\"web1\"} 4096",
        "xenprov_guest_state{guest=\"web1\",state=\"running\"} 1",
        "xenprov_guest_state{guest=\"web1\",state=\"stopped\"} 0",
        "xenprov_guest_state{guest=\"web3\",state=\"failed\"} 1",
        "xenprov_host_memory_free_bytes 1073741824",
        "# TYPE xenprov_guest_cpu_seconds_total counter",
        "xenprov_build_info{version=\"0.1.0\"} 1",
    ] {
        assert!(m.lines().any(|l| l == line), "missing {line:?} in\n{m}");
    }
    assert!(m.contains("xenprov_guest_start_time_seconds{guest=\"web1\"}"));
}

#[tokio::test]
async fn off_xen_the_page_says_so_and_shows_the_registry_s_states() {
    let lab = lab(false);
    let (_, page) = send(&lab.router, Method::GET, "/ui/", "").await;
    assert!(page.contains("No Xen here: not a dom0 (test)"), "{page}");
    assert!(page.contains("<tr id=\"guest-web1\" data-state=\"installed\">"));
    assert!(page.contains("<tr id=\"guest-web2\" data-state=\"installing\">"));
    let (_, m) = send(&lab.router, Method::GET, "/metrics", "").await;
    assert!(m.contains("xenprov_guest_state{guest=\"web2\",state=\"installing\"} 1"));
    assert!(!m.contains("xenprov_guest_cpu_seconds_total"));
}

#[tokio::test]
async fn routes_assets_and_console_tails() {
    let lab = lab(true);
    let (st, tail) = send(&lab.router, Method::GET, "/ui/guests/web1/console", "").await;
    assert_eq!(st, StatusCode::OK);
    assert!(tail.ends_with("web1 login: \n") && tail.starts_with("early boot line\n"));
    assert!(tail.len() <= 64 << 10, "{} bytes", tail.len());
    for path in [
        "/ui/guests/web2/console",
        "/ui/guests/..%2f..%2fetc%2fpasswd/console",
        "/ui/guests/../etc/console",
        "/ui/nothing",
        "/api/nothing",
    ] {
        let (st, _) = send(&lab.router, Method::GET, path, "").await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}");
    }
    let (st, _) = send(&lab.router, Method::POST, "/ui/", "").await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
    let (st, _) = send(&lab.router, Method::GET, "/ui", "").await;
    assert_eq!(st, StatusCode::PERMANENT_REDIRECT);
    let (st, js) = send(&lab.router, Method::GET, "/ui/app.js", "").await;
    assert_eq!(st, StatusCode::OK);
    assert!(js.contains("replaceWith"));
    let (_, page) = send(&lab.router, Method::GET, "/ui/", "").await;
    for asset in ["/ui/app.js?v=", "/ui/style.css?v=", "/ui/favicon.svg?v="] {
        assert!(page.contains(asset), "{asset} not linked");
    }
}

fn hex_sha256(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

#[tokio::test]
async fn status_page_off_serves_none_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        root: dir.path().to_owned(),
        status_page: false,
        ..Config::default()
    };
    let router = Router::from_config(&config, Arc::new(Metrics::default())).unwrap();
    for path in ["/ui/", "/api/status", "/ui/app.js"] {
        let (st, _) = send(&router, Method::GET, path, "").await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}");
    }
    let (_, m) = send(&router, Method::GET, "/metrics", "").await;
    assert!(m.contains("xenprov_repo_requests_total") && !m.contains("xenprov_build_info"));
}
