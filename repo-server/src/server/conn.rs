//! The I/O of one client connection: a TCP stream that records when bytes last moved (for the idle
//! timeout), turns sendfile placeholders into `sendfile` calls (see `sendfile`), corking the socket
//! meanwhile so that headers and file data leave in full segments, and counts the body bytes the
//! kernel takes (see `written`).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::http::sendfile::{SendfileQueue, is_placeholder};
use crate::http::written::Written;

/// When a connection last moved bytes, and how many of its requests are waiting for a handler.
pub struct Activity {
    epoch: Instant,
    last_io_ms: AtomicU64,
    handlers: AtomicUsize,
}

impl Activity {
    pub fn new() -> Activity {
        Activity {
            epoch: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            handlers: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        self.last_io_ms
            .store(self.epoch.elapsed().as_millis() as u64, Relaxed);
    }

    /// When the connection becomes idle for `timeout` if nothing moves meanwhile.
    fn idle_deadline(&self, timeout: Duration) -> Instant {
        self.epoch + Duration::from_millis(self.last_io_ms.load(Relaxed)) + timeout
    }

    /// When to look at the connection again: at its idle deadline, or after a full `timeout` while a
    /// handler works (its end counts as activity).
    pub fn next_check(&self, timeout: Duration) -> Instant {
        if self.handlers.load(Relaxed) > 0 {
            Instant::now() + timeout
        } else {
            self.idle_deadline(timeout)
        }
    }

    /// Idle for at least `timeout`: no bytes moved and no handler working on a response.
    pub fn is_idle_for(&self, timeout: Duration) -> bool {
        self.handlers.load(Relaxed) == 0 && Instant::now() >= self.idle_deadline(timeout)
    }

    /// Marks a handler as running until the guard is dropped; a slow handler is not an idle client.
    pub fn handler_running(self: &Arc<Self>) -> HandlerGuard {
        self.handlers.fetch_add(1, Relaxed);
        HandlerGuard(self.clone())
    }
}

impl Default for Activity {
    fn default() -> Activity {
        Activity::new()
    }
}

pub struct HandlerGuard(Arc<Activity>);

impl Drop for HandlerGuard {
    fn drop(&mut self) {
        self.0.handlers.fetch_sub(1, Relaxed);
        self.0.touch();
    }
}

pub struct ConnIo {
    stream: TcpStream,
    activity: Arc<Activity>,
    sendfile: SendfileQueue,
    written: Written,
    /// TCP_CORK is set: the bytes before and between file ranges wait to fill whole segments, as nginx's
    /// tcp_nopush does. Released once the queued ranges are sent.
    corked: bool,
}

impl ConnIo {
    pub fn new(
        stream: TcpStream,
        activity: Arc<Activity>,
        sendfile: SendfileQueue,
        written: Written,
    ) -> ConnIo {
        ConnIo {
            stream,
            activity,
            sendfile,
            written,
            corked: false,
        }
    }

    fn set_cork(&mut self, cork: bool) {
        // Only an optimisation: a failure leaves segments as they are.
        if rustix::net::sockopt::set_tcp_cork(&self.stream, cork).is_ok() {
            self.corked = cork;
        }
    }

    fn poll_send_file(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<usize>> {
        let result = self.sendfile.poll_send(&self.stream, cx, max);
        if self.corked && self.sendfile.is_empty() {
            self.set_cork(false);
        }
        result
    }

    fn moved(&self, result: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = result
            && n > 0
        {
            self.activity.touch();
        }
        result
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.touch();
        }
        result
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = if is_placeholder(buf) {
            this.poll_send_file(cx, buf.len())
        } else {
            let result = Pin::new(&mut this.stream).poll_write(cx, buf);
            if let Poll::Ready(Ok(n)) = result {
                this.written.wrote(&[IoSlice::new(buf)], n);
            }
            result
        };
        this.moved(result)
    }

    /// Writes the leading run of ordinary buffers in one `writev`, or, when the first buffer is a
    /// placeholder, sends its file range. hyper calls again for the rest.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let Some(first) = bufs.iter().position(|b| !b.is_empty()) else {
            return Poll::Ready(Ok(0));
        };
        let result = if is_placeholder(&bufs[first]) {
            this.poll_send_file(cx, bufs[first].len())
        } else {
            let end = bufs[first..]
                .iter()
                .position(|b| is_placeholder(b))
                .map_or(bufs.len(), |i| first + i);
            if end < bufs.len() && !this.corked {
                this.set_cork(true);
            }
            let result = Pin::new(&mut this.stream).poll_write_vectored(cx, &bufs[first..end]);
            if let Poll::Ready(Ok(n)) = result {
                this.written.wrote(&bufs[first..end], n);
            }
            result
        };
        this.moved(result)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
