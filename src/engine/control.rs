//! A run's shared control: a cancel flag the caller sets (the Python bindings on Ctrl-C) and
//! the members done out of a total, which the engines advance at their natural granularity
//! (a member on the reference and the cavity CPU engine, a slice of members on the two-qubit
//! CPU engine, a chunk on the GPU, a block in a streamed study). The engines check the flag at
//! the same points and stop with `QbatError::Cancelled`; the CPU engines also inside a member
//! (the two-qubit twin as a member begins and every `twin::STOP_EVERY` steps, the cavity and
//! dicke engines before every step), so that one long member stops within one run of steps (a
//! few ms undriven, tens of ms driven) or one step. (Steady states are solved, not stepped:
//! they are not stopped part-way.)

use super::RunOptions;
use crate::error::{QbatError, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Control {
    cancel: AtomicBool,
    done: AtomicU64,
    total: AtomicU64,
    /// The CLI's (`for_signals`): not polled, and taken by the signals around a study's blocks.
    for_signals: bool,
}

impl Control {
    /// The CLI's control of a streamed run: a signal stops the run's blocks through it
    /// (`crate::signals::stop_on_signals`, which the study holds around its block loop only),
    /// and nothing polls its members done, so the engines keep their coarse slices.
    pub fn for_signals() -> Control {
        Control { for_signals: true, ..Default::default() }
    }
    /// Whether a signal may stop the run through it (`for_signals`).
    pub fn is_for_signals(&self) -> bool {
        self.for_signals
    }
    /// Whether its members done are polled between the engines' cancellation points (Python's
    /// progress), which then come at finer slices of members.
    pub fn is_polled(&self) -> bool {
        !self.for_signals
    }
    /// Ask the run to stop at its next cancellation point.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }
    /// `Err(Cancelled)` once the run was asked to stop.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(QbatError::Cancelled)
        } else {
            Ok(())
        }
    }
    pub fn add_done(&self, n: u64) {
        self.done.fetch_add(n, Ordering::SeqCst);
    }
    pub fn set_done(&self, n: u64) {
        self.done.store(n, Ordering::SeqCst);
    }
    pub fn set_total(&self, n: u64) {
        self.total.store(n, Ordering::SeqCst);
    }
    /// Members done so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::SeqCst)
    }
    /// Members in the run (0 until the run has started).
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::SeqCst)
    }
    /// done / total in [0, 1] (0 while the total is unknown).
    pub fn fraction(&self) -> f64 {
        match self.total() {
            0 => 0.0,
            t => (self.done() as f64 / t as f64).min(1.0),
        }
    }
}

impl RunOptions {
    /// `Err(Cancelled)` when the run's control was cancelled; Ok without a control.
    pub fn check_cancelled(&self) -> Result<()> {
        self.control.as_deref().map_or(Ok(()), Control::check)
    }
    /// Whether the run's control was cancelled (the engines' stop flag, looked at inside a
    /// member).
    pub fn is_cancelled(&self) -> bool {
        self.check_cancelled().is_err()
    }
    /// `len` zeros for an engine's values: in a spent block buffer of the run's pool where
    /// there is one.
    pub fn zeroed_values(&self, len: usize) -> Vec<f64> {
        self.values_pool.as_deref().map_or_else(|| vec![0.0; len], |pool| pool.zeroed(len))
    }
    /// Count `n` more members done, when there is a control.
    pub fn add_done(&self, n: u64) {
        if let Some(c) = &self.control {
            c.add_done(n);
        }
    }
    /// `r`, with its `n` members counted done (on the bar and the control) where it is Ok:
    /// members stopped part-way are not done.
    pub(crate) fn done_if_ok<T>(&self, r: Result<T>, n: u64, pb: &indicatif::ProgressBar) -> Result<T> {
        if r.is_ok() {
            pb.inc(n);
            self.add_done(n);
        }
        r
    }
}

/// Turns a GPU host's progress ("members of this job done so far", after each chunk) into
/// increments of the control's `done` (several jobs, and several devices, may share one
/// control), and stops the job at the next chunk once the run is cancelled.
pub(crate) struct ChunkProgress<'a> {
    opts: &'a RunOptions,
    last: AtomicU64,
}

impl<'a> ChunkProgress<'a> {
    pub(crate) fn new(opts: &'a RunOptions) -> Self {
        ChunkProgress { opts, last: AtomicU64::new(0) }
    }
    pub(crate) fn report(&self, done_in_job: u64) -> Result<()> {
        let prev = self.last.swap(done_in_job, Ordering::SeqCst);
        self.opts.add_done(done_in_job.saturating_sub(prev));
        self.opts.check_cancelled()
    }
}
