//! Unpacking the dom0 payload onto the mounted target, verifying its SHA-256 against the manifest
//! as it streams. A mismatch fails the install after the fact, before the disk is made bootable.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use xenprov_core::payload::{Deb, Manifest};

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

/// Copies the package `d` from `src_dir` (the manifest's directory) into `dest_dir`, checking its size
/// and SHA-256 on the way; returns the copy's path. A copy that does not match is removed.
pub fn copy_deb(src_dir: &Path, d: &Deb, dest_dir: &Path) -> Result<PathBuf> {
    let src = src_dir.join(&d.file);
    let name = Path::new(&d.file)
        .file_name()
        .context("a package's file has a name")?;
    let dest = dest_dir.join(name);
    let f = File::open(&src).with_context(|| format!("opening package {}", src.display()))?;
    let mut hashed = HashReader::new(BufReader::with_capacity(BUF, f));
    let mut out = File::create(&dest).with_context(|| format!("creating {}", dest.display()))?;
    std::io::copy(&mut hashed, &mut out).with_context(|| format!("copying {}", src.display()))?;
    let (sha, n) = hashed.finish()?;
    if n != d.size || sha != d.sha256 {
        std::fs::remove_file(&dest).ok();
        bail!(
            "package {} is {n} bytes with SHA-256 {sha}, but the payload's manifest says {} bytes with \
             {}: the medium is damaged or mixed",
            src.display(),
            d.size,
            d.sha256
        );
    }
    Ok(dest)
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
            debs: vec![],
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

    #[test]
    fn a_package_is_copied_only_as_its_manifest_says() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        std::fs::create_dir(src.path().join("debs")).unwrap();
        std::fs::write(src.path().join("debs/x_1_amd64.deb"), b"!<arch>\n").unwrap();
        let mut d = Deb {
            package: "x".into(),
            version: "1".into(),
            file: "debs/x_1_amd64.deb".into(),
            sha256: hex::encode(Sha256::digest(b"!<arch>\n")),
            size: 8,
        };
        let copy = copy_deb(src.path(), &d, dst.path()).unwrap();
        assert_eq!(copy, dst.path().join("x_1_amd64.deb"));
        assert_eq!(std::fs::read(&copy).unwrap(), b"!<arch>\n");
        std::fs::remove_file(&copy).unwrap();
        d.sha256 = "0".repeat(64);
        let e = format!("{:#}", copy_deb(src.path(), &d, dst.path()).unwrap_err());
        assert!(e.contains("x_1_amd64.deb") && e.contains("damaged"), "{e}");
        assert!(!copy.exists(), "a copy that does not match is removed");
        d.file = "debs/missing.deb".into();
        let e = format!("{:#}", copy_deb(src.path(), &d, dst.path()).unwrap_err());
        assert!(e.contains("missing.deb"), "{e}");
    }
}
