//! A matrix drive O + s I is the drive O: the identity part commutes with every state. Checked
//! for shifts up to 1e15 on bloch-charger (the reference and the CPU engine, against the named
//! operator and the conserved purity of a closed system) and on cavity-cells (a part outside the kernel's
//! named operators stays outside under the shift), and a matrix is taken as its Hermitian part.

use qbat_gpu::config::{parse_plan, Overrides};
use qbat_gpu::run::{run_plan, Backend, Precision, RunOptions, RunResult};

fn run(cfg: &str, backend: Backend, verify: usize) -> RunResult {
    let plan = parse_plan(cfg, &Overrides::default()).unwrap();
    run_plan(&plan, &RunOptions { backend, precision: Precision::F64, verify, ..Default::default() }).unwrap()
}

/// Largest |a - b| over every value (NaN counts as infinite).
fn worst(a: &RunResult, b: &RunResult) -> f64 {
    assert_eq!(a.values.len(), b.values.len());
    a.values.iter().zip(&b.values).map(|(x, y)| (x - y).abs()).fold(0.0, |w: f64, d| if d.is_nan() { f64::INFINITY } else { w.max(d) })
}

/// `rows` as a TOML matrix, each diagonal entry plus `shift`.
fn matrix(rows: &[Vec<f64>], shift: f64) -> String {
    let text: Vec<String> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let entries: Vec<String> = r.iter().enumerate().map(|(j, &x)| format!("{:?}", if i == j { x + shift } else { x })).collect();
            format!("[{}]", entries.join(", "))
        })
        .collect();
    format!("[{}]", text.join(", "))
}

fn bloch_cfg(operator: &str) -> String {
    format!(
        "model = \"bloch-charger\"\n[params]\nwb = 1.0\nj = 0.3\ngamma = 0.0\n[initial]\ntheta = 0.4\n[time]\ndt = 0.01\nt_end = 4.0\nsamples = 9\n\
         [output]\nmeasures = [\"energy_b\", \"purity\", \"concurrence\", \"trace_error\"]\n[[drive]]\noperator = {operator}\namplitude = 0.5\nfrequency = 1.0\n"
    )
}

/// sx_b (battery = right factor) as a 4x4 matrix in the basis (charger, battery).
fn sx_b() -> Vec<Vec<f64>> {
    vec![vec![0.0, 1.0, 0.0, 0.0], vec![1.0, 0.0, 0.0, 0.0], vec![0.0, 0.0, 0.0, 1.0], vec![0.0, 0.0, 1.0, 0.0]]
}

/// bloch-charger driven by sx_b + s I: on the reference and the CPU engine, every shift gives the named sx_b's values to 1e-12, the purity
/// of the closed system stays 1 to RK4's error at dt (5e-12 here; 6.5e-7 at s = 2e12 before), and `--verify` passes. Before, the reference lost the purity
/// to 0.9978 at s = 1e15 and the other engines' verify failed.
#[test]
fn an_identity_shift_changes_no_two_qubit_run() {
    let named = run(&bloch_cfg("\"sx_b\""), Backend::Reference, 0);
    let purity = named.measures.iter().position(|m| m.name() == "purity").unwrap();
    for shift in [0.0, 1.0, 2e12, 1e15, -1e15] {
        let cfg = bloch_cfg(&matrix(&sx_b(), shift));
        for backend in [Backend::Reference, Backend::Cpu] {
            let r = run(&cfg, backend, if backend == Backend::Cpu { 2 } else { 0 });
            assert!(worst(&r, &named) < 1e-12, "shift {shift}, {backend:?}: {}", worst(&r, &named));
            for s in 0..r.times.len() {
                assert!((r.value(0, s, purity) - 1.0).abs() < 1e-9, "shift {shift}, {backend:?}: purity {}", r.value(0, s, purity));
            }
            if let Some(v) = &r.verify {
                assert!(v.pass, "shift {shift}: verify {:?}", v.deviations);
            }
        }
    }
    // the drive moves the battery: the comparison can see a dropped drive
    let undriven = run(&bloch_cfg("\"sx_b\"").replace("amplitude = 0.5", "amplitude = 0.0"), Backend::Reference, 0);
    assert!(worst(&undriven, &named) > 1e-2);
}

fn cavity_cfg(operator: &str) -> String {
    format!(
        "model = \"cavity-cells\"\n[params]\nlambda = 0.0\ng = 0.0\nalpha = 0.0\nn_fock = 1\n[time]\ndt = 0.01\nt_end = 2.0\nsamples = 5\n\
         [output]\nmeasures = [\"energy_b\", \"concurrence\", \"purity\"]\n[[drive]]\noperator = {operator}\namplitude = 1.0\nfrequency = 0.0\n"
    )
}

/// sx_1 sx_2 on cavity-cells (basis cell 1, cell 2, Fock; n_fock = 1): outside the kernel's
/// named operators, so the run goes to the reference engine, with a note, whatever the shift;
/// its values are the unshifted run's, and the drive entangles the cells. Before, a shift of
/// 2e12 let sx_1 sx_2 pass for rounding: the CPU engine ran with no drive at all.
#[test]
fn an_identity_shift_keeps_a_cavity_drive_outside_the_slots() {
    let sx = [[0.0, 1.0], [1.0, 0.0]];
    // sx (x) sx (x) I_2, as 8x8 rows
    let rows: Vec<Vec<f64>> =
        (0..8).map(|i| (0..8).map(|j| if i % 2 == j % 2 { sx[i / 4][j / 4] * sx[(i / 2) % 2][(j / 2) % 2] } else { 0.0 }).collect()).collect();
    let plain = run(&cavity_cfg(&matrix(&rows, 0.0)), Backend::Cpu, 0);
    assert!(plain.notes.iter().any(|n| n.contains("reference")), "{:?}", plain.notes);
    let concurrence = plain.measures.iter().position(|m| m.name() == "concurrence").unwrap();
    let most = (0..plain.times.len()).map(|s| plain.value(0, s, concurrence)).fold(0.0, f64::max);
    assert!(most > 0.5, "the drive must entangle the cells: concurrence {most}");
    for shift in [2e12, 1e13, -1e15] {
        let r = run(&cavity_cfg(&matrix(&rows, shift)), Backend::Cpu, 0);
        assert!(r.notes.iter().any(|n| n.contains("reference")), "shift {shift}: {:?}", r.notes);
        assert!(worst(&r, &plain) < 1e-12, "shift {shift}: {}", worst(&r, &plain));
    }
}

/// A matrix that is not Hermitian to 1e-12 of the largest entry of its traceless part is
/// refused, naming the operator, whatever multiple of the identity it carries (a shift of 1e9
/// let an anti-Hermitian part of 5e-4 pass); one within it is taken as its Hermitian part
/// (O + O^+) / 2 on every engine, so the run is that of the Hermitian part written out.
#[test]
fn a_matrix_is_taken_as_its_hermitian_part() {
    for (off, shift) in [(0.5, 0.0), (0.5, 1e15), (1.0005, 1e9)] {
        let mut rows = sx_b();
        rows[1][0] = off;
        let err = parse_plan(&bloch_cfg(&matrix(&rows, shift)), &Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("drive[0].operator") && err.contains("Hermitian"), "{off} at {shift}: {err}");
    }
    let mut rows = sx_b();
    rows[1][0] = 1.0 + 5e-13;
    let mut hermitian = sx_b();
    let mean = (1.0 + rows[1][0]) * 0.5;
    (hermitian[0][1], hermitian[1][0]) = (mean, mean);
    for backend in [Backend::Reference, Backend::Cpu] {
        let got = run(&bloch_cfg(&matrix(&rows, 0.0)), backend, 0);
        let want = run(&bloch_cfg(&matrix(&hermitian, 0.0)), backend, 0);
        assert_eq!(got.values, want.values, "{backend:?}");
    }
    // a multiple of the identity alone is a drive that does nothing
    let zero: Vec<Vec<f64>> = vec![vec![0.0; 4]; 4];
    let idle = run(&bloch_cfg(&matrix(&zero, 3e14)), Backend::Cpu, 0);
    let undriven = run(&bloch_cfg("\"sx_b\"").replace("amplitude = 0.5", "amplitude = 0.0"), Backend::Cpu, 0);
    assert!(worst(&idle, &undriven) < 1e-13);
}
