//! Listening, connections and their limits, graceful shutdown.
//!
//! The server runs one event loop per CPU, each on its own thread, all accepting from the same listening
//! socket, as nginx runs one worker process per CPU: a connection stays on the loop that accepted it, so
//! no work moves between threads, and a loop with spare time simply accepts more. Each connection is one
//! task serving HTTP/1.1 (keep-alive, pipelining) or HTTP/2 (prior knowledge), chosen by hyper from the
//! first bytes. Limits, so that no client can starve the others:
//! - request headers must arrive within `header-read-timeout` (also between keep-alive requests), and
//!   fit in `max-header-bytes` (otherwise 431);
//! - a connection on which no bytes move for `idle-timeout` while no handler works for it is closed; this
//!   also covers clients that connect and never send, and clients that stop reading a response;
//! - at most `max-connections` are open; at the cap the server stops accepting and asks connections that
//!   have been idle for a second to close, as nginx reuses idle keep-alive connections.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper::body::Incoming;
use hyper::{Request, Version};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustix::net::{AddressFamily, SocketType, sockopt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot, watch};

use crate::access_log::AccessRecord;
use crate::config::Config;
use crate::conn::{Activity, ConnIo};
use crate::metrics::{ConnectionError, Metrics};
use crate::router::Router;
use crate::sendfile::SendfileQueue;

/// Pending connections the kernel queues while the server is at its connection cap or busy.
const LISTEN_BACKLOG: i32 = 4096;
/// Idle time after which a connection may be closed to make room under the connection cap.
const DRAIN_IDLE: Duration = Duration::from_secs(1);
/// How often the accept loop asks again for idle connections to close while it waits at the cap.
const DRAIN_RETRY: Duration = Duration::from_millis(250);
/// Threads a worker may start for blocking reads (files not sent with sendfile, directory listings).
const BLOCKING_THREADS: usize = 64;

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
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let workers = match self.shared.config.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let (stop, stopped) = watch::channel(false);
        let mut done = Vec::with_capacity(workers);
        for i in 0..workers {
            let listener = self
                .listener
                .try_clone()
                .context("sharing the listening socket")?;
            let shared = self.shared.clone();
            let stopped = stopped.clone();
            let (finished, finished_rx) = oneshot::channel::<()>();
            std::thread::Builder::new()
                .name(format!("xenprov-repo-{i}"))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .max_blocking_threads(BLOCKING_THREADS)
                        .build();
                    match runtime {
                        Ok(runtime) => runtime.block_on(shared.serve(listener, stopped)),
                        Err(e) => tracing::error!("starting worker {i}: {e}"),
                    }
                    drop(finished);
                })
                .context("starting a worker thread")?;
            done.push(finished_rx);
        }
        drop(self.listener);
        shutdown.await;
        let grace = self.shared.config.shutdown_timeout;
        tracing::info!("shutting down; waiting up to {grace:?} for open responses");
        let _ = stop.send(true);
        for finished in done {
            let _ = finished.await;
        }
        Ok(())
    }
}

impl Shared {
    /// One worker: accepts and serves connections until told to stop, then drains its connections.
    async fn serve(
        self: Arc<Self>,
        listener: std::net::TcpListener,
        mut stopped: watch::Receiver<bool>,
    ) {
        let listener = match listener
            .set_nonblocking(true)
            .and_then(|()| TcpListener::from_std(listener))
        {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!("registering the listening socket: {e}");
                return;
            }
        };
        let graceful = GracefulShutdown::new();
        let stop = stopped.wait_for(|stop| *stop);
        tokio::pin!(stop);
        loop {
            let permit = tokio::select! {
                _ = &mut stop => break,
                permit = self.connection_slot() => permit,
            };
            let (stream, peer) = tokio::select! {
                _ = &mut stop => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!("accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            self.spawn_connection(&graceful, stream, peer, permit);
        }
        drop(listener);
        let grace = self.config.shutdown_timeout;
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("responses still open after {grace:?}; closing them");
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
        permit: OwnedSemaphorePermit,
    ) {
        // Responses are written whole by hyper; Nagle would only delay the last segment.
        let _ = stream.set_nodelay(true);
        self.metrics.connection_opened();
        let activity = Arc::new(Activity::new());
        let sendfile = SendfileQueue::default();
        let io = TokioIo::new(ConnIo::new(stream, activity.clone(), sendfile.clone()));
        let service = {
            let shared = self.clone();
            let activity = activity.clone();
            hyper::service::service_fn(move |req| {
                shared
                    .clone()
                    .respond(req, peer, activity.clone(), sendfile.clone())
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
            drop(permit);
        });
    }

    async fn respond(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        activity: Arc<Activity>,
        sendfile: SendfileQueue,
    ) -> Result<hyper::Response<crate::body::Body>, Infallible> {
        let _running = activity.handler_running();
        if self.config.sendfile && req.version() <= Version::HTTP_11 {
            req.extensions_mut().insert(sendfile);
        }
        let mut record = AccessRecord::start(&self.metrics, &req, peer);
        let resp = self.router.handle(req).await;
        record.set_status(resp.status());
        Ok(resp.map(|body| body.with_record(record)))
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
