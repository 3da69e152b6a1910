//! The CLI's end by a signal (SIGINT, SIGTERM, SIGHUP: Ctrl-C, `timeout`, a batch system's
//! time limit or `scancel`; not one the process was started ignoring): the uncommitted staging directories of the outputs it was writing
//! are removed first (`output::uncommitted`), then the process ends by that signal as it would
//! have without this. A run's own staging directory (`.OUT.partial`) is not among them: it
//! stays for `--resume`. The Python package ends the same way (`end_by`) after a call that
//! SIGTERM or SIGHUP stopped through its own cancel (python/qbat_gpu/_signals.py).
//!
//! The signals are blocked in every thread (set before any starts, so all inherit it; a child
//! process starts with none blocked, as `std::process::Command` resets the mask) and taken by
//! one thread with `sigwait`, which may do what a signal handler may not.

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
            end_by(sig);
        };
        if std::thread::Builder::new().name("signals".into()).stack_size(64 << 10).spawn(taker).is_err() {
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        }
    }
}

/// End the process by `sig` (SIGINT, SIGTERM or SIGHUP) as it would have ended without a
/// handler, once the staging directories of the outputs still uncommitted are removed (and the
/// runtime directory this process made): the CLI's signal thread, and the Python package after
/// a call a signal stopped (its own cancel has run then; an output another thread writes is
/// removed here). Returns only where the signal does not end the process.
pub fn end_by(sig: i32) {
    // (held until the process ends: no commit begins after the removal)
    let _held = crate::output::uncommitted::remove_all();
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
