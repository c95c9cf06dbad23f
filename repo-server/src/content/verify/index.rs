//! APT index files: `Packages` (every package's file name, size and SHA256) and the `SHA256SUMS` of
//! installer images, decompressed according to their name.

use std::io::{self, Read};

use super::{Expected, Sha256};

/// Largest decompressed index accepted (Debian's biggest `Packages` is under 100 MB).
const MAX_INDEX: u64 = 1 << 30;

/// What kind of list a file named in a Release is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    Packages,
    Sha256Sums,
}

impl IndexKind {
    pub fn of(path: &str) -> Option<IndexKind> {
        let name = path.rsplit('/').next().unwrap_or(path);
        let stem = strip_compression(name);
        match stem {
            "Packages" => Some(IndexKind::Packages),
            "SHA256SUMS" => Some(IndexKind::Sha256Sums),
            _ => None,
        }
    }
}

/// `Packages.xz` → `Packages`.
pub fn strip_compression(name: &str) -> &str {
    for ext in [".xz", ".gz", ".zst", ".bz2", ".lzma"] {
        if let Some(stem) = name.strip_suffix(ext) {
            return stem;
        }
    }
    name
}

/// The contents of `data`, decompressed according to the extension of `name`.
pub fn decompress(name: &str, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let reader: Box<dyn Read + '_> = if name.ends_with(".xz") {
        Box::new(liblzma::read::XzDecoder::new(data))
    } else if name.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(data))
    } else if name.ends_with(".zst") {
        Box::new(zstd::stream::read::Decoder::new(data)?)
    } else if name.ends_with(".bz2") || name.ends_with(".lzma") {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{name}: bzip2/lzma indexes are not read; use the .xz or .gz variant"),
        ));
    } else {
        return Ok(data.to_vec());
    };
    reader.take(MAX_INDEX).read_to_end(&mut out)?;
    Ok(out)
}

/// `(Filename, expected)` of every paragraph of a `Packages` index that has all three fields.
pub fn packages(text: &str) -> Vec<(String, Expected)> {
    let mut out = Vec::new();
    for paragraph in text.split("\n\n") {
        let (mut file, mut sha, mut size) = (None, None, None);
        for line in paragraph.lines() {
            if let Some(v) = line.strip_prefix("Filename:") {
                file = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("SHA256:") {
                sha = Sha256::from_hex(v);
            } else if let Some(v) = line.strip_prefix("Size:") {
                size = v.trim().parse().ok();
            }
        }
        if let (Some(file), Some(sha256), Some(size)) = (file, sha, size) {
            out.push((
                file.to_string(),
                Expected {
                    sha256,
                    size: Some(size),
                },
            ));
        }
    }
    out
}

/// `(path, expected)` of `SHA256SUMS` lines (`HASH  ./netboot/xen/vmlinuz`), paths relative to its directory
/// (read by `xenprov_core::checksums`, the guest tool's reader too).
pub fn sha256sums(text: &str) -> Vec<(String, Expected)> {
    xenprov_core::checksums::sha256sums(text)
        .into_iter()
        .filter_map(|(path, hash)| {
            let sha256 = Sha256::from_hex(&hash)?;
            Some((path, Expected { sha256, size: None }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const H: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn packages_paragraphs() {
        let text = format!(
            "Package: a\nFilename: pool/main/a/a_1_all.deb\nSize: 3\nSHA256: {H}\nDescription: x\n more\n\n\
             Package: b\nFilename: pool/main/b/b_1_all.deb\nSize: 4\n\n"
        );
        let p = packages(&text);
        assert_eq!(p.len(), 1, "b lacks a SHA256 and is left out");
        assert_eq!(p[0].0, "pool/main/a/a_1_all.deb");
        assert_eq!(p[0].1.size, Some(3));
    }

    #[test]
    fn sums_and_kinds() {
        let s = sha256sums(&format!(
            "{H}  ./netboot/xen/vmlinuz\n{H} *./x\nnot a line\n"
        ));
        assert_eq!(s[0].0, "netboot/xen/vmlinuz");
        assert_eq!(s[1].0, "x");
        assert_eq!(s.len(), 2);
        assert_eq!(
            IndexKind::of("main/binary-amd64/Packages.xz"),
            Some(IndexKind::Packages)
        );
        assert_eq!(
            IndexKind::of("main/installer-amd64/current/images/SHA256SUMS"),
            Some(IndexKind::Sha256Sums)
        );
        assert_eq!(IndexKind::of("main/i18n/Translation-en.bz2"), None);
    }

    #[test]
    fn decompresses_by_name() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"Package: a\n").unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(decompress("Packages.gz", &gz).unwrap(), b"Package: a\n");
        let xz = liblzma::encode_all(&b"Package: b\n"[..], 1).unwrap();
        assert_eq!(decompress("Packages.xz", &xz).unwrap(), b"Package: b\n");
        let zst = zstd::encode_all(&b"Package: c\n"[..], 1).unwrap();
        assert_eq!(decompress("x.zst", &zst).unwrap(), b"Package: c\n");
        assert_eq!(decompress("Packages", b"raw").unwrap(), b"raw");
        assert!(decompress("Packages.xz", b"not xz").is_err());
        assert!(decompress("Packages.bz2", b"").is_err());
    }
}
