//! The CLI's end by a signal (SIGINT, SIGTERM, SIGHUP: Ctrl-C, `timeout`, a batch system's
//! time limit or `scancel`; not one the process was started ignoring): the uncommitted staging directories of the outputs it was writing
//! are removed first (`output::uncommitted`), then the process ends by that signal as it would
//! have without this (as PID 1, which the kernel gives no signal at its default action, by
//! `_exit` with a shell's status for it, 128 + the signal). A run's own staging directory (`.OUT.partial`) is not among them: it
//! stays for `--resume` where it holds a checkpoint (one with none is removed:
//! `output::uncommitted::watch_run_staging`). The Python package ends the same way (`end_by`) after a call that
//! SIGTERM or SIGHUP stopped through its own cancel (python/qbat_gpu/_signals.py).
//!
//! The signals are blocked in every thread (set before any starts, so all inherit it; a child
//! process starts with none blocked, as `std::process::Command` resets the mask) and taken by
//! one thread with `sigwait`, which may do what a signal handler may not.
//!
//! A streamed run's blocks (`run`, the default study; not its setup, a resume's checks or its
//! finish) are stopped rather than ended at once (`stop_on_signals`, which the study holds
//! around its block loop): the first signal cancels the run, so that it writes the blocks it finished
//! since its last checkpoint into the checkpoint (paced without a series, it may be several;
//! a block whose `--verify` references are being computed stops at its next verified member
//! and is left out whole),
//! as Python's cancel does; the command then ends by that signal (`received`). A second signal,
//! or `GRACE` without the run's end (a block that takes long to reach its next cancellation
//! point), ends the process at once.

use crate::engine::Control;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a stopped run has to write its checkpoint and end before the signal ends the
/// process anyway (a batch system sends SIGKILL some time after SIGTERM: Slurm's KillWait is
/// 30 s by default).
pub const GRACE: Duration = Duration::from_secs(20);

/// The streamed run a signal stops (`stop_on_signals`).
static STOPPABLE: Mutex<Option<Arc<Control>>> = Mutex::new(None);
/// The signal that stopped it; 0 while none did.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// While held, a signal stops `control`'s run (see the module's doc) instead of ending the
/// process at once.
pub struct Stoppable(());

impl Drop for Stoppable {
    fn drop(&mut self) {
        *STOPPABLE.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Let a signal stop the run of `control` (the CLI's streamed run) until the guard is dropped.
pub fn stop_on_signals(control: Arc<Control>) -> Stoppable {
    *STOPPABLE.lock().unwrap_or_else(|e| e.into_inner()) = Some(control);
    Stoppable(())
}

/// The signal that stopped the run, if one did: the command ends by it once the run has
/// returned (`end_by`).
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

/// Take SIGINT, SIGTERM and SIGHUP on a thread of their own (see the module's doc). Call before
/// any other thread starts. Where that thread cannot be started, the signals act as before.
pub fn remove_uncommitted_on_signals() {
    #[cfg(unix)]
    // SAFETY: sigset_t is plain data, set up by sigemptyset and sigaddset before use;
    // pthread_sigmask, sigwait, signal and raise are given valid arguments.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // (one the process was started ignoring stays ignored: `nohup`, a background job
            // of a script; a blocked signal is taken by sigwait even where it is ignored)
            let mut was: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut was) == 0 && was.sa_sigaction == libc::SIG_IGN {
                continue;
            }
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let taker = move || loop {
            let mut sig = 0;
            if libc::sigwait(&set, &mut sig) != 0 {
                continue;
            }
            // (the run stopped under the lock: a study that has let go of it sees the stop, or
            // none came)
            let stopped = {
                let stoppable = STOPPABLE.lock().unwrap_or_else(|e| e.into_inner());
                match stoppable.as_ref().filter(|_| received().is_none()) {
                    Some(control) => {
                        RECEIVED.store(sig, Ordering::SeqCst);
                        control.cancel();
                        true
                    }
                    None => false,
                }
            };
            let end = if stopped {
                eprintln!("\nnote: stopping the run at its next block, so that the blocks it has finished are kept for --resume; a second signal (Ctrl-C again) ends it at once");
                // (the run's end ends the process by `sig` from its own thread meanwhile)
                next_within(&set, GRACE).unwrap_or(sig)
            } else {
                sig
            };
            // (the hold kept to the end: no commit begins between the removal and the exit)
            let _held = ending_by(end);
            // The signal did not end the process: PID 1's in a container, to which the
            // kernel delivers no signal at its default action. It ends now all the same, with
            // a shell's status for the signal: going on would write into the staging
            // directories just removed (a merge failed on its next file, exit 1), and a second
            // signal would not end a stopped run.
            libc::_exit(128 + end);
        };
        if std::thread::Builder::new().name("signals".into()).stack_size(64 << 10).spawn(taker).is_err() {
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        }
    }
}

/// The next of the signals in `set` within `wait`, if one comes.
#[cfg(unix)]
fn next_within(set: &libc::sigset_t, wait: Duration) -> Option<i32> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return None;
        }
        let ts = libc::timespec { tv_sec: left.as_secs() as libc::time_t, tv_nsec: left.subsec_nanos() as libc::c_long };
        // SAFETY: `set` is a valid signal set, `ts` a valid timeout, and no siginfo is asked.
        let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
        if sig > 0 {
            return Some(sig);
        }
        // (interrupted: wait out the rest; timed out: none came)
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return None;
        }
    }
}

/// End the process by `sig` (SIGINT, SIGTERM or SIGHUP) as it would have ended without a
/// handler, once the staging directories of the outputs still uncommitted are removed (and the
/// runtime directory this process made): the CLI's signal thread, and the Python package after
/// a call a signal stopped (its own cancel has run then; an output another thread writes is
/// removed here). Returns only where the signal does not end the process.
pub fn end_by(sig: i32) {
    let _held = ending_by(sig);
}

/// `end_by`, returning (where the signal did not end the process) the hold on the outputs'
/// staging directories, which the caller keeps until it ends the process itself.
fn ending_by(sig: i32) -> crate::output::uncommitted::Held {
    // (held until the process ends: no commit begins after the removal)
    let held = crate::output::uncommitted::remove_all();
    crate::gpu::runtime_dir::remove_own();
    #[cfg(unix)]
    // SAFETY: sigset_t is plain data, set up by sigemptyset and sigaddset before use; signal,
    // pthread_sigmask and raise are given valid arguments.
    unsafe {
        // the signal's own end: its default action, unblocked on this thread
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::signal(sig, libc::SIG_DFL);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
    }
    held
}

/// Whether `sig`'s action is the default one, as the kernel holds it: where a handler was set
/// outside Python (`faulthandler.register`, another extension), Python's `signal.getsignal`
/// still says SIG_DFL, and the Python package must leave it alone.
#[cfg(unix)]
pub fn is_default(sig: i32) -> bool {
    // SAFETY: sigaction only reads the current action into `was`, plain data.
    unsafe {
        let mut was: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut was) == 0 && was.sa_sigaction == libc::SIG_DFL
    }
}

/// (No signals to take elsewhere.)
#[cfg(not(unix))]
pub fn is_default(_sig: i32) -> bool {
    false
}
