//! The response body of every route: nothing, bytes in memory, or parts of a source.
//!
//! A source body is a list of parts (literal bytes such as multipart headers, and byte ranges of the
//! source) sent in order. Ranges are read in chunks of `READ_CHUNK` on the blocking pool, several small
//! parts per read, or, for large ranges on an HTTP/1 connection that offers it, handed to `sendfile`.
//! Read buffers come out of a `ReadBudget` shared by all responses and go back to it once written, so
//! hundreds of downloads over HTTP/2 (which cannot use sendfile) do not each keep buffers of their own;
//! a read that cannot get budget within `BUDGET_WAIT` goes ahead anyway, so stalled clients holding
//! budget delay the others but never stop them.
//! The body also carries the request's access record, which is completed when the body is dropped (hyper
//! has taken all of it or given up) or, for a body that ends in sendfile, when that last range is sent.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::access_log::AccessRecord;
use crate::sendfile::{PLACEHOLDER_LEN, SendfileQueue};
use crate::tree::Source;

/// Bytes read from a source per blocking call: large enough to amortise the hand-off to the blocking pool.
pub const READ_CHUNK: usize = 64 << 10;

/// Memory for read buffers in flight, for the whole server: 32 reads at a time keep two cores busy.
pub const READ_MEMORY: usize = 2 << 20;

/// How long a read waits for budget before it goes ahead without: clients that stop reading hold their
/// buffers until the idle timeout, and must not stall everyone else that long.
const BUDGET_WAIT: Duration = Duration::from_millis(100);

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

/// Read buffers in flight, in chunks of `READ_CHUNK`, shared by all responses of a server.
#[derive(Clone)]
pub struct ReadBudget(Arc<Semaphore>);

impl Default for ReadBudget {
    fn default() -> ReadBudget {
        ReadBudget(Arc::new(Semaphore::new(READ_MEMORY / READ_CHUNK)))
    }
}

/// A read buffer that returns its share of the budget (if it got one) when hyper is done with it.
struct Buffer {
    data: Vec<u8>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl AsRef<[u8]> for Buffer {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

type Acquire = Pin<Box<dyn Future<Output = Option<OwnedSemaphorePermit>> + Send>>;

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
        }
    }

    /// Attaches the access record that this body completes when dropped.
    pub fn with_record(mut self, record: AccessRecord) -> Body {
        self.record = Some(record);
        self
    }

    fn data(&mut self, chunk: Bytes) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        self.remaining -= chunk.len() as u64;
        if let Some(record) = &mut self.record {
            record.add_sent(chunk.len() as u64);
        }
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
            let placeholder = queue.push(source, offset, n as usize);
            let frame = self.data(placeholder);
            if self.remaining == 0 {
                // The request is done when sendfile has sent this range, not when hyper takes it.
                queue.complete_with(self.record.take());
            }
            return Some(frame);
        }
        self.parts.push_front(part);
        match budget.0.clone().try_acquire_owned() {
            Ok(permit) => self.start_read(source, Some(permit)),
            Err(_) => {
                let acquire = tokio::time::timeout(BUDGET_WAIT, budget.0.acquire_owned());
                self.read = Read::Waiting(Box::pin(async move { acquire.await.ok()?.ok() }));
            }
        }
        None
    }

    /// Starts a blocking read of the next parts, up to `READ_CHUNK` bytes, into a buffer of the budget.
    fn start_read(&mut self, source: Arc<dyn Source>, permit: Option<OwnedSemaphorePermit>) {
        let mut batch = Vec::new();
        let mut size = 0usize;
        while size < READ_CHUNK {
            let Some(part) = self.parts.pop_front() else {
                break;
            };
            let room = (READ_CHUNK - size) as u64;
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
        self.read = Read::Reading(tokio::task::spawn_blocking(move || {
            let data = read_parts(&*source, &batch, size)?;
            Ok(Bytes::from_owner(Buffer {
                data,
                _permit: permit,
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
                    let permit = ready!(acquire.as_mut().poll(cx));
                    this.read = Read::Idle;
                    if let Some((source, _)) = this.source.clone() {
                        this.start_read(source, permit);
                    }
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
    use crate::tree::Meta;
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
            budget: ReadBudget::default(),
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
    async fn reads_wait_for_budget_but_not_forever() {
        let budget = ReadBudget(Arc::new(Semaphore::new(1)));
        let body = |budget: &ReadBudget| {
            let content = Content::Source {
                source: pattern(3 * READ_CHUNK as u64),
                sendfile: None,
                budget: budget.clone(),
            };
            Body::from_parts(
                vec![Part::Range {
                    offset: 0,
                    len: 3 * READ_CHUNK as u64,
                }],
                content,
            )
        };
        let (mut a, mut b) = (body(&budget), body(&budget));
        let held = a.frame().await.unwrap().unwrap();
        // b waits while a's buffer holds the budget...
        let short = BUDGET_WAIT / 2;
        assert!(
            tokio::time::timeout(short, b.frame()).await.is_err(),
            "read without budget"
        );
        // ...and goes ahead once it is back,
        drop(held);
        let chunk = b.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(chunk[..], expected(0, READ_CHUNK as u64)[..]);
        // or, when it does not come back, after BUDGET_WAIT.
        let _held = a.frame().await.unwrap().unwrap();
        let started = std::time::Instant::now();
        let chunk = b.frame().await.unwrap().unwrap().into_data().unwrap();
        assert!(started.elapsed() >= BUDGET_WAIT);
        assert_eq!(
            chunk[..],
            expected(READ_CHUNK as u64, READ_CHUNK as u64)[..]
        );
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
            budget: ReadBudget::default(),
        };
        let body = Body::from_parts(vec![Part::Range { offset: 0, len: 20 }], content);
        let err = collect(body).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
