//! series.csv formatted as the blocks land, beside the integration of the next block.
//!
//! The csv series is also what the finish can write from the npy file's ranges once the last
//! block is in (`finish.rs`); that puts its formatting and its sync on the critical path
//! (cavity-10k's 510 MB took about 1 s of the run's 5.5 s on a 16-core host). While the
//! blocks land in member order from the first (one device, a run not resumed), each block's
//! rows are appended here as the block is absorbed, then synced, and hashed as they are
//! written; the finish places the complete file. A block anywhere else, or a failed append,
//! stops the appending for good, and the finish formats the file from the npy as before. The
//! bytes are the same either way: both format the same values with `write_csv_rows`.

use crate::error::{QbatError, Result};
use crate::output::manifest::{FileEntry, Hashing};
use crate::output::series::{write_csv_header, write_csv_rows};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The file's name in the staging directory's `blocks/` (and in the output).
pub(super) const CSV_FILE: &str = "series.csv";

pub(super) struct CsvSeries {
    path: PathBuf,
    /// Every member's id, in the file's order.
    ids: Vec<u64>,
    times: Vec<f64>,
    n_measures: usize,
    /// None once the appending stopped (a block out of order, a failed write).
    state: Mutex<Option<Appending>>,
}

struct Appending {
    file: std::fs::File,
    /// The first member whose rows are not in the file yet.
    next: usize,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl CsvSeries {
    /// A fresh file in `blocks_dir` holding the header; a file left there is unlinked first
    /// (after a commit it is also the output's series.csv, a hard link).
    pub(super) fn create(blocks_dir: &Path, ids: Vec<u64>, times: Vec<f64>, measures: &[&str]) -> Result<CsvSeries> {
        let path = blocks_dir.join(CSV_FILE);
        let io = |e| QbatError::io(&path, e);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&path).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o644)).map_err(io)?;
        }
        let (mut hasher, mut bytes) = (blake3::Hasher::new(), 0u64);
        write_csv_header(&mut Hashing { inner: &mut file, hasher: &mut hasher, bytes: &mut bytes }, measures).map_err(io)?;
        let state = Mutex::new(Some(Appending { file, next: 0, hasher, bytes }));
        Ok(CsvSeries { path, ids, times, n_measures: measures.len(), state })
    }

    /// Append the rows of members [first, ..) whose `values` are [member][sample][measure],
    /// and sync them; a block that does not follow the rows so far, or a failed write, stops
    /// the appending (the finish then writes the file from the npy).
    pub(super) fn append(&self, first: usize, values: &[f64]) {
        // (a poisoned lock: a block's append panicked half-way, and the rows stop there)
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let row = self.times.len() * self.n_measures;
        let count = values.len().checked_div(row).unwrap_or(0);
        let Some(a) = state.as_mut().filter(|a| a.next == first && first + count <= self.ids.len() && count * row == values.len()) else {
            self.stop(&mut state);
            return;
        };
        let ids = &self.ids[first..first + count];
        let written = (|| {
            let mut w = std::io::BufWriter::with_capacity(1 << 16, Hashing { inner: &mut a.file, hasher: &mut a.hasher, bytes: &mut a.bytes });
            write_csv_rows(&mut w, ids, &self.times, values, self.n_measures)?;
            w.flush()?;
            drop(w);
            a.file.sync_data()
        })();
        match written {
            Ok(()) => a.next += count,
            Err(_) => self.stop(&mut state),
        }
    }

    /// Stop the appending, and give back the space of the rows so far (the disk may be full;
    /// the finish writes the file again from the npy).
    fn stop(&self, state: &mut Option<Appending>) {
        if state.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// The complete file and its manifest entry, once every member's rows are in it; None
    /// otherwise (the appending stopped, or blocks are missing).
    pub(super) fn complete(&self) -> Option<(&Path, FileEntry)> {
        let state = self.state.lock().ok()?;
        let a = state.as_ref().filter(|a| a.next == self.ids.len())?;
        Some((&self.path, FileEntry::new(CSV_FILE, a.bytes, a.hasher.finalize().to_hex().to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(members: usize, row: usize, seed: f64) -> Vec<f64> {
        (0..members * row).map(|k| (k as f64 * 0.37 + seed).sin() / 3.0).collect()
    }

    /// Blocks appended in member order give the file `write_csv_header` and `write_csv_rows`
    /// write for the whole series at once, with that file's size and hash; a block out of
    /// order leaves no complete file.
    #[test]
    fn blocks_in_order_make_the_whole_file_and_a_block_out_of_order_stops_it() {
        let dir = tempfile::tempdir().unwrap();
        let (ids, times, measures) = (vec![3u64, 4, 9, 12, 20], vec![0.0, 0.25, 0.5], ["a", "b"]);
        let row = times.len() * measures.len();
        let all = values(ids.len(), row, 0.1);
        let mut whole = vec![];
        write_csv_header(&mut whole, &measures).unwrap();
        write_csv_rows(&mut whole, &ids, &times, &all, measures.len()).unwrap();

        let csv = CsvSeries::create(dir.path(), ids.clone(), times.clone(), &measures).unwrap();
        assert!(csv.complete().is_none());
        csv.append(0, &all[..2 * row]);
        assert!(csv.complete().is_none(), "three members are missing");
        csv.append(2, &all[2 * row..]);
        let (path, entry) = csv.complete().expect("every member's rows");
        let file = std::fs::read(path).unwrap();
        assert_eq!(file, whole);
        assert_eq!((entry.bytes, entry.blake3.as_str()), (whole.len() as u64, blake3::hash(&whole).to_hex().as_str()));

        // the second block first: nothing complete, whatever follows
        let csv = CsvSeries::create(dir.path(), ids.clone(), times.clone(), &measures).unwrap();
        csv.append(2, &all[2 * row..]);
        csv.append(0, &all[..2 * row]);
        assert!(csv.complete().is_none());
        assert!(!dir.path().join(CSV_FILE).exists(), "the rows of a stopped file are removed");
        // a block whose values are not whole members
        let csv = CsvSeries::create(dir.path(), ids, times, &measures).unwrap();
        csv.append(0, &all[..row + 1]);
        assert!(!dir.path().join(CSV_FILE).exists(), "a block of part of a member stops the file");
        csv.append(0, &all);
        assert!(csv.complete().is_none());
    }
}
