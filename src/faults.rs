//! Test-only fault injection, so that the tests can drive a run through the failures a user
//! meets only rarely. `QBAT_INJECT_FAULT` holds a comma-separated list of:
//! - `oom-once`: the first GPU block fails as out of memory;
//! - `lost-at=K`: GPU block K fails as a lost device;
//! - `nan-member=ID`: member ID's values turn NaN after integration (an instability);
//! - `slow-blocks=MS`: each block is followed by MS milliseconds of sleep (to kill a run
//!   mid-way), and a merge sleeps as long after its summary.csv;
//! - `slow-setup=MS`: a streamed run sleeps MS milliseconds once its staging directory is
//!   made, before its blocks start (its setup, where a signal ends the process at once);
//! - `analysis-fails`: the default study's analysis fails (as on a full disk);
//! - `analysis-short`: the default study's analysis finds no memory left at the run's end (and
//!   `merge`'s, of shards that ran it);
//! - `tile-refused`: the driver refuses the cavity kernel's tiled pipeline;
//! - `no-thread-at=K`: block K's files thread cannot be started (as under a process limit);
//! - `checkpoint-once`: a run without a series writes its first checkpoint and no later one
//!   (as a long run between two paced checkpoints);
//! - `exit-after-commit`: the process exits (code 137, as when killed) right after a run's
//!   output is committed, before its staging directory is removed;
//! - `full-disk=NAME` or `full-disk=NAME@K`: every atomic write of a file named NAME (from
//!   K on: the K-th and later, counted from 1 in this process) fails as on a full disk
//!   (ENOSPC), before its first byte;
//! - `rename-fails=NAME`: the rename that puts a file named NAME into place as `analyze` adds
//!   its files (`output::added`) fails as on a full disk (a new directory entry may need a
//!   block);
//! - `slow-added=MS`: `analyze` waits MS milliseconds between writing its files aside and
//!   moving them into place (a test makes a file meanwhile);
//! - `exit-mid-commit=K`: a commit into an existing output directory (`--force`) exits (code
//!   137, as when killed) once K of its file operations are done (K = 0: before the first):
//!   each new file put in under its hidden name, each old file removed, each renamed into place;
//! - `exit-mid-added=K`: the same for `analyze`'s commit of its files (`output::added`): the
//!   manifest written aside, then each rename;
//! - `slow-identities=MS`: the record of a committed output's identities
//!   (`Manifest::record_identities`) waits MS milliseconds between reading the manifest and
//!   writing it back (a test commits another output meanwhile).
//!
//! A list with any other entry is refused (`check_env`, before a run starts), so that a
//! mistyped fault never passes as a run without one. One module for every layer that injects,
//! the GPU kernels' hosts as the study.

use crate::error::{QbatError, Result};

/// One injected fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    OomOnce,
    LostAt(usize),
    NanMember(u64),
    SlowBlocks(u64),
    /// `slow-setup=MS`: the sleep in milliseconds.
    SlowSetup(u64),
    AnalysisFails,
    AnalysisShort,
    TileRefused,
    NoThreadAt(usize),
    CheckpointOnce,
    ExitAfterCommit,
    /// `full-disk=NAME@K`: the file name and the first write (from 1) that fails.
    FullDisk(String, u64),
    /// `rename-fails=NAME`: the file name.
    RenameFails(String),
    /// `slow-added=MS`: the wait in milliseconds.
    SlowAdded(u64),
    /// `exit-mid-commit=K`: the file operations done before the exit.
    ExitMidCommit(u64),
    /// `exit-mid-added=K`: the same, of `analyze`'s commit.
    ExitMidAdded(u64),
    /// `slow-identities=MS`: the wait in milliseconds.
    SlowIdentities(u64),
}

const VAR: &str = "QBAT_INJECT_FAULT";

/// The faults of a list (empty entries skipped), or which entry is not one.
fn parse(spec: &str) -> Result<Vec<Fault>> {
    let number = |entry: &str, n: &str| n.parse::<u64>().map_err(|_| QbatError::invalid(VAR, format!("'{entry}': '{n}' is not a whole number")));
    let index = |entry: &str, n: &str| usize::try_from(number(entry, n)?).map_err(|_| QbatError::invalid(VAR, format!("'{entry}' is out of range")));
    spec.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            Ok(match entry.split_once('=') {
                None if entry == "oom-once" => Fault::OomOnce,
                None if entry == "analysis-fails" => Fault::AnalysisFails,
                None if entry == "analysis-short" => Fault::AnalysisShort,
                None if entry == "tile-refused" => Fault::TileRefused,
                None if entry == "checkpoint-once" => Fault::CheckpointOnce,
                None if entry == "exit-after-commit" => Fault::ExitAfterCommit,
                Some(("lost-at", k)) => Fault::LostAt(index(entry, k)?),
                Some(("no-thread-at", k)) => Fault::NoThreadAt(index(entry, k)?),
                Some(("nan-member", id)) => Fault::NanMember(number(entry, id)?),
                Some(("slow-blocks", ms)) => Fault::SlowBlocks(number(entry, ms)?),
                Some(("slow-setup", ms)) => Fault::SlowSetup(number(entry, ms)?),
                Some(("slow-added", ms)) => Fault::SlowAdded(number(entry, ms)?),
                Some(("exit-mid-commit", k)) => Fault::ExitMidCommit(number(entry, k)?),
                Some(("exit-mid-added", k)) => Fault::ExitMidAdded(number(entry, k)?),
                Some(("slow-identities", ms)) => Fault::SlowIdentities(number(entry, ms)?),
                Some(("rename-fails", name)) if !name.is_empty() && !name.contains('/') => Fault::RenameFails(name.to_string()),
                Some(("full-disk", spec)) => {
                    let (name, from) = match spec.rsplit_once('@') {
                        Some((name, k)) => (name, number(entry, k)?),
                        None => (spec, 1),
                    };
                    if name.is_empty() || name.contains('/') || from == 0 {
                        return Err(QbatError::invalid(VAR, format!("'{entry}': full-disk takes a file name, and a write count from 1 (full-disk=NAME@K)")));
                    }
                    Fault::FullDisk(name.to_string(), from)
                }
                _ => {
                    return Err(QbatError::invalid(
                        VAR,
                        format!("'{entry}' is not a fault (oom-once, lost-at=K, nan-member=ID, slow-blocks=MS, slow-setup=MS, analysis-fails, analysis-short, tile-refused, no-thread-at=K, checkpoint-once, exit-after-commit, full-disk=NAME@K, rename-fails=NAME, slow-added=MS, exit-mid-commit=K, exit-mid-added=K, slow-identities=MS)"),
                    ))
                }
            })
        })
        .collect()
}

/// Refuse a malformed `QBAT_INJECT_FAULT` (unset or empty is no fault).
pub fn check_env() -> Result<()> {
    match std::env::var(VAR) {
        Ok(spec) => parse(&spec).map(drop),
        Err(std::env::VarError::NotPresent) => Ok(()),
        Err(std::env::VarError::NotUnicode(_)) => Err(QbatError::invalid(VAR, "is not UTF-8")),
    }
}

/// The injected faults (none where the list is malformed: `check_env` refused it first).
fn injected() -> Vec<Fault> {
    std::env::var(VAR).ok().and_then(|spec| parse(&spec).ok()).unwrap_or_default()
}

/// `nan-member=ID`: the member whose values turn NaN.
pub fn nan_member() -> Option<u64> {
    injected().into_iter().find_map(|f| if let Fault::NanMember(id) = f { Some(id) } else { None })
}

/// `slow-blocks=MS`: the sleep after each block (and a checkpoint after each: the tests kill a
/// run once a given block is checkpointed).
pub fn block_delay() -> Option<std::time::Duration> {
    injected().into_iter().find_map(|f| if let Fault::SlowBlocks(ms) = f { Some(std::time::Duration::from_millis(ms)) } else { None })
}

/// `slow-setup=MS`: the sleep of a streamed run's setup, once its staging directory is made.
pub fn setup_delay() -> Option<std::time::Duration> {
    injected().into_iter().find_map(|f| if let Fault::SlowSetup(ms) = f { Some(std::time::Duration::from_millis(ms)) } else { None })
}

/// Whether `fault` (one without a value) is injected.
pub fn is_injected(fault: Fault) -> bool {
    injected().contains(&fault)
}

/// `full-disk=NAME@K`: the error of this atomic write of `path`, where it is refused (this
/// write of its name counted, whether refused or not).
pub fn full_disk(path: &std::path::Path) -> Option<std::io::Error> {
    static WRITES: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, u64>>> = std::sync::LazyLock::new(Default::default);
    let name = path.file_name()?.to_string_lossy();
    let from = injected().into_iter().find_map(|f| match f {
        Fault::FullDisk(n, k) if n == name => Some(k),
        _ => None,
    })?;
    let mut writes = WRITES.lock().unwrap_or_else(|e| e.into_inner());
    let count = writes.entry(name.into_owned()).or_insert(0);
    *count += 1;
    (*count >= from).then(no_space)
}

/// `slow-identities=MS`: the wait inside `Manifest::record_identities`.
pub fn identities_delay() -> Option<std::time::Duration> {
    injected().into_iter().find_map(|f| if let Fault::SlowIdentities(ms) = f { Some(std::time::Duration::from_millis(ms)) } else { None })
}

/// `slow-added=MS`: the wait before `analyze`'s files move into place.
pub fn added_delay() -> Option<std::time::Duration> {
    injected().into_iter().find_map(|f| if let Fault::SlowAdded(ms) = f { Some(std::time::Duration::from_millis(ms)) } else { None })
}

/// `rename-fails=NAME`: the error of the rename of `path` into place, where it is refused.
pub fn rename_fails(path: &std::path::Path) -> Option<std::io::Error> {
    let name = path.file_name()?.to_string_lossy();
    injected().iter().any(|f| matches!(f, Fault::RenameFails(n) if *n == name)).then(no_space)
}

/// The file operations of one commit, counted for `exit-mid-commit=K` (`exit-mid-added=K` for
/// `analyze`'s): the process exits with code 137, as when killed, once K are done.
pub struct CommitSteps {
    exit_after: Option<u64>,
    done: u64,
}

impl CommitSteps {
    /// The steps of a commit into an existing output directory; exits now where K is 0.
    pub fn commit() -> CommitSteps {
        CommitSteps::start(injected().into_iter().find_map(|f| if let Fault::ExitMidCommit(k) = f { Some(k) } else { None }))
    }

    /// The steps of `analyze`'s commit; exits now where K is 0.
    pub fn added() -> CommitSteps {
        CommitSteps::start(injected().into_iter().find_map(|f| if let Fault::ExitMidAdded(k) = f { Some(k) } else { None }))
    }

    fn start(exit_after: Option<u64>) -> CommitSteps {
        let steps = CommitSteps { exit_after, done: 0 };
        steps.exit_if_due();
        steps
    }

    /// One more operation done.
    pub fn done(&mut self) {
        self.done += 1;
        self.exit_if_due();
    }

    fn exit_if_due(&self) {
        if self.exit_after == Some(self.done) {
            std::process::exit(137);
        }
    }
}

/// The error of a full disk.
fn no_space() -> std::io::Error {
    #[cfg(unix)]
    return std::io::Error::from_raw_os_error(libc::ENOSPC);
    #[cfg(not(unix))]
    return std::io::Error::from(std::io::ErrorKind::StorageFull);
}

/// `no-thread-at=K`: whether block `block`'s files thread is refused.
pub fn thread_refused(block: usize) -> bool {
    injected().contains(&Fault::NoThreadAt(block))
}

/// The device error injected into attempt `attempt` of GPU block `block`, if any.
pub fn device_fault(block: usize, attempt: usize) -> Option<QbatError> {
    injected().into_iter().find_map(|f| match f {
        Fault::OomOnce if block == 0 && attempt == 0 => Some(QbatError::DeviceOutOfMemory(format!("injected by {VAR}"))),
        Fault::LostAt(k) if k == block => Some(QbatError::DeviceLost(format!("injected by {VAR}"))),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_parses_and_anything_else_is_refused() {
        assert_eq!(
            parse("oom-once, lost-at=3,nan-member=17,slow-blocks=250,analysis-fails,tile-refused,no-thread-at=2,checkpoint-once,exit-after-commit,full-disk=run.json,full-disk=a@b.csv@2,rename-fails=analysis.csv,slow-added=5,exit-mid-commit=0,exit-mid-added=7,slow-identities=9")
                .unwrap(),
            vec![
                Fault::OomOnce,
                Fault::LostAt(3),
                Fault::NanMember(17),
                Fault::SlowBlocks(250),
                Fault::AnalysisFails,
                Fault::TileRefused,
                Fault::NoThreadAt(2),
                Fault::CheckpointOnce,
                Fault::ExitAfterCommit,
                Fault::FullDisk("run.json".into(), 1),
                Fault::FullDisk("a@b.csv".into(), 2),
                Fault::RenameFails("analysis.csv".into()),
                Fault::SlowAdded(5),
                Fault::ExitMidCommit(0),
                Fault::ExitMidAdded(7),
                Fault::SlowIdentities(9)
            ]
        );
        assert_eq!(parse("").unwrap(), vec![]);
        for bad in [
            "oom",
            "lost-at=",
            "lost-at=-1",
            "no-thread-at=x",
            "nan-member=x",
            "slow-blocks=1.5",
            "tile-refused=1",
            "oom-once=2",
            "checkpoint-once=1",
            "=3",
            "full-disk",
            "full-disk=",
            "full-disk=a/b",
            "full-disk=x@0",
            "full-disk=x@y",
            "rename-fails",
            "rename-fails=",
            "rename-fails=a/b",
            "exit-mid-commit",
            "exit-mid-commit=",
            "exit-mid-commit=-1",
            "exit-mid-added=x",
            "exit-mid-added",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(VAR), "{bad}: {e}");
        }
    }
}
