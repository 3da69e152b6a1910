//! Streamed runs through the real binary: statistics against the stored series, chunk-count
//! independence, shards merged against the unsharded run, resume after SIGKILL, health flags,
//! injected device faults, and bounded host memory.

use crate::common::{bin, config, kill_after_blocks, ok};

use std::path::{Path, PathBuf};
use std::process::Command;

const BLOCH: &str = r#"
model = "bloch-charger"
[params]
wb = 1.0
j = { linspace = [0.5, 1.5, 5] }
gamma = 0.05
[initial]
random = "bloch"
[time]
dt = 0.01
t_end = 6.0
samples = 13
[ensemble]
size = 600
seed = 11
"#;

fn run(cfg: &Path, out: &Path, extra: &[&str]) -> String {
    ok(bin().arg("run").arg(cfg).args(["--backend", "cpu", "--no-progress", "--out"]).arg(out).args(extra))
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// stats.csv rows: (t, measure) -> [mean, std, min, max, q05, q50, q95, n]
fn stats(p: &Path) -> Vec<(String, Vec<f64>)> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (format!("{}|{}", c[0], c[1]), c[2..].iter().map(|x| x.parse::<f64>().unwrap()).collect())
        })
        .collect()
}

/// series.npy -> (shape, values)
fn npy(p: &Path) -> (Vec<u64>, Vec<f64>) {
    let f = npyz::NpyFile::new(std::io::BufReader::new(std::fs::File::open(p).unwrap())).unwrap();
    let shape = f.shape().to_vec();
    (shape, f.into_vec::<f64>().unwrap())
}

#[test]
fn streamed_stats_equal_the_stats_of_the_stored_series() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), BLOCH);
    let out = dir.path().join("o");
    run(&cfg, &out, &["--format", "npy", "--block-members", "77"]);
    let (shape, values) = npy(&out.join("series.npy"));
    let (n, ns, nm) = (shape[0] as usize, shape[1] as usize, shape[2] as usize);
    assert_eq!(n, 600);
    let st = stats(&out.join("stats.csv"));
    assert_eq!(st.len(), ns * nm);
    let resolution = qbat_gpu::output::accumulate::QUANTILE_REL_RESOLUTION;
    for s in 0..ns {
        for k in 0..nm {
            let col: Vec<f64> = (0..n).map(|i| values[(i * ns + s) * nm + k]).collect();
            let exact = qbat_gpu::output::stats::column_stat(s, k, col);
            let got = &st[s * nm + k].1;
            let scale = exact.mean.abs().max(exact.std).max(1e-300);
            assert!((got[0] - exact.mean).abs() <= 1e-14 * scale, "{} mean {} vs {}", st[s * nm + k].0, got[0], exact.mean);
            assert!((got[1] - exact.std).abs() <= 1e-12 * scale.max(exact.std), "{} std {} vs {}", st[s * nm + k].0, got[1], exact.std);
            assert_eq!((got[2], got[3]), (exact.min, exact.max));
            // the stated bound: a relative 1e-3 of the larger of the two order statistics numpy
            // interpolates between (1e-12 near zero)
            let mut sorted: Vec<f64> = (0..n).map(|i| values[(i * ns + s) * nm + k]).collect();
            sorted.sort_by(|a, b| a.total_cmp(b));
            for (p, q, e) in [(0.05, got[4], exact.q05), (0.5, got[5], exact.q50), (0.95, got[6], exact.q95)] {
                let lo = (p * (n - 1) as f64).floor() as usize;
                let scale = sorted[lo].abs().max(sorted[(lo + 1).min(n - 1)].abs());
                let tol = (resolution * scale).max(qbat_gpu::output::accumulate::QUANTILE_ZERO) * 1.001 + 1e-15;
                assert!((q - e).abs() <= tol, "{} quantile {q} vs {e}", st[s * nm + k].0);
            }
            assert_eq!(got[7], n as f64);
        }
    }
    // summary.npy holds summary.csv's numbers (health as its code, 0 = ok), columns in summary.json
    let (sshape, summary) = npy(&out.join("summary.npy"));
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    let meta: serde_json::Value = serde_json::from_slice(&read(&out.join("summary.json"))).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    assert_eq!(meta["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect::<Vec<_>>(), header);
    assert_eq!(sshape, vec![n as u64, header.len() as u64]);
    for (i, line) in csv.lines().skip(1).enumerate() {
        for (k, cell) in line.split(',').enumerate() {
            let want = if header[k] == "health" {
                assert_eq!(cell, "ok");
                0.0
            } else {
                cell.parse::<f64>().unwrap()
            };
            assert_eq!(summary[i * header.len() + k].to_bits(), want.to_bits(), "summary.npy row {i} column {}", header[k]);
        }
    }
}

#[test]
fn outputs_do_not_depend_on_the_block_size() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), BLOCH);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    run(&cfg, &a, &["--block-members", "600"]);
    run(&cfg, &b, &["--block-members", "41"]);
    for f in ["series.csv", "summary.csv", "stats.csv"] {
        assert!(read(&a.join(f)) == read(&b.join(f)), "{f} differs between 1 and 15 blocks");
    }
}

/// A block's plan holds only the points its members use (`Plan::slice_points`): a sweep of a
/// point per member (a drawn j) gives the one-block output in 15 blocks, and a block of 41
/// members holds 41 points, renumbered, not the 600 (each block built every point: a
/// 1,000,000-point run spent 85 s of 270 in 4 builds of them all).
#[test]
fn blocks_hold_only_their_own_points_and_give_the_one_block_output() {
    let dir = tempfile::tempdir().unwrap();
    let text = BLOCH.replace("j = { linspace = [0.5, 1.5, 5] }", "j = { uniform = [0.5, 1.5] }");
    let plan = qbat_gpu::config::parse_plan(&text, &qbat_gpu::config::Overrides::default()).unwrap();
    assert_eq!(plan.points.len(), 600);
    let block = plan.slice_points(41..82);
    assert_eq!((block.points.len(), block.systems.len(), block.drives.len()), (41, 41, 41));
    for (k, m) in block.members.iter().enumerate() {
        assert_eq!((m.id, m.point), (41 + k as u64, k));
        assert_eq!(block.points[k], plan.points[plan.members[41 + k].point]);
    }
    let cfg = config(dir.path(), &text);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    run(&cfg, &a, &["--block-members", "600"]);
    run(&cfg, &b, &["--block-members", "41"]);
    for f in ["series.csv", "summary.csv", "stats.csv"] {
        assert!(read(&a.join(f)) == read(&b.join(f)), "{f} differs between 1 and 15 blocks");
    }
}

#[test]
fn a_run_with_enough_results_is_cut_into_evenly_sized_blocks() {
    // 2001 samples x 6 measures: 2001 x 6 f64 twice over plus 512 B, 192,608 B a member. A
    // run that writes a series is cut into as many blocks as that fills 64 MiB (348.4
    // members' worth), up to 4, of equal size; without a series, only as its memory budget
    // needs (here one block).
    let dir = tempfile::tempdir().unwrap();
    let text = BLOCH.replace("samples = 13", "samples = 2001").replace("t_end = 6.0", "t_end = 20.0")
        + "[output]\nmeasures = [\"energy_b\", \"ergotropy_b\", \"capacity_b\", \"coherence_l1\", \"purity\", \"trace_error\"]\n";
    // (members, --series) -> (blocks, members per block): 1500 members fill 4.3 x 64 MiB,
    // 300 less than one
    for ((members, series), want) in [((1500u64, "true"), (4u64, 375u64)), ((1500, "false"), (1, 1500)), ((300, "true"), (1, 300))] {
        let cfg = config(dir.path(), &text.replace("size = 600", &format!("size = {members}")));
        let out = dir.path().join(format!("m{members}-{series}"));
        run(&cfg, &out, &["--series", series, "--format", "npy", "--no-plots", "--verify", "0"]);
        let run_json: serde_json::Value = serde_json::from_slice(&read(&out.join("run.json"))).unwrap();
        let blocks = &run_json["blocks"];
        assert_eq!(
            (blocks["count"].as_u64(), blocks["members_per_block"].as_u64()),
            (Some(want.0), Some(want.1)),
            "{members} members, --series {series}: {blocks}"
        );
    }
}

#[test]
fn four_shards_merged_equal_the_unsharded_run() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), BLOCH);
    for format in ["csv", "npy"] {
        let full = dir.path().join(format!("full-{format}"));
        run(&cfg, &full, &["--format", format]);
        let shards: Vec<PathBuf> = (0..4).map(|k| dir.path().join(format!("s{k}-{format}"))).collect();
        for (k, s) in shards.iter().enumerate() {
            run(&cfg, s, &["--format", format, "--shard", &format!("{k}/4"), "--block-members", "50"]);
        }
        let merged = dir.path().join(format!("m-{format}"));
        // given out of order on purpose
        ok(bin().arg("merge").args([&shards[2], &shards[0], &shards[3], &shards[1]]).arg("--out").arg(&merged));
        let files: &[&str] = if format == "csv" {
            &["series.csv", "summary.csv", "stats.csv"]
        } else {
            &["series.npy", "series.json", "summary.csv", "summary.npy", "summary.json", "stats.csv"]
        };
        for f in files {
            assert!(read(&full.join(f)) == read(&merged.join(f)), "{format}: merged {f} differs from the unsharded run");
        }
        let run_json: serde_json::Value = serde_json::from_slice(&read(&merged.join("run.json"))).unwrap();
        assert_eq!(run_json["members"], 600);
        assert_eq!(run_json["merged_from"].as_array().unwrap().len(), 4);
        // the whole run's work, not the first shard's
        let full_json: serde_json::Value = serde_json::from_slice(&read(&full.join("run.json"))).unwrap();
        assert_eq!(run_json["member_steps"], full_json["member_steps"], "merged member_steps");
        // a shard missing, or given twice, is refused, and nothing is written
        for (args, why) in [(vec![&shards[0], &shards[1], &shards[2]], "missing"), (vec![&shards[0], &shards[1], &shards[1], &shards[2], &shards[3]], "twice")]
        {
            let bad = dir.path().join(format!("bad-{format}"));
            let o = bin().arg("merge").args(args).arg("--out").arg(&bad).output().unwrap();
            assert_eq!(o.status.code(), Some(2));
            assert!(String::from_utf8_lossy(&o.stderr).contains(why), "{}", String::from_utf8_lossy(&o.stderr));
            assert!(!bad.exists());
        }
    }
    // shards of different runs (another seed) are refused, naming the field
    let other = dir.path().join("other");
    run(&cfg, &other, &["--shard", "3/4", "--seed", "12"]);
    let o = bin()
        .arg("merge")
        .args([dir.path().join("s0-csv"), dir.path().join("s1-csv"), dir.path().join("s2-csv"), other])
        .arg("--out")
        .arg(dir.path().join("bad"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("'seed'"), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_run_killed_mid_way_resumes_to_the_same_output() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &BLOCH.replace("size = 600", "size = 1000"));
    let full = dir.path().join("full");
    let args = ["--format", "npy", "--block-members", "100"];
    // member 17, in the first block, is unstable: a finished block's flagged member stays out
    // of the statistics a resume rebuilds from the series
    ok(bin().arg("run").arg(&cfg).args(["--backend", "cpu", "--no-progress", "--out"]).arg(&full).args(args).env("QBAT_INJECT_FAULT", "nan-member=17"));
    let out = dir.path().join("r");
    let staging = dir.path().join(".r.partial");
    // each block sleeps 300 ms after its checkpoint, so the kill lands mid-run
    let mut child = bin()
        .arg("run")
        .arg(&cfg)
        .args(["--backend", "cpu", "--no-progress", "--out"])
        .arg(&out)
        .args(args)
        .env("QBAT_INJECT_FAULT", "slow-blocks=300,nan-member=17")
        .spawn()
        .unwrap();
    // kill it once at least two blocks are checkpointed
    kill_after_blocks(&mut child, &staging, 2);
    assert!(!out.exists(), "a killed run left a final directory");
    // a plain rerun refuses to overwrite the interrupted run
    let o = bin().arg("run").arg(&cfg).args(["--backend", "cpu", "--no-progress", "--out"]).arg(&out).args(args).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--resume"));
    // resuming with another seed is refused, naming the field
    let o = bin().arg("run").arg(&cfg).args(["--backend", "cpu", "--no-progress", "--seed", "5", "--resume"]).arg(&out).args(args).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("'seed'"), "{}", String::from_utf8_lossy(&o.stderr));
    let refused = |extra: &[&str], field: &str| {
        let o = bin().arg("run").arg(&cfg).args(["--no-progress", "--resume"]).arg(&out).args(extra).output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(field), "{field}: {stderr}");
        assert!(staging.join("checkpoint.json").is_file(), "a refused resume ({field}) lost the checkpoint");
    };
    // another block size would cut the members differently: refused
    refused(&["--backend", "cpu", "--format", "npy", "--block-members", "70"], "--block-members");
    // a bad device option fails before the checkpoint is touched
    refused(&["--backend", "gpu", "--format", "npy", "--devices", "no-such-gpu"], "gpu");
    // the series holds the finished blocks' values, from which the statistics are rebuilt: the
    // checkpoint keeps no state of them; one whose healthy count the series contradicts is
    // refused as damaged, and the checkpoint stays
    assert!(!std::fs::read_dir(&staging).unwrap().flatten().any(|e| e.file_name().to_string_lossy().contains("stats-state")));
    let ck = staging.join("checkpoint.json");
    let good = read(&ck);
    let mut sealed: serde_json::Value = serde_json::from_slice(&good).unwrap();
    let mut progress = sealed["progress"].clone();
    progress["health"]["ok"] = serde_json::json!(progress["health"]["ok"].as_u64().unwrap() + 1);
    let text = progress.to_string();
    sealed["blake3"] = serde_json::json!(blake3::hash(text.as_bytes()).to_hex().to_string());
    sealed["progress"] = progress;
    std::fs::write(&ck, sealed.to_string()).unwrap();
    refused(&["--backend", "cpu", "--format", "npy"], "healthy members");
    std::fs::write(&ck, &good).unwrap();
    // resumed without --block-members: the checkpoint's block size is kept
    let log = ok(bin().arg("run").arg(&cfg).args(["--backend", "cpu", "--no-progress", "--resume"]).arg(&out).args(["--format", "npy"]));
    assert!(log.contains("resumed from the checkpoint"), "{log}");
    for f in ["series.npy", "series.json", "summary.csv", "stats.csv"] {
        assert!(read(&full.join(f)) == read(&out.join(f)), "resumed {f} differs from the uninterrupted run");
    }
    assert!(!staging.exists(), "the checkpoint was not cleaned up");
    let run_json: serde_json::Value = serde_json::from_slice(&read(&out.join("run.json"))).unwrap();
    assert!(run_json["blocks"]["resumed"].as_u64().unwrap() >= 2);
}

#[test]
fn an_unstable_member_is_flagged_and_left_out_of_the_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), BLOCH);
    let (clean, flagged) = (dir.path().join("clean"), dir.path().join("flagged"));
    run(&cfg, &clean, &["--format", "npy"]);
    let log = ok(bin()
        .arg("run")
        .arg(&cfg)
        .args(["--backend", "cpu", "--no-progress", "--format", "npy", "--out"])
        .arg(&flagged)
        .env("QBAT_INJECT_FAULT", "nan-member=17"));
    assert!(log.contains("flagged unhealthy") && log.contains("smaller dt"), "{log}");
    let summary = std::fs::read_to_string(flagged.join("summary.csv")).unwrap();
    let rows: Vec<&str> = summary.lines().collect();
    assert!(rows[0].ends_with(",health"));
    assert!(rows[18].starts_with("17,") && rows[18].ends_with(",nonfinite"), "{}", rows[18]);
    assert_eq!(rows.iter().filter(|r| r.ends_with(",ok")).count(), 599);
    // The statistics are those of the 599 healthy members: recompute them from the clean run's series.
    let (shape, values) = npy(&clean.join("series.npy"));
    let (n, ns, nm) = (shape[0] as usize, shape[1] as usize, shape[2] as usize);
    let st = stats(&flagged.join("stats.csv"));
    for s in 0..ns {
        for k in 0..nm {
            let col: Vec<f64> = (0..n).filter(|&i| i != 17).map(|i| values[(i * ns + s) * nm + k]).collect();
            let exact = qbat_gpu::output::stats::column_stat(s, k, col);
            let got = &st[s * nm + k].1;
            assert!(got.iter().all(|v| v.is_finite()), "NaN reached the statistics");
            assert!((got[0] - exact.mean).abs() <= 1e-14 * exact.mean.abs().max(1e-300) + 1e-300);
            assert_eq!((got[2], got[3], got[7]), (exact.min, exact.max, 599.0));
        }
    }
    let run_json: serde_json::Value = serde_json::from_slice(&read(&flagged.join("run.json"))).unwrap();
    assert_eq!(run_json["health"]["nonfinite"], 1);
}

/// RK4 keeps the trace but not positivity: a pure cavity state's zero eigenvalues move by the
/// step's truncation error, which falls as dt^4. At dt = 0.01 the strongly coupled member's
/// smallest eigenvalue passes -1e-6 (about -2.5e-6 by t = 1) and is flagged, with the cause
/// and the dt to lower; at dt / 2 (16x less error) neither member is.
#[test]
fn a_state_pushed_non_positive_by_the_step_is_flagged_with_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    let text = |dt: f64| {
        format!("model = \"cavity-cells\"\n[params]\nn_fock = 20\nlambda = {{ values = [0.5, 1.5] }}\n[time]\ndt = {dt}\nt_end = 1.0\nsamples = 11\n[output]\nmeasures = [\"energy_b\", \"min_eigenvalue\"]\n")
    };
    let summary_health = |out: &Path| -> Vec<String> {
        std::fs::read_to_string(out.join("summary.csv")).unwrap().lines().skip(1).map(|r| r.rsplit(',').next().unwrap().to_string()).collect()
    };
    let coarse = dir.path().join("coarse");
    let log = run(&config(dir.path(), &text(0.01)), &coarse, &[]);
    assert_eq!(summary_health(&coarse), ["ok", "nonpositive"], "{log}");
    assert!(log.contains("1 non-positive") && log.contains("truncation error") && log.contains("smaller dt than 0.01"), "{log}");
    let fine = dir.path().join("fine");
    let log = run(&config(dir.path(), &text(0.005)), &fine, &[]);
    assert_eq!(summary_health(&fine), ["ok", "ok"], "{log}");
    assert!(!log.contains("flagged unhealthy"), "{log}");
}

#[test]
fn host_memory_stays_bounded_without_series() {
    // Same block size, 10x the members: without a series the peak memory may grow only by the
    // member list (a few hundred bytes a member), not by the results (here 61 x 6 f64 = 2.9 KB a
    // member, 590 MB for the larger run if they were held).
    let dir = tempfile::tempdir().unwrap();
    let text = BLOCH.replace("samples = 13", "samples = 61").replace("t_end = 6.0", "t_end = 3.0")
        + "[output]\nmeasures = [\"energy_b\", \"ergotropy_b\", \"capacity_b\", \"coherence_l1\", \"purity\", \"trace_error\"]\n";
    let peak = |members: &str| -> f64 {
        let cfg = config(dir.path(), &text.replace("size = 600", &format!("size = {members}")));
        let out = dir.path().join(format!("m{members}"));
        run(&cfg, &out, &["--series", "false", "--no-plots", "--verify", "0", "--block-members", "5000"]);
        let run_json: serde_json::Value = serde_json::from_slice(&read(&out.join("run.json"))).unwrap();
        run_json["peak_rss_bytes"].as_f64().expect("peak_rss_bytes in run.json")
    };
    let (small, large) = (peak("20000"), peak("200000"));
    let growth = large - small;
    eprintln!("peak RSS: {:.1} MB for 20k members, {:.1} MB for 200k", small / 1e6, large / 1e6);
    assert!(growth < 180_000.0 * 1024.0, "peak memory grew by {:.1} MB for 180k more members", growth / 1e6);
}

#[test]
fn injected_device_faults_rechunk_or_finish_on_the_cpu() {
    let _g = crate::common::SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !crate::common::have_gpu(false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), BLOCH);
    let gpu = |out: &Path, fault: Option<&str>, extra: &[&str]| -> std::process::Output {
        let mut c = bin();
        c.arg("run").arg(&cfg).args(["--backend", "gpu", "--no-progress", "--block-members", "200", "--format", "npy", "--out"]).arg(out).args(extra);
        if let Some(f) = fault {
            c.env("QBAT_INJECT_FAULT", f);
        }
        c.output().unwrap()
    };
    let plain = dir.path().join("plain");
    assert!(gpu(&plain, None, &[]).status.success());
    // out of memory: the block is re-chunked smaller and retried; the result is unchanged
    let oom = dir.path().join("oom");
    let o = gpu(&oom, Some("oom-once"), &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("re-chunked"));
    for f in ["series.npy", "summary.csv", "stats.csv"] {
        assert!(read(&plain.join(f)) == read(&oom.join(f)), "{f} changed after re-chunking");
    }
    // device lost at block 1: blocks 1.. finish on the CPU engine (f64), block 0 stays the GPU's
    let lost = dir.path().join("lost");
    let o = gpu(&lost, Some("lost-at=1"), &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("finished on the CPU engine"));
    let cpu = dir.path().join("cpu");
    run(&cfg, &cpu, &["--format", "npy"]);
    let (shape, on_gpu) = npy(&plain.join("series.npy"));
    let (_, on_cpu) = npy(&cpu.join("series.npy"));
    let (_, mixed) = npy(&lost.join("series.npy"));
    let per_member = (shape[1] * shape[2]) as usize;
    assert!(mixed[..200 * per_member] == on_gpu[..200 * per_member], "block 0 should be the GPU's");
    assert!(mixed[200 * per_member..] == on_cpu[200 * per_member..], "blocks 1.. should be the CPU engine's");
    // lost in the first block, before any checkpoint: exit 1, nothing kept, nothing in the way
    let first = dir.path().join("first");
    let o = gpu(&first, Some("lost-at=0"), &["--on-device-loss", "stop"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no block had finished, so nothing is kept") && !stderr.contains("--resume"), "{stderr}");
    assert!(!first.exists() && !dir.path().join(".first.partial").exists());
    // --on-device-loss stop: exit 1 with a resumable checkpoint; --resume on the CPU is refused
    // unless asked for (--allow-mixed-backends), and then finishes it
    let stop = dir.path().join("stop");
    let o = gpu(&stop, Some("lost-at=2"), &["--on-device-loss", "stop"]);
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("--resume") && stderr.matches("device lost").count() == 1, "{stderr}");
    assert!(!stop.exists() && dir.path().join(".stop.partial").is_dir());
    let log = ok(bin()
        .arg("run")
        .arg(&cfg)
        .args(["--backend", "cpu", "--no-progress", "--block-members", "200", "--format", "npy", "--allow-mixed-backends", "--resume"])
        .arg(&stop));
    assert!(log.contains("resumed"));
    let run_json: serde_json::Value = serde_json::from_slice(&read(&stop.join("run.json"))).unwrap();
    let engines: Vec<&str> = run_json["engines"].as_array().unwrap().iter().map(|e| e["backend"].as_str().unwrap()).collect();
    assert_eq!(engines, ["gpu", "cpu"], "{}", run_json["engines"]);
    // verify compares each member at its own engine's precision: the f32 members with the f32
    // tolerance, the f64 ones with the f64 tolerance, and the mixed run passes
    let verify = &run_json["verify"];
    assert_eq!(verify["pass"], true, "{verify}");
    let precisions: Vec<&str> = verify["deviations"].as_array().unwrap().iter().map(|d| d["precision"].as_str().unwrap()).collect();
    assert!(precisions.contains(&"f32") && precisions.contains(&"f64"), "{verify}");
    let (_, resumed) = npy(&stop.join("series.npy"));
    assert!(resumed[..400 * per_member] == on_gpu[..400 * per_member]);
    assert!(resumed[400 * per_member..] == on_cpu[400 * per_member..]);
}

/// A shard that lost its device part-way keeps its GPU blocks in the merge's `engines` (its
/// own `precision` says both, `mixed: f32 | f64`, as the merge's then does, each once):
/// `analyze` of the merge then takes the f32 tolerance, as it does for the shard alone.
#[test]
fn a_merge_keeps_the_engines_of_every_shards_blocks() {
    let _g = crate::common::SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !crate::common::have_gpu(false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), BLOCH);
    let shard = |k: usize, backend: &str, fault: Option<&str>| -> PathBuf {
        let out = dir.path().join(format!("s{k}"));
        let mut c = bin();
        c.arg("run")
            .arg(&cfg)
            .args(["--backend", backend, "--no-progress", "--no-plots", "--block-members", "100", "--shard", &format!("{k}/2"), "--out"])
            .arg(&out);
        if let Some(f) = fault {
            c.env("QBAT_INJECT_FAULT", f);
        }
        ok(&mut c);
        out
    };
    let parts = [shard(0, "cpu", None), shard(1, "gpu", Some("lost-at=1"))];
    let engines = |d: &Path| -> serde_json::Value {
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(d.join("run.json")).unwrap()).unwrap()["engines"].clone()
    };
    let lost = engines(&parts[1]);
    assert_eq!(
        lost,
        serde_json::json!([{"backend": "gpu", "precision": "f32", "blocks": 1}, {"backend": "cpu", "precision": "f64", "blocks": 2}]),
        "the premise"
    );
    let run_json = |d: &Path| -> serde_json::Value { serde_json::from_slice(&std::fs::read(d.join("run.json")).unwrap()).unwrap() };
    assert_eq!(
        (&run_json(&parts[1])["backend"], &run_json(&parts[1])["precision"]),
        (&serde_json::json!("mixed: gpu | cpu"), &serde_json::json!("mixed: f32 | f64"))
    );
    let merged = dir.path().join("m");
    ok(bin().arg("merge").args(&parts).arg("--out").arg(&merged).arg("--no-plots"));
    assert_eq!(engines(&merged), serde_json::json!([{"backend": "cpu", "precision": "f64", "blocks": 5}, {"backend": "gpu", "precision": "f32", "blocks": 1}]));
    // each engine once, the shard's own list taken apart (not "mixed: cpu | mixed: gpu | cpu")
    assert_eq!(
        (&run_json(&merged)["backend"], &run_json(&merged)["precision"]),
        (&serde_json::json!("mixed: cpu | gpu"), &serde_json::json!("mixed: f64 | f32"))
    );
    // analyze's monotone tolerance: f32's, as for the shard that ran in part in f32
    for d in [&parts[1], &merged] {
        let said = ok(bin().arg("analyze").arg(d).args(["--pairs", "energy_b:purity", "--no-plots"]));
        assert!(said.contains("(tolerance 1e-5 relative)"), "{}: {said}", d.display());
    }
}

#[test]
fn two_devices_give_the_single_device_result() {
    let _g = crate::common::SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !crate::common::have_gpu(false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // (a switch-off after the last sample changes nothing, and gives a note)
    let cfg = config(dir.path(), &format!("{BLOCH}[protocol]\nswitch_off = 100.0\n"));
    // (a part of) the adapter's name without commas, as --devices splits on them
    let adapter = qbat_gpu::engine::gpu_context(None, false).unwrap().info.name.split([',', ' ']).next().unwrap().to_string();
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    let gpu = |out: &Path, extra: &[&str]| {
        ok(bin().arg("run").arg(&cfg).args(["--backend", "gpu", "--no-progress", "--format", "npy", "--out"]).arg(out).args(extra))
    };
    gpu(&one, &[]);
    // the same adapter opened twice: two devices, two queues, blocks shared between them
    let began = std::time::Instant::now();
    let said = gpu(&two, &["--devices", &format!("{adapter},{adapter}")]);
    let wall = began.elapsed().as_secs_f64();
    // each note once, however many devices and blocks
    assert_eq!(said.matches("note: protocol.switch_off").count(), 1, "{said}");
    for f in ["series.npy", "summary.csv", "stats.csv"] {
        assert!(read(&one.join(f)) == read(&two.join(f)), "{f} differs between one and two devices");
    }
    let run_json: serde_json::Value = serde_json::from_slice(&read(&two.join("run.json"))).unwrap();
    let devices = run_json["engine_plan"]["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2);
    let members: u64 = devices.iter().map(|d| d["members"].as_u64().unwrap()).sum();
    assert_eq!(members, 600);
    // the devices integrate side by side: the run's integration time is the wall time they
    // took, at least the busier device's and within the command's, not the sum of both (which
    // made the throughput half of what it was)
    let busiest = devices.iter().map(|d| d["busy_s"].as_f64().unwrap()).fold(0.0, f64::max);
    let integrate = run_json["timings"]["integrate"].as_f64().unwrap();
    assert!(integrate >= busiest * 0.95 && integrate <= wall, "integrate {integrate} s against the busier device's {busiest} s and the command's {wall} s");
    // the device is both adapters, named
    assert_eq!(run_json["device"].as_str().unwrap().matches(" + ").count(), 1, "{}", run_json["device"]);
    // an adapter that does not exist is an input error naming the option
    let o =
        bin().arg("run").arg(&cfg).args(["--backend", "gpu", "--no-progress", "--devices", "no-such-gpu", "--out"]).arg(dir.path().join("x")).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--devices"));
}

#[test]
fn a_full_disk_is_a_clear_error_and_leaves_no_final_file() {
    // RLIMIT_FSIZE (a batch scheduler's `ulimit -f`) stands in for a full disk: the binary
    // ignores SIGXFSZ itself (not the shell: no `trap`), so a write past the limit fails with
    // EFBIG, as a write to a full file system fails with ENOSPC, and is reported.
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), BLOCH);
    let out = dir.path().join("o");
    let cmd = format!(
        "ulimit -f 200; exec '{}' run '{}' --backend cpu --no-progress --no-plots --out '{}'",
        env!("CARGO_BIN_EXE_qbat-gpu"),
        cfg.display(),
        out.display()
    );
    let o = Command::new("sh").arg("-c").arg(&cmd).env("XDG_RUNTIME_DIR", std::env::temp_dir()).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("i/o:") && (stderr.contains("series.csv") || stderr.contains("series.npy")), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!out.exists(), "a failed write left the final directory");
    // the blocks written before the failure are kept for --resume, under the staging name only
    let staging = dir.path().join(".o.partial");
    if staging.exists() {
        assert!(stderr.contains("--resume"), "{stderr}");
        for e in std::fs::read_dir(&staging).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            assert!(!["series.csv", "summary.csv", "stats.csv", "run.json"].contains(&name.as_str()), "{name} left in the staging directory");
        }
    }
}

/// At the config's largest magnitude (1e60) a measure that goes as a parameter's square (the
/// energy variance, about 1e120) keeps its statistics: stats.csv's std equals a two-pass std of
/// the stored series, computed here on values divided by their largest (so that no square
/// overflows), and is not 0 where the members differ. Above 1e60 the config is refused
/// (tests/bad_inputs). (At t = 0: a larger time at this scale would need more than 1e9 steps,
/// or a sample time below the smallest the config takes.)
#[test]
fn statistics_hold_at_the_largest_magnitude_the_config_takes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "model = \"spin-pair\"\n[params]\nwb = 1e60\nwc = 1e60\nj1 = 1e59\nj2 = 1e59\n[initial]\nrandom = \"haar\"\n[time]\ndt = 1e-62\ntimes = [0.0]\n[ensemble]\nsize = 12\nseed = 3\n[output]\nmeasures = [\"energy_b\", \"energy_variance_b\", \"ergotropy_b\"]\n",
    );
    let out = dir.path().join("o");
    run(&cfg, &out, &["--format", "npy", "--verify", "0", "--no-plots"]);
    let (shape, values) = npy(&out.join("series.npy"));
    let (n, ns, nm) = (shape[0] as usize, shape[1] as usize, shape[2] as usize);
    let st = stats(&out.join("stats.csv"));
    let mut differing = 0;
    for s in 0..ns {
        for k in 0..nm {
            let col: Vec<f64> = (0..n).map(|i| values[(i * ns + s) * nm + k]).collect();
            let largest = col.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            let unit: Vec<f64> = col.iter().map(|x| if largest > 0.0 { x / largest } else { 0.0 }).collect();
            let mean = unit.iter().sum::<f64>() / n as f64;
            let std = largest * (unit.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64).sqrt();
            let (name, got) = &st[s * nm + k];
            assert!(got[1].is_finite() && (got[1] - std).abs() <= 1e-12 * std.max(f64::MIN_POSITIVE), "{name}: std {} against {std:e}", got[1]);
            if got[2] != got[3] {
                assert!(got[1] > 0.0, "{name}: std 0 with min {} < max {}", got[2], got[3]);
                differing += 1;
            }
        }
    }
    // the energy (about 1e60), its variance (about 1e120) and the ergotropy differ by member
    assert_eq!(differing, 3);
}
