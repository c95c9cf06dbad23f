//! xenprov-image: builds the dom0 payload, the live environment and the hybrid BIOS+UEFI install ISO.

mod cache;
mod debs;
mod iso;
mod live;
mod payload;
mod rootfs;
mod timing;
mod tree;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, CommandFactory, Parser, Subcommand};

use cache::Cache;
use rootfs::Base;

#[derive(Parser)]
#[command(
    version,
    about = "Builds the xenprov dom0 payload, live environment and install ISO (run as root)",
    after_help = xenprov_core::exit::HELP
)]
struct Cli {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Print the build inputs and their cache key as JSON
    Inputs(Common),
    /// Build the dom0 payload: payload.tar.zst and payload.json
    Payload {
        #[command(flatten)]
        common: Common,
        /// Directory to write payload.tar.zst and payload.json to
        #[arg(long, default_value = "out/image")]
        out_dir: PathBuf,
    },
    /// Build the live environment: vmlinuz, initrd.img, root.squashfs and layer.squashfs
    Live {
        #[command(flatten)]
        common: Common,
        /// Directory to write the live files to
        #[arg(long, default_value = "out/image")]
        out_dir: PathBuf,
        /// The installer to put in the live layer (default: xenprov-install in --bin-dir)
        #[arg(long)]
        installer: Option<PathBuf>,
    },
    /// Build the hybrid BIOS+UEFI install ISO (payload, live environment, GRUB)
    Iso {
        #[command(flatten)]
        common: Common,
        /// The ISO image to write
        #[arg(long)]
        out: PathBuf,
        /// Answer file to bake in as /xenprov/answer.toml, used by the default boot entry
        #[arg(long)]
        answer: Option<PathBuf>,
        /// Extra kernel argument for the default boot entry (repeatable)
        #[arg(long = "kernel-arg", value_parser = kernel_arg)]
        kernel_args: Vec<String>,
        /// The installer to put in the live layer (default: xenprov-install in --bin-dir)
        #[arg(long)]
        installer: Option<PathBuf>,
        /// Directory for the payload and live files the ISO is made of
        #[arg(long, default_value = "out/image")]
        work_dir: PathBuf,
    },
    /// Build the Debian packages of the binaries: xenprov-repo, xenprov-guest, xenprov-install and
    /// xenprov-image, each with its man pages, completions, units and settings
    Debs {
        /// Directory of our built binaries (default: the directory of this program, i.e. target/release)
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        /// Directory to write the .deb files to
        #[arg(long, default_value = "out/debs")]
        out_dir: PathBuf,
    },
    /// Write the man pages and the bash and zsh completions below DIR (a package's usr/share)
    #[command(hide = true)]
    Docs {
        /// Directory to write man/man8/ and the completions' directories into
        dir: PathBuf,
    },
}

/// A kernel argument goes into the ISO's grub.cfg: one word that GRUB passes on as it is.
fn kernel_arg(s: &str) -> Result<String, String> {
    xenprov_core::answer::check_cmdline_word(s, "a kernel argument").map(|()| s.to_string())
}

#[derive(Args)]
struct Common {
    /// Debian suite of the dom0 and the live environment
    #[arg(long, default_value = "bookworm")]
    suite: String,
    /// Where built root file systems and live files are kept between runs
    #[arg(long, default_value = "/var/cache/xenprov")]
    cache_dir: PathBuf,
    /// Rebuild cached parts even when their inputs are unchanged (e.g. to pick up new packages)
    #[arg(long)]
    refresh: bool,
    /// Directory of our built binaries (default: the directory of this program, i.e. target/release)
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    xenprov_core::exit::report(run(Cli::parse()))
}

fn run(cli: Cli) -> Result<()> {
    match cli.verb {
        Verb::Inputs(common) => inputs(&common),
        Verb::Payload { common, out_dir } => build_payload(&common, &out_dir),
        Verb::Live {
            common,
            out_dir,
            installer,
        } => build_live(&common, &out_dir, installer),
        Verb::Iso {
            common,
            out,
            answer,
            kernel_args,
            installer,
            work_dir,
        } => build_iso(&common, &out, answer, kernel_args, installer, &work_dir),
        Verb::Debs { bin_dir, out_dir } => {
            let bin_dir = match bin_dir {
                Some(dir) => dir,
                None => own_dir()?,
            };
            for deb in timing::timed("debs", || debs::build(&bin_dir, &out_dir, debs::Set::All))? {
                println!("{}", deb.path.display());
            }
            Ok(())
        }
        Verb::Docs { dir } => {
            xenprov_core::clap_help::write_docs(&Cli::command(), &dir)?;
            Ok(())
        }
    }
}

/// The directory of this program: target/release, beside the other binaries of the same build.
fn own_dir() -> Result<PathBuf> {
    Ok(std::env::current_exe()?
        .parent()
        .context("locating this program")?
        .to_path_buf())
}

/// The mirror of the build machine's APT configuration for SUITE.
fn mirror(suite: &str) -> Result<xenprov_core::apt_sources::Mirror> {
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

fn inputs(common: &Common) -> Result<()> {
    let inputs = rootfs::Inputs::new(&common.suite, mirror(&common.suite)?)?;
    let key = cache::key(&inputs);
    let live_key = cache::key(&live::Inputs::new(&key));
    let out = serde_json::json!({ "rootfs": inputs, "rootfs-key": key, "live-key": live_key });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn build_payload(common: &Common, out_dir: &Path) -> Result<()> {
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

fn build_live(common: &Common, out_dir: &Path, installer: Option<PathBuf>) -> Result<()> {
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

fn build_iso(
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
    let mut files: Vec<(String, PathBuf)> = [
        ("/boot/vmlinuz", entry.join(live::VMLINUZ)),
        ("/boot/initrd.img", entry.join(live::INITRD)),
        ("/live/root.squashfs", entry.join(live::ROOT_SQUASHFS)),
        ("/live/layer.squashfs", layer),
        ("/xenprov/payload.tar.zst", work_dir.join(payload::ARCHIVE)),
        ("/xenprov/payload.json", work_dir.join(payload::MANIFEST)),
    ]
    .into_iter()
    .map(|(on_iso, from)| (on_iso.to_string(), from))
    .collect();
    // The packages keep their place relative to the manifest, which is where the installer looks.
    for d in &manifest.archive.debs {
        files.push((format!("/xenprov/{}", d.file), work_dir.join(&d.file)));
    }
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_flag_argument_and_verb_has_help() {
        xenprov_core::clap_help::assert_documented(&super::Cli::command());
    }

    #[test]
    fn kernel_arguments_cannot_add_lines_to_grub_cfg() {
        use clap::Parser;
        let iso = |arg: &str| {
            super::Cli::try_parse_from([
                "xenprov-image",
                "iso",
                "--out",
                "x.iso",
                "--kernel-arg",
                arg,
            ])
        };
        for bad in ["a\n}\nmenuentry x {", "a b", "x=$(reboot)", "a;b", "'a'"] {
            let e = iso(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad:?} was accepted"))
                .to_string();
            assert!(
                e.contains("--kernel-arg") && e.contains("is not a kernel argument"),
                "{e}"
            );
        }
        assert!(iso("xenprov.on-error=poweroff").is_ok());
        assert!(iso("xenprov.answer=http://10.0.2.2:8000/answer.toml").is_ok());
    }
}
