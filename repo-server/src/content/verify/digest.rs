//! SHA-256 of files and of data as it is written. The sha2 crate picks the CPU's SHA extensions (SHA-NI,
//! ARMv8 SHA2) at run time, so there is no feature to enable.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::Digest;

use super::Sha256;

/// Read size when hashing a file: large enough that system calls do not matter next to hashing.
const READ_BUF: usize = 1 << 20;

/// SHA-256 and length of everything `reader` yields.
pub fn hash_reader(mut reader: impl Read) -> io::Result<(Sha256, u64)> {
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; READ_BUF];
    let mut len = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((Sha256(hasher.finalize().into()), len))
}

pub fn hash_file(path: &Path) -> io::Result<(Sha256, u64)> {
    let file = File::open(path)?;
    let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::Sequential);
    hash_reader(file)
}

pub fn hash_bytes(data: &[u8]) -> Sha256 {
    Sha256(sha2::Sha256::digest(data).into())
}

/// A writer that hashes what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: sha2::Sha256,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> HashingWriter<W> {
        HashingWriter {
            inner,
            hasher: sha2::Sha256::new(),
            len: 0,
        }
    }

    /// Feeds bytes that are already in the destination (a resumed download's first part).
    pub fn update_existing(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.len += data.len() as u64;
    }

    pub fn inner_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn finish(self) -> (W, Sha256, u64) {
        (self.inner, Sha256(self.hasher.finalize().into()), self.len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn known_digests() {
        assert_eq!(hash_bytes(b"").to_hex(), EMPTY);
        assert_eq!(hash_bytes(b"abc").to_hex(), ABC);
        let (h, len) = hash_reader(&b"abc"[..]).unwrap();
        assert_eq!((h.to_hex().as_str(), len), (ABC, 3));
    }

    #[test]
    fn writer_with_existing_prefix() {
        let mut w = HashingWriter::new(Vec::new());
        w.update_existing(b"a");
        w.write_all(b"bc").unwrap();
        let (inner, h, len) = w.finish();
        assert_eq!((inner, h.to_hex().as_str(), len), (b"bc".to_vec(), ABC, 3));
    }

    #[test]
    fn large_file_across_buffers() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..3 * READ_BUF + 5).map(|i| (i % 253) as u8).collect();
        std::fs::write(dir.path().join("f"), &data).unwrap();
        let (h, len) = hash_file(&dir.path().join("f")).unwrap();
        assert_eq!((h, len), (hash_bytes(&data), data.len() as u64));
    }
}
