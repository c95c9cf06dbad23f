//! xenprov-image: builds the dom0 payload, the live environment and the hybrid BIOS+UEFI install ISO.

mod cache;
mod cli;
mod cpio;
mod debs;
mod iso;
mod live;
mod payload;
mod rootfs;
mod timing;
mod tree;
mod verbs;

use anyhow::Result;
use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Verb};

fn main() -> std::process::ExitCode {
    xenprov_core::exit::report(run(Cli::parse()))
}

fn run(cli: Cli) -> Result<()> {
    match cli.verb {
        Verb::Inputs(common) => verbs::inputs(&common),
        Verb::Payload { common, out_dir } => verbs::build_payload(&common, &out_dir),
        Verb::Live {
            common,
            out_dir,
            installer,
        } => verbs::build_live(&common, &out_dir, installer),
        Verb::Iso {
            common,
            out,
            answer,
            kernel_args,
            installer,
            work_dir,
        } => verbs::build_iso(&common, &out, answer, kernel_args, installer, &work_dir),
        Verb::Debs { bin_dir, out_dir } => verbs::build_debs(bin_dir, &out_dir),
        Verb::Docs { dir } => {
            xenprov_core::clap_help::write_docs(&Cli::command(), &dir)?;
            Ok(())
        }
    }
}
