//! Command line of `xenprov-repo`.

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use tokio::signal::unix::{SignalKind, signal};

use crate::server::Server;
use crate::server::logging;
use crate::settings::config::{Config, ServeArgs};

/// Repo server of a xenprov Xen host: serves install trees and package repositories over HTTP.
#[derive(Debug, Parser)]
#[command(name = "xenprov-repo", version, after_help = xenprov_core::exit::HELP)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve a directory over HTTP/1.1 and HTTP/2 until SIGTERM or SIGINT
    Serve(ServeArgs),
    /// Show the ISO images, upstream caches and mirrors of the configuration, and what each holds
    List(ServeArgs),
    /// Sync a [[mirror]] of the configuration into a new snapshot, verify it, and publish it
    Mirror {
        /// Name of the [[mirror]]
        name: String,
        #[command(flatten)]
        args: ServeArgs,
    },
    /// Print the SHA-256 of files, as sha256sum does (the digest code of the verifying cache)
    Sha256 {
        /// The files to hash
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Print the JSON Schema of the config file (repo.toml), for editors and checks
    Schema,
    /// Write the man pages and the bash and zsh completions below DIR (a package's usr/share)
    #[command(hide = true)]
    Docs {
        /// Directory to write man/man8/ and the completions' directories into
        dir: std::path::PathBuf,
    },
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args.config()?),
        Command::List(args) => crate::content::inventory::list(&args.config()?),
        Command::Mirror { name, args } => mirror(&args.config()?, &name),
        Command::Schema => {
            let schema = crate::settings::config::schema();
            println!("{}", serde_json::to_string_pretty(&schema)?);
            Ok(())
        }
        Command::Docs { dir } => {
            xenprov_core::clap_help::write_docs(&Cli::command(), &dir)?;
            Ok(())
        }
        Command::Sha256 { files } => {
            for file in files {
                let (sha, _) = crate::content::verify::digest::hash_file(&file)
                    .with_context(|| format!("reading {}", file.display()))?;
                println!("{sha}  {}", file.display());
            }
            Ok(())
        }
    }
}

fn mirror(config: &Config, name: &str) -> anyhow::Result<()> {
    logging::init(false);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the mirror's runtime")?;
    let synced = runtime.block_on(crate::content::mirror::sync(config, name));
    logging::flush();
    let synced = synced?;
    if !synced.pruned.is_empty() {
        eprintln!(
            "mirror {name}: removed old snapshots {}",
            synced.pruned.join(", ")
        );
    }
    println!("{}", synced.snapshot);
    Ok(())
}

fn serve(config: Config) -> anyhow::Result<()> {
    logging::init(config.access_log);
    raise_open_files_limit(config.max_connections);
    let server = Server::bind(config.clone())?;
    let addr = server
        .local_addr()
        .context("reading the listening address")?;
    tracing::info!("serving {} on http://{addr}", config.root.display());
    // This thread accepts connections and waits for signals; the workers serve the connections.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal handler")?;
    let served = runtime.block_on(async {
        let mut sigterm =
            signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut sigint =
            signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        server
            .run(async move {
                tokio::select! {
                    _ = sigterm.recv() => tracing::info!("SIGTERM received"),
                    _ = sigint.recv() => tracing::info!("SIGINT received"),
                }
            })
            .await
    });
    logging::flush();
    served
}

/// Each connection is a file descriptor: lift the soft limit to the hard one.
fn raise_open_files_limit(max_connections: usize) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    if let Err(e) = setrlimit(Resource::Nofile, limit) {
        tracing::warn!("raising the open-files limit: {e}");
    }
    let current = getrlimit(Resource::Nofile).current;
    if let Some(current) = current
        && current < max_connections as u64 + 64
    {
        tracing::warn!("open-files limit {current} is below max-connections {max_connections}");
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_flag_argument_and_verb_has_help() {
        xenprov_core::clap_help::assert_documented(&super::Cli::command());
    }
}
