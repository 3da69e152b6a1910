//! `--save-states` (states.npy, states.json) and complex sweeps. The saved states are Hermitian
//! with unit trace, and energy_b recomputed here from them (H_B built in the test) is the series'
//! energy_b to 1e-12; sharded + merged and killed + resumed runs give the same bytes as one run;
//! the GPU cavity engine refuses full states; a complex sweep of alpha expands into the members
//! it names, and bad shapes are exit 2 naming the field.

use crate::common::{bin, config, deviation, kill_after_blocks, ok, run_config_text};
use qbat_gpu::config::{parse_plan, Overrides};
use qbat_gpu::linalg::{c, CMat, C64};
use qbat_gpu::model::ParamValue;
use qbat_gpu::output::states::read_c16_layout;
use std::path::Path;

/// states.npy as (shape, values).
fn states(dir: &Path) -> (Vec<u64>, Vec<C64>) {
    let p = dir.join("states.npy");
    let (shape, offset) = read_c16_layout(&p).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    let v = bytes[offset as usize..]
        .chunks_exact(16)
        .map(|b| C64::new(f64::from_le_bytes(b[..8].try_into().unwrap()), f64::from_le_bytes(b[8..].try_into().unwrap())))
        .collect();
    (shape, v)
}

/// series.npy (members x times x measures) and the index of `name` in series.json.
fn series_column(dir: &Path, name: &str) -> (Vec<u64>, Vec<f64>, usize) {
    let f = std::io::BufReader::new(std::fs::File::open(dir.join("series.npy")).unwrap());
    let npy = npyz::NpyFile::new(f).unwrap();
    let shape = npy.shape().to_vec();
    let v: Vec<f64> = npy.into_vec().unwrap();
    let axes: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("series.json")).unwrap()).unwrap();
    let k = axes["measures"].as_array().unwrap().iter().position(|m| m == name).unwrap();
    (shape, v, k)
}

/// Run `cfg` with --save-states `kind` and check every saved state: Hermitian, unit trace, and
/// Tr(rho H) = the series' energy_b, with `energy` giving Tr(rho H_B) of one saved state.
fn check_run(cfg: &str, backend: &str, kind: &str, d: u64, energy: &dyn Fn(&CMat) -> f64) {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path(), cfg);
    let out = dir.path().join("o");
    ok(bin().arg("run").arg(&c).args(["--backend", backend, "--no-progress", "--no-plots", "--format", "npy", "--save-states", kind, "--out"]).arg(&out));
    let (shape, st) = states(&out);
    let (sshape, series, k) = series_column(&out, "energy_b");
    assert_eq!(shape, vec![sshape[0], sshape[1], d, d], "{cfg}");
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("states.json")).unwrap()).unwrap();
    assert_eq!(meta["dim"], d);
    assert_eq!(meta["kind"], kind);
    assert_eq!(meta["times"].as_array().unwrap().len() as u64, shape[1]);
    let d = d as usize;
    let nm = sshape[2] as usize;
    let mut worst = (0.0f64, 0.0f64, 0.0f64);
    for (i, rho) in st.chunks_exact(d * d).enumerate() {
        let m = CMat::from_row_slice(d, d, rho);
        // (`deviation` counts a NaN as infinitely far, where f64::max would drop it)
        worst.0 = (&m - m.adjoint()).iter().fold(worst.0, |w, z| w.max(deviation(z.norm(), 0.0)));
        worst.1 = worst.1.max(deviation((m.trace() - C64::new(1.0, 0.0)).norm(), 0.0));
        worst.2 = worst.2.max(deviation(energy(&m), series[i * nm + k]));
    }
    assert!(worst.0 < 1e-13, "{backend} {kind}: not Hermitian ({:e})", worst.0);
    assert!(worst.1 < 1e-10, "{backend} {kind}: trace off by {:e}", worst.1);
    assert!(worst.2 < 1e-12, "{backend} {kind}: energy_b from the states differs by {:e}", worst.2);
}

/// Tr(rho (I_a (x) h (x) I_c)) for a state on dims (a, 2, c).
fn energy_middle(rho: &CMat, a: usize, h: [[f64; 2]; 2], cdim: usize) -> f64 {
    let mut e = C64::new(0.0, 0.0);
    for x in 0..a {
        for i in 0..2 {
            for j in 0..2 {
                for z in 0..cdim {
                    // <x j z| rho |x i z> h_ij
                    let r = (x * 2 + i) * cdim + z;
                    let col = (x * 2 + j) * cdim + z;
                    e += rho[(col, r)] * h[i][j];
                }
            }
        }
    }
    e.re
}

#[test]
fn saved_states_are_hermitian_with_unit_trace_and_give_the_series_energy() {
    // spin-pair with dephasing (the saved state is the one the measures see), on both f64 engines;
    // H_B = wb sz on the battery (the right factor): diag(-wb, wb).
    let spin = "model = \"spin-pair\"\n[params]\nwb = 1.3\nwc = 0.8\nj1 = { values = [0.2, 0.5] }\ndephasing = 0.1\n[initial]\nrandom = \"mixed-hs\"\n[time]\ndt = 0.01\nt_end = 3.0\nsamples = 7\n[ensemble]\nsize = 4\nseed = 2\n";
    let hb = [[-1.3, 0.0], [0.0, 1.3]];
    for backend in ["cpu", "reference"] {
        check_run(spin, backend, "reduced", 4, &|m| energy_middle(m, 2, hb, 1));
    }
    // full = reduced for the two-qubit models
    check_run(spin, "cpu", "full", 4, &|m| energy_middle(m, 2, hb, 1));
    // cavity-cells: H_B = (wq/2) sz on cell 2
    let cav = "model = \"cavity-cells\"\n[params]\nwq = 1.2\nlambda = 0.7\ng = 0.3\nkappa = 0.05\nalpha = [0.6, 0.3]\nn_fock = 5\n[time]\ndt = 0.01\nt_end = 2.0\nsamples = 5\n[ensemble]\nsize = 2\n";
    let hq = [[-0.6, 0.0], [0.0, 0.6]];
    check_run(cav, "cpu", "reduced", 4, &|m| energy_middle(m, 2, hq, 1));
    check_run(cav, "cpu", "full", 24, &|m| energy_middle(m, 2, hq, 6));
    // dicke: H_B = wa k on the cells' symmetric basis k = 0..N (reduced), and (x) I on the cavity (full)
    let dk = "model = \"dicke\"\n[params]\nn_cells = 3\nn_fock = 4\nwa = 0.9\ng = 0.2\nphotons = 2\n[time]\ndt = 0.01\nt_end = 2.0\nsamples = 5\n";
    check_run(dk, "cpu", "reduced", 4, &|m| (0..4).map(|k| 0.9 * k as f64 * m[(k, k)].re).sum());
    check_run(dk, "cpu", "full", 20, &|m| (0..20).map(|r| 0.9 * (r / 5) as f64 * m[(r, r)].re).sum());
}

const BLOCHS: &str = "model = \"bloch-charger\"\n[params]\nj = 0.7\ngamma = 0.2\n[initial]\nrandom = \"bloch\"\n[time]\ndt = 0.01\nt_end = 2.0\nsamples = 9\n[ensemble]\nsize = 30\nseed = 7\n";

#[test]
fn sharded_merged_and_resumed_runs_save_the_states_of_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), BLOCHS);
    let args = ["--backend", "cpu", "--no-progress", "--no-plots", "--save-states", "--format", "npy", "--block-members", "3"];
    let one = dir.path().join("one");
    ok(bin().arg("run").arg(&cfg).args(args).arg("--out").arg(&one));
    let mut shards = vec![];
    for k in 0..3 {
        let s = dir.path().join(format!("s{k}"));
        ok(bin().arg("run").arg(&cfg).args(args).args(["--shard", &format!("{k}/3")]).arg("--out").arg(&s));
        shards.push(s);
    }
    let merged = dir.path().join("m");
    ok(bin().arg("merge").args(&shards).arg("--out").arg(&merged).arg("--no-plots"));
    let read = |p: &Path| std::fs::read(p).unwrap();
    assert!(read(&one.join("states.npy")) == read(&merged.join("states.npy")), "merged states.npy differs from one run");
    let meta = |p: &Path| serde_json::from_slice::<serde_json::Value>(&read(&p.join("states.json"))).unwrap();
    assert_eq!(meta(&one), meta(&merged));
    let manifest = String::from_utf8(read(&merged.join(".qbat-manifest.json"))).unwrap();
    assert!(manifest.contains("\"states.npy\"") && manifest.contains("\"states.json\""), "{manifest}");
    // A shard without states does not merge with one that has them.
    let plain = dir.path().join("plain");
    ok(bin()
        .arg("run")
        .arg(&cfg)
        .args(["--backend", "cpu", "--no-progress", "--no-plots", "--format", "npy", "--block-members", "3", "--shard", "2/3", "--out"])
        .arg(&plain));
    let o = bin().arg("merge").args([&shards[0], &shards[1], &plain]).arg("--out").arg(dir.path().join("bad")).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("'states'"), "{}", String::from_utf8_lossy(&o.stderr));
    // killed after two blocks, then resumed: the same bytes
    let out = dir.path().join("r");
    let staging = dir.path().join(".r.partial");
    let mut child = bin().arg("run").arg(&cfg).args(args).arg("--out").arg(&out).env("QBAT_INJECT_FAULT", "slow-blocks=400").spawn().unwrap();
    kill_after_blocks(&mut child, &staging, 2);
    // a damaged block state file is refused on resume, naming it
    let block0 = staging.join("blocks").join("000000.states");
    let good = read(&block0);
    let mut bad = good.clone();
    bad[5] ^= 1;
    std::fs::write(&block0, &bad).unwrap();
    let o = bin().arg("run").arg(&cfg).args(args).arg("--resume").arg(&out).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("000000.states"), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(&block0, &good).unwrap();
    let log = ok(bin().arg("run").arg(&cfg).args(args).arg("--resume").arg(&out));
    assert!(log.contains("resumed from the checkpoint"), "{log}");
    assert!(read(&one.join("states.npy")) == read(&out.join("states.npy")), "resumed states.npy differs from one run");
}

#[test]
fn the_size_guard_counts_the_states() {
    // 200 members x 101 samples of the full 164 x 164 cavity state: 8.7 GB of states, over the
    // 4 GiB guard without any series (and within the memory check, which counts one block).
    let cfg = "model = \"cavity-cells\"\n[params]\nn_fock = 40\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 101\n[ensemble]\nsize = 200\n";
    let r = run_config_text(cfg, &["--save-states", "full", "--series", "false"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--save-states") && r.stderr.contains("GiB"), "{}", r.stderr);
    assert!(!r.left_behind);
    // without --save-states the same run is not refused by the guard (checked without running it)
    let plan = parse_plan(cfg, &Overrides { save_states: Some(qbat_gpu::config::StateSave::Full), ..Default::default() }).unwrap();
    assert!(qbat_gpu::output::states_size_estimate(&plan) > 4 << 30);
    let plan = parse_plan(cfg, &Overrides::default()).unwrap();
    assert_eq!(qbat_gpu::output::states_size_estimate(&plan), 0);
}

#[test]
fn the_gpu_cavity_engine_refuses_full_states() {
    if !crate::common::have_gpu(false) {
        return;
    }
    let _g = crate::common::SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "model = \"cavity-cells\"\n[params]\nn_fock = 3\nalpha = 0.5\n[time]\ndt = 0.01\nt_end = 0.1\nsamples = 2\n");
    let out = dir.path().join("o");
    let o = bin().arg("run").arg(&cfg).args(["--backend", "gpu", "--no-progress", "--no-plots", "--save-states", "full", "--out"]).arg(&out).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--save-states") && stderr.contains("--backend cpu"), "{stderr}");
    assert!(!out.exists());
}

#[test]
fn a_complex_sweep_expands_into_its_values() {
    let cfg = "model = \"cavity-cells\"\n[params]\nn_fock = 12\nalpha = { values = [[0.5, 0.0], [0.0, 0.5], [-0.3, 0.4]] }\nwq = { values = [1.0, 1.5] }\n[time]\ndt = 0.01\nt_end = 0.1\nsamples = 2\n";
    let plan = parse_plan(cfg, &Overrides::default()).unwrap();
    assert_eq!(plan.members.len(), 6);
    assert_eq!(plan.param_columns, vec!["alpha_re", "alpha_im", "wq"]);
    let want = [c(0.5, 0.0), c(0.0, 0.5), c(-0.3, 0.4)];
    for (i, m) in plan.members.iter().enumerate() {
        // the first axis (alpha, in key order) varies slowest
        let (a, w) = (want[i / 2], [1.0, 1.5][i % 2]);
        assert_eq!(plan.points[m.point]["alpha"], ParamValue::Complex(a));
        assert_eq!(plan.points[m.point]["wq"], ParamValue::Real(w));
        assert_eq!(m.param_values, vec![a.re, a.im, w]);
        // the member starts from |gg> (x) |alpha>: <a> = alpha (the tail beyond n = 12 is < 1e-12)
        let rho = plan.initial_state(m);
        let mut ev = C64::new(0.0, 0.0);
        for q in 0..4 {
            for n in 1..13 {
                ev += rho[(q * 13 + n, q * 13 + n - 1)] * (n as f64).sqrt();
            }
        }
        assert!((ev - a).norm() < 1e-9, "member {i}: <a> = {ev} vs {a}");
    }
    // summary.csv carries both parts
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path(), cfg);
    ok(bin().arg("run").arg(&c).args(["--backend", "cpu", "--no-progress", "--no-plots", "--verify", "0", "--out"]).arg(dir.path().join("o")));
    let summary = std::fs::read_to_string(dir.path().join("o").join("summary.csv")).unwrap();
    assert!(summary.starts_with("member,alpha_re,alpha_im,wq,"), "{summary}");
    assert!(summary.lines().nth(6).unwrap().starts_with("5,-0.3,0.4,1.5,"), "{summary}");
    // a plain list of numbers stays a real sweep with one column
    let plan = parse_plan(
        "model = \"cavity-cells\"\n[params]\nn_fock = 8\nalpha = { values = [0.5, 1.0] }\n[time]\ndt = 0.01\nt_end = 0.1\nsamples = 2\n",
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(plan.param_columns, vec!["alpha"]);
    assert_eq!(plan.points[1]["alpha"], ParamValue::Real(1.0));
}

#[test]
fn bad_complex_sweeps_are_refused_naming_the_field() {
    let base = "model = \"cavity-cells\"\n[time]\ndt = 0.01\nt_end = 0.1\nsamples = 2\n[params]\nn_fock = 6\n";
    for (line, field) in [
        ("alpha = { values = [[0.5, 0.0], [0.5]] }", "params.alpha.values[1]"),
        ("alpha = { values = [[0.5, 0.0, 1.0]] }", "params.alpha.values[0]"),
        ("alpha = { values = [[0.5, \"x\"]] }", "params.alpha.values[0]"),
        ("alpha = { linspace = [[0.0, 0.0], [1.0, 1.0], 3] }", "params.alpha.linspace"),
        ("wq = { values = [[1.0, 0.0]] }", "params.wq.values"),
    ] {
        let r = run_config_text(&format!("{base}{line}\n"), &[]);
        assert_eq!(r.code, 2, "{line}: {}", r.stderr);
        assert!(r.stderr.contains(field), "{line}: {}", r.stderr);
        assert_eq!(r.stderr.trim().lines().count(), 1, "{line}: {}", r.stderr);
        assert!(!r.left_behind);
    }
}

#[test]
fn gpu_states_match_the_cpu_engine_in_f32() {
    if !crate::common::have_gpu(false) {
        return;
    }
    let _g = crate::common::SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let spin = "model = \"spin-pair\"\n[params]\nwb = 1.3\nwc = 0.8\nj1 = 0.4\ndephasing = 0.1\n[initial]\nrandom = \"mixed-hs\"\n[time]\ndt = 0.01\nt_end = 2.0\nsamples = 5\n[ensemble]\nsize = 3\n";
    let cav = "model = \"cavity-cells\"\n[params]\nwq = 1.2\nlambda = 0.7\ng = 0.3\nalpha = [0.6, 0.3]\nn_fock = 5\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 3\n[ensemble]\nsize = 2\n";
    for (name, cfg) in [("spin", spin), ("cav", cav)] {
        let c = config(dir.path(), cfg);
        let run = |backend: &str| {
            let out = dir.path().join(format!("{name}-{backend}"));
            ok(bin().arg("run").arg(&c).args(["--backend", backend, "--no-progress", "--no-plots", "--verify", "0", "--save-states", "--out"]).arg(&out));
            states(&out)
        };
        let ((sg, g), (sc, cpu)) = (run("gpu"), run("cpu"));
        assert_eq!(sg, sc);
        let worst = g.iter().zip(&cpu).map(|(a, b)| (a - b).norm()).fold(0.0f64, f64::max);
        assert!(worst < 1e-4, "{name}: GPU states differ from the CPU engine's by {worst:e}");
        assert!(cpu.iter().any(|z| z.im.abs() > 1e-3), "{name}: the states have no coherences to compare");
    }
}
