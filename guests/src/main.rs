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
    // Nor does this need a registry: it may run on a build machine.
    if let Verb::PrepareBase { os, mirror } = &cli.verb {
        return verbs::prepare_base(&cfg, &templates(&cfg)?, os, mirror.clone());
    }
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
        Verb::Start { name } => verbs::start(&env, &name),
        Verb::Stop { name, timeout } => verbs::stop(&env, &name, timeout),
        Verb::Reboot { name } => verbs::simple(&env, &name, "reboot"),
        Verb::Destroy { name } => verbs::simple(&env, &name, "destroy"),
        Verb::Pause { name } => verbs::simple(&env, &name, "pause"),
        Verb::Unpause { name } => verbs::simple(&env, &name, "unpause"),
        Verb::Console { name } => verbs::console(&env, &name),
        Verb::Save { name, file } => verbs::save(&env, &name, &file),
        Verb::Restore { file } => verbs::restore(&env, &file),
        Verb::Set { name, changes } => verbs::set(&env, &name, &changes.into()),
        Verb::Resize { name, size } => verbs::resize(&env, &name, size),
        Verb::Snapshot {
            name,
            action,
            snapshot,
            size,
        } => verbs::snapshot(&env, &name, action, snapshot.as_deref(), size),
        Verb::Backup { name, file } => verbs::backup_cmd(&env, &name, &file),
        Verb::Mount {
            name,
            dir,
            rw,
            partition,
        } => verbs::mount(&env, &name, &dir, partition, rw),
        Verb::Umount { name } => verbs::umount(&env, &name),
        Verb::Top {
            json,
            batch,
            iterations,
            delay,
        } => verbs::top(&env, json, batch, iterations, delay),
        Verb::Network { action, json } => verbs::network(&env, action, json),
        Verb::Docs { .. } | Verb::PrepareBase { .. } => {
            unreachable!("done before the registry is opened")
        }
    }
}
