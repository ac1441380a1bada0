//! The `fedchain` command: parses the command line and hands over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    // FAILPOINTS=name=action;... (crash tests; only with the `failpoints` feature)
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    fedchain::Cli::parse().run()
}
