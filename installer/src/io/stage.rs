//! Runs a reader on its own thread and hands its bytes over in large chunks, so reading, hashing
//! and decompressing the payload overlap with writing the files on the other CPUs.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

const CHUNK: usize = 1 << 20;
/// Chunks in flight between the two threads.
const DEPTH: usize = 8;

pub struct Stage<R> {
    rx: Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    pos: usize,
    done: bool,
    thread: Option<JoinHandle<R>>,
}

impl<R: Read + Send + 'static> Stage<R> {
    pub fn spawn(mut inner: R) -> Stage<R> {
        let (tx, rx): (SyncSender<io::Result<Vec<u8>>>, _) = sync_channel(DEPTH);
        let thread = std::thread::spawn(move || {
            loop {
                let mut buf = vec![0u8; CHUNK];
                let mut filled = 0;
                let result = loop {
                    match inner.read(&mut buf[filled..]) {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            filled += n;
                            if filled == CHUNK {
                                break Ok(());
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                buf.truncate(filled);
                let last = filled < CHUNK || result.is_err();
                let msg = result.map(|()| buf);
                if tx.send(msg).is_err() || last {
                    break;
                }
            }
            inner
        });
        Stage {
            rx,
            current: Vec::new(),
            pos: 0,
            done: false,
            thread: Some(thread),
        }
    }

    /// Reads what is left and returns the inner reader from its thread.
    pub fn finish(mut self) -> io::Result<R> {
        io::copy(&mut self, &mut io::sink())?;
        let t = self.thread.take().expect("finish is called once");
        drop(self);
        t.join()
            .map_err(|_| io::Error::other("a payload reader thread panicked"))
    }
}

impl<R> Read for Stage<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.done = chunk.len() < CHUNK;
                    self.current = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_every_byte_and_returns_the_reader() {
        let data: Vec<u8> = (0..(3 * CHUNK + 12345)).map(|i| (i % 251) as u8).collect();
        let mut s = Stage::spawn(io::Cursor::new(data.clone()));
        let mut head = vec![0u8; 1000];
        s.read_exact(&mut head).unwrap();
        assert_eq!(head, data[..1000]);
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, data[1000..]);
        let inner = s.finish().unwrap();
        assert_eq!(inner.position() as usize, data.len());
    }

    #[test]
    fn finish_drains_what_was_not_read() {
        let data = vec![7u8; 2 * CHUNK + 1];
        let s = Stage::spawn(io::Cursor::new(data.clone()));
        assert_eq!(s.finish().unwrap().position() as usize, data.len());
    }

    #[test]
    fn errors_reach_the_reader() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let mut s = Stage::spawn(Broken);
        let e = s.read(&mut [0u8; 10]).unwrap_err();
        assert_eq!(e.to_string(), "disk on fire");
    }
}
