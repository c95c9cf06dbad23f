//! `Cache-Control` from a file's place in a repository.
//!
//! Index files keep their names while their contents change at every publish, so caches must revalidate
//! them (`no-cache`; validators make that a cheap 304). Files named by their checksum (APT `by-hash/`,
//! createrepo's `<sha256>-primary.xml.gz`) never change and may be cached for a year. Everything else gets
//! no directive and relies on its validators.

use std::path::Path;

pub const REVALIDATE: &str = "no-cache";
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Exact names, then name prefixes, of index files.
const INDEX_NAMES: &[&str] = &[
    ".treeinfo",
    "treeinfo",
    ".discinfo",
    ".composeinfo",
    "InRelease",
];
const INDEX_PREFIXES: &[&str] = &[
    "repomd.xml",
    "Release",
    "Packages",
    "Sources",
    "Translation-",
    "Contents-",
];

pub fn cache_control(path: &Path) -> Option<&'static str> {
    let name = path.file_name()?.to_str()?;
    if path.iter().any(|c| c == "by-hash") || is_checksum_named(name) {
        Some(IMMUTABLE)
    } else if INDEX_NAMES.contains(&name) || INDEX_PREFIXES.iter().any(|p| name.starts_with(p)) {
        Some(REVALIDATE)
    } else {
        None
    }
}

/// createrepo_c's unique metadata names: a hex digest (sha1 or longer) and a dash.
fn is_checksum_named(name: &str) -> bool {
    name.split_once('-').is_some_and(|(digest, _)| {
        digest.len() >= 40 && digest.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        let sha = "0f".repeat(32);
        for (path, want) in [
            ("repodata/repomd.xml", Some(REVALIDATE)),
            ("repodata/repomd.xml.asc", Some(REVALIDATE)),
            ("dists/bookworm/InRelease", Some(REVALIDATE)),
            ("dists/bookworm/Release", Some(REVALIDATE)),
            ("dists/bookworm/Release.gpg", Some(REVALIDATE)),
            (
                "dists/bookworm/main/binary-amd64/Packages.xz",
                Some(REVALIDATE),
            ),
            (".treeinfo", Some(REVALIDATE)),
            (
                &format!("dists/bookworm/main/binary-amd64/by-hash/SHA256/{sha}"),
                Some(IMMUTABLE),
            ),
            (&format!("repodata/{sha}-primary.xml.gz"), Some(IMMUTABLE)),
            ("pool/main/h/hello/hello_2.10-3_amd64.deb", None),
            ("Packages/a/abc-1.0-1.x86_64.rpm", None),
            ("repodata/deadbeef-primary.xml.gz", None),
        ] {
            assert_eq!(cache_control(Path::new(path)), want, "{path}");
        }
    }
}
