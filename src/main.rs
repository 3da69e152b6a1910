//! qbat-gpu command line: parse -> `app::run` -> `ExitCode`. The exit code comes from the
//! outcome or the error's own `exit_code` (2 for bad input, a missing device or a thread that
//! cannot be started, 1 otherwise).

// `print!`, `println!`, `eprint!` and `eprintln!` that never panic (qbat_gpu::console), for
// every module below.
#[allow(unused_macros)]
macro_rules! print {
    ($($t:tt)*) => { qbat_gpu::console::out(format_args!($($t)*)) };
}
#[allow(unused_macros)]
macro_rules! println {
    () => { qbat_gpu::console::out(format_args!("\n")) };
    ($($t:tt)*) => { qbat_gpu::console::out(format_args!("{}\n", format_args!($($t)*))) };
}
#[allow(unused_macros)]
macro_rules! eprint {
    ($($t:tt)*) => { qbat_gpu::console::err(format_args!($($t)*)) };
}
#[allow(unused_macros)]
macro_rules! eprintln {
    () => { qbat_gpu::console::err(format_args!("\n")) };
    ($($t:tt)*) => { qbat_gpu::console::err(format_args!("{}\n", format_args!($($t)*))) };
}

mod app;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Before any thread starts: a runtime dir for the Vulkan drivers' probe (gpu/runtime_dir.rs).
    qbat_gpu::gpu::runtime_dir::ensure_runtime_dir();
    // A write past a file-size limit (`ulimit -f`, as batch schedulers set) then fails with
    // EFBIG, which is reported naming the file, instead of killing the process by SIGXFSZ with
    // no word (as CPython does too).
    #[cfg(unix)]
    // SAFETY: no other thread runs yet, and SIG_IGN installs no handler.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    // A signal that ends the process first removes the outputs it leaves uncommitted
    // (before any other thread starts: they inherit its mask).
    qbat_gpu::signals::remove_uncommitted_on_signals();
    // (on a thread of its own where `ulimit -s` is tighter than the usual 8 MiB: stack.rs)
    let code = match qbat_gpu::stack::with_stack(parse_and_run) {
        Ok(code) => code,
        Err(why) => {
            eprintln!("error: {why}");
            ExitCode::from(2)
        }
    };
    qbat_gpu::gpu::runtime_dir::remove_own();
    code
}

/// Parse, run, and the exit code.
fn parse_and_run() -> ExitCode {
    let cli = match app::cli::Cli::try_parse() {
        Ok(cli) => cli,
        // help and version print as clap prints them (a stdout that fails is exit 1, as below)
        Err(e) if !e.use_stderr() => {
            return match e.print().and_then(|()| std::io::Write::flush(&mut std::io::stdout())) {
                Err(why) if why.kind() != std::io::ErrorKind::BrokenPipe => {
                    eprintln!("error: i/o: standard output: {why}");
                    ExitCode::from(1)
                }
                _ => ExitCode::SUCCESS,
            };
        }
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            return ExitCode::from(2);
        }
    };
    let outcome = app::run(cli);
    // (a streamed run a signal stopped has checkpointed its blocks: the command ends by the
    // signal, as it would have without the stop)
    if let Some(sig) = qbat_gpu::signals::received() {
        qbat_gpu::signals::end_by(sig);
        // (where the signal does not end the process, PID 1's in a container: a shell's status)
        return ExitCode::from((128 + sig).clamp(0, 255) as u8);
    }
    // (a stdout that could not be written lost the command's output; a closed pipe is not
    // counted: its reader wanted no more)
    let outcome = match (outcome, qbat_gpu::console::stdout_failure()) {
        (Ok(_), Some(why)) => Err(qbat_gpu::error::QbatError::io(std::path::Path::new("standard output"), why)),
        (outcome, _) => outcome,
    };
    match outcome {
        Ok(outcome) => outcome.exit_code(),
        Err(e) => {
            eprintln!("error: {}", app::message(&e));
            ExitCode::from(e.exit_code())
        }
    }
}

/// A command-line error in one line, as every other error: clap's message with its details
/// (the possible values, a tip, the usage, which names the command) joined on, its "--help"
/// line left out.
fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let parts = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("For more information"));
    let mut line = String::new();
    for part in parts {
        // a line that ends in ':' introduces the next
        line += match (line.is_empty(), line.ends_with(':')) {
            (true, _) => "",
            (false, true) => " ",
            (false, false) => "; ",
        };
        line += &part.replacen("Usage:", "usage:", 1);
    }
    // (the user's value clap quotes is shown escaped and bounded, as in every other error)
    qbat_gpu::error::shown_line(line.trim_start_matches("error: "))
}
