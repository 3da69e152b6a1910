//! Shared by the test files: the binary under test, and for the GPU tests whether an adapter is
//! there (skip with a note, or fail under QBAT_REQUIRE_GPU=1) and a lock that keeps GPU tests in
//! one binary from running at once.
#![allow(dead_code)]

use qbat_gpu::engine::gpu_context;
use std::sync::Mutex;

pub static SERIAL: Mutex<()> = Mutex::new(());

pub fn have_gpu(need_f64: bool) -> bool {
    match gpu_context(None, need_f64) {
        Ok(_) => true,
        Err(e) => {
            if std::env::var("QBAT_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("QBAT_REQUIRE_GPU=1 but no usable GPU adapter{}: {e}", if need_f64 { " with f64" } else { "" });
            }
            eprintln!("skipping: no GPU adapter ({e})");
            false
        }
    }
}

/// The release binary, with a usable XDG_RUNTIME_DIR (Mesa wants one) and no injected faults.
pub fn bin() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_qbat-gpu"));
    c.env("XDG_RUNTIME_DIR", std::env::temp_dir()).env_remove("QBAT_INJECT_FAULT");
    c
}

/// Run, assert success, and return stdout followed by stderr (notes and warnings go there).
pub fn ok(c: &mut std::process::Command) -> String {
    let o = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", o.status.code());
    stdout + &stderr
}
