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
    /// Show the fleet's hosts (entries in the hosts directory) with their install state
    Hosts(Box<HostsArgs>),
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

#[derive(Debug, clap::Args)]
struct HostsArgs {
    #[command(subcommand)]
    verb: Option<HostsVerb>,
    /// Print the hosts as JSON
    #[arg(long)]
    json: bool,
    /// Read every entry and render every answer; exit 3 if one is broken
    #[arg(long)]
    check: bool,
    #[command(flatten)]
    args: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum HostsVerb {
    /// Arm a host for a new install: its next netboot installs it, with a new token
    Arm {
        /// The host's name (its entry is NAME.toml)
        name: String,
        #[command(flatten)]
        args: ServeArgs,
    },
    /// Print the answer file the host would get now (a dry run: nothing changes)
    Answer {
        /// The host's name (its entry is NAME.toml)
        name: String,
        #[command(flatten)]
        args: ServeArgs,
    },
}

fn hosts(h: HostsArgs) -> anyhow::Result<()> {
    use crate::fleet;
    use xenprov_registry::hosts::Hosts;
    let now = crate::provision::now();
    match h.verb {
        Some(HostsVerb::Arm { name, args }) => {
            let config = args.config()?;
            answer_of(&config.hosts_dir(), &name)?;
            Hosts::open(&config.hosts_state).arm(&name, now)?;
            println!("host {name} is armed: its next netboot installs it");
            Ok(())
        }
        Some(HostsVerb::Answer { name, args }) => {
            let config = args.config()?;
            print!("{}", answer_of(&config.hosts_dir(), &name)?);
            Ok(())
        }
        None => {
            let config = h.args.config()?;
            let rows = fleet::rows(&config.hosts_dir(), &Hosts::open(&config.hosts_state))?;
            if h.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "{:<20} {:<11} {:<21} {:<10} MATCH",
                    "HOST", "STATE", "SINCE", "EVENT"
                );
                for r in &rows {
                    let since = if r.since == 0 {
                        "-".to_string()
                    } else {
                        humantime::format_rfc3339_seconds(
                            std::time::UNIX_EPOCH + std::time::Duration::from_secs(r.since),
                        )
                        .to_string()
                    };
                    println!(
                        "{:<20} {:<11} {:<21} {:<10} {}",
                        r.name,
                        r.state,
                        since,
                        r.last_event.as_deref().unwrap_or("-"),
                        r.matcher
                    );
                }
            }
            let broken: Vec<&str> = rows
                .iter()
                .filter(|r| r.state == "broken")
                .filter_map(|r| r.problem.as_deref())
                .collect();
            if h.check && !broken.is_empty() {
                return Err(xenprov_core::exit::invalid(broken.join("\n")).into());
            }
            if !broken.is_empty() {
                eprintln!(
                    "{} broken; `xenprov-repo hosts --check` says why",
                    broken.len()
                );
            }
            if h.check {
                eprintln!(
                    "{} host entries in {}, none broken",
                    rows.len(),
                    config.hosts_dir().display()
                );
            }
            Ok(())
        }
    }
}

/// The answer of host `name`, whose entry must be sound; every problem it has otherwise.
fn answer_of(dir: &std::path::Path, name: &str) -> anyhow::Result<String> {
    let entries = crate::fleet::check(dir)?;
    let Some(e) = entries.into_iter().find(|e| e.name == name) else {
        return Err(xenprov_core::exit::invalid(format!(
            "no host {name}: there is no {}/{name}.toml",
            dir.display()
        ))
        .into());
    };
    match (e.answer, e.problem) {
        (Some(answer), None) => Ok(answer),
        (_, problem) => Err(xenprov_core::exit::invalid(problem.unwrap_or_default()).into()),
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args.config()?),
        Command::List(args) => crate::content::inventory::list(&args.config()?),
        Command::Hosts(h) => hosts(*h),
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
