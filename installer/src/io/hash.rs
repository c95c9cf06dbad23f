//! A reader that computes SHA-256 and counts bytes of everything read through it.

use std::io::{self, Read};

use sha2::{Digest, Sha256};

pub struct HashReader<R> {
    inner: R,
    digest: Sha256,
    bytes: u64,
}

impl<R: Read> HashReader<R> {
    pub fn new(inner: R) -> HashReader<R> {
        HashReader {
            inner,
            digest: Sha256::new(),
            bytes: 0,
        }
    }

    /// Reads what is left, so the hash covers the whole stream, and returns it as lower-case hex
    /// with the byte count.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((hex::encode(self.digest.finalize()), self.bytes))
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digest.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_what_is_read_and_what_is_left() {
        let mut r = HashReader::new(&b"hello world"[..]);
        let mut first = [0u8; 5];
        r.read_exact(&mut first).unwrap();
        let (h, n) = r.finish().unwrap();
        assert_eq!(n, 11);
        assert_eq!(
            h,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
    }
}
