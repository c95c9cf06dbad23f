//! The response body of every route: nothing, bytes in memory, or parts of a source.
//!
//! A source body is a list of parts (literal bytes such as multipart headers, and byte ranges of the
//! source) sent in order. Ranges are read in chunks of `READ_CHUNK` on the blocking pool, several small
//! parts per read, or, for large ranges on an HTTP/1 connection that offers it, handed to `sendfile`.
//! The body also carries the request's access record, which is completed when the body is dropped (hyper
//! has taken all of it or given up) or, for a body that ends in sendfile, when that last range is sent.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::task::JoinHandle;

use crate::access_log::AccessRecord;
use crate::sendfile::{PLACEHOLDER_LEN, SendfileQueue};
use crate::tree::Source;

/// Bytes read from a source per blocking call: large enough to amortise the hand-off, small enough that 64
/// busy connections stay within a few MiB.
pub const READ_CHUNK: usize = 128 << 10;

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
    },
}

pub struct Body {
    parts: VecDeque<Part>,
    source: Option<Arc<dyn Source>>,
    sendfile: Option<SendfileQueue>,
    reading: Option<JoinHandle<io::Result<Bytes>>>,
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
            Content::Source { source, sendfile } => {
                let sendfile = sendfile.filter(|_| source.as_fd().is_some());
                (parts.into(), Some(source), sendfile)
            }
        };
        Body {
            parts,
            source,
            sendfile,
            reading: None,
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

    /// Starts a blocking read of the next parts, up to `READ_CHUNK` bytes.
    fn start_read(&mut self, source: Arc<dyn Source>) {
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
        self.reading = Some(tokio::task::spawn_blocking(move || {
            read_parts(&*source, &batch, size)
        }));
    }
}

fn read_parts(source: &dyn Source, parts: &[Part], size: usize) -> io::Result<Bytes> {
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
    Ok(Bytes::from(buf))
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        let this = self.get_mut();
        if let Some(reading) = &mut this.reading {
            let read = ready!(Pin::new(reading).poll(cx));
            this.reading = None;
            return match read.map_err(io::Error::other).and_then(|r| r) {
                Ok(chunk) => this.data(chunk),
                Err(e) => Poll::Ready(Some(Err(e))),
            };
        }
        match this.parts.pop_front() {
            None => Poll::Ready(None),
            Some(Part::Bytes(chunk)) => this.data(chunk),
            Some(part @ Part::Range { offset, len }) => {
                let Some(source) = this.source.clone() else {
                    return Poll::Ready(Some(Err(io::Error::other("range part without a source"))));
                };
                if let Some(queue) = this.sendfile.clone().filter(|_| len >= SENDFILE_MIN) {
                    let n = len.min(PLACEHOLDER_LEN as u64);
                    if n < len {
                        this.parts.push_front(Part::Range {
                            offset: offset + n,
                            len: len - n,
                        });
                    }
                    let placeholder = queue.push(source, offset, n as usize);
                    let frame = this.data(placeholder);
                    if this.remaining == 0 {
                        // The request is done when sendfile has sent this range, not when hyper takes it.
                        queue.complete_with(this.record.take());
                    }
                    return frame;
                }
                this.parts.push_front(part);
                this.start_read(source);
                Pin::new(this).poll_frame(cx)
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
        };
        let body = Body::from_parts(vec![Part::Range { offset: 0, len: 20 }], content);
        let err = collect(body).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
