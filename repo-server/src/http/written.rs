//! What of a response's body the kernel took, on HTTP/1: the count that the access log and
//! `response_bytes_total` report, as nginx's `$body_bytes_sent` does.
//!
//! hyper takes a body chunk when its write buffer has room and writes it later, so a count made
//! when hyper takes the chunk runs ahead of the socket by what hyper holds, which a client that
//! goes away never gets. On HTTP/1 hyper hands body buffers to a vectored writer as they are (the
//! sendfile placeholders rely on the same), so the body registers each chunk's address range here
//! and the connection's writer (`conn::ConnIo`) counts the bytes of those ranges as the kernel
//! accepts them. The record of the response that yielded the last chunk is kept until that chunk
//! is written, so the log line and the metric come after the last byte.
//!
//! HTTP/2 copies data into frames of its own; there a chunk counts when h2 takes it, which hyper
//! does only once the stream has window: ahead of the socket by at most one chunk and the window.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::http::access_log::{AccessRecord, SentBytes};

struct Tracked {
    start: usize,
    end: usize,
    /// Bytes of the chunk not yet written.
    left: usize,
    sent: SentBytes,
    /// Dropped (the request logged) once the chunk is written, or with the connection.
    _completion: Option<AccessRecord>,
}

/// The body chunks handed to hyper on one connection and not yet written, in order.
#[derive(Clone, Default)]
pub struct Written(Arc<Mutex<VecDeque<Tracked>>>);

impl Written {
    /// Counts `chunk` in `sent` as it is written; `completion` is kept until then. An empty chunk
    /// is never written, so it is not tracked, and `completion` is handed back.
    pub fn track(
        &self,
        chunk: &Bytes,
        sent: SentBytes,
        completion: Option<AccessRecord>,
    ) -> Option<AccessRecord> {
        if chunk.is_empty() {
            return completion;
        }
        let start = chunk.as_ptr() as usize;
        let end = start + chunk.len();
        let mut queue = self.lock();
        // A range that overlaps this one is memory of a chunk that hyper dropped unwritten and the
        // allocator gave out again: its connection failed, and it will never be written.
        queue.retain(|t| t.end <= start || t.start >= end);
        queue.push_back(Tracked {
            start,
            end,
            left: chunk.len(),
            sent,
            _completion: completion,
        });
        None
    }

    /// The writer wrote `n` bytes from the front of `bufs`: counts those inside tracked chunks.
    pub fn wrote(&self, bufs: &[IoSlice<'_>], mut n: usize) {
        let mut queue = self.lock();
        for buf in bufs {
            if n == 0 || queue.is_empty() {
                break;
            }
            let len = n.min(buf.len());
            n -= len;
            let addr = buf.as_ptr() as usize;
            // hyper writes in order, so the chunk is nearly always the first one; the rest of a
            // partly written chunk comes back as a slice that starts inside it.
            let Some(i) = queue.iter().position(|t| addr >= t.start && addr < t.end) else {
                continue;
            };
            let t = &mut queue[i];
            let len = len.min(t.left);
            t.sent.add(len as u64);
            t.left -= len;
            if t.left == 0 {
                queue.remove(i);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Tracked>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_tracked_bytes_as_they_are_written() {
        let w = Written::default();
        let sent = SentBytes::default();
        let chunk = Bytes::from(vec![7u8; 100]);
        assert!(w.track(&chunk, sent.clone(), None).is_none());
        let head = [1u8; 30];
        // The headers and the first 40 bytes of the chunk in one write; the headers are not body.
        w.wrote(&[IoSlice::new(&head), IoSlice::new(&chunk)], 70);
        assert_eq!(sent.get(), 40);
        // The rest comes back as a slice from inside the chunk, written in two goes.
        w.wrote(&[IoSlice::new(&chunk[40..])], 35);
        w.wrote(&[IoSlice::new(&chunk[75..])], 25);
        assert_eq!(sent.get(), 100);
        assert!(w.lock().is_empty(), "a written chunk is no longer tracked");
        w.wrote(&[IoSlice::new(&chunk)], 100);
        assert_eq!(sent.get(), 100, "bytes that are not tracked count nothing");
    }

    #[test]
    fn the_last_chunk_keeps_its_record_until_it_is_written() {
        let metrics = Arc::new(crate::http::metrics::Metrics::default());
        let in_flight = || {
            let text = metrics.render();
            text.lines()
                .find_map(|l| l.strip_prefix("xenprov_repo_requests_in_flight "))
                .unwrap()
                .to_owned()
        };
        let peer = "127.0.0.1:1".parse().unwrap();
        let req = hyper::Request::get("/f").body(()).unwrap();
        let w = Written::default();
        let record = AccessRecord::start(&metrics, &req, "/f".into(), peer);
        let empty = w.track(&Bytes::new(), record.sent(), Some(record));
        assert!(
            empty.is_some(),
            "an empty chunk is never written: its record comes back"
        );
        drop(empty);
        let record = AccessRecord::start(&metrics, &req, "/f".into(), peer);
        let chunk = Bytes::from(vec![7u8; 10]);
        assert!(w.track(&chunk, record.sent(), Some(record)).is_none());
        assert_eq!(in_flight(), "1");
        w.wrote(&[IoSlice::new(&chunk[..4])], 4);
        assert_eq!(in_flight(), "1");
        w.wrote(&[IoSlice::new(&chunk[4..])], 6);
        assert_eq!(
            in_flight(),
            "0",
            "the request ends with its last byte written"
        );
    }
}
