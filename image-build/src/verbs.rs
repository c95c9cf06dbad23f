//! xenprov-image's verbs, one function each, over the locked cache (`Build`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::cache::{self, Cache};
use crate::cli::Common;
use crate::rootfs::Base;
use crate::{debs, iso, live, payload, rootfs, timing};

/// Every package, into `out_dir`, from `bin_dir` (default: the directory of this program).
pub fn build_debs(bin_dir: Option<PathBuf>, out_dir: &Path) -> Result<()> {
    let bin_dir = match bin_dir {
        Some(dir) => dir,
        None => own_dir()?,
    };
    for deb in timing::timed("debs", || debs::build(&bin_dir, out_dir, debs::Set::All))? {
        println!("{}", deb.path.display());
    }
    Ok(())
}

/// The directory of this program: target/release, beside the other binaries of the same build.
fn own_dir() -> Result<PathBuf> {
    Ok(std::env::current_exe()?
        .parent()
        .context("locating this program")?
        .to_path_buf())
}

/// The mirror of the build machine's APT configuration for SUITE.
pub fn mirror(suite: &str) -> Result<xenprov_core::apt_sources::Mirror> {
    let etc_apt = Path::new("/etc/apt");
    xenprov_core::apt_sources::AptSources::read(etc_apt)
        .and_then(|s| s.mirror(suite))
        .map_err(anyhow::Error::msg)
        .with_context(|| {
            format!(
                "finding the Debian mirror for {suite} in {}",
                etc_apt.display()
            )
        })
}

pub fn inputs(common: &Common) -> Result<()> {
    let inputs = rootfs::Inputs::new(&common.suite, mirror(&common.suite)?)?;
    let key = cache::key(&inputs);
    let live_key = cache::key(&live::Inputs::new(&key));
    let out = serde_json::json!({ "rootfs": inputs, "rootfs-key": key, "live-key": live_key });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

pub fn build_payload(common: &Common, out_dir: &Path) -> Result<()> {
    let build = Build::open(common)?;
    let base = build.base()?;
    let manifest = timing::timed("payload", || payload::build(&base, &build.bin_dir, out_dir))?;
    eprintln!(
        "xenprov-image: {} ({} bytes, {} bytes of files), kernel {}, Xen {}",
        out_dir.join(payload::ARCHIVE).display(),
        manifest.archive.size,
        manifest.archive.unpacked_size,
        manifest.kernel.version,
        manifest.xen.version
    );
    Ok(())
}

pub fn build_live(common: &Common, out_dir: &Path, installer: Option<PathBuf>) -> Result<()> {
    let build = Build::open(common)?;
    let installer = build.installer(installer)?;
    let base = build.base()?;
    let entry = build.live(&base)?;
    std::fs::create_dir_all(out_dir)?;
    for name in [live::VMLINUZ, live::INITRD, live::ROOT_SQUASHFS] {
        std::fs::copy(entry.join(name), out_dir.join(name))
            .with_context(|| format!("copying {name}"))?;
    }
    timing::timed("live layer", || {
        live::build_layer(&installer, &out_dir.join(live::LAYER_SQUASHFS))
    })
}

pub fn build_iso(
    common: &Common,
    out: &Path,
    answer: Option<PathBuf>,
    kernel_args: Vec<String>,
    installer: Option<PathBuf>,
    work_dir: &Path,
) -> Result<()> {
    if let Some(answer) = &answer {
        std::fs::metadata(answer)
            .with_context(|| format!("reading the answer file {}", answer.display()))?;
    }
    let build = Build::open(common)?;
    let installer = build.installer(installer)?;
    let base = build.base()?;
    let manifest = timing::timed("payload", || {
        payload::build(&base, &build.bin_dir, work_dir)
    })?;
    let entry = build.live(&base)?;
    let layer = work_dir.join(live::LAYER_SQUASHFS);
    timing::timed("live layer", || live::build_layer(&installer, &layer))?;
    // What a network boot fetches: the live root and the manifest checked by the initrd, the
    // archive and the packages by the installer against the manifest. The packages keep their place
    // relative to the manifest, which is where the installer looks.
    let root = entry.join(live::ROOT_SQUASHFS);
    let manifest_file = work_dir.join(payload::MANIFEST);
    let pinned = [
        ("/live/root.squashfs", root.as_path()),
        ("/live/layer.squashfs", layer.as_path()),
        ("/xenprov/payload.json", manifest_file.as_path()),
    ];
    let mut fetched = vec![(
        format!("/xenprov/{}", payload::ARCHIVE),
        work_dir.join(payload::ARCHIVE),
    )];
    for d in &manifest.archive.debs {
        fetched.push((format!("/xenprov/{}", d.file), work_dir.join(&d.file)));
    }
    let initrd = work_dir.join(live::INITRD);
    let fetched_paths: Vec<&str> = fetched.iter().map(|(p, _)| p.as_str()).collect();
    live::pin_initrd(&entry.join(live::INITRD), &pinned, &fetched_paths, &initrd)?;
    let mut files: Vec<(String, PathBuf)> = [
        ("/boot/vmlinuz".to_string(), entry.join(live::VMLINUZ)),
        ("/boot/initrd.img".to_string(), initrd),
    ]
    .into_iter()
    .chain(pinned.iter().map(|(p, f)| (p.to_string(), f.to_path_buf())))
    .collect();
    files.extend(fetched);
    let contents = iso::Contents {
        files,
        answer,
        kernel_args,
    };
    timing::timed("iso", || {
        iso::build(&contents, &work_dir.join("iso-root"), out)
    })?;
    eprintln!(
        "xenprov-image: {} ({} bytes)",
        out.display(),
        std::fs::metadata(out)?.len()
    );
    Ok(())
}

/// What every verb that builds shares: the locked cache and the root file system's inputs.
struct Build {
    cache: Cache,
    inputs: rootfs::Inputs,
    key: String,
    refresh: bool,
    bin_dir: PathBuf,
}

impl Build {
    fn open(common: &Common) -> Result<Build> {
        if !nix::unistd::Uid::effective().is_root() {
            bail!("xenprov-image builds root file systems and must run as root");
        }
        xenprov_sys::command::require(&[
            ("debootstrap", "debootstrap"),
            ("mksquashfs", "squashfs-tools"),
            ("grub-mkrescue", "grub-common"),
            ("xorriso", "xorriso"),
            ("mformat", "mtools"),
            ("tar", "tar"),
            ("strip", "binutils"),
        ])?;
        for (dir, package) in [
            ("i386-pc", "grub-pc-bin"),
            ("x86_64-efi", "grub-efi-amd64-bin"),
        ] {
            if !Path::new("/usr/lib/grub").join(dir).is_dir() {
                bail!("missing GRUB platform files /usr/lib/grub/{dir} (package {package})");
            }
        }
        let mirror = mirror(&common.suite)?;
        let inputs = rootfs::Inputs::new(&common.suite, mirror)?;
        let key = cache::key(&inputs);
        let bin_dir = match &common.bin_dir {
            Some(dir) => dir.clone(),
            None => own_dir()?,
        };
        Ok(Build {
            cache: Cache::open(&common.cache_dir)?,
            inputs,
            key,
            refresh: common.refresh,
            bin_dir,
        })
    }

    fn installer(&self, installer: Option<PathBuf>) -> Result<PathBuf> {
        let path = installer.unwrap_or_else(|| self.bin_dir.join("xenprov-install"));
        if !path.is_file() {
            bail!(
                "no installer at {} (build it: cargo build --release -p xenprov-install)",
                path.display()
            );
        }
        Ok(path)
    }

    /// The dom0 root file system, from the cache or built now.
    fn base(&self) -> Result<Base> {
        let debs = self.cache.path("debs");
        let entry = timing::timed("root file system", || {
            self.cache
                .entry("rootfs", &self.key, self.refresh, |entry| {
                    rootfs::build(&self.inputs, &self.key, &debs, entry)
                })
        })?;
        Base::load(&entry)
    }

    /// The live kernel, initrd and root squashfs, from the cache or built now.
    fn live(&self, base: &Base) -> Result<PathBuf> {
        let key = cache::key(&live::Inputs::new(&self.key));
        timing::timed("live environment", || {
            self.cache.entry("live", &key, self.refresh, |entry| {
                live::build_base(base, entry)
            })
        })
    }
}
