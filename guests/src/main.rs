//! xenprov-guest: define, install and run Xen guests on this dom0.

mod cli;
mod verbs;

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use clap::{CommandFactory, Parser};
use xenprov_core::render::Templates;
use xenprov_guest::machine::Dom0;
use xenprov_guest::ops::Env;
use xenprov_registry::Registry;
use xenprov_registry::settings::Config;

use crate::cli::{Cli, Verb};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn templates(cfg: &Config) -> Result<Templates> {
    Ok(match &cfg.templates {
        Some(dir) => Templates::with_overrides(dir)?,
        None => Templates::builtin(),
    })
}

fn main() -> std::process::ExitCode {
    xenprov_core::exit::report(run(Cli::parse()))
}

fn run(cli: Cli) -> Result<()> {
    // Before the settings and the registry: a packager runs it on a machine that has neither.
    if let Verb::Docs { dir } = &cli.verb {
        xenprov_core::clap_help::write_docs(&Cli::command(), dir)?;
        return Ok(());
    }
    let cfg = Config::load(&cli.config)?;
    let registry = Registry::open(&cfg.paths.registry, templates(&cfg)?)?;
    let env = Env {
        config: &cfg,
        registry: &registry,
        machine: &Dom0,
        now: &now,
    };
    match cli.verb {
        Verb::Render {
            from,
            what,
            phase,
            repo_url,
        } => verbs::render_cmd(&env, &from, what, phase, repo_url),
        Verb::New {
            name,
            from,
            flags,
            no_wait,
        } => verbs::new(&env, &name, from.as_deref(), flags, no_wait),
        Verb::Wait { name } => verbs::wait(&env, &name),
        Verb::List { json } => verbs::list(&env, json),
        Verb::Show { name, json } => verbs::show(&env, &name, json),
        Verb::FetchInstaller { os, repo_url } => verbs::fetch_installer(&env, &os, repo_url),
        Verb::Rm {
            name,
            keep_disk,
            force,
        } => verbs::rm(&env, &name, keep_disk, force),
        Verb::Docs { .. } => unreachable!("written before the settings are read"),
    }
}
