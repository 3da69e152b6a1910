//! The two-qubit GPU kernel against its CPU twin and against an independent f64 reference:
//! a matrix-form RK4 of the full 4x4 Lindblad equation with the measures taken from 4x4
//! matrices (eigen-solves, partial traces), written here from docs/physics.md.
//!
//! Without a GPU adapter the GPU tests print "skipping: no GPU adapter (...)" and pass, unless
//! QBAT_REQUIRE_GPU=1, where they fail. The twin-vs-reference checks always run.

use nalgebra::{Matrix3, Matrix4};
use qbat_gpu::error::QbatError;
use qbat_gpu::gpu::{run_two_qubit_gpu, run_two_qubit_gpu_with, GpuContext, GpuRunOptions, Precision};
use qbat_gpu::job::pauli::{point, to_pauli};
use qbat_gpu::job::two_qubit::{CHARGER_MEASURES, KERNEL_MEASURES};
use qbat_gpu::job::{Schedule, TwoQubitJob, TwoQubitResult, PEAK_MEASURES};
use qbat_gpu::linalg::{c, eigvals_hermitian, kron, pauli, reduced_battery, reduced_charger, sigma_z, CMat, C64};
use qbat_gpu::measures::Measure::{self, *};
use qbat_gpu::model::{resolve_params, ModelKind, OpenSystem, ParamValue, Params};
use qbat_gpu::twin::rk4_two_qubit::run_two_qubit_twin;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::sync::{Mutex, MutexGuard, OnceLock};

type M4 = Matrix4<C64>;

// ---- device -------------------------------------------------------------------------------

/// The process's context, with a guard that keeps the GPU tests from running at once (on a
/// software adapter they would only fight over the same cores).
fn gpu() -> Option<(&'static GpuContext, MutexGuard<'static, ()>)> {
    static CTX: OnceLock<Result<GpuContext, String>> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    match CTX.get_or_init(|| GpuContext::new(None, false).map_err(|e| e.to_string())) {
        Ok(ctx) => Some((ctx, LOCK.lock().unwrap_or_else(|p| p.into_inner()))),
        Err(e) => {
            if std::env::var("QBAT_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("QBAT_REQUIRE_GPU=1 but no GPU adapter: {e}");
            }
            eprintln!("skipping: no GPU adapter ({e})");
            None
        }
    }
}

// ---- random models and states --------------------------------------------------------------

fn u(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

fn random_matrix(rng: &mut ChaCha8Rng, n: usize, scale: f64) -> CMat {
    CMat::from_fn(n, n, |_, _| c(u(rng, -scale, scale), u(rng, -scale, scale)))
}

fn random_hermitian(rng: &mut ChaCha8Rng, n: usize, scale: f64) -> CMat {
    let a = random_matrix(rng, n, scale);
    (&a + a.adjoint()) * c(0.5, 0.0)
}

fn real(x: f64) -> ParamValue {
    ParamValue::Real(x)
}

fn random_system(kind: ModelKind, rng: &mut ChaCha8Rng) -> OpenSystem {
    let mut p = Params::new();
    match kind {
        ModelKind::SpinPair => {
            p.insert("wb".into(), real(u(rng, 0.5, 1.5)));
            p.insert("wc".into(), real(u(rng, 0.5, 1.5)));
            p.insert("j1".into(), real(u(rng, 0.0, 0.5)));
            p.insert("j2".into(), real(u(rng, 0.0, 0.5)));
            p.insert("dephasing".into(), real(u(rng, 0.0, 0.3)));
        }
        ModelKind::DrivenPair => {
            p.insert("delta".into(), real(u(rng, -0.5, 0.5)));
            p.insert("g".into(), real(u(rng, 0.5, 1.5)));
            p.insert("f".into(), real(u(rng, 0.0, 1.0)));
            p.insert("gamma".into(), real(u(rng, 0.0, 0.5)));
            p.insert("n_th".into(), real(u(rng, 0.0, 0.5)));
        }
        ModelKind::BlochCharger => {
            p.insert("wb".into(), real(u(rng, 0.5, 1.5)));
            p.insert("j".into(), real(u(rng, 0.5, 1.5)));
            p.insert("gamma".into(), real(u(rng, 0.0, 0.5)));
        }
        ModelKind::TwoQubit => {
            p.insert("hamiltonian".into(), ParamValue::Matrix(random_hermitian(rng, 4, 1.0)));
            let jumps = vec![(random_matrix(rng, 4, 0.5), u(rng, 0.0, 0.3)), (random_matrix(rng, 4, 0.5), u(rng, 0.0, 0.3))];
            p.insert("jumps".into(), ParamValue::Jumps(jumps));
            p.insert("h_battery".into(), ParamValue::Matrix(random_hermitian(rng, 2, 1.0)));
            p.insert("h_charger".into(), ParamValue::Matrix(random_hermitian(rng, 2, 1.0)));
        }
        ModelKind::CavityCells | ModelKind::Dicke => unreachable!("not a two-qubit model"),
    }
    let mut sys = kind.build(&resolve_params(kind, &p).expect("valid params")).expect("model builds");
    if kind == ModelKind::TwoQubit {
        // Exercise the sample channel with a general H_B as well.
        sys.dephasing = 0.1;
    }
    sys
}

fn random_state(rng: &mut ChaCha8Rng, pure: bool) -> CMat {
    if pure {
        let psi: Vec<C64> = (0..4).map(|_| c(u(rng, -1.0, 1.0), u(rng, -1.0, 1.0))).collect();
        let n: f64 = psi.iter().map(|z| z.norm_sqr()).sum::<f64>().sqrt();
        let psi: Vec<C64> = psi.iter().map(|z| z / n).collect();
        CMat::from_fn(4, 4, |i, j| psi[i] * psi[j].conj())
    } else {
        let a = random_matrix(rng, 4, 1.0);
        let r = &a * a.adjoint();
        let t = r.trace();
        r / t
    }
}

// ---- the independent reference -------------------------------------------------------------

fn m4(a: &CMat) -> M4 {
    M4::from_fn(|i, j| a[(i, j)])
}

fn cmat(a: &M4) -> CMat {
    CMat::from_fn(4, 4, |i, j| a[(i, j)])
}

/// L[X] = -i (Heff X - X Heff^+) + sum_k L_k X L_k^+, Heff = H - (i/2) sum_k L_k^+ L_k
/// (rates folded into L_k).
struct Lindblad {
    heff: M4,
    heff_dag: M4,
    jumps: Vec<(M4, M4)>,
}

impl Lindblad {
    fn new(sys: &OpenSystem) -> Self {
        let mut heff = m4(&sys.hamiltonian);
        let mut jumps = vec![];
        for j in &sys.jumps {
            let l = m4(&j.op) * c(j.rate.sqrt(), 0.0);
            let ld = l.adjoint();
            heff -= (ld * l) * c(0.0, 0.5);
            jumps.push((l, ld));
        }
        Lindblad { heff, heff_dag: heff.adjoint(), jumps }
    }

    fn apply(&self, x: &M4) -> M4 {
        let mut out = (self.heff * x - x * self.heff_dag) * c(0.0, -1.0);
        for (l, ld) in &self.jumps {
            out += l * x * ld;
        }
        out
    }

    fn rk4(&self, x: &M4, h: f64) -> M4 {
        let k1 = self.apply(x);
        let k2 = self.apply(&(x + k1 * c(h / 2.0, 0.0)));
        let k3 = self.apply(&(x + k2 * c(h / 2.0, 0.0)));
        let k4 = self.apply(&(x + k3 * c(h, 0.0)));
        x + (k1 + k2 * c(2.0, 0.0) + k3 * c(2.0, 0.0) + k4) * c(h / 6.0, 0.0)
    }
}

/// Paper 000's two-qubit phase-flip channel in Kraus form.
fn dephase(x: &M4, p: f64) -> M4 {
    if p == 0.0 {
        return *x;
    }
    let id = M4::identity();
    let z = sigma_z();
    let zi = m4(&kron(&z, &pauli(0)));
    let iz = m4(&kron(&pauli(0), &z));
    let zz = m4(&kron(&z, &z));
    let a = (1.0 - p) * (1.0 - p);
    let b = p * (1.0 - p);
    (id * x * id) * c(a, 0.0) + (iz * x * iz + zi * x * zi) * c(b, 0.0) + (zz * x * zz) * c(p * p, 0.0)
}

fn re_tr(a: &CMat, b: &CMat) -> f64 {
    (a * b).trace().re
}

/// eps_i (lam_i - lam_{d-1-i}) style sums for a 2x2 state against a 2x2 Hamiltonian:
/// (energy, ergotropy, antiergotropy, capacity).
fn battery_resources(rho: &CMat, h: &CMat) -> (f64, f64, f64, f64) {
    let lam = eigvals_hermitian(rho);
    let eps = eigvals_hermitian(h);
    let e = re_tr(rho, h);
    let passive = eps[0] * lam[1] + eps[1] * lam[0];
    let active = eps[0] * lam[0] + eps[1] * lam[1];
    (e, e - passive, e - active, active - passive)
}

/// Every kernel measure from 4x4 matrices, by KERNEL_MEASURES index. rho, y (= e^{Lt}[H_B rho0])
/// and their t = 0 values have been through the sample channel already.
fn reference_measures(rho: &M4, y: &M4, rho0: &M4, y0: &M4, t: f64, sys: &OpenSystem) -> Vec<f64> {
    let r = cmat(rho);
    let rb = reduced_battery(&r);
    let rc = reduced_charger(&r);
    let hb = &sys.h_battery;
    let hb2 = hb * hb;
    let (e_b, ergo, anti, cap_b) = battery_resources(&rb, hb);
    let (_, _, _, cap_c) = battery_resources(&rc, &sys.h_charger);
    let e_c = re_tr(&rc, &sys.h_charger);
    let rb0 = reduced_battery(&cmat(rho0));
    let stored = e_b - re_tr(&rb0, hb);
    let hb_full = kron(&pauli(0), hb);
    // Sigma^2 = Tr(H_B^2 rho_b) - 2 Re Tr(H_B Y) + Tr(H_B^2 rho_b(0)) - stored^2. Its terms cancel
    // to O(1) at t = 0 (Tr(H_B Y(0)) = Tr(H_B^2 rho(0))), and the square root would turn that
    // rounding into 1e-8: take the terms as differences from t = 0 instead.
    let s2 = re_tr(&(&rb - &rb0), &hb2) - 2.0 * re_tr(&hb_full, &cmat(&(y - y0))) - stored * stored;
    let tmat = Matrix3::from_fn(|i, j| re_tr(&r, &kron(&pauli(i + 1), &pauli(j + 1))));
    let mut u: Vec<f64> = (tmat.transpose() * tmat).symmetric_eigenvalues().iter().copied().collect();
    u.sort_by(f64::total_cmp);
    let mut coh = 0.0;
    let mut ima = 0.0;
    for i in 0..4 {
        for j in 0..4 {
            if i != j {
                coh += rho[(i, j)].norm();
                ima += rho[(i, j)].im.abs();
            }
        }
    }
    let plus = CMat::from_element(2, 2, c(0.5, 0.0));
    let texture = 0.5 * eigvals_hermitian(&(&rb - plus)).iter().map(|l| l.abs()).sum::<f64>();
    let entropy: f64 = eigvals_hermitian(&rb).iter().filter(|&&l| l > 1e-30).map(|&l| -l * l.log2()).sum();
    // Charger mirrors from rho_c and H_C; <s-> = Tr(rho s-) with s- = |g><e| on one qubit.
    let hc = &sys.h_charger;
    let (_, ergo_c, anti_c, _) = battery_resources(&rc, hc);
    let plus_c = CMat::from_element(2, 2, c(0.5, 0.0));
    let texture_c = 0.5 * eigvals_hermitian(&(&rc - plus_c)).iter().map(|l| l.abs()).sum::<f64>();
    let sm = CMat::from_row_slice(2, 2, &[c(0.0, 0.0), c(1.0, 0.0), c(0.0, 0.0), c(0.0, 0.0)]);
    let sm_b = (&r * kron(&pauli(0), &sm)).trace();
    let sm_c = (&r * kron(&sm, &pauli(0))).trace();
    KERNEL_MEASURES
        .iter()
        .map(|m| match m {
            EnergyB => e_b,
            EnergyC => e_c,
            StoredEnergyB => stored,
            ErgotropyB => ergo,
            AntiergotropyB => anti,
            CapacityB => cap_b,
            CapacityC => cap_c,
            PowerB => {
                if t > 0.0 {
                    stored / t
                } else {
                    0.0
                }
            }
            ErgotropicPowerB => {
                if t > 0.0 {
                    ergo / t
                } else {
                    0.0
                }
            }
            EnergyVarianceB => re_tr(&rb, &hb2) - e_b * e_b,
            EnergyFluctuationB => {
                if s2 >= 0.0 {
                    s2.sqrt()
                } else {
                    -(-s2).sqrt()
                }
            }
            SteeringF3 => (tmat * tmat.transpose()).trace() - 1.0,
            BellChsh => 2.0 * (u[1] + u[2]).sqrt() - 2.0,
            CoherenceL1 => coh,
            ImaginarityL1 => ima,
            TextureB => texture,
            Purity => (rho * rho).trace().re,
            EntropyB => entropy,
            TraceError => (rho.trace().re - 1.0).abs(),
            TextureC => texture_c,
            ErgotropyC => ergo_c,
            AntiergotropyC => anti_c,
            EnergyVarianceC => re_tr(&rc, &(hc * hc)) - e_c * e_c,
            SmBRe => sm_b.re,
            SmBIm => sm_b.im,
            SmCRe => sm_c.re,
            SmCIm => sm_c.im,
            other => panic!("{other:?} is not a kernel measure"),
        })
        .collect()
}

/// values[(member * n_samples + sample) * KERNEL_MEASURES.len() + code] and the sample states (Pauli basis).
struct Reference {
    values: Vec<f64>,
    states: Vec<[f64; 16]>,
}

fn reference(systems: &[OpenSystem], job: &TwoQubitJob, rho0: &[CMat]) -> Reference {
    let n_samples = job.schedule.times.len();
    let per: Vec<(Vec<f64>, Vec<[f64; 16]>)> = (0..rho0.len())
        .into_par_iter()
        .map(|m| {
            let sys = &systems[job.member_point[m] as usize];
            let lind = Lindblad::new(sys);
            let r0 = m4(&rho0[m]);
            let hb_full = m4(&kron(&pauli(0), &sys.h_battery));
            let mut rho = r0;
            let mut y = hb_full * r0;
            let p = sys.dephasing;
            let r0s = dephase(&r0, p);
            let y0s = dephase(&y, p);
            let mut vals = Vec::with_capacity(n_samples * KERNEL_MEASURES.len());
            let mut states = Vec::with_capacity(n_samples);
            for (s, seg) in job.schedule.segments.iter().enumerate() {
                for _ in 0..seg.n_full {
                    rho = lind.rk4(&rho, job.schedule.dt);
                    y = lind.rk4(&y, job.schedule.dt);
                }
                if seg.h_last > 0.0 {
                    rho = lind.rk4(&rho, seg.h_last);
                    y = lind.rk4(&y, seg.h_last);
                }
                let rs = dephase(&rho, p);
                vals.extend(reference_measures(&rs, &dephase(&y, p), &r0s, &y0s, job.schedule.times[s], sys));
                states.push(to_pauli(&cmat(&rs)));
            }
            (vals, states)
        })
        .collect();
    let mut out = Reference { values: vec![], states: vec![] };
    for (v, s) in per {
        out.values.extend(v);
        out.states.extend(s);
    }
    out
}

// ---- the cases ----------------------------------------------------------------------------

const MODELS: [ModelKind; 4] = [ModelKind::SpinPair, ModelKind::DrivenPair, ModelKind::BlochCharger, ModelKind::TwoQubit];
const MEMBERS: usize = 64;
const POINTS: usize = 4;

struct Case {
    kind: ModelKind,
    job: TwoQubitJob,
    reference: Reference,
}

/// The sample times: 10,000 RK4 steps of 1e-3 in all, with shortened steps at t = e and
/// after it, and a sample at t = 0.
fn schedule() -> Schedule {
    Schedule::new(1e-3, &[0.0, 0.25, 1.0, std::f64::consts::E, 5.0, 7.5, 10.0])
}

fn build_case(kind: ModelKind, seed: u64) -> Case {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let systems: Vec<OpenSystem> = (0..POINTS).map(|_| random_system(kind, &mut rng)).collect();
    let rho0: Vec<CMat> = (0..MEMBERS).map(|i| random_state(&mut rng, i < MEMBERS / 2)).collect();
    // Columns in an order other than the kernel's, to exercise the column mapping.
    let measures: Vec<Measure> = KERNEL_MEASURES.iter().rev().copied().collect();
    let job = TwoQubitJob {
        points: systems.iter().map(point).collect(),
        member_point: (0..MEMBERS).map(|i| (i % POINTS) as u32).collect(),
        initial: rho0.iter().map(to_pauli).collect(),
        schedule: schedule(),
        measures,
        keep_states: true,
    };
    assert!(job.schedule.total_steps() >= 10_000);
    let reference = reference(&systems, &job, &rho0);
    Case { kind, job, reference }
}

fn cases() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| MODELS.iter().enumerate().map(|(k, &kind)| build_case(kind, 100 + k as u64)).collect())
}

// ---- comparisons --------------------------------------------------------------------------

/// Largest |a - b| per output column (NaN counts as infinitely far unless both are NaN).
fn column_deviation(a: &TwoQubitResult, b: &TwoQubitResult) -> Vec<(Measure, f64)> {
    let n = a.measures.len();
    let mut dev = vec![0.0f64; n];
    for (i, (x, y)) in a.values.iter().zip(&b.values).enumerate() {
        let d = if x.is_nan() && y.is_nan() {
            0.0
        } else if x.is_nan() || y.is_nan() {
            f64::INFINITY
        } else {
            (x - y).abs()
        };
        dev[i % n] = dev[i % n].max(d);
    }
    a.measures.iter().copied().zip(dev).collect()
}

/// Largest deviation per measure of a result from the reference, the states included.
fn deviation_from_reference(case: &Case, res: &TwoQubitResult) -> (Vec<(Measure, f64)>, f64) {
    let n_cols = res.measures.len();
    let n_codes = KERNEL_MEASURES.len();
    let mut dev = vec![0.0f64; n_cols];
    for (row, chunk) in res.values.chunks_exact(n_cols).enumerate() {
        for (k, (v, m)) in chunk.iter().zip(&res.measures).enumerate() {
            let code = KERNEL_MEASURES.iter().position(|x| x == m).unwrap();
            let want = case.reference.values[row * n_codes + code];
            let d = (v - want).abs();
            dev[k] = if d.is_nan() { f64::INFINITY } else { dev[k].max(d) };
        }
    }
    let mut sdev = 0.0f64;
    let states = res.states.as_ref().expect("keep_states");
    for (got, want) in states.chunks_exact(16).zip(&case.reference.states) {
        for i in 0..16 {
            sdev = sdev.max(crate::common::deviation(got[i], want[i]));
        }
    }
    (res.measures.iter().copied().zip(dev).collect(), sdev)
}

/// Peaks: the max agrees within tol, and the chosen sample's reference value is within tol of
/// the reference max (ties may break either way in f32).
fn check_peaks(case: &Case, res: &TwoQubitResult, tol: f64, label: &str) {
    let n_samples = case.job.schedule.times.len();
    let n_codes = KERNEL_MEASURES.len();
    for m in 0..MEMBERS {
        for (k, pm) in PEAK_MEASURES.iter().enumerate() {
            let code = KERNEL_MEASURES.iter().position(|x| x == pm).unwrap();
            let series: Vec<f64> = (0..n_samples).map(|s| case.reference.values[(m * n_samples + s) * n_codes + code]).collect();
            let want = series.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let peak = res.peaks[m * 4 + k];
            assert!((peak.max - want).abs() <= tol, "{label} {:?} member {m} peak {}: {} vs {want}", case.kind, pm.name(), peak.max);
            let s = case.job.schedule.times.iter().position(|&t| t == peak.t_max).expect("t_max is a sample time");
            assert!(series[s] >= want - tol, "{label} {:?} member {m} t_max {}", case.kind, pm.name());
        }
    }
}

fn report(label: &str, kind: ModelKind, dev: &[(Measure, f64)], sdev: f64) -> f64 {
    let worst = dev.iter().map(|d| d.1).fold(sdev, f64::max);
    let cols: Vec<String> = dev.iter().map(|(m, d)| format!("{}={d:.1e}", m.name())).collect();
    eprintln!("{label} {:<13} max {worst:.2e} (states {sdev:.1e}): {}", kind.name(), cols.join(" "));
    worst
}

fn assert_within(label: &str, case: &Case, res: &TwoQubitResult, tol: f64) {
    let (dev, sdev) = deviation_from_reference(case, res);
    let worst = report(label, case.kind, &dev, sdev);
    for (m, d) in &dev {
        assert!(*d <= tol, "{label} {:?}: {} deviates by {d:.3e} > {tol:.0e}", case.kind, m.name());
    }
    assert!(sdev <= tol, "{label} {:?}: states deviate by {sdev:.3e}", case.kind);
    assert!(worst <= tol);
    check_peaks(case, res, tol, label);
}

// ---- tests --------------------------------------------------------------------------------

#[test]
fn twin_matches_reference() {
    for case in cases() {
        assert_within("twin f64 vs reference", case, &run_two_qubit_twin::<f64>(&case.job), 1e-9);
        assert_within("twin f32 vs reference", case, &run_two_qubit_twin::<f32>(&case.job), 1e-4);
    }
}

/// The kernel and its twin skip the groups of measures that no column asks for (F_CHARGER,
/// F_TEXTURE, F_BELL, ...). On the twin: a job asking for one measure matches the reference,
/// and gets the bits of that measure's column, and the same peaks, as a job asking for all of
/// them.
#[test]
fn each_measure_alone_gives_the_bits_of_the_full_job() {
    fn check<R: qbat_gpu::twin::Real>(case: &Case, tol: f64) {
        let full = run_two_qubit_twin::<R>(&case.job);
        for (k, &m) in full.measures.iter().enumerate() {
            let alone = run_two_qubit_twin::<R>(&TwoQubitJob { measures: vec![m], ..case.job.clone() });
            assert_within(&format!("twin alone ({})", m.name()), case, &alone, tol);
            assert_columns_have_the_bits_of(&alone, &full, &[k], &format!("{:?} {}", case.kind, m.name()));
        }
    }
    // (the cases, whose reference is built in parallel, before the pool of one thread)
    let cases = cases();
    // On one thread: 216 one-measure runs of 64 members, whose rayon joins beside the
    // software adapter's threads (the GPU tests of this binary) made the whole binary
    // several times slower.
    let one_thread = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("a pool");
    one_thread.install(|| {
        for case in cases {
            assert_eq!(case.job.measures.len(), KERNEL_MEASURES.len(), "the full job asks for every kernel measure");
            check::<f64>(case, 1e-9);
            check::<f32>(case, 1e-4);
        }
    });
}

/// `part`'s columns are `whole`'s columns `cols`, bit for bit, and its peaks the same.
fn assert_columns_have_the_bits_of(part: &TwoQubitResult, whole: &TwoQubitResult, cols: &[usize], label: &str) {
    let n = whole.measures.len();
    for (j, &k) in cols.iter().enumerate() {
        let want: Vec<u64> = whole.values.iter().skip(k).step_by(n).map(|v| v.to_bits()).collect();
        let got: Vec<u64> = part.values.iter().skip(j).step_by(cols.len()).map(|v| v.to_bits()).collect();
        assert!(got == want, "{label}: column {} differs from the full job's", whole.measures[k].name());
    }
    let peaks = |r: &TwoQubitResult| r.peaks.iter().map(|p| (p.max.to_bits(), p.t_max.to_bits())).collect::<Vec<_>>();
    assert_eq!(peaks(part), peaks(whole), "{label}: peaks");
}

/// The same on the device: jobs asking only for one flagged group's measures match the
/// reference, with the bits of the full job's columns. Each group on one model in turn, every
/// model taking a few (which measures a job computes does not depend on the model; each job is
/// a pipeline compiled on lavapipe).
#[test]
fn gpu_jobs_of_a_few_measures_match_the_reference_and_the_full_job() {
    let Some((ctx, _guard)) = gpu() else { return };
    let groups = [
        vec![TextureB],
        CHARGER_MEASURES.to_vec(),
        vec![EnergyB, CapacityC],
        vec![BellChsh],
        vec![CoherenceL1, ImaginarityL1],
        vec![EntropyB],
        vec![EnergyFluctuationB],
    ];
    assert!(groups.len() >= cases().len(), "every model takes a group");
    for (c, case) in cases().iter().enumerate() {
        let full = run_two_qubit_gpu(ctx, &case.job, Precision::F32, &|_| Ok(())).expect("f32 run");
        for measures in groups.iter().skip(c).step_by(cases().len()) {
            let job = TwoQubitJob { measures: measures.clone(), ..case.job.clone() };
            let res = run_two_qubit_gpu(ctx, &job, Precision::F32, &|_| Ok(())).expect("f32 run");
            assert_within("gpu f32 (a few measures) vs reference", case, &res, 1e-4);
            let cols: Vec<usize> = measures.iter().map(|m| case.job.measures.iter().position(|x| x == m).expect("in the full job")).collect();
            assert_columns_have_the_bits_of(&res, &full, &cols, &format!("gpu f32 {:?} {measures:?}", case.kind));
        }
    }
}

#[test]
fn gpu_matches_twin_and_reference() {
    let Some((ctx, _guard)) = gpu() else { return };
    eprintln!("adapter: {} ({}, {}), f64: {}", ctx.info.name, ctx.info.backend, ctx.info.device_type, ctx.info.has_f64);
    for case in cases() {
        let f32_res = run_two_qubit_gpu(ctx, &case.job, Precision::F32, &|_| Ok(())).expect("f32 run");
        assert_within("gpu f32 vs reference", case, &f32_res, 1e-4);
        if ctx.info.has_f64 {
            let f64_res = run_two_qubit_gpu(ctx, &case.job, Precision::F64, &|_| Ok(())).expect("f64 run");
            assert_within("gpu f64 vs reference", case, &f64_res, 1e-9);
            let twin = run_two_qubit_twin::<f64>(&case.job);
            let worst = column_deviation(&f64_res, &twin).iter().map(|d| d.1).fold(0.0, f64::max);
            eprintln!("gpu f64 vs twin f64 {:<13} max {worst:.2e}", case.kind.name());
            assert!(worst <= 1e-11);
        } else {
            crate::common::no_f64("the f64 comparison");
        }
    }
}

#[test]
fn gpu_f32_matches_twin_f32() {
    let Some((ctx, _guard)) = gpu() else { return };
    for case in cases() {
        let g = run_two_qubit_gpu(ctx, &case.job, Precision::F32, &|_| Ok(())).expect("f32 run");
        let t = run_two_qubit_twin::<f32>(&case.job);
        let dev = column_deviation(&g, &t);
        let worst = dev.iter().map(|d| d.1).fold(0.0, f64::max);
        let cols: Vec<String> = dev.iter().map(|(m, d)| format!("{}={d:.1e}", m.name())).collect();
        eprintln!("gpu f32 vs twin f32 {:<13} max {worst:.2e}: {}", case.kind.name(), cols.join(" "));
        for (m, d) in &dev {
            assert!(*d <= 1e-5, "{:?}: {} differs by {d:.3e}", case.kind, m.name());
        }
        let sdev = g.states.as_ref().unwrap().iter().zip(t.states.as_ref().unwrap()).map(|(a, b)| crate::common::deviation(*a, *b)).fold(0.0, f64::max);
        assert!(sdev <= 1e-5, "{:?}: states differ by {sdev:.3e}", case.kind);
        for (a, b) in g.peaks.iter().zip(&t.peaks) {
            assert!((a.max - b.max).abs() <= 1e-5);
        }
    }
}

/// `a` and `b` hold the same bits, element by element (the first difference named).
fn assert_same_bits(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    if let Some(i) = a.iter().zip(b).position(|(x, y)| x.to_bits() != y.to_bits()) {
        panic!("{what}[{i}]: {} vs {}", a[i], b[i]);
    }
}

#[test]
fn chunked_runs_are_bit_identical() {
    let Some((ctx, _guard)) = gpu() else { return };
    let case = &cases()[3];
    let mut job = case.job.clone();
    // An eigen-solve measure is not the kernel's: its column is NaN, whatever the chunking.
    job.measures.insert(3, Concurrence);
    let mut precisions = vec![Precision::F32];
    if ctx.info.has_f64 {
        precisions.push(Precision::F64);
    }
    for precision in precisions {
        let one = run_two_qubit_gpu(ctx, &job, precision, &|_| Ok(())).expect("one chunk");
        let done = std::sync::Mutex::new(vec![]);
        let opts = GpuRunOptions { max_members_per_chunk: Some(24), member_steps_per_dispatch: Some(64 * 700) };
        let three = run_two_qubit_gpu_with(ctx, &job, precision, &opts, &|n| {
            done.lock().unwrap().push(n);
            Ok(())
        })
        .expect("three chunks");
        assert_eq!(*done.lock().unwrap(), vec![24, 48, 64], "progress after each chunk");
        assert_same_bits(&one.values, &three.values, &format!("{precision:?} values, one chunk vs three"));
        assert_same_bits(one.states.as_ref().unwrap(), three.states.as_ref().unwrap(), &format!("{precision:?} states, one chunk vs three"));
        assert_eq!(one.peaks, three.peaks, "{precision:?} peaks");
        let n = job.measures.len();
        assert!(one.values.iter().skip(3).step_by(n).all(|v| v.is_nan()));
        assert!(one.values.iter().enumerate().filter(|(i, _)| i % n != 3).all(|(_, v)| v.is_finite()));
    }
}

/// Read-back buffers are kept by the context and reused: a job read back through the larger
/// buffers of a bigger job run before it gives the bits it gave through buffers of its own,
/// and takes no new buffer. The bigger job holds the same members in reverse order, so every
/// byte it left in the buffers differs from what the smaller job must read there.
#[test]
fn reused_read_back_buffers_give_the_same_bits() {
    let Some((ctx, _guard)) = gpu() else { return };
    let case = &cases()[2];
    let small = {
        let mut job = case.job.clone();
        let keep = MEMBERS - 13;
        job.initial.truncate(keep);
        job.member_point.truncate(keep);
        job
    };
    let reversed = {
        let mut job = case.job.clone();
        job.initial.reverse();
        job.member_point.reverse();
        job
    };
    ctx.release_staging();
    let first = run_two_qubit_gpu(ctx, &small, Precision::F32, &|_| Ok(())).expect("small job");
    ctx.release_staging();
    let big = run_two_qubit_gpu(ctx, &reversed, Precision::F32, &|_| Ok(())).expect("big job");
    let kept = ctx.kept_staging();
    assert_eq!(kept.0, 3, "the big job's work, values and states buffers are kept");
    let rows = first.values.len();
    assert!(big.values[..rows].iter().zip(&first.values).any(|(a, b)| a.to_bits() != b.to_bits()), "the big job's first rows differ");
    let again = run_two_qubit_gpu(ctx, &small, Precision::F32, &|_| Ok(())).expect("small job again");
    assert_eq!(ctx.kept_staging(), kept, "the small job read back through the big job's buffers");
    assert_same_bits(&first.values, &again.values, "values, own buffers vs the big job's");
    assert_same_bits(first.states.as_ref().unwrap(), again.states.as_ref().unwrap(), "states, own buffers vs the big job's");
    assert_eq!(first.peaks, again.peaks);
    ctx.release_staging();
    assert_eq!(ctx.kept_staging(), (0, 0));
}

/// A read-back through a kept buffer twice its source's size shows the source's bytes and no
/// more: the tail, which holds the earlier read-back's bytes, is not mapped.
#[test]
fn a_read_back_shows_only_its_sources_bytes() {
    use wgpu::util::DeviceExt;
    let Some((ctx, _guard)) = gpu() else { return };
    let source = |bytes: &[u8]| {
        ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("source"),
            contents: bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        })
    };
    let (big, small): (Vec<u8>, Vec<u8>) = ((0..128).map(|i| 200 - i as u8).collect(), (0..64).collect());
    ctx.release_staging();
    let big_buf = source(&big);
    drop(qbat_gpu::gpu::buffers::read_back(ctx, &[("big", &big_buf)]).expect("read back"));
    assert_eq!(ctx.kept_staging(), (1, 128));
    let small_buf = source(&small);
    let staging = qbat_gpu::gpu::buffers::read_back(ctx, &[("small", &small_buf)]).expect("read back");
    assert_eq!(ctx.kept_staging(), (0, 0), "the kept 128-byte buffer holds the 64-byte read-back");
    assert_eq!(&staging[0].view().expect("view")[..], &small[..]);
    drop(staging);
    assert_eq!(ctx.kept_staging(), (1, 128));
    ctx.release_staging();
}

#[test]
fn unknown_adapter_name_is_an_error() {
    // Whether or not there is an adapter, a name that matches nothing is an error, not a
    // panic: the option's (naming --adapter) where there are adapters to match.
    match GpuContext::new(Some("no-such-adapter-xyz"), false) {
        Err(QbatError::Invalid { field, reason }) => {
            assert_eq!(field, "--adapter");
            assert!(reason.contains("no adapter name contains 'no-such-adapter-xyz'"), "{reason}");
        }
        Err(QbatError::Device(msg)) => assert!(msg.contains("no GPU adapter found"), "{msg}"),
        Err(other) => panic!("unexpected error kind: {other}"),
        Ok(ctx) => panic!("matched adapter {}", ctx.info.name),
    }
}

#[test]
fn empty_and_sampleless_jobs() {
    let Some((ctx, _guard)) = gpu() else { return };
    let mut job = cases()[0].job.clone();
    job.initial.clear();
    job.member_point.clear();
    let r = run_two_qubit_gpu(ctx, &job, Precision::F32, &|_| Ok(())).unwrap();
    assert!(r.values.is_empty() && r.peaks.is_empty());
    let mut job = cases()[0].job.clone();
    job.schedule = Schedule::new(1e-3, &[]);
    let r = run_two_qubit_gpu(ctx, &job, Precision::F32, &|_| Ok(())).unwrap();
    assert!(r.values.is_empty());
    assert_eq!(r.peaks.len(), 4 * MEMBERS);
}
