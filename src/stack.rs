//! The stack under the stack limit (`ulimit -s`), tight or large.
//!
//! The kernel bounds the main thread's stack by the soft RLIMIT_STACK, and glibc takes the
//! same limit, read once at start, as the default stack of every thread started without one
//! (a GPU driver's: Rust's own threads name theirs). Under 48 KiB the CLI's main thread
//! overflowed its stack (abort, exit 134), and under 64 KiB a GPU run crashed (SIGSEGV) as
//! lavapipe opened; under a large one (`ulimit -s 1048576`) each of the
//! driver's threads would take that much address space and data. `with_stack` sets glibc's
//! default to `WORK_STACK` whatever the limit, and where the limit is tight runs the work on a
//! thread with `WORK_STACK` of its own.

/// The stack the main work and a driver's threads get: the usual default limit. A thread's
/// stack is address space like any other mapping, counted by `ulimit -v` and `ulimit -d`
/// (config/available_memory.rs), not by the stack limit.
pub const WORK_STACK: usize = 8 << 20;

/// The soft stack limit (`ulimit -s`) where it is below `WORK_STACK`; None where it is not,
/// is unlimited, or cannot be read.
pub fn tight_stack_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes the struct it is given, which lives for the call.
        if unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut limit) } != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
            return None;
        }
        // (rlim_t is 32 bits wide on some targets)
        #[allow(clippy::unnecessary_cast)]
        let soft = limit.rlim_cur as u64;
        (soft < WORK_STACK as u64).then_some(soft)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// `work()`, on this thread, or, where the stack limit is tight (`tight_stack_limit`), on a
/// thread with `WORK_STACK` of stack; glibc's default stack for new threads set to
/// `WORK_STACK` first. Where that thread cannot be started, on this thread all the same (the
/// limit may still do: it did from 64 KiB up on the CPU engine).
pub fn with_stack<T: Send>(work: impl Fn() -> T + Sync) -> T {
    set_default_thread_stack();
    if tight_stack_limit().is_none() {
        return work();
    }
    std::thread::scope(|scope| match std::thread::Builder::new().name("main".into()).stack_size(WORK_STACK).spawn_scoped(scope, &work) {
        // (a panic in the work goes on as the main thread's would)
        Ok(handle) => handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
        Err(_) => work(),
    })
}

/// glibc's default stack for threads started without one (`pthread_setattr_default_np`, glibc
/// 2.18), set to `WORK_STACK`; elsewhere nothing.
fn set_default_thread_stack() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn pthread_setattr_default_np(attr: *const libc::pthread_attr_t) -> libc::c_int;
        }
        // SAFETY: the attribute is initialised before use and destroyed after; glibc copies
        // what it needs from it.
        unsafe {
            let mut attr: libc::pthread_attr_t = std::mem::zeroed();
            if libc::pthread_attr_init(&mut attr) == 0 {
                if libc::pthread_attr_setstacksize(&mut attr, WORK_STACK) == 0 {
                    pthread_setattr_default_np(&attr);
                }
                libc::pthread_attr_destroy(&mut attr);
            }
        }
    }
}
