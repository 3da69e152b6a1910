//! The GPU context a run will ask for, opened ahead on a thread of its own.
//!
//! Opening a device (the Vulkan instance, the adapters' probe, the device and its queue) took
//! about 0.2 s on an H200 machine, and building a large ensemble's members (cavity-10k's plans)
//! about 0.3 s before it: one after the other, both before the first block. Started before the
//! config is parsed, the open overlaps the parse; `resolve_backend` then finds the context in
//! `gpu_context`'s slot (or waits there for it). A failed open caches nothing: the run's own
//! open fails again and says why. The guard joins the thread when dropped, so that the process
//! never exits (a refused config) while a driver call is under way. Under an address-space or
//! data-size limit (`ulimit -v`, `ulimit -d`) the context is opened before the parse instead,
//! so that the config's memory check counts the driver's mapping.

use super::{driver_gate, gpu_context, Backend, Precision};
use crate::config::available_memory::process_limit_left;

pub struct GpuAhead(Option<std::thread::JoinHandle<()>>);

impl GpuAhead {
    /// Open the context `resolve_backend` will ask for with these options: for `--backend gpu`
    /// and `auto`; nothing for the CPU engines, or where no thread can be had.
    pub fn open(backend: Backend, adapter: Option<&str>, precision: Precision) -> GpuAhead {
        // (under a process limit that leaves too little, no driver is opened)
        if !matches!(backend, Backend::Gpu | Backend::Auto) || driver_gate().is_err() {
            return GpuAhead(None);
        }
        let adapter = adapter.map(str::to_string);
        let need_f64 = precision == Precision::F64;
        // Under an address-space or data-size limit the driver is opened here, before the
        // config's memory check, which must count its mapping (lavapipe's is about 1 GiB of
        // address space, 0.2 to 0.5 GiB of data), not beside it.
        if process_limit_left().is_some() {
            let _ = gpu_context(adapter.as_deref(), need_f64);
            return GpuAhead(None);
        }
        GpuAhead(
            std::thread::Builder::new()
                .name("qbat-gpu-open".into())
                .spawn(move || {
                    let _ = gpu_context(adapter.as_deref(), need_f64);
                })
                .ok(),
        )
    }
}

impl Drop for GpuAhead {
    fn drop(&mut self) {
        if let Some(thread) = self.0.take() {
            let _ = thread.join();
        }
    }
}
