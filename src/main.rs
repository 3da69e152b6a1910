//! qbat-gpu command line: parse -> `app::run` -> `ExitCode`. The exit code comes from the
//! outcome or the error's own `exit_code` (2 for bad input or a missing device, 1 otherwise).

mod app;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = app::cli::Cli::parse();
    match app::run(cli) {
        Ok(outcome) => outcome.exit_code(),
        Err(e) => {
            eprintln!("error: {}", app::message(&e));
            ExitCode::from(e.exit_code())
        }
    }
}
