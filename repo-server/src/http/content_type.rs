//! `Content-Type` from a file name, for the files that repositories and install trees contain.

use std::path::Path;

const TEXT: &str = "text/plain; charset=utf-8";
const BINARY: &str = "application/octet-stream";

/// Extension (lowercase) → media type.
const BY_EXTENSION: &[(&str, &str)] = &[
    ("rpm", "application/x-rpm"),
    ("deb", "application/vnd.debian.binary-package"),
    ("udeb", "application/vnd.debian.binary-package"),
    ("xml", "application/xml"),
    ("gz", "application/gzip"),
    ("xz", "application/x-xz"),
    ("zst", "application/zstd"),
    ("bz2", "application/x-bzip2"),
    ("zck", BINARY),
    ("sqlite", "application/vnd.sqlite3"),
    ("iso", "application/x-iso9660-image"),
    ("img", BINARY),
    ("efi", BINARY),
    ("asc", "application/pgp-signature"),
    ("gpg", "application/pgp-signature"),
    ("sig", "application/pgp-signature"),
    ("json", "application/json"),
    ("yaml", "application/yaml"),
    ("yml", "application/yaml"),
    ("html", "text/html; charset=utf-8"),
    ("txt", TEXT),
    ("treeinfo", TEXT),
    ("discinfo", TEXT),
    ("composeinfo", TEXT),
    ("ks", TEXT),
    ("cfg", TEXT),
    ("ipxe", TEXT),
    ("sha256sum", TEXT),
    ("md5sum", TEXT),
];

/// Extension-less names of text indexes (Debian archives, install media).
const TEXT_NAMES: &[&str] = &[
    "InRelease",
    "Release",
    "Packages",
    "Sources",
    "Index",
    "MANIFEST",
    "SHA256SUMS",
    "treeinfo",
];

pub fn content_type(path: &Path) -> &'static str {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return BINARY;
    };
    if TEXT_NAMES.contains(&name) || path.parent().is_some_and(|p| p.ends_with(".disk")) {
        return TEXT;
    }
    let ext = match name.rsplit_once('.') {
        Some((_, ext)) => ext.to_ascii_lowercase(),
        None => return BINARY,
    };
    BY_EXTENSION
        .iter()
        .find(|(e, _)| *e == ext)
        .map_or(BINARY, |(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_files() {
        for (name, want) in [
            ("Packages/foo-1.0-1.noarch.rpm", "application/x-rpm"),
            (
                "pool/main/h/hello/hello_2.10_amd64.deb",
                "application/vnd.debian.binary-package",
            ),
            ("repodata/repomd.xml", "application/xml"),
            ("repodata/abc-primary.xml.gz", "application/gzip"),
            ("dists/x/main/binary-amd64/Packages.xz", "application/x-xz"),
            ("repodata/abc-primary.xml.zst", "application/zstd"),
            (
                "dists/x/main/binary-amd64/Packages.BZ2",
                "application/x-bzip2",
            ),
            ("Rocky-9.iso", "application/x-iso9660-image"),
            ("images/install.img", BINARY),
            (".treeinfo", TEXT),
            ("ks/web1.ks", TEXT),
            ("dists/x/InRelease", TEXT),
            ("dists/x/main/binary-amd64/Packages", TEXT),
            (".disk/info", TEXT),
            ("images/pxeboot/vmlinuz", BINARY),
            ("dists/x/Release.gpg", "application/pgp-signature"),
        ] {
            assert_eq!(content_type(Path::new(name)), want, "{name}");
        }
    }
}
