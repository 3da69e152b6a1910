//! Large zeroed buffers advised onto the kernel's transparent huge pages.
//!
//! A fresh buffer is mapped zero pages until written; its first write to each page faults,
//! and on Linux a fault and its memory accounting cost the writing thread about 3 us, for
//! 4 KiB. A block's values (16 MB for bloch-1k, about 100 MB for the main job's blocks) are
//! written once each, so their faults are a few percent of a run's CPU. (The analysis' pooled
//! columns and ranks are not advised: advised, they cost the main job about 0.7 s more system
//! time than their faults saved, benches/RESULTS.md.) Where the kernel gives transparent huge
//! pages on request (its `enabled` setting `madvise` or `always`), a buffer advised onto them
//! faults 2 MiB at a time: 512 times fewer faults, the same zeroing.
//!
//! The advice stays with the addresses: a buffer of 4 to 32 MiB that glibc takes from its heap
//! (its mmap threshold rises as mapped buffers are freed) leaves them advised for what the heap
//! holds there later, which the kernel may then back with huge pages too (memory, not
//! contents). With the `defrag` setting `madvise`, a fault in advised memory may compact
//! memory first on a fragmented host.

/// Buffers from this size up are advised onto huge pages.
const ADVICE_FROM_BYTES: usize = 4 << 20;

/// The size of a transparent huge page (x86-64 and most arm64 kernels).
const HUGE_PAGE_BYTES: usize = 2 << 20;

/// `len` zeros in a fresh buffer, advised onto huge pages when it is large. Only advice: the
/// contents are zeros either way, and where the kernel gives no huge page, or the allocator
/// reused memory already touched, the faults are as they were.
pub fn zeroed_vec<T: bytemuck::Zeroable + Clone>(len: usize) -> Vec<T> {
    // (calloc: a large buffer comes as untouched zero pages)
    let buffer = vec![T::zeroed(); len];
    if std::mem::size_of_val(buffer.as_slice()) >= ADVICE_FROM_BYTES {
        advise(buffer.as_ptr() as usize, std::mem::size_of_val(buffer.as_slice()));
    }
    buffer
}

/// Advise the 2 MiB-aligned pages wholly inside [start, start + bytes) onto huge pages.
#[cfg(target_os = "linux")]
fn advise(start: usize, bytes: usize) {
    let (first, last) = (start.next_multiple_of(HUGE_PAGE_BYTES), (start + bytes) / HUGE_PAGE_BYTES * HUGE_PAGE_BYTES);
    if first < last {
        // SAFETY: [first, last) lies inside one live allocation of the caller's, and
        // MADV_HUGEPAGE changes how its pages are backed, never what they hold; a refusal (a
        // kernel without transparent huge pages) leaves them as they were and is ignored.
        unsafe {
            libc::madvise(first as *mut libc::c_void, last - first, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise(_start: usize, _bytes: usize) {}

#[cfg(test)]
mod tests {
    /// Zeros of the length asked, small and large (advised), of each element type used.
    #[test]
    fn buffers_are_zeros_of_their_length() {
        for len in [0, 1, 1000, (4 << 20) / 8 + 3, (8 << 20) / 8] {
            let values: Vec<f64> = super::zeroed_vec(len);
            assert_eq!(values.len(), len);
            assert!(values.iter().all(|v| v.to_bits() == 0));
            let ranks: Vec<u32> = super::zeroed_vec(2 * len);
            assert_eq!(ranks.len(), 2 * len);
            assert!(ranks.iter().all(|&r| r == 0));
        }
    }

    /// A large buffer's mapping carries the advice (`hg` in its VmFlags), where the kernel
    /// gives transparent huge pages.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_large_buffer_is_advised() {
        // (a kernel without them, set to never give them, or a process barred from them)
        let enabled = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        if enabled.is_empty() || enabled.contains("[never]") || status.lines().any(|l| l.replace(char::is_whitespace, "") == "THP_enabled:0") {
            return;
        }
        // the VmFlags of the mapping that holds `address` (None: smaps has no VmFlags, as
        // under some emulated kernels)
        let flags_at = |address: usize| -> Option<String> {
            let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
            let mut inside = false;
            for line in smaps.lines() {
                if let Some((range, _)) = line.split_once(' ').filter(|(r, _)| r.contains('-') && r.chars().all(|c| c.is_ascii_hexdigit() || c == '-')) {
                    let (lo, hi) = range.split_once('-').expect("a range");
                    inside = (usize::from_str_radix(lo, 16).unwrap()..usize::from_str_radix(hi, 16).unwrap()).contains(&address);
                } else if inside && line.starts_with("VmFlags:") {
                    return Some(line.to_string());
                }
            }
            None
        };
        let large: Vec<f64> = super::zeroed_vec(16 << 17);
        let middle = large.as_ptr() as usize + (8 << 20);
        if let Some(flags) = flags_at(middle) {
            assert!(flags.split_whitespace().any(|f| f == "hg"), "{flags}");
        }
    }
}
