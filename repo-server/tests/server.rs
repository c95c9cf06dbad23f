//! Over real loopback sockets: pipelining with sendfile bodies, limits, idle connections, shutdown.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use xenprov_repo::server::Server;
use xenprov_repo::settings::config::Config;

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn start(root: &Path, tweak: impl FnOnce(&mut Config)) -> Running {
        let mut config = Config {
            root: root.to_owned(),
            listen: "127.0.0.1:0".parse().unwrap(),
            access_log: false,
            ..Config::default()
        };
        tweak(&mut config);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let server = Server::bind(config).unwrap();
                addr_tx.send(server.local_addr().unwrap()).unwrap();
                server
                    .run(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx.recv().unwrap();
        Running {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Reads one response; `head_request` responses have no body whatever their Content-Length says.
fn read_reply(s: &mut TcpStream, head_request: bool) -> Reply {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).expect("response head");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0; if head_request { 0 } else { len }];
    s.read_exact(&mut body).expect("response body");
    Reply { status, head, body }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 253) as u8).collect()
}

#[test]
fn pipelined_requests_with_sendfile_bodies_arrive_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let big = pattern(3 << 20);
    let other = pattern(1 << 20 | 12345);
    std::fs::write(dir.path().join("big.iso"), &big).unwrap();
    std::fs::write(dir.path().join("other.img"), &other[..]).unwrap();
    std::fs::write(dir.path().join("small.txt"), b"small").unwrap();
    for sendfile in [true, false] {
        let server = Running::start(dir.path(), |c| c.sendfile = sendfile);
        let mut s = server.connect();
        let requests = "GET /big.iso HTTP/1.1\r\nHost: t\r\n\r\n\
             HEAD /other.img HTTP/1.1\r\nHost: t\r\n\r\n\
             GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n\
             GET /other.img HTTP/1.1\r\nHost: t\r\nRange: bytes=100-200099\r\n\r\n\
             GET /big.iso HTTP/1.1\r\nHost: t\r\nRange: bytes=0-99,2000000-2199999,-70000\r\n\r\n\
             GET /other.img HTTP/1.1\r\nHost: t\r\n\r\n";
        s.write_all(requests.as_bytes()).unwrap();
        let r = read_reply(&mut s, false);
        assert_eq!(
            (r.status, r.body == big),
            (200, true),
            "sendfile={sendfile}"
        );
        let r = read_reply(&mut s, true);
        assert_eq!(r.status, 200);
        assert!(r.head.contains(&format!("content-length: {}", other.len())));
        let r = read_reply(&mut s, false);
        assert_eq!((r.status, &r.body[..]), (200, &b"small"[..]));
        let r = read_reply(&mut s, false);
        assert_eq!(r.status, 206);
        assert!(
            r.body == other[100..200100],
            "single range, sendfile={sendfile}"
        );
        let r = read_reply(&mut s, false);
        assert_eq!(r.status, 206);
        for part in [
            &big[..100],
            &big[2000000..2200000],
            &big[big.len() - 70000..],
        ] {
            assert!(
                r.body.windows(part.len()).any(|w| w == part),
                "multipart part missing"
            );
        }
        let r = read_reply(&mut s, false);
        assert!(r.status == 200 && r.body == other, "sendfile={sendfile}");
    }
}

#[test]
fn requests_need_exactly_one_host() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("small.txt"), b"small").unwrap();
    let server = Running::start(dir.path(), |_| {});
    for (request, status) in [
        ("GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n", 200),
        ("GET /small.txt HTTP/1.1\r\n\r\n", 400),
        ("GET /small.txt HTTP/1.1\r\nHost: t\r\nHost: u\r\n\r\n", 400),
        ("GET /small.txt HTTP/1.1\r\nHost: t\r\nHost: t\r\n\r\n", 400),
        ("HEAD /small.txt HTTP/1.1\r\n\r\n", 400),
        ("GET /small.txt HTTP/1.0\r\n\r\n", 200),
        ("GET /small.txt HTTP/1.0\r\nHost: t\r\nHost: u\r\n\r\n", 400),
    ] {
        let mut s = server.connect();
        s.write_all(request.as_bytes()).unwrap();
        let reply = read_reply(&mut s, request.starts_with("HEAD"));
        assert_eq!(reply.status, status, "{request:?}");
        if status == 200 {
            assert_eq!(reply.body, b"small");
        }
    }
    // HTTP/2: `:authority` is the host; a Host beside it must agree.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let statuses = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let (mut client, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(conn);
        let mut statuses = Vec::new();
        for host in [None, Some("T"), Some("elsewhere")] {
            let mut req = hyper::Request::get("http://t/small.txt");
            if let Some(host) = host {
                req = req.header(hyper::header::HOST, host);
            }
            client = client.ready().await.unwrap();
            let (resp, _) = client.send_request(req.body(()).unwrap(), true).unwrap();
            statuses.push(resp.await.unwrap().status().as_u16());
        }
        statuses
    });
    assert_eq!(statuses, [200, 200, 400]);
}

#[test]
fn oversized_headers_get_431() {
    let dir = tempfile::tempdir().unwrap();
    let server = Running::start(dir.path(), |c| c.max_header_bytes = 8192);
    let mut s = server.connect();
    let big = "a".repeat(20_000);
    let req = format!("GET / HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\n\r\n");
    let _ = s.write_all(req.as_bytes());
    assert_eq!(read_reply(&mut s, false).status, 431);
}

#[test]
fn silent_and_stalled_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"x").unwrap();
    let server = Running::start(dir.path(), |c| {
        c.idle_timeout = Duration::from_secs(1);
        c.header_read_timeout = Duration::from_secs(1);
    });
    // connects and never sends
    let mut silent = server.connect();
    // sends half a request line
    let mut partial = server.connect();
    partial.write_all(b"GET /f HT").unwrap();
    // keep-alive connection after one request
    let mut kept = server.connect();
    kept.write_all(b"GET /f HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_reply(&mut kept, false).status, 200);
    let started = Instant::now();
    for s in [&mut silent, &mut partial, &mut kept] {
        let mut buf = Vec::new();
        // Only the end of the stream (or a timeout answer) may come; then the server closes it.
        let _ = s.read_to_end(&mut buf);
        assert!(
            buf.is_empty() || buf.starts_with(b"HTTP/1.1 408"),
            "{buf:?}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed after {:?}",
        started.elapsed()
    );
    // and the server still answers
    let mut fresh = server.connect();
    fresh
        .write_all(b"GET /f HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_reply(&mut fresh, false).status, 200);
}

#[test]
fn connection_cap_makes_room_by_closing_idle_connections() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"x").unwrap();
    let server = Running::start(dir.path(), |c| c.max_connections = 8);
    let mut idle: Vec<TcpStream> = (0..8).map(|_| server.connect()).collect();
    std::thread::sleep(Duration::from_millis(1500));
    let mut s = server.connect();
    s.write_all(b"GET /f HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_reply(&mut s, false).status, 200);
    let closed = idle
        .iter_mut()
        .filter_map(|c| {
            c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            c.read(&mut [0u8; 16]).ok().filter(|&n| n == 0)
        })
        .count();
    assert!(closed >= 1, "no idle connection was closed");
}

#[test]
fn shutdown_lets_a_response_finish() {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(64 << 20);
    std::fs::write(dir.path().join("large.img"), &data).unwrap();
    let mut server = Running::start(dir.path(), |_| {});
    let mut s = server.connect();
    s.write_all(b"GET /large.img HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    // read a little so the response is under way, then stop the server while the rest is pending
    let mut first = [0u8; 4096];
    s.read_exact(&mut first).unwrap();
    let stopper = std::thread::spawn(move || server.stop());
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    stopper.join().unwrap();
    let mut all = first.to_vec();
    all.extend(rest);
    let body_at = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(all[body_at..] == data[..], "response cut short by shutdown");
}

#[test]
fn slow_event_bodies_without_a_token_hold_no_connection_slot() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"x").unwrap();
    // The install routes come from the guest registry that the config's `guests` settings name.
    let registry = tempfile::tempdir().unwrap();
    let guests = registry.path().join("guests.toml");
    let settings = format!(
        "[paths]\nregistry = {:?}\n",
        registry.path().display().to_string()
    );
    std::fs::write(&guests, settings).unwrap();
    let server = Running::start(dir.path(), |c| {
        c.max_connections = 4;
        c.guests = Some(guests);
    });
    // Each promises 1000 bytes and sends two: answered 404 at once, as no guest `a` has token `b`.
    let mut slow: Vec<TcpStream> = (0..4).map(|_| server.connect()).collect();
    for s in &mut slow {
        s.write_all(b"POST /events/a/b HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\nst")
            .unwrap();
    }
    for s in &mut slow {
        assert_eq!(read_reply(s, false).status, 404);
    }
    let started = Instant::now();
    let mut s = server.connect();
    s.write_all(b"GET /f HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_reply(&mut s, false).status, 200);
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// The metric `xenprov_repo_NAME` of the server, over its own connection.
fn metric(server: &Running, name: &str) -> u64 {
    metric_in(&metrics_page(server), name)
}

fn metrics_page(server: &Running) -> String {
    let mut s = server.connect();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    String::from_utf8(read_reply(&mut s, false).body).unwrap()
}

fn metric_in(text: &str, name: &str) -> u64 {
    let prefix = format!("xenprov_repo_{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} metric"))
        .parse()
        .unwrap()
}

/// A client that reads the first few KiB of a 64 MiB file, stops reading, and hangs up: the bytes
/// logged (the same number as `response_bytes_total`) must be the body bytes the kernel took, as
/// nginx's `$body_bytes_sent`, not what hyper was handed (a 16 MiB sendfile placeholder, or the
/// chunks in hyper's write buffer). On loopback the kernel's side is known exactly once the server
/// is stuck: what the client read, what waits in its receive queue, and what waits in the server's
/// send queue (`/proc/net/tcp`'s `tx_queue`).
#[test]
fn an_aborted_download_counts_the_bytes_the_kernel_took() {
    const SIZE: usize = 64 << 20;
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::File::create(dir.path().join("big.img")).unwrap();
    file.set_len(SIZE as u64).unwrap();
    for sendfile in [true, false] {
        let server = Running::start(dir.path(), |c| c.sendfile = sendfile);
        let mut s = server.connect();
        s.write_all(b"GET /big.img HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut start = [0u8; 8 << 10];
        s.read_exact(&mut start).unwrap();
        let head = start.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        // Wait until the server can write no more: both queues stop growing.
        let (mut queued, mut same) = (0, 0);
        while same < 5 {
            std::thread::sleep(Duration::from_millis(100));
            let now = rustix::io::ioctl_fionread(&s).unwrap()
                + server_send_queue(server.addr, s.local_addr().unwrap());
            same = if now == queued { same + 1 } else { 0 };
            queued = now;
        }
        let took = (start.len() - head) as u64 + queued;
        drop(s);
        // The record is complete once the server has seen the connection go: only /metrics is left.
        // Each page read before the last one counts in the last one's total.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut pages = 0;
        let page = loop {
            let page = metrics_page(&server);
            if metric_in(&page, "requests_in_flight") == 1 {
                break page;
            }
            pages += page.len() as u64;
            assert!(Instant::now() < deadline, "the aborted request never ended");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(
            metric_in(&page, "response_bytes_total") - pages,
            took,
            "sendfile {sendfile}: bytes counted, against the body bytes the kernel took"
        );
    }
}

/// The bytes waiting in the send queue of the server's end of a loopback connection.
fn server_send_queue(server: SocketAddr, client: SocketAddr) -> u64 {
    let hex = |a: SocketAddr| format!("{:04X}", a.port());
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let port = |field: &str| field.rsplit(':').next().unwrap().to_owned();
            (port(f[1]) == hex(server) && port(f[2]) == hex(client)).then(|| {
                let tx = f[4].split(':').next().unwrap();
                u64::from_str_radix(tx, 16).unwrap()
            })
        })
        .expect("the server's end of the connection is in /proc/net/tcp")
}

#[test]
fn stalled_http2_streams_pin_no_more_than_the_read_budget() {
    const CONNECTIONS: usize = 6;
    const STREAMS: usize = 128;
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(4 << 20);
    std::fs::write(dir.path().join("large.img"), &data).unwrap();
    let server = Running::start(dir.path(), |_| {});
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Clients that open no window: every response waits on flow control, for ever.
    let h2_client = |window: u32| async move {
        let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let (client, conn) = h2::client::Builder::new()
            .initial_window_size(window)
            .handshake::<_, bytes::Bytes>(tcp)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
    };
    let get = || hyper::Request::get("http://t/large.img").body(()).unwrap();
    let (mut stalled, mut clients) = (Vec::new(), Vec::new());
    rt.block_on(async {
        for _ in 0..CONNECTIONS {
            let mut client = h2_client(0).await;
            for _ in 0..STREAMS {
                client = client.ready().await.unwrap();
                stalled.push(client.send_request(get(), true).unwrap().0);
            }
            clients.push(client);
        }
    });
    std::thread::sleep(Duration::from_secs(2));
    let pinned = metric(&server, "read_buffer_bytes");
    assert!(
        pinned <= xenprov_repo::http::body::READ_MEMORY as u64,
        "{pinned} bytes held by {} stalled streams",
        CONNECTIONS * STREAMS
    );
    // and a client that reads still gets the whole file
    let got = rt.block_on(async {
        let mut client = h2_client(1 << 20).await.ready().await.unwrap();
        let resp = client.send_request(get(), true).unwrap().0.await.unwrap();
        let mut body = resp.into_body();
        let mut got = Vec::new();
        while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), body.data())
            .await
            .expect("download stalled")
        {
            let chunk = chunk.unwrap();
            body.flow_control().release_capacity(chunk.len()).unwrap();
            got.extend_from_slice(&chunk);
        }
        got
    });
    assert!(got == data, "download cut short");
}
