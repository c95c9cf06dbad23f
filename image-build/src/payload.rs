//! The dom0 payload: the root file system as one zstd-compressed pax tar (`payload.tar.zst`), our
//! packages beside it in `debs/` for the installer to install with dpkg, and `payload.json` that
//! describes both.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::rootfs::{Base, Kernel, Package, Xen};

pub const ARCHIVE: &str = "payload.tar.zst";
pub const MANIFEST: &str = "payload.json";
/// Where the packages go, beside the manifest (and so on the ISO, beside the archive).
pub const DEBS_DIR: &str = "debs";
/// Decompression speed barely depends on the level; 9 trades a little build time for a smaller ISO.
const ZSTD_LEVEL: i32 = 9;

/// `payload.json`: what the installer reads (`xenprov_core::payload::Manifest`) and, beside it, what the
/// payload is made of.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Manifest {
    #[serde(flatten)]
    pub archive: xenprov_core::payload::Manifest,
    pub format_version: u32,
    /// Size of the uncompressed tar stream.
    pub tar_size: u64,
    /// Number of archive entries (directories, files, links).
    pub entries: u64,
    pub tar_format: TarFormat,
    pub kernel: Kernel,
    pub xen: Xen,
    pub suite: String,
    pub mirror: String,
    pub cache_key: String,
    pub packages: Vec<Package>,
}

/// What writing the archive measured.
struct Written {
    sha256: String,
    size: u64,
    tar_size: u64,
}

/// The exact tar dialect, so an unpacker can be checked against it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TarFormat {
    pub compression: String,
    pub tar: String,
    pub paths: String,
    pub owners: String,
    pub xattrs: String,
    pub entries: String,
    pub unpack: String,
}

impl TarFormat {
    fn current() -> TarFormat {
        TarFormat {
            compression: format!("zstd, level {ZSTD_LEVEL}, one or more frames, window at most 8 MiB"),
            tar: "POSIX.1-2001 pax (GNU tar --format=pax), 512-byte blocks; per-file extended headers carry \
                  path/linkpath/size/mtime when ustar fields cannot; no atime or ctime records"
                .into(),
            paths: "relative, starting with ./, sorted by name; the root directory is the entry ./".into(),
            owners: "numeric uid/gid only (no user or group names); ids are the dom0's own".into(),
            xattrs: "every extended attribute (e.g. security.capability) as a SCHILY.xattr.<name> pax record; \
                     no ACLs"
                .into(),
            entries: "directories, regular files, symlinks, hard links (target relative to the archive root); \
                      no device nodes, FIFOs, sockets or sparse entries (dev/ is empty)"
                .into(),
            unpack: "set ownership, then mode (keeps setuid bits), then xattrs (keeps file capabilities): \
                     tar::Archive with preserve_ownerships, preserve_permissions, unpack_xattrs and preserve_mtime"
                .into(),
        }
    }
}

struct Subtree {
    path: String,
    bytes: u64,
    entries: u64,
}

/// Writes `payload.tar.zst` (the base root file system) into `out_dir`, our packages of whichever
/// binaries exist in `bin_dir` into `out_dir/debs`, and `payload.json` describing both.
pub fn build(base: &Base, bin_dir: &Path, out_dir: &Path) -> Result<Manifest> {
    fs::create_dir_all(out_dir)?;
    let built = crate::debs::build(bin_dir, &out_dir.join(DEBS_DIR), crate::debs::Set::Dom0)?;
    let written = write_archive(&base.rootfs, &out_dir.join(ARCHIVE))?;
    let tree = measure(&base.rootfs)?;
    let mut usage: BTreeMap<String, u64> = tree.iter().map(|t| (t.path.clone(), t.bytes)).collect();
    let mut debs = Vec::new();
    for b in &built {
        // Found here rather than by dpkg on the target, halfway through an install.
        if let Some(missing) = b
            .depends
            .iter()
            .find(|d| !base.info.packages.iter().any(|p| p.name == **d))
        {
            bail!(
                "{} depends on {missing}, which the dom0's root file system does not have; add it to \
                 rootfs::PACKAGES",
                b.package
            );
        }
        for (dir, bytes) in &b.usage {
            *usage.entry(dir.clone()).or_insert(0) += bytes;
        }
        let name = b.path.file_name().context("a .deb has a file name")?;
        let (sha256, size) = hash_file(&b.path)?;
        debs.push(xenprov_core::payload::Deb {
            package: b.package.into(),
            version: b.version.into(),
            file: format!("{DEBS_DIR}/{}", name.to_string_lossy()),
            sha256,
            size,
        });
    }
    let info = &base.info;
    let manifest = Manifest {
        archive: xenprov_core::payload::Manifest {
            file: ARCHIVE.into(),
            format: "tar+zstd".into(),
            sha256: written.sha256,
            size: written.size,
            // regular-file bytes, hard-linked data once, the packages' files included; per top-level
            // directory (files in / under "/")
            unpacked_size: usage.values().sum(),
            usage,
            kernel_version: Some(info.kernel.version.clone()),
            xen_version: Some(info.xen.version.clone()),
            debs,
        },
        format_version: 2,
        tar_size: written.tar_size,
        // the entries below the top-level directories, those directories, and ./ itself
        entries: tree.iter().map(|t| t.entries).sum::<u64>() + tree.len() as u64,
        tar_format: TarFormat::current(),
        kernel: info.kernel.clone(),
        xen: info.xen.clone(),
        suite: info.suite.clone(),
        mirror: info.mirror.clone(),
        cache_key: info.cache_key.clone(),
        packages: info.packages.clone(),
    };
    fs::write(
        out_dir.join(MANIFEST),
        serde_json::to_vec_pretty(&manifest)?,
    )
    .context("writing payload.json")?;
    Ok(manifest)
}

/// The SHA-256 (lower-case hex) and size of a file.
pub fn hash_file(path: &Path) -> Result<(String, u64)> {
    let mut hashed = Hashing {
        inner: io::sink(),
        hash: Sha256::new(),
        bytes: 0,
    };
    io::copy(
        &mut File::open(path).with_context(|| format!("reading {}", path.display()))?,
        &mut hashed,
    )?;
    Ok((hex::encode(hashed.hash.finalize()), hashed.bytes))
}

/// Streams `tar` of the tree at `root` through zstd into `out`, counting and hashing.
fn write_archive(root: &Path, out: &Path) -> Result<Written> {
    let mut tar = Command::new("tar");
    tar.args([
        "--create",
        "--file=-",
        "--format=pax",
        "--pax-option=delete=atime,delete=ctime",
    ])
    .args([
        "--numeric-owner",
        "--xattrs",
        "--xattrs-include=*",
        "--no-acls",
        "--sort=name",
        "--one-file-system",
    ]);
    tar.arg("-C").arg(root).arg(".");
    let mut child = tar.stdout(Stdio::piped()).spawn().context("starting tar")?;
    let mut input = Counting {
        inner: child.stdout.take().expect("piped stdout"),
        bytes: 0,
    };
    let file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut encoder = zstd::Encoder::new(
        Hashing {
            inner: file,
            hash: Sha256::new(),
            bytes: 0,
        },
        ZSTD_LEVEL,
    )?;
    encoder.multithread(std::thread::available_parallelism().map_or(1, |n| n.get() as u32))?;
    io::copy(&mut input, &mut encoder).context("compressing the payload")?;
    let mut output = encoder.finish()?;
    output.inner.flush()?;
    let status = child.wait()?;
    if !status.success() {
        bail!("tar failed ({status})");
    }
    Ok(Written {
        sha256: hex::encode(output.hash.finalize()),
        size: output.bytes,
        tar_size: input.bytes,
    })
}

struct Counting<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// File bytes and entry counts per top-level directory (files directly in / count under "/");
/// hard-linked data counts once.
fn measure(root: &Path) -> Result<Vec<Subtree>> {
    let mut seen = HashSet::new();
    let mut top = Subtree {
        path: "/".into(),
        bytes: 0,
        entries: 0,
    };
    let mut tree = Vec::new();
    let mut names: Vec<PathBuf> = fs::read_dir(root)?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    names.sort();
    for path in names {
        let meta = path.symlink_metadata()?;
        if meta.is_dir() {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let mut sub = Subtree {
                path: format!("/{name}"),
                bytes: 0,
                entries: 0,
            };
            walk(&path, &mut sub, &mut seen)?;
            tree.push(sub);
        } else {
            count(&meta, &mut top, &mut seen);
        }
    }
    tree.insert(0, top);
    Ok(tree)
}

fn walk(dir: &Path, into: &mut Subtree, seen: &mut HashSet<(u64, u64)>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let meta = path.symlink_metadata()?;
        count(&meta, into, seen);
        if meta.is_dir() {
            walk(&path, into, seen)?;
        }
    }
    Ok(())
}

fn count(meta: &fs::Metadata, into: &mut Subtree, seen: &mut HashSet<(u64, u64)>) {
    into.entries += 1;
    if meta.is_file() && seen.insert((meta.dev(), meta.ino())) {
        into.bytes += meta.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{PermissionsExt, symlink};

    /// vfs_cap_data revision 2 granting cap_net_raw (13) effective+permitted, as ping carries it.
    const CAP_NET_RAW: [u8; 20] = [
        1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    fn set_xattr(path: &Path, name: &str, value: &[u8]) {
        let p = CString::new(path.as_os_str().as_bytes()).unwrap();
        let n = CString::new(name).unwrap();
        // SAFETY: both strings are NUL-terminated and the value slice is valid for its length.
        let rc = unsafe {
            libc::lsetxattr(
                p.as_ptr(),
                n.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        assert_eq!(rc, 0, "setxattr {name}: {}", io::Error::last_os_error());
    }

    fn get_xattr(path: &Path, name: &str) -> Vec<u8> {
        let p = CString::new(path.as_os_str().as_bytes()).unwrap();
        let n = CString::new(name).unwrap();
        let mut buf = vec![0u8; 256];
        // SAFETY: both strings are NUL-terminated and buf is writable for its length.
        let rc =
            unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        assert!(rc >= 0, "getxattr {name}: {}", io::Error::last_os_error());
        buf.truncate(rc as usize);
        buf
    }

    /// The contract with the installer: what we write, the tar crate unpacks with owners, modes, setuid bits,
    /// file capabilities, hard links, symlinks and long names intact.
    #[test]
    fn tar_crate_unpacks_what_we_write() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: needs root to set owners and security.capability");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let long = "d".repeat(60) + "/" + &"e".repeat(60);
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::create_dir_all(root.join("var/lib").join(&long)).unwrap();
        fs::create_dir_all(root.join("dev")).unwrap();
        fs::write(root.join("usr/bin/ping"), b"ping").unwrap();
        set_xattr(
            &root.join("usr/bin/ping"),
            "security.capability",
            &CAP_NET_RAW,
        );
        fs::write(root.join("usr/bin/sudo"), b"sudo").unwrap();
        fs::set_permissions(
            root.join("usr/bin/sudo"),
            fs::Permissions::from_mode(0o4755),
        )
        .unwrap();
        fs::hard_link(root.join("usr/bin/sudo"), root.join("usr/bin/sudoedit")).unwrap();
        symlink("../lib", root.join("usr/bin/lib")).unwrap();
        fs::write(root.join("var/lib").join(&long).join("state"), b"x").unwrap();
        std::os::unix::fs::chown(root.join("var/lib").join(&long), Some(101), Some(102)).unwrap();
        fs::set_permissions(
            root.join("var/lib").join(&long),
            fs::Permissions::from_mode(0o750),
        )
        .unwrap();
        let out = tmp.path().join(ARCHIVE);
        let stats = write_archive(&root, &out).unwrap();
        assert_eq!(stats.size, fs::metadata(&out).unwrap().len());
        assert_eq!(
            stats.sha256,
            hex::encode(Sha256::digest(fs::read(&out).unwrap()))
        );

        let dst = tmp.path().join("dst");
        fs::create_dir(&dst).unwrap();
        let mut archive = tar::Archive::new(zstd::Decoder::new(File::open(&out).unwrap()).unwrap());
        archive.set_preserve_ownerships(true);
        archive.set_preserve_permissions(true);
        archive.set_unpack_xattrs(true);
        archive.set_preserve_mtime(true);
        archive.unpack(&dst).unwrap();

        assert_eq!(
            get_xattr(&dst.join("usr/bin/ping"), "security.capability"),
            CAP_NET_RAW
        );
        let sudo = fs::metadata(dst.join("usr/bin/sudo")).unwrap();
        assert_eq!(sudo.mode() & 0o7777, 0o4755);
        assert_eq!(
            sudo.ino(),
            fs::metadata(dst.join("usr/bin/sudoedit")).unwrap().ino()
        );
        assert_eq!(
            fs::read_link(dst.join("usr/bin/lib")).unwrap(),
            Path::new("../lib")
        );
        let deep = fs::metadata(dst.join("var/lib").join(&long)).unwrap();
        assert_eq!(
            (deep.uid(), deep.gid(), deep.mode() & 0o7777),
            (101, 102, 0o750)
        );
        assert_eq!(
            fs::read(dst.join("var/lib").join(&long).join("state")).unwrap(),
            b"x"
        );
        assert!(dst.join("dev").is_dir());
    }

    #[test]
    fn manifest_is_what_the_installer_reads() {
        let manifest = Manifest {
            archive: xenprov_core::payload::Manifest {
                file: ARCHIVE.into(),
                format: "tar+zstd".into(),
                sha256: "ab".repeat(32),
                size: 10,
                unpacked_size: 30,
                usage: [("/usr".to_string(), 20), ("/var".to_string(), 10)].into(),
                kernel_version: Some("6.1.0-1-amd64".into()),
                xen_version: Some("4.17.7".into()),
                debs: vec![xenprov_core::payload::Deb {
                    package: "xenprov-repo".into(),
                    version: "0.1.0".into(),
                    file: "debs/xenprov-repo_0.1.0_amd64.deb".into(),
                    sha256: "cd".repeat(32),
                    size: 5,
                }],
            },
            format_version: 2,
            tar_size: 40,
            entries: 3,
            tar_format: TarFormat::current(),
            kernel: Kernel {
                version: "6.1.0-1-amd64".into(),
                image: "/boot/vmlinuz-6.1.0-1-amd64".into(),
                initrd: "/boot/initrd.img-6.1.0-1-amd64".into(),
            },
            xen: Xen {
                version: "4.17.7".into(),
                image: "/boot/xen-4.17-amd64.gz".into(),
                efi: "/boot/xen-4.17-amd64.efi".into(),
            },
            suite: "bookworm".into(),
            mirror: "http://mirror.example/debian".into(),
            cache_key: "k".into(),
            packages: vec![],
        };
        let json = serde_json::to_string_pretty(&manifest).unwrap();
        assert!(json.contains("\"unpacked-size\": 30"));
        assert!(json.contains("\"tar-format\""));
        let read = xenprov_core::payload::Manifest::parse(&json).unwrap();
        assert_eq!(read, manifest.archive);
    }

    #[test]
    fn measure_counts_hard_links_once() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::create_dir_all(root.join("var")).unwrap();
        fs::write(root.join("usr/bin/a"), vec![0u8; 100]).unwrap();
        fs::hard_link(root.join("usr/bin/a"), root.join("usr/bin/b")).unwrap();
        fs::write(root.join("var/log"), vec![0u8; 7]).unwrap();
        symlink("usr/bin", root.join("bin")).unwrap();
        let tree = measure(root).unwrap();
        let get = |p: &str| tree.iter().find(|t| t.path == p).unwrap();
        assert_eq!((get("/usr").bytes, get("/usr").entries), (100, 3));
        assert_eq!((get("/var").bytes, get("/var").entries), (7, 1));
        assert_eq!((get("/").bytes, get("/").entries), (0, 1));
    }
}
