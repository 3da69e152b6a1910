//! The device's time in the kernels, for `qbat-gpu bench`'s kernel-only figure.
//!
//! A run's "integrate" phase on the GPU is the kernels plus the read-back of every sample and
//! the host's filling of f64 rows. With the clock on, each batch of dispatches is timed on its
//! own: the queue is flushed and drained first (the uploads queued before it are not
//! counted), then the time from the first submit to the device's completion of the last
//! dispatch is added. That is an upper bound on the kernels' own time: it includes the
//! submission and the queue's latency. Off unless `bench` turns it on, as the drain before each
//! batch is a round trip a run does not need.

use super::GpuContext;
use crate::error::Result;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

static ON: AtomicBool = AtomicBool::new(false);
static NANOS: AtomicU64 = AtomicU64::new(0);

/// Time the kernels from now on (or stop).
pub fn set_on(on: bool) {
    ON.store(on, Ordering::Relaxed);
}

/// The kernels' time added since the last call, in seconds; the count starts again at zero.
pub fn take_seconds() -> f64 {
    NANOS.swap(0, Ordering::Relaxed) as f64 * 1e-9
}

/// Queue kernels with `submit`; with the clock on, wait for them and add their time.
pub(crate) fn timed(ctx: &GpuContext, submit: impl FnOnce()) -> Result<()> {
    if !ON.load(Ordering::Relaxed) {
        submit();
        return Ok(());
    }
    // (an empty submit carries the queue's pending buffer writes)
    ctx.queue.submit([]);
    ctx.wait()?;
    let t = Instant::now();
    submit();
    ctx.wait()?;
    NANOS.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
    Ok(())
}
