//! Inputs a hostile tester made by hand: shards whose series axes were forged and resealed,
//! a summary.csv naming other members than its series, a series.npy with bytes after its data,
//! a series.csv time beyond f64, and a `--devices` list of empty names. Each is refused with
//! exit 2 and one line naming the file or option.

use crate::common::{bin, config, ok, outcome_within, reseal};
use crate::integrity::{copy_dir, BLOCH};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A refusal: exit 2, one line naming `name`, no panic, and no output at `out` (if given).
fn assert_refused(got: (i32, String), name: &str, out: Option<&Path>, case: &str) {
    let (code, stderr) = got;
    assert_eq!(code, 2, "{case}: exit {code}: {stderr}");
    assert!(stderr.contains(name) && stderr.trim_end().lines().count() == 1, "{case}: one line naming {name}: {stderr}");
    assert!(!stderr.contains("panicked"), "{case}: {stderr}");
    if let Some(out) = out {
        assert!(!out.exists(), "{case}: an output was written");
    }
}

/// The two shards of BLOCH (members 0-29 and 30-59) in `dir`, in `format`.
fn two_shards(dir: &Path, format: &str) -> Vec<PathBuf> {
    let cfg = config(dir, BLOCH);
    (0..2)
        .map(|k| {
            let out = dir.join(format!("{format}{k}"));
            let shard = format!("{k}/2");
            ok(bin().arg("run").arg(&cfg).args(["--backend", "cpu", "--no-progress", "--no-plots", "--format", format, "--shard", &shard, "--out"]).arg(&out));
            out
        })
        .collect()
}

fn merge(dirs: &[PathBuf], out: &Path) -> (i32, String) {
    outcome_within(bin().arg("merge").args(dirs).arg("--out").arg(out).arg("--no-plots"), std::time::Duration::from_secs(60))
}

/// A shard's series.json edited (two measure names swapped, its ids shifted by 100, a time
/// nudged by 1e-9) and its manifest sealed again: the merge took the forged axes for every
/// shard's columns and exited 0. Now refused naming that shard's series.json; a series.csv
/// whose header swaps two names likewise. The shards as written still merge.
#[test]
fn merge_refuses_a_shard_whose_series_axes_are_not_the_first_shards() {
    let tmp = tempfile::tempdir().unwrap();
    let npy = two_shards(tmp.path(), "npy");
    ok(bin().arg("merge").args(&npy).arg("--out").arg(tmp.path().join("whole")).arg("--no-plots"));
    type Forgery = fn(&mut Value);
    let forgeries: [(&str, usize, Forgery); 5] = [
        ("swapped", 1, |a| a["measures"].as_array_mut().unwrap().swap(0, 1)),
        ("ids", 1, |a| {
            for m in a["members"].as_array_mut().unwrap() {
                *m = Value::from(m.as_u64().unwrap() + 100);
            }
        }),
        ("nudged", 1, |a| {
            let t = &mut a["times"][2];
            *t = Value::from(t.as_f64().unwrap() + 1e-9);
        }),
        ("first-ids", 0, |a| {
            for m in a["members"].as_array_mut().unwrap() {
                *m = Value::from(m.as_u64().unwrap() + 100);
            }
        }),
        ("dropped", 1, |a| {
            a["times"].as_array_mut().unwrap().pop();
        }),
    ];
    for (case, k, forge) in forgeries {
        let dirs: Vec<PathBuf> = npy
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let to = tmp.path().join(format!("{case}-{i}"));
                copy_dir(d, &to);
                to
            })
            .collect();
        let mut axes: Value = serde_json::from_slice(&std::fs::read(dirs[k].join("series.json")).unwrap()).unwrap();
        forge(&mut axes);
        reseal(&dirs[k], "series.json", &serde_json::to_vec_pretty(&axes).unwrap());
        let out = tmp.path().join(format!("{case}-out"));
        let shown = dirs[k].join("series.json").display().to_string();
        assert_refused(merge(&dirs, &out), &shown, Some(&out), case);
    }

    let csv = two_shards(tmp.path(), "csv");
    let forged = tmp.path().join("csv-forged");
    copy_dir(&csv[1], &forged);
    let text = std::fs::read_to_string(forged.join("series.csv")).unwrap();
    let (head, rest) = text.split_once('\n').unwrap();
    let mut cols: Vec<&str> = head.split(',').collect();
    let n = cols.len();
    cols.swap(n - 1, n - 2);
    reseal(&forged, "series.csv", format!("{}\n{rest}", cols.join(",")).as_bytes());
    let out = tmp.path().join("csv-out");
    assert_refused(merge(&[csv[0].clone(), forged.clone()], &out), &forged.join("series.csv").display().to_string(), Some(&out), "csv header");
}

/// A series.npy (f64, C order) of `shape` holding `values`, by hand.
fn npy(shape: &[usize], values: &[f64]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let mut dict = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({}), }}", dims.join(", "));
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// A hand-made run directory: series.npy + series.json of members `ids`, 4 times and two
/// measures, and summary.csv of `summary_ids` with the 4th flagged nonfinite.
fn hand_made(dir: &Path, ids: std::ops::Range<u64>, summary_ids: std::ops::Range<u64>) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("run.json"), r#"{"model": "two-qubit", "precision": "f64"}"#).unwrap();
    let n = ids.end - ids.start;
    let values: Vec<f64> = (0..n * 4 * 2).map(|i| ((i * 7919) % 101) as f64 / 101.0).collect();
    std::fs::write(dir.join("series.npy"), npy(&[n as usize, 4, 2], &values)).unwrap();
    let axes = serde_json::json!({"members": ids.collect::<Vec<u64>>(), "times": [0.0, 0.5, 1.0, 1.5], "measures": ["energy_b", "purity"]});
    std::fs::write(dir.join("series.json"), serde_json::to_vec_pretty(&axes).unwrap()).unwrap();
    let mut summary = String::from("member,health\n");
    for (k, id) in summary_ids.enumerate() {
        summary += &format!("{id},{}\n", if k == 3 { "nonfinite" } else { "ok" });
    }
    std::fs::write(dir.join("summary.csv"), summary).unwrap();
}

fn analyze(dir: &Path) -> (i32, String) {
    outcome_within(bin().arg("analyze").arg(dir).args(["--no-plots", "--pairs", "energy_b:purity"]), std::time::Duration::from_secs(60))
}

/// series.json lists members 10..17, summary.csv 0..7 with member 3 unhealthy: analyze exited
/// 0 and left no member out (a flag naming an id the series lacks was ignored). Now refused
/// naming summary.csv, as are a summary with a member fewer or more; the same ids analyse.
#[test]
fn analyze_refuses_a_summary_whose_ids_are_not_the_series() {
    let tmp = tempfile::tempdir().unwrap();
    for (case, summary) in [("other ids", 0..8), ("one fewer", 10..17), ("one more", 10..19)] {
        let d = tmp.path().join(case.replace(' ', "-"));
        hand_made(&d, 10..18, summary);
        assert_refused(analyze(&d), &d.join("summary.csv").display().to_string(), None, case);
        assert!(!d.join("analysis.csv").exists(), "{case}");
    }
    // a summary longer than the series is refused at its first row past the series' members,
    // not read whole (its ids, kept per run of consecutive ids, grew with a hand-made file):
    // the row after that is not even CSV
    let d = tmp.path().join("longer");
    hand_made(&d, 10..18, 10..19);
    let mut summary = std::fs::read_to_string(d.join("summary.csv")).unwrap();
    summary += "\"unterminated\n";
    std::fs::write(d.join("summary.csv"), summary).unwrap();
    let (code, stderr) = analyze(&d);
    assert_refused((code, stderr.clone()), &d.join("summary.csv").display().to_string(), None, "longer");
    assert!(stderr.contains("lists more than the 8 members"), "{stderr}");
    let d = tmp.path().join("same");
    hand_made(&d, 10..18, 10..18);
    let (code, stderr) = analyze(&d);
    assert_eq!(code, 0, "{stderr}");
    assert!(d.join("analysis.csv").exists(), "the refused cases' check names the file analyze writes");
}

/// A series.npy with bytes after the data its header's shape holds was read without comment:
/// numpy's format has the data follow the header exactly. Refused, naming the file.
#[test]
fn a_series_npy_with_bytes_after_its_data_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("r");
    hand_made(&d, 0..8, 0..8);
    let mut bytes = std::fs::read(d.join("series.npy")).unwrap();
    bytes.extend_from_slice(b"garbage!");
    std::fs::write(d.join("series.npy"), bytes).unwrap();
    let (code, stderr) = analyze(&d);
    assert_refused((code, stderr.clone()), &d.join("series.npy").display().to_string(), None, "trailer");
    assert!(stderr.contains("bytes after the data"), "{stderr}");
}

/// A series.csv time of 1e400 was reported as `times[1] = null` (JSON's word for it): now the
/// text as given, said to be beyond f64.
#[test]
fn a_series_csv_time_beyond_f64_is_named_as_written() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("r");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("run.json"), r#"{"model": "two-qubit", "precision": "f64"}"#).unwrap();
    let mut series = String::from("member,t,energy_b\n");
    for m in 0..3 {
        for t in ["0", "1e400", "2"] {
            series += &format!("{m},{t},0.5\n");
        }
    }
    std::fs::write(d.join("series.csv"), series).unwrap();
    let (code, stderr) = analyze(&d);
    assert_refused((code, stderr.clone()), "series.csv", None, "1e400");
    assert!(stderr.contains("1e400") && stderr.contains("beyond the range of f64") && !stderr.contains("null"), "{stderr}");
}

/// `--devices ",,,"` on the GPU said "no adapter named" (a sentence cut short): now that its
/// entries are empty; and one empty entry among names is refused, naming it. A run elsewhere
/// ignores the list with a note, as it does any list.
#[test]
fn a_devices_list_of_empty_names_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), BLOCH);
    let run = |spec: &str, backend: &str, out: &std::path::Path| {
        outcome_within(
            bin().arg("run").arg(&cfg).args(["--backend", backend, "--no-progress", "--no-plots", "--verify", "0", "--devices", spec, "--out"]).arg(out),
            std::time::Duration::from_secs(120),
        )
    };
    // a run not on the GPU ignores any list, with its note, as before
    let (code, stderr) = run(",,,", "cpu", &tmp.path().join("cpu"));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("--devices ignored"), "{stderr}");
    if !crate::common::have_gpu(false) {
        return;
    }
    for spec in [",,,", " , "] {
        let out = tmp.path().join("out");
        let got = run(spec, "gpu", &out);
        assert_refused(got.clone(), "--devices", Some(&out), spec);
        assert!(got.1.contains("entries are empty"), "{spec}: {}", got.1);
    }
    // an empty entry among names was dropped silently: the run spread over fewer devices than
    // listed. The names are real adapters' (index 0), so only the empty entry is wrong.
    // (a long list is quoted by its start: the message stays a short line)
    let long = format!("0{}", ",".repeat(20_000));
    for (spec, entry) in
        [("0,,0", "entry 2 of 3 is empty"), ("0,", "entry 2 of 2 is empty"), (",0", "entry 1 of 2 is empty"), (&long, "entry 2 of 20001 is empty")]
    {
        let out = tmp.path().join("out");
        let got = run(spec, "gpu", &out);
        assert_refused(got.clone(), "--devices", Some(&out), &spec[..spec.len().min(10)]);
        assert!(got.1.contains(entry) && got.1.len() < 400, "{}: {}", &spec[..spec.len().min(10)], got.1);
    }
}
