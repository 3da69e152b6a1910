//! qbat-gpu: large ensembles of open quantum batteries (two qubits, and two cells with a cavity
//! mode), stepped with fixed-step RK4 under the Lindblad equation, on the GPU (WGSL through wgpu)
//! and on an f64 CPU reference (nalgebra) that validates it.
//!
//! Data path: config -> Plan -> engine (reference, twin or gpu, through the layouts of `job`)
//! -> measures -> run (in memory) or study (streamed to files by `output`). ARCHITECTURE.md
//! draws the layers and the rules between them.

// `print!`, `println!`, `eprint!` and `eprintln!` that never panic (`console`), for every
// module below.
#[allow(unused_macros)]
macro_rules! print {
    ($($t:tt)*) => { $crate::console::out(format_args!($($t)*)) };
}
#[allow(unused_macros)]
macro_rules! println {
    () => { $crate::console::out(format_args!("\n")) };
    ($($t:tt)*) => { $crate::console::out(format_args!("{}\n", format_args!($($t)*))) };
}
#[allow(unused_macros)]
macro_rules! eprint {
    ($($t:tt)*) => { $crate::console::err(format_args!($($t)*)) };
}
#[allow(unused_macros)]
macro_rules! eprintln {
    () => { $crate::console::err(format_args!("\n")) };
    ($($t:tt)*) => { $crate::console::err(format_args!("{}\n", format_args!($($t)*))) };
}

pub mod analyze;
pub mod config;
pub mod console;
pub mod describe;
pub mod engine;
pub mod ensemble;
pub mod error;
pub mod faults;
pub mod gpu;
pub mod job;
pub mod linalg;
pub mod measures;
pub mod model;
pub mod open_files;
pub mod output;
pub mod plain_file;
pub mod pyapi;
pub mod reference;
pub mod run;
pub mod signals;
pub mod stack;
pub mod study;
#[cfg(test)]
mod test_alloc;
pub mod threads;
pub mod twin;
pub mod validate;
pub mod verify;
