//! Server counters, rendered in the Prometheus text exposition format at `/metrics`.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use hyper::StatusCode;

const STATUS_MIN: usize = 100;
const STATUS_COUNT: usize = 500;

/// Why hyper ended a connection with an error (it answers 431 and 400 itself, before any route).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionError {
    /// Request head above the size cap: 431.
    HeaderTooLarge,
    /// Request head not complete within the header read timeout.
    HeaderTimeout,
    /// Not HTTP: 400.
    Malformed,
    /// Resets, broken pipes, aborted bodies.
    Other,
}

impl ConnectionError {
    const ALL: [ConnectionError; 4] = [
        ConnectionError::HeaderTooLarge,
        ConnectionError::HeaderTimeout,
        ConnectionError::Malformed,
        ConnectionError::Other,
    ];

    /// Classifies the error of a finished connection.
    pub fn of(e: &(dyn std::error::Error + 'static)) -> ConnectionError {
        match e.downcast_ref::<hyper::Error>() {
            Some(e) if e.is_parse_too_large() => ConnectionError::HeaderTooLarge,
            Some(e) if e.is_timeout() => ConnectionError::HeaderTimeout,
            Some(e) if e.is_parse() => ConnectionError::Malformed,
            _ => ConnectionError::Other,
        }
    }

    fn label(self) -> &'static str {
        match self {
            ConnectionError::HeaderTooLarge => "header_too_large",
            ConnectionError::HeaderTimeout => "header_timeout",
            ConnectionError::Malformed => "malformed",
            ConnectionError::Other => "other",
        }
    }
}

/// What `Metrics::totals` reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    /// Requests answered or abandoned.
    pub requests: u64,
    /// Answered with 1xx, 2xx, 3xx, 4xx and 5xx.
    pub by_class: [u64; 5],
    pub bytes_sent: u64,
    pub connections_open: u64,
    pub connections_total: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
}

pub struct Metrics {
    responses: [AtomicU64; STATUS_COUNT],
    abandoned: AtomicU64,
    bytes_sent: AtomicU64,
    in_flight: AtomicI64,
    open_connections: AtomicI64,
    accepted_connections: AtomicU64,
    idle_closed_connections: AtomicU64,
    connection_errors: [AtomicU64; 4],
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    /// Shared with the `ReadBudget`, whose buffers add and remove their sizes.
    read_buffers: Arc<AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            responses: std::array::from_fn(|_| AtomicU64::new(0)),
            abandoned: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
            open_connections: AtomicI64::new(0),
            accepted_connections: AtomicU64::new(0),
            idle_closed_connections: AtomicU64::new(0),
            connection_errors: std::array::from_fn(|_| AtomicU64::new(0)),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            read_buffers: Arc::default(),
        }
    }
}

impl Metrics {
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Relaxed);
    }

    pub fn request_finished(&self, status: Option<StatusCode>, sent: u64) {
        self.in_flight.fetch_sub(1, Relaxed);
        self.bytes_sent.fetch_add(sent, Relaxed);
        match status.and_then(|s| {
            self.responses
                .get((s.as_u16() as usize).wrapping_sub(STATUS_MIN))
        }) {
            Some(counter) => counter.fetch_add(1, Relaxed),
            None => self.abandoned.fetch_add(1, Relaxed),
        };
    }

    pub fn connection_opened(&self) {
        self.accepted_connections.fetch_add(1, Relaxed);
        self.open_connections.fetch_add(1, Relaxed);
    }

    pub fn connection_closed(&self, idle: bool) {
        self.open_connections.fetch_sub(1, Relaxed);
        if idle {
            self.idle_closed_connections.fetch_add(1, Relaxed);
        }
    }

    pub fn connection_error(&self, kind: ConnectionError) {
        self.connection_errors[kind as usize].fetch_add(1, Relaxed);
    }

    /// The gauge of bytes held in read buffers, for the read budget to keep up to date.
    pub fn read_buffer_bytes(&self) -> Arc<AtomicU64> {
        self.read_buffers.clone()
    }

    pub fn cache_lookup(&self, hit: bool) {
        let counter = if hit {
            &self.cache_hits
        } else {
            &self.cache_misses
        };
        counter.fetch_add(1, Relaxed);
    }

    /// The counters a person reads, for the status page and its traffic graph.
    pub fn totals(&self) -> Totals {
        let mut by_class = [0u64; 5];
        for (i, counter) in self.responses.iter().enumerate() {
            by_class[(i + STATUS_MIN) / 100 - 1] += counter.load(Relaxed);
        }
        Totals {
            requests: by_class.iter().sum::<u64>() + self.abandoned.load(Relaxed),
            by_class,
            bytes_sent: self.bytes_sent.load(Relaxed),
            connections_open: self.open_connections.load(Relaxed).max(0) as u64,
            connections_total: self.accepted_connections.load(Relaxed),
            cache_hits: self.cache_hits.load(Relaxed),
            cache_misses: self.cache_misses.load(Relaxed),
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        header(
            &mut out,
            "requests_total",
            "counter",
            "Requests answered, by HTTP status.",
        );
        for (i, counter) in self.responses.iter().enumerate() {
            let n = counter.load(Relaxed);
            if n > 0 {
                let _ = writeln!(
                    out,
                    "xenprov_repo_requests_total{{status=\"{}\"}} {n}",
                    i + STATUS_MIN
                );
            }
        }
        let _ = writeln!(
            out,
            "xenprov_repo_requests_total{{status=\"abandoned\"}} {}",
            self.abandoned.load(Relaxed)
        );
        header(
            &mut out,
            "connection_errors_total",
            "counter",
            "Connections ended by an error, by kind (431 and 400 are answered before any route).",
        );
        for kind in ConnectionError::ALL {
            let n = self.connection_errors[kind as usize].load(Relaxed);
            let _ = writeln!(
                out,
                "xenprov_repo_connection_errors_total{{kind=\"{}\"}} {n}",
                kind.label()
            );
        }
        let simple: [(&str, &str, &str, i128); 8] = [
            (
                "response_bytes_total",
                "counter",
                "Response body bytes sent.",
                self.bytes_sent.load(Relaxed).into(),
            ),
            (
                "requests_in_flight",
                "gauge",
                "Requests being answered.",
                self.in_flight.load(Relaxed).into(),
            ),
            (
                "connections_open",
                "gauge",
                "Open client connections.",
                self.open_connections.load(Relaxed).into(),
            ),
            (
                "connections_total",
                "counter",
                "Client connections accepted.",
                self.accepted_connections.load(Relaxed).into(),
            ),
            (
                "connections_idle_closed_total",
                "counter",
                "Connections closed for idleness or to make room under the connection cap.",
                self.idle_closed_connections.load(Relaxed).into(),
            ),
            (
                "cache_hits_total",
                "counter",
                "Small files served from memory.",
                self.cache_hits.load(Relaxed).into(),
            ),
            (
                "cache_misses_total",
                "counter",
                "Small files read from their source.",
                self.cache_misses.load(Relaxed).into(),
            ),
            (
                "read_buffer_bytes",
                "gauge",
                "Bytes read from files and not yet sent (held by hyper or HTTP/2 flow control).",
                self.read_buffers.load(Relaxed).into(),
            ),
        ];
        for (name, kind, help, value) in simple {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "xenprov_repo_{name} {value}");
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(
        out,
        "# HELP xenprov_repo_{name} {help}\n# TYPE xenprov_repo_{name} {kind}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition() {
        let m = Metrics::default();
        m.request_started();
        m.request_started();
        m.request_finished(Some(StatusCode::OK), 100);
        m.request_finished(Some(StatusCode::NOT_FOUND), 9);
        m.connection_opened();
        m.connection_error(ConnectionError::HeaderTimeout);
        let t = m.totals();
        assert_eq!(
            (t.requests, t.by_class, t.bytes_sent),
            (2, [0, 1, 0, 1, 0], 109)
        );
        let text = m.render();
        for line in [
            "xenprov_repo_requests_total{status=\"200\"} 1",
            "xenprov_repo_requests_total{status=\"404\"} 1",
            "xenprov_repo_response_bytes_total 109",
            "xenprov_repo_requests_in_flight 0",
            "xenprov_repo_connections_open 1",
            "# TYPE xenprov_repo_connections_total counter",
            "xenprov_repo_connection_errors_total{kind=\"header_timeout\"} 1",
            "xenprov_repo_connection_errors_total{kind=\"header_too_large\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
