//! The command lines of `rotord` and the `rotor` tool, as clap definitions and nothing else:
//! the binaries parse their arguments with them and `cargo xtask man` renders the man pages
//! from them, so `--help` and the man pages cannot disagree. Pure definitions (clap only), so
//! xtask builds it before the system packages the rest of the workspace needs are installed.

pub mod rotor;
pub mod rotord;

pub use clap;

/// The default authkey path, as corosync's (`COROSYNC_TOTEM_AUTHKEY_FILE` overrides it for
/// rotord).
pub const AUTHKEY_PATH_DEFAULT: &str = "/etc/corosync/authkey";

/// A man page: its name (`rotor-cmap`), section and the command it documents.
pub struct ManPage {
    pub name: String,
    pub section: &'static str,
    pub command: clap::Command,
}

/// Every man page generated from the command lines: rotord(8), rotor(8) and one
/// `rotor-<subcommand>(8)` per subcommand, nested ones included (`rotor-sam-demo`). The pages
/// leave out clap's `help` subcommand (`rotor help X` is `rotor X --help`).
pub fn man_pages() -> Vec<ManPage> {
    use clap::CommandFactory;
    let mut pages = vec![
        ManPage {
            name: "rotord".into(),
            section: "8",
            command: without_help(rotord::Args::command()),
        },
        ManPage {
            name: "rotor".into(),
            section: "8",
            command: without_help(rotor::Cli::command()),
        },
    ];
    subcommand_pages(&rotor::Cli::command(), "rotor", "rotor", &mut pages);
    pages
}

/// A page per subcommand of `parent` (whose page is `page`, typed as `typed`), and theirs.
fn subcommand_pages(parent: &clap::Command, page: &str, typed: &str, out: &mut Vec<ManPage>) {
    for sub in parent.get_subcommands() {
        let name = format!("{page}-{}", sub.get_name());
        let typed = format!("{typed} {}", sub.get_name());
        let command = if typed == "rotor quorum" {
            quorum_page_command(sub.clone())
        } else {
            sub.clone()
        };
        out.push(ManPage {
            command: without_help(command.name(name.clone()).bin_name(typed.clone())),
            name: name.clone(),
            section: "8",
        });
        subcommand_pages(sub, &name, &typed, out);
    }
}

/// `cmd` and its subcommands without clap's `help` subcommand, for the man pages.
fn without_help(cmd: clap::Command) -> clap::Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    names
        .iter()
        .fold(cmd.disable_help_subcommand(true), |cmd, name| {
            cmd.mut_subcommand(name, without_help)
        })
}

/// rotor-quorum(8)'s command: `rotor quorum` hands its arguments to corosync-quorumtool's own
/// getopt-style parser, so its page lists the options from `rotor::QUORUM_OPTIONS` (the table
/// `rotor quorum -h` prints) in place of the raw argument list.
fn quorum_page_command(cmd: clap::Command) -> clap::Command {
    use clap::{Arg, ArgAction};
    let mut cmd = cmd
        .mut_arg("args", |a| a.hide(true))
        .after_help(format!("{}.", rotor::QUORUM_STARRED));
    for o in rotor::QUORUM_OPTIONS {
        let arg = Arg::new(format!("opt-{}", o.short))
            .short(o.short)
            .help(o.help.to_owned());
        cmd = cmd.arg(match o.value {
            Some(v) => arg.value_name(v).action(ArgAction::Set),
            None => arg.action(ArgAction::SetTrue),
        });
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_lines_are_consistent() {
        use clap::CommandFactory;
        rotord::Args::command().debug_assert();
        rotor::Cli::command().debug_assert();
    }

    #[test]
    fn every_subcommand_has_a_page() {
        let names: Vec<String> = man_pages().into_iter().map(|p| p.name).collect();
        for want in [
            "rotord",
            "rotor",
            "rotor-keygen",
            "rotor-status",
            "rotor-shutdown",
            "rotor-quorum",
            "rotor-sam",
            "rotor-sam-demo",
            "rotor-cmap",
            "rotor-cpg",
            "rotor-bench",
            "rotor-xdp-remove",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
        }
        assert!(
            !names.iter().any(|n| n.ends_with("-help")),
            "no page for clap's help subcommand: {names:?}"
        );
    }

    #[test]
    fn the_quorum_page_lists_corosync_quorumtool_s_options() {
        let page = man_pages()
            .into_iter()
            .find(|p| p.name == "rotor-quorum")
            .unwrap();
        for o in rotor::QUORUM_OPTIONS {
            let arg = page
                .command
                .get_arguments()
                .find(|a| a.get_short() == Some(o.short))
                .unwrap_or_else(|| panic!("-{} on rotor-quorum(8)", o.short));
            assert!(!arg.is_hide_set());
        }
    }
}
