//! What the fuzz targets of repository metadata share: the check that a path taken from untrusted
//! metadata, once `join_relative` accepted it, stays inside the mirror.

use std::path::{Component, Path};

/// Panics unless `joined` (what `join_relative` made of `raw`) is a relative path of plain, visible
/// names: the mirror writes and the server serves files at such paths.
pub fn assert_plain_relative(joined: &str, raw: &str) {
    assert!(!joined.is_empty(), "{raw:?} joined to an empty path");
    for c in Path::new(joined).components() {
        let Component::Normal(name) = c else {
            panic!("{raw:?} joined to {joined:?}, with component {c:?}");
        };
        let name = name.as_encoded_bytes();
        assert!(
            !name.contains(&0) && !name.contains(&b'\\'),
            "{raw:?} joined to {joined:?}"
        );
        assert!(
            !name.starts_with(b".") || name == b".treeinfo" || name == b".discinfo",
            "{raw:?} joined to hidden {joined:?}"
        );
    }
}
