//! `--verify`'s check of dt (`verify::dt_check`): a verified member run again at dt / 2 on the
//! CPU engine. Its difference against Richardson's 15/16 of the error at dt, the error taken
//! here against the reference engine at dt / 64; said where it moves the measures, not where
//! it does not; kept in run.json, and the worst shard's kept by merge.

use qbat_gpu::config::{parse_plan, Overrides};
use qbat_gpu::run::{run_plan, Backend, RunOptions};
use qbat_gpu::verify::dt_check::DT_NOTE_AT;

/// A closed two-level battery charged by its charger (its generator's spread 2 wb), at `dt`.
fn closed_battery(dt: f64) -> String {
    format!("model = \"bloch-charger\"\n[params]\nwb = 1.0\nj = 1.0\n[initial]\nrandom = \"bloch\"\n[time]\ndt = {dt}\nt_end = 20.0\nsamples = 41\n[ensemble]\nsize = 6\nseed = 5\n[output]\nmeasures = [\"energy_b\", \"purity\"]\n")
}

#[test]
fn the_check_of_dt_is_fifteen_sixteenths_of_the_error_at_dt() {
    let dt = 0.1;
    let plan = parse_plan(&closed_battery(dt), &Overrides::default()).unwrap();
    let run = run_plan(&plan, &RunOptions { backend: Backend::Cpu, verify: 2, ..Default::default() }).unwrap();
    let check = run.verify.as_ref().and_then(|v| v.dt_halved.clone()).expect("a check of dt");
    let member = run.member_ids.iter().position(|&id| id == check.member).unwrap();
    // the error at dt: against the reference at dt / 64 (its own error 64^4 times smaller)
    let fine = run_plan(
        &parse_plan(&closed_battery(dt / 64.0), &Overrides::default()).unwrap(),
        &RunOptions { backend: Backend::Reference, verify: 0, ..Default::default() },
    )
    .unwrap();
    for (k, d) in check.deviations.iter().enumerate() {
        let error = (0..run.times.len()).map(|s| (run.value(member, s, k) - fine.value(member, s, k)).abs()).fold(0.0, f64::max);
        let ratio = d.max_abs / error;
        assert!((0.8..1.05).contains(&ratio), "{}: the check's {:e} is {ratio} of the error {error:e}, not about 15/16", d.measure, d.max_abs);
    }
    // the error here (about 1e-3) is past the limit: said, and kept in the notes
    let note = run.notes.iter().find(|n| n.contains("when dt is halved")).expect("the note");
    assert!(note.starts_with("time.dt = 0.1: RK4's error at this dt is visible"), "{note}");
    // at dt / 10 the error is 1e4 times smaller: nothing said
    let plan = parse_plan(&closed_battery(dt / 10.0), &Overrides::default()).unwrap();
    let run = run_plan(&plan, &RunOptions { backend: Backend::Cpu, verify: 2, ..Default::default() }).unwrap();
    let check = run.verify.as_ref().and_then(|v| v.dt_halved.clone()).expect("a check of dt");
    assert!(check.deviations.iter().all(|d| d.max_abs < d.limit && d.limit == DT_NOTE_AT), "{check:?}");
    assert!(!run.notes.iter().any(|n| n.contains("when dt is halved")), "{:?}", run.notes);
}

/// Through the CLI: said on stderr, kept in run.json's verify and notes; each shard checks
/// one of its members, and merge keeps the check that moved most past its limit.
#[test]
fn the_check_of_dt_is_in_run_json_and_merge_keeps_the_worst() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::common::config(dir.path(), &closed_battery(0.5));
    let read = |d: &std::path::Path| -> serde_json::Value { serde_json::from_slice(&std::fs::read(d.join("run.json")).unwrap()).unwrap() };
    let ratio = |c: &serde_json::Value| {
        c["deviations"].as_array().unwrap().iter().map(|x| x["max_abs"].as_f64().unwrap() / x["limit"].as_f64().unwrap()).fold(0.0, f64::max)
    };
    let whole = dir.path().join("whole");
    let said = crate::common::ok(crate::common::bin().arg("run").arg(&cfg).args(["--backend", "cpu", "--no-progress", "--no-plots", "--out"]).arg(&whole));
    assert!(said.contains("note: time.dt = 0.5: RK4's error at this dt is visible"), "{said}");
    let run = read(&whole);
    assert!(ratio(&run["verify"]["dt_halved"]) > 1.0, "{}", run["verify"]);
    assert!(run["notes"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().contains("when dt is halved")), "{}", run["notes"]);
    let shards: Vec<std::path::PathBuf> = (0..2).map(|k| dir.path().join(format!("s{k}"))).collect();
    for (k, s) in shards.iter().enumerate() {
        crate::common::ok(
            crate::common::bin().arg("run").arg(&cfg).args(["--backend", "cpu", "--no-progress", "--no-plots", "--shard", &format!("{k}/2"), "--out"]).arg(s),
        );
    }
    let checks: Vec<serde_json::Value> = shards.iter().map(|s| read(s)["verify"]["dt_halved"].clone()).collect();
    assert!(checks.iter().all(|c| c.is_object()) && checks[0]["member"] != checks[1]["member"], "{checks:?}");
    let merged = dir.path().join("merged");
    crate::common::ok(crate::common::bin().arg("merge").args(&shards).arg("--out").arg(&merged).arg("--no-plots"));
    let worst = checks.iter().max_by(|a, b| ratio(a).total_cmp(&ratio(b))).unwrap();
    assert_eq!(&read(&merged)["verify"]["dt_halved"], worst);
}

/// Sample times closer than dt: each gap is one shortened step, which halving dt would leave as
/// it is (the check said nothing at dt = 1.2 where the same steps moved steering_ab by 4.6e-2
/// at dt = 0.6). The check halves the longest step taken instead: it sees what dt = 0.6 sees.
#[test]
fn the_check_of_dt_halves_the_steps_taken_where_samples_are_closer_than_dt() {
    let config = |dt: f64| {
        format!("model = \"bloch-charger\"\n[params]\nwb = 1.0\nj = 1.0\ngamma = 0.05\n[initial]\nrandom = \"bloch\"\n[time]\ndt = {dt}\nt_end = 6.0\nsamples = 11\n[ensemble]\nsize = 4\nseed = 7\n")
    };
    let check = |dt: f64| {
        let run =
            run_plan(&parse_plan(&config(dt), &Overrides::default()).unwrap(), &RunOptions { backend: Backend::Cpu, verify: 2, ..Default::default() }).unwrap();
        (run.verify.as_ref().and_then(|v| v.dt_halved.clone()).expect("a check of dt"), run.notes.clone())
    };
    // the same steps of 0.6 either way
    let (spaced, _) = check(0.6);
    let (wide, notes) = check(1.2);
    assert!(spaced.step == 0.6 && (wide.step - 0.6).abs() < 1e-12 && wide.dt == 1.2, "{spaced:?} {wide:?}");
    // (the gaps, i t_end / 10 apart, are dt = 0.6 to rounding)
    for (a, b) in spaced.deviations.iter().zip(&wide.deviations) {
        assert!(a.measure == b.measure && (a.max_abs - b.max_abs).abs() <= 1e-9 * a.limit, "{a:?} {b:?}");
    }
    assert!(wide.deviations.iter().any(|d| d.max_abs > d.limit), "{wide:?}");
    let note = notes.iter().find(|n| n.contains("are halved")).expect("the note");
    assert!(note.starts_with("time.dt = 1.2: RK4's error at this dt is visible") && note.contains("a dt below 6.0000e-1 is more accurate"), "{note}");
}

/// A shard run with `--verify 0` beside one with it: the merged verify said `pass` over the
/// verified shard's members as though it covered the run; it names the shard left unchecked.
#[test]
fn merge_names_the_shards_that_ran_without_verify() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::common::config(dir.path(), &closed_battery(0.05));
    let shards: Vec<std::path::PathBuf> = (0..2).map(|k| dir.path().join(format!("s{k}"))).collect();
    for (k, s) in shards.iter().enumerate() {
        let verify = if k == 0 { "0" } else { "2" };
        crate::common::ok(
            crate::common::bin()
                .arg("run")
                .arg(&cfg)
                .args(["--backend", "cpu", "--no-progress", "--no-plots", "--verify", verify, "--shard", &format!("{k}/2"), "--out"])
                .arg(s),
        );
    }
    let merged = dir.path().join("merged");
    let o = crate::common::bin().arg("merge").args(&shards).arg("--out").arg(&merged).arg("--no-plots").output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let run: serde_json::Value = serde_json::from_slice(&std::fs::read(merged.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["verify"]["unverified_shards"], serde_json::json!([0]), "{}", run["verify"]);
    let notes = run["notes"].as_array().unwrap();
    let note = notes.iter().filter_map(|n| n.as_str()).find(|n| n.contains("shard(s) 0 ran without --verify")).expect("the note");
    // said on stderr as well, once, as a run says its notes
    assert_eq!(stderr.lines().filter(|l| *l == format!("note: {note}")).count(), 1, "{stderr}");
}

/// The check of dt re-runs its member with its own parameter point alone: a slice of the plan
/// kept every point of the sweep, which the engine built twice (a 200,000-point sweep's check
/// took 8 s, longer than its run). The same figures as the member's point run on its own.
#[test]
fn the_check_of_dt_runs_its_member_with_its_own_point_alone() {
    let text = "model = \"bloch-charger\"\n[params]\nwb = 1.0\nj = { uniform = [0.5, 1.5] }\ngamma = { linspace = [0.0, 0.1, 50] }\n[initial]\nrandom = \"bloch\"\n[time]\ndt = 0.2\nt_end = 4.0\nsamples = 5\n[ensemble]\nsize = 2000\nseed = 3\n";
    let plan = parse_plan(text, &Overrides::default()).unwrap();
    assert_eq!(plan.points.len(), 2000);
    let index = 1234;
    let alone = plan.slice_points(index..index + 1);
    assert_eq!((alone.points.len(), alone.systems.len(), alone.members.len()), (1, 1, 1));
    assert_eq!((alone.members[0].id, alone.members[0].point), (plan.members[index].id, 0));
    assert_eq!(alone.points[0], plan.points[plan.members[index].point]);
    let opts = RunOptions { backend: Backend::Cpu, verify: 0, ..Default::default() };
    let a = run_plan(&alone, &opts).unwrap();
    let b = run_plan(&plan.slice(index..index + 1), &opts).unwrap();
    assert_eq!(a.values, b.values);
    // the check's member, of the stiffest point, re-run alone
    let check = qbat_gpu::verify::dt_check::dt_check(&plan, &[index]).expect("a check of dt");
    assert_eq!(check.member, plan.members[index].id);
}

/// A member that does not move shows no error of RK4's at any dt: the check ran the first of
/// the stiffest point's verified members even where that one stood still (a theta sweep's
/// charger at theta = 0: both qubits in their ground state, the decay's fixed point), and said
/// nothing of a dt that moves the others by 5e-2. It passes over such members, at most
/// `MAX_TRIES` = 3 of them.
#[test]
fn the_check_of_dt_passes_over_a_member_that_does_not_move() {
    let config = |thetas: &str| {
        format!("model = \"bloch-charger\"\n[params]\nwb = 1.0\nj = 1.0\ngamma = 0.05\n[initial]\ntheta = {{ values = [{thetas}] }}\n[time]\ndt = 0.5\nt_end = 20.0\nsamples = 41\n[ensemble]\nsize = 4\nseed = 5\n[output]\nmeasures = [\"energy_b\", \"purity\"]\n")
    };
    let plan = parse_plan(&config("0.0, 0.0, 0.0, 2.0"), &Overrides::default()).unwrap();
    assert_eq!(plan.members.len(), 4);
    let check = |candidates: &[usize]| qbat_gpu::verify::dt_check::dt_check(&plan, candidates).expect("a check of dt");
    let worst = |c: &qbat_gpu::verify::dt_check::DtCheck| c.deviations.iter().map(|d| d.max_abs / d.limit).fold(0.0, f64::max);
    // the moving member alone: its error at dt = 0.5 is past the limit
    let moving = check(&[3]);
    assert!(moving.member == plan.members[3].id && worst(&moving) > 10.0, "{moving:?}");
    // a stationary member alone is still checked: nothing moves
    let still = check(&[0]);
    assert!(still.member == plan.members[0].id && worst(&still) < 1e-8, "{still:?}");
    // the stationary member first: passed over for the one that moves, the same check as its own
    assert_eq!(check(&[0, 3]), moving);
    assert_eq!(check(&[1, 2, 3]), moving);
    // past three tries: the first
    assert_eq!(check(&[0, 1, 2, 3]).member, still.member);
    // taken stiffest point first, whatever the point: j = 2's member stands still, j = 1's moves
    let zipped = config("0.0, 2.0").replace("j = 1.0", "j = { values = [2.0, 1.0] }").replace("seed = 5", "seed = 5\nmode = \"zip\"");
    let sweep = parse_plan(&zipped, &Overrides::default()).unwrap();
    let stiffness = |i: usize| sweep.systems[sweep.members[i].point].generator_norm_entry_bound();
    assert!(stiffness(0) > stiffness(1) && sweep.members.len() == 4, "{} {}", stiffness(0), stiffness(1));
    let picked = qbat_gpu::verify::dt_check::dt_check(&sweep, &[1, 0]).expect("a check of dt");
    assert!(picked.member == sweep.members[1].id && worst(&picked) > 10.0, "{picked:?}");
    // through a run verifying both members of a sweep whose first stands still: said
    let plan = parse_plan(&config("0.0, 2.0"), &Overrides::default()).unwrap();
    let run = run_plan(&plan, &RunOptions { backend: Backend::Cpu, verify: 2, ..Default::default() }).unwrap();
    assert!(run.notes.iter().any(|n| n.contains("when dt is halved")), "{:?}", run.notes);
}
