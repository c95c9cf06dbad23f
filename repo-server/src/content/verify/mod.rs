//! Verification along a repository's signed chain, and the parsers it needs.
//!
//! APT: `InRelease` (or `Release` + `Release.gpg`) is checked with gpgv against a keyring (`signature`),
//! then its SHA256 list names every index (`release`), and each `Packages` index names every package
//! (`index`). RPM: `repomd.xml` (optionally with `repomd.xml.asc`) names each metadata file, and
//! `primary.xml` names every package (`repomd`); an install tree's `.treeinfo` names its images (`treeinfo`).
//! Files are hashed while they are written (`digest`); keyrings, binary or ASCII-armored, are read for
//! gpgv by `keyring`.

pub mod digest;
pub mod index;
pub mod keyring;
pub mod release;
pub mod repomd;
pub mod signature;
pub mod treeinfo;

use std::fmt;

/// What a file must be, as its verified parent says: its SHA-256 and, when the parent gives it, its size.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Expected {
    pub sha256: Sha256,
    pub size: Option<u64>,
}

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    /// Parses 64 hex digits (either case).
    pub fn from_hex(text: &str) -> Option<Sha256> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut out).ok()?;
        Some(Sha256(out))
    }

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({self})")
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.size {
            Some(size) => write!(f, "sha256 {} ({size} bytes)", self.sha256),
            None => write!(f, "sha256 {}", self.sha256),
        }
    }
}

/// Joins a path relative to a metadata file's directory (`dists/bookworm` + `main/binary-amd64/Packages`),
/// refusing anything that could climb out or name a hidden file.
pub fn join_relative(dir: &str, rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = dir.split('/').filter(|c| !c.is_empty()).collect();
    for c in rel.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c if c.starts_with('.') && !matches!(c, ".treeinfo" | ".discinfo") => return None,
            c if c.contains(['\\', '\0']) => return None,
            c => parts.push(c),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let h = Sha256::from_hex(hex).unwrap();
        assert_eq!(h.to_string(), hex);
        assert_eq!(Sha256::from_hex(&hex.to_uppercase()), Some(h));
        assert!(Sha256::from_hex("abc").is_none());
        assert!(Sha256::from_hex(&"g".repeat(64)).is_none());
    }

    #[test]
    fn relative_joins() {
        assert_eq!(
            join_relative("dists/bookworm", "main/binary-amd64/Packages.xz").as_deref(),
            Some("dists/bookworm/main/binary-amd64/Packages.xz")
        );
        assert_eq!(
            join_relative("", "./netboot/xen/vmlinuz").as_deref(),
            Some("netboot/xen/vmlinuz")
        );
        for bad in ["../x", "a/../../x", ".git/config", "a\\b"] {
            assert_eq!(join_relative("dists/s", bad), None, "{bad}");
        }
    }
}
