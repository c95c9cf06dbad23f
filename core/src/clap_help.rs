//! A check that a binary's command line explains itself: every flag, positional argument and verb
//! has a help line, so `--help` never lists a bare name. Each binary's tests run it on its own
//! `clap::Command`; it is here, behind the `clap` feature, so that all of them share one walk.

use clap::{ArgAction, Command};

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
}
