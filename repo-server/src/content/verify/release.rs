//! APT `Release` files (the text gpgv vouched for): suite fields and the SHA256 list of index files.

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::{Expected, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// Single-line fields (`Suite`, `Codename`, `Components`, ...).
    pub fields: BTreeMap<String, String>,
    /// `path` (relative to the Release's directory) → what the file must be.
    pub files: BTreeMap<String, Expected>,
    /// `path` → its SHA512 in hex, when the Release lists one: apt then asks for `by-hash/SHA512/...`.
    pub sha512: BTreeMap<String, String>,
}

impl Release {
    pub fn parse(text: &str) -> Result<Release, String> {
        let mut fields = BTreeMap::new();
        let mut files = BTreeMap::new();
        let mut sha512 = BTreeMap::new();
        let mut section = String::new();
        for line in text.lines() {
            if let Some(entry) = line.strip_prefix(' ') {
                if section == "SHA512" {
                    let mut words = entry.split_whitespace();
                    if let (Some(hash), Some(_), Some(path)) =
                        (words.next(), words.next(), words.next())
                        && hash.len() == 128
                        && hash.bytes().all(|b| b.is_ascii_hexdigit())
                    {
                        sha512.insert(path.to_string(), hash.to_ascii_lowercase());
                    }
                }
                if section != "SHA256" {
                    continue;
                }
                let mut words = entry.split_whitespace();
                let (Some(hash), Some(size), Some(path), None) =
                    (words.next(), words.next(), words.next(), words.next())
                else {
                    return Err(format!("malformed SHA256 line {line:?}"));
                };
                let sha256 =
                    Sha256::from_hex(hash).ok_or_else(|| format!("bad SHA256 in {line:?}"))?;
                let size = size.parse().map_err(|_| format!("bad size in {line:?}"))?;
                files.insert(
                    path.to_string(),
                    Expected {
                        sha256,
                        size: Some(size),
                    },
                );
            } else if let Some((key, value)) = line.split_once(':') {
                section = key.to_string();
                if !value.trim().is_empty() {
                    fields.insert(key.to_string(), value.trim().to_string());
                }
            }
        }
        if files.is_empty() {
            return Err(
                "no SHA256 list of index files (MD5Sum and SHA1 alone are not accepted)".into(),
            );
        }
        Ok(Release {
            fields,
            files,
            sha512,
        })
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    /// Whether clients may fetch indexes by hash (`Acquire-By-Hash: yes`).
    pub fn by_hash(&self) -> bool {
        self.field("Acquire-By-Hash") == Some("yes")
    }

    /// Refuses a Release whose `Valid-Until` has passed, as apt does (it would let a mirror replay an old,
    /// vulnerable archive forever).
    pub fn check_valid(&self, now: SystemTime) -> Result<(), String> {
        let Some(until) = self.field("Valid-Until") else {
            return Ok(());
        };
        let date = httpdate::parse_http_date(&until.replace("UTC", "GMT"))
            .map_err(|_| format!("unreadable Valid-Until {until:?}"))?;
        if date < now {
            return Err(format!("expired: Valid-Until {until}"));
        }
        Ok(())
    }

    /// The by-hash paths apt may ask for instead of `path` (listed with `name` in this Release), each
    /// holding the same file: `DIR/by-hash/SHA256/…` and, when listed, `DIR/by-hash/SHA512/…`.
    pub fn by_hash_paths(&self, path: &str, name: &str) -> Vec<String> {
        let Some(expected) = self.files.get(name) else {
            return Vec::new();
        };
        let dir = path.rsplit_once('/').map_or("", |(dir, _)| dir);
        let at = |kind: &str, hash: &str| match dir {
            "" => format!("by-hash/{kind}/{hash}"),
            dir => format!("{dir}/by-hash/{kind}/{hash}"),
        };
        let mut paths = vec![at("SHA256", &expected.sha256.to_hex())];
        if let Some(h) = self.sha512.get(name) {
            paths.push(at("SHA512", h));
        }
        paths
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    const TEXT: &str = "Origin: Debian\nSuite: stable\nCodename: bookworm\nAcquire-By-Hash: yes\n\
Valid-Until: Sat, 17 Feb 2024 09:18:50 UTC\nMD5Sum:\n 0123456789abcdef0123456789abcdef 10 main/binary-amd64/Packages\n\
SHA256:\n e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 0 main/binary-amd64/Packages\n \
ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad 3 main/binary-amd64/Packages.xz\n\
SHA512:\n ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB 3 main/binary-amd64/Packages.xz\n";

    #[test]
    fn parses_fields_and_sha256() {
        let r = Release::parse(TEXT).unwrap();
        assert_eq!(r.field("Codename"), Some("bookworm"));
        assert!(r.by_hash());
        assert_eq!(r.files.len(), 2);
        let xz = &r.files["main/binary-amd64/Packages.xz"];
        assert_eq!(xz.size, Some(3));
        let sha512 = "ab".repeat(64);
        assert_eq!(
            r.by_hash_paths(
                "dists/s/main/binary-amd64/Packages.xz",
                "main/binary-amd64/Packages.xz"
            ),
            [
                "dists/s/main/binary-amd64/by-hash/SHA256/ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                &format!("dists/s/main/binary-amd64/by-hash/SHA512/{sha512}")
            ]
        );
    }

    #[test]
    fn validity_and_refusals() {
        let r = Release::parse(TEXT).unwrap();
        let before = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let after = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert!(r.check_valid(before).is_ok());
        assert!(r.check_valid(after).unwrap_err().contains("expired"));
        assert!(
            Release::parse("Origin: x\nMD5Sum:\n 00 1 a\n")
                .unwrap_err()
                .contains("SHA256")
        );
        assert!(
            Release::parse("SHA256:\n zz 1 a\n")
                .unwrap_err()
                .contains("bad SHA256")
        );
        assert!(
            Release::parse("SHA256:\n 00 1\n")
                .unwrap_err()
                .contains("malformed")
        );
    }
}
