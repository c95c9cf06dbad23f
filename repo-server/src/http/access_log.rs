//! One access-log line and the request metrics per request, written when the response is done.
//!
//! Lines go to tracing target `xenprov_repo::access` (filter it to `off` to silence them). `bytes=` (and the
//! `response_bytes_total` metric) is what was sent of the body, not its length: on HTTP/1, what the
//! kernel took, file ranges as sendfile sends them and other chunks as the writer writes them
//! (`written`); on HTTP/2, chunks as h2 takes them, which it does once the stream has window.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use hyper::{Method, Request, StatusCode};

use crate::http::metrics::Metrics;

/// The tracing target of access-log lines.
pub const ACCESS_TARGET: &str = "xenprov_repo::access";

/// Body bytes of one response that have been sent, counted by whoever sends them: the body for chunks
/// hyper takes, the sendfile queue for file ranges as the kernel accepts them.
#[derive(Clone, Default)]
pub struct SentBytes(Arc<AtomicU64>);

impl SentBytes {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

pub struct AccessRecord {
    metrics: Arc<Metrics>,
    method: Method,
    path: String,
    peer: SocketAddr,
    started: Instant,
    status: Option<StatusCode>,
    sent: SentBytes,
}

impl AccessRecord {
    /// Starts the record of `req`, logged as `path` (its path with any secret taken out); the
    /// request counts as in flight until the record is dropped.
    pub fn start<B>(
        metrics: &Arc<Metrics>,
        req: &Request<B>,
        path: String,
        peer: SocketAddr,
    ) -> AccessRecord {
        metrics.request_started();
        AccessRecord {
            metrics: metrics.clone(),
            method: req.method().clone(),
            path,
            peer,
            started: Instant::now(),
            status: None,
            sent: SentBytes::default(),
        }
    }

    pub fn set_status(&mut self, status: StatusCode) {
        self.status = Some(status);
    }

    /// The counter of this response's body bytes sent, for what sends them.
    pub fn sent(&self) -> SentBytes {
        self.sent.clone()
    }
}

impl Drop for AccessRecord {
    fn drop(&mut self) {
        let sent = self.sent.get();
        self.metrics.request_finished(self.status, sent);
        // A request without a status was abandoned before its handler answered (the client went away).
        let status = self.status.map_or(0, |s| s.as_u16());
        tracing::info!(
            target: ACCESS_TARGET,
            method = %self.method,
            path = %self.path,
            status,
            bytes = sent,
            duration_ms = %format_args!("{:.3}", self.started.elapsed().as_secs_f64() * 1e3),
            peer = %self.peer,
        );
    }
}
