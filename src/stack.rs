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

/// The stacks tried, largest first, for the thread the work runs on: `WORK_STACK`, then,
/// where neither that nor the main thread will do, smaller ones (the CLI's work ran on a main
/// thread of 64 KiB).
const STACKS_TRIED: [usize; 3] = [WORK_STACK, 1 << 20, 256 << 10];

/// The least stack limit under which the work runs on the main thread when no `WORK_STACK`
/// thread can be started: it overflowed there (exit 134) under 32 and 48 KiB, and ran from
/// 64 KiB.
const MIN_MAIN_STACK: u64 = 64 << 10;

/// `work()`, on this thread, or, where the stack limit is tight (`tight_stack_limit`), on a
/// thread with `WORK_STACK` of stack; glibc's default stack for new threads set to
/// `WORK_STACK` first. Where that thread cannot be started, on this thread from
/// `MIN_MAIN_STACK` up (a smaller thread that does start may then fail to map its signal
/// stack under the same memory limit, and abort), and under it on a smaller thread
/// (`STACKS_TRIED`: under `ulimit -s 32` and `ulimit -d 8000` even `--version` overflowed
/// the main thread); where none starts, Err: a one-line reason naming the limits.
pub fn with_stack<T: Send>(work: impl Fn() -> T + Sync) -> Result<T, String> {
    set_default_thread_stack();
    let Some(limit) = tight_stack_limit() else {
        return Ok(work());
    };
    let sizes = if limit >= MIN_MAIN_STACK { &STACKS_TRIED[..1] } else { &STACKS_TRIED[..] };
    std::thread::scope(|scope| {
        let mut why = String::new();
        for &size in sizes {
            match std::thread::Builder::new().name("main".into()).stack_size(size).spawn_scoped(scope, &work) {
                // (a panic in the work goes on as the main thread's would)
                Ok(handle) => return Ok(handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))),
                Err(e) => why = e.to_string(),
            }
        }
        if limit >= MIN_MAIN_STACK {
            return Ok(work());
        }
        Err(format!(
            "ulimit -s: a stack limit of {} KiB is too small to run on, and no thread with a larger stack could be started ({why}); raise the stack limit (ulimit -s) to {} KiB or more, or the memory or process limits (ulimit -v, ulimit -d, ulimit -u)",
            limit / 1024,
            MIN_MAIN_STACK / 1024
        ))
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
