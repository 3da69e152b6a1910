//! What the two-qubit engines hold for each parameter point, and how many points the CPU
//! twin's slice holds at once: for the memory check (`config::memory::point_bytes`), which
//! counts them before any point is built. Upper bounds, weighed against points built as the
//! engines build them (`twin::rk4_two_qubit`'s tests, `config::memory`'s).

use super::two_qubit::{DRIVE_VEC4_PER_DRIVE, POINT_VEC4, TILE_TABLE, TILE_VEC4};

/// One 16x16 real matrix (a generator, an RK4 increment), in f64.
const MATRIX: usize = 256 * 8;

/// Members of one slice of the CPU twin (`engine::two_qubit`) of `n` members whose outputs
/// take `member_bytes` each: about 100 slices, each enough members to keep every thread busy:
/// the steps at which a run is cancelled and its progress drawn. Unless `fine` (a control or
/// a drawn bar), slices of at least SLICE_BYTES of outputs (a slice costs a plan, a fork and a
/// join: bloch-1k in 100 slices of 10 members ran about 6% slower than in one). A slice holds
/// the constants of its points.
pub fn twin_slice_members(n: usize, member_bytes: usize, fine: bool) -> usize {
    const SLICE_BYTES: usize = 4 << 20;
    let fewest = if fine { 1 } else { SLICE_BYTES / member_bytes.max(1) };
    n.div_ceil(100).max(fewest).max(4 * rayon::current_num_threads()).max(1)
}

/// The most heap one generator's lane entries take in the twin (`lanes::Entries`, dense): 256
/// entries in tiles (a column byte and an f64 each), 64 tile ends (u16), 16 rows, and 64 row
/// sums (collected in place from their sort's 24-byte items); each vector grown by doubling
/// from 4 or 8 a few items at a time, so to a power of two, at most these; an allocator's
/// header on each of the five.
const TWIN_ENTRIES: usize = 256 + 256 * 8 + 64 * 2 + 16 + 64 * 24 + 5 * 16;

/// The most bytes of one point's constants in the twin (`PointR<f64>`), one phase (coupled,
/// or uncoupled after a switch-off), with `drives` drives: the transposed RK4 increment and
/// generator and 40 more reals, three vector headers; with drives each drive's six numbers,
/// and for each generator (the point's own and each drive's) its sparse form (16 tiles of 16
/// and 21 bytes of tables), and its lane entries (five vector headers and `TWIN_ENTRIES`).
pub fn twin_point_bytes(drives: usize) -> usize {
    let generators = if drives == 0 { 0 } else { 1 + drives };
    let vectors = 3 * (24 + 16);
    2 * MATRIX + 40 * 8 + vectors + drives * 6 * 8 + generators * (MATRIX + 24 + 5 * 24 + TWIN_ENTRIES)
}

/// The most host bytes a GPU chunk (`gpu::rk4_two_qubit`) holds for each point it uploads, one
/// phase: its `KernelPoint` (two matrices and 13 reals); its row of the constants (POINT_VEC4
/// vec4s; with drives each generator's tiles, TILE_VEC4 vec4s, and each drive's numbers,
/// DRIVE_VEC4_PER_DRIVE vec4s), in a vector that may grow to twice that, then as bytes, then
/// in the upload's staging copy; its tile tables (TILE_TABLE u32s a generator) likewise; and
/// its eigen-solve constants (8 reals) likewise.
pub fn gpu_host_point_bytes(drives: usize) -> usize {
    let generators = if drives == 0 { 0 } else { 1 + drives };
    let reals = 4 * (POINT_VEC4 as usize + generators * TILE_VEC4 as usize + drives * DRIVE_VEC4_PER_DRIVE as usize) + 8;
    let lookup = generators * TILE_TABLE as usize;
    2 * MATRIX + 13 * 8 + 4 * (8 * reals + 4 * lookup)
}
