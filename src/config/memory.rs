//! The memory check: a run is refused, naming the field that costs most, before any member
//! is allocated when its member list, parameter points, smallest result block, streamed
//! statistics or per-thread work space cannot fit in the available memory (`available_memory`).

use super::available_memory::{available_memory, size_need, size_text};
use crate::error::{QbatError, Result};
use crate::model::Space;

/// Refuse runs whose members, parameter points, smallest result block or per-thread work space
/// cannot fit in the available memory (MemAvailable, or a cgroup's headroom or the headroom under
/// `ulimit -v` or `ulimit -d` where less). Costs: a member
/// about 256 B in the member list; a block of 1,024 members its results (samples x measures
/// f64, and 16 state reals per sample when two-qubit eigen-solve measures are on), twice over;
/// the streamed statistics a cell per (sample, measure) with its quantile sketch, twice over
/// (the accumulator and its checkpoint); a point its operators (about 8 dim x dim complex
/// matrices) plus 4 KiB (parameters, the Pauli-basis generator): the most a point costs, as its
/// jumps and coupling are shared with the first point's only where they are the same matrices
/// (a sweep of g has its own coupling).
#[allow(clippy::too_many_arguments)]
pub fn check_memory(
    space: Space,
    members: usize,
    points: usize,
    samples: usize,
    measures: usize,
    keeps_states: bool,
    saved_dim: usize,
    size_field: &str,
    points_field: &str,
) -> Result<()> {
    let avail = available_memory();
    let available = avail.bytes;
    let under = avail.under();
    let dim = space.dim() as f64;
    // Reference work space: about 10 dim x dim complex matrices per worker thread.
    let per_thread = 10.0 * dim * dim * 16.0;
    let threads = rayon::current_num_threads() as f64;
    let work = per_thread * threads;
    // Runs stream their results block by block (study.rs), so a member costs its entry in the
    // member list, and the results of two smallest blocks (1,024 members; one integrated while
    // the one before is absorbed) must fit; the
    // two-qubit engines keep 16 state reals per sample only for the eigen-solve measures.
    let results_per_member = result_bytes_per_member(space, samples, measures, keeps_states, 0);
    // `--save-states`: blocks are sized to keep their results within the 1 GiB block budget
    // (study::block_members), so the saved states of a block count up to that, or one member's.
    let saved_member = result_bytes_per_member(space, samples, measures, keeps_states, saved_dim) - results_per_member;
    let saved_block = (members.min(1024) as f64 * saved_member).min(saved_member.max(2f64.powi(30)));
    let per_point = 8.0 * dim * dim * 16.0 + 4096.0;
    let block_bytes = 2.0 * (members.min(1024) as f64 * results_per_member + saved_block);
    let members_bytes = members as f64 * 256.0 + block_bytes;
    let points_bytes = points as f64 * per_point;
    // The streamed statistics: a cell per (sample, measure), about 1.1 KiB (the two fixed-point
    // sums) plus its quantile sketch, which holds at most one 8-byte bucket per member (about
    // 4,000 in practice).
    let cells = samples as f64 * measures as f64;
    let stats_bytes = cells * (1100.0 + 8.0 * members.min(4000) as f64) * 2.0;
    let per_sample_bytes = stats_bytes + block_bytes;
    // the field to name: whichever of samples, members and points costs most
    let (members_bytes, size_field) =
        if per_sample_bytes > members as f64 * 256.0 { (members_bytes + stats_bytes, "time.samples") } else { (members_bytes + stats_bytes, size_field) };
    let total = members_bytes + points_bytes;
    // (the state's size is named where its work space outweighs what grows with members and
    // samples: with almost nothing available, as under a tight `ulimit -v`, that field is)
    if work > available && work >= members_bytes {
        return Err(QbatError::TooLarge {
            field: "params.n_fock".into(),
            reason: format!("a {dim}x{dim} state needs {} of work space, more than the {} available{under}", size_need(work), size_text(available)),
        });
    }
    if total > avail.usable() {
        // (under a tight `ulimit -v` or `-d` the process and its threads may take it all)
        let raise = avail.limit.ulimit().map(|flag| format!("; or raise the limit ({flag})")).unwrap_or_default();
        return Err(QbatError::TooLarge {
            field: if points_bytes > members_bytes { points_field.into() } else { size_field.into() },
            reason: format!(
                "{members} members x {samples} samples x {measures} measures ({points} parameter points) need about {} in memory, more than 60% of the {} available{under}; {}{raise}",
                size_need(total),
                size_text(available),
                if points_bytes > members_bytes {
                    format!("each parameter point builds its own operators ({:.0} KiB): use fewer points, or split the run with --shard K/N (a shard builds only its members' points)", per_point / 1024.0)
                } else if size_field == "time.samples" {
                    "the streamed statistics and one block's results grow with samples x measures: select fewer samples or measures (output.measures)".to_string()
                } else {
                    "a member costs about 256 B in the member list: split the run with --shard K/N (a shard builds and checks only its own members) and merge the shards, or run fewer members".to_string()
                }
            ),
        });
    }
    Ok(())
}

/// Bytes a member's results take while its block is processed: samples x measures f64, plus 16
/// state reals per sample when two-qubit eigen-solve measures are on, plus the saved d x d
/// complex states of `--save-states` (`saved_dim` d, 0 without), twice over (the engine's
/// output and its assembly). Sizes blocks (study.rs) and the memory check.
pub fn result_bytes_per_member(space: Space, samples: usize, measures: usize, keeps_states: bool, saved_dim: usize) -> f64 {
    let states = if space == Space::TwoQubit && (keeps_states || saved_dim > 0) { 16.0 } else { 0.0 };
    let saved = 2.0 * (saved_dim * saved_dim) as f64;
    samples as f64 * (measures as f64 + states + saved) * 8.0 * 2.0
}
