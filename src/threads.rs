//! Threads under a process or thread limit (`ulimit -u`, a cgroup's `pids.max`, as on shared
//! login nodes and in batch jobs): a thread that cannot be started is an error that says so
//! (`QbatError::Threads`, exit 2), never a panic.
//!
//! rayon starts its global pool on first use and panics there when one of its threads cannot
//! be started; after a failed start its pool cannot be built again. `start_pool` builds it
//! first, where the failure can be returned, and remembers the outcome. The run's own threads
//! (a device's worker, a block's files, a series reader) are started with `spawn_scoped`.

use crate::error::{QbatError, Result};
use std::sync::OnceLock;
use std::thread::{Builder, Scope, ScopedJoinHandle};

/// The most worker threads `RAYON_NUM_THREADS` may ask for, per CPU (counting at least
/// `MIN_CPUS_FOR_CAP` CPUs, so that a small container may still oversubscribe).
const MAX_THREADS_PER_CPU: usize = 16;
const MIN_CPUS_FOR_CAP: usize = 16;

/// What to change when a thread cannot be started.
const LIMIT_HINT: &str =
    "raise the process limit (ulimit -u, a cgroup's pids.max) or the address-space or data-size limit (ulimit -v, ulimit -d), or set RAYON_NUM_THREADS lower";

/// The outcome of the pool's start (`start_pool`), once tried.
static STARTED: OnceLock<std::result::Result<(), String>> = OnceLock::new();

/// The process whose pool `STARTED` tells of: a child forked after the start (Python's
/// `multiprocessing` with its default start method on Linux) has none of its threads, and
/// any work handed to the pool there waited for ever.
static STARTED_IN: OnceLock<u32> = OnceLock::new();

/// Err in a process forked after the pool started: none of its threads came with the fork,
/// and the locks they held may be held for good.
pub fn refuse_in_forked_child() -> Result<()> {
    match STARTED_IN.get() {
        Some(&pid) if pid != std::process::id() => Err(QbatError::Threads(
            "this process was forked from one whose qbat-gpu worker threads had started, and a forked child has none of them; start it with multiprocessing's 'spawn' or 'forkserver' method (multiprocessing.get_context('spawn'))".into(),
        )),
        _ => Ok(()),
    }
}

/// Start rayon's global pool (as many threads as `RAYON_NUM_THREADS` says, else one a CPU)
/// unless it has started. Err: one of its threads could not be started; every later call
/// returns the same error (rayon's pool cannot be started twice: a process that met the
/// limit must be restarted). The CLI calls it before any command, the Python functions that
/// use the pool at their start; a library caller calls it before its first run.
pub fn start_pool() -> Result<()> {
    refuse_in_forked_child()?;
    // The environment's ask is checked before the pool starts, and not remembered: a Python
    // caller who mended it is not refused again (only the pool's start is once a process).
    if STARTED.get().is_none() {
        check_threads_asked()?;
    }
    let started = STARTED.get_or_init(|| {
        let _ = STARTED_IN.set(std::process::id());
        match rayon::ThreadPoolBuilder::new().build_global() {
            Ok(()) => Ok(()),
            // Only a thread's failure to start has a source. Without one the pool's start was
            // tried before: it runs, unless that first start failed (rayon then panicked
            // there, and panics again on every use; the check's panic is caught, and its
            // message printed by the panic hook: only a library caller that used rayon first
            // can get here).
            Err(e) => match std::error::Error::source(&e) {
                Some(why) => Err(format!("the worker threads could not be started ({why}); {LIMIT_HINT}")),
                None if std::panic::catch_unwind(rayon::current_num_threads).is_ok() => Ok(()),
                None => Err(format!("the worker threads could not be started (an earlier start failed); {LIMIT_HINT}")),
            },
        }
    });
    started.clone().map_err(QbatError::Threads)
}

/// Refuse what the environment asks of the pool where it is not a number, or more threads than
/// qbat-gpu starts: thousands of threads do no more work than one a CPU, and each takes its
/// stack and maps from the process's share (past `vm.max_map_count` the runtime aborts).
pub fn check_threads_asked() -> Result<()> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let most = MAX_THREADS_PER_CPU * cpus.max(MIN_CPUS_FOR_CAP);
    let asked = threads_asked().map_err(QbatError::Threads)?;
    if let Some((var, asked)) = asked.filter(|&(_, n)| n > most) {
        return Err(QbatError::Threads(format!("{var} = {asked} is more than qbat-gpu starts (at most {most} on {cpus} CPUs); set it lower")));
    }
    Ok(())
}

/// Has this process rayon's global pool to hand work to: started by `start_pool`, and not in
/// a child forked since (which has none of its threads)?
pub fn pool_usable() -> bool {
    pool_started() && refuse_in_forked_child().is_ok()
}

/// Has rayon's global pool been started (by `start_pool`)?
pub fn pool_started() -> bool {
    STARTED.get().is_some_and(|s| s.is_ok())
}

/// The worker threads rayon's pool has, or will have once started: as the environment asks,
/// else one a CPU (a value that is not a number counts as the default here; `start_pool`
/// refuses it).
pub fn pool_threads() -> usize {
    match threads_asked() {
        Ok(Some((_, n))) => n,
        _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

/// The worker threads the environment asks rayon for, as rayon reads it: `RAYON_NUM_THREADS`,
/// else the older `RAYON_RS_NUM_CPUS`; 0 or unset is rayon's default (one a CPU). Err: a value
/// that is not a number, which rayon would silently take as its default (a typo in a job
/// script would run on every CPU of a shared node).
fn threads_asked() -> std::result::Result<Option<(&'static str, usize)>, String> {
    let read = |var: &'static str| match std::env::var_os(var) {
        None => Ok(None),
        Some(v) => match v.to_str().and_then(|t| t.parse::<usize>().ok()) {
            Some(n) => Ok(Some(n)),
            None if v.is_empty() => Ok(None),
            None => Err(format!("{var} = {v:?} is not a number of threads; set it to a whole number (0: one a CPU) or unset it")),
        },
    };
    Ok(match read("RAYON_NUM_THREADS")? {
        Some(0) => None,
        Some(n) => Some(("RAYON_NUM_THREADS", n)),
        None => read("RAYON_RS_NUM_CPUS")?.filter(|&n| n > 0).map(|n| ("RAYON_RS_NUM_CPUS", n)),
    })
}

/// Start a scoped thread for `what` (a few words, as "the block's files"); its failure to
/// start as `QbatError::Threads`.
pub fn spawn_scoped<'scope, 'env, T: Send + 'scope>(
    scope: &'scope Scope<'scope, 'env>,
    what: &str,
    f: impl FnOnce() -> T + Send + 'scope,
) -> Result<ScopedJoinHandle<'scope, T>> {
    Builder::new().spawn_scoped(scope, f).map_err(|e| unavailable(what, e))
}

/// The error of a thread for `what` that could not be started, and why.
pub fn unavailable(what: &str, why: impl std::fmt::Display) -> QbatError {
    QbatError::Threads(format!("a thread for {what} could not be started ({why}); {LIMIT_HINT}"))
}
