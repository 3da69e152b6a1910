//! qbat-gpu command line: parse -> `app::run` -> `ExitCode`. The exit code comes from the
//! outcome or the error's own `exit_code` (2 for bad input, a missing device or a thread that
//! cannot be started, 1 otherwise).

mod app;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Before any thread starts: a runtime dir for the Vulkan drivers' probe (gpu/runtime_dir.rs).
    qbat_gpu::gpu::runtime_dir::ensure_runtime_dir();
    let cli = app::cli::Cli::parse();
    match app::run(cli) {
        Ok(outcome) => outcome.exit_code(),
        Err(e) => {
            eprintln!("error: {}", app::message(&e));
            ExitCode::from(e.exit_code())
        }
    }
}
