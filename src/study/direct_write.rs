//! Writes of a block's series that bypass the page cache, where the file system allows it
//! (O_DIRECT on Linux).
//!
//! A block's series is hundreds of megabytes that this run never changes again. A buffered
//! write copies every byte into freshly allocated page-cache pages; on a virtual machine
//! whose free memory is handed back to the host, each such page first costs a fault on the
//! host, and the copy took about 5 ms of CPU per MB (2.2 s per 400 MB), on the cores the next
//! block is integrated on. A direct write moves the bytes to the disk from a reused buffer
//! instead, with almost no CPU.
//!
//! A direct write needs its offset, length and memory aligned to the disk's block: a block's
//! range is written as its unaligned head and tail (under one page each) through the ordinary
//! file, and its page-aligned interior directly, a chunk at a time through an aligned buffer.
//! The writes of one file are serialized (one lock), and the kernel writes back and drops the
//! cached pages of a direct write's range first, so later reads (a resume's check, the
//! analysis) see the bytes. A file system that refuses direct writes (the open fails, or a
//! write returns EINVAL) leaves the rest of the run to buffered writes, which give the same
//! bytes.
//!
//! The positioned reads and writes of the ordinary file (`read_at`, `write_at`) and the
//! buffered compare (`first_difference`) live here too, below `series_file`, which uses them.

use std::fs::File;
use std::path::Path;
#[cfg(target_os = "linux")]
use std::sync::atomic::{AtomicBool, Ordering};

/// Bytes copied into the aligned buffer and written (or read back) at a time. Small: the
/// buffer is fresh memory in every run, and on a virtual machine its first touch (the guest's
/// zeroing and the host's faults) cost more than the copy; with 4 MiB chunks in huge pages a
/// run of bloch-1k took about 24 ms more CPU (0.335 s against 0.311 s). A direct write or read
/// of 512 KiB moved at least as many bytes a second as one of 4 MiB on that machine's disk
/// (`dd`, benches/RESULTS.md); a cluster file system with larger requests may favour larger
/// chunks.
#[cfg(target_os = "linux")]
const CHUNK: usize = 512 << 10;

/// A second handle on the series file, opened for direct writes.
pub(super) struct DirectFile {
    #[cfg(target_os = "linux")]
    file: File,
    /// Alignment of a direct write's offset, length and memory: a page (at least 4096 bytes,
    /// which covers the logical blocks of today's disks), so that the buffered head and tail
    /// never share a cached page with a direct interior.
    #[cfg(target_os = "linux")]
    align: usize,
    /// The aligned buffer's memory, reused from block to block; its lock serializes the writes.
    #[cfg(target_os = "linux")]
    memory: std::sync::Mutex<Vec<u8>>,
    /// Set once the file system refused a direct write: buffered writes from then on.
    #[cfg(target_os = "linux")]
    refused: AtomicBool,
    /// Bytes written directly so far (tests).
    #[cfg(all(test, target_os = "linux"))]
    direct_bytes: std::sync::atomic::AtomicU64,
    /// Bytes read directly so far by `holds` (tests).
    #[cfg(all(test, target_os = "linux"))]
    direct_read_bytes: std::sync::atomic::AtomicU64,
    /// Direct chunks written before a refusal is made up (tests).
    #[cfg(all(test, target_os = "linux"))]
    chunks_before_refusal: std::sync::atomic::AtomicUsize,
}

/// Whether it still writes directly, not its buffer (a 512 KiB chunk and a page).
impl std::fmt::Debug for DirectFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectFile").field("refused", &self.refused()).finish_non_exhaustive()
    }
}

impl DirectFile {
    /// The file at `path` opened for direct writes; None where the platform or the file
    /// system has none, or where `path` is no longer the regular file `buffered` holds open
    /// (a link, or another file, put in its place: its writes then all go to `buffered`).
    pub(super) fn open(path: &Path, buffered: &File) -> Option<DirectFile> {
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
            let file = std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_DIRECT | libc::O_NOFOLLOW).open(path).ok()?;
            let (opened, held) = (file.metadata().ok()?, buffered.metadata().ok()?);
            if !opened.file_type().is_file() || (opened.dev(), opened.ino()) != (held.dev(), held.ino()) {
                return None;
            }
            // SAFETY: sysconf only reads a system constant.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            Some(DirectFile {
                file,
                align: usize::try_from(page).unwrap_or(0).max(4096),
                memory: std::sync::Mutex::new(vec![]),
                refused: AtomicBool::new(false),
                #[cfg(test)]
                direct_bytes: Default::default(),
                #[cfg(test)]
                direct_read_bytes: Default::default(),
                #[cfg(test)]
                chunks_before_refusal: usize::MAX.into(),
            })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (path, buffered);
            None
        }
    }

    /// Write all of `buf` at `offset` of the file: its page-aligned interior directly, the
    /// rest (and everything, once direct writes were refused) through `buffered`, a handle
    /// on the same file.
    pub(super) fn write_all_at(&self, buffered: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            // a poisoned lock: a writer panicked mid-write; its buffer is still memory
            let mut memory = self.memory.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let Some(((head, interior, tail), first, last)) = self.split(buf, offset) else {
                return write_at(buffered, buf, offset);
            };
            write_at(buffered, head, offset)?;
            self.write_interior(&mut memory, buffered, interior, first)?;
            write_at(buffered, tail, last)
        }
        #[cfg(not(target_os = "linux"))]
        write_at(buffered, buf, offset)
    }

    /// `bytes` at `offset` cut into (head, page-aligned interior, tail), with the interior's
    /// first and last offsets; None where it has no interior or direct writes were refused
    /// (the caller goes through the ordinary file).
    #[cfg(target_os = "linux")]
    #[allow(clippy::type_complexity)]
    fn split<'b>(&self, bytes: &'b [u8], offset: u64) -> Option<((&'b [u8], &'b [u8], &'b [u8]), u64, u64)> {
        let align = self.align as u64;
        let (first, last) = (offset.next_multiple_of(align), (offset + bytes.len() as u64) / align * align);
        if self.refused() || first >= last {
            return None;
        }
        let (head, rest) = bytes.split_at((first - offset) as usize);
        let (interior, tail) = rest.split_at((last - first) as usize);
        Some(((head, interior, tail), first, last))
    }

    /// The aligned buffer for an interior of `bytes`: up to CHUNK bytes of `memory` (grown
    /// where it is short) at an aligned address; None where `align_offset` finds none.
    #[cfg(target_os = "linux")]
    fn aligned<'m>(&self, memory: &'m mut Vec<u8>, bytes: usize) -> Option<&'m mut [u8]> {
        // (a multiple of the alignment: both are powers of two, and `bytes` is a multiple)
        let len = CHUNK.max(self.align).min(bytes);
        if memory.len() < len + self.align {
            *memory = vec![0; len + self.align];
        }
        let start = memory.as_ptr().align_offset(self.align);
        memory.get_mut(start..).and_then(|m| m.get_mut(..len))
    }

    /// `interior` (aligned offset and length) at `offset`, a chunk at a time through an aligned
    /// buffer in `memory`. After a refusal, or a short write whose remainder the next direct
    /// write refuses, the rest goes through `buffered`.
    #[cfg(target_os = "linux")]
    fn write_interior(&self, memory: &mut Vec<u8>, buffered: &File, interior: &[u8], offset: u64) -> std::io::Result<()> {
        // (no aligned address found: the writes are buffered)
        let Some(aligned) = self.aligned(memory, interior.len()) else {
            return write_at(buffered, interior, offset);
        };
        let len = aligned.len();
        let mut done = 0;
        while done < interior.len() {
            if self.refused() {
                return write_at(buffered, &interior[done..], offset + done as u64);
            }
            let n = len.min(interior.len() - done);
            aligned[..n].copy_from_slice(&interior[done..done + n]);
            match self.write_direct(&aligned[..n], offset + done as u64) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(k) => done += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => self.refused.store(true, Ordering::Relaxed),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// One direct write (pwrite on the O_DIRECT handle).
    #[cfg(target_os = "linux")]
    fn write_direct(&self, buf: &[u8], offset: u64) -> std::io::Result<usize> {
        #[cfg(test)]
        {
            use std::sync::atomic::Ordering::Relaxed;
            if self.chunks_before_refusal.fetch_update(Relaxed, Relaxed, |k| k.checked_sub(1)).is_err() {
                return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
            }
        }
        let written = std::os::unix::fs::FileExt::write_at(&self.file, buf, offset)?;
        #[cfg(test)]
        self.direct_bytes.fetch_add(written as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(written)
    }

    /// Whether the file holds `want` at `offset`: its page-aligned interior read directly, a
    /// chunk at a time into the aligned buffer, so past the page cache (the check fills no
    /// cache page the run would have to pay for), the rest through `buffered`. Where the file
    /// system refuses a direct read, or after a refusal of a direct write, through `buffered`.
    pub(super) fn holds(&self, buffered: &File, want: &[u8], offset: u64) -> std::io::Result<bool> {
        #[cfg(target_os = "linux")]
        {
            let mut memory = self.memory.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let Some(((head, interior, tail), first, last)) = self.split(want, offset) else {
                return holds_buffered(buffered, want, offset);
            };
            Ok(holds_buffered(buffered, head, offset)? && self.holds_interior(&mut memory, buffered, interior, first)? && holds_buffered(buffered, tail, last)?)
        }
        #[cfg(not(target_os = "linux"))]
        holds_buffered(buffered, want, offset)
    }

    /// `holds` of an aligned interior, read directly through the aligned buffer in `memory`.
    #[cfg(target_os = "linux")]
    fn holds_interior(&self, memory: &mut Vec<u8>, buffered: &File, interior: &[u8], offset: u64) -> std::io::Result<bool> {
        let Some(aligned) = self.aligned(memory, interior.len()) else {
            return holds_buffered(buffered, interior, offset);
        };
        let len = aligned.len();
        let mut done = 0;
        while done < interior.len() {
            let n = len.min(interior.len() - done);
            match std::os::unix::fs::FileExt::read_at(&self.file, &mut aligned[..n], offset + done as u64) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(k) => {
                    if aligned[..k] != interior[done..done + k] {
                        return Ok(false);
                    }
                    #[cfg(test)]
                    self.direct_read_bytes.fetch_add(k as u64, Ordering::Relaxed);
                    done += k;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return holds_buffered(buffered, &interior[done..], offset + done as u64),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Bytes read directly so far by `holds` (tests).
    #[cfg(all(test, target_os = "linux"))]
    pub(super) fn direct_read_bytes(&self) -> u64 {
        self.direct_read_bytes.load(Ordering::Relaxed)
    }

    /// Whether the file system has refused a direct write: the writes are buffered since.
    pub(super) fn refused(&self) -> bool {
        #[cfg(target_os = "linux")]
        return self.refused.load(Ordering::Relaxed);
        #[cfg(not(target_os = "linux"))]
        true
    }
}

/// Whether `file` holds `want` at `offset`, read through the page cache a MiB at a time.
fn holds_buffered(file: &File, want: &[u8], offset: u64) -> std::io::Result<bool> {
    Ok(first_difference(file, want, offset, 1 << 20, &mut vec![])?.is_none())
}

#[cfg(unix)]
pub(super) fn write_at(file: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

#[cfg(windows)]
pub(super) fn write_at(file: &File, mut buf: &[u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_write(buf, offset)? {
            0 => return Err(std::io::ErrorKind::WriteZero.into()),
            n => (buf, offset) = (&buf[n..], offset + n as u64),
        }
    }
    Ok(())
}

/// Whether the file system under `dir` takes a direct write of one page (64 KiB, aligned for
/// any page size), probed apart from `DirectFile`: where it does, the tests require that
/// `DirectFile` writes directly.
#[cfg(test)]
pub(super) fn takes_direct_writes(dir: &Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::{FileExt, OpenOptionsExt};
        let page = 64 << 10;
        let probe = std::fs::OpenOptions::new().write(true).create(true).truncate(true).custom_flags(libc::O_DIRECT).open(dir.join("direct-probe"));
        let Ok(file) = probe else {
            return false;
        };
        let memory = vec![1u8; 2 * page];
        let start = memory.as_ptr().align_offset(page);
        memory.get(start..start + page).is_some_and(|aligned| file.write_at(aligned, 0).is_ok_and(|n| n == page))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        false
    }
}

/// Whether `file` holds `want` at `offset`, read through the page cache `piece` bytes at a
/// time into `memory` (grown as needed, kept for the next call): the first piece that
/// differs, as (offset, bytes), or None.
pub(super) fn first_difference(file: &File, want: &[u8], offset: u64, piece: usize, memory: &mut Vec<u8>) -> std::io::Result<Option<(u64, u64)>> {
    let piece = piece.max(1);
    let len = piece.min(want.len()).max(memory.len());
    memory.resize(len, 0);
    for (k, want) in want.chunks(piece).enumerate() {
        let got = &mut memory[..want.len()];
        let at = offset + (k * piece) as u64;
        read_at(file, got, at)?;
        if got != want {
            return Ok(Some((at, want.len() as u64)));
        }
    }
    Ok(None)
}

#[cfg(unix)]
pub(super) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
pub(super) fn read_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => (buf, offset) = (&mut buf[n..], offset + n as u64),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ranges written through a `DirectFile` leave the file holding what a model of it in
    /// memory holds: with the interiors written directly (as many bytes as the test's own
    /// count of the page-aligned interiors), after a refusal at the first direct write, and
    /// after one mid-range; and adjacent ranges that meet inside one page, from several
    /// threads at once.
    #[test]
    fn ranges_land_as_written_directly_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let direct_here = takes_direct_writes(dir.path());
        // (offset, length): inside one page, across a page edge, aligned, many chunks with
        // unaligned ends, an aligned start with a ragged end, and the reverse
        let page = 4096usize;
        let ranges = [(100, 200), (4000, 300), (page, 2 * page), (128, (9 << 20) + 77), (3 * page, (4 << 20) + 5), (7, 5 * page - 7)];
        let len = ranges.iter().map(|&(o, n)| o + n).max().unwrap() + page;
        // chunks written directly before a refusal: none made up, at once, and after two (the
        // second range with an interior, one chunk into it)
        for refuse_after in [None, Some(0), Some(2)] {
            let path = dir.path().join(format!("file-{refuse_after:?}"));
            let buffered = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path).unwrap();
            buffered.set_len(len as u64).unwrap();
            let Some(direct) = DirectFile::open(&path, &buffered) else {
                assert!(!direct_here, "{}: not opened for direct writes, which this file system takes", path.display());
                eprintln!("{}: no direct writes on this file system; the buffered path alone is checked", path.display());
                continue;
            };
            #[cfg(target_os = "linux")]
            if let Some(k) = refuse_after {
                direct.chunks_before_refusal.store(k, Ordering::Relaxed);
            }
            let mut model = vec![0u8; len];
            for (k, &(offset, n)) in ranges.iter().enumerate() {
                let bytes: Vec<u8> = (0..n).map(|i| (i * 31 + k * 7 + 1) as u8).collect();
                direct.write_all_at(&buffered, &bytes, offset as u64).unwrap();
                model[offset..offset + n].copy_from_slice(&bytes);
                assert_eq!(std::fs::read(&path).unwrap(), model, "after range {k}, refusal after {refuse_after:?} chunks");
            }
            #[cfg(target_os = "linux")]
            {
                let a = direct.align;
                // the direct chunks, range by range: each interior cut into CHUNK bytes
                let chunks: Vec<usize> = ranges
                    .iter()
                    .flat_map(|&(o, n)| {
                        let interior = ((o + n) / a * a).saturating_sub(o.next_multiple_of(a));
                        (0..interior).step_by(CHUNK).map(move |c| CHUNK.min(interior - c))
                    })
                    .collect();
                let want: usize = chunks.iter().take(refuse_after.unwrap_or(usize::MAX)).sum();
                let got = direct.direct_bytes.load(Ordering::Relaxed) as usize;
                if direct_here {
                    assert_eq!(got, want, "bytes written directly, refusal after {refuse_after:?} chunks");
                    assert_eq!(direct.refused(), refuse_after.is_some(), "a refusal only where one was made");
                } else {
                    eprintln!("{}: this file system refuses direct writes; the buffered path alone is checked", path.display());
                }
            }
            // adjacent blocks of odd sizes from four threads: their edges share pages
            let sizes = [5000usize, 12_289, 4096, 70_001];
            let starts: Vec<usize> = sizes.iter().scan(333, |at, &n| Some(std::mem::replace(at, *at + n))).collect();
            std::thread::scope(|s| {
                for (&start, &n) in starts.iter().zip(&sizes) {
                    let (direct, buffered) = (&direct, &buffered);
                    s.spawn(move || direct.write_all_at(buffered, &vec![(n % 251) as u8 + 1; n], start as u64).unwrap());
                }
            });
            for (&start, &n) in starts.iter().zip(&sizes) {
                model[start..start + n].fill((n % 251) as u8 + 1);
            }
            assert_eq!(std::fs::read(&path).unwrap(), model, "concurrent blocks, refusal after {refuse_after:?} chunks");
            // `holds`: every range holds the model's bytes, and not once one byte of it (head,
            // interior or tail) is changed in the file
            for &(offset, n) in &ranges {
                assert!(direct.holds(&buffered, &model[offset..offset + n], offset as u64).unwrap(), "({offset}, {n})");
                for at in [offset, offset + n / 2, offset + n - 1] {
                    let old = model[at];
                    write_at(&buffered, &[old ^ 0x5a], at as u64).unwrap();
                    assert!(!direct.holds(&buffered, &model[offset..offset + n], offset as u64).unwrap(), "({offset}, {n}) changed at {at}");
                    write_at(&buffered, &[old], at as u64).unwrap();
                }
            }
            // past the page cache where direct reads are taken
            #[cfg(target_os = "linux")]
            if direct_here && refuse_after.is_none() {
                assert!(direct.direct_read_bytes() > 0, "no range was read directly");
            }
        }
    }
}
