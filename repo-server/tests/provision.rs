//! The guest install routes in process: a registry with one installing guest, and requests
//! straight to the router.

mod common;
use common::send;

use std::sync::Arc;

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Frame;
use hyper::{Method, Request, StatusCode, header};
use xenprov_core::guest::{Guest, Host};
use xenprov_core::guest_render::Source;
use xenprov_core::render::Templates;
use xenprov_registry::{Registry, State};
use xenprov_repo::http::metrics::Metrics;
use xenprov_repo::provision::{BODY_DEADLINE, Provision};
use xenprov_repo::server::router::Router;
use xenprov_repo::settings::config::Config;

const HASH: &str = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";

fn setup(dir: &std::path::Path) -> (Router, String) {
    let reg = Registry::open(&dir.join("guests"), Templates::builtin()).unwrap();
    let src = format!(
        "name = \"web1\"\nos = \"debian12\"\ntype = \"pvh\"\nmemory = \"1G\"\ndisk = \"8G\"\nroot-password-hash = '{HASH}'\n"
    );
    let host = Host {
        vg: "dsk".into(),
        ..Host::default()
    };
    let g = Guest::parse(&src, reg.catalog(), &host).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    reg.create(&g, now).unwrap();
    let source = Source {
        repo_url: "http://10.0.2.15:8080".into(),
        tree_url: "http://10.0.2.15:8080/debian".into(),
        kernel: "/k".into(),
        ramdisk: "/i".into(),
    };
    let token = reg.arm("web1", source, 3600, now).unwrap();
    let config = Config {
        root: dir.to_owned(),
        ..Config::default()
    };
    let router = Router::from_config(&config, Arc::new(Metrics::default()))
        .unwrap()
        .with_provision(Provision::new(
            Registry::open(&dir.join("guests"), Templates::builtin()).unwrap(),
        ));
    (router, token)
}

#[tokio::test]
async fn preseed_only_for_the_token_and_events_drive_the_state() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("preseed")).unwrap();
    let (router, token) = setup(dir.path());
    let (st, body) = send(&router, Method::GET, &format!("/preseed/web1/{token}"), "").await;
    assert_eq!(st, StatusCode::OK);
    assert!(body.contains(HASH) && body.contains(&format!("/events/web1/{token}")));
    for path in [
        "/preseed/web1/0000",
        "/ks/web1/x",
        "/preseed/web2/x",
        "/preseed/web1",
        "/preseed/../web1/x",
    ] {
        let p = path.replace('x', &token);
        let (st, body) = send(&router, Method::GET, &p, "").await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{p}");
        assert!(!body.contains(HASH));
    }
    let ev = format!("/events/web1/{token}");
    assert_eq!(
        send(&router, Method::GET, &ev, "").await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        send(&router, Method::POST, &format!("/preseed/web1/{token}"), "")
            .await
            .0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        send(&router, Method::POST, &ev, "rebooting").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        send(&router, Method::POST, "/events/web1/0000", "done")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&router, Method::POST, &ev, "started").await,
        (StatusCode::OK, "installing\n".into())
    );
    let big = format!("failed\n{}", "x".repeat(200 << 10));
    assert_eq!(
        send(&router, Method::POST, &ev, &big).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(
        send(&router, Method::POST, &ev, "done").await,
        (StatusCode::OK, "installed\n".into())
    );
    assert_eq!(
        send(&router, Method::GET, &format!("/preseed/web1/{token}"), "")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let reg = Registry::open(&dir.path().join("guests"), Templates::builtin()).unwrap();
    assert_eq!(reg.status("web1", 0).unwrap().state, State::Installed);
}

/// A body that sends its first bytes and then nothing more, as a client that stalls mid-body.
struct Stalled(Option<Bytes>);

impl hyper::body::Body for Stalled {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.0.take() {
            Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
            None => Poll::Pending,
        }
    }
}

#[tokio::test]
async fn a_stalled_event_body_is_cut_off_and_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let (router, token) = setup(dir.path());
    let ev = format!("/events/web1/{token}");
    let stalled = Request::post(&ev).body(Stalled(Some(Bytes::from_static(b"st"))));
    let started = std::time::Instant::now();
    let slow = router.handle(stalled.unwrap());
    let other = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        send(&router, Method::POST, &ev, "started").await
    };
    let (slow, other) =
        tokio::time::timeout(BODY_DEADLINE * 2, async { tokio::join!(slow, other) })
            .await
            .expect("a stalled body held its handler past the deadline");
    assert_eq!(other, (StatusCode::OK, "installing\n".into()));
    assert!(started.elapsed() >= BODY_DEADLINE);
    assert_eq!(slow.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(slow.headers()[header::CONNECTION], "close");
}

/// A client with the token that repeats `started` (a loop, a replayed request) neither grows the
/// guest's status.json nor adds events: one `started` is kept per install.
#[tokio::test]
async fn repeated_started_events_are_kept_once() {
    let dir = tempfile::tempdir().unwrap();
    let (router, token) = setup(dir.path());
    let ev = format!("/events/web1/{token}");
    let status_json = dir.path().join("guests/web1/status.json");
    let answer = send(&router, Method::POST, &ev, "started").await;
    assert_eq!(answer, (StatusCode::OK, "installing\n".into()));
    let size = std::fs::metadata(&status_json).unwrap().len();
    for _ in 0..50 {
        assert_eq!(send(&router, Method::POST, &ev, "started\n").await, answer);
    }
    assert_eq!(std::fs::metadata(&status_json).unwrap().len(), size);
    let reg = Registry::open(&dir.path().join("guests"), Templates::builtin()).unwrap();
    assert_eq!(reg.status("web1", 0).unwrap().events.len(), 1);
    assert_eq!(
        send(&router, Method::POST, &ev, "done").await,
        (StatusCode::OK, "installed\n".into())
    );
}

/// An unknown guest and a known one with a wrong token answer alike (the token check is constant
/// time and does the same compare for both; see `Registry::armed`).
#[tokio::test]
async fn unknown_guests_and_wrong_tokens_answer_alike() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("preseed")).unwrap();
    let (router, token) = setup(dir.path());
    let wrong = "f".repeat(token.len());
    for (method, route, body) in [
        (Method::GET, "preseed", ""),
        (Method::GET, "ks", ""),
        (Method::HEAD, "preseed", ""),
        (Method::POST, "events", "started"),
    ] {
        let known = send(
            &router,
            method.clone(),
            &format!("/{route}/web1/{wrong}"),
            body,
        )
        .await;
        let unknown = send(
            &router,
            method.clone(),
            &format!("/{route}/web9/{token}"),
            body,
        )
        .await;
        assert_eq!(known.0, StatusCode::NOT_FOUND, "{method} {route}");
        assert_eq!(known, unknown, "{method} {route}");
    }
}
