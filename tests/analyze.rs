//! `qbat-gpu analyze` and the run plots, checked against hand-computed cases, values recomputed
//! here directly from the files, and paper 000's closed-form relations.

use crate::common::{bin, ok, wait_within};

use qbat_gpu::analyze::{analyze_dir, analyze_gathered, AnalyzeOptions, Gather, Layout, Scope};
use qbat_gpu::output::plots;
use std::path::Path;

/// Run `config` through the binary on the f64 CPU engine into `out`.
fn run_config(dir: &Path, name: &str, config: &str, extra: &[&str]) -> std::path::PathBuf {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(&cfg, config).unwrap();
    let out = dir.join(name);
    ok(bin().arg("run").arg(&cfg).args(["--backend", "cpu", "--precision", "f64", "--no-progress", "--verify", "0", "--out"]).arg(&out).args(extra));
    out
}

/// series.csv as (member, t, values) rows.
fn read_series_csv(path: &Path) -> (Vec<String>, Vec<(u64, f64, Vec<f64>)>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').skip(2).map(String::from).collect();
    let rows = lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2..].iter().map(|v| v.parse().unwrap()).collect())
        })
        .collect();
    (header, rows)
}

/// Textbook Pearson, written out independently of the library.
fn pearson_direct(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
    cov / (vx * vy).sqrt()
}

/// Average ranks by sorting (no NaN): each run of equal values shares its mean position.
pub fn ranks_sorted(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].partial_cmp(&v[b]).unwrap());
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let j = (i..order.len()).take_while(|&j| v[order[j]] == v[order[i]]).last().unwrap();
        for &k in &order[i..=j] {
            r[k] = (i + j) as f64 / 2.0 + 1.0;
        }
        i = j + 1;
    }
    r
}

/// The pooled analysis.csv row of (a, b), parsed from the file.
fn csv_pooled(dir: &Path, a: &str, b: &str) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("analysis.csv")).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    assert_eq!(
        header,
        [
            "a",
            "b",
            "scope",
            "t",
            "n",
            "members",
            "members_total",
            "capped",
            "pearson",
            "spearman",
            "monotone_fraction",
            "monotone_increasing",
            "monotone_decreasing"
        ]
    );
    let line = text.lines().find(|l| l.starts_with(&format!("{a},{b},pooled,"))).unwrap_or_else(|| panic!("no pooled row {a},{b}"));
    line.split(',').map(String::from).collect()
}

// Paper 000 (Theorems 1 and 9, Fig. 2): from |eg> under the closed spin-pair dynamics,
// capacity_b = 2 wb sqrt(1 - E^2) and capacity_b = 2 wb sqrt(4 T^2 - 1): capacity_b is a strictly
// decreasing function of the concurrence E and a strictly increasing one of texture_b T. The
// paper states both "during the time evolution", with no restriction on t (its Fig. 2 shows
// t in [0, 50]); the relations need the pure |eg> evolution (no dephasing), where the state
// stays alpha|01> + beta|10>. So the run is Fig. 2's window [0, 50], the default state |eg>,
// no dephasing, f64 engine. Every sample then lies on one monotone curve: Spearman is -1 / +1
// to rounding, and the member's trajectory is monotone.
const PAPER000: &str = "model = \"spin-pair\"\n[params]\nwb = 1.0\nwc = 1.0\nj1 = 0.1\nj2 = 0.1\n[time]\ndt = 0.01\nt_end = 50.0\nsamples = 1001\n[output]\nmeasures = [\"capacity_b\", \"concurrence\", \"texture_b\"]\n";

#[test]
fn paper000_capacity_concurrence_texture_relations() {
    let tmp = tempfile::tempdir().unwrap();
    let csv_dir = run_config(tmp.path(), "p000csv", PAPER000, &["--no-plots"]);
    let npy_dir = run_config(tmp.path(), "p000npy", PAPER000, &["--no-plots", "--format", "npy"]);
    let opts = AnalyzeOptions { plots: false, ..Default::default() };
    let an = analyze_dir(&csv_dir, &opts).unwrap();
    assert_eq!((an.members_total, an.members_used, an.capped, an.times.len()), (1, 1, false, 1001));
    let ce = an.pooled("capacity_b", "concurrence").unwrap();
    let ct = an.pooled("capacity_b", "texture_b").unwrap();
    assert_eq!(ce.n, 1001);
    assert!((ce.spearman.unwrap() + 1.0).abs() < 1e-12, "spearman(capacity, concurrence) = {:?}", ce.spearman);
    assert!((ct.spearman.unwrap() - 1.0).abs() < 1e-12, "spearman(capacity, texture) = {:?}", ct.spearman);
    assert_eq!((ce.monotone_fraction, ce.monotone_increasing, ce.monotone_decreasing), (Some(1.0), Some(0.0), Some(1.0)));
    assert_eq!((ct.monotone_fraction, ct.monotone_increasing, ct.monotone_decreasing), (Some(1.0), Some(1.0), Some(0.0)));
    // a single member: per-time correlations over one member are undefined
    assert!(an.rows.iter().filter(|r| r.scope == Scope::PerTime).all(|r| r.pearson.is_none() && r.spearman.is_none() && r.n == 1));

    // The pooled values recomputed here from series.csv.
    let (names, rows) = read_series_csv(&csv_dir.join("series.csv"));
    let col = |m: &str| {
        let k = names.iter().position(|n| n == m).unwrap();
        rows.iter().map(|r| r.2[k]).collect::<Vec<f64>>()
    };
    let (cap, conc, tex) = (col("capacity_b"), col("concurrence"), col("texture_b"));
    // the closed forms themselves, so the -1/+1 is the paper's relation and not an artefact
    for ((c, e), t) in cap.iter().zip(&conc).zip(&tex) {
        assert!((c - 2.0 * (1.0 - e * e).max(0.0).sqrt()).abs() < 1e-6, "Theorem 1: C = {c}, E = {e}");
        assert!((c - 2.0 * (4.0 * t * t - 1.0).max(0.0).sqrt()).abs() < 1e-6, "Theorem 9: C = {c}, T = {t}");
    }
    assert!((ce.pearson.unwrap() - pearson_direct(&cap, &conc)).abs() < 1e-12);
    assert!((ct.pearson.unwrap() - pearson_direct(&cap, &tex)).abs() < 1e-12);
    assert!((ce.spearman.unwrap() - pearson_direct(&ranks_sorted(&cap), &ranks_sorted(&conc))).abs() < 1e-12);
    // Pearson is not +-1: the relation is monotone but not linear
    assert!(ce.pearson.unwrap() > -0.99 && ce.pearson.unwrap() < -0.5, "{:?}", ce.pearson);

    // analysis.csv holds the same numbers
    let row = csv_pooled(&csv_dir, "capacity_b", "concurrence");
    assert_eq!(row[4], "1001");
    assert_eq!(row[7], "false");
    assert_eq!(row[8].parse::<f64>().unwrap(), ce.pearson.unwrap());
    assert_eq!(row[9].parse::<f64>().unwrap(), ce.spearman.unwrap());
    assert_eq!(row[12].parse::<f64>().unwrap(), 1.0);

    // npy and csv series give the same analysis (csv floats round-trip exactly)
    let an_npy = analyze_dir(&npy_dir, &opts).unwrap();
    assert_eq!(an_npy.rows, an.rows);
}

/// A run directory written by hand: 2 members x 3 times of measures (x, y).
fn hand_dir(dir: &Path, npy: bool, values: &[[f64; 2]; 6]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("run.json"), r#"{"model": "two-qubit", "precision": "f64"}"#).unwrap();
    let times = [0.0, 0.5, 1.0];
    if npy {
        use npyz::WriterBuilder;
        let f = std::fs::File::create(dir.join("series.npy")).unwrap();
        let mut w = npyz::WriteOptions::<f64>::new().default_dtype().shape(&[2, 3, 2]).writer(f).begin_nd().unwrap();
        w.extend(values.iter().flatten().copied()).unwrap();
        w.finish().unwrap();
        std::fs::write(dir.join("series.json"), r#"{"members": [0, 1], "times": [0.0, 0.5, 1.0], "measures": ["x", "y"]}"#).unwrap();
    } else {
        let mut s = String::from("member,t,x,y\n");
        for (i, v) in values.iter().enumerate() {
            s += &format!("{},{:?},{:?},{:?}\n", i / 3, times[i % 3], v[0], v[1]);
        }
        std::fs::write(dir.join("series.csv"), s).unwrap();
    }
}

/// series.json axes a run never writes (times out of order, repeated, null among numbers or
/// NaN; a member listed twice) are refused, naming series.json; a steady state's single
/// t = inf (null) is read.
#[test]
fn hand_made_axes_a_run_never_writes_are_refused() {
    let values = [[0.0, 0.0], [1.0, 1.0], [2.0, 4.0], [3.0, 5.0], [4.0, 3.0], [5.0, 1.0]];
    let tmp = tempfile::tempdir().unwrap();
    let opts = AnalyzeOptions { pairs: vec![("x".into(), "y".into())], plots: false, ..Default::default() };
    let axes = |members: &str, times: &str| format!(r#"{{"members": {members}, "times": {times}, "measures": ["x", "y"]}}"#);
    for (k, (members, times, why)) in [
        ("[0, 1]", "[0.0, 1.0, 0.5]", "strictly increasing"),
        ("[0, 1]", "[0.0, 0.5, 0.5]", "strictly increasing"),
        ("[0, 1]", "[null, 0.5, 1.0]", "strictly increasing"),
        ("[0, 1]", "[0.0, 0.5, null]", "strictly increasing"),
        ("[3, 3]", "[0.0, 0.5, 1.0]", "member 3 is listed twice"),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = tmp.path().join(format!("d{k}"));
        hand_dir(&dir, true, &values);
        std::fs::write(dir.join("series.json"), axes(members, times)).unwrap();
        let err = analyze_dir(&dir, &opts).unwrap_err().to_string();
        assert!(err.contains("series.json") && err.contains(why), "{members} {times}: {err}");
    }
    // one sample at t = inf (a steady state's series): read
    let steady = tmp.path().join("steady");
    std::fs::create_dir_all(&steady).unwrap();
    std::fs::write(steady.join("run.json"), r#"{"model": "two-qubit", "precision": "f64"}"#).unwrap();
    {
        use npyz::WriterBuilder;
        let f = std::fs::File::create(steady.join("series.npy")).unwrap();
        let mut w = npyz::WriteOptions::<f64>::new().default_dtype().shape(&[3, 1, 2]).writer(f).begin_nd().unwrap();
        w.extend([0.0, 1.0, 1.0, 3.0, 2.0, 2.0]).unwrap();
        w.finish().unwrap();
    }
    std::fs::write(steady.join("series.json"), axes("[0, 1, 2]", "[null]")).unwrap();
    let an = analyze_dir(&steady, &opts).unwrap();
    assert_eq!(an.times, vec![f64::INFINITY]);
    assert!(an.pooled("x", "y").unwrap().pearson.is_some());
}

/// The same for a hand-made series.csv: the first member's times out of order, repeated, NaN or
/// -inf, and a member whose rows come twice, are refused naming series.csv (each was read: the
/// repeated member counted twice); a steady state's single t = inf is read.
#[test]
fn hand_made_csv_rows_a_run_never_writes_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = AnalyzeOptions { pairs: vec![("x".into(), "y".into())], plots: false, ..Default::default() };
    let rows = |members: &[u64], times: &[&str]| {
        let mut s = String::from("member,t,x,y\n");
        for (i, m) in members.iter().enumerate() {
            for (k, t) in times.iter().enumerate() {
                s += &format!("{m},{t},{},{}\n", i + k, (i * k) % 3);
            }
        }
        s
    };
    for (k, (members, times, why)) in [
        (&[0u64, 1][..], &["0.0", "1.0", "0.5"][..], "strictly increasing"),
        (&[0, 1], &["0.0", "0.5", "0.5"], "strictly increasing"),
        (&[0, 1], &["NaN", "0.5", "1.0"], "strictly increasing"),
        (&[0, 1], &["0.0", "0.5", "inf"], "strictly increasing"),
        (&[0, 1], &["NaN"], "NaN is not a time"),
        (&[0, 1], &["-inf"], "-inf is not a time"),
        (&[3, 4, 3], &["0.0", "0.5", "1.0"], "member 3 is listed twice"),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = tmp.path().join(format!("d{k}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("run.json"), r#"{"model": "two-qubit", "precision": "f64"}"#).unwrap();
        std::fs::write(dir.join("series.csv"), rows(members, times)).unwrap();
        let err = analyze_dir(&dir, &opts).unwrap_err().to_string();
        assert!(err.contains("series.csv") && err.contains(why), "{members:?} {times:?}: {err}");
    }
    let steady = tmp.path().join("steady");
    std::fs::create_dir_all(&steady).unwrap();
    std::fs::write(steady.join("run.json"), r#"{"model": "two-qubit", "precision": "f64"}"#).unwrap();
    std::fs::write(steady.join("series.csv"), rows(&[0, 1, 2], &["inf"])).unwrap();
    let an = analyze_dir(&steady, &opts).unwrap();
    assert_eq!(an.times, vec![f64::INFINITY]);
}

#[test]
fn hand_computed_correlations_csv_and_npy_and_cap() {
    // member 0: x = 0, 1, 2; y = 0, 1, 4 (increasing)   member 1: x = 3, 4, 5; y = 5, 3, 1 (decreasing)
    let values = [[0.0, 0.0], [1.0, 1.0], [2.0, 4.0], [3.0, 5.0], [4.0, 3.0], [5.0, 1.0]];
    let tmp = tempfile::tempdir().unwrap();
    let (dc, dn) = (tmp.path().join("c"), tmp.path().join("n"));
    hand_dir(&dc, false, &values);
    hand_dir(&dn, true, &values);
    let opts = AnalyzeOptions { pairs: vec![("x".into(), "y".into())], plots: false, ..Default::default() };
    let an = analyze_dir(&dc, &opts).unwrap();
    let p = an.pooled("x", "y").unwrap();
    // Pooled by hand: x dev -2.5..2.5, y = 0 1 4 5 3 1 (mean 7/3): Sxy = 6, Sxx = 17.5,
    // Syy = 52 - 6 (7/3)^2 = 58/3; ranks of y = 1, 2.5, 5, 6, 4, 2.5: Sxy = 6.5, Syy = 17.
    assert!((p.pearson.unwrap() - 6.0 / (17.5f64 * 58.0 / 3.0).sqrt()).abs() < 1e-14);
    assert!((p.spearman.unwrap() - 6.5 / (17.5f64 * 17.0).sqrt()).abs() < 1e-14);
    assert_eq!((p.monotone_fraction, p.monotone_increasing, p.monotone_decreasing), (Some(1.0), Some(0.5), Some(0.5)));
    // per time over the two members: t = 0 (0,0),(3,5): +1; t = 1 (2,4),(5,1): -1
    let at = |t: f64| an.rows.iter().find(|r| r.scope == Scope::PerTime && r.t == Some(t)).unwrap();
    assert_eq!((at(0.0).pearson, at(0.0).spearman, at(0.0).n), (Some(1.0), Some(1.0), 2));
    assert_eq!((at(1.0).pearson, at(1.0).spearman), (Some(-1.0), Some(-1.0)));
    // the npy series gives the same analysis
    assert_eq!(analyze_dir(&dn, &opts).unwrap().rows, an.rows);
    // capped at one member: the strided subset is member 0 alone (x = 0 1 2, y = 0 1 4:
    // Sxy = 4, Sxx = 2, Syy = 78/9); the monotone fractions still count both members
    let capped = analyze_dir(&dc, &AnalyzeOptions { max_members: 1, ..opts.clone() }).unwrap();
    assert!(capped.capped && capped.members_used == 1 && capped.members_total == 2);
    let p = capped.pooled("x", "y").unwrap();
    assert_eq!(p.n, 3);
    assert!((p.pearson.unwrap() - 4.0 / (2.0f64 * 78.0 / 9.0).sqrt()).abs() < 1e-14);
    assert_eq!(p.monotone_increasing, Some(0.5));
    assert_eq!(csv_pooled(&dc, "x", "y")[7], "true");
    // errors name the field
    let err = analyze_dir(&dc, &AnalyzeOptions { pairs: vec![("x".into(), "nope".into())], ..opts.clone() }).unwrap_err();
    assert!(err.to_string().contains("--pairs") && err.to_string().contains("nope"), "{err}");
    let err = analyze_dir(&dc, &AnalyzeOptions { pairs: vec![], ..opts.clone() }).unwrap_err();
    assert!(err.to_string().contains("capacity_b"), "{err}");
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(analyze_dir(&empty, &opts).unwrap_err().to_string().contains("series"));
    // a truncated csv is refused with its line
    let text = std::fs::read_to_string(dc.join("series.csv")).unwrap();
    std::fs::write(dc.join("series.csv"), &text[..text.len() - 12]).unwrap();
    assert!(analyze_dir(&dc, &opts).is_err());
}

/// Run directories of (x, y) series by hand, with members that have a NaN and members flagged
/// in summary.csv: 10 members x 4 times, and 9,000 members x 3 times (read in three chunks,
/// with unhealthy members in each). The correlation set (all members, or the strided subset
/// of a cap) without the unhealthy members, recomputed here pooled and per time.
#[test]
fn flagged_members_leave_the_correlation_set_pooled_and_per_time() {
    let mut seed = 5u64;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let small = (10usize, vec![0.0, 0.5, 1.0, 1.5], vec![3], vec![6], vec![10, 5]);
    let large = (9000usize, vec![0.0, 1.0, 2.0], vec![3, 4500, 8999], vec![6, 4096, 4100], vec![9000, 2500]);
    for (n, times, with_nan, flagged, caps) in [small, large] {
        // values[i][s] = (x, y), y partly following x; ties in x at the first time
        let mut values: Vec<Vec<(f64, f64)>> = (0..n).map(|_| times.iter().map(|_| (next(), 0.0)).collect()).collect();
        for v in values.iter_mut().flatten() {
            v.1 = v.0 * v.0 + 0.3 * next();
        }
        for (i, member) in values.iter_mut().enumerate() {
            member[0].0 = (i % 7) as f64;
        }
        for &i in &with_nan {
            values[i][1].1 = f64::NAN;
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("r");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("run.json"), r#"{"model": "two-qubit", "precision": "f64"}"#).unwrap();
        let mut series = String::from("member,t,x,y\n");
        let mut summary = String::from("member,health\n");
        for (i, member) in values.iter().enumerate() {
            for (t, (x, y)) in times.iter().zip(member) {
                series += &format!("{i},{t:?},{x:?},{y:?}\n");
            }
            summary += &format!("{i},{}\n", if flagged.contains(&i) { "trace_drift" } else { "ok" });
        }
        std::fs::write(dir.join("series.csv"), series).unwrap();
        std::fs::write(dir.join("summary.csv"), summary).unwrap();
        // The 2-D histogram over the healthy members' samples (not flagged, every value
        // finite, as the correlations take them), across the chunks: its marginal along x
        // binned here over x's range among them.
        let h = &plots::hist2d_data(&dir, &[("x".into(), "y".into())], 60).unwrap()[0];
        let healthy_members = || values.iter().enumerate().filter(|(i, _)| !with_nan.contains(i) && !flagged.contains(i)).flat_map(|(_, m)| m);
        let (lo, hi) = healthy_members().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(x, _)| (lo.min(x), hi.max(x)));
        let finite: Vec<f64> = healthy_members().map(|v| v.0).collect();
        let mut marginal = vec![0u64; 60];
        for x in &finite {
            marginal[(((x - lo) / (hi - lo) * 60.0).floor() as usize).min(59)] += 1;
        }
        assert_eq!(h.counts.chunks(60).map(|row| row.iter().sum::<u64>()).collect::<Vec<_>>(), marginal, "{n} members");
        for cap in caps {
            // member u of the n' members summary.csv does not flag is in the strided subset of
            // `cap` when (u * cap) mod n' < cap (a member with a NaN, not flagged there, leaves
            // its place empty)
            let unflagged: Vec<usize> = (0..n).filter(|i| !flagged.contains(i)).collect();
            let strided = unflagged.len();
            let set: Vec<usize> = unflagged.iter().enumerate().filter(|&(u, i)| (u * cap) % strided < cap && !with_nan.contains(i)).map(|(_, &i)| i).collect();
            let opts = AnalyzeOptions { pairs: vec![("x".into(), "y".into())], plots: false, max_members: cap, ..Default::default() };
            let an = analyze_dir(&dir, &opts).unwrap();
            let unhealthy = with_nan.len() + flagged.len();
            assert_eq!((an.members_used, an.skipped, an.capped), (set.len(), unhealthy, set.len() < n - unhealthy), "{n} members, cap {cap}");
            let values = &values;
            let pooled_of = |s: Option<usize>| -> (Vec<f64>, Vec<f64>) {
                set.iter().flat_map(|&i| (0..times.len()).filter(move |&t| s.is_none_or(|s| s == t)).map(move |t| values[i][t])).unzip()
            };
            let close = |got: Option<f64>, want: f64| assert!((got.unwrap() - want).abs() < 1e-12, "{n} members, cap {cap}: {got:?} against {want}");
            let (x, y) = pooled_of(None);
            let p = an.pooled("x", "y").unwrap();
            assert_eq!(p.n, set.len() * times.len());
            close(p.pearson, pearson_direct(&x, &y));
            close(p.spearman, pearson_direct(&ranks_sorted(&x), &ranks_sorted(&y)));
            for (s, &t) in times.iter().enumerate() {
                let (x, y) = pooled_of(Some(s));
                let row = an.rows.iter().find(|r| r.scope == Scope::PerTime && r.t == Some(t)).unwrap();
                assert_eq!(row.n, set.len());
                close(row.pearson, pearson_direct(&x, &y));
                close(row.spearman, pearson_direct(&ranks_sorted(&x), &ranks_sorted(&y)));
            }
            // The same members fed to a `Gather` a block at a time, as a streamed run feeds them
            // (the flags summary.csv holds), and the analysis finished from it with the 2-D
            // histogram: the rows `analyze` reads from the series, and the same histogram (here
            // counted in a pass over the series: members were left out).
            let plotted = AnalyzeOptions { plots: true, ..opts.clone() };
            let (fed_dir, read_dir) = (tmp.path().join(format!("fed-{cap}")), tmp.path().join(format!("read-{cap}")));
            for d in [&fed_dir, &read_dir] {
                std::fs::create_dir(d).unwrap();
                for f in ["run.json", "series.csv", "summary.csv"] {
                    std::fs::copy(dir.join(f), d.join(f)).unwrap();
                }
            }
            let names = ["x".to_string(), "y".to_string()];
            let layout = Layout::new(&names, vec![("x".into(), "y".into())], (n, 0), times.len(), cap, 1e-9).unwrap();
            let mut gather = Gather::new(layout, None);
            let blocks: Vec<Vec<f64>> = values.iter().map(|m| m.iter().flat_map(|&(x, y)| [x, y]).collect()).collect();
            let ids: Vec<usize> = (0..n).collect();
            for block in ids.chunks(if n > 100 { 2500 } else { 3 }) {
                let members: Vec<(bool, &[f64])> = block.iter().map(|&i| (flagged.contains(&i), &blocks[i][..])).collect();
                gather.add(&members);
            }
            let fed = analyze_gathered(&fed_dir, gather, &plotted).unwrap();
            let read = analyze_dir(&read_dir, &plotted).unwrap();
            // (the blocks' stride ran over every member, the flags learnt as they came: where a
            // cap applies, the series is read again for the set `analyze` takes)
            assert!(fed.from_blocks == (n <= cap) && !read.from_blocks, "{n} members, cap {cap}");
            assert_eq!((&fed.rows, fed.members_used, fed.skipped), (&read.rows, read.members_used, read.skipped), "{n} members, cap {cap}");
            for f in ["analysis.csv", "plot_hist2d_x_y.svg"] {
                assert!(std::fs::read(fed_dir.join(f)).unwrap() == std::fs::read(read_dir.join(f)).unwrap(), "{f}: {n} members, cap {cap}");
            }
        }
    }
}

#[test]
fn analyze_cli_prints_the_table_and_writes_histograms() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_config(tmp.path(), "p000", PAPER000, &["--no-plots"]);
    let stdout = ok(bin().arg("analyze").arg(&out).args(["--pairs", "capacity_b:concurrence,capacity_b:texture_b"]));
    assert!(stdout.contains("capacity_b") && stdout.contains("-1.0000") && stdout.contains("+1.0000"), "{stdout}");
    for f in ["analysis.csv", "plot_hist2d_capacity_b_concurrence.png", "plot_hist2d_capacity_b_concurrence.svg"] {
        assert!(out.join(f).metadata().unwrap().len() > 0, "{f}");
    }
    let o = bin().arg("analyze").arg(&out).args(["--pairs", "capacity_b"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--pairs"));
}

fn check_png(path: &Path) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = dec.read_info().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut buf = vec![0; reader.output_buffer_size().expect("an image of a plot's size fits in memory")];
    let info = reader.next_frame(&mut buf).unwrap();
    assert!(info.width >= 600 && info.height >= 300, "{}", path.display());
    // not blank: some pixels are dark (text, axes)
    assert!(buf.chunks(3).any(|p| p.iter().all(|c| *c < 100)), "{} has no dark pixel", path.display());
}

fn check_svg(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"), "{}", path.display());
    assert!(text.contains("<text"), "{} has no text", path.display());
}

/// Every plot file of `dir` is a valid PNG or SVG; returns the plot names.
fn check_plots(dir: &Path) -> Vec<String> {
    let mut names = vec![];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.starts_with("plot_") {
            continue;
        }
        assert!(e.metadata().unwrap().len() > 0, "{name}");
        if name.ends_with(".png") {
            check_png(&e.path());
        } else if name.ends_with(".svg") {
            check_svg(&e.path());
        } else {
            panic!("unexpected plot file {name}");
        }
        names.push(name);
    }
    names.sort();
    names
}

#[test]
fn run_plots_are_valid_and_match_the_files() {
    let tmp = tempfile::tempdir().unwrap();
    // a small Haar ensemble of paper 000's spin pair, series kept
    let cfg = "model = \"spin-pair\"\n[params]\nwb = 1.0\nwc = 1.0\nj1 = 0.1\nj2 = 0.1\n[initial]\nrandom = \"haar\"\n[time]\ndt = 0.05\nt_end = 10.0\nsamples = 21\n[ensemble]\nsize = 30\nseed = 3\n[output]\nmeasures = [\"capacity_b\", \"concurrence\", \"texture_b\", \"energy_b\"]\n";
    let out = run_config(tmp.path(), "haar", cfg, &[]);
    let names = check_plots(&out);
    for m in ["capacity_b", "concurrence", "texture_b", "energy_b"] {
        assert!(names.contains(&format!("plot_{m}.png")) && names.contains(&format!("plot_{m}.svg")), "{names:?}");
    }
    assert!(names.contains(&"plot_hist2d_capacity_b_concurrence.png".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("plot_series")), "30 members: no per-member plot");

    // The band data is stats.csv's mean, q05 and q95, parsed here independently.
    let stats_text = std::fs::read_to_string(out.join("stats.csv")).unwrap();
    let bands = plots::band_plot_data(&qbat_gpu::output::stats::read_stats(&out).unwrap());
    assert_eq!(bands.len(), 4);
    let mut checked = 0;
    for line in stats_text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let band = bands.iter().find(|b| b.measure == f[1]).unwrap();
        let s = band.t.iter().position(|t| *t == f[0].parse::<f64>().unwrap()).unwrap();
        assert_eq!(band.mean[s], f[2].parse::<f64>().unwrap());
        assert_eq!(band.q05[s], f[6].parse::<f64>().unwrap());
        assert_eq!(band.q95[s], f[8].parse::<f64>().unwrap());
        checked += 1;
    }
    assert_eq!(checked, 4 * 21);

    // The histogram counts every (member, time) sample once, in the bin its values fall in.
    let pairs = vec![("capacity_b".to_string(), "concurrence".to_string())];
    let h = &plots::hist2d_data(&out, &pairs, 10).unwrap()[0];
    assert_eq!(h.counts.iter().sum::<u64>(), 30 * 21);
    let (names_s, rows) = read_series_csv(&out.join("series.csv"));
    let (ka, kb) = (names_s.iter().position(|n| n == "capacity_b").unwrap(), names_s.iter().position(|n| n == "concurrence").unwrap());
    let lo_a = rows.iter().map(|r| r.2[ka]).fold(f64::INFINITY, f64::min);
    let hi_a = rows.iter().map(|r| r.2[ka]).fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(h.a_range, (lo_a, hi_a));
    let mut counts = vec![0u64; 100];
    for r in &rows {
        let bin = |v: f64, (lo, hi): (f64, f64)| (((v - lo) / (hi - lo) * 10.0).floor() as usize).min(9);
        counts[bin(r.2[ka], h.a_range) * 10 + bin(r.2[kb], h.b_range)] += 1;
    }
    assert_eq!(counts, h.counts);
}

#[test]
fn theta_sweep_peaks_match_paper004() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = "model = \"bloch-charger\"\n[params]\nwb = 1.0\nj = 1.0\n[initial]\ntheta = { linspace = [0.5, 3.141592653589793, 5] }\n[time]\ndt = 0.001\nt_end = 2.0\nsamples = 2001\n[output]\nmeasures = [\"energy_b\", \"ergotropy_b\", \"power_b\", \"ergotropic_power_b\"]\n";
    let out = run_config(tmp.path(), "bloch", cfg, &["--series", "false"]);
    let names = check_plots(&out);
    assert!(names.contains(&"plot_peaks_theta.png".to_string()) && names.contains(&"plot_peak_times_theta.svg".to_string()), "{names:?}");
    let sm = qbat_gpu::output::summary::read_summary(&out).unwrap().unwrap();
    let (theta, peaks, times) = plots::theta_plot_data(&sm).unwrap();
    assert_eq!(theta.len(), 5);
    // paper 004 (wb = j = 1): t_E = pi/(2j), E(t_E) = wb s^2; t_P = A/j, P = B wb j s^2; at
    // theta = pi t_ergP = C/j, with value D wb j. A, B, C, D from the closed forms (see
    // `paper004_optimal_constants`). The peaks are samples 1e-3 apart: within half a spacing
    // (plus j s^2) of the true peak, and below it by at most s^2 (validate.rs derives both).
    let [a, b, c, d] = qbat_gpu::validate::paper004_optimal_constants();
    let s = 1e-3;
    for (i, th) in theta.iter().enumerate() {
        let s2 = (th / 2.0).sin().powi(2);
        assert!((times[0].1[i] - std::f64::consts::FRAC_PI_2).abs() <= 0.5 * s + s * s, "t_E = {}", times[0].1[i]);
        assert!((peaks[0].1[i] - s2).abs() < s * s, "E(t_E) = {} vs {s2}", peaks[0].1[i]);
        assert!((times[2].1[i] - a).abs() <= 0.5 * s + s * s, "t_P = {} vs A = {a}", times[2].1[i]);
        assert!((peaks[2].1[i] - b * s2).abs() < s * s, "P(t_P) = {} vs B s^2 = {}", peaks[2].1[i], b * s2);
    }
    assert!((times[3].1[4] - c).abs() <= 0.5 * s + s * s, "t_ergP = {} vs C = {c}", times[3].1[4]);
    assert!((peaks[3].1[4] - d).abs() < s * s, "ergP(t_ergP) = {} vs D = {d}", peaks[3].1[4]);
}

/// A theta sweep of more members than the plots draw: `THETA_PLOT_POINTS` of them, evenly
/// spaced in theta order with both ends (a point per member of a million-member run took
/// hundreds of MB of SVG), and the captions say how many of how many.
#[test]
fn a_large_theta_sweep_is_drawn_thinned() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 5001;
    let cfg = format!("model = \"bloch-charger\"\n[params]\nwb = 1.0\nj = 1.0\n[initial]\ntheta = {{ linspace = [0.0, 3.0, {n}] }}\n[time]\ndt = 0.01\nt_end = 0.2\nsamples = 3\n[output]\nmeasures = [\"energy_b\"]\n");
    let out = run_config(tmp.path(), "sweep", &cfg, &["--series", "false"]);
    let sm = qbat_gpu::output::summary::read_summary(&out).unwrap().unwrap();
    let (theta, peaks, _) = plots::theta_plot_data(&sm).unwrap();
    let drawn = plots::THETA_PLOT_POINTS;
    assert_eq!(theta.len(), drawn);
    let grid = |i: usize| 3.0 * i as f64 / (n - 1) as f64;
    for (j, th) in theta.iter().enumerate() {
        // the j-th drawn is grid point j (n - 1) / (drawn - 1), rounded down: 0 and n - 1 among them
        assert!((th - grid(j * (n - 1) / (drawn - 1))).abs() < 1e-12, "theta[{j}] = {th}");
    }
    assert_eq!((theta[0], theta[drawn - 1]), (0.0, 3.0));
    // each curve keeps its members' own values: E peaks at its last sample here, below wb sin^2(theta/2)
    for (th, e) in theta.iter().zip(&peaks[0].1) {
        assert!(*e <= (th / 2.0).sin().powi(2) + 1e-9, "max energy_b {e} at theta {th}");
    }
    let svg = std::fs::read_to_string(out.join("plot_peaks_theta.svg")).unwrap();
    assert!(svg.contains(&format!("{drawn} of {n} members")), "the caption does not say the plot is thinned");
}

#[test]
fn cavity_curves_are_against_lambda_t() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = "model = \"cavity-cells\"\n[params]\nlambda = { values = [0.5, 2.0] }\ng = 0.2\nalpha = 1.0\nn_fock = 8\n[time]\ndt = 0.01\nt_end = 2.0\nsamples = 21\n[output]\nmeasures = [\"stored_energy_b\", \"concurrence\", \"fock_tail\"]\n";
    let out = run_config(tmp.path(), "cav", cfg, &[]);
    let names = check_plots(&out);
    assert!(names.contains(&"plot_cavity_lambda_t.png".to_string()), "{names:?}");
    let run: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    let sm = qbat_gpu::output::summary::read_summary(&out).unwrap().unwrap();
    let panels = plots::cavity_plot_data(&out, &run, Some(&sm)).unwrap();
    assert_eq!(panels.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(), ["stored_energy_b", "concurrence"]);
    let (names_s, rows) = read_series_csv(&out.join("series.csv"));
    let k = names_s.iter().position(|n| n == "stored_energy_b").unwrap();
    for (m, lambda) in [0.5, 2.0].iter().enumerate() {
        let (label, pts) = &panels[0].1[m];
        assert_eq!(label, &format!("lambda = {lambda}"));
        let member: Vec<_> = rows.iter().filter(|r| r.0 == m as u64).collect();
        for (p, r) in pts.iter().zip(&member) {
            assert_eq!(*p, (lambda * r.1, r.2[k]));
        }
    }
}

/// Members of one parameter point share its label: each is named by its id too (they were told
/// apart by colour alone, with the same legend entry twice).
#[test]
fn cavity_curves_of_one_point_are_named_by_member() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = "model = \"cavity-cells\"\n[params]\nlambda = { values = [0.5, 2.0] }\ng = 0.2\nalpha = 1.0\nn_fock = 6\n[time]\ndt = 0.01\nt_end = 0.5\nsamples = 6\n[ensemble]\nsize = 4\n[output]\nmeasures = [\"stored_energy_b\", \"concurrence\"]\n";
    let out = run_config(tmp.path(), "cav", cfg, &[]);
    let run: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    let sm = qbat_gpu::output::summary::read_summary(&out).unwrap().unwrap();
    let panels = plots::cavity_plot_data(&out, &run, Some(&sm)).unwrap();
    // member i is grid point i mod 2
    let want = ["member 0: lambda = 0.5", "member 1: lambda = 2", "member 2: lambda = 0.5", "member 3: lambda = 2"];
    for (measure, curves) in &panels {
        assert_eq!(curves.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(), want, "{measure}");
    }
    let svg = std::fs::read_to_string(out.join("plot_cavity_lambda_t.svg")).unwrap();
    assert!(svg.contains("member 3: lambda = 2"), "the legend does not name the members");
}

#[test]
fn steady_grid_heatmap() {
    // A steady-state run's files: two swept parameters, one sample time t = inf.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("run.json"), r#"{"model": "driven-pair", "precision": "f64"}"#).unwrap();
    let mut summary = String::from("member,f,gamma,max_energy_b,t_max_energy_b,max_ergotropy_b,t_max_ergotropy_b,max_power_b,t_max_power_b,max_ergotropic_power_b,t_max_ergotropic_power_b\n");
    let mut series = String::from("member,t,energy_b,energy_c\n");
    let mut want = vec![];
    for (i, (f, g)) in [(0.5, 0.1), (1.0, 0.1), (1.5, 0.1), (0.5, 0.2), (1.0, 0.2), (1.5, 0.2)].iter().enumerate() {
        let (eb, ec) = qbat_gpu::validate::eq8(f / 1.0, g / 1.0);
        summary += &format!("{i},{f},{g},0,0,0,0,0,0,0,0\n");
        series += &format!("{i},inf,{eb:?},{ec:?}\n");
        want.push(eb);
    }
    std::fs::write(dir.join("summary.csv"), summary).unwrap();
    std::fs::write(dir.join("series.csv"), series).unwrap();
    let files = plots::write_run_plots(dir, true).unwrap();
    assert!(files.iter().any(|f| f.ends_with("plot_steady_energy_b.png")), "{files:?}");
    check_plots(dir);
    let sm = qbat_gpu::output::summary::read_summary(dir).unwrap().unwrap();
    let (x, y, xs, ys, vals) = plots::steady_heatmap_data(dir, &sm, "energy_b").unwrap().unwrap();
    assert_eq!((x.as_str(), y.as_str()), ("f", "gamma"));
    assert_eq!((xs.len(), ys.len()), (6, 6));
    assert_eq!(vals, want);
}

/// `qbat-gpu ARGS` with a deadline: (exit code, stderr), or a failure if it is still running.
fn run_within(args: &[&std::ffi::OsStr], deadline: std::time::Duration, stderr_to: &Path) -> (Option<i32>, String) {
    let err = std::fs::File::create(stderr_to).unwrap();
    let mut child = bin().args(args).stdout(std::process::Stdio::null()).stderr(err).spawn().unwrap();
    let status = wait_within(&mut child, deadline).unwrap_or_else(|| panic!("qbat-gpu {args:?} still running after {deadline:?}"));
    (status.code(), std::fs::read_to_string(stderr_to).unwrap())
}

// Finite values too far apart for an axis (their difference overflows to inf) leave the
// histogram undrawn, with a note naming it; a wide but finite spread is drawn. A series.npy
// cut inside its header, or with a header npyz could not parse in bounded time and memory, is
// bad input (exit 2, naming the file).
#[test]
fn extreme_and_cut_series() {
    let tmp = tempfile::tempdir().unwrap();
    let deadline = std::time::Duration::from_secs(120);
    let log = tmp.path().join("stderr.txt");
    for (name, big, drawn) in [("wide", 1.7e308, false), ("finite", 8e307, true)] {
        let dir = tmp.path().join(name);
        let values = [[-big, 0.0], [big, 1.0], [-big, 4.0], [big, 5.0], [-big, 3.0], [big, 1.0]];
        hand_dir(&dir, true, &values);
        let (code, stderr) = run_within(&["analyze".as_ref(), dir.as_os_str(), "--pairs".as_ref(), "x:y".as_ref()], deadline, &log);
        assert_eq!(code, Some(0), "{name}: {stderr}");
        assert!(dir.join("analysis.csv").is_file(), "{name}");
        let png = dir.join("plot_hist2d_x_y.png");
        assert_eq!(png.is_file(), drawn, "{name}: {stderr}");
        assert_eq!(stderr.contains("plot_hist2d_x_y not drawn"), !drawn, "{name}: {stderr}");
        if drawn {
            check_png(&png);
        }
    }
    let dir = tmp.path().join("finite");
    let whole = std::fs::read(dir.join("series.npy")).unwrap();
    // headers npyz would choke on: a length of 4 GiB (an allocation of it), brackets nested 30
    // deep (a parse exponential in the depth)
    let mut huge = b"\x93NUMPY\x02\x00".to_vec();
    huge.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let deep_header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {}2{}, }}\n", "[".repeat(30), "]".repeat(30));
    let mut deep = b"\x93NUMPY\x01\x00".to_vec();
    deep.extend_from_slice(&(deep_header.len() as u16).to_le_bytes());
    deep.extend_from_slice(deep_header.as_bytes());
    for (case, bytes) in [("cut at 5", whole[..5].to_vec()), ("cut at 60", whole[..60].to_vec()), ("huge header", huge), ("deep header", deep)] {
        std::fs::write(dir.join("series.npy"), &bytes).unwrap();
        let (code, stderr) = run_within(&["analyze".as_ref(), dir.as_os_str(), "--no-plots".as_ref()], deadline, &log);
        assert_eq!(code, Some(2), "{case}: {stderr}");
        assert!(stderr.contains("series.npy") && stderr.trim().lines().count() == 1, "{case}: {stderr}");
    }
}

/// The default study's model and times, shorter (t in [0, 5], 51 samples).
const SPIN_PAIR: &str = r#"
model = "spin-pair"
[params]
wb = 1.0
wc = 1.0
j1 = 0.1
j2 = 0.1
[initial]
random = "haar"
[time]
dt = 0.01
t_end = 5.0
samples = 51
[ensemble]
size = 70
seed = 5
"#;

/// `analyze` on a copy of the output `out` (its analysis files left out): analysis.csv and
/// every 2-D histogram's svg are the bytes the run wrote.
fn same_as_analyze_reads(tmp: &Path, out: &Path) {
    let manifest = qbat_gpu::output::manifest::Manifest::read(out).unwrap().unwrap();
    manifest.verify(out).unwrap();
    let again = tmp.join("again");
    let _ = std::fs::remove_dir_all(&again);
    std::fs::create_dir(&again).unwrap();
    let analysis_file = |n: &str| n == "analysis.csv" || n.starts_with("plot_hist2d_");
    for f in manifest.files.iter().filter(|f| !analysis_file(&f.name)) {
        std::fs::copy(out.join(&f.name), again.join(&f.name)).unwrap();
    }
    let ours: Vec<&str> = manifest.files.iter().map(|f| f.name.as_str()).filter(|n| analysis_file(n) && !n.ends_with(".png")).collect();
    assert!(ours.len() == 1 + 9, "analysis.csv and 9 histograms: {ours:?}");
    ok(bin().arg("analyze").arg(&again));
    for f in ours {
        assert!(std::fs::read(out.join(f)).unwrap() == std::fs::read(again.join(f)).unwrap(), "{f} differs from analyze's own");
    }
}

/// The default study's analysis, taken from its blocks as they are written and read back
/// (three blocks here), is the one `analyze` reads from the files, bit for bit: analysis.csv
/// and the 2-D histograms (counted from the gathered columns). With a member flagged unhealthy
/// (the histograms then counted in a pass over the series), the same.
#[test]
fn a_study_analysis_taken_from_its_blocks_is_the_one_analyze_reads() {
    use qbat_gpu::engine::{Backend, Precision, RunOptions};
    use qbat_gpu::output::{Format, OutputOptions};
    use qbat_gpu::study::{run_study, OnDeviceLoss, StudyOptions};
    let tmp = tempfile::tempdir().unwrap();
    let plan = qbat_gpu::config::parse_plan(SPIN_PAIR, &Default::default()).unwrap();
    for precision in [Precision::F64, Precision::F32] {
        let out = tmp.path().join(format!("study-{precision:?}"));
        let opts = StudyOptions {
            run: RunOptions { backend: Backend::Cpu, precision, verify: 0, ..Default::default() },
            output: OutputOptions { format: Format::Npy, ..Default::default() },
            out: out.clone(),
            force: false,
            resume: false,
            shard: None,
            block_members: Some(25),
            on_device_loss: OnDeviceLoss::Stop,
            devices: None,
            allow_mixed_backends: false,
            analyze: true,
        };
        let outcome = run_study(&plan, &opts).unwrap();
        let analysis = outcome.analysis.expect("the study analyses its series");
        assert!(analysis.from_blocks && outcome.blocks == 3 && analysis.skipped == 0, "blocks {}", outcome.blocks);
        same_as_analyze_reads(tmp.path(), &out);
    }
    // the binary's default study, a member flagged unhealthy
    let out = tmp.path().join("flagged");
    ok(bin()
        .args(["--ensemble", "60", "--block-members", "25", "--backend", "cpu", "--no-progress", "--verify", "0", "--out"])
        .arg(&out)
        .env("QBAT_INJECT_FAULT", "nan-member=7"));
    let csv = std::fs::read_to_string(out.join("analysis.csv")).unwrap();
    let pooled: Vec<&str> = csv.lines().find(|l| l.contains(",pooled,")).unwrap().split(',').collect();
    assert_eq!((pooled[5], pooled[6]), ("59", "60"), "the correlation set lacks the flagged member");
    same_as_analyze_reads(tmp.path(), &out);
}

/// A capped correlation set strides over the healthy members: `--max-members 3` of the 6
/// healthy members (of 7) takes 3 of them, where the stride over all 7 fell on the flagged one,
/// took 2, and called a set of all 6 healthy members capped. The 2-D histograms count the
/// healthy members only, as the correlations do (they counted the flagged member's finite
/// samples, some outside the axes drawn).
#[test]
fn a_cap_strides_over_the_healthy_members_and_the_histograms_count_only_them() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    ok(bin()
        .args(["--ensemble", "7", "--backend", "cpu", "--no-progress", "--verify", "0", "--format", "npy", "--out"])
        .arg(&out)
        .env("QBAT_INJECT_FAULT", "nan-member=3"));
    // the healthy members' capacity_b and concurrence, sample by sample, from the series
    let mut reader = qbat_gpu::output::series::SeriesReader::open(&out).unwrap().unwrap();
    let (ka, kb) = (reader.measure_index("capacity_b").unwrap(), reader.measure_index("concurrence").unwrap());
    let (nt, nm) = (reader.n_times(), reader.n_measures());
    let mut healthy: Vec<Vec<(f64, f64)>> = vec![];
    let mut block = vec![];
    while let Some(id) = reader.next_member(&mut block).unwrap() {
        if id != 3 {
            healthy.push((0..nt).map(|s| (block[s * nm + ka], block[s * nm + kb])).collect());
        }
    }
    assert_eq!(healthy.len(), 6);
    for (cap, capped) in [(3, true), (5, true), (6, false), (7, false)] {
        ok(bin().arg("analyze").arg(&out).args(["--pairs", "capacity_b:concurrence", "--max-members", &cap.to_string()]));
        let csv = std::fs::read_to_string(out.join("analysis.csv")).unwrap();
        let row: Vec<&str> = csv.lines().find(|l| l.contains(",pooled,")).unwrap().split(',').collect();
        let used = cap.min(6);
        assert_eq!((row[4], row[5], row[6], row[7]), (&*(used * nt).to_string(), &*used.to_string(), "7", if capped { "true" } else { "false" }), "cap {cap}");
        // healthy member u is in the set when u cap mod 6 < cap (docs/interface.md)
        let (x, y): (Vec<f64>, Vec<f64>) = healthy.iter().enumerate().filter(|(u, _)| (u * cap) % 6 < cap).flat_map(|(_, m)| m.iter().copied()).unzip();
        let want = pearson_direct(&x, &y);
        let got: f64 = row[8].parse().unwrap();
        assert!((got - want).abs() < 1e-9, "cap {cap}: pearson {got} vs {want} over the strided healthy members");
        // the histogram counts the samples the correlations pool: every healthy member's
        let svg = std::fs::read_to_string(out.join("plot_hist2d_capacity_b_concurrence.svg")).unwrap();
        assert!(svg.contains(&format!(": {} samples (members x times)", 6 * nt)), "cap {cap}: the histogram counts other samples");
    }
}

/// `analyze` of a run whose files were tampered with after it: each is refused with exit 2 and
/// one line naming the file, where it once analysed something else without a word.
/// - series.csv with CR line ends for some rows: the csv reader ended records there while the
///   member count came from the newlines (one member silently lost);
/// - a series.npy of another run put beside the run's listed series.csv (it was read instead);
/// - a measure name with a path separator (the histograms were written through it);
/// - summary.csv or run.json edited (members left out, the tolerance changed) or replaced by a
///   device; a run.json naming no precision.
#[test]
fn analyze_reads_only_the_files_its_run_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("stderr.txt");
    let run = run_config(tmp.path(), "run", SPIN_PAIR, &["--no-plots"]);
    let other = run_config(tmp.path(), "other", &SPIN_PAIR.replace("seed = 5", "seed = 6"), &["--no-plots", "--format", "npy"]);
    let fresh = |name: &str| {
        let d = tmp.path().join(name);
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir(&d).unwrap();
        for e in std::fs::read_dir(&run).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), d.join(e.file_name())).unwrap();
        }
        d
    };
    let analyze = |dir: &Path, extra: &[&str]| {
        let mut args: Vec<&std::ffi::OsStr> = vec!["analyze".as_ref(), dir.as_os_str(), "--no-plots".as_ref()];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        run_within(&args, std::time::Duration::from_secs(120), &log)
    };
    let refused = |case: &str, dir: &Path, file: &str, extra: &[&str]| {
        let (code, stderr) = analyze(dir, extra);
        assert_eq!(code, Some(2), "{case}: {stderr}");
        assert!(stderr.contains(file) && stderr.trim().lines().count() == 1, "{case}: {stderr}");
        assert!(!dir.join("analysis.csv").exists(), "{case}: analysis.csv written");
    };
    let (code, stderr) = analyze(&fresh("whole"), &[]);
    assert_eq!(code, Some(0), "the untouched copy: {stderr}");

    // CR line ends in a hand-made series (no manifest): refused, naming the line
    let d = fresh("cr");
    std::fs::remove_file(d.join(".qbat-manifest.json")).unwrap();
    let text = std::fs::read_to_string(d.join("series.csv")).unwrap();
    // (the first member's 51 rows ended by CR: as many newlines fewer, a whole member)
    let cr: String = text.split_inclusive('\n').enumerate().map(|(k, l)| if (1..=51).contains(&k) { l.replace('\n', "\r") } else { l.to_string() }).collect();
    std::fs::write(d.join("series.csv"), cr).unwrap();
    refused("cr", &d, "series.csv: line 2", &[]);
    // CRLF throughout is read, as the same members
    let crlf = text.replace('\n', "\r\n");
    std::fs::write(d.join("series.csv"), crlf).unwrap();
    let (code, stderr) = analyze(&d, &[]);
    assert_eq!(code, Some(0), "crlf: {stderr}");
    let analysis = std::fs::read_to_string(d.join("analysis.csv")).unwrap();
    assert!(analysis.lines().nth(1).unwrap().contains(",70,70,"), "crlf: {analysis}");

    // another run's npy beside the listed csv
    let d = fresh("stray");
    std::fs::copy(other.join("series.npy"), d.join("series.npy")).unwrap();
    std::fs::copy(other.join("series.json"), d.join("series.json")).unwrap();
    let (code, stderr) = analyze(&d, &[]);
    assert_eq!(code, Some(0), "stray: {stderr}");
    let whole = std::fs::read_to_string(tmp.path().join("whole/analysis.csv")).unwrap();
    assert_eq!(std::fs::read_to_string(d.join("analysis.csv")).unwrap(), whole, "the stray npy was read in place of the run's csv");
    // ... and a series beside a run that wrote none
    let d = fresh("none");
    let m = d.join(".qbat-manifest.json");
    let manifest = std::fs::read_to_string(&m).unwrap();
    std::fs::remove_file(d.join("series.csv")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    v["files"].as_array_mut().unwrap().retain(|f| f["name"] != "series.csv");
    std::fs::write(&m, v.to_string()).unwrap();
    std::fs::copy(other.join("series.npy"), d.join("series.npy")).unwrap();
    std::fs::copy(other.join("series.json"), d.join("series.json")).unwrap();
    refused("none", &d, "series.npy", &[]);

    // the run's listed series removed: named as missing, not as a run that wrote none
    let d = fresh("gone");
    std::fs::remove_file(d.join("series.csv")).unwrap();
    refused("gone", &d, "series.csv", &[]);

    // a measure name with a path separator, in a hand-made series
    let d = fresh("name");
    std::fs::remove_file(d.join(".qbat-manifest.json")).unwrap();
    let text = std::fs::read_to_string(d.join("series.csv")).unwrap();
    let (head, rest) = text.split_once('\n').unwrap();
    let second = head.split(',').nth(3).unwrap().to_string();
    std::fs::write(d.join("series.csv"), format!("{}\n{rest}", head.replacen(&format!(",{second}"), ",../x", 1))).unwrap();
    refused("name", &d, "series.csv", &["--pairs", "capacity_b:../x"]);
    assert!(!tmp.path().join("x.png").exists() && !tmp.path().join("x.svg").exists());

    // summary.csv and run.json, listed in the manifest, edited or replaced
    let d = fresh("summary");
    let s = std::fs::read_to_string(d.join("summary.csv")).unwrap();
    std::fs::write(d.join("summary.csv"), s.replacen(",ok\n", ",nonfinite\n", 1)).unwrap();
    refused("summary edited", &d, "summary.csv", &[]);
    let d = fresh("runjson");
    let r = std::fs::read_to_string(d.join("run.json")).unwrap();
    std::fs::write(d.join("run.json"), r.replacen("\"f64\"", "\"f32\"", 1)).unwrap();
    refused("run.json edited", &d, "run.json", &[]);
    #[cfg(unix)]
    for (case, file) in [("summary device", "summary.csv"), ("run.json device", "run.json")] {
        let d = fresh(case);
        std::fs::remove_file(d.join(".qbat-manifest.json")).unwrap();
        std::fs::remove_file(d.join(file)).unwrap();
        std::os::unix::fs::symlink("/dev/zero", d.join(file)).unwrap();
        refused(case, &d, file, &[]);
    }
    let d = fresh("precision");
    std::fs::remove_file(d.join(".qbat-manifest.json")).unwrap();
    std::fs::write(d.join("run.json"), r#"{"precision": "bogus"}"#).unwrap();
    refused("precision", &d, "run.json", &[]);
    // (the tolerance given, it is not needed)
    let (code, stderr) = analyze(&d, &["--monotone-tol", "1e-6"]);
    assert_eq!(code, Some(0), "precision with a tolerance: {stderr}");
}

/// `analyze` waits for another writer of its directory (a commit into it, or another
/// analysis: both hold the directory's lock), so that two side by side do not each rewrite the
/// manifest from what they read and lose the other's files from it; and for a reader of it (a
/// merge of it as a shard, or a copy of it), saying which it waits for; then it runs.
#[test]
fn analyze_waits_for_another_writer_of_its_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let run = run_config(tmp.path(), "run", SPIN_PAIR, &["--no-plots"]);
    for (shared, said) in [(false, "waiting for another commit into"), (true, "waiting for a merge or copy reading")] {
        let held = std::fs::File::open(&run).unwrap();
        if shared {
            held.lock_shared().unwrap();
        } else {
            held.lock().unwrap();
        }
        let err = tmp.path().join("stderr.txt");
        let mut child =
            bin().arg("analyze").arg(&run).arg("--no-plots").stdout(std::process::Stdio::null()).stderr(std::fs::File::create(&err).unwrap()).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let early = child.try_wait().unwrap();
        held.unlock().unwrap();
        let status = wait_within(&mut child, std::time::Duration::from_secs(120)).expect("analyze still running after the lock was released");
        let stderr = std::fs::read_to_string(&err).unwrap();
        assert!(early.is_none(), "analyze ran while another held its directory: {stderr}");
        assert!(status.success() && stderr.contains(said), "{said}: {stderr}");
        let manifest = qbat_gpu::output::manifest::Manifest::read(&run).unwrap().unwrap();
        manifest.verify(&run).unwrap();
        assert!(manifest.contains("analysis.csv"));
    }
}

/// The monotone tolerance follows the loosest precision the run's blocks ran at: a run whose
/// blocks went to an f32 GPU and then to the f64 CPU engine (`--on-device-loss cpu`) records
/// f64 as its `precision`, the last block's, and lists both in `engines`.
#[test]
fn the_monotone_tolerance_is_the_loosest_engines() {
    let tmp = tempfile::tempdir().unwrap();
    let values = [[0.0, 0.0], [1.0, 1.0], [2.0, 4.0], [3.0, 5.0], [4.0, 3.0], [5.0, 1.0]];
    let opts = AnalyzeOptions { pairs: vec![("x".into(), "y".into())], plots: false, ..Default::default() };
    for (k, (run, tol)) in [
        (r#"{"precision": "f64"}"#, 1e-9),
        (r#"{"precision": "f32"}"#, 1e-5),
        (r#"{"precision": "f64", "engines": [{"backend": "gpu", "precision": "f32"}, {"backend": "cpu", "precision": "f64"}]}"#, 1e-5),
        (r#"{"precision": "mixed: f32 | f64"}"#, 1e-5),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = tmp.path().join(format!("d{k}"));
        hand_dir(&dir, false, &values);
        std::fs::write(dir.join("run.json"), run).unwrap();
        assert_eq!(analyze_dir(&dir, &opts).unwrap().monotone_tol, tol, "{run}");
    }
}
