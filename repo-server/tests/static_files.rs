//! Handler-level tests: requests go straight to the router, no sockets, against `tests/fixtures/public`
//! (plus temporary trees for what git cannot hold: large files, files that change).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{self, HeaderMap};
use hyper::{Method, Request, StatusCode};
use xenprov_repo::http::metrics::Metrics;
use xenprov_repo::server::router::Router;
use xenprov_repo::settings::config::Config;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/public")
}

fn router_for(root: &Path) -> Router {
    let config = Config {
        root: root.to_owned(),
        ..Config::default()
    };
    Router::from_config(&config, Arc::new(Metrics::default())).unwrap()
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(&name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_else(|| panic!("no {name} header"))
    }
}

async fn send(
    router: &Router,
    method: Method,
    path: &str,
    headers: &[(header::HeaderName, &str)],
) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(k, *v);
    }
    let resp = router
        .handle(req.body(Empty::<Bytes>::new()).unwrap())
        .await;
    let (parts, body) = resp.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

async fn get(router: &Router, path: &str, headers: &[(header::HeaderName, &str)]) -> Reply {
    send(router, Method::GET, path, headers).await
}

fn mtime_http(path: &Path) -> String {
    httpdate::fmt_http_date(std::fs::metadata(path).unwrap().modified().unwrap())
}

#[tokio::test]
async fn get_and_head_agree() {
    let router = router_for(&fixtures());
    let got = get(&router, "/hello.txt", &[]).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, "Hello, xenprov!\n");
    assert_eq!(got.header(header::CONTENT_LENGTH), "16");
    assert_eq!(
        got.header(header::CONTENT_TYPE),
        "text/plain; charset=utf-8"
    );
    assert_eq!(got.header(header::ACCEPT_RANGES), "bytes");
    assert_eq!(
        got.header(header::LAST_MODIFIED),
        mtime_http(&fixtures().join("hello.txt"))
    );
    assert!(got.header(header::ETAG).starts_with('"'));
    let head = send(&router, Method::HEAD, "/hello.txt", &[]).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    for name in [
        header::CONTENT_LENGTH,
        header::CONTENT_TYPE,
        header::ETAG,
        header::LAST_MODIFIED,
    ] {
        assert_eq!(head.header(name.clone()), got.header(name));
    }
    let empty = get(&router, "/empty.txt", &[(header::RANGE, "bytes=0-")]).await;
    assert_eq!(
        (empty.status, empty.header(header::CONTENT_LENGTH)),
        (StatusCode::OK, "0")
    );
}

#[tokio::test]
async fn conditional_requests() {
    let router = router_for(&fixtures());
    let first = get(&router, "/hello.txt", &[]).await;
    let etag = first.header(header::ETAG).to_owned();
    let date = first.header(header::LAST_MODIFIED).to_owned();
    let again = get(&router, "/hello.txt", &[(header::IF_NONE_MATCH, &etag)]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    assert_eq!(again.header(header::ETAG), etag);
    let since = get(&router, "/hello.txt", &[(header::IF_MODIFIED_SINCE, &date)]).await;
    assert_eq!(since.status, StatusCode::NOT_MODIFIED);
    let old = httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(1));
    let stale = get(&router, "/hello.txt", &[(header::IF_MODIFIED_SINCE, &old)]).await;
    assert_eq!(stale.status, StatusCode::OK);
    let other = get(
        &router,
        "/hello.txt",
        &[(header::IF_NONE_MATCH, "\"other\"")],
    )
    .await;
    assert_eq!(other.status, StatusCode::OK);
    let failed = get(&router, "/hello.txt", &[(header::IF_MATCH, "\"other\"")]).await;
    assert_eq!(failed.status, StatusCode::PRECONDITION_FAILED);
}

#[tokio::test]
async fn single_ranges_and_if_range() {
    let router = router_for(&fixtures());
    let date = mtime_http(&fixtures().join("hello.txt"));
    let cases = [
        ("bytes=0-4", "Hello", "bytes 0-4/16"),
        ("bytes=7-", "xenprov!\n", "bytes 7-15/16"),
        ("bytes=-9", "xenprov!\n", "bytes 7-15/16"),
        ("bytes=14-100", "!\n", "bytes 14-15/16"),
    ];
    for (range, body, content_range) in cases {
        let got = get(&router, "/hello.txt", &[(header::RANGE, range)]).await;
        assert_eq!(got.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(got.body, body, "{range}");
        assert_eq!(got.header(header::CONTENT_RANGE), content_range);
        assert_eq!(got.header(header::CONTENT_LENGTH), body.len().to_string());
    }
    // apt resumes with If-Range: <Last-Modified>
    let resumed = get(
        &router,
        "/hello.txt",
        &[(header::RANGE, "bytes=7-"), (header::IF_RANGE, &date)],
    )
    .await;
    assert_eq!(resumed.status, StatusCode::PARTIAL_CONTENT);
    let changed = get(
        &router,
        "/hello.txt",
        &[
            (header::RANGE, "bytes=7-"),
            (header::IF_RANGE, "Mon, 01 Jan 2001 00:00:00 GMT"),
        ],
    )
    .await;
    assert_eq!((changed.status, changed.body.len()), (StatusCode::OK, 16));
    let etag = get(&router, "/hello.txt", &[])
        .await
        .header(header::ETAG)
        .to_owned();
    let by_tag = get(
        &router,
        "/hello.txt",
        &[(header::RANGE, "bytes=0-0"), (header::IF_RANGE, &etag)],
    )
    .await;
    assert_eq!(
        (by_tag.status, &by_tag.body[..]),
        (StatusCode::PARTIAL_CONTENT, &b"H"[..])
    );
    // unsatisfiable: 416 with the length, as apt expects for a complete file
    let past = get(&router, "/hello.txt", &[(header::RANGE, "bytes=16-")]).await;
    assert_eq!(past.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(past.header(header::CONTENT_RANGE), "bytes */16");
    // syntactically invalid: ignored
    let bad = get(&router, "/hello.txt", &[(header::RANGE, "bytes=5-1")]).await;
    assert_eq!(bad.status, StatusCode::OK);
}

/// Splits a multipart/byteranges body into (Content-Range, data) pairs.
fn multipart(reply: &Reply) -> Vec<(String, Vec<u8>)> {
    let ct = reply.header(header::CONTENT_TYPE);
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .expect(ct);
    let delimiter = format!("\r\n--{boundary}");
    let body = &reply.body[..];
    let mut parts = Vec::new();
    let mut rest = body;
    loop {
        let at = find(rest, delimiter.as_bytes()).expect("delimiter");
        rest = &rest[at + delimiter.len()..];
        if rest.starts_with(b"--\r\n") {
            assert_eq!(rest.len(), 4, "nothing after the close delimiter");
            return parts;
        }
        let head_end = find(rest, b"\r\n\r\n").unwrap();
        let head = std::str::from_utf8(&rest[2..head_end]).unwrap();
        let range = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: "))
            .unwrap()
            .to_owned();
        let (start, end) = range["bytes ".len()..range.find('/').unwrap()]
            .split_once('-')
            .unwrap();
        let len = end.parse::<usize>().unwrap() - start.parse::<usize>().unwrap() + 1;
        let data = rest[head_end + 4..head_end + 4 + len].to_vec();
        rest = &rest[head_end + 4 + len..];
        parts.push((range, data));
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn multipart_ranges_from_memory_and_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    // 1 MiB: above the cache limit, so it is read in chunks; 1 KiB is served from memory.
    let big: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.path().join("big.rpm"), &big).unwrap();
    std::fs::write(dir.path().join("small.rpm"), &big[..1024]).unwrap();
    let router = router_for(dir.path());
    for (name, len) in [("/big.rpm", big.len()), ("/small.rpm", 1024)] {
        let got = get(&router, name, &[(header::RANGE, "bytes=0-9, 500-599,-16")]).await;
        assert_eq!(got.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            got.header(header::CONTENT_LENGTH),
            got.body.len().to_string()
        );
        let parts = multipart(&got);
        let want = [(0, 9), (500, 599), (len - 16, len - 1)];
        assert_eq!(parts.len(), 3);
        for ((range, data), (s, e)) in parts.iter().zip(want) {
            assert_eq!(range, &format!("bytes {s}-{e}/{len}"));
            assert_eq!(data[..], big[s..=e]);
        }
        assert!(find(&got.body, b"\r\nContent-Type: application/x-rpm\r\n").is_some());
    }
    // zchunk asks for up to 256 ranges in one request; more get the whole file
    let many: Vec<String> = (0..256)
        .map(|i| format!("{}-{}", i * 4000, i * 4000 + 99))
        .collect();
    let got = get(
        &router,
        "/big.rpm",
        &[(header::RANGE, &format!("bytes={}", many.join(",")))],
    )
    .await;
    let parts = multipart(&got);
    assert_eq!(parts.len(), 256);
    for (i, (_, data)) in parts.iter().enumerate() {
        assert_eq!(data[..], big[i * 4000..i * 4000 + 100]);
    }
    let too_many: Vec<String> = (0..257).map(|i| format!("{i}-{i}")).collect();
    let got = get(
        &router,
        "/big.rpm",
        &[(header::RANGE, &format!("bytes={}", too_many.join(",")))],
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body[..], big[..]);
}

#[tokio::test]
async fn changed_files_are_never_stale() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("repomd.xml");
    std::fs::write(&file, "one").unwrap();
    let router = router_for(dir.path());
    assert_eq!(get(&router, "/repomd.xml", &[]).await.body, "one");
    assert_eq!(get(&router, "/repomd.xml", &[]).await.body, "one");
    // same size, new content: the modification time changes the cache key
    std::fs::write(&file, "two").unwrap();
    let later = SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(later)
        .unwrap();
    assert_eq!(get(&router, "/repomd.xml", &[]).await.body, "two");
    // replaced by rename (how mirrors publish): a new inode
    std::fs::write(dir.path().join("new"), "three").unwrap();
    std::fs::rename(dir.path().join("new"), &file).unwrap();
    assert_eq!(get(&router, "/repomd.xml", &[]).await.body, "three");
}

#[tokio::test]
async fn content_types_and_caching() {
    let router = router_for(&fixtures());
    let primary =
        "/repodata/3f1c9d6b4c7fb0e7a8e1a5b3c2d4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5-primary.xml.gz";
    let by_hash = "/dists/stable/main/binary-amd64/by-hash/SHA256/465f570eb3cea58ad8ab1b02aea67ef8bd2788d0d2892482483f7032d8584d49";
    let cases = [
        ("/repodata/repomd.xml", "application/xml", Some("no-cache")),
        (
            primary,
            "application/gzip",
            Some("public, max-age=31536000, immutable"),
        ),
        (
            "/dists/stable/InRelease",
            "text/plain; charset=utf-8",
            Some("no-cache"),
        ),
        (
            "/dists/stable/main/binary-amd64/Packages",
            "text/plain; charset=utf-8",
            Some("no-cache"),
        ),
        (
            by_hash,
            "application/octet-stream",
            Some("public, max-age=31536000, immutable"),
        ),
        (
            "/pool/main/h/hello/hello_1.0_all.deb",
            "application/vnd.debian.binary-package",
            None,
        ),
        (
            "/Packages/hello-1.0-1.noarch.rpm",
            "application/x-rpm",
            None,
        ),
        ("/.treeinfo", "text/plain; charset=utf-8", Some("no-cache")),
    ];
    for (path, media_type, cache_control) in cases {
        let got = get(&router, path, &[]).await;
        assert_eq!(got.status, StatusCode::OK, "{path}");
        assert_eq!(got.header(header::CONTENT_TYPE), media_type, "{path}");
        let cc = got
            .headers
            .get(header::CACHE_CONTROL)
            .map(|v| v.to_str().unwrap());
        assert_eq!(cc, cache_control, "{path}");
    }
}

#[tokio::test]
async fn install_tree_dotfiles_only() {
    let router = router_for(&fixtures());
    for path in ["/.treeinfo", "/.discinfo", "/.disk/info", "/.disk/"] {
        assert_eq!(
            get(&router, path, &[]).await.status,
            StatusCode::OK,
            "{path}"
        );
    }
    for path in [
        "/.private/secret",
        "/.htpasswd",
        "/.private/",
        "/empty-dir/.keep",
    ] {
        assert_eq!(
            get(&router, path, &[]).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
}

#[tokio::test]
async fn listings() {
    let router = router_for(&fixtures());
    let redirect = get(&router, "/dir%20with%20space?x=1", &[]).await;
    assert_eq!(redirect.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        redirect.header(header::LOCATION),
        "/dir%20with%20space/?x=1"
    );
    // `//pool` must not send a browser to the host `pool` (an open redirect).
    for (path, location) in [
        ("//pool", "/pool/"),
        ("///pool//main?x=1", "/pool/main/?x=1"),
        ("/.//pool", "/./pool/"),
    ] {
        let redirect = get(&router, path, &[]).await;
        assert_eq!(redirect.status, StatusCode::MOVED_PERMANENTLY, "{path}");
        assert_eq!(redirect.header(header::LOCATION), location, "{path}");
    }

    let html = get(&router, "/", &[]).await;
    assert_eq!(html.status, StatusCode::OK);
    assert_eq!(
        html.header(header::CONTENT_TYPE),
        "text/html; charset=utf-8"
    );
    let page = std::str::from_utf8(&html.body).unwrap();
    assert!(page.contains("<a href=\"dir%20with%20space/\">dir with space/</a>"));
    assert!(page.contains("<a href=\".treeinfo\">.treeinfo</a>"));
    assert!(page.contains("<a href=\"hello.txt\">hello.txt</a></td><td>16</td>"));
    assert!(
        page.contains("link-to-hello"),
        "symlinks inside the root are listed"
    );
    for absent in [".private", ".htpasswd", "escape", "link-to-private"] {
        assert!(!page.contains(absent), "{absent} listed");
    }
    let dirs_end = page.find("empty-dir/").unwrap();
    assert!(
        dirs_end < page.find("hello.txt").unwrap(),
        "directories come first"
    );

    let json = get(
        &router,
        "/dir%20with%20space/",
        &[(header::ACCEPT, "application/json")],
    )
    .await;
    assert_eq!(json.header(header::CONTENT_TYPE), "application/json");
    let v: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
    assert_eq!(v[0]["name"], "ünïcode file.txt");
    assert_eq!(v[0]["type"], "file");
    assert_eq!(v[0]["size"], 8);
    let inner = get(&router, "/dir%20with%20space/", &[]).await;
    let inner = std::str::from_utf8(&inner.body).unwrap().to_owned();
    assert!(inner.contains("href=\"%C3%BCn%C3%AFcode%20file.txt\""));
    let followed = get(
        &router,
        "/dir%20with%20space/%C3%BCn%C3%AFcode%20file.txt",
        &[],
    )
    .await;
    assert_eq!(followed.body, "unicode\n");
}

#[tokio::test]
async fn hostile_paths_never_leave_the_root() {
    let router = router_for(&fixtures());
    let outside = std::fs::read(fixtures().join("escape")).unwrap();
    let cases = [
        ("/../Cargo.toml", StatusCode::BAD_REQUEST),
        ("/%2e%2e/%2e%2e/%2e%2e/Cargo.toml", StatusCode::BAD_REQUEST),
        ("/dists/..%2f..%2f..%2fCargo.toml", StatusCode::BAD_REQUEST),
        ("/hello.txt%00.rpm", StatusCode::BAD_REQUEST),
        ("/..%5c..%5cCargo.toml", StatusCode::BAD_REQUEST),
        ("/%", StatusCode::BAD_REQUEST),
        ("/escape", StatusCode::NOT_FOUND),
        ("/escape-deep", StatusCode::NOT_FOUND),
        ("/%252e%252e/Cargo.toml", StatusCode::NOT_FOUND),
        ("/.private/secret", StatusCode::NOT_FOUND),
        ("/link-to-private", StatusCode::NOT_FOUND),
    ];
    for (path, status) in cases {
        let got = get(&router, path, &[]).await;
        assert_eq!(got.status, status, "{path}");
        assert!(
            !got.body.windows(9).any(|w| w == b"[package]"),
            "{path} leaked"
        );
        assert_ne!(got.body[..], outside[..]);
    }
    assert_eq!(
        get(&router, "/link-to-hello", &[]).await.body,
        "Hello, xenprov!\n"
    );
}

#[tokio::test]
async fn methods_health_and_metrics() {
    let router = router_for(&fixtures());
    let post = send(&router, Method::POST, "/hello.txt", &[]).await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.header(header::ALLOW), "GET, HEAD");
    assert_eq!(get(&router, "/healthz", &[]).await.body, "ok\n");
    get(&router, "/nope", &[]).await;
    let metrics = get(&router, "/metrics", &[]).await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = std::str::from_utf8(&metrics.body).unwrap();
    assert!(text.contains("# TYPE xenprov_repo_requests_total counter"));
    assert!(text.contains("# TYPE xenprov_repo_connections_open gauge"));

    let gone = tempfile::tempdir().unwrap();
    let router = router_for(gone.path());
    drop(gone);
    // the root is looked up again every second
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        get(&router, "/healthz", &[]).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}
