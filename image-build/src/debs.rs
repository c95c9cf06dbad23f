//! Debian packages of our binaries, built with dpkg-deb from the release build: each binary in
//! /usr/sbin with its man pages and bash and zsh completions (made from its clap help by its hidden
//! `docs` verb), the repo server's systemd unit in /usr/lib/systemd/system, and the settings files in
//! /etc/xenprov as conffiles, so that dpkg knows every file it installs and keeps an admin's changes
//! to the settings on upgrade.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use xenprov_core::render::Templates;
use xenprov_sys::Cmd;

use crate::tree::{install_binary, write};

/// One package: its binary (also its name), what it is for, what it runs, and its files besides the
/// binary and the documents made from it.
struct Spec {
    name: &'static str,
    summary: &'static str,
    description: &'static str,
    /// Debian packages of the tools it runs, beyond the C library the binary links.
    depends: &'static [&'static str],
    /// `(file name, template)` of its systemd units, below /usr/lib/systemd/system.
    units: &'static [(&'static str, &'static str)],
    /// `(path, template)` of its settings, each a conffile: the template the installer renders on a host.
    conffiles: &'static [(&'static str, &'static str)],
    /// Installed on every dom0 from the payload (not the image builder, whose tools a dom0 lacks).
    dom0: bool,
}

/// Which packages to build.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Set {
    All,
    /// The ones the dom0 payload carries.
    Dom0,
}

/// What every package depends on: the C library and GCC's runtime, which every Rust binary links.
const BASE_DEPENDS: [&str; 2] = ["libc6", "libgcc-s1"];

const MAINTAINER: &str = "xenprov developers <xenprov-devel@example.org>";

const SPECS: &[Spec] = &[
    Spec {
        name: "xenprov-repo",
        summary: "repo server of a xenprov Xen host",
        description: "Serves package repositories, install trees and ISO images in place over HTTP/1.1 and \
                      HTTP/2, through verifying caches of upstream repositories, and guests' kickstarts and \
                      preseeds behind their install tokens.",
        depends: &["gpgv"],
        units: &[("xenprov-repo.service", "templates/xenprov-repo.service")],
        conffiles: &[("etc/xenprov/repo.toml", "templates/xenprov-repo.toml.tera")],
        dom0: true,
    },
    Spec {
        name: "xenprov-guest",
        summary: "creates, installs and runs Xen guests on a xenprov host",
        description: "Turns guest definitions into PV, PVH and HVM guests: their logical volumes, xl \
                      configs, unattended installs from the host's repo server, and autostart.",
        depends: &[
            "xen-utils-common",
            "lvm2",
            "debootstrap",
            "fdisk",
            "e2fsprogs",
            "zstd",
            "iproute2",
            "nftables",
            "dnsmasq-base",
            // Xen's vif-route, which routed guests use, calls ifconfig.
            "net-tools",
        ],
        units: &[(
            "xenprov-guest-network.service",
            "templates/xenprov-guest-network.service",
        )],
        conffiles: &[("etc/xenprov/guests.toml", "templates/guests.toml")],
        dom0: true,
    },
    Spec {
        name: "xenprov-install",
        summary: "installs a xenprov Xen host from an answer file",
        description: "Lays out GPT, /boot and LVM on the disk the answer file names, builds the dom0 in a \
                      volume group and writes GRUB for Xen; guided, or unattended from the install medium.",
        depends: &["lvm2", "e2fsprogs", "dosfstools"],
        units: &[],
        conffiles: &[],
        dom0: true,
    },
    Spec {
        name: "xenprov-image",
        summary: "builds the xenprov install ISO",
        description: "Builds the dom0 payload with debootstrap, the live environment with the installer, and \
                      the hybrid BIOS and UEFI install ISO, caching each part by its inputs.",
        depends: &[
            "debootstrap",
            "squashfs-tools",
            "xorriso",
            "mtools",
            "grub-common",
            "grub-pc-bin",
            "grub-efi-amd64-bin",
        ],
        units: &[],
        conffiles: &[],
        dom0: false,
    },
];

/// A settings file as its package ships it: the host's template, rendered with the repo server
/// listening on every address (as it does without settings), with a first line that says where it
/// came from.
fn packaged(templates: &Templates, template: &str) -> Result<String> {
    let ctx = serde_json::json!({ "repo_listen": "0.0.0.0:8080" });
    Ok(templates.render(template, &ctx)?.replace(
        "# Written by xenprov-install from the answer file's [repo].",
        "# Installed by the xenprov-repo package; xenprov-install writes the host's own from the answer\n\
         # file's [repo].",
    ))
}

/// A package built: what the payload's manifest lists of it.
pub struct Built {
    pub package: &'static str,
    pub version: &'static str,
    pub path: PathBuf,
    /// The packages it depends on, by name.
    pub depends: Vec<&'static str>,
    /// Bytes of the files it installs, per top-level directory (`/usr`, `/etc`), for the plan's
    /// check that each filesystem can hold them.
    pub usage: BTreeMap<String, u64>,
}

/// Builds one `.deb` per binary of `set` found in `bin_dir` into `out_dir`. A binary not built is
/// named, and its package left out.
pub fn build(bin_dir: &Path, out_dir: &Path, set: Set) -> Result<Vec<Built>> {
    xenprov_sys::command::require(&[
        ("dpkg-deb", "dpkg"),
        ("gzip", "gzip"),
        ("strip", "binutils"),
    ])?;
    fs::create_dir_all(out_dir)?;
    let version = env!("CARGO_PKG_VERSION");
    let templates = Templates::builtin();
    let mut built = Vec::new();
    for spec in SPECS.iter().filter(|s| set == Set::All || s.dom0) {
        let binary = bin_dir.join(spec.name);
        if !binary.is_file() {
            eprintln!(
                "xenprov-image: debs: {} not built, left out",
                binary.display()
            );
            continue;
        }
        let stage = out_dir.join(format!("{}.stage", spec.name));
        crate::cache::remove(&stage)?;
        let usage = stage_package(spec, &binary, version, &templates, &stage)?;
        let deb = out_dir.join(format!("{}_{version}_amd64.deb", spec.name));
        Cmd::new(&["dpkg-deb", "--root-owner-group", "-Zxz", "--build"])
            .arg(&stage)
            .arg(&deb)
            .run_shown()
            .with_context(|| format!("building {}", deb.display()))?;
        crate::cache::remove(&stage)?;
        built.push(Built {
            package: spec.name,
            version,
            path: deb,
            depends: BASE_DEPENDS
                .into_iter()
                .chain(spec.depends.iter().copied())
                .collect(),
            usage,
        });
    }
    Ok(built)
}

fn stage_package(
    spec: &Spec,
    binary: &Path,
    version: &str,
    templates: &Templates,
    stage: &Path,
) -> Result<BTreeMap<String, u64>> {
    let sbin = stage.join("usr/sbin").join(spec.name);
    install_binary(binary, &sbin)?;
    let share = stage.join("usr/share");
    Cmd::new(&[&sbin])
        .arg("docs")
        .arg(&share)
        .run()
        .with_context(|| format!("{} docs", spec.name))?;
    let man8 = share.join("man/man8");
    let mut compressed: Vec<PathBuf> = fs::read_dir(&man8)
        .with_context(|| format!("reading {}", man8.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    for (name, template) in spec.units {
        let text = templates.render(template, &serde_json::json!({}))?;
        write(
            stage,
            &format!("usr/lib/systemd/system/{name}"),
            &text,
            0o644,
        )?;
    }
    for (path, template) in spec.conffiles {
        write(
            stage,
            path,
            &packaged(templates, template).context(*path)?,
            0o644,
        )?;
    }
    let doc = format!("usr/share/doc/{}", spec.name);
    write(stage, &format!("{doc}/copyright"), &copyright(), 0o644)?;
    write(
        stage,
        &format!("{doc}/changelog"),
        &changelog(spec.name, version, binary)?,
        0o644,
    )?;
    compressed.push(stage.join(format!("{doc}/changelog")));
    // -n: no name or time in the header, so the same page gives the same bytes.
    Cmd::new(&["gzip", "-9n"]).args(&compressed).run()?;
    // The binaries keep their symbols (install_binary strips only debug information) so that a
    // backtrace on a host names functions; Debian would ship them in a -dbgsym package instead.
    let overrides = format!(
        "# Symbols are kept so that backtraces name functions; only debug information is stripped.\n\
         {0}: unstripped-binary-or-object [usr/sbin/{0}]\n",
        spec.name
    );
    write(
        stage,
        &format!("usr/share/lintian/overrides/{}", spec.name),
        &overrides,
        0o644,
    )?;
    if !spec.conffiles.is_empty() {
        let list: String = spec
            .conffiles
            .iter()
            .map(|(p, _)| format!("/{p}\n"))
            .collect();
        write(stage, "DEBIAN/conffiles", &list, 0o644)?;
    }
    // Conffiles are not in md5sums: dpkg keeps their digests itself.
    let files = files_below(stage, Path::new("usr"))?;
    let sums = Cmd::new(&["md5sum"])
        .args(&files)
        .current_dir(stage)
        .run()?;
    write(stage, "DEBIAN/md5sums", &sums, 0o644)?;
    let mut usage = BTreeMap::new();
    for f in files
        .iter()
        .map(PathBuf::as_path)
        .chain(spec.conffiles.iter().map(|(p, _)| Path::new(*p)))
    {
        let top = f.components().next().expect("a path below the stage");
        let top = format!("/{}", top.as_os_str().to_string_lossy());
        *usage.entry(top).or_insert(0) += fs::metadata(stage.join(f))?.len();
    }
    let bytes = usage.values().sum();
    write(
        stage,
        "DEBIAN/control",
        &control(spec, version, &sbin, bytes)?,
        0o644,
    )?;
    Ok(usage)
}

fn control(spec: &Spec, version: &str, binary: &Path, bytes: u64) -> Result<String> {
    let glibc = glibc_needed(&fs::read(binary)?)
        .with_context(|| format!("{}: no GLIBC_ symbol version in it", binary.display()))?;
    // The C library with the version the binary's symbols need; the rest by name.
    let mut depends: Vec<String> = BASE_DEPENDS
        .iter()
        .map(|d| match *d {
            "libc6" => format!("libc6 (>= {glibc})"),
            d => d.to_string(),
        })
        .collect();
    depends.extend(spec.depends.iter().map(|d| d.to_string()));
    let size_kib = bytes.div_ceil(1024);
    Ok(format!(
        "Package: {}\nVersion: {version}\nArchitecture: amd64\nMaintainer: {MAINTAINER}\n\
         Installed-Size: {size_kib}\nDepends: {}\nSection: admin\nPriority: optional\n\
         Description: {}\n{}",
        spec.name,
        depends.join(", "),
        spec.summary,
        wrap(spec.description)
    ))
}

/// The newest glibc symbol version the binary needs (`2.34` from `GLIBC_2.34`), read from its
/// version-needs strings, which is what dpkg-shlibdeps would make `libc6 (>= …)` of.
fn glibc_needed(elf: &[u8]) -> Option<String> {
    let tag = b"GLIBC_";
    let mut best: Option<(Vec<u32>, String)> = None;
    for at in elf
        .windows(tag.len())
        .enumerate()
        .filter(|(_, w)| *w == tag)
    {
        let rest = &elf[at.0 + tag.len()..];
        let end = rest
            .iter()
            .position(|b| !(b.is_ascii_digit() || *b == b'.'))
            .unwrap_or(rest.len());
        let text = String::from_utf8_lossy(&rest[..end])
            .trim_end_matches('.')
            .to_string();
        let parts: Option<Vec<u32>> = text.split('.').map(|p| p.parse().ok()).collect();
        if let Some(parts) = parts.filter(|p| p.len() >= 2)
            && best.as_ref().is_none_or(|(b, _)| parts > *b)
        {
            best = Some((parts, text));
        }
    }
    best.map(|(_, text)| text)
}

fn copyright() -> String {
    format!(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: xenprov\n\nFiles: *\nCopyright: 2025-2026 xenprov developers\nLicense: {}\n",
        env!("CARGO_PKG_LICENSE")
    )
}

/// A native package's changelog: one entry for this build, dated SOURCE_DATE_EPOCH when the build
/// sets it (reproducible builds), else the binary's modification time.
fn changelog(name: &str, version: &str, binary: &Path) -> Result<String> {
    let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => s
            .parse::<u64>()
            .context("SOURCE_DATE_EPOCH is not a number of seconds")?,
        Err(_) => binary
            .metadata()?
            .modified()?
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    };
    let date = Cmd::new(&["date", "-u", "-R", "-d", &format!("@{epoch}")]).run()?;
    Ok(format!(
        "{name} ({version}) unstable; urgency=medium\n\n  * Built from the xenprov source tree.\n\n \
         -- {MAINTAINER}  {}\n",
        date.trim()
    ))
}

/// A control file's extended description: words wrapped at 79 columns, each line after a space.
fn wrap(text: &str) -> String {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let line = lines.last_mut().expect("one line at least");
        if !line.is_empty() && line.len() + 1 + word.len() > 78 {
            lines.push(word.to_string());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines.iter().map(|l| format!(" {l}\n")).collect()
}

/// Regular files below `dir` of `root`, relative to `root`, sorted.
fn files_below(root: &Path, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(root.join(&d))? {
            let entry = entry?;
            let rel = d.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                todo.push(rel);
            } else {
                out.push(rel);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_wrap_at_79_columns() {
        let text = wrap(&"word ".repeat(40));
        assert!(
            text.lines().all(|l| l.starts_with(' ') && l.len() <= 79),
            "{text}"
        );
        assert_eq!(text.split_whitespace().count(), 40);
    }

    #[test]
    fn glibc_version_is_the_newest_needed() {
        let elf = b"\0GLIBC_2.2.5\0GLIBC_2.34\0GLIBC_2.17\0GLIBC_PRIVATE\0";
        assert_eq!(glibc_needed(elf).as_deref(), Some("2.34"));
        assert_eq!(glibc_needed(b"\0no versions\0"), None);
    }

    #[test]
    fn every_package_has_help_and_settings_without_template_syntax() {
        let templates = Templates::builtin();
        for spec in SPECS {
            assert!(!spec.summary.is_empty() && !spec.description.is_empty());
            for (path, template) in spec.conffiles {
                assert!(path.starts_with("etc/xenprov/"), "{path}");
                let text = packaged(&templates, template).unwrap();
                assert!(!text.contains("{{") && !text.contains("{%"), "{path}");
                assert!(text.starts_with("# Installed by") || path.ends_with("guests.toml"));
            }
        }
    }
}
