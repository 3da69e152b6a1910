//! The repeated-member check of a series.csv read back (`SeriesReader::next_member`): a
//! member listed twice would be counted twice.

use super::{bad, parse_u64};
use crate::error::Result;
use std::io::BufReader;
use std::path::Path;

/// The member ids of a series.csv read so far, to refuse one listed twice. A run lists them
/// increasing, and then the last one is all that is kept; only a file out of order is read
/// again for the ids before the first member out of order, into a set (a set from the start
/// grew 16 to 30 B a member, unbudgeted, with a file of millions of members).
#[derive(Default)]
pub(super) struct SeenIds {
    last: Option<u64>,
    set: Option<std::collections::HashSet<u64>>,
}

impl SeenIds {
    /// Take member `index`'s id `this`, read at `at` (series.csv's path and line) of a file of
    /// `members` members of `nt` rows each: false when it was seen before; Err where the file
    /// is out of order and the set of its ids does not fit the memory left.
    pub(super) fn take(&mut self, this: u64, index: usize, at: (&Path, u64), members: usize, nt: usize) -> Result<bool> {
        let (path, line) = at;
        self.insert(this, index, |before| ids_set_fits(path, line, members).and_then(|()| csv_ids_before(path, before, nt)))
    }

    /// Take member `index`'s id `this`: false when it was seen before. `earlier` reads the ids
    /// of members 0..index (the first time an id does not increase).
    fn insert(&mut self, this: u64, index: usize, earlier: impl FnOnce(usize) -> Result<Vec<u64>>) -> Result<bool> {
        if self.set.is_none() {
            if self.last.is_none_or(|last| this > last) {
                self.last = Some(this);
                return Ok(true);
            }
            // (distinct: they increased)
            self.set = Some(earlier(index)?.into_iter().collect());
        }
        Ok(self.set.as_mut().expect("set above").insert(this))
    }
}

/// Bytes a member's id takes in the set of a series.csv out of order (a hash set's entry,
/// with its growth's slack).
const SEEN_BYTES_PER_MEMBER: f64 = 48.0;

/// Whether the set of `members` ids fits the memory left: else the file is refused at `line`,
/// its first member out of order.
fn ids_set_fits(path: &Path, line: u64, members: usize) -> Result<()> {
    use crate::config::available_memory::{available_memory, size_need, size_text};
    let (need, avail) = (members as f64 * SEEN_BYTES_PER_MEMBER, available_memory());
    if need <= avail.usable() {
        return Ok(());
    }
    Err(bad(
        path,
        format!(
            "line {line}: the member ids do not increase, and checking {members} members for one listed twice needs about {}, more than 60% of the {} available{}; list the members in increasing id order, as a run writes them",
            size_need(need),
            size_text(avail.bytes),
            avail.under()
        ),
    ))
}

/// The ids of the first `members` members of series.csv at `path`, of `nt` rows each (rows
/// that were read and checked once already).
fn csv_ids_before(path: &Path, members: usize, nt: usize) -> Result<Vec<u64>> {
    let (file, _) = crate::plain_file::open_followed_regular(path)?;
    let mut rows = csv::ReaderBuilder::new().has_headers(true).from_reader(BufReader::with_capacity(1 << 20, file)).into_records();
    let mut ids = Vec::with_capacity(members);
    for m in 0..members {
        let line = 2 + (m * nt) as u64;
        let rec = rows.nth(if m == 0 { 0 } else { nt - 1 });
        let rec = rec.ok_or_else(|| bad(path, format!("line {line}: the file changed while it was read")))?;
        let rec = rec.map_err(|e| bad(path, format!("line {line}: {e}")))?;
        ids.push(parse_u64(path, line, &rec, 0)?);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::super::SeriesReader;

    /// series.csv's member ids: in any order they read back as written; one listed twice is
    /// refused, naming it and its line, whether it repeats the last id, one before the first
    /// id out of order, or one after it.
    #[test]
    fn csv_members_out_of_order_read_and_a_repeated_one_is_refused() {
        let read_ids = |ids: &[u64]| -> std::result::Result<Vec<u64>, String> {
            let dir = tempfile::tempdir().unwrap();
            let mut text = String::from("member,t,x\n");
            for id in ids {
                text += &format!("{id},0,{id}\n{id},1,-{id}\n");
            }
            std::fs::write(dir.path().join("series.csv"), text).unwrap();
            let mut reader = SeriesReader::open(dir.path()).map_err(|e| e.to_string())?.expect("a series");
            let (mut got, mut block) = (vec![], vec![]);
            while let Some(id) = reader.next_member(&mut block).map_err(|e| e.to_string())? {
                assert_eq!(block, [id as f64, -(id as f64)]);
                got.push(id);
            }
            Ok(got)
        };
        for ids in [&[0u64, 1, 2][..], &[5, 2, 9, 3], &[7], &[9, 8, 7, 6]] {
            assert_eq!(read_ids(ids).unwrap(), ids);
        }
        for (ids, id, line) in [(&[1u64, 2, 2][..], 2, 6), (&[3, 4, 3], 3, 6), (&[3, 1, 2, 1], 1, 8), (&[4, 0, 9, 4], 4, 8)] {
            let e = read_ids(ids).unwrap_err();
            assert!(e.contains("series.csv") && e.contains(&format!("line {line}: member {id} is listed twice")), "{ids:?}: {e}");
        }
    }
}
