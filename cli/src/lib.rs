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
/// `rotor-<subcommand>(8)` per subcommand.
pub fn man_pages() -> Vec<ManPage> {
    use clap::CommandFactory;
    let mut pages = vec![ManPage {
        name: "rotord".into(),
        section: "8",
        command: rotord::Args::command(),
    }];
    let rotor = rotor::Cli::command();
    for sub in rotor.get_subcommands() {
        let name = format!("rotor-{}", sub.get_name());
        pages.push(ManPage {
            section: "8",
            command: sub
                .clone()
                .name(name.clone())
                .bin_name(format!("rotor {}", sub.get_name())),
            name,
        });
    }
    pages.insert(
        1,
        ManPage {
            name: "rotor".into(),
            section: "8",
            command: rotor,
        },
    );
    pages
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
            "rotor-cmap",
            "rotor-cpg",
            "rotor-bench",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
        }
    }
}
