//! The series of a streamed run, kept in one file of the staging directory,
//! `blocks/series.npy`: qbat-gpu's npy header for the whole run, then every member's values
//! (little-endian f64, times x measures per member) at the member's offset.
//!
//! Each finished block writes its range in place (directly to the disk where it can, see
//! `direct_write`) and syncs it; the checkpoint records the range's size and BLAKE3 hash, so
//! that a resume checks exactly the finished ranges (an unfinished range is written again).
//! At the end the file is complete: it becomes series.npy by a hard link, not a copy. A csv
//! series is appended block by block beside it (`csv_series`) while the blocks land in member
//! order from the first, and written from the file's ranges otherwise. So the series is
//! written once, and read again only for a csv series not appended, the default study's
//! analysis, the plots drawn from it, and for the
//! manifest entry when the blocks did not land in order (for all of which each block is read
//! back into the page cache as soon as it is written, `reading_back`): while
//! the blocks of an npy series land in member order from the start (one device, a run not
//! resumed), the whole file's BLAKE3 is taken from the bytes as they are written.

use super::csv_series::CsvSeries;
use super::direct_write::{first_difference, read_at, write_at, DirectFile};
use crate::error::{QbatError, Result};
use crate::output::manifest::FileEntry;
use crate::output::states::write_f8_header;
use std::fs::File;
use std::path::{Path, PathBuf};

/// The file's name in the staging directory's `blocks/`.
pub(super) const SERIES_FILE: &str = "series.npy";

/// Bytes read at a time to hash or check a range (BLAKE3 hashes each piece on every core).
const PIECE: usize = 16 << 20;

/// Bytes of a written block hashed at a time into both hashes: well inside L2.
const HASH_PIECE: usize = 64 << 10;

/// Whether and how `SeriesFile::write_block` reads a block back (`SeriesFile::reading_back`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReadBack {
    No,
    /// Into the page cache, for readers at the end.
    Cached,
    /// Past the page cache where it can: a check of the bytes only.
    Checked,
}

pub(super) struct SeriesFile {
    path: PathBuf,
    file: File,
    /// The same file opened for direct writes of the blocks' values, where it can be: at the
    /// first block written (a file only checked or read never opens it).
    direct: std::sync::OnceLock<Option<DirectFile>>,
    /// Whether and how a block written directly is read back at once (`reading_back`).
    read_back: ReadBack,
    /// The memory of the read-back's pieces, reused from block to block.
    read_back_piece: std::sync::Mutex<Vec<u8>>,
    /// Bytes read back so far (tests).
    #[cfg(test)]
    read_back_bytes: std::sync::atomic::AtomicU64,
    header: Vec<u8>,
    /// Bytes of one member's values (times x measures x 8).
    row_bytes: u64,
    members: u64,
    /// The hash of bytes [0, end) of the file, as written, with `end`; None once a block
    /// lands anywhere but at `end` (blocks finished out of member order, a resumed run), once
    /// a block's write, sync or read-back failed, or when not asked for: then `entry` reads
    /// the file.
    written: std::sync::Mutex<Option<(blake3::Hasher, u64)>>,
    /// The csv series appended as the blocks are written (`with_csv`).
    csv: Option<CsvSeries>,
}

/// Its layout, not its buffers (the read-back's piece is up to 16 MiB).
impl std::fmt::Debug for SeriesFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeriesFile").field("path", &self.path).field("members", &self.members).field("row_bytes", &self.row_bytes).finish_non_exhaustive()
    }
}

impl SeriesFile {
    /// A fresh file for `members` members of `n_times` x `n_measures` values: the header, then
    /// room for every value (a sparse file until written). With `hash_whole`, the whole file's
    /// hash is taken as the blocks land in order (the npy output's manifest entry); a csv
    /// series, which is written from the ranges instead, has no use for it.
    pub(super) fn create(blocks_dir: &Path, members: usize, n_times: usize, n_measures: usize, hash_whole: bool) -> Result<SeriesFile> {
        let path = blocks_dir.join(SERIES_FILE);
        // A file left there is unlinked, never truncated: after a run's commit it is also the
        // output's series.npy (a hard link), until the staging directory is removed.
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(QbatError::io(&path, e)),
            _ => {}
        }
        let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path).map_err(|e| QbatError::io(&path, e))?;
        let s = SeriesFile::with_layout(path, file, members, n_times, n_measures);
        let io = |e| QbatError::io(&s.path, e);
        // readable by others, as every output file is (it becomes series.npy)
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            s.file.set_permissions(std::fs::Permissions::from_mode(0o644)).map_err(io)?;
        }
        s.file.set_len(s.len()).map_err(io)?;
        write_at(&s.file, &s.header, 0).map_err(io)?;
        s.file.sync_all().map_err(io)?;
        if !hash_whole {
            return Ok(s);
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update(&s.header);
        Ok(SeriesFile { written: std::sync::Mutex::new(Some((hasher, s.header.len() as u64))), ..s })
    }

    /// The file of an interrupted run, which must be a regular file (not a link, which the
    /// resume's writes would go through, nor a FIFO or a device) of this layout's length; an
    /// error names it (as part of a damaged checkpoint) otherwise.
    pub(super) fn open(blocks_dir: &Path, members: usize, n_times: usize, n_measures: usize) -> std::result::Result<SeriesFile, String> {
        let path = blocks_dir.join(SERIES_FILE);
        let (file, got) = crate::plain_file::open_regular_rw(&path).map_err(|e| e.with_causes())?;
        let s = SeriesFile::with_layout(path, file, members, n_times, n_measures);
        if got != s.len() {
            return Err(format!("{} holds {got} bytes, not the {} of this run's series", s.path.display(), s.len()));
        }
        let mut header = vec![0u8; s.header.len()];
        read_at(&s.file, &mut header, 0).map_err(|e| format!("{}: {e}", s.path.display()))?;
        if header != s.header {
            return Err(format!("the npy header of {} is not this run's", s.path.display()));
        }
        Ok(s)
    }

    fn with_layout(path: PathBuf, file: File, members: usize, n_times: usize, n_measures: usize) -> SeriesFile {
        let mut header = vec![];
        write_f8_header(&mut header, &[members as u64, n_times as u64, n_measures as u64]).expect("a header in memory");
        SeriesFile {
            path,
            file,
            direct: std::sync::OnceLock::new(),
            read_back: ReadBack::No,
            read_back_piece: std::sync::Mutex::new(vec![]),
            #[cfg(test)]
            read_back_bytes: Default::default(),
            header,
            row_bytes: (n_times * n_measures * 8) as u64,
            members: members as u64,
            written: std::sync::Mutex::new(None),
            csv: None,
        }
    }

    /// The file, with every block read back at once after its sync:
    /// - with `cache`, for a run that reads its series again at the end (a csv series not
    ///   appended as it goes, the
    ///   plots drawn from it, the whole file's hash after blocks out of order, an analysis of
    ///   the file), which then reads it from memory rather than the disk: a block written
    ///   directly is read back through the page cache (`ReadBack::Cached`), which costs about a
    ///   fifth of the CPU of a buffered write's copy (`direct_write`) and overlaps the next
    ///   block. A block written through the cache is not read back. Not for a series over
    ///   half the available memory, whose first blocks would leave the cache before the end;
    /// - else with `check`, for a run whose analysis takes each block as it lands
    ///   (`analyze::Gather`): each block is read back past the cache where it was written past
    ///   it, through the cache otherwise, and compared, filling no cache page
    ///   (`ReadBack::Checked`).
    ///
    /// Either way the bytes read back are compared with those written: `write_block` says
    /// whether it did.
    pub(super) fn reading_back(self, cache: bool, check: bool) -> SeriesFile {
        let fits = self.len() as f64 <= crate::config::available_memory_bytes() / 2.0;
        let read_back = match (cache && fits, check) {
            (true, _) => ReadBack::Cached,
            (false, true) => ReadBack::Checked,
            (false, false) => ReadBack::No,
        };
        SeriesFile { read_back, ..self }
    }

    /// Append each block's csv rows to `csv` once its values are written (`csv_series`).
    pub(super) fn with_csv(self, csv: Option<CsvSeries>) -> SeriesFile {
        SeriesFile { csv, ..self }
    }

    /// The csv series appended block by block, when it holds every member.
    pub(super) fn csv_complete(&self) -> Option<(&Path, FileEntry)> {
        self.csv.as_ref()?.complete()
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The file's length: header and every member's values.
    fn len(&self) -> u64 {
        self.header.len() as u64 + self.members * self.row_bytes
    }

    /// Byte offset and length of members [first, first + count); None past the end.
    fn range(&self, first: usize, count: usize) -> Option<(u64, u64)> {
        let (first, count) = (first as u64, count as u64);
        (first.checked_add(count)? <= self.members).then(|| (self.header.len() as u64 + first * self.row_bytes, count * self.row_bytes))
    }

    /// Write the values of members [first, ..) in place and sync them; returns the range's
    /// size and BLAKE3 hash, which the checkpoint records, and whether the range was read back
    /// from the file and found to hold `values` (`reading_back`).
    pub(super) fn write_block(&self, first: usize, values: &[f64]) -> Result<(FileEntry, bool)> {
        let count = values.len() / (self.row_bytes as usize / 8).max(1);
        let (offset, bytes) = self.range(first, count).filter(|&(_, b)| b == values.len() as u64 * 8).ok_or_else(|| {
            QbatError::Numerics(format!("{}: a block of {} values at member {first} does not fit the series", self.path.display(), values.len()))
        })?;
        let data = le_bytes(values);
        let written = self.write_and_check(&data, offset, bytes);
        if let (Some(csv), Ok(_)) = (&self.csv, &written) {
            csv.append(first, values);
        }
        if written.is_err() {
            // the whole hash went past bytes that may not be in the file
            *self.written.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
        }
        written
    }

    /// `write_block` of a block's bytes `data` at `offset`: written, synced, hashed and read
    /// back as `reading_back` asks.
    fn write_and_check(&self, data: &[u8], offset: u64, bytes: u64) -> Result<(FileEntry, bool)> {
        let io = |e| QbatError::io(&self.path, e);
        let direct = self.direct.get_or_init(|| DirectFile::open(&self.path, &self.file));
        let write = || {
            match direct {
                Some(direct) => direct.write_all_at(&self.file, data, offset),
                None => write_at(&self.file, data, offset),
            }
            .and_then(|()| self.file.sync_data())
        };
        // The hash beside the write and the sync, which mostly wait on the disk (a direct
        // write of 16 MB takes about 28 ms and its sync 17 ms on a virtual disk, the hash
        // 10 ms of CPU): on a thread of its own, not rayon's, whose cores are busy with the
        // statistics and the next block. Where no thread can be had, one after the other.
        let (hash, written) = std::thread::scope(|scope| match std::thread::Builder::new().spawn_scoped(scope, || self.hash_block(data, offset, bytes)) {
            Ok(hash) => {
                let written = write();
                (hash.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)), written)
            }
            Err(_) => (self.hash_block(data, offset, bytes), write()),
        });
        written.map_err(io)?;
        let written_directly = direct.as_ref().is_some_and(|d| !d.refused());
        let checked = match (self.read_back, direct) {
            (ReadBack::No, _) => false,
            // (blocks written buffered are in the page cache already)
            (ReadBack::Cached, _) if !written_directly => false,
            (ReadBack::Cached, _) | (ReadBack::Checked, None) => {
                self.read_back_as_written(data, offset, PIECE)?;
                true
            }
            (ReadBack::Checked, Some(direct)) => {
                if !direct.holds(&self.file, data, offset).map_err(io)? {
                    return Err(differs(&self.path, offset, bytes));
                }
                #[cfg(test)]
                self.read_back_bytes.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
                true
            }
        };
        Ok((FileEntry::new(SERIES_FILE, bytes, hash.to_hex().to_string()), checked))
    }

    /// The BLAKE3 hash of a block's bytes, which land at `offset`, and the whole file's hash
    /// carried over them when they follow the bytes hashed so far: each piece is read from
    /// memory once and hashed twice from the cache.
    fn hash_block(&self, data: &[u8], offset: u64, bytes: u64) -> blake3::Hash {
        // a poisoned lock leaves the whole hash to a read of the file
        let mut written = self.written.lock().unwrap_or_else(|poisoned| {
            let mut w = poisoned.into_inner();
            *w = None;
            w
        });
        match written.as_mut() {
            Some((whole, end)) if *end == offset => {
                let mut range = blake3::Hasher::new();
                for piece in data.chunks(HASH_PIECE) {
                    range.update(piece);
                    whole.update(piece);
                }
                *end += bytes;
                range.finalize()
            }
            // no whole hash (any more): the range alone, outside the lock
            _ => {
                *written = None;
                drop(written);
                blake3::hash(data)
            }
        }
    }

    /// Read `data`, just written at `offset`, back from the file `piece` bytes at a time (so
    /// into the page cache), and check that it is what was written.
    fn read_back_as_written(&self, data: &[u8], offset: u64, piece: usize) -> Result<()> {
        let mut memory = self.read_back_piece.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let differing = first_difference(&self.file, data, offset, piece, &mut memory).map_err(|e| QbatError::io(&self.path, e))?;
        #[cfg(test)]
        self.read_back_bytes.fetch_add(differing.map_or(data.len() as u64, |(at, bytes)| at - offset + bytes), std::sync::atomic::Ordering::Relaxed);
        match differing {
            Some((at, bytes)) => Err(differs(&self.path, at, bytes)),
            None => Ok(()),
        }
    }

    /// Members [first, first + count) against their checkpoint entry: the reason they
    /// differ, if they do.
    pub(super) fn check_block(&self, first: usize, count: usize, want: &FileEntry) -> std::result::Result<(), String> {
        self.read_checked_block(first, count, want, PIECE, |_| {})
    }

    /// The values of members [first, first + count), read once, a piece of whole members
    /// (at most `piece_bytes`, or one member, whatever the entry claims) at a time, each passed
    /// to `each` as it is read, and checked against their checkpoint entry in that read: an
    /// error after the last piece where they differ (what `each` saw is then to be dropped).
    pub(super) fn read_checked_block(
        &self,
        first: usize,
        count: usize,
        want: &FileEntry,
        piece_bytes: usize,
        mut each: impl FnMut(&[f64]),
    ) -> std::result::Result<(), String> {
        let (offset, bytes) = self.recorded_range(first, count, want)?;
        let row = self.row_bytes.max(8);
        let piece_rows = (piece_bytes as u64 / row).max(1);
        let mut values = vec![0f64; (piece_rows * row).min(bytes) as usize / 8];
        let mut hasher = blake3::Hasher::new();
        let mut done = 0u64;
        while done < bytes {
            let n = (piece_rows * row).min(bytes - done) as usize;
            let piece = &mut values[..n / 8];
            let raw: &mut [u8] = bytemuck::cast_slice_mut(piece);
            read_at(&self.file, raw, offset + done).map_err(|e| format!("{}: {e}", self.path.display()))?;
            hasher.update_rayon(raw);
            if cfg!(target_endian = "big") {
                piece.iter_mut().for_each(|v| *v = f64::from_bits(u64::from_le(v.to_bits())));
            }
            each(piece);
            done += n as u64;
        }
        match hasher.finalize().to_hex().as_str() == want.blake3 {
            true => Ok(()),
            false => Err(format!("the values of members {first}..{} in {} differ from their hash", first + count, self.path.display())),
        }
    }

    /// The byte range of members [first, first + count), where their entry records it.
    fn recorded_range(&self, first: usize, count: usize, want: &FileEntry) -> std::result::Result<(u64, u64), String> {
        let shown = self.path.display();
        let Some((offset, bytes)) = self.range(first, count) else {
            return Err(format!("members {first}..{} are beyond the {} of {shown}", first + count, self.members));
        };
        if want.name != SERIES_FILE || want.bytes != bytes {
            return Err(format!(
                "members {first}..{} of {shown} are recorded as {} bytes of {}, not {bytes} bytes of {SERIES_FILE}",
                first + count,
                want.bytes,
                want.name
            ));
        }
        Ok((offset, bytes))
    }

    /// The values of members [first, first + count).
    pub(super) fn read_block(&self, first: usize, count: usize) -> Result<Vec<f64>> {
        let (offset, bytes) = self
            .range(first, count)
            .ok_or_else(|| QbatError::Numerics(format!("{}: members {first}..{} are beyond the series", self.path.display(), first + count)))?;
        let mut raw = vec![0u8; bytes as usize];
        read_at(&self.file, &mut raw, offset).map_err(|e| QbatError::io(&self.path, e))?;
        Ok(raw.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
    }

    /// The finished file as an output's entry: its length checked again (it may not have
    /// changed since the blocks were written), then its size and BLAKE3 hash: the hash of
    /// the bytes written, where they were written in order from the start, else read back.
    pub(super) fn entry(&self) -> Result<FileEntry> {
        let got = self.file.metadata().map_err(|e| QbatError::io(&self.path, e))?.len();
        if got != self.len() {
            return Err(QbatError::invalid(
                self.path.display().to_string(),
                format!("holds {got} bytes, not the {} of the series; it was changed during the run", self.len()),
            ));
        }
        let hash = match self.written.lock().ok().and_then(|mut w| w.take()) {
            Some((whole, end)) if end == self.len() => whole.finalize().to_hex().to_string(),
            _ => self.hash_range(0, self.len()).map_err(|e| QbatError::io(&self.path, e))?,
        };
        Ok(FileEntry::new(SERIES_FILE, self.len(), hash))
    }

    /// BLAKE3 (hex) of `bytes` bytes from `offset`, read a piece at a time.
    fn hash_range(&self, offset: u64, bytes: u64) -> std::io::Result<String> {
        let mut hasher = blake3::Hasher::new();
        let mut piece = vec![0u8; PIECE.min(bytes as usize)];
        let mut done = 0u64;
        while done < bytes {
            let n = PIECE.min((bytes - done) as usize);
            read_at(&self.file, &mut piece[..n], offset + done)?;
            hasher.update_rayon(&piece[..n]);
            done += n as u64;
        }
        Ok(hasher.finalize().to_hex().to_string())
    }
}

/// The error of a range read back that differs from the bytes written there.
fn differs(path: &Path, at: u64, bytes: u64) -> QbatError {
    let why = format!("bytes {at} to {} read back differ from those written", at + bytes);
    QbatError::io(path, std::io::Error::new(std::io::ErrorKind::InvalidData, why))
}

/// The values as little-endian bytes: their own memory on a little-endian machine.
fn le_bytes(values: &[f64]) -> std::borrow::Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        std::borrow::Cow::Borrowed(bytemuck::cast_slice(values))
    } else {
        std::borrow::Cow::Owned(values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash taken as blocks land in order is the file's; a block anywhere else (out of
    /// order, written again, a resumed file) leaves the hash to a read of the file.
    #[test]
    fn the_whole_hash_is_the_files_however_the_blocks_land() {
        let dir = tempfile::tempdir().unwrap();
        let (members, nt, nm) = (7, 3, 2);
        let row = nt * nm;
        let all: Vec<f64> = (0..members * row).map(|i| (i as f64).sin()).collect();
        let file_hash = |s: &SeriesFile| blake3::hash(&std::fs::read(s.path()).unwrap()).to_hex().to_string();
        let orders: [&[(usize, usize)]; 6] = [&[(0, 3), (3, 3), (6, 1)], &[(0, 7)], &[(3, 4), (0, 3)], &[(0, 3), (0, 3), (3, 4)], &[(0, 2), (3, 4)], &[(0, 3)]];
        for blocks in orders {
            let s = SeriesFile::create(dir.path(), members, nt, nm, true).unwrap();
            for &(first, count) in blocks {
                s.write_block(first, &all[first * row..(first + count) * row]).unwrap();
            }
            assert_eq!(s.entry().unwrap().blake3, file_hash(&s), "blocks {blocks:?}");
        }
        // a block rewritten with other values: the hash is of what the file holds at the end
        let s = SeriesFile::create(dir.path(), members, nt, nm, true).unwrap();
        let other: Vec<f64> = all.iter().map(|v| v + 1.0).collect();
        s.write_block(0, &other[..3 * row]).unwrap();
        s.write_block(0, &all[..2 * row]).unwrap();
        s.write_block(3, &all[3 * row..]).unwrap();
        assert_eq!(s.entry().unwrap().blake3, file_hash(&s));
        // blocks of several hashed pieces each (members of 96 KiB)
        let (big_nt, big_nm) = (2000, 6);
        let big_row = big_nt * big_nm;
        let big: Vec<f64> = (0..5 * big_row).map(|i| (i as f64 * 0.37).cos()).collect();
        for blocks in [&[(0, 2), (2, 3)][..], &[(2, 3), (0, 2)][..]] {
            let s = SeriesFile::create(dir.path(), 5, big_nt, big_nm, true).unwrap();
            for &(first, count) in blocks {
                let (e, _) = s.write_block(first, &big[first * big_row..(first + count) * big_row]).unwrap();
                assert_eq!(e.blake3, blake3::hash(bytemuck::cast_slice(&big[first * big_row..(first + count) * big_row])).to_hex().to_string());
            }
            assert_eq!(s.entry().unwrap().blake3, file_hash(&s), "blocks {blocks:?}");
        }
        // a file whose whole hash was not asked for
        let s = SeriesFile::create(dir.path(), members, nt, nm, false).unwrap();
        s.write_block(0, &all[..3 * row]).unwrap();
        s.write_block(3, &all[3 * row..]).unwrap();
        assert!(s.written.lock().unwrap().is_none());
        assert_eq!(s.entry().unwrap().blake3, file_hash(&s));
        // an interrupted run's file, finished after a resume
        let s = SeriesFile::create(dir.path(), members, nt, nm, true).unwrap();
        s.write_block(0, &all[..3 * row]).unwrap();
        drop(s);
        let s = SeriesFile::open(dir.path(), members, nt, nm).unwrap();
        s.write_block(3, &all[3 * row..]).unwrap();
        assert_eq!(s.entry().unwrap().blake3, file_hash(&s));
    }

    /// Blocks large enough for direct writes (members of 24,000 bytes, not a multiple of a
    /// page), read back or not, in and out of order: the file is the npy of every value, and
    /// with the read-back every block's bytes were read again. The read-back's check, in
    /// pieces of every size, passes on the file's bytes and fails on others.
    #[test]
    fn blocks_written_directly_and_read_back_are_the_values() {
        use std::sync::atomic::Ordering::Relaxed;
        let dir = tempfile::tempdir().unwrap();
        let (members, nt, nm) = (7, 1000, 3);
        let row = nt * nm;
        let all: Vec<f64> = (0..members * row).map(|i| (i as f64 * 0.013).sin() * 1e3).collect();
        let mut header = vec![];
        write_f8_header(&mut header, &[members as u64, nt as u64, nm as u64]).unwrap();
        let want: Vec<u8> = header.iter().copied().chain(all.iter().flat_map(|v| v.to_le_bytes())).collect();
        let direct_here = super::super::direct_write::takes_direct_writes(dir.path());
        for (cache, check, read_back) in
            [(false, false, ReadBack::No), (true, false, ReadBack::Cached), (true, true, ReadBack::Cached), (false, true, ReadBack::Checked)]
        {
            let s = SeriesFile::create(dir.path(), members, nt, nm, true).unwrap().reading_back(cache, check);
            assert_eq!(s.read_back, read_back);
            assert!(s.direct.get().is_none(), "opened for direct writes at the first block");
            // a block written directly is read back when asked; one written buffered only
            // when checked
            let checks = read_back == ReadBack::Checked || (read_back == ReadBack::Cached && direct_here);
            for (first, count) in [(2, 3), (0, 2), (6, 1), (5, 1)] {
                let (_, checked) = s.write_block(first, &all[first * row..(first + count) * row]).unwrap();
                assert_eq!(checked, checks, "{read_back:?}");
            }
            assert_eq!(std::fs::read(s.path()).unwrap(), want, "read back {read_back:?}");
            assert_eq!(s.entry().unwrap().blake3, blake3::hash(&want).to_hex().to_string());
            let read = s.read_back_bytes.load(Relaxed);
            assert_eq!(read, if checks { (want.len() - header.len()) as u64 } else { 0 }, "read back {read_back:?}");
            if direct_here {
                let direct = s.direct.get().unwrap().as_ref().unwrap();
                assert!(!direct.refused(), "the blocks were written directly");
                // checked past the page cache: every block's page-aligned interior read directly
                #[cfg(target_os = "linux")]
                assert_eq!(direct.direct_read_bytes() > 0, read_back == ReadBack::Checked, "{read_back:?}");
            } else {
                eprintln!("no direct writes on this file system: the blocks were written buffered");
            }
            let (offset, bytes) = s.range(2, 3).unwrap();
            let written = &want[offset as usize..(offset + bytes) as usize];
            for piece in [7, 4095, 24_000, 1 << 20, PIECE] {
                s.read_back_as_written(written, offset, piece).unwrap();
                for flip in [0, bytes as usize / 2, bytes as usize - 1] {
                    let mut other = written.to_vec();
                    other[flip] ^= 0x40;
                    let err = s.read_back_as_written(&other, offset, piece).unwrap_err();
                    let why = std::error::Error::source(&err).map(|e| e.to_string()).unwrap_or_default();
                    assert!(why.contains("read back differ"), "{why}");
                }
            }
        }
    }

    #[test]
    fn blocks_land_at_their_members_and_are_checked_by_their_hash() {
        let dir = tempfile::tempdir().unwrap();
        let (members, nt, nm) = (5, 3, 2);
        let s = SeriesFile::create(dir.path(), members, nt, nm, true).unwrap();
        let row = nt * nm;
        let all: Vec<f64> = (0..members * row).map(|i| i as f64 * 0.5 - 3.0).collect();
        // blocks written out of order, as several devices finish them
        let (second, _) = s.write_block(2, &all[2 * row..]).unwrap();
        let (first, _) = s.write_block(0, &all[..2 * row]).unwrap();
        assert_eq!(first.bytes, (2 * row * 8) as u64);
        assert_eq!(first.blake3, blake3::hash(bytemuck::cast_slice(&all[..2 * row])).to_hex().to_string());
        // the file is the npy numpy reads: header, then the values in member order
        let bytes = std::fs::read(s.path()).unwrap();
        let mut header = vec![];
        write_f8_header(&mut header, &[members as u64, nt as u64, nm as u64]).unwrap();
        assert_eq!(&bytes[..header.len()], &header[..]);
        let values: Vec<f64> = bytes[header.len()..].chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(values, all);
        assert_eq!(s.read_block(2, 3).unwrap(), &all[2 * row..]);
        assert_eq!(s.entry().unwrap().blake3, blake3::hash(&bytes).to_hex().to_string());
        // reopened: the ranges check against their entries, and a flipped byte is found
        drop(s);
        let s = SeriesFile::open(dir.path(), members, nt, nm).unwrap();
        s.check_block(0, 2, &first).unwrap();
        s.check_block(2, 3, &second).unwrap();
        let read = |first: usize, count: usize, want: &FileEntry| {
            let mut got = vec![];
            s.read_checked_block(first, count, want, PIECE, |piece| got.extend_from_slice(piece)).map(|()| got)
        };
        assert_eq!(read(2, 3, &second).unwrap(), &all[2 * row..]);
        assert_eq!(read(0, 2, &first).unwrap(), &all[..2 * row]);
        // in pieces of whole members, however small the pieces asked for
        for piece_bytes in [1, row * 8, row * 8 + 1, 2 * row * 8, 1 << 20] {
            let mut pieces = vec![];
            s.read_checked_block(2, 3, &second, piece_bytes, |piece| pieces.push(piece.to_vec())).unwrap();
            assert!(pieces.iter().all(|p| !p.is_empty() && p.len() % row == 0 && p.len() <= row.max(piece_bytes / 8 / row * row)), "{piece_bytes}");
            assert_eq!(pieces.concat(), &all[2 * row..]);
        }
        assert!(s.check_block(0, 3, &first).is_err(), "a range of another size");
        assert!(read(0, 3, &first).is_err(), "a range of another size");
        assert!(read(4, 2, &second).is_err(), "a range past the end");
        assert!(s.check_block(4, 2, &second).is_err(), "a range past the end");
        let mut damaged = bytes.clone();
        damaged[header.len() + 2 * row * 8 + 3] ^= 1; // in member 2, the second block
        std::fs::write(s.path(), &damaged).unwrap();
        assert!(s.check_block(0, 2, &first).is_ok());
        assert!(s.check_block(2, 3, &second).unwrap_err().contains("differ from their hash"));
        assert_eq!(read(0, 2, &first).unwrap(), &all[..2 * row]);
        assert!(read(2, 3, &second).unwrap_err().contains("differ from their hash"));
        // another run's layout, a truncated file, an edited header, a missing file
        assert!(SeriesFile::open(dir.path(), members + 1, nt, nm).unwrap_err().contains("bytes"));
        std::fs::write(s.path(), &bytes[..bytes.len() - 1]).unwrap();
        assert!(SeriesFile::open(dir.path(), members, nt, nm).is_err());
        let mut edited = bytes.clone();
        edited[20] ^= 1;
        std::fs::write(s.path(), &edited).unwrap();
        assert!(SeriesFile::open(dir.path(), members, nt, nm).unwrap_err().contains("header"));
        std::fs::remove_file(s.path()).unwrap();
        assert!(SeriesFile::open(dir.path(), members, nt, nm).unwrap_err().contains(SERIES_FILE));
        // a file left by a run whose commit linked it to its output is unlinked, not truncated:
        // the output keeps its values
        let s = SeriesFile::create(dir.path(), members, nt, nm, true).unwrap();
        s.write_block(0, &all).unwrap();
        let output = dir.path().join("output.npy");
        std::fs::hard_link(s.path(), &output).unwrap();
        let s = SeriesFile::create(dir.path(), members, nt, nm, true).unwrap();
        s.write_block(0, &vec![7.0; all.len()]).unwrap();
        assert_eq!(std::fs::read(&output).unwrap(), bytes);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(s.path()).unwrap().permissions().mode() & 0o777, 0o644);
        }
        // a block that does not fit is an error, not a write past the end
        assert!(s.write_block(4, &all[..2 * row]).is_err());
        assert!(s.write_block(0, &all[..row + 1]).is_err());
    }
}
