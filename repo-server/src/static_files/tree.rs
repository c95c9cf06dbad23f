//! What the static handler serves from: a tree of directories and file-like sources.
//!
//! The handler sees only these traits, so trees that are not directories on disk (an ISO image read in
//! place, a verifying cache) plug in beside `FsTree` without touching HTTP code. All methods block; they
//! are meant for metadata lookups and positional reads, which the handler schedules.

use std::ffi::OsString;
use std::io;
use std::sync::Arc;

pub use crate::http::source::{Meta, Source};
use crate::static_files::path::SafePath;

pub enum Node {
    File(Arc<dyn Source>),
    Dir(Meta),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: OsString,
    pub is_dir: bool,
    pub meta: Meta,
}

/// A tree of files. `NotFound` covers everything a client must not learn about (missing, hidden, outside
/// the root); `PermissionDenied` is a readable-but-forbidden entry.
pub trait Tree: Send + Sync + 'static {
    fn open(&self, path: &SafePath) -> io::Result<Node>;

    /// The visible entries of a directory, unsorted.
    fn list(&self, path: &SafePath) -> io::Result<Vec<DirEntry>>;
}
