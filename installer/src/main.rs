//! xenprov-install: turns a machine into a Xen host from an answer file or a few questions.

mod apply;
mod blockdev;
mod cli;
mod guided;
mod inventory;
mod io;
mod live;
mod logging;
mod md;
mod nvram;
mod payload;
mod probe;
mod prompt;
mod replace;
mod unpack;
mod verbs;

use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Cmd};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Validate(a) => verbs::validate(a),
        Cmd::Schema => verbs::schema(),
        Cmd::Inventory(a) => verbs::inventory(a),
        Cmd::Plan(a) => verbs::plan(a),
        Cmd::Apply(a) => verbs::apply(a),
        Cmd::Guided(a) => guided::guided(a),
        Cmd::HashPassword(a) => verbs::hash_password(a),
        Cmd::Live(a) => live::live(a),
        Cmd::Disk(cli::DiskCmd::Replace(a)) => replace::replace(&a),
        Cmd::Docs { dir } => xenprov_core::clap_help::write_docs(&Cli::command(), &dir)
            .map(|_| std::process::ExitCode::SUCCESS)
            .map_err(Into::into),
    };
    xenprov_core::exit::report(result)
}
