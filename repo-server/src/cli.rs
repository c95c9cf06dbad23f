//! Command line of `xenprov-repo`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::signal::unix::{SignalKind, signal};

use crate::config::{Config, ServeArgs};
use crate::logging;
use crate::server::Server;

/// Repo server of a xenprov Xen host: serves install trees and package repositories over HTTP.
#[derive(Debug, Parser)]
#[command(name = "xenprov-repo", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve a directory over HTTP/1.1 and HTTP/2 until SIGTERM or SIGINT
    Serve(ServeArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args.config()?),
    }
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
