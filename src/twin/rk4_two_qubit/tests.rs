//! Unit tests of `twin::rk4_two_qubit` (a file of their own to keep the twin short).

use super::*;
use crate::job::{Schedule, TwoQubitPoint};
use crate::measures::Measure;

#[test]
fn increment_is_the_rk4_update() {
    // For dx/dt = G x, one classical RK4 step equals x + D x.
    let mut g = [0.0; 256];
    for (i, v) in g.iter_mut().enumerate() {
        *v = ((i * 37 % 23) as f64 - 11.0) * 0.05;
    }
    let x: [f64; 16] = std::array::from_fn(|i| (i as f64 * 0.3).sin());
    let h = 0.01;
    let d = rk4_increment(&g, h);
    let via_d = matvec(&transpose(&d), &x);
    let via_stages = rk4_increment_stages(&transpose(&g), &x, h);
    for i in 0..16 {
        assert!((via_d[i] - via_stages[i]).abs() < 1e-16, "{i}");
    }
}

#[test]
fn vector_width_does_not_change_bits() {
    // The AVX2 and AVX-512 builds of the member loop must give the baseline's bits.
    let mut g = [0.0; 256];
    for (i, v) in g.iter_mut().enumerate() {
        *v = ((i * 37 % 23) as f64 - 11.0) * 0.05;
    }
    g[..16].fill(0.0);
    let point =
        TwoQubitPoint { generator: g, generator_off: None, h_battery: [0.1, 0.2, -0.3, 0.5], h_charger: [0.0, 0.0, 0.4, 0.6], dephasing: 0.05, drives: vec![] };
    let job = TwoQubitJob {
        points: vec![point],
        member_point: vec![0; 5],
        initial: (0..5).map(|m| std::array::from_fn(|i| if i == 0 { 1.0 } else { 0.1 * ((m + i) as f64).sin() })).collect(),
        schedule: Schedule::new(1e-2, &[0.0, 0.5, 0.777, 2.0]),
        measures: KERNEL_MEASURES.to_vec(),
        keep_states: true,
    };
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    // every level of vector instructions this CPU has against the portable build
    for isa in Isa::available() {
        let a = run_twin::<f32>(&job, isa, true, TwinBuffers::default(), None, &crate::twin::never_stop).0;
        let b = run_twin::<f32>(&job, Isa::Portable, true, TwinBuffers::default(), None, &crate::twin::never_stop).0;
        assert_eq!(bits(&a.values), bits(&b.values), "{isa:?}");
        assert_eq!(a.peaks, b.peaks, "{isa:?}");
        let a = run_twin::<f64>(&job, isa, true, TwinBuffers::default(), None, &crate::twin::never_stop).0;
        let b = run_twin::<f64>(&job, Isa::Portable, true, TwinBuffers::default(), None, &crate::twin::never_stop).0;
        assert_eq!(bits(&a.values), bits(&b.values), "{isa:?}");
        assert_eq!(bits(a.states.as_ref().unwrap()), bits(b.states.as_ref().unwrap()), "{isa:?}");
    }
    let a = run_twin::<f64>(&job, Isa::best(), true, TwinBuffers::default(), None, &crate::twin::never_stop).0;
    // Buffers of an earlier result, longer than this job's and holding NaN (kept where they
    // are reused), give the fresh buffers' bits: every entry is written.
    let spent = TwoQubitResult {
        measures: vec![],
        values: vec![f64::NAN; 3 * a.values.len()],
        states: Some(vec![f64::NAN; 3 * a.states.as_ref().unwrap().len()]),
        peaks: vec![],
    };
    let c = run_two_qubit_twin_reusing::<f64>(&job, TwinBuffers::from(spent), &crate::twin::never_stop);
    assert_eq!(bits(&a.values), bits(&c.values));
    assert_eq!(bits(a.states.as_ref().unwrap()), bits(c.states.as_ref().unwrap()));
    assert_eq!(a.peaks, c.peaks);
}

#[test]
fn arithmetic_log2() {
    for &x in &[1e-29, 1e-12, 0.003, 0.25, 0.5, 0.7, 0.71, 1.0, 1.3, 1.5, 2.0] {
        let got: f64 = log2_arith(x);
        assert!((got - x.log2()).abs() < 2e-15 * x.log2().abs().max(1.0), "{x}: {got}");
        let got32: f32 = log2_arith(x as f32);
        assert!((got32 as f64 - x.log2()).abs() < 1e-6 * x.log2().abs().max(1.0), "{x}: {got32}");
    }
}

#[test]
fn jacobi_eigenvalues() {
    let ev: [f64; 3] = sym3_eigenvalues(2.0, 0.3, -0.1, 1.0, 0.2, 0.5);
    let m = nalgebra::Matrix3::new(2.0, 0.3, -0.1, 0.3, 1.0, 0.2, -0.1, 0.2, 0.5);
    let mut want: Vec<f64> = m.symmetric_eigenvalues().iter().copied().collect();
    let mut got = ev.to_vec();
    want.sort_by(f64::total_cmp);
    got.sort_by(f64::total_cmp);
    for k in 0..3 {
        assert!((want[k] - got[k]).abs() < 1e-14);
    }
    // Degenerate and diagonal cases do not divide by zero.
    let ev: [f64; 3] = sym3_eigenvalues(1.0, 0.0, 0.0, 1.0, 0.0, 1.0);
    assert_eq!(ev, [1.0, 1.0, 1.0]);
    let ev: [f32; 3] = sym3_eigenvalues(1.0, 1e-30, 0.0, 1.0, 0.0, 0.0);
    assert!(ev.iter().all(|v| v.is_finite()));
}

/// `sym3_eigenvalues` against nalgebra on 10^5 symmetric matrices, in f64 and f32: T T^T of
/// random T (bell_chsh's matrix), and R diag(d) R^T with a random rotation R (from a unit
/// quaternion) and spectra that are degenerate (double, triple, zero), nearly so (1e-9 and
/// 1e-15 apart) or spread over many decades. The sweeps stop early, so a missed rotation
/// would show here. An entry negligible beside its diagonal is dropped exactly.
#[test]
fn jacobi_eigenvalues_match_nalgebra_on_random_and_degenerate_matrices() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(33);
    let (mut worst64, mut worst32) = (0.0f64, 0.0f64);
    for case in 0..100_000 {
        let m: nalgebra::Matrix3<f64> = if case % 2 == 0 {
            let t = nalgebra::Matrix3::from_fn(|_, _| rng.random_range(-1.0..1.0));
            t * t.transpose()
        } else {
            let q = nalgebra::UnitQuaternion::from_quaternion(nalgebra::Quaternion::new(
                rng.random_range(-1.0..1.0),
                rng.random_range(-1.0..1.0),
                rng.random_range(-1.0..1.0),
                rng.random_range(-1.0..1.0),
            ));
            let r = q.to_rotation_matrix().into_inner();
            let (a, b): (f64, f64) = (rng.random_range(0.0..1.0), rng.random_range(0.0..1.0));
            let d = match (case / 2) % 7 {
                0 => [a, a, b],
                1 => [a, b, b],
                2 => [a, a, a],
                3 => [0.0, 0.0, b],
                4 => [a, a * (1.0 + 1e-9), b],
                5 => [a, a * (1.0 + 1e-15), b],
                _ => [a, 1e-8 * b, 1e-16 * a],
            };
            r * nalgebra::Matrix3::from_diagonal(&nalgebra::Vector3::from(d)) * r.transpose()
        };
        let m = (m + m.transpose()) * 0.5;
        let mut want: Vec<f64> = m.symmetric_eigenvalues().iter().copied().collect();
        want.sort_by(f64::total_cmp);
        let scale = m.norm().max(f64::MIN_POSITIVE);
        let mut got = sym3_eigenvalues(m[(0, 0)], m[(0, 1)], m[(0, 2)], m[(1, 1)], m[(1, 2)], m[(2, 2)]).to_vec();
        got.sort_by(f64::total_cmp);
        // single precision: against the eigenvalues of the matrix as rounded to f32
        let m32 = m.map(|x| x as f32 as f64);
        let mut want32: Vec<f64> = m32.symmetric_eigenvalues().iter().copied().collect();
        want32.sort_by(f64::total_cmp);
        let e = |i: usize, j: usize| m[(i, j)] as f32;
        let mut got32: Vec<f64> = sym3_eigenvalues(e(0, 0), e(0, 1), e(0, 2), e(1, 1), e(1, 2), e(2, 2)).iter().map(|&x| x as f64).collect();
        got32.sort_by(f64::total_cmp);
        for k in 0..3 {
            worst64 = worst64.max((got[k] - want[k]).abs() / scale);
            worst32 = worst32.max((got32[k] - want32[k]).abs() / scale);
        }
    }
    assert!(worst64 < 1e-14, "f64: {worst64:e} of ||M||");
    assert!(worst32 < 1e-6, "f32: {worst32:e} of ||M||");
    // an off-diagonal entry below the rounding of its diagonal is dropped, not rotated (the
    // rotation would move the other eigenvalues' last bits)
    assert_eq!(sym3_eigenvalues(1.0, 1e-17, 0.5, 1.0, 0.25, 3.0), sym3_eigenvalues(1.0, 0.0, 0.5, 1.0, 0.25, 3.0));
}

#[test]
fn pieces_split_long_segments() {
    let s = Schedule::new(0.1, &[0.0, 1.0, 1.25]);
    let p = plan_pieces(&s, 4);
    assert_eq!(p.len(), 1 + 3 + 1);
    assert_eq!((p[0].n_full, p[0].sample), (0, 0));
    assert_eq!((p[1].n_full, p[1].sample), (4, NO_SAMPLE));
    assert_eq!((p[3].n_full, p[3].sample), (2, 1));
    assert_eq!((p[4].n_full, p[4].sample), (2, 2));
    assert!((p[4].h_last - 0.05).abs() < 1e-12);
}

/// A generator with zero rows (row 3), zero tiles and single-entry tiles, scaled by `scale`.
fn sparse_generator(seed: u64, keep_per_mille: u64, scale: f64) -> [f64; 256] {
    crate::twin::sparse_test_generator(seed, keep_per_mille, 3, scale)
}

#[test]
fn driven_members_in_lanes_give_the_bits_of_one_at_a_time() {
    use crate::job::drive::{DriveCoeffs, ENV_CONSTANT, ENV_GAUSSIAN, ENV_WINDOW};
    use crate::job::two_qubit::PointDrive;
    let drive = |seed, amplitude, env, a, b| PointDrive {
        generator: sparse_generator(seed, 150, 1.0),
        coeffs: DriveCoeffs { amplitude, frequency: 1.3, phase: 0.2, env, env_a: a, env_b: b },
    };
    let point = |seed, drives: Vec<PointDrive>, off: bool| TwoQubitPoint {
        generator: sparse_generator(seed, 250, 0.5),
        generator_off: off.then(|| Box::new(sparse_generator(seed + 7, 200, 0.5))),
        h_battery: [0.1, 0.2, -0.3, 0.5],
        h_charger: [0.0, 0.0, 0.4, 0.6],
        dephasing: 0.05,
        drives,
    };
    // Point 0: a constant and a gaussian drive; point 1: a window that opens and closes mid-run
    // (steps with every coefficient 0 take the undriven path in every lane); point 2 undriven.
    let points = vec![
        point(1, vec![drive(11, 0.4, ENV_CONSTANT, 0.0, 0.0), drive(12, 0.7, ENV_GAUSSIAN, 0.6, 0.2)], true),
        point(2, vec![drive(13, 0.5, ENV_WINDOW, 0.3, 0.9)], true),
        point(3, vec![], true),
    ];
    // Members as a sweep orders them (member m at point m % 3, so a point's members are not
    // consecutive): 11 of point 0 (two lane groups and three left over, one at a time), 9 of
    // point 1 (two groups and one left over), the undriven point one at a time.
    let mut member_point: Vec<u32> = (0..27).map(|m| m % 3).collect();
    member_point.extend([0, 0]);
    let n = member_point.len();
    let initial = |m: usize| -> [f64; 16] { std::array::from_fn(|i| if i == 0 { 1.0 } else { 0.1 * ((3 * m + i) as f64).sin() }) };
    // The first entry whose bits differ, if any.
    let differ = |a: &[f64], b: &[f64]| (a.len() != b.len()).then_some(usize::MAX).or_else(|| (0..a.len()).find(|&i| a[i].to_bits() != b[i].to_bits()));
    let same = |job: &TwoQubitJob, lanes: usize, pairs: usize, case: &str| {
        for isa in Isa::available() {
            let ((a, groups64), (b, _)) = (
                run_twin::<f64>(job, isa, true, TwinBuffers::default(), None, &crate::twin::never_stop),
                run_twin::<f64>(job, Isa::Portable, false, TwinBuffers::default(), None, &crate::twin::never_stop),
            );
            let ((c, groups32), (d, _)) = (
                run_twin::<f32>(job, isa, true, TwinBuffers::default(), None, &crate::twin::never_stop),
                run_twin::<f32>(job, Isa::Portable, false, TwinBuffers::default(), None, &crate::twin::never_stop),
            );
            let want = Groups { lanes, pairs };
            assert_eq!((groups64, groups32), (want, want), "lane groups and pairs ({case})");
            for (what, (a, b)) in [("f64", (&a, &b)), ("f32", (&c, &d))] {
                let case = format!("{what}, {isa:?} lanes against portable one at a time, {case}");
                assert_eq!(differ(&a.values, &b.values), None, "values differ ({case})");
                assert_eq!(a.states.is_some(), b.states.is_some());
                if let (Some(x), Some(y)) = (&a.states, &b.states) {
                    assert_eq!(differ(x, y), None, "states differ ({case})");
                }
                assert_eq!(a.peaks, b.peaks, "peaks differ ({case})");
            }
        }
    };
    for switch_off in [None, Some(0.8)] {
        let job = TwoQubitJob {
            points: points.clone(),
            member_point: member_point.clone(),
            initial: (0..n).map(initial).collect(),
            schedule: Schedule::with_switch_off(1e-2, &[0.0, 0.25, 0.5, 0.777, 1.0, 1.2], switch_off),
            measures: KERNEL_MEASURES.to_vec(),
            keep_states: true,
        };
        // (the measures include energy_fluctuation_b, whose Z keeps the undriven members
        // one at a time)
        same(&job, 4, 0, &format!("switch_off {switch_off:?}"));
        // No measure columns and no states (one-element dummies per member); no Z, so the
        // undriven point's 9 members run as 4 pairs and one alone.
        same(&TwoQubitJob { measures: vec![], keep_states: false, ..job.clone() }, 4, 4, "no outputs");
        // Without Z, with values and states: the driven points in lanes, the undriven one in
        // pairs, side by side.
        let no_z: Vec<Measure> = KERNEL_MEASURES.iter().copied().filter(|&m| m != Measure::EnergyFluctuationB).collect();
        same(&TwoQubitJob { measures: no_z, ..job.clone() }, 4, 4, "no Z");
        // Initial states with 0 and -0 entries, and one that is infinite in a lane group: its
        // group reruns one at a time (the twin's 0 * inf = NaN), the others stay in lanes.
        let mut odd = job.clone();
        odd.initial[3] = std::array::from_fn(|i| if i % 2 == 0 { 0.0 } else { -0.0 });
        odd.initial[6][5] = f64::INFINITY;
        same(&odd, 4, 0, "zero and infinite entries");
        // The drives move the states (so the comparison above is not of undriven runs).
        let undriven = TwoQubitJob { points: points.iter().map(|p| TwoQubitPoint { drives: vec![], ..p.clone() }).collect(), ..job.clone() };
        let (a, _) = run_twin::<f64>(&job, Isa::best(), true, TwinBuffers::default(), None, &crate::twin::never_stop);
        let (b, _) = run_twin::<f64>(&undriven, Isa::best(), true, TwinBuffers::default(), None, &crate::twin::never_stop);
        let moved = a.states.unwrap().iter().zip(b.states.as_ref().unwrap()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        assert!(moved > 1e-3, "drives moved the states by only {moved}");
    }
}

/// Undriven members run two at a time (`run_member_pair`) give the bits of one at a time: a
/// sweep's points interleaved (a pair's members have different points), an odd count (the
/// last member alone), a switch-off (the uncoupled pieces), shortened last steps, states
/// kept, and every kernel measure but the one that needs Z; in f64 and f32, at every level of
/// vector instructions this CPU has.
#[test]
fn undriven_members_in_pairs_give_the_bits_of_one_at_a_time() {
    let point = |seed| TwoQubitPoint {
        generator: sparse_generator(seed, 250, 0.5),
        generator_off: Some(Box::new(sparse_generator(seed + 7, 200, 0.5))),
        h_battery: [0.1, 0.2, -0.3, 0.5],
        h_charger: [0.0, 0.0, 0.4, 0.6],
        dephasing: 0.05,
        drives: vec![],
    };
    let n = 11;
    let measures: Vec<Measure> = KERNEL_MEASURES.iter().copied().filter(|&m| m != Measure::EnergyFluctuationB).collect();
    let job = TwoQubitJob {
        points: vec![point(1), point(2), point(3)],
        member_point: (0..n as u32).map(|m| m % 3).collect(),
        initial: (0..n).map(|m| std::array::from_fn(|i| if i == 0 { 1.0 } else { 0.1 * ((3 * m + i) as f64).sin() })).collect(),
        schedule: Schedule::with_switch_off(1e-2, &[0.0, 0.25, 0.5, 0.777, 1.0, 1.2], Some(0.8)),
        measures,
        keep_states: true,
    };
    assert_eq!(KernelFlags::for_job(&job).bits() & F_Z, 0, "a job without Z");
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for isa in Isa::available() {
        for f32_too in [false, true] {
            let run = |grouped| match f32_too {
                false => run_twin::<f64>(&job, isa, grouped, TwinBuffers::default(), None, &crate::twin::never_stop),
                true => run_twin::<f32>(&job, isa, grouped, TwinBuffers::default(), None, &crate::twin::never_stop),
            };
            let ((a, in_pairs), (b, alone)) = (run(true), run(false));
            assert_eq!((in_pairs, alone), (Groups { lanes: 0, pairs: 5 }, Groups::default()), "{isa:?}");
            assert_eq!(bits(&a.values), bits(&b.values), "values, {isa:?}, f32 {f32_too}");
            assert_eq!(bits(a.states.as_ref().unwrap()), bits(b.states.as_ref().unwrap()), "states, {isa:?}, f32 {f32_too}");
            assert_eq!(a.peaks, b.peaks, "peaks, {isa:?}, f32 {f32_too}");
        }
    }
}

/// A point's constants as `run_twin` builds them weigh no more than the memory check counts
/// for them (`job::footprint::twin_point_bytes`): without drives, with named ones (sparse
/// generators) and with a dense matrix.
#[test]
fn a_built_point_weighs_no_more_than_the_memory_check_counts() {
    use crate::config::{parse_plan, Overrides};
    use crate::job::footprint::twin_point_bytes;
    let base = "model = \"bloch-charger\"\n[params]\nwb = 1.0\nj = 0.7\ngamma = 0.05\n[time]\ndt = 0.01\nt_end = 0.1\nsamples = 2\n";
    let named = "[[drive]]\noperator = \"sx_b\"\namplitude = 0.3\nfrequency = 1.0\n[[drive]]\noperator = \"sy_c\"\namplitude = 0.2\nfrequency = 1.1\n";
    let dense = "[[drive]]\noperator = [[0.1, [0.2, 0.3], [0.4, -0.1], [0.5, 0.6]], [[0.2, -0.3], -0.2, [0.7, 0.8], [0.9, -0.4]], [[0.4, 0.1], [0.7, -0.8], 0.3, [1.1, 0.2]], [[0.5, -0.6], [0.9, 0.4], [1.1, -0.2], -0.5]]\namplitude = 0.3\nfrequency = 1.0\n";
    for (drives, text) in [(0, base.to_string()), (2, format!("{base}{named}")), (1, format!("{base}{dense}"))] {
        let plan = parse_plan(&text, &Overrides::default()).unwrap();
        // (point 0 as the engine's job holds it)
        let mut p = crate::job::pauli::point(&plan.systems[0]);
        p.drives = plan.drives[0].iter().map(crate::job::pauli::point_drive).collect();
        assert_eq!(p.drives.len(), drives);
        let k = KernelPoint::new(&p, plan.schedule.dt);
        let (built, heap) = crate::test_alloc::held_by(|| PointR::<f64>::new(&k).with_drives(&k, &p.drives));
        let weighs = std::mem::size_of_val(&built) + heap;
        assert!(weighs <= twin_point_bytes(drives), "{drives} drives: {weighs} bytes, counted {}", twin_point_bytes(drives));
    }
}

/// The stop flag is looked at as a member (a pair, a lane group) begins and once every
/// `STOP_EVERY` steps of it, counted across its pieces, on each of the twin's three loops (one
/// member, an undriven pair, a driven lane group); looks that find it unset change no bit; one
/// that finds it set ends the run at that look (one look a member), its outputs unfinished.
#[test]
fn the_stop_flag_is_looked_at_every_stop_every_steps_and_ends_the_members_there() {
    use crate::job::drive::{DriveCoeffs, ENV_CONSTANT};
    use crate::job::two_qubit::PointDrive;
    use crate::twin::STOP_EVERY;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let point = |drives: Vec<PointDrive>| TwoQubitPoint {
        generator: sparse_generator(5, 250, 0.5),
        generator_off: None,
        h_battery: [0.1, 0.2, -0.3, 0.5],
        h_charger: [0.0, 0.0, 0.4, 0.6],
        dephasing: 0.05,
        drives,
    };
    let driven = point(vec![PointDrive {
        generator: sparse_generator(6, 150, 1.0),
        coeffs: DriveCoeffs { amplitude: 0.4, frequency: 1.3, phase: 0.2, env: ENV_CONSTANT, env_a: 0.0, env_b: 0.0 },
    }]);
    // 3.5 looks' worth of steps (229,376), in pieces of 1,000 to 100,000 steps
    let schedule = Schedule::new(1e-3, &[0.0, 1.0, 101.0, 150.0, 229.376]);
    let total: u64 = schedule.total_steps();
    assert_eq!(total, 7 * STOP_EVERY as u64 / 2);
    let job = |p: TwoQubitPoint, members: usize, measures: Vec<Measure>| TwoQubitJob {
        points: vec![p],
        member_point: vec![0; members],
        initial: (0..members).map(|m| std::array::from_fn(|i| if i == 0 { 1.0 } else { 0.1 * ((m + i) as f64).sin() })).collect(),
        schedule: schedule.clone(),
        measures,
        keep_states: false,
    };
    let cases = [
        ("one member", job(point(vec![]), 1, KERNEL_MEASURES.to_vec()), 1, Groups::default()),
        ("a pair", job(point(vec![]), 2, vec![Measure::EnergyB, Measure::Purity]), 1, Groups { lanes: 0, pairs: 1 }),
        ("a lane group", job(driven, LANES, vec![Measure::EnergyB, Measure::Purity]), 1, Groups { lanes: 1, pairs: 0 }),
    ];
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for (case, job, groups, ran) in cases {
        let looks = AtomicUsize::new(0);
        let unset = || {
            looks.fetch_add(1, Ordering::SeqCst);
            false
        };
        let (looked, grouped) = run_twin::<f64>(&job, Isa::best(), true, TwinBuffers::default(), None, &unset);
        assert_eq!(grouped, ran, "{case}: not the loop meant");
        let (plain, _) = run_twin::<f64>(&job, Isa::best(), true, TwinBuffers::default(), None, &crate::twin::never_stop);
        assert_eq!(looks.load(Ordering::SeqCst), groups * 4, "{case}: looks of a run never stopped (as it begins, and three times)");
        assert_eq!(bits(&looked.values), bits(&plain.values), "{case}: the looks changed the values");
        assert_eq!(looked.peaks, plain.peaks, "{case}");
        let looks = AtomicUsize::new(0);
        let set = || {
            looks.fetch_add(1, Ordering::SeqCst);
            true
        };
        let (stopped, _) = run_twin::<f64>(&job, Isa::best(), true, TwinBuffers::default(), None, &set);
        assert_eq!(looks.load(Ordering::SeqCst), groups, "{case}: the members went on past a set flag");
        assert_ne!(bits(&stopped.values), bits(&plain.values), "{case}: a stopped run finished");
    }
}
