//! The open-files limit (`ulimit -n`, RLIMIT_NOFILE). A command holds a few files at once: a
//! run its series, a block's summary and states, the checkpoint and its lock, the plots', and a
//! GPU driver its devices and libraries. Under a soft limit of 4 to 6 a run failed mid-way on
//! EMFILE (exit 1) and left its staging directory behind, as removing a directory takes
//! descriptors too. So the soft limit is raised toward the hard one (as Go's runtime does at
//! start), and where the hard limit leaves fewer than `NEEDED`, the command is refused before
//! any work.

use crate::error::{QbatError, Result};

/// Descriptors a command may hold at once, with room to spare: the default study on the CPU
/// engine ran from 9, a GPU run on lavapipe from 8; a hardware driver opens more.
pub const NEEDED: u64 = 64;

/// The soft limit asked for where it is lower and the hard limit allows: no command holds
/// nearly as many, and a higher soft limit would only be inherited by what qbat-gpu starts.
const WANTED: u64 = 1024;

/// Raise the soft open-files limit to `WANTED` where it is lower (at most to the hard limit);
/// Err naming `ulimit -n` where what it then is leaves fewer than `NEEDED`.
pub fn raise_open_files_limit() -> Result<()> {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes the struct it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
            // (not known: nothing to raise or refuse)
            return Ok(());
        }
        let (soft, hard) = (lim.rlim_cur as u64, lim.rlim_max as u64);
        let wanted = WANTED.min(hard);
        let soft = if soft < wanted {
            let raised = libc::rlimit { rlim_cur: wanted as libc::rlim_t, rlim_max: lim.rlim_max };
            // SAFETY: setrlimit reads the struct it is given; a soft limit at most the hard one is
            // every process's to set.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                wanted
            } else {
                soft
            }
        } else {
            soft
        };
        if soft < NEEDED {
            return Err(QbatError::invalid(
                "ulimit -n",
                format!("this process may open {soft} files at once (hard limit {hard}), fewer than the {NEEDED} qbat-gpu needs; raise the limit (ulimit -n {NEEDED})"),
            ));
        }
    }
    Ok(())
}
