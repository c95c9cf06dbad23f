//! One access-log line and the request metrics per request, written when the response is done.
//!
//! Lines go to tracing target `xenprov_repo::access` (filter it to `off` to silence them).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hyper::{Method, Request, StatusCode};

use crate::metrics::Metrics;

/// The tracing target of access-log lines.
pub const ACCESS_TARGET: &str = "xenprov_repo::access";

pub struct AccessRecord {
    metrics: Arc<Metrics>,
    method: Method,
    path: String,
    peer: SocketAddr,
    started: Instant,
    status: Option<StatusCode>,
    sent: u64,
}

impl AccessRecord {
    /// Starts the record of `req`; the request counts as in flight until the record is dropped.
    pub fn start<B>(metrics: &Arc<Metrics>, req: &Request<B>, peer: SocketAddr) -> AccessRecord {
        metrics.request_started();
        AccessRecord {
            metrics: metrics.clone(),
            method: req.method().clone(),
            path: req.uri().path().to_owned(),
            peer,
            started: Instant::now(),
            status: None,
            sent: 0,
        }
    }

    pub fn set_status(&mut self, status: StatusCode) {
        self.status = Some(status);
    }

    /// Body bytes handed to the connection.
    pub fn add_sent(&mut self, n: u64) {
        self.sent += n;
    }
}

impl Drop for AccessRecord {
    fn drop(&mut self) {
        self.metrics.request_finished(self.status, self.sent);
        // A request without a status was abandoned before its handler answered (the client went away).
        let status = self.status.map_or(0, |s| s.as_u16());
        tracing::info!(
            target: ACCESS_TARGET,
            method = %self.method,
            path = %self.path,
            status,
            bytes = self.sent,
            duration_ms = %format_args!("{:.3}", self.started.elapsed().as_secs_f64() * 1e3),
            peer = %self.peer,
        );
    }
}
