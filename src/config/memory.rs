//! The memory check: a run is refused, naming the field that costs most, before any member
//! is allocated when its member list, parameter points, smallest result block, streamed
//! statistics or per-thread work space cannot fit in the available memory (`available_memory`).

use super::available_memory::{available_memory, size_need, size_text};
use crate::error::{QbatError, Result};
use crate::model::{ParamValue, Params, Space};
use std::mem::size_of;

/// What a run's parameter points are like beyond their number (`point_bytes`).
#[derive(Clone, Copy, Debug, Default)]
pub struct PointShape {
    /// Bytes of one point's parameters (`params_bytes`).
    pub params: f64,
    /// `[[drive]]`s (every point has each).
    pub drives: usize,
    /// `time.steady`: each point's solved state is kept, and nothing is integrated.
    pub steady: bool,
    /// `[protocol] switch_off`: a two-qubit point carries its uncoupled generator too.
    pub switch_off: bool,
    /// The GPU host's copies of a two-qubit point's constants are not counted: every backend
    /// but `--backend gpu` (`auto` is counted as the CPU engine, which it runs on a machine
    /// without a hardware GPU; with one, those copies are not in the check).
    pub cpu_only: bool,
}

/// Bytes a parameter point holds while its run goes: `each` for every point, and `in_slice`
/// more for each point of the two-qubit engines' slice (the CPU twin's) or chunk (the GPU's)
/// at hand, which holds the point's constants (`check_memory` counts how many points a slice
/// holds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PointBytes {
    pub each: f64,
    pub in_slice: f64,
}

/// The allocator's share over the operators a point keeps (peak RSS over sweeps of g, by the
/// slope in the points): a cavity-cells point 2.05 to 2.15 dim x dim complex matrices for the
/// two it keeps (dim 44, 64, 84), a two-qubit one a few small allocations more.
const OPERATOR_SLACK: f64 = 1.2;

/// dicke's: its build frees many temporaries around the two matrices it keeps, and glibc
/// leaves the gaps (2.4 to 2.75 matrices a point at dim 63 and 100; with each matrix mapped on
/// its own, `MALLOC_MMAP_THRESHOLD_=32768`, 2.05).
const DICKE_OPERATOR_SLACK: f64 = 1.375;

/// The plans that hold a point's parameters and drives at once: the parsed one, the study's
/// slice of it (`Plan::slice` clones them whole) and a block's (its members' points).
const PLAN_COPIES: f64 = 3.0;

/// An allocation's bytes with the allocator's header and rounding (glibc: 16-byte units, an
/// 8-byte header, 32 bytes at least); none for none.
fn allocated(bytes: usize) -> usize {
    if bytes == 0 {
        return 0;
    }
    (bytes + 8).next_multiple_of(16).max(32)
}

/// Bytes of one point's parameters as a `Params` map holds them: `base` and the keys of
/// `extra` it lacks (swept drive amplitudes, drawn values), each key's text and each value's
/// matrices, jump lists and text, and the B-tree's nodes (up to 11 entries each, and at least
/// 5 in a map of more than 11).
pub fn params_bytes<'a>(base: &Params, extra: impl IntoIterator<Item = &'a str>) -> f64 {
    let value = |v: &ParamValue| match v {
        ParamValue::Real(_) | ParamValue::Complex(_) => 0,
        ParamValue::Text(t) => allocated(t.len()),
        ParamValue::Matrix(m) => allocated(16 * m.len()),
        ParamValue::Jumps(j) => allocated(j.len() * size_of::<(crate::linalg::CMat, f64)>()) + j.iter().map(|(m, _)| allocated(16 * m.len())).sum::<usize>(),
    };
    let mut entries = base.len();
    let mut heap: usize = base.iter().map(|(k, v)| allocated(k.len()) + value(v)).sum();
    for k in extra.into_iter().filter(|k| !base.contains_key(*k)) {
        entries += 1;
        heap += allocated(k.len());
    }
    // a leaf (parent, index, length, 11 keys and values), an internal node adds 12 edges
    let node = allocated(16 + 11 * (size_of::<String>() + size_of::<ParamValue>()) + 12 * 8);
    let nodes = if entries <= 11 { 1 } else { 2 * entries.div_ceil(5) };
    (nodes * node + heap) as f64
}

/// Bytes one parameter point holds while its run goes (an upper bound: docs/interface.md,
/// "Memory limits"): the plan's operators (`OpenSystem`: H and the coupling, its own where a sweep
/// changes it; H_B and H_C; its jumps are the first point's, the same matrices; with
/// `time.steady` the solved state), with the allocator's slack; its parameters and drives in
/// each of the plans; and what the engine builds of it: a two-qubit point's job entry
/// (`TwoQubitPoint`: its Pauli-basis generator, the uncoupled one with a switch-off, each
/// drive's) and its Hamiltonian's spectrum for every point, and for a point of the slice at
/// hand a copy of that entry and the integrator's constants (the twin's, or the GPU host's
/// where the run may take a GPU); a cavity or dicke point's coefficients.
pub fn point_bytes(space: Space, shape: &PointShape) -> PointBytes {
    let matrix = |n: usize| (16 * n * n) as f64;
    let dim = space.dim();
    let (hb, hc) = match space {
        Space::Dicke { n_cells, n_fock } => (n_cells + 1, n_fock + 1),
        _ => (2, 2),
    };
    let own = if shape.steady { 3.0 } else { 2.0 };
    let system = size_of::<crate::model::OpenSystem>() + 256;
    let slack = if matches!(space, Space::Dicke { .. }) { DICKE_OPERATOR_SLACK } else { OPERATOR_SLACK };
    let operators = slack * (own * matrix(dim) + matrix(hb) + matrix(hc)) + system as f64;
    let drive = size_of::<crate::model::drive::Drive>() + 32;
    let plan = PLAN_COPIES * (shape.params + (allocated(shape.drives * drive) + 24 + 8) as f64);
    let (engine, in_slice) = match space {
        Space::TwoQubit if shape.steady => (0, 0),
        Space::TwoQubit => {
            use crate::job::two_qubit::{PointDrive, TwoQubitPoint};
            let switched = usize::from(shape.switch_off);
            let job_point = size_of::<TwoQubitPoint>() + switched * allocated(8 * 256) + allocated(shape.drives * size_of::<PointDrive>());
            // (a slice's copy, in a vector grown by doubling: up to twice the entry)
            let copy = job_point + size_of::<TwoQubitPoint>();
            let twin = crate::job::footprint::twin_point_bytes(shape.drives);
            let constants = if shape.cpu_only { twin } else { twin.max(crate::job::footprint::gpu_host_point_bytes(shape.drives)) };
            (job_point + 32, copy + (1 + switched) * constants)
        }
        Space::Cavity { .. } => {
            use crate::job::cavity::{CavityDrive, CavityPoint};
            (size_of::<CavityPoint>() + allocated(shape.drives * size_of::<CavityDrive>()), 0)
        }
        Space::Dicke { .. } => (size_of::<crate::job::dicke::DickeCoeffs>(), 0),
    };
    PointBytes { each: operators + plan + engine as f64, in_slice: in_slice as f64 }
}

/// Refuse runs whose members, parameter points, smallest result block or per-thread work space
/// cannot fit in the available memory (MemAvailable, or a cgroup's headroom or the headroom under
/// `ulimit -v` or `ulimit -d` where less). Costs: a member
/// about 256 B in the member list; a block of 1,024 members its results (samples x measures
/// f64, and 16 state reals per sample when two-qubit eigen-solve measures are on), twice over;
/// the streamed statistics a cell per (sample, measure) with its quantile sketch, twice over
/// (the accumulator and its checkpoint); a point what `point_bytes` says, and the points of a
/// two-qubit slice (all of them where the run may take a GPU) their constants.
#[allow(clippy::too_many_arguments)]
pub fn check_memory(
    space: Space,
    members: usize,
    points: usize,
    shape: &PointShape,
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
    let cost = point_bytes(space, shape);
    // the points whose constants a slice holds at once: every point where a GPU may take the
    // run (a chunk holds those its members use), else the twin's slice (its outputs at least
    // the kernel's columns, or 16 state reals a sample where eigen-solve measures keep them)
    let slice_points = if shape.cpu_only {
        let member_bytes = samples * 8 * if keeps_states { 16 } else { measures };
        points.min(crate::job::footprint::twin_slice_members(members, member_bytes, false))
    } else {
        points
    };
    let block_bytes = 2.0 * (members.min(1024) as f64 * results_per_member + saved_block);
    let members_bytes = members as f64 * 256.0 + block_bytes;
    let points_bytes = points as f64 * cost.each + slice_points as f64 * cost.in_slice;
    let per_point = points_bytes / points.max(1) as f64;
    let gpu_share = match space == Space::TwoQubit && !shape.steady && !shape.cpu_only {
        true => ", or --backend auto or cpu (the GPU host's copies of each point's constants are then not made)",
        false => "",
    };
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
                    format!("each parameter point holds its operators, parameters and the engine's constants (about {:.0} KiB): use fewer points, or split the run with --shard K/N (a shard builds only its members' points){gpu_share}", per_point / 1024.0)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_plan, Overrides, Plan};
    use crate::test_alloc::held_by;

    /// The shape the check is given for `plan` (the parse gives it from the base point and the
    /// swept names; the resolved point holds both).
    fn shape_of(plan: &Plan) -> PointShape {
        PointShape {
            params: params_bytes(&plan.points[0], []),
            drives: plan.drives[0].len(),
            steady: plan.steady,
            switch_off: plan.schedule.switch_off.is_some(),
            cpu_only: true,
        }
    }

    /// What the plans and the engine hold for point 1 of `plan`, built on this thread as the
    /// run builds it: its parameters and drives in each plan, its operators (sharing point 0's
    /// jumps and coupling where the same), and the engine's entry for it; then the copy a
    /// two-qubit slice makes of that entry.
    fn held_for_point(plan: &Plan) -> (usize, usize) {
        let (k, p) = (1, &plan.points[1]);
        let (_plans, in_plans) =
            held_by(|| (0..PLAN_COPIES as usize).map(|_| (p.clone(), plan.drives[k].clone(), plan.systems[k].clone())).collect::<Vec<_>>());
        let template = plan.model.build(&plan.points[0]).unwrap();
        let (system, heap) = held_by(|| {
            let mut s = plan.model.build(p).unwrap();
            s.share_with(&template);
            std::sync::Arc::new(s)
        });
        let operators = heap + size_of::<crate::model::OpenSystem>();
        let (engine, copy) = match plan.space {
            Space::TwoQubit if !plan.steady => {
                use crate::job::pauli;
                let (point, heap) = held_by(|| {
                    let mut q = pauli::point(&system);
                    q.drives = plan.drives[k].iter().map(pauli::point_drive).collect();
                    if plan.schedule.switch_segment().is_some() {
                        q.generator_off = Some(Box::new(pauli::generator(&system.uncoupled())));
                    }
                    q
                });
                let entry = size_of_val(&point) + heap;
                let (_copy, copy_heap) = held_by(|| point.clone());
                // (and its Hamiltonian's four eigenvalues)
                (entry + 32, size_of_val(&point) + copy_heap)
            }
            Space::Cavity { .. } => {
                let (_drives, heap) = held_by(|| crate::engine::cavity::cavity_drives(plan, k).unwrap());
                (size_of::<crate::job::cavity::CavityPoint>() + heap, 0)
            }
            _ => (0, 0),
        };
        (in_plans + operators + engine, copy)
    }

    /// The estimate of a point is no less than what a point of each kind of run holds when
    /// built (a sweep of the coupling, so that each point has its own H and coupling): two-qubit
    /// models plain, with drives and a switch-off, with custom matrices; cavity-cells with a
    /// drive; dicke; a steady run. (The old estimate, 8 dim x dim complex + 4 KiB, fell short
    /// of a two-qubit point's job entry and the constants the engines build from it.)
    #[test]
    fn a_point_holds_no_more_than_its_estimate() {
        let time = "[time]\ndt = 0.01\nt_end = 0.1\nsamples = 2\n";
        let drives = "[[drive]]\noperator = \"sx_b\"\namplitude = { linspace = [0.1, 0.5, 3] }\nfrequency = 1.0\n[[drive]]\noperator = \"sy_c\"\namplitude = 0.2\nfrequency = 1.0\n[protocol]\nswitch_off = 0.05\n";
        let custom = "model = \"two-qubit\"\n[params]\nhamiltonian = [[-2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.3, 0.0], [0.0, 0.3, 0.0, 0.0], [0.0, 0.0, 0.0, 2.0]]\nh_battery = [[-1.0, 0.0], [0.0, 1.0]]\nh_charger = [[-1.0, 0.0], [0.0, 1.0]]\njumps = [{ op = [[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]], rate = 0.05 }, { op = [[0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]], rate = 0.02 }]\n";
        let cases = [
            format!("model = \"bloch-charger\"\n[params]\nwb = 1.0\nj = {{ linspace = [0.5, 1.5, 3] }}\ngamma = 0.05\n{time}"),
            format!("model = \"bloch-charger\"\n[params]\nwb = 1.0\nj = 0.5\ngamma = 0.05\n{time}{drives}"),
            format!("{custom}{time}[[drive]]\noperator = \"sx_b\"\namplitude = {{ values = [0.1, 0.2] }}\nfrequency = 1.0\n"),
            format!("model = \"cavity-cells\"\n[params]\nwc = 1.0\nwq = 1.0\nlambda = 1.0\ng = {{ linspace = [0.1, 0.3, 3] }}\nzeta = 0.3\nkappa = 0.1\ngamma = 0.05\nn_fock = 6\n{time}[[drive]]\noperator = \"x_a\"\namplitude = 0.1\nfrequency = 1.0\n"),
            format!("model = \"dicke\"\n[params]\nn_cells = 4\nn_fock = 5\nwa = 1.0\nwc = 1.0\ng = {{ linspace = [0.02, 0.2, 3] }}\nkappa = 0.05\ngamma = 0.01\n{time}"),
            "model = \"bloch-charger\"\n[params]\nwb = 1.0\nj = { linspace = [0.5, 1.5, 3] }\ngamma = 0.05\n[time]\nsteady = true\n".to_string(),
        ];
        for text in &cases {
            let plan = parse_plan(text, &Overrides::default()).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert!(plan.points.len() >= 2, "{text}");
            let (each, copy) = held_for_point(&plan);
            let estimate = point_bytes(plan.space, &shape_of(&plan));
            assert!(each as f64 <= estimate.each, "{each} bytes held, {} estimated:\n{text}", estimate.each);
            // (the rest of a slice's share, the integrator's constants, is weighed in
            // twin::rk4_two_qubit's tests)
            assert!(copy as f64 <= estimate.in_slice, "a slice's copy of {copy} bytes, {} estimated:\n{text}", estimate.in_slice);
        }
    }
}
