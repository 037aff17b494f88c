//! `rotor`: the command-line tool of a rotor cluster.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rotor_client::keygen;

#[derive(Parser)]
#[command(name = "rotor", version, about = "rotor cluster engine tool")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate the cluster authentication key (256 random bytes, mode 0400).
    Keygen {
        /// Where to write the key.
        #[arg(short = 'k', long = "key-file", default_value = keygen::KEY_PATH_DEFAULT)]
        key_file: PathBuf,
        /// Replace an existing key.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Keygen { key_file, force } => match keygen::generate(&key_file, force) {
            Ok(()) => {
                println!(
                    "rotor: wrote a {}-byte key to {}",
                    keygen::KEY_LEN,
                    key_file.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("rotor: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
