//! What a response body reads a file from: a `Source` with its `Meta`. Trees (`static_files::tree`) hand
//! these out; the body and sendfile read them, without knowing which kind of tree a file came from.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::SystemTime;

/// Size, modification time and a stable identity (inode-like) of a file or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub len: u64,
    pub modified: SystemTime,
    pub id: u64,
}

/// A file-like source: fixed size and time, positional reads.
pub trait Source: Send + Sync + 'static {
    fn meta(&self) -> &Meta;

    /// Reads up to `buf.len()` bytes at `offset`, like `pread(2)`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// An open regular file holding the bytes from `fd_offset` on, so the kernel can send them directly.
    fn as_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    /// Where byte 0 of the source lies in the file of `as_fd` (a file inside an ISO image is at its extent).
    fn fd_offset(&self) -> u64 {
        0
    }

    /// Fills `buf` from `offset`; a file that shrank since it was opened is an error, never a short body.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while being served",
                    ));
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
