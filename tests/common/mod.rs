//! Shared by the GPU test files: whether an adapter is there (skip with a note, or fail under
//! QBAT_REQUIRE_GPU=1), and a lock that keeps GPU tests in one binary from running at once.

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
