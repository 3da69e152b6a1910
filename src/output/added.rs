//! Files added to a finished output (`analyze`'s analysis.csv and 2-D histograms), committed
//! together with the manifest that lists them. They are written in a hidden directory inside
//! the output (`.qbat-added-PID-N`), the manifest with them; only then do they move into place,
//! by renames, which take no space. So a failure while they are written (a full disk, a quota)
//! leaves the output as it was: never a file under its name that the manifest does not list
//! (which the next `analyze` and `--force` refuse as not qbat-gpu's), nor one the manifest
//! lists with other bytes.

use super::manifest::{hash_file, Manifest, MANIFEST};
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
        let mut held = uncommitted::hold();
        let mut tries = 0;
        loop {
            let n = TAKEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let staging = dir.join(format!(".qbat-added-{}-{n}", std::process::id()));
            match std::fs::create_dir(&staging) {
                Ok(()) => {
                    held.add(&staging);
                    return Ok(Added { dir: dir.to_path_buf(), staging });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 1000 => tries += 1,
                Err(e) => return Err(QbatError::io(&staging, e)),
            }
        }
    }

    /// Where the files to add are written (each under the name it will have in the output).
    pub fn staging(&self) -> &Path {
        &self.staging
    }

    /// List `names` (files written in the staging directory) in the output's manifest, and
    /// move them and the manifest into place: the manifest is written first beside them, so
    /// that all that takes space is done before anything in the output changes; the files are
    /// then renamed into place, the manifest last. An old file a rename replaces is kept (a
    /// hard link) until all are in place, and put back where one fails. A directory without a
    /// manifest gets one listing these files only, so that the next analysis may replace them
    /// (`check_replaceable`) and nothing else.
    pub fn commit(self, names: &[String]) -> Result<()> {
        let mut manifest = Manifest::read(&self.dir)?.unwrap_or_default();
        for name in names {
            let entry = hash_file(&self.staging.join(name))?;
            match manifest.files.iter_mut().find(|f| f.name == entry.name) {
                Some(f) => *f = entry,
                None => manifest.files.push(entry),
            }
        }
        manifest.files.sort_by(|a, b| a.name.cmp(&b.name));
        manifest.write(&self.staging)?;
        let kept = |name: &str| self.staging.join(format!("{name}.replaced"));
        // From here the files move: a signal meanwhile waits for them.
        let _held = uncommitted::hold();
        // each name moved, and whether there was an old file there: Some(kept) where there was
        let mut moved: Vec<(&str, Option<bool>)> = vec![];
        for name in names.iter().map(String::as_str).chain([MANIFEST]) {
            let to = self.dir.join(name);
            let old = std::fs::symlink_metadata(&to).is_ok().then(|| std::fs::hard_link(&to, kept(name)).is_ok());
            if let Err(e) = std::fs::rename(self.staging.join(name), &to) {
                // undo: each old file back in its place, each new one that replaced none removed
                // (one whose old file could not be linked aside stays, the old one gone)
                for &(n, old) in moved.iter().rev() {
                    let _ = match old {
                        Some(true) => std::fs::rename(kept(n), self.dir.join(n)),
                        Some(false) => Ok(()),
                        None => std::fs::remove_file(self.dir.join(n)),
                    };
                }
                return Err(QbatError::io(&to, e));
            }
            moved.push((name, old));
        }
        Ok(())
    }
}

impl Drop for Added {
    /// The staging directory goes, committed or not (what it holds then: the replaced files'
    /// links, or the files of a failed addition).
    fn drop(&mut self) {
        let mut held = uncommitted::hold();
        let _ = std::fs::remove_dir_all(&self.staging);
        held.forget(&self.staging);
    }
}
