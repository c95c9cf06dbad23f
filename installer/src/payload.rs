//! Unpacking the dom0 payload onto the mounted target, verifying its SHA-256 against the manifest
//! as it streams. A mismatch fails the install after the fact, before the disk is made bootable.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use anyhow::{Context, Result, bail};
use xenprov_core::payload::Manifest;

use crate::io::hash::HashReader;
use crate::io::progress::{Mode, ProgressReader};
use crate::io::stage::Stage;

const BUF: usize = 1 << 20;

/// Reads the manifest beside the archive.
pub fn load_manifest(path: &Path) -> Result<Manifest> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Manifest::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Unpacks `archive` (described by `m`) into `dest`; returns the bytes of archive read.
pub fn unpack(archive: &Path, m: &Manifest, dest: &Path, mode: Mode) -> Result<u64> {
    let f =
        File::open(archive).with_context(|| format!("opening payload {}", archive.display()))?;
    let len = f.metadata()?.len();
    if len != m.size {
        bail!(
            "payload {} is {len} bytes but its manifest says {}; the medium is damaged or mixed",
            archive.display(),
            m.size
        );
    }
    // Three threads: read and hash, decompress, write the files.
    let hashed = HashReader::new(BufReader::with_capacity(BUF, f));
    let read = Stage::spawn(ProgressReader::new(
        hashed,
        m.size,
        "unpacking the dom0 payload",
        mode,
    ));
    let read = match m.format.as_str() {
        "tar+zstd" => {
            let dec = zstd::Decoder::with_buffer(BufReader::with_capacity(BUF, read))?;
            let dec = crate::unpack::unpack(Stage::spawn(dec), dest)?.finish()?;
            dec.finish().into_inner()
        }
        _ => crate::unpack::unpack(read, dest)?,
    };
    let counted = read.finish()?;
    let (sha, n) = counted.into_inner().finish()?;
    if sha != m.sha256 {
        bail!(
            "payload {} has SHA-256 {sha}, but its manifest says {}: refusing to finish this install",
            archive.display(),
            m.sha256
        );
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn archive(dir: &Path, zstd_level: Option<i32>) -> (std::path::PathBuf, Manifest) {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o640);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, "etc/motd", &b"hello"[..]).unwrap();
        let raw = b.into_inner().unwrap();
        let (data, format) = match zstd_level {
            Some(l) => (zstd::encode_all(&raw[..], l).unwrap(), "tar+zstd"),
            None => (raw, "tar"),
        };
        let p = dir.join("payload.tar");
        std::fs::write(&p, &data).unwrap();
        let m = Manifest {
            file: "payload.tar".into(),
            format: format.into(),
            sha256: hex::encode(Sha256::digest(&data)),
            size: data.len() as u64,
            unpacked_size: 5,
            usage: Default::default(),
            kernel_version: None,
            xen_version: None,
        };
        (p, m)
    }

    #[test]
    fn unpacks_and_verifies_both_formats() {
        for level in [None, Some(3)] {
            let src = tempfile::tempdir().unwrap();
            let dst = tempfile::tempdir().unwrap();
            let (p, m) = archive(src.path(), level);
            unpack(&p, &m, dst.path(), Mode::None).unwrap();
            assert_eq!(
                std::fs::read_to_string(dst.path().join("etc/motd")).unwrap(),
                "hello"
            );
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dst.path().join("etc/motd"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o640);
        }
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let (p, mut m) = archive(src.path(), Some(3));
        m.sha256 = "0".repeat(64);
        let e = unpack(&p, &m, dst.path(), Mode::None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("SHA-256") && e.contains("refusing"), "{e}");
        m.size += 1;
        let e = unpack(&p, &m, dst.path(), Mode::None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("damaged"), "{e}");
    }
}
