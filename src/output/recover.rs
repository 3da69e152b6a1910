//! Recovery of a commit into an existing output directory that was cut short (`kill -9`, a
//! power loss), by the next process that takes the directory's exclusive lock. Every commit
//! holds that lock for its whole sequence, so what such a process finds under the commits'
//! hidden names belongs to a dead commit:
//!
//! - `.NAME.incoming-PID` (`OutputDir::commit` under `--force`): the new files are put in under
//!   these names, the manifest's (`..qbat-manifest.json.incoming-PID`) last; then the old
//!   listed files go, and the new ones are renamed into place, the manifest last. So the
//!   incoming manifest is there exactly from the moment the whole new set is in until the
//!   commit's last step: where it is, the commit is finished (rolled forward), each new file
//!   checked first against its size and hash, each old file against the old manifest; where
//!   it is not, the old output is whole and the incoming files are removed (rolled back).
//!   (`.NAME.incoming-PID.part`: a copy across file systems cut short, removed.)
//! - `.qbat-added-PID-N/` (`analyze`, `output::added`): the files are written there, then the
//!   manifest that lists them; only then do they move. Where that manifest is there, the moves
//!   are finished (each file checked first), the manifest last; where it is not, the
//!   directory is removed (the moves had not begun, or were done).
//!
//! Nothing else is touched: a file is removed or replaced only under these names, or where a
//! manifest lists it and it is still the file listed (`check_still_written`); a link, directory
//! or special file under one of these names, or a file that is not what its manifest says, is
//! refused (exit 2, naming it), and nothing is read through a link. In a directory without a
//! manifest (a commit into an empty directory), incoming files are removed only where nothing
//! else is there. Readers (`merge`, Python's
//! copy and `open`), which hold the lock shared and write nothing into the directory they read,
//! refuse a directory whose commit was cut short after its old files began to go
//! (`refuse_interrupted`); one cut short before that holds its old output whole, and is read.

use super::manifest::{check_file, check_still_written, is_plain_name, Manifest, MANIFEST};
use super::SMALL_FILE_LIMIT;
use crate::error::{QbatError, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What an interrupted commit left in the directory, found by its name.
#[derive(Debug, PartialEq, Eq)]
enum Trace {
    /// `.NAME.incoming-PID` (`part`: with `.part` after it).
    Incoming { name: String, pid: u32, part: bool },
    /// `.qbat-added-PID-N` (`gone`: with `.gone` after it, renamed to be removed).
    Added { pid: u32, gone: bool },
}

/// A process id as the commits write it: 1 to i32::MAX, digits only, without a leading zero
/// (`.x.incoming-07` is no commit's: a user's file, never removed as one).
fn pid_of(digits: &str) -> Option<u32> {
    let pid: u32 = (is_count(digits) && !digits.starts_with('0')).then(|| digits.parse().ok())??;
    (pid >= 1 && i32::try_from(pid).is_ok()).then_some(pid)
}

/// Whether `digits` is a count as `format!` writes one: digits, no leading zero but in `0`.
fn is_count(digits: &str) -> bool {
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && (digits == "0" || !digits.starts_with('0'))
}

/// The trace a directory entry's name is, if it is one.
fn trace(name: &str) -> Option<Trace> {
    if let Some(rest) = name.strip_prefix(".qbat-added-") {
        let (rest, gone) = rest.strip_suffix(".gone").map_or((rest, false), |r| (r, true));
        let (pid, n) = rest.split_once('-')?;
        let pid = pid_of(pid)?;
        return is_count(n).then_some(Trace::Added { pid, gone });
    }
    let rest = name.strip_prefix('.')?;
    let (rest, part) = rest.strip_suffix(".part").map_or((rest, false), |r| (r, true));
    let (file, pid) = rest.rsplit_once(".incoming-")?;
    let pid = pid_of(pid)?;
    (file == MANIFEST || is_plain_name(file)).then(|| Trace::Incoming { name: file.to_string(), pid, part })
}

/// The traces in `dir`, each with its path (an unreadable directory holds none: the command's
/// own reads of it say why).
fn traces(dir: &Path) -> Vec<(PathBuf, Trace)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut found: Vec<(PathBuf, Trace)> = entries.filter_map(|e| e.ok()).filter_map(|e| Some((e.path(), trace(e.file_name().to_str()?)?))).collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// Whether `dir` holds what a commit cut short left (then its files are checked at the next
/// commit, once recovered, rather than before a run).
pub fn has_traces(dir: &Path) -> bool {
    !traces(dir).is_empty()
}

/// The hidden name `OutputDir::commit` puts the new file `name` in under, in `dir`.
pub fn incoming(dir: &Path, name: &str, pid: u32) -> PathBuf {
    dir.join(format!(".{name}.incoming-{pid}"))
}

/// Whether the commit of process `pid` is over: always, where `dir`'s exclusive lock is held
/// (`locked`); else (a file system that cannot lock) only where no such process is left.
fn dead(pid: u32, locked: bool) -> bool {
    if locked {
        return true;
    }
    #[cfg(unix)]
    {
        // SAFETY: signal 0 sends nothing; `pid` is positive (`pid_of`), one process only.
        let sent = unsafe { libc::kill(pid as i32, 0) };
        sent != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        false
    }
}

/// The refusal of `path`, found where an interrupted commit left its files.
fn refuse(path: &Path, why: impl std::fmt::Display) -> QbatError {
    QbatError::invalid(path.display().to_string(), format!("{why}; qbat-gpu cannot finish the interrupted commit it was left by: move it away"))
}

/// `path` must be a regular file (not a link, directory or special file), to be removed.
fn removable(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => Ok(()),
        Ok(_) => Err(refuse(path, "is not a file qbat-gpu wrote (a link, directory or special file)")),
        Err(e) => Err(QbatError::io(path, e)),
    }
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(QbatError::io(path, e)),
        _ => Ok(()),
    }
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| QbatError::io(to, e))
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// The manifest at `path`, a regular file (never read through a link).
fn manifest_at(path: &Path) -> Result<Manifest> {
    Manifest::parse(&crate::plain_file::read_regular_bounded(path, SMALL_FILE_LIMIT)?, path)
}

/// Finish or undo, in `dir`, every commit cut short that the traces show (see the module's
/// doc), saying each in one line on stderr. Called under `dir`'s exclusive lock (`locked`:
/// whether the file system gave it) before anything else is read or written there.
pub fn recover(dir: &Path, locked: bool, own_staging: Option<&Path>) -> Result<()> {
    let found = traces(dir);
    if found.is_empty() {
        return Ok(());
    }
    let mut commits: BTreeMap<u32, Vec<(PathBuf, String, bool)>> = BTreeMap::new();
    for (path, t) in &found {
        match t {
            Trace::Incoming { name, pid, part } if dead(*pid, locked) => commits.entry(*pid).or_default().push((path.clone(), name.clone(), *part)),
            _ => {}
        }
    }
    let finished: Vec<u32> = commits.iter().filter(|(_, files)| files.iter().any(|(_, n, part)| n == MANIFEST && !part)).map(|(&pid, _)| pid).collect();
    if finished.len() > 1 {
        return Err(refuse(
            &incoming(dir, MANIFEST, finished[1]),
            format!("is a second interrupted commit's manifest (processes {} and {})", finished[0], finished[1]),
        ));
    }
    // the undone first: the one to finish then finds only its own files
    for (&pid, files) in &commits {
        if !finished.contains(&pid) {
            undo_incoming(dir, pid, files, own_staging)?;
        }
    }
    for &pid in &finished {
        finish_incoming(dir, pid, &commits[&pid])?;
    }
    for (path, t) in &found {
        match *t {
            Trace::Added { pid, gone } if dead(pid, locked) => recover_added(dir, path, pid, gone)?,
            _ => {}
        }
    }
    crate::plain_file::sync_dir(dir)
}

/// The commit of `pid` stopped before its whole new set was in: its incoming files go, and the
/// old output stays as it was.
fn undo_incoming(dir: &Path, pid: u32, files: &[(PathBuf, String, bool)], own_staging: Option<&Path>) -> Result<()> {
    for (path, ..) in files {
        removable(path)?;
    }
    // Without a manifest, the commit began in an empty directory, which then holds nothing
    // but what such commits left (and this commit's own staging, under `--out .`): anything
    // else means it is no qbat-gpu output, and the names are a user's files.
    if Manifest::read(dir)?.is_none() {
        let own = own_staging.and_then(Path::file_name);
        let entries = std::fs::read_dir(dir).map_err(|e| QbatError::io(dir, e))?;
        let foreign = entries.filter_map(|e| e.ok()).map(|e| e.file_name()).find(|n| Some(n.as_os_str()) != own && n.to_str().and_then(trace).is_none());
        if let (Some(other), Some((path, ..))) = (foreign, files.first()) {
            return Err(refuse(
                path,
                format!(
                    "is in a directory that is not a qbat-gpu output (no {MANIFEST}, and {} beside it), where qbat-gpu removes nothing",
                    other.to_string_lossy()
                ),
            ));
        }
    }
    for (path, ..) in files {
        remove(path)?;
    }
    crate::console::note(&format!("undid the interrupted commit into {} (process {pid}): its output is as it was before", dir.display()));
    Ok(())
}

/// The commit of `pid` had its whole new set in: every check first (each new file still in
/// under its hidden name is the one its manifest lists, and each one renamed already; each
/// old file to replace or remove is still the one the old manifest lists; a file of a new
/// name that no manifest lists is refused, as is a file under its hidden names that its
/// manifest does not list), then the old files go, the new ones are renamed
/// into place, and the manifest last, as the commit would have done.
fn finish_incoming(dir: &Path, pid: u32, files: &[(PathBuf, String, bool)]) -> Result<()> {
    let marker = incoming(dir, MANIFEST, pid);
    let new = manifest_at(&marker)?;
    let old = Manifest::read(dir)?.unwrap_or_default();
    let advice = "qbat-gpu cannot finish the interrupted commit it was left by: move it away";
    let mut renames = vec![];
    for f in &new.files {
        let (hidden, to) = (incoming(dir, &f.name, pid), dir.join(&f.name));
        if exists(&hidden) {
            check_file(&hidden, f).map_err(|why| refuse(&hidden, format!("is not the file its manifest lists ({why})")))?;
            if exists(&to) {
                match old.get(&f.name) {
                    Some(was) => check_still_written(&to, was, advice)?,
                    None => return Err(refuse(&to, "exists and was not written by qbat-gpu (it is not in the manifest)")),
                }
            }
            renames.push((hidden, to));
        } else if !exists(&to) {
            return Err(refuse(&to, format!("is listed in the manifest of the interrupted commit (process {pid}) but missing")));
        } else {
            check_still_written(&to, f, advice)?;
        }
    }
    let mut removals = vec![];
    for f in old.files.iter().filter(|f| !new.contains(&f.name)) {
        let path = dir.join(&f.name);
        check_still_written(&path, f, advice)?;
        removals.push(path);
    }
    // a whole commit put in nothing its manifest does not list (each copy's `.part` renamed
    // before the next file): another file under its hidden names is not its own
    if let Some((path, ..)) = files.iter().find(|(p, n, part)| *part || (n != MANIFEST && !renames.iter().any(|(h, _)| h == p))) {
        return Err(refuse(path, format!("is not listed in the manifest of the interrupted commit (process {pid})")));
    }
    for path in &removals {
        remove(path)?;
    }
    for (hidden, to) in &renames {
        rename(hidden, to)?;
    }
    rename(&marker, &dir.join(MANIFEST))?;
    crate::console::note(&format!("finished the interrupted commit into {} (process {pid}): it holds that commit's output", dir.display()));
    Ok(())
}

/// `analyze`'s directory `added` (in `dir`, of process `pid`): where its manifest is there
/// (and the directory was not being removed, `gone`), the files it holds move into place,
/// each checked first, and the manifest last; then the directory goes, with what the
/// additions replaced.
fn recover_added(dir: &Path, added: &Path, pid: u32, gone: bool) -> Result<()> {
    match std::fs::symlink_metadata(added) {
        Ok(m) if m.file_type().is_dir() => {}
        Ok(_) => return Err(refuse(added, "is not a directory qbat-gpu made (a link, file or special file)")),
        Err(e) => return Err(QbatError::io(added, e)),
    }
    let staged = added.join(MANIFEST);
    let finish = !gone && exists(&staged);
    if finish {
        let new = manifest_at(&staged)?;
        let old = Manifest::read(dir)?;
        let advice = "qbat-gpu cannot finish the interrupted analyze it was left by: move it away";
        let mut renames = vec![];
        for f in &new.files {
            let (from, to) = (added.join(&f.name), dir.join(&f.name));
            let was = old.as_ref().and_then(|m| m.get(&f.name));
            if exists(&from) {
                check_file(&from, f).map_err(|why| refuse(&from, format!("is not the file its manifest lists ({why})")))?;
                match was {
                    Some(was) => check_still_written(&to, was, advice)?,
                    None if exists(&to) => return Err(refuse(&to, "exists and was not written by qbat-gpu (it is not in the manifest)")),
                    None => {}
                }
                renames.push((from, to));
            } else if was.is_none_or(|w| (w.bytes, &w.blake3) != (f.bytes, &f.blake3)) {
                // an added file moved into place already
                if !exists(&to) {
                    return Err(refuse(&to, format!("is listed in the manifest of the interrupted analyze (process {pid}) but missing")));
                }
                check_still_written(&to, f, advice)?;
            }
        }
        check_leftovers(added, |n| n == MANIFEST || new.contains(n))?;
        for (from, to) in &renames {
            rename(from, to)?;
        }
        rename(&staged, &dir.join(MANIFEST))?;
    } else {
        check_leftovers(added, |_| false)?;
    }
    for e in std::fs::read_dir(added).map_err(|e| QbatError::io(added, e))? {
        remove(&e.map_err(|e| QbatError::io(added, e))?.path())?;
    }
    std::fs::remove_dir(added).map_err(|e| QbatError::io(added, e))?;
    match finish {
        true => crate::console::note(&format!("finished the interrupted analyze of {} (process {pid}): it holds that analysis", dir.display())),
        false => crate::console::note(&format!("removed the files an interrupted analyze of {} left aside (process {pid})", dir.display())),
    }
    Ok(())
}

/// Everything in `added` but what `checked` names (the files to move, checked already) must be
/// a regular file (what analyze wrote there: its files, the old files they replaced, a
/// temporary file cut short), to be removed with it.
fn check_leftovers(added: &Path, checked: impl Fn(&str) -> bool) -> Result<()> {
    for e in std::fs::read_dir(added).map_err(|e| QbatError::io(added, e))? {
        let e = e.map_err(|e| QbatError::io(added, e))?;
        if e.file_name().to_str().is_none_or(|n| !checked(n)) {
            removable(&e.path())?;
        }
    }
    Ok(())
}

/// A reader's check (under `dir`'s shared lock, which no commit holds meanwhile): a commit into
/// `dir` cut short after its old files began to go is refused, with how to finish it. One cut
/// short before that left the old output whole, which is read as it is.
pub fn refuse_interrupted(dir: &Path) -> Result<()> {
    for (path, t) in traces(dir) {
        let pid = match t {
            Trace::Incoming { name, pid, part: false } if name == MANIFEST => pid,
            Trace::Added { pid, gone: false } if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) && exists(&path.join(MANIFEST)) => pid,
            _ => continue,
        };
        let shown = dir.display();
        return Err(QbatError::invalid(
            shown.to_string(),
            format!("holds a commit that was cut short (process {pid}): run `qbat-gpu analyze {shown}`, or the run again with --force, to finish it"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_names_the_commits_write_are_traces() {
        let inc = |name: &str, pid, part| Some(Trace::Incoming { name: name.into(), pid, part });
        assert_eq!(trace(".run.json.incoming-42"), inc("run.json", 42, false));
        assert_eq!(trace("..qbat-manifest.json.incoming-7"), inc(MANIFEST, 7, false));
        assert_eq!(trace(".a.incoming-1.incoming-9.part"), inc("a.incoming-1", 9, true));
        assert_eq!(trace(".qbat-added-12-0"), Some(Trace::Added { pid: 12, gone: false }));
        assert_eq!(trace(".qbat-added-12-3.gone"), Some(Trace::Added { pid: 12, gone: true }));
        for not in [
            "run.json",
            ".run.json.incoming-",
            ".run.json.incoming-0",
            ".run.json.incoming--1",
            ".run.json.incoming-4294967295",
            ".run.json.incoming-1x",
            "..incoming-3",
            "...x.incoming-3",
            ".qbat-added-1",
            ".qbat-added-1-",
            ".qbat-added-x-1",
            ".run.json.incoming-07",
            "..qbat-manifest.json.incoming-077",
            ".qbat-added-07-0",
            ".qbat-added-7-00",
            ".qbat-added-7-01.gone",
            ".out.partial-3-0",
        ] {
            assert_eq!(trace(not), None, "{not}");
        }
    }
}
