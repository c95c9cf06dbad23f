//! ISO 9660 images, as the repo server opens them in place: the index it builds is a tree whose every
//! child is found again by name, and every path the index names resolves (or is refused) without a panic.
//!
//! The input is the image from sector 16 on: the system area before it is never read, and leaving it out
//! keeps 32 KiB of zeros out of every input.
#![no_main]

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use xenprov_repo::static_files::iso_tree::IsoTree;
use xenprov_repo::static_files::iso9660::Kind;
use xenprov_repo::static_files::path::SafePath;
use xenprov_repo::static_files::tree::Tree;

const SYSTEM_AREA: u64 = 16 * 2048;
/// Paths looked up per image at most, so that an image of many entries does not make one run slow.
const MAX_LOOKUPS: usize = 256;

/// The image file, rewritten for every input: `IsoTree::open` reads from a path like the server does.
fn image() -> &'static (PathBuf, File) {
    static IMAGE: OnceLock<(PathBuf, File)> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("xenprov-fuzz-{}.iso", std::process::id()));
        let file = File::create(&path).unwrap();
        (path, file)
    })
}

fuzz_target!(|data: &[u8]| {
    let (path, file) = image();
    file.set_len(0).unwrap();
    file.write_all_at(data, SYSTEM_AREA).unwrap();
    let Ok(tree) = IsoTree::open(path) else {
        return;
    };
    let entries = &tree.index().entries;
    for (i, entry) in entries.iter().enumerate() {
        assert!(
            i == 0 || entry.parent < i,
            "entry {i}'s parent {} comes later",
            entry.parent
        );
        let Kind::Dir(children) = &entry.kind else {
            continue;
        };
        for pair in children.windows(2) {
            assert!(
                entries[pair[0]].name < entries[pair[1]].name,
                "children of {i} unsorted or repeated"
            );
        }
        for &c in children {
            let name = entries[c].name.as_encoded_bytes();
            assert!(!name.is_empty() && !name.contains(&b'/') && name != b"." && name != b"..");
            assert_eq!(entries[c].parent, i);
            assert_eq!(tree.index().child(i, name), Some(c));
        }
    }
    // Each entry's path, built from its parents, looked up as a request would: symlinks inside the image
    // are followed (loops end at the hop limit) and directories listed.
    for i in 1..entries.len().min(MAX_LOOKUPS) {
        let mut names = Vec::new();
        let mut at = i;
        while at != 0 {
            names.push(entries[at].name.to_string_lossy());
            at = entries[at].parent;
        }
        names.reverse();
        let Ok(path) = SafePath::from_uri_path(&format!("/{}", names.join("/"))) else {
            continue;
        };
        let _ = tree.open(&path);
        let _ = tree.list(&path);
    }
});
