//! The `sluice` command: arguments in, library calls, human or JSON rendering out, and the exit
//! codes of SPEC §8. All decisions live in the `sluice` library.

mod args;
mod commands;
mod failure;
mod passphrase;
mod progress;
mod render;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let json = cli.json;
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code.code()),
        Err(failure) => {
            failure.print(json);
            ExitCode::from(failure.code.code())
        }
    }
}
