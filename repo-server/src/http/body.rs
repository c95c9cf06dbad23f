//! The response body of every route: nothing, bytes in memory, or parts of a source.
//!
//! A source body is a list of parts (literal bytes such as multipart headers, and byte ranges of the
//! source) sent in order. Ranges are read in chunks of `READ_CHUNK` on the blocking pool, several small
//! parts per read, or, for large ranges on an HTTP/1 connection that offers it, handed to `sendfile`.
//! Read buffers come out of a `ReadBudget` shared by all responses and go back to it once written, so
//! hundreds of downloads over HTTP/2 (which cannot use sendfile) do not each keep buffers of their own.
//! A read waits for budget, however long: hyper asks an HTTP/2 body for data before the stream's send
//! window is open, so a client that opens no window would otherwise pin a buffer per stream. And the
//! streams of one connection share a `ConnectionBudget` as well, so that a few clients stalling all
//! their streams hold a bounded part of the server's budget. And since enough of them can still hold all
//! of it (8 connections of 4 chunks), every connection has one small reserve buffer of its own besides:
//! when the server's budget is taken, the others still read, `RESERVE_CHUNK` at a time. Memory for read
//! buffers is bounded by `READ_MEMORY` plus `RESERVE_CHUNK` per connection (the connection cap bounds
//! those), which a stalled client cannot raise.
//! The body also carries the request's access record, which is completed when the body is dropped (hyper
//! has taken all of it or given up) or, for a body that ends in sendfile, when that last range is sent.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::http::access_log::{AccessRecord, SentBytes};
use crate::http::metrics::Metrics;
use crate::http::sendfile::{PLACEHOLDER_LEN, SendfileQueue};
use crate::http::source::Source;
use crate::http::written::Written;

/// Bytes read from a source per blocking call: large enough to amortise the hand-off to the blocking pool.
pub const READ_CHUNK: usize = 64 << 10;

/// Memory for read buffers in flight, for the whole server: 32 reads at a time keep two cores busy.
pub const READ_MEMORY: usize = 2 << 20;

/// Memory for read buffers of one connection: what a client that stops reading all its HTTP/2 streams
/// pins, an eighth of `READ_MEMORY`.
pub const CONNECTION_READ_MEMORY: usize = 4 * READ_CHUNK;

/// The reserve buffer each connection may use when the server's budget is taken: small, as every
/// connection has one, and enough for a client to make progress.
pub const RESERVE_CHUNK: usize = 16 << 10;

/// Ranges smaller than this are read rather than sent with sendfile (multipart parts, mostly): one read
/// can cover many of them, while each sendfile would cost its own system calls.
const SENDFILE_MIN: u64 = 64 << 10;

#[derive(Debug, Clone)]
pub enum Part {
    Bytes(Bytes),
    Range { offset: u64, len: u64 },
}

impl Part {
    pub fn size(&self) -> u64 {
        match self {
            Part::Bytes(b) => b.len() as u64,
            Part::Range { len, .. } => *len,
        }
    }
}

/// Where the bytes of `Part::Range`s come from.
pub enum Content {
    Memory(Bytes),
    Source {
        source: Arc<dyn Source>,
        /// The connection's sendfile queue, when this response may use it.
        sendfile: Option<SendfileQueue>,
        budget: ReadBudget,
    },
}

/// Read buffers in flight, in chunks of `READ_CHUNK`, shared by all responses of a server, and the
/// bytes those buffers hold now (the `read_buffer_bytes` metric).
#[derive(Clone)]
pub struct ReadBudget {
    permits: Arc<Semaphore>,
    /// The requesting connection's share, once `for_connection` has named it.
    connection: Option<ConnectionBudget>,
    allocated: Arc<AtomicU64>,
}

/// Read buffers in flight for one connection: its share (in chunks of `READ_CHUNK`), and its reserve
/// of one `RESERVE_CHUNK` outside the server's budget. The server puts one in the extensions of each
/// request.
#[derive(Clone)]
pub struct ConnectionBudget {
    share: Arc<Semaphore>,
    reserve: Arc<Semaphore>,
}

impl Default for ConnectionBudget {
    fn default() -> ConnectionBudget {
        ConnectionBudget {
            share: Arc::new(Semaphore::new(CONNECTION_READ_MEMORY / READ_CHUNK)),
            reserve: Arc::new(Semaphore::new(1)),
        }
    }
}

/// The budget of one read buffer: a share of the server's (or the connection's reserve) and, if named,
/// of its connection's; `chunk` is how much it may read.
struct Lease {
    _server: OwnedSemaphorePermit,
    _connection: Option<OwnedSemaphorePermit>,
    chunk: usize,
}

impl ReadBudget {
    pub fn new(metrics: &Metrics) -> ReadBudget {
        ReadBudget {
            permits: Arc::new(Semaphore::new(READ_MEMORY / READ_CHUNK)),
            connection: None,
            allocated: metrics.read_buffer_bytes(),
        }
    }

    /// This budget, with reads also counted against `connection`'s share.
    pub fn for_connection(&self, connection: Option<&ConnectionBudget>) -> ReadBudget {
        ReadBudget {
            connection: connection.cloned(),
            ..self.clone()
        }
    }

    fn try_lease(&self) -> Option<Lease> {
        let Some(c) = &self.connection else {
            return Some(Lease {
                _server: self.permits.clone().try_acquire_owned().ok()?,
                _connection: None,
                chunk: READ_CHUNK,
            });
        };
        let connection = c.share.clone().try_acquire_owned().ok()?;
        let (server, chunk) = match self.permits.clone().try_acquire_owned() {
            Ok(p) => (p, READ_CHUNK),
            Err(_) => (c.reserve.clone().try_acquire_owned().ok()?, RESERVE_CHUNK),
        };
        Some(Lease {
            _server: server,
            _connection: Some(connection),
            chunk,
        })
    }

    /// Waits for the connection's share first, so that a connection's waiting streams queue behind
    /// each other rather than take the server's budget from other connections; then for the server's
    /// budget or the connection's reserve, whichever is free first.
    async fn lease(self) -> Result<Lease, AcquireError> {
        let Some(c) = self.connection else {
            return Ok(Lease {
                _server: self.permits.acquire_owned().await?,
                _connection: None,
                chunk: READ_CHUNK,
            });
        };
        let connection = c.share.acquire_owned().await?;
        // Biased: the server's budget when both are free, keeping the reserve for when it is not.
        let (server, chunk) = tokio::select! {
            biased;
            p = self.permits.acquire_owned() => (p?, READ_CHUNK),
            p = c.reserve.acquire_owned() => (p?, RESERVE_CHUNK),
        };
        Ok(Lease {
            _server: server,
            _connection: Some(connection),
            chunk,
        })
    }
}

/// A read buffer that returns its share of the budget when hyper is done with it.
struct Buffer {
    data: Vec<u8>,
    _lease: Lease,
    allocated: Arc<AtomicU64>,
}

impl Drop for Buffer {
    fn drop(&mut self) {
        self.allocated.fetch_sub(self.data.len() as u64, Relaxed);
    }
}

impl AsRef<[u8]> for Buffer {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

type Acquire = Pin<Box<dyn Future<Output = Result<Lease, AcquireError>> + Send>>;

enum Read {
    Idle,
    /// Waiting for budget for the next read.
    Waiting(Acquire),
    Reading(JoinHandle<io::Result<Bytes>>),
}

pub struct Body {
    parts: VecDeque<Part>,
    source: Option<(Arc<dyn Source>, ReadBudget)>,
    sendfile: Option<SendfileQueue>,
    read: Read,
    remaining: u64,
    record: Option<AccessRecord>,
    /// The record's count of bytes sent, which outlives it when the last range goes to sendfile.
    sent: Option<SentBytes>,
    /// On HTTP/1, where the connection's writer counts the chunks it writes.
    written: Option<Written>,
}

impl Body {
    pub fn empty() -> Body {
        Body::from_parts(Vec::new(), Content::Memory(Bytes::new()))
    }

    pub fn full(data: Bytes) -> Body {
        Body::from_parts(vec![Part::Bytes(data)], Content::Memory(Bytes::new()))
    }

    /// A body of `parts`, whose ranges are taken from `content`.
    pub fn from_parts(parts: Vec<Part>, content: Content) -> Body {
        let remaining = parts.iter().map(Part::size).sum();
        let (parts, source, sendfile) = match content {
            Content::Memory(data) => {
                let slices = parts.into_iter().map(|part| match part {
                    Part::Range { offset, len } => {
                        Part::Bytes(data.slice(offset as usize..(offset + len) as usize))
                    }
                    bytes => bytes,
                });
                (slices.collect(), None, None)
            }
            Content::Source {
                source,
                sendfile,
                budget,
            } => {
                let sendfile = sendfile.filter(|_| source.as_fd().is_some());
                (parts.into(), Some((source, budget)), sendfile)
            }
        };
        Body {
            parts,
            source,
            sendfile,
            read: Read::Idle,
            remaining,
            record: None,
            sent: None,
            written: None,
        }
    }

    /// Attaches the access record that this body completes when dropped, or once its last byte is
    /// written. `written` is the connection's on HTTP/1, which counts bytes as the kernel takes them.
    pub fn with_record(mut self, record: AccessRecord, written: Option<Written>) -> Body {
        self.sent = Some(record.sent());
        self.record = Some(record);
        self.written = written;
        self
    }

    /// Yields `chunk`, counted as sent when the writer hands it to the kernel (HTTP/1) or when h2
    /// takes it (HTTP/2, which takes no more than the stream's window allows).
    fn data(&mut self, chunk: Bytes) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        if let (Some(sent), Some(written)) = (&self.sent, &self.written) {
            if self.remaining == chunk.len() as u64 {
                // The last chunk: the request ends when it is written.
                self.record = written.track(&chunk, sent.clone(), self.record.take());
            } else {
                written.track(&chunk, sent.clone(), None);
            }
        } else if let Some(sent) = &self.sent {
            sent.add(chunk.len() as u64);
        }
        self.emit(chunk)
    }

    fn emit(&mut self, chunk: Bytes) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        self.remaining -= chunk.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    /// The next frame when no read is in progress (literal bytes or a sendfile placeholder), or `None`
    /// after starting a read or a wait for budget.
    fn next_part(&mut self) -> Option<Poll<Option<io::Result<Frame<Bytes>>>>> {
        let Some(part) = self.parts.pop_front() else {
            return Some(Poll::Ready(None));
        };
        let (offset, len) = match part {
            Part::Bytes(chunk) => return Some(self.data(chunk)),
            Part::Range { offset, len } => (offset, len),
        };
        let Some((source, budget)) = self.source.clone() else {
            let e = io::Error::other("range part without a source");
            return Some(Poll::Ready(Some(Err(e))));
        };
        if let Some(queue) = self.sendfile.clone().filter(|_| len >= SENDFILE_MIN) {
            let n = len.min(PLACEHOLDER_LEN as u64);
            if n < len {
                self.parts.push_front(Part::Range {
                    offset: offset + n,
                    len: len - n,
                });
            }
            // Counted by the queue as sendfile sends it: a placeholder is up to 16 MiB that hyper takes
            // at once, which a client that goes away may never get.
            let placeholder = queue.push(source, offset, n as usize, self.sent.clone());
            let frame = self.emit(placeholder);
            if self.remaining == 0 {
                // The request is done when sendfile has sent this range, not when hyper takes it.
                queue.complete_with(self.record.take());
            }
            return Some(frame);
        }
        self.parts.push_front(part);
        match budget.try_lease() {
            Some(lease) => self.start_read(source, &budget, lease),
            None => self.read = Read::Waiting(Box::pin(budget.lease())),
        }
        None
    }

    /// Starts a blocking read of the next parts, up to the lease's chunk, into a buffer of the budget.
    fn start_read(&mut self, source: Arc<dyn Source>, budget: &ReadBudget, lease: Lease) {
        let mut batch = Vec::new();
        let mut size = 0usize;
        while size < lease.chunk {
            let Some(part) = self.parts.pop_front() else {
                break;
            };
            let room = (lease.chunk - size) as u64;
            let part = match part {
                Part::Range { offset, len } if len > room => {
                    self.parts.push_front(Part::Range {
                        offset: offset + room,
                        len: len - room,
                    });
                    Part::Range { offset, len: room }
                }
                part => part,
            };
            size += part.size() as usize;
            batch.push(part);
        }
        let allocated = budget.allocated.clone();
        self.read = Read::Reading(tokio::task::spawn_blocking(move || {
            let data = read_parts(&*source, &batch, size)?;
            allocated.fetch_add(data.len() as u64, Relaxed);
            Ok(Bytes::from_owner(Buffer {
                data,
                _lease: lease,
                allocated,
            }))
        }));
    }
}

fn read_parts(source: &dyn Source, parts: &[Part], size: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; size];
    let mut at = 0;
    for part in parts {
        let len = part.size() as usize;
        match part {
            Part::Bytes(b) => buf[at..at + len].copy_from_slice(b),
            Part::Range { offset, .. } => source.read_exact_at(&mut buf[at..at + len], *offset)?,
        }
        at += len;
    }
    Ok(buf)
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        let this = self.get_mut();
        loop {
            match &mut this.read {
                Read::Reading(reading) => {
                    let read = ready!(Pin::new(reading).poll(cx));
                    this.read = Read::Idle;
                    return match read.map_err(io::Error::other).and_then(|r| r) {
                        Ok(chunk) => this.data(chunk),
                        Err(e) => Poll::Ready(Some(Err(e))),
                    };
                }
                Read::Waiting(acquire) => {
                    let lease = ready!(acquire.as_mut().poll(cx));
                    this.read = Read::Idle;
                    let (Ok(lease), Some((source, budget))) = (lease, this.source.clone()) else {
                        let e = io::Error::other("the read budget is closed");
                        return Poll::Ready(Some(Err(e)));
                    };
                    this.start_read(source, &budget, lease);
                }
                Read::Idle => {
                    if let Some(frame) = this.next_part() {
                        return frame;
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::source::Meta;
    use http_body_util::BodyExt;
    use hyper::body::Body as _;
    use std::time::UNIX_EPOCH;

    struct Pattern(Meta);

    impl Source for Pattern {
        fn meta(&self) -> &Meta {
            &self.0
        }
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let n = buf
                .len()
                .min((self.0.len - offset.min(self.0.len)) as usize);
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = ((offset + i as u64) % 251) as u8;
            }
            Ok(n)
        }
    }

    fn pattern(len: u64) -> Arc<dyn Source> {
        Arc::new(Pattern(Meta {
            len,
            modified: UNIX_EPOCH,
            id: 1,
        }))
    }

    fn expected(offset: u64, len: u64) -> Vec<u8> {
        (offset..offset + len).map(|i| (i % 251) as u8).collect()
    }

    async fn collect(body: Body) -> io::Result<Vec<u8>> {
        Ok(body.collect().await?.to_bytes().to_vec())
    }

    #[tokio::test]
    async fn source_parts_in_order_across_chunks() {
        let len = 3 * READ_CHUNK as u64 + 17;
        let parts = vec![
            Part::Bytes(Bytes::from_static(b"<head>")),
            Part::Range {
                offset: 5,
                len: len - 5,
            },
            Part::Bytes(Bytes::from_static(b"<mid>")),
            Part::Range { offset: 0, len: 3 },
        ];
        let content = Content::Source {
            source: pattern(len),
            sendfile: None,
            budget: ReadBudget::new(&Metrics::default()),
        };
        let body = Body::from_parts(parts, content);
        assert_eq!(body.size_hint().exact(), Some(6 + len - 5 + 5 + 3));
        let mut want = b"<head>".to_vec();
        want.extend(expected(5, len - 5));
        want.extend(b"<mid>");
        want.extend(expected(0, 3));
        assert_eq!(collect(body).await.unwrap(), want);
    }

    #[tokio::test]
    async fn reads_wait_for_budget_of_server_and_connection() {
        let server = ReadBudget {
            permits: Arc::new(Semaphore::new(CONNECTION_READ_MEMORY / READ_CHUNK + 1)),
            ..ReadBudget::new(&Metrics::default())
        };
        let body = |budget: ReadBudget| {
            let content = Content::Source {
                source: pattern(3 * READ_CHUNK as u64),
                sendfile: None,
                budget,
            };
            Body::from_parts(
                vec![Part::Range {
                    offset: 0,
                    len: 3 * READ_CHUNK as u64,
                }],
                content,
            )
        };
        let conn = ConnectionBudget::default();
        let stalled = || body(server.for_connection(Some(&conn)));
        let mut held = Vec::new();
        for _ in 0..CONNECTION_READ_MEMORY / READ_CHUNK {
            held.push(stalled().frame().await.unwrap().unwrap());
        }
        // The connection's share is taken: another of its streams waits, for as long as it takes...
        let mut waiting = stalled();
        let long = std::time::Duration::from_millis(300);
        assert!(
            tokio::time::timeout(long, waiting.frame()).await.is_err(),
            "read past the connection's budget"
        );
        // ...while another reads, until the server's budget is taken too;
        let mut other = body(server.clone());
        let _other_held = other.frame().await.unwrap().unwrap();
        assert!(
            tokio::time::timeout(long, body(server.clone()).frame())
                .await
                .is_err(),
            "read past the server's budget"
        );
        // then a connection still reads, from its reserve, one small buffer at a time,
        let mut third = body(server.for_connection(Some(&ConnectionBudget::default())));
        let small = third.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(small[..], expected(0, RESERVE_CHUNK as u64)[..]);
        assert!(
            tokio::time::timeout(long, third.frame()).await.is_err(),
            "read past the connection's reserve"
        );
        // and a buffer coming back lets the connection's waiting read go ahead (once the server's
        // budget has no earlier waiter).
        drop(third);
        held.pop();
        let chunk = waiting.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(chunk[..], expected(0, READ_CHUNK as u64)[..]);
    }

    #[tokio::test]
    async fn memory_parts_are_slices() {
        let data = Bytes::from_static(b"0123456789");
        let parts = vec![
            Part::Range { offset: 2, len: 3 },
            Part::Range { offset: 9, len: 1 },
        ];
        let body = Body::from_parts(parts, Content::Memory(data));
        assert_eq!(collect(body).await.unwrap(), b"2349");
    }

    #[tokio::test]
    async fn shrunken_source_is_an_error() {
        let content = Content::Source {
            source: pattern(10),
            sendfile: None,
            budget: ReadBudget::new(&Metrics::default()),
        };
        let body = Body::from_parts(vec![Part::Range { offset: 0, len: 20 }], content);
        let err = collect(body).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
