//! summary.csv as the analysis reads it: the members it flags unhealthy (its `health` column
//! is not `ok`), and its member ids, which must be the series' ids in the series' order: a flag
//! naming an id the series does not hold would otherwise be ignored, and the unhealthy member
//! analysed as healthy. The ids are kept as runs of consecutive ids (one run for a run's own
//! summary, whatever its size).

use crate::error::{QbatError, Result};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// summary.csv's flagged ids and its ids in order; `check_next` walks them beside the series.
pub struct SummaryIds {
    path: PathBuf,
    pub flagged: HashSet<u64>,
    /// (first id, count) of each run of consecutive ids, in the file's order; None without a
    /// summary.csv or a health column (nothing is taken from it then).
    runs: Option<Vec<(u64, u64)>>,
    /// The next id expected: (run, offset in it).
    at: (usize, u64),
    seen: u64,
}

fn bad(path: &Path, reason: impl Into<String>) -> QbatError {
    QbatError::invalid(path.display().to_string(), reason)
}

impl SummaryIds {
    /// Read `dir`/summary.csv (none: nothing flagged, nothing checked), beside `series` of
    /// `members` members. It may list no more than those: its ids and flags, kept per row of
    /// non-consecutive ids, are then bounded by the series' size, not by a hand-made file's.
    pub fn read(dir: &Path, members: usize, series: &Path) -> Result<SummaryIds> {
        let path = dir.join("summary.csv");
        let mut out = SummaryIds { path: path.clone(), flagged: HashSet::new(), runs: None, at: (0, 0), seen: 0 };
        match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            // (a device or pipe put there is not the run's summary: never read, never ignored)
            Ok(m) if !m.is_file() => return Err(bad(&path, "is not a regular file")),
            _ => {}
        }
        let mut rdr = csv::Reader::from_reader(crate::plain_file::open_followed_regular(&path)?.0);
        let header = rdr.headers().map_err(|e| bad(&path, e.to_string()))?.clone();
        let Some(k) = header.iter().position(|h| h == "health") else {
            return Ok(out);
        };
        let mut runs: Vec<(u64, u64)> = vec![];
        for (i, rec) in rdr.records().enumerate() {
            if i == members {
                return Err(bad(&path, format!("lists more than the {members} members of {}: its ids are not the series' ids", series.display())));
            }
            let rec = rec.map_err(|e| bad(&path, format!("line {}: {e}", i + 2)))?;
            let id: u64 = rec[0].trim().parse().map_err(|_| bad(&path, format!("line {}: not a member id: {:?}", i + 2, &rec[0])))?;
            if rec.get(k).is_some_and(|h| h != "ok") {
                out.flagged.insert(id);
            }
            match runs.last_mut() {
                Some((first, n)) if first.checked_add(*n) == Some(id) => *n += 1,
                _ => runs.push((id, 1)),
            }
        }
        out.runs = Some(runs);
        Ok(out)
    }

    fn next_expected(&self) -> Option<u64> {
        let runs = self.runs.as_ref()?;
        runs.get(self.at.0).map(|(first, _)| first + self.at.1)
    }

    /// The series' next member is `id`: it must be summary.csv's next.
    pub fn check_next(&mut self, id: u64, series: &Path) -> Result<()> {
        let Some(runs) = self.runs.as_ref() else { return Ok(()) };
        let want = self.next_expected();
        if want != Some(id) {
            let what = match want {
                Some(w) => format!("lists member {w} where {} holds member {id} (its member {}): its ids are not the series' ids", series.display(), self.seen),
                None => format!("lists {} members, fewer than {}, which holds member {id}: its ids are not the series' ids", self.seen, series.display()),
            };
            return Err(bad(&self.path, what));
        }
        self.seen += 1;
        self.at.1 += 1;
        if self.at.1 == runs[self.at.0].1 {
            self.at = (self.at.0 + 1, 0);
        }
        Ok(())
    }

    /// After the series' last member: summary.csv lists no more.
    pub fn check_end(&self, series: &Path) -> Result<()> {
        match self.next_expected() {
            Some(w) => {
                Err(bad(&self.path, format!("lists member {w} beyond the {} members of {}: its ids are not the series' ids", self.seen, series.display())))
            }
            None => Ok(()),
        }
    }
}
