//! Files added to a finished output (`analyze`'s analysis.csv and 2-D histograms), committed
//! together with the manifest that lists them. They are written in a hidden directory inside
//! the output (`.qbat-added-PID-N`), the manifest with them; only then do they move into place,
//! by renames, undone where one fails. So a failure while they are written (a full disk, a quota)
//! leaves the output as it was: never a file under its name that the manifest does not list
//! (which the next `analyze` and `--force` refuse as not qbat-gpu's), nor one the manifest
//! lists with other bytes. An addition cut short (killed) is finished, where its manifest was
//! written aside, or removed, by the next process that takes the directory's lock (`recover`).

use super::manifest::{check_replaceable_under, hash_file, Manifest, MANIFEST};
use super::uncommitted;
use crate::error::{QbatError, Result};
use std::path::{Path, PathBuf};

/// Files being added to the output directory `dir`, written in `staging` (inside it).
pub struct Added {
    dir: PathBuf,
    staging: PathBuf,
}

impl Added {
    /// A fresh hidden directory inside `dir` for the files to add, listed for a signal to
    /// remove (`uncommitted`).
    pub fn begin(dir: &Path) -> Result<Added> {
        static TAKEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let staging = uncommitted::make_dir(|| {
            let n = TAKEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            dir.join(format!(".qbat-added-{}-{n}", std::process::id()))
        })?;
        Ok(Added { dir: dir.to_path_buf(), staging })
    }

    /// Where the files to add are written (each under the name it will have in the output).
    pub fn staging(&self) -> &Path {
        &self.staging
    }

    /// List `names` (files written in the staging directory) in the output's manifest, and
    /// move them and the manifest into place: the manifest is written first beside them, so
    /// that all that takes space is done before anything in the output changes; the files are
    /// then renamed into place, the manifest last. Each old file is first renamed aside into
    /// the staging directory (not linked: a directory shared between users, or a file system
    /// without hard links, refuses the link), and where a rename fails every old file goes
    /// back and every new one is removed. A file that is there but not qbat-gpu's, or not as
    /// the manifest lists it (one made since the analysis began), is refused before anything
    /// moves. A directory without a manifest gets one listing these files only, so that the
    /// next analysis may replace them (`check_replaceable`) and nothing else. Errors name the
    /// files by their names in the output.
    ///
    /// The steps (`recover` finishes or undoes an addition cut short by them): the manifest
    /// written aside, the set's mark; then per file its old one renamed aside and it renamed
    /// into place; the manifest last, renamed over the old one (never aside: the directory is
    /// never without one).
    pub fn commit(self, names: &[String]) -> Result<()> {
        let old = Manifest::read(&self.dir)?;
        let mut manifest = old.clone().unwrap_or_default();
        for name in names {
            let entry = hash_file(&self.staging.join(name)).map_err(|e| self.named(e))?;
            match manifest.files.iter_mut().find(|f| f.name == entry.name) {
                Some(f) => *f = entry,
                None => manifest.files.push(entry),
            }
        }
        manifest.files.sort_by(|a, b| a.name.cmp(&b.name));
        let mut steps = crate::faults::CommitSteps::added();
        manifest.write(&self.staging).map_err(|e| self.named(e))?;
        steps.done();
        if let Some(wait) = crate::faults::added_delay() {
            std::thread::sleep(wait);
        }
        // From here the files move: a signal meanwhile waits for them. (The manifest read
        // above is still DIR's: the analysis holds DIR's lock. A file made meanwhile is not.)
        let _held = uncommitted::hold();
        check_replaceable_under(&self.dir, old.as_ref(), names)?;
        // each name put in place (or whose old file is aside), and whether its old file is aside
        let mut moved: Vec<(&str, bool)> = vec![];
        for name in names.iter().map(String::as_str).chain([MANIFEST]) {
            let to = self.dir.join(name);
            let had_old = name != MANIFEST && std::fs::symlink_metadata(&to).is_ok();
            if had_old {
                if let Err(e) = std::fs::rename(&to, self.aside(name)) {
                    return Err(QbatError::io(&to, self.undo(&moved, e)));
                }
                steps.done();
            }
            let placed = match crate::faults::rename_fails(&to) {
                Some(e) => Err(e),
                None => std::fs::rename(self.staging.join(name), &to),
            };
            if let Err(e) = placed {
                // (its old file, aside, goes back with the others)
                moved.extend(had_old.then_some((name, true)));
                return Err(QbatError::io(&to, self.undo(&moved, e)));
            }
            moved.push((name, had_old));
            steps.done();
        }
        crate::plain_file::sync_dir(&self.dir)
    }

    /// Put the output back as it was before `moved` (each name put in place or whose old file
    /// is aside, and whether its old file is aside): each old file back in its place, each new
    /// one that replaced none removed. Returns `e`, with what could not be put back.
    fn undo(&self, moved: &[(&str, bool)], e: std::io::Error) -> std::io::Error {
        let mut failed = vec![];
        for &(name, had_old) in moved.iter().rev() {
            let to = self.dir.join(name);
            let back = match had_old {
                true => std::fs::rename(self.aside(name), &to),
                false => std::fs::remove_file(&to),
            };
            if let Err(why) = back {
                failed.push(format!("{} ({why})", to.display()));
            }
        }
        match failed.is_empty() {
            true => e,
            false => std::io::Error::new(e.kind(), format!("{e}; and could not put back {}", failed.join(", "))),
        }
    }

    /// Where the old file `name` a rename replaces is kept until all are in place.
    fn aside(&self, name: &str) -> PathBuf {
        self.staging.join(format!("{name}.replaced"))
    }

    /// `e` with a path in the staging directory named by the file's name in the output (the
    /// staging directory is gone once the error is read).
    pub fn named(&self, e: QbatError) -> QbatError {
        match e {
            QbatError::Io { path, source } => match Path::new(&path).strip_prefix(&self.staging) {
                Ok(rest) => QbatError::io(&self.dir.join(rest), source),
                Err(_) => QbatError::Io { path, source },
            },
            e => e,
        }
    }
}

impl Drop for Added {
    /// The staging directory goes, committed or not (what it holds then: the replaced files,
    /// or the files of a failed addition).
    fn drop(&mut self) {
        let mut held = uncommitted::hold();
        let _ = std::fs::remove_dir_all(&self.staging);
        held.forget(&self.staging);
    }
}
