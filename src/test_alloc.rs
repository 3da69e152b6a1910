//! Unit tests' allocator: the system's, counting the bytes each thread holds, so that a test can
//! weigh the structures it builds (`held_by`) against an estimate of them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static HELD: Cell<isize> = const { Cell::new(0) };
}

fn count(bytes: isize) {
    // (a thread being torn down has no counter left: not counted)
    let _ = HELD.try_with(|h| h.set(h.get() + bytes));
}

// SAFETY: every call goes to the system allocator as it came; the counter only adds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// `build()`'s value and the heap bytes it holds: what this thread allocated in `build` and had
/// not freed when it returned (build on this thread only: another thread's are not counted).
pub fn held_by<T>(build: impl FnOnce() -> T) -> (T, usize) {
    let before = HELD.with(Cell::get);
    let value = build();
    let after = HELD.with(Cell::get);
    (value, (after - before).max(0) as usize)
}
