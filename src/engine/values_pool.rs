//! Spent value buffers of a streamed run's blocks, handed back for the next block. The blocks
//! are evenly sized, so the next block's values fit in the memory of one absorbed before it,
//! already faulted in; a fresh buffer costs a page fault per page written (per 4 KiB, about
//! 25,000 for the main job's 100 MB block), and its release an unmapping.
//!
//! Fresh buffers are plain zeroed memory, not advised onto transparent huge pages: on a
//! virtual machine whose host reclaims idle guest memory, a 2 MiB page is usually cold on
//! the host, and its first touch cost about 30 times that of 4 KiB pages (1.2 to 1.6 s
//! against 41 ms for 100 MB; the main job ran 1.3 s slower with the advice,
//! benches/RESULTS.md).

use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Buffers kept at most: with one device, one block is absorbed while the next integrates,
/// so one spent buffer is enough; a second serves a second device.
const KEEP: usize = 2;

#[derive(Debug, Default)]
pub struct ValuesPool {
    spent: Mutex<Vec<Vec<f64>>>,
    /// Whether an engine has asked for a buffer: until then none is kept (the engines that
    /// do not take from the pool would leave its buffers idle beside the blocks in flight).
    asked: AtomicBool,
}

impl ValuesPool {
    /// Keep a spent buffer (its contents are not read again), once an engine has asked for
    /// one and unless `KEEP` are kept already.
    pub fn put(&self, values: Vec<f64>) {
        if !self.asked.load(Ordering::Relaxed) {
            return;
        }
        let mut spent = self.spent.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if values.capacity() > 0 && spent.len() < KEEP {
            spent.push(values);
        }
    }

    /// Free the kept buffers (the pool stays usable).
    pub fn release(&self) {
        self.spent.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
    }

    /// `len` zeros: in a kept buffer large enough, else a fresh one (zero pages until written).
    pub fn zeroed(&self, len: usize) -> Vec<f64> {
        self.asked.store(true, Ordering::Relaxed);
        let kept = {
            let mut spent = self.spent.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            spent.iter().position(|v| v.capacity() >= len).map(|i| spent.swap_remove(i))
        };
        match kept {
            // (zeroed by every core: a block's buffer is hundreds of MB, and one core's
            // memset of it was a visible part of a GPU block's turn)
            Some(mut values) => {
                values.truncate(len);
                values.par_chunks_mut(1 << 16).for_each(|part| part.fill(0.0));
                values.resize(len, 0.0);
                values
            }
            None => vec![0.0; len],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nothing is kept before an engine asks; then a kept buffer comes back as zeros of the
    /// asked length, in the same memory; one too small is passed over, and no more than
    /// `KEEP` are kept.
    #[test]
    fn kept_buffers_come_back_zeroed() {
        let pool = ValuesPool::default();
        pool.put(vec![3.0; 100]);
        assert!(pool.spent.lock().unwrap().is_empty());
        assert_eq!(pool.zeroed(50), vec![0.0; 50]);
        let big = vec![f64::NAN; 1000];
        let address = big.as_ptr();
        pool.put(vec![1.0; 10]);
        pool.put(big);
        pool.put(vec![2.0; 5000]);
        assert_eq!(pool.spent.lock().unwrap().len(), KEEP);
        let got = pool.zeroed(600);
        assert_eq!(got, vec![0.0; 600]);
        assert_eq!(got.as_ptr(), address);
        // the small one is left; a fresh buffer is made
        let fresh = pool.zeroed(700);
        assert_eq!(fresh, vec![0.0; 700]);
        assert_eq!(pool.spent.lock().unwrap().len(), 1);
        pool.release();
        assert!(pool.spent.lock().unwrap().is_empty());
    }
}
