//! A binary's command line, explained: the check that every flag, positional argument and verb has a
//! help line, so `--help` never lists a bare name (each binary's tests run it on its own
//! `clap::Command`), and the man pages and shell completions made from the same help (each binary's
//! hidden `docs` verb writes them, for its Debian package). It is here, behind the `clap` feature, so
//! that all binaries share one walk and one layout; `write_docs` is the one place in `core` that
//! writes files, and only where a packager points it.

use std::io;
use std::path::{Path, PathBuf};

use clap::{ArgAction, Command};
use clap_complete::Shell;

/// Fails the calling test when `cmd` is inconsistent (clap's own checks) or leaves anything
/// without help.
pub fn assert_documented(cmd: &Command) {
    cmd.clone().debug_assert();
    let missing = undocumented(cmd);
    assert!(missing.is_empty(), "without help: {missing:#?}");
}

/// Every argument and subcommand of `cmd`, at any depth, that has no help, as the words that
/// reach it (`xenprov-guest new --vg`). clap's own help and version flags and its `help` verb
/// are left out: clap writes their help itself.
pub fn undocumented(cmd: &Command) -> Vec<String> {
    let mut cmd = cmd.clone();
    // Built as clap builds it to parse: global flags copied into subcommands, help added.
    cmd.build();
    let mut missing = Vec::new();
    walk(&cmd, cmd.get_name(), &mut missing);
    missing
}

fn walk(cmd: &Command, path: &str, missing: &mut Vec<String>) {
    for a in cmd.get_arguments() {
        let clap_own = matches!(
            a.get_action(),
            ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
        );
        if !clap_own && a.get_help().is_none() && a.get_long_help().is_none() {
            let name = a
                .get_long()
                .map_or_else(|| a.get_id().to_string(), |l| format!("--{l}"));
            missing.push(format!("{path} {name}"));
        }
    }
    for sub in cmd.get_subcommands() {
        // clap's `help` verb, with a copy of the whole tree under it.
        if sub.get_name() == "help" && !cmd.is_disable_help_subcommand_set() {
            continue;
        }
        let sub_path = format!("{path} {}", sub.get_name());
        if sub.get_about().is_none() && sub.get_long_about().is_none() {
            missing.push(sub_path.clone());
        }
        walk(sub, &sub_path, missing);
    }
}

/// The man pages of `cmd` in `section`, as `(file name, roff)`: one for the binary (`NAME.8`) and one
/// for each visible verb at any depth (`NAME-VERB.8`), as git's are. Hidden verbs and clap's `help`
/// verb get none.
pub fn man_pages(cmd: &Command, section: &str) -> io::Result<Vec<(String, Vec<u8>)>> {
    fn collect(cmd: Command, section: &str, pages: &mut Vec<(String, Vec<u8>)>) -> io::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            collect(sub.clone(), section, pages)?;
        }
        let man = clap_mangen::Man::new(cmd).section(section);
        let mut roff = Vec::new();
        man.render(&mut roff)?;
        pages.push((man.get_filename(), roff));
        Ok(())
    }
    // Built first, so that each verb's page is named and headed with the binary's name before its own.
    let mut cmd = cmd.clone().disable_help_subcommand(true);
    cmd.build();
    let mut pages = Vec::new();
    collect(cmd, section, &mut pages)?;
    pages.sort();
    Ok(pages)
}

/// The bash and zsh completions of `cmd`, as `(path below /usr/share, script)`: where
/// bash-completion and Debian's zsh look for them.
pub fn completions(cmd: &Command) -> Vec<(String, Vec<u8>)> {
    let name = cmd.get_name().to_string();
    [
        (Shell::Bash, format!("bash-completion/completions/{name}")),
        (Shell::Zsh, format!("zsh/vendor-completions/_{name}")),
    ]
    .into_iter()
    .map(|(shell, path)| {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), &name, &mut script);
        (path, script)
    })
    .collect()
}

/// Writes `man/man8/` (section 8: the binaries are root's tools and daemons) and the completions
/// below `dir`, normally a package's `usr/share`, and returns the files written.
pub fn write_docs(cmd: &Command, dir: &Path) -> io::Result<Vec<PathBuf>> {
    let man = man_pages(cmd, "8")?
        .into_iter()
        .map(|(name, roff)| (format!("man/man8/{name}"), roff));
    let mut written = Vec::new();
    for (rel, bytes) in man.chain(completions(cmd)) {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, bytes)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use clap::{Arg, Command};

    #[test]
    fn finds_what_has_no_help_at_any_depth() {
        let cmd = Command::new("tool")
            .arg(Arg::new("quiet").long("quiet").help("Say less"))
            .arg(Arg::new("loud").long("loud"))
            .subcommand(
                Command::new("run")
                    .about("Run it")
                    .arg(Arg::new("name").required(true))
                    .subcommand(Command::new("fast")),
            );
        assert_eq!(
            super::undocumented(&cmd),
            ["tool --loud", "tool run name", "tool run fast"]
        );
    }

    #[test]
    fn man_pages_for_the_binary_and_each_visible_verb() {
        let cmd = Command::new("tool")
            .about("Does things")
            .subcommand(
                Command::new("run")
                    .about("Run it")
                    .arg(Arg::new("fast").long("fast").help("Quickly")),
            )
            .subcommand(Command::new("secret").about("Internal").hide(true));
        let pages = super::man_pages(&cmd, "8").unwrap();
        let names: Vec<_> = pages.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["tool-run.8", "tool.8"]);
        let run = String::from_utf8(pages[0].1.clone()).unwrap();
        assert!(run.contains(".TH tool-run 8"), "{run}");
        assert!(run.contains("fast") && run.contains("Quickly"), "{run}");
    }

    #[test]
    fn completions_where_the_shells_look() {
        let cmd = Command::new("tool").subcommand(Command::new("run").about("Run it"));
        let got = super::completions(&cmd);
        assert_eq!(got[0].0, "bash-completion/completions/tool");
        assert!(String::from_utf8_lossy(&got[0].1).contains("complete -F _tool"));
        assert_eq!(got[1].0, "zsh/vendor-completions/_tool");
        assert!(String::from_utf8_lossy(&got[1].1).starts_with("#compdef tool"));
    }
}
