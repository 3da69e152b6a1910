//! RK4's estimated error at the run's dt (`config::accuracy`): said where a closed battery's
//! dt is coarse enough to move its measures, and not at a dt that does not, each against the
//! same members run at dt / 16 (RK4's error there 16^4 times smaller).

use qbat_gpu::config::{parse_plan, Overrides, ACCURACY_NOTE_AT};
use qbat_gpu::run::{run_plan, Backend, RunOptions};

/// A closed two-level battery charged by its charger (B = 2 wb), at `dt`.
fn closed_battery(dt: f64) -> String {
    format!("model = \"bloch-charger\"\n[params]\nwb = 1.0\nj = 1.0\n[initial]\nrandom = \"bloch\"\n[time]\ndt = {dt}\nt_end = 54.0\nsamples = 109\n[ensemble]\nsize = 6\nseed = 5\n[output]\nmeasures = [\"energy_b\", \"purity\"]\n")
}

/// The largest deviation of any measure between the run at `dt` and at dt / 16, and the
/// plan's accuracy note at `dt`.
fn error_and_note(dt: f64) -> (f64, Option<String>) {
    let run = |dt: f64| {
        let plan = parse_plan(&closed_battery(dt), &Overrides::default()).unwrap();
        let r = run_plan(&plan, &RunOptions { backend: Backend::Cpu, verify: 0, ..Default::default() }).unwrap();
        (plan, r)
    };
    let ((plan, coarse), (_, fine)) = (run(dt), run(dt / 16.0));
    let worst = (0..coarse.measures.len()).map(|k| crate::common::worst_deviation(&coarse, &fine, k)).fold(0.0, f64::max);
    (worst, plan.notes.iter().find(|n| n.contains("RK4's error")).cloned())
}

#[test]
fn a_coarse_dt_is_said_and_a_fine_one_is_not() {
    // dt B = 1: within stability, and the purity decays visibly (docs/physics.md)
    let (worst, note) = error_and_note(0.5);
    let note = note.expect("dt B = 1 over 108 steps is said");
    assert!(worst > ACCURACY_NOTE_AT, "the note was a false alarm: the measures moved by only {worst:e}");
    assert!(note.starts_with("time.dt = 0.5") && note.contains("halve dt"), "{note}");
    // the estimate is the one stated, and at least the error the run made
    let said: f64 = note.split("may reach ").nth(1).and_then(|s| s.split(' ').next()).unwrap().parse().unwrap();
    assert!(said >= worst, "estimated {said:e}, made {worst:e}");
    // dt B = 0.02: the measures move by far less than the note's threshold, and nothing is said
    let (worst, note) = error_and_note(0.01);
    assert!(note.is_none(), "{note:?}");
    assert!(worst < ACCURACY_NOTE_AT, "{worst:e}");
}

/// The CLI says the note on stderr before the run, and keeps it in run.json's notes.
#[test]
fn the_note_is_said_and_kept_in_run_json() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::common::config(dir.path(), &closed_battery(0.5));
    let out = dir.path().join("out");
    let said = crate::common::ok(crate::common::bin().arg("run").arg(&cfg).args(["--backend", "cpu", "--no-progress", "--no-plots", "--out"]).arg(&out));
    assert!(said.contains("note: time.dt = 0.5: RK4's error"), "{said}");
    let run: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert!(run["notes"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().contains("RK4's error")), "{}", run["notes"]);
}
