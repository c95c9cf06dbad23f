//! APT index files, as the mirror reads them once their hash matched the Release: `Packages` paragraphs
//! and installer `SHA256SUMS` lines. No panic, no more entries than the text has paragraphs or lines, and
//! every file they name is either refused or stays inside the mirror.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenprov_repo::content::verify::{index, join_relative};
use xenprov_repo_fuzz::assert_plain_relative;

fuzz_target!(|text: &str| {
    let packages = index::packages(text);
    assert!(packages.len() <= text.split("\n\n").count());
    for (file, expected) in &packages {
        assert!(expected.size.is_some(), "{file:?} kept without a Size");
        if let Some(path) = join_relative("", file) {
            assert_plain_relative(&path, file);
        }
    }
    let sums = index::sha256sums(text);
    assert!(sums.len() <= text.lines().count());
    for (file, _) in &sums {
        if let Some(path) = join_relative(
            "debian/dists/stable/main/installer-amd64/current/images",
            file,
        ) {
            assert_plain_relative(&path, file);
        }
    }
});
