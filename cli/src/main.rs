//! The `fedchain` command: parses the command line and hands over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    fedchain::Cli::parse().run()
}
