//! `--verify` holds each verified member to its own tolerance, the precision's base times
//! max(1, s) with s the member's own largest |reference value| of the measure, at least the
//! energy scale of its Hamiltonian for measures in units of energy, power_b's values weighed
//! by min(1, t), and names the worst member of each measure. Checked against the deviations computed here from the
//! reference engine's run of every member, in the library's run, a streamed run of one-member
//! blocks, and a merge of shards.

use crate::common::{bin, config, ok};
use qbat_gpu::config::{parse_plan, Overrides};
use qbat_gpu::run::{run_plan, Backend, RunOptions};
use qbat_gpu::verify::verify_tolerance;

/// Batteries of 0.01 to 200: the energy's scale spans more than 1e3, the rounding's with it.
const MIXED: &str = "model = \"bloch-charger\"\n[params]\nwb = { values = [0.01, 0.3, 40.0, 200.0] }\nj = 0.7\ngamma = 0.05\n[initial]\nrandom = \"bloch\"\n[time]\ndt = 0.0005\nt_end = 1.0\nsamples = 11\n[ensemble]\nsize = 4\nseed = 11\n[output]\nmeasures = [\"energy_b\", \"ergotropy_b\", \"purity\", \"power_b\"]\n";

/// The swept wb of member i (member i takes grid point i mod 4).
const WB: [f64; 4] = [0.01, 0.3, 40.0, 200.0];

/// The weight of a value: power_b's min(1, t), 1 at t = 0 and for the rest.
fn weight(r: &qbat_gpu::run::RunResult, k: usize, s: usize) -> f64 {
    if r.measures[k].name() == "power_b" && r.times[s] > 0.0 {
        r.times[s].min(1.0)
    } else {
        1.0
    }
}

/// Each measure's worst member by its own tolerance, computed here: (id, max_abs, scale), the
/// scale at least the energy scale of the member's H_B = wb |e><e| (the norm of its traceless
/// part, wb / 2) for energy_b, ergotropy_b and power_b, which the engines' rounding follows;
/// power_b = stored_energy_b / t taken times min(1, t) (1 at t = 0).
fn worst_members(got: &qbat_gpu::run::RunResult, reference: &qbat_gpu::run::RunResult) -> Vec<(u64, f64, f64)> {
    let (ns, nm) = (got.times.len(), got.measures.len());
    (0..nm)
        .map(|k| {
            let mut worst: Option<(u64, f64, f64)> = None;
            for (i, &id) in got.member_ids.iter().enumerate() {
                let d = (0..ns).map(|s| crate::common::deviation(got.value(i, s, k), reference.value(i, s, k)) * weight(got, k, s)).fold(0.0, f64::max);
                let floor = if got.measures[k].name() == "purity" { 0.0 } else { WB[i % 4] / 2.0 };
                let s = (0..ns).map(|s| reference.value(i, s, k).abs() * weight(got, k, s)).fold(floor, f64::max);
                let key = |(id, d, s): (u64, f64, f64)| (d / s.max(1.0), std::cmp::Reverse(id));
                if worst.is_none_or(|w| key((id, d, s)) > key(w)) {
                    worst = Some((id, d, s));
                }
            }
            worst.unwrap()
        })
        .collect()
}

#[test]
fn each_measure_names_its_worst_member_by_that_members_own_scale() {
    let plan = parse_plan(MIXED, &Overrides::default()).unwrap();
    let run = run_plan(&plan, &RunOptions { backend: Backend::Cpu, verify: 4, ..Default::default() }).unwrap();
    let reference = run_plan(&plan, &RunOptions { backend: Backend::Reference, verify: 0, ..Default::default() }).unwrap();
    let v = run.verify.as_ref().unwrap();
    assert_eq!(v.members.len(), 4);
    let expected = worst_members(&run, &reference);
    for ((d, m), (id, max_abs, scale)) in v.deviations.iter().zip(&run.measures).zip(&expected) {
        assert_eq!((d.member, d.max_abs, d.scale), (Some(*id), *max_abs, *scale), "{}", d.measure);
        assert_eq!(d.tolerance, verify_tolerance(*m, run.precision, *scale));
    }
    // the largest deviation of any member, whatever its scale
    for (k, d) in v.deviations.iter().enumerate() {
        let largest = (0..run.member_ids.len())
            .flat_map(|i| (0..run.times.len()).map(move |s| (i, s)))
            .map(|(i, s)| (run.value(i, s, k) - reference.value(i, s, k)).abs() * weight(&run, k, s))
            .fold(0.0, f64::max);
        assert_eq!(d.largest_abs, largest, "{}", d.measure);
    }
    // (the setup: the members' energy scales differ by more than 1e3)
    let scales: Vec<f64> = (0..run.member_ids.len()).map(|i| (0..run.times.len()).map(|s| reference.value(i, s, 0).abs()).fold(0.0, f64::max)).collect();
    let spread = scales.iter().fold(0.0, |a: f64, &b| a.max(b)) / scales.iter().fold(f64::INFINITY, |a: f64, &b| a.min(b));
    assert!(spread > 1e3, "{scales:?}");

    // the same worst members from a streamed run of one-member blocks, and from two shards
    // merged, as run.json writes them
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), MIXED);
    let deviations = |out: &std::path::Path| {
        let run: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
        run["verify"]["deviations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["member"].as_u64().unwrap(), d["max_abs"].as_f64().unwrap(), d["scale"].as_f64().unwrap()))
            .collect::<Vec<_>>()
    };
    let streamed = dir.path().join("streamed");
    let common = ["--backend", "cpu", "--verify", "4", "--no-progress", "--no-plots", "--block-members", "1"];
    ok(bin().arg("run").arg(&cfg).args(common).arg("--out").arg(&streamed));
    assert_eq!(deviations(&streamed), expected, "streamed run");
    let shards: Vec<_> = (0..2).map(|k| dir.path().join(format!("shard{k}"))).collect();
    for (k, out) in shards.iter().enumerate() {
        ok(bin().arg("run").arg(&cfg).args(common).args(["--shard", &format!("{k}/2"), "--out"]).arg(out));
    }
    let merged = dir.path().join("merged");
    ok(bin().arg("merge").args(&shards).arg("--out").arg(&merged));
    assert_eq!(deviations(&merged), expected, "merged shards");
}
