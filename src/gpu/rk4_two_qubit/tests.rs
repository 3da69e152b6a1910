use super::*;
use crate::job::{Schedule, TwoQubitPoint};
use crate::measures::Measure;

#[test]
fn a_driven_piece_fits_the_loop_budget() {
    // the longest piece of a driven job: its full steps, a shortened step and a sample
    for nd in 1..=crate::job::drive::MAX_DRIVES as u64 {
        let cost = driven_step_cost(nd);
        let piece = Piece { n_full: driven_piece_steps(nd) as u32, sample: 0, h_last: 0.5, uncoupled: false, ends_segment: true };
        assert!(loop_cost(&piece, cost) <= LOOP_BUDGET, "{nd} drives: {} iterations", loop_cost(&piece, cost));
    }
}

fn job(members: usize, points: usize, samples: usize) -> TwoQubitJob {
    let times: Vec<f64> = (0..samples).map(|i| i as f64 * 0.1).collect();
    let p = TwoQubitPoint { generator: [0.0; 256], generator_off: None, h_battery: [0.0, 0.0, 0.0, 1.0], h_charger: [0.0; 4], dephasing: 0.0, drives: vec![] };
    TwoQubitJob {
        points: vec![p; points],
        member_point: (0..members).map(|i| (i % points) as u32).collect(),
        initial: vec![[0.0; 16]; members],
        schedule: Schedule::new(0.01, &times),
        measures: vec![Measure::EnergyB, Measure::Purity],
        keep_states: true,
    }
}

fn lavapipe_limits() -> wgpu::Limits {
    wgpu::Limits { max_storage_buffer_binding_size: 128 << 20, max_buffer_size: 2 << 30, ..wgpu::Limits::default() }
}

fn check_fits(j: &TwoQubitJob, chunks: &[Range<usize>], limits: &wgpu::Limits, precision: Precision) {
    let b = member_bytes(j, precision);
    let cap = limits.max_storage_buffer_binding_size;
    assert_eq!(chunks.first().map(|c| c.start), Some(0));
    assert_eq!(chunks.last().map(|c| c.end), Some(j.initial.len()));
    for w in chunks.windows(2) {
        assert_eq!(w[0].end, w[1].start);
    }
    for c in chunks {
        let m = c.len() as u64;
        assert!(m.div_ceil(64) <= limits.max_compute_workgroups_per_dimension as u64);
        for per in [b.values, b.states, b.work, b.init] {
            assert!(pad32(m * per) <= cap);
        }
        let pts = m.min(j.points.len() as u64);
        let n_pieces = plan_pieces(&j.schedule, STEPS_PER_PIECE).len() as u64;
        let tail = consts_tail(j.schedule.times.len() as u64, n_pieces) * precision.bytes();
        assert!(pad32(pts * b.point + tail) <= cap);
    }
}

#[test]
fn chunks_fit_the_limits() {
    let limits = lavapipe_limits();
    // 100k members x 2001 samples x 2 columns + states: values alone need chunking.
    let j = job(100_000, 1, 2001);
    for precision in [Precision::F32, Precision::F64] {
        let chunks = plan_chunks(&j, precision, &limits, None).unwrap();
        assert!(chunks.len() > 1);
        check_fits(&j, &chunks, &limits, precision);
    }
    // One point per member: the points bound the chunk.
    let j = job(200_000, 200_000, 2);
    let chunks = plan_chunks(&j, Precision::F64, &limits, None).unwrap();
    check_fits(&j, &chunks, &limits, Precision::F64);
    // Workgroup count: 65,535 x 64 members at most.
    let j = job(5_000_000, 1, 1);
    let chunks = plan_chunks(&j, Precision::F32, &limits, None).unwrap();
    assert!(chunks.iter().all(|c| c.len() <= 65_535 * 64));
    // Forced cap.
    let j = job(1000, 3, 5);
    let chunks = plan_chunks(&j, Precision::F32, &limits, Some(400)).unwrap();
    assert_eq!(chunks, vec![0..400, 400..800, 800..1000]);
}

#[test]
fn a_member_larger_than_a_buffer_is_an_error() {
    let limits = wgpu::Limits { max_storage_buffer_binding_size: 1 << 20, ..lavapipe_limits() };
    let j = job(10, 1, 100_000);
    assert!(matches!(plan_chunks(&j, Precision::F64, &limits, None), Err(QbatError::TooLarge { .. })));
}

#[test]
fn dispatches_cover_the_pieces() {
    let s = Schedule::new(0.01, &[0.0, 10.0, 10.005, 30.0]);
    let pieces = plan_pieces(&s, STEPS_PER_PIECE);
    for budget in [1, 500, 1024, 5000, u64::MAX] {
        let d = plan_dispatches(&pieces, budget, 2, LOOP_BUDGET);
        assert_eq!(d.first().unwrap().0, 0);
        assert_eq!(d.last().unwrap().1 as usize, pieces.len());
        for w in d.windows(2) {
            assert_eq!(w[0].1, w[1].0);
        }
    }
    assert_eq!(plan_dispatches(&pieces, u64::MAX, 2, LOOP_BUDGET).len(), 1);
}

/// The loop caps are a software adapter's: a GPU's dispatches are bounded by their
/// member-steps alone.
#[test]
fn loop_caps_bind_on_a_software_adapter_only() {
    // 2^25 member-steps over 64 members: 524,288 steps each, at most 32 x 4,096 on a GPU
    assert_eq!(dispatch_budgets(1 << 25, 64, false), (32 * MAX_STEPS_PER_DISPATCH, 32 * LOOP_BUDGET));
    assert_eq!(dispatch_budgets(1 << 25, 64, true), (MAX_STEPS_PER_DISPATCH, LOOP_BUDGET));
    // a large chunk: the member-steps bind on both, at one step at least
    assert_eq!(dispatch_budgets(1 << 25, 1 << 16, false).0, 512);
    assert_eq!(dispatch_budgets(1 << 25, 1 << 16, true).0, 512);
    assert_eq!(dispatch_budgets(1, 1 << 16, false).0, 1);
    // 100,000 steps of one sample: one dispatch on a GPU, many on a software adapter
    let s = Schedule::new(0.01, &[0.0, 1000.0]);
    let pieces = plan_pieces(&s, STEPS_PER_PIECE);
    let on = |software| {
        let (steps, loops) = dispatch_budgets(1 << 25, 64, software);
        plan_dispatches(&pieces, steps, 2, loops).len()
    };
    assert_eq!(on(false), 1);
    assert_eq!(on(true), 100_000usize.div_ceil(MAX_STEPS_PER_DISPATCH as usize));
    // driven steps (hundreds of loop iterations each) are bounded by the loop budget on a GPU too
    let cost = driven_step_cost(4);
    let (steps, loops) = dispatch_budgets(1 << 25, 64, false);
    let driven = plan_dispatches(&plan_pieces(&s, driven_piece_steps(4)), steps, cost, loops);
    assert!(driven.len() as u64 >= 100_000 * cost / loops, "{} dispatches", driven.len());
}
