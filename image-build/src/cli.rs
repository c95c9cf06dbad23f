//! xenprov-image's command line: the verbs and their flags (clap).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "Builds the xenprov dom0 payload, live environment and install ISO (run as root)",
    after_help = xenprov_core::exit::HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub verb: Verb,
}

#[derive(Subcommand)]
pub enum Verb {
    /// Print the build inputs and their cache key as JSON
    Inputs(Common),
    /// Build the dom0 payload: payload.tar.zst, the host's .debs in debs/, and payload.json
    Payload {
        #[command(flatten)]
        common: Common,
        /// Directory to write payload.tar.zst, debs/ and payload.json to
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
pub struct Common {
    /// Debian suite of the dom0 and the live environment
    #[arg(long, default_value = "bookworm")]
    pub suite: String,
    /// Where built root file systems and live files are kept between runs
    #[arg(long, default_value = "/var/cache/xenprov")]
    pub cache_dir: PathBuf,
    /// Rebuild cached parts even when their inputs are unchanged (e.g. to pick up new packages)
    #[arg(long)]
    pub refresh: bool,
    /// Directory of our built binaries (default: the directory of this program, i.e. target/release)
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn every_flag_argument_and_verb_has_help() {
        xenprov_core::clap_help::assert_documented(&Cli::command());
    }

    #[test]
    fn kernel_arguments_cannot_add_lines_to_grub_cfg() {
        use clap::Parser;
        let iso = |arg: &str| {
            Cli::try_parse_from([
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
