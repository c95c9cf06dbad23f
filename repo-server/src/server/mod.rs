//! Listening, connections and their limits, graceful shutdown.
//!
//! The server runs one event loop per CPU, each on its own thread, as nginx runs one worker process per
//! CPU: a connection stays on one loop, so no work moves between threads. The accepting loop hands each
//! new connection to the worker that has the fewest, which keeps long keep-alive connections (apt, dnf,
//! wrk) spread evenly. Each connection is one task serving HTTP/1.1 (keep-alive, pipelining) or HTTP/2
//! (prior knowledge), chosen by hyper from the first bytes. Limits, so that no client can starve the
//! others:
//! - request headers must arrive within `header-read-timeout` (also between keep-alive requests), and
//!   fit in `max-header-bytes` (otherwise 431);
//! - a connection on which no bytes move for `idle-timeout` while no handler works for it is closed; this
//!   also covers clients that connect and never send, and clients that stop reading a response;
//! - an HTTP/1.1 request without `Host`, or any with more than one, gets 400 before any route;
//! - the only request bodies read (install events) are read after their token is checked, and must
//!   arrive whole within `provision::BODY_DEADLINE` (otherwise 408 and the connection closes);
//! - at most `max-connections` are open; at the cap the server stops accepting and asks connections that
//!   have been idle for a second to close, as nginx reuses idle keep-alive connections.

pub mod conn;
pub mod logging;
pub mod router;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use hyper::body::Incoming;
use hyper::header;
use hyper::{Method, Request, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustix::net::{AddressFamily, SocketType, sockopt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::http::access_log::AccessRecord;
use crate::http::body::ConnectionBudget;
use crate::http::metrics::{ConnectionError, Metrics};
use crate::http::responses::error;
use crate::http::sendfile::SendfileQueue;
use crate::http::written::Written;
use crate::server::conn::{Activity, ConnIo};
use crate::server::router::Router;
use crate::settings::config::Config;

/// Pending connections the kernel queues while the server is at its connection cap or busy.
const LISTEN_BACKLOG: i32 = 4096;
/// Idle time after which a connection may be closed to make room under the connection cap.
const DRAIN_IDLE: Duration = Duration::from_secs(1);
/// How often the accept loop asks again for idle connections to close while it waits at the cap.
const DRAIN_RETRY: Duration = Duration::from_millis(250);
/// Threads a worker may start for blocking reads (files not sent with sendfile, directory listings).
const BLOCKING_THREADS: usize = 16;

pub struct Server {
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
}

struct Shared {
    config: Config,
    router: Router,
    metrics: Arc<Metrics>,
    builder: auto::Builder<TokioExecutor>,
    slots: Arc<Semaphore>,
    drain: Notify,
}

impl Server {
    /// Opens the root and binds the listening socket.
    pub fn bind(config: Config) -> anyhow::Result<Server> {
        let metrics = Arc::new(Metrics::default());
        let router = Router::from_config(&config, metrics.clone())?;
        let listener =
            listen(config.listen).with_context(|| format!("listening on {}", config.listen))?;
        let shared = Shared {
            builder: http_builder(&config),
            slots: Arc::new(Semaphore::new(config.max_connections)),
            drain: Notify::new(),
            config,
            router,
            metrics,
        };
        Ok(Server {
            listener,
            shared: Arc::new(shared),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then lets open responses finish for up to `shutdown-timeout`.
    /// Connections are accepted on the caller's runtime and served by the worker threads.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let count = match self.shared.config.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let mut workers = Vec::with_capacity(count);
        let mut finished = Vec::with_capacity(count);
        for i in 0..count {
            let (worker, done) = Worker::start(i, self.shared.clone())?;
            workers.push(worker);
            finished.push(done);
        }
        self.listener
            .set_nonblocking(true)
            .context("configuring the listening socket")?;
        let listener =
            TcpListener::from_std(self.listener).context("registering the listening socket")?;
        tokio::select! {
            () = shutdown => {}
            () = self.shared.accept(&listener, &workers) => {}
        }
        drop(listener);
        let grace = self.shared.config.shutdown_timeout;
        tracing::info!("shutting down; waiting up to {grace:?} for open responses");
        // Closing the channels tells the workers to drain.
        drop(workers);
        for done in finished {
            let _ = done.await;
        }
        Ok(())
    }
}

/// A thread with its own event loop, serving the connections handed to it.
struct Worker {
    connections: mpsc::UnboundedSender<Accepted>,
    load: Arc<AtomicUsize>,
}

struct Accepted {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    slot: Slot,
}

/// A connection's place under the cap and in its worker's load; both are released when it ends.
struct Slot {
    _permit: OwnedSemaphorePermit,
    load: Arc<AtomicUsize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.load.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Worker {
    /// Starts worker `i`; the receiver completes when it has stopped.
    fn start(i: usize, shared: Arc<Shared>) -> anyhow::Result<(Worker, oneshot::Receiver<()>)> {
        let (connections, mut incoming) = mpsc::unbounded_channel::<Accepted>();
        let (finished, done) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("xenprov-repo-{i}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .max_blocking_threads(BLOCKING_THREADS)
                    .build();
                let runtime = match runtime {
                    Ok(runtime) => runtime,
                    Err(e) => return tracing::error!("starting worker {i}: {e}"),
                };
                runtime.block_on(async {
                    let graceful = GracefulShutdown::new();
                    while let Some(Accepted { stream, peer, slot }) = incoming.recv().await {
                        match TcpStream::from_std(stream) {
                            Ok(stream) => shared.spawn_connection(&graceful, stream, peer, slot),
                            Err(e) => tracing::warn!(%peer, "registering a connection: {e}"),
                        }
                    }
                    let grace = shared.config.shutdown_timeout;
                    if tokio::time::timeout(grace, graceful.shutdown())
                        .await
                        .is_err()
                    {
                        tracing::warn!("responses still open after {grace:?}; closing them");
                    }
                });
                drop(finished);
            })
            .context("starting a worker thread")?;
        let load = Arc::new(AtomicUsize::new(0));
        Ok((Worker { connections, load }, done))
    }
}

impl Shared {
    /// Accepts connections and gives each to the worker with the fewest, as long as the server runs.
    async fn accept(&self, listener: &TcpListener, workers: &[Worker]) {
        loop {
            let permit = self.connection_slot().await;
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(worker) = workers
                .iter()
                .min_by_key(|w| w.load.load(Ordering::Relaxed))
            else {
                return;
            };
            let stream = match stream.into_std() {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::warn!(%peer, "handing over a connection: {e}");
                    continue;
                }
            };
            worker.load.fetch_add(1, Ordering::Relaxed);
            let slot = Slot {
                _permit: permit,
                load: worker.load.clone(),
            };
            if worker
                .connections
                .send(Accepted { stream, peer, slot })
                .is_err()
            {
                tracing::error!("worker stopped; closing {peer}");
            }
        }
    }

    /// A free connection slot; at the cap, asks idle connections to close until one is released.
    async fn connection_slot(&self) -> OwnedSemaphorePermit {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return permit;
        }
        tracing::warn!(
            "{} connections open (the cap); closing idle ones",
            self.config.max_connections
        );
        loop {
            self.drain.notify_waiters();
            let released = tokio::time::timeout(DRAIN_RETRY, self.slots.clone().acquire_owned());
            if let Ok(Ok(permit)) = released.await {
                return permit;
            }
        }
    }

    fn spawn_connection(
        self: &Arc<Self>,
        graceful: &GracefulShutdown,
        stream: TcpStream,
        peer: SocketAddr,
        slot: Slot,
    ) {
        // Responses are written whole by hyper; Nagle would only delay the last segment.
        let _ = stream.set_nodelay(true);
        self.metrics.connection_opened();
        let activity = Arc::new(Activity::new());
        let sendfile = SendfileQueue::default();
        let written = Written::default();
        let budget = ConnectionBudget::default();
        let io = TokioIo::new(ConnIo::new(
            stream,
            activity.clone(),
            sendfile.clone(),
            written.clone(),
        ));
        let service = {
            let shared = self.clone();
            let activity = activity.clone();
            hyper::service::service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(budget.clone());
                shared.clone().respond(
                    req,
                    peer,
                    activity.clone(),
                    sendfile.clone(),
                    written.clone(),
                )
            })
        };
        let conn = graceful.watch(self.builder.serve_connection(io, service).into_owned());
        let shared = self.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            let idle = shared.config.idle_timeout;
            let closed_idle = loop {
                tokio::select! {
                    result = &mut conn => {
                        if let Err(e) = result {
                            shared.metrics.connection_error(ConnectionError::of(&*e));
                            tracing::debug!(%peer, "connection ended: {e}");
                        }
                        break false;
                    }
                    () = tokio::time::sleep_until(activity.next_check(idle).into()) => {
                        if activity.is_idle_for(idle) {
                            break true;
                        }
                    }
                    () = shared.drain.notified() => {
                        if activity.is_idle_for(DRAIN_IDLE) {
                            break true;
                        }
                    }
                }
            };
            shared.metrics.connection_closed(closed_idle);
            drop(slot);
        });
    }

    async fn respond(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        activity: Arc<Activity>,
        sendfile: SendfileQueue,
        written: Written,
    ) -> Result<hyper::Response<crate::http::body::Body>, Infallible> {
        let _running = activity.handler_running();
        let http1 = req.version() <= Version::HTTP_11;
        if self.config.sendfile && http1 {
            req.extensions_mut().insert(sendfile);
        }
        let logged = crate::provision::log_path(req.uri().path()).into_owned();
        let mut record = AccessRecord::start(&self.metrics, &req, logged, peer);
        let resp = match host_error(&req) {
            Some(why) => {
                tracing::debug!(%peer, path = req.uri().path(), "refused: {why}");
                error(StatusCode::BAD_REQUEST, req.method() == Method::HEAD)
            }
            None => self.router.handle(req).await,
        };
        record.set_status(resp.status());
        Ok(resp.map(|body| body.with_record(record, http1.then_some(written))))
    }
}

/// What is wrong with the request's `Host`, if anything. RFC 9112 §3.2: an HTTP/1.1 request without one,
/// and any request with more than one, is answered 400 (HTTP/1.0 clients may leave it out). HTTP/2 names
/// the authority in `:authority` (hyper puts it in the URI); a `Host` beside it must name the same
/// (RFC 9113 §8.3.1).
fn host_error<B>(req: &Request<B>) -> Option<&'static str> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Some("more than one Host header");
    }
    match (req.version(), host, req.uri().authority()) {
        (Version::HTTP_11, None, _) => Some("HTTP/1.1 request without a Host header"),
        (Version::HTTP_2, Some(host), Some(authority))
            if !host
                .as_bytes()
                .eq_ignore_ascii_case(authority.as_str().as_bytes()) =>
        {
            Some("Host differs from :authority")
        }
        _ => None,
    }
}

fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    let socket = rustix::net::socket(family, SocketType::STREAM, None)?;
    sockopt::set_socket_reuseaddr(&socket, true)?;
    rustix::net::bind(&socket, &addr)?;
    rustix::net::listen(&socket, LISTEN_BACKLOG)?;
    Ok(std::net::TcpListener::from(socket))
}

fn http_builder(config: &Config) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(config.max_header_bytes)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(config.max_header_bytes as u32)
        .max_concurrent_streams(128);
    builder
}
