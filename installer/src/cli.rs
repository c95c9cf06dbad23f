//! xenprov-install's command line: the verbs and their flags (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::io::progress::Mode;

#[derive(Parser)]
#[command(
    name = "xenprov-install",
    version,
    about = "Install a Xen host from an answer file or a few questions",
    after_help = xenprov_core::exit::HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Check an answer file and list every problem in it.
    Validate(ValidateArgs),
    /// Print the answer file's JSON Schema.
    Schema,
    /// Describe this machine's disks, NICs, firmware, CPU and memory.
    Inventory(InventoryArgs),
    /// Show everything `apply` would do, without doing it.
    Plan(PlanArgs),
    /// Install: show the plan, confirm, and write the disk.
    Apply(ApplyArgs),
    /// Ask the questions, then plan and install (or only save the answer file).
    Guided(GuidedArgs),
    /// Read a password without echo and print its hash ($6$, or GRUB PBKDF2 with --grub).
    HashPassword(HashArgs),
    /// The live medium's entry point: find the answer, install unattended, power off.
    Live(LiveArgs),
    /// On an installed, mirrored host: the disks of the mirror.
    #[command(subcommand)]
    Disk(DiskCmd),
    /// Write the man pages and the bash and zsh completions below DIR (a package's usr/share)
    #[command(hide = true)]
    Docs {
        /// Directory to write man/man8/ and the completions' directories into
        dir: PathBuf,
    },
}

#[derive(Args)]
pub struct ValidateArgs {
    /// The answer file.
    pub file: PathBuf,
    /// Report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct InventoryArgs {
    /// Print the inventory as JSON (what `plan --inventory` reads).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Clone)]
pub struct Sources {
    /// A recorded inventory (from `inventory --json`) instead of this machine.
    #[arg(long, value_name = "FILE.json")]
    pub inventory: Option<PathBuf>,
    /// Directory with payload.json and the payload archive [default: the install medium's].
    #[arg(long, value_name = "DIR")]
    pub payload: Option<PathBuf>,
    /// Directory whose templates replace the built-in ones of the same name.
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
}

#[derive(Args)]
pub struct PlanArgs {
    /// The answer file to plan.
    #[arg(long, value_name = "FILE")]
    pub answer: PathBuf,
    #[command(flatten)]
    pub sources: Sources,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also print the content of every file that will be written.
    #[arg(long)]
    pub show_files: bool,
}

#[derive(Args)]
pub struct ApplyArgs {
    /// The answer file to install from.
    #[arg(long, value_name = "FILE")]
    pub answer: PathBuf,
    #[command(flatten)]
    pub sources: Sources,
    /// Do not ask for confirmation: the answer file is the consent.
    #[arg(long)]
    pub yes: bool,
    /// How progress is shown.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: Mode,
}

#[derive(Args)]
pub struct GuidedArgs {
    #[command(flatten)]
    pub sources: Sources,
    /// Save the answers as an answer file.
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// Stop after saving the answer file: plan and install nothing.
    #[arg(long, requires = "save")]
    pub no_install: bool,
    /// How progress is shown.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: Mode,
}

#[derive(Args)]
pub struct HashArgs {
    /// A GRUB `password_pbkdf2` hash instead of a $6$ crypt hash.
    #[arg(long)]
    pub grub: bool,
}

#[derive(Subcommand)]
pub enum DiskCmd {
    /// Bring a degraded mirror back to two disks: partition a new disk like the missing one, add it
    /// to the arrays, put GRUB and the ESP on it, and report the resync.
    Replace(ReplaceArgs),
}

#[derive(Args)]
pub struct ReplaceArgs {
    /// The new disk (blank, or with --wipe); at least as large as the mirror's partitions.
    #[arg(long, value_name = "DEVICE")]
    pub new: String,
    /// Overwrite what the new disk holds.
    #[arg(long)]
    pub wipe: bool,
    /// The install plan, which says how the disks are laid out.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/var/log/xenprov/plan.json"
    )]
    pub plan: PathBuf,
    /// Return once the disk is in the arrays, without waiting for the resync.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Args)]
pub struct LiveArgs {
    /// Read the kernel command line from this file instead of /proc/cmdline.
    #[arg(long, default_value = "/proc/cmdline", hide = true)]
    pub cmdline: PathBuf,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn every_flag_argument_and_verb_has_help() {
        xenprov_core::clap_help::assert_documented(&Cli::command());
    }
}
