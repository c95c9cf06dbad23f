//! xenprov-repo: parses its command line and runs it (`cli`).

use clap::Parser;

fn main() -> std::process::ExitCode {
    xenprov_core::exit::report(xenprov_repo::cli::run(xenprov_repo::cli::Cli::parse()))
}
