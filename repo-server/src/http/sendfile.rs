//! Zero-copy file bodies for HTTP/1 over TCP, with Linux `sendfile(2)`.
//!
//! hyper writes only buffers it is handed, so a body that wants the kernel to send file pages directly
//! yields a *placeholder*: a slice of a reserved allocation that is never written to or read, and queues
//! `(file, offset, len)` on the connection's `SendfileQueue`. The connection's writer (`conn::ConnIo`)
//! recognises placeholder slices by address and calls `sendfile` for them instead of `write`. hyper keeps
//! response order on a connection, so the queue is consumed in the order the bodies filled it.
//!
//! This relies on hyper passing body buffers through untouched, which it does for HTTP/1 when the I/O
//! supports vectored writes (`ConnIo` does) and a `Content-Length` is set (the static handler always sets
//! one). HTTP/2 copies frames into its own buffers, so bodies only use the queue for HTTP/1 requests. If a
//! placeholder ever reached the writer with nothing queued, the write fails and the connection is closed:
//! placeholder bytes are never sent as data.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::http::access_log::{AccessRecord, SentBytes};
use crate::http::source::Source;

/// Largest placeholder, hence largest body chunk handed to hyper. Reserved, never touched: costs no memory.
pub const PLACEHOLDER_LEN: usize = 16 << 20;

fn placeholder() -> &'static [u8] {
    static PLACEHOLDER: OnceLock<&'static [u8]> = OnceLock::new();
    // Zeroed allocations of this size are fresh anonymous mappings; untouched pages take no RAM.
    PLACEHOLDER.get_or_init(|| Box::leak(vec![0u8; PLACEHOLDER_LEN].into_boxed_slice()))
}

/// Whether `buf` lies inside the placeholder allocation.
pub fn is_placeholder(buf: &[u8]) -> bool {
    let start = placeholder().as_ptr() as usize;
    let addr = buf.as_ptr() as usize;
    !buf.is_empty() && addr >= start && addr < start + PLACEHOLDER_LEN
}

struct Pending {
    source: Arc<dyn Source>,
    offset: u64,
    len: u64,
    /// The response's count of bytes sent, which this range adds to as the kernel takes it.
    sent: Option<SentBytes>,
    /// Dropped once this range is sent (or the connection is gone).
    completion: Option<AccessRecord>,
}

/// File ranges waiting to be sent on one connection, in response order.
#[derive(Clone, Default)]
pub struct SendfileQueue(Arc<Mutex<VecDeque<Pending>>>);

impl SendfileQueue {
    /// Queues `len` (at most `PLACEHOLDER_LEN`) bytes of `source` from `offset`, and returns the placeholder
    /// the body must yield for them. `source` must have a file descriptor; `sent` counts what is sent.
    pub fn push(
        &self,
        source: Arc<dyn Source>,
        offset: u64,
        len: usize,
        sent: Option<SentBytes>,
    ) -> Bytes {
        debug_assert!(source.as_fd().is_some() && len <= PLACEHOLDER_LEN);
        let len = len.min(PLACEHOLDER_LEN);
        self.lock().push_back(Pending {
            offset: offset + source.fd_offset(),
            source,
            len: len as u64,
            sent,
            completion: None,
        });
        Bytes::from_static(&placeholder()[..len])
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Keeps `record` until the range queued last has been sent.
    pub fn complete_with(&self, record: Option<AccessRecord>) {
        if let Some(last) = self.lock().back_mut() {
            last.completion = record;
        }
    }

    /// Sends up to `max` bytes of the oldest queued range to `socket`, when the writer met a placeholder
    /// of `max` bytes.
    pub fn poll_send(
        &self,
        socket: &TcpStream,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<io::Result<usize>> {
        let mut queue = self.lock();
        let Some(front) = queue.front_mut() else {
            return Poll::Ready(Err(io::Error::other(
                "sendfile placeholder without a queued file",
            )));
        };
        let Some(file) = front.source.as_fd() else {
            return Poll::Ready(Err(io::Error::other(
                "sendfile source has no file descriptor",
            )));
        };
        let count = max.min(front.len as usize);
        loop {
            ready!(socket.poll_write_ready(cx))?;
            let mut sent = 0;
            let result = socket.try_io(Interest::WRITABLE, || {
                sent = rustix::fs::sendfile(socket, file, Some(&mut front.offset), count)?;
                // A short send filled the socket buffer. Reporting WouldBlock makes tokio drop the
                // readiness it saw before this call, so the next call waits for room instead of spending
                // a system call on EAGAIN (nginx does the same).
                if sent < count && sent > 0 {
                    Err(io::ErrorKind::WouldBlock.into())
                } else {
                    Ok(())
                }
            });
            match result {
                Ok(()) | Err(_) if sent > 0 => {
                    front.len -= sent as u64;
                    if let Some(counter) = &front.sent {
                        counter.add(sent as u64);
                    }
                    if front.len == 0 {
                        queue.pop_front();
                    }
                    return Poll::Ready(Ok(sent));
                }
                Ok(()) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while being sent",
                    )));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Pending>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_detection() {
        let p = placeholder();
        assert!(is_placeholder(&p[..10]));
        assert!(is_placeholder(&p[PLACEHOLDER_LEN - 1..]));
        assert!(!is_placeholder(&p[..0]));
        assert!(!is_placeholder(&[0u8; 10]));
    }
}
