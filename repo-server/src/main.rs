use clap::Parser;

fn main() -> anyhow::Result<()> {
    xenprov_repo::cli::run(xenprov_repo::cli::Cli::parse())
}
