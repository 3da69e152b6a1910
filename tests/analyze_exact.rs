//! `analyze`'s correlations and monotone fractions against references computed here by other
//! means: Pearson in exact integer arithmetic on the stored doubles, and the monotone relation
//! by its definition, pair by pair of samples. The series are hand-made npy files, read
//! (`analyze_dir`) and fed a block at a time (`Gather`, as a streamed run feeds it).

use qbat_gpu::analyze::{analyze_dir, analyze_gathered, pearson_checked, Analysis, AnalyzeOptions, Gather, Layout, PairRow, Scope};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use std::path::Path;

/// A run directory of `values[member][time][measure]` as series.npy and its series.json, with
/// an f64 run.json.
fn npy_dir(dir: &Path, times: &[f64], measures: &[&str], values: &[Vec<Vec<f64>>]) {
    use npyz::WriterBuilder;
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("run.json"), r#"{"model": "two-qubit", "precision": "f64"}"#).unwrap();
    let f = std::fs::File::create(dir.join("series.npy")).unwrap();
    let shape = [values.len() as u64, times.len() as u64, measures.len() as u64];
    let mut w = npyz::WriteOptions::<f64>::new().default_dtype().shape(&shape).writer(f).begin_nd().unwrap();
    w.extend(values.iter().flatten().flatten().copied()).unwrap();
    w.finish().unwrap();
    let json = serde_json::json!({"members": (0..values.len()).collect::<Vec<_>>(), "times": times, "measures": measures});
    std::fs::write(dir.join("series.json"), json.to_string()).unwrap();
}

/// The analysis of `values` read from a hand-made series, and the same fed to a `Gather` in
/// blocks of each of `blocks` members: every one of them the read one, bit for bit.
fn read_and_fed(tmp: &Path, times: &[f64], measures: &[&str], values: &[Vec<Vec<f64>>], pairs: &[(&str, &str)], tol: f64, blocks: &[usize]) -> Analysis {
    let pairs: Vec<(String, String)> = pairs.iter().map(|&(a, b)| (a.into(), b.into())).collect();
    let opts = AnalyzeOptions { pairs: pairs.clone(), plots: false, monotone_tol: Some(tol), ..Default::default() };
    let read_dir = tmp.join("read");
    npy_dir(&read_dir, times, measures, values);
    let read = analyze_dir(&read_dir, &opts).unwrap();
    let names: Vec<String> = measures.iter().map(|m| m.to_string()).collect();
    let rows: Vec<Vec<f64>> = values.iter().map(|m| m.iter().flatten().copied().collect()).collect();
    for &size in blocks {
        let fed_dir = tmp.join(format!("fed-{size}"));
        npy_dir(&fed_dir, times, measures, values);
        let layout = Layout::new(&names, pairs.clone(), (values.len(), 0), times.len(), opts.max_members, tol).unwrap();
        let mut gather = Gather::new(layout, None);
        for block in rows.chunks(size) {
            let members: Vec<(bool, &[f64])> = block.iter().map(|r| (false, &r[..])).collect();
            gather.add(&members);
        }
        let fed = analyze_gathered(&fed_dir, gather, &opts).unwrap();
        assert!(fed.from_blocks);
        assert_eq!(fed.rows, read.rows, "fed in blocks of {size}");
    }
    read
}

// ---------------------------------------------------------------------------------------------
// Pearson.

/// A sample of doubles as integers on a common grid: x_i = X_i 2^E exactly, E the smallest
/// exponent of a value's last set bit.
fn on_grid(v: &[f64]) -> Vec<i128> {
    // (mantissa, exponent) with x = m 2^e, m an integer
    let parts: Vec<(i128, i32)> = v
        .iter()
        .map(|&x| {
            assert!(x.is_finite());
            let bits = x.to_bits();
            let (exp, frac) = (((bits >> 52) & 0x7ff) as i32, (bits & ((1 << 52) - 1)) as i128);
            let (m, e) = if exp == 0 { (frac, -1074) } else { (frac | 1 << 52, exp - 1075) };
            // (the trailing zero bits dropped: the grid as coarse as the values allow)
            let tz = if m == 0 { 0 } else { m.trailing_zeros() };
            (if x < 0.0 { -(m >> tz) } else { m >> tz }, e + tz as i32)
        })
        .collect();
    let e_min = parts.iter().filter(|p| p.0 != 0).map(|p| p.1).min().unwrap_or(0);
    parts
        .iter()
        .map(|&(m, e)| {
            let shift = (e - e_min).max(0) as u32;
            assert!(m == 0 || shift < 60, "values too far apart for the grid");
            m << shift
        })
        .collect()
}

/// Pearson of the stored doubles in exact integer arithmetic, rounded only at its end:
/// with D_i = n X_i - sum X (exact), r = sum Dx Dy / sqrt(sum Dx^2 sum Dy^2). None for a
/// constant side.
fn exact_pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len() as i128;
    let centred = |v: &[f64]| -> Vec<i128> {
        let g = on_grid(v);
        let s: i128 = g.iter().sum();
        g.iter().map(|&a| n.checked_mul(a).and_then(|na| na.checked_sub(s)).expect("exact sums overflow")).collect()
    };
    let (dx, dy) = (centred(x), centred(y));
    let dot = |p: &[i128], q: &[i128]| p.iter().zip(q).fold(0i128, |acc, (a, b)| acc.checked_add(a.checked_mul(*b).unwrap()).expect("exact sums overflow"));
    let (sxy, sxx, syy) = (dot(&dx, &dy), dot(&dx, &dx), dot(&dy, &dy));
    (sxx != 0 && syy != 0).then(|| sxy as f64 / ((sxx as f64) * (syy as f64)).sqrt())
}

/// Average ranks, doubled (integers), by a comparison sort (`analyze::ranks_sorted`).
fn doubled_ranks(v: &[f64]) -> Vec<f64> {
    crate::analyze::ranks_sorted(v).iter().map(|r| 2.0 * r).collect()
}

/// Columns with a large mean and a spread of a few ulp to 1e-6 of it: a capacity that is 1
/// to rounding against a texture that is 1/sqrt(2) to rounding (each member's two values
/// correlated), at three sample times with spreads 2e-16, 1e-12 and 1e-9; x6 = 1 + 1e-6 z;
/// `one` exactly 1 at the second time (an empty per-time correlation there). Pearson, pooled
/// and per time, is the exact one of the stored doubles to 1e-13 (the plain two-pass sums
/// were off by 0.58 at the first time, and by 5e-7 at a spread of 1e-12); Spearman is the
/// exact one of the ranks; fed in blocks, the same bits.
#[test]
fn pearson_of_a_large_mean_and_a_tiny_spread_is_the_exact_one() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(61);
    let (members, times) = (1500usize, [0.0, 1.0, 2.0]);
    let spreads = [2.2e-16, 1e-12, 1e-9];
    let measures = ["cap", "tex", "x6", "one"];
    let values: Vec<Vec<Vec<f64>>> = (0..members)
        .map(|_| {
            spreads
                .iter()
                .enumerate()
                .map(|(s, &e)| {
                    let (z, w): (f64, f64) = (rng.sample(StandardNormal), rng.sample(StandardNormal));
                    let one = if s == 1 { 1.0 } else { 1.0 + 1e-10 * w };
                    vec![1.0 + e * z, std::f64::consts::FRAC_1_SQRT_2 + e * (0.6 * z + 0.8 * w), 1.0 + 1e-6 * z, one]
                })
                .collect()
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let pairs = [("cap", "tex"), ("x6", "tex"), ("one", "cap")];
    let an = read_and_fed(tmp.path(), &times, &measures, &values, &pairs, 1e-9, &[7, 500]);
    let column = |k: usize, s: Option<usize>| -> Vec<f64> {
        values.iter().flat_map(|m| m.iter().enumerate().filter(move |(t, _)| s.is_none_or(|s| s == *t)).map(move |(_, v)| v[k])).collect()
    };
    let check = |row: &PairRow, s: Option<usize>| {
        let (ka, kb) = (measures.iter().position(|m| *m == row.a).unwrap(), measures.iter().position(|m| *m == row.b).unwrap());
        let (x, y) = (column(ka, s), column(kb, s));
        let want = exact_pearson(&x, &y);
        match (row.pearson, want) {
            (Some(got), Some(want)) => assert!((got - want).abs() < 1e-13, "{}:{} at {s:?}: {got} against the exact {want}", row.a, row.b),
            (got, want) => assert_eq!(got, want, "{}:{} at {s:?}", row.a, row.b),
        }
        let spearman = exact_pearson(&doubled_ranks(&x), &doubled_ranks(&y));
        match (row.spearman, spearman) {
            (Some(got), Some(want)) => assert!((got - want).abs() < 1e-14, "{}:{} at {s:?}: Spearman {got} against {want}", row.a, row.b),
            (got, want) => assert_eq!(got, want, "{}:{} at {s:?}", row.a, row.b),
        }
    };
    for row in &an.rows {
        check(row, row.t.map(|t| times.iter().position(|&u| u == t).unwrap()));
    }
    // the stored values at the first time differ by an ulp or two, and correlate strongly
    let first = an.rows.iter().find(|r| r.a == "cap" && r.scope == Scope::PerTime && r.t == Some(0.0)).unwrap();
    assert!(first.pearson.unwrap() > 0.5, "{first:?}");
    // a side constant at the second time: left empty
    let constant = an.rows.iter().find(|r| r.a == "one" && r.scope == Scope::PerTime && r.t == Some(1.0)).unwrap();
    assert_eq!((constant.pearson, constant.spearman), (None, None));
}

/// `pearson_checked` of a tiny spread around a large mean, at scales from the subnormals to
/// near f64's largest (powers of two, so the stored values keep their bits but below
/// 2^-1074), is the exact Pearson of those doubles; a side against itself is 1 and against its
/// negation -1, exactly.
#[test]
fn pearson_of_a_tiny_spread_is_exact_at_every_scale() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(62);
    for e in [2.2e-16, 1e-14, 1e-12, 1e-8] {
        let z: Vec<f64> = (0..800).map(|_| rng.sample(StandardNormal)).collect();
        let x: Vec<f64> = z.iter().map(|z| 1.0 + e * z).collect();
        let y: Vec<f64> = z.iter().map(|z| -3.0 + e * (0.5 * z + 0.8 * rng.sample::<f64, _>(StandardNormal))).collect();
        for (kx, ky) in [(0, 0), (-1030, 0), (-1000, 900), (1000, -1020), (1020, 1020), (-300, 300)] {
            let scale = |v: &[f64], k: i32| -> Vec<f64> { v.iter().map(|a| a * 2f64.powi(k / 2) * 2f64.powi(k - k / 2)).collect() };
            let (xs, ys) = (scale(&x, kx), scale(&y, ky));
            let (got, want) = (pearson_checked(&xs, &ys), exact_pearson(&xs, &ys));
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-13, "e {e:e}, 2^{kx}, 2^{ky}: {g} against the exact {w}"),
                (g, w) => assert_eq!(g, w, "e {e:e}, 2^{kx}, 2^{ky}"),
            }
            if got.is_none() {
                continue;
            }
            let minus: Vec<f64> = xs.iter().map(|a| -a).collect();
            assert_eq!((pearson_checked(&xs, &xs), pearson_checked(&xs, &minus)), (Some(1.0), Some(-1.0)), "e {e:e}, 2^{kx}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The monotone relation.

/// The definition pair by pair: for every two samples i != j with a_i <= a_j, b is
/// non-decreasing when b_j is at least b_i minus tol, non-increasing when at most b_i plus
/// tol (so samples of equal a, taken both ways round, must have b equal to tol).
fn monotone_by_pairs(a: &[f64], b: &[f64], rel: f64) -> (bool, bool) {
    let tol = rel * b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let (mut inc, mut dec) = (true, true);
    for i in 0..a.len() {
        for j in 0..a.len() {
            if i != j && a[i] <= a[j] {
                inc &= b[j] >= b[i] - tol;
                dec &= b[j] <= b[i] + tol;
            }
        }
    }
    (inc, dec)
}

/// Member 0 has a constant a (0) and b = 0.1, 0.9, 0.2, 0.5 (up, down, up in time); member 1
/// has a = 0, 1, 2, 3 and the same b. Neither is monotone, where a constant a once counted as
/// monotone both ways whatever b did. A tie whose b differ is no monotone relation whichever
/// way a and time run: members 2 to 5 (a = 3, 1, 1, 0 with b = 3, 2, 1, 0, a negated, and
/// both backwards in time) are neither; members 6 and 7 (the tie's b equal) are monotone,
/// one each way.
#[test]
fn a_constant_a_does_not_make_any_b_monotone() {
    let b = [0.1, 0.9, 0.2, 0.5];
    let member = |a: [f64; 4], b: [f64; 4]| -> Vec<Vec<f64>> { a.iter().zip(&b).map(|(&x, &y)| vec![x, y]).collect() };
    let (a2, b2) = ([3.0, 1.0, 1.0, 0.0], [3.0, 2.0, 1.0, 0.0]);
    let back = |mut v: [f64; 4]| {
        v.reverse();
        v
    };
    let neg = |v: [f64; 4]| v.map(|x| -x);
    let values = vec![
        member([0.0; 4], b),
        member([0.0, 1.0, 2.0, 3.0], b),
        member(a2, b2),
        member(neg(a2), b2),
        member(back(a2), back(b2)),
        member(back(neg(a2)), back(b2)),
        member(a2, [3.0, 2.0, 2.0, 0.0]),
        member(neg(a2), [3.0, 2.0, 2.0, 0.0]),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let an = read_and_fed(tmp.path(), &[0.0, 1.0, 2.0, 3.0], &["a", "b"], &values, &[("a", "b")], 1e-9, &[1, 3]);
    let p = an.pooled("a", "b").unwrap();
    assert_eq!((p.monotone_fraction, p.monotone_increasing, p.monotone_decreasing), (Some(0.25), Some(0.125), Some(0.125)));
}

/// Members whose a has many ties (values from {0, 1, 2}, -0 among the zeros; some constant at
/// 0 as a concurrence through a sudden death) and whose b is: random; sorted along a's
/// order, either way (a function of a only where no tie is split between two values); a
/// function of a, either way; monotone along a but for the ties; constant; or a rising
/// function of a with rounding below the tolerance. The fractions `analyze` gives, read and
/// fed in blocks, are those of the definition.
#[test]
fn monotone_fractions_with_ties_in_a_are_the_definitions() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(63);
    let (members, nt, rel) = (600usize, 9usize, 1e-9);
    let mut values = vec![];
    let mut want = (0usize, 0usize, 0usize);
    for i in 0..members {
        let a: Vec<f64> = match i % 3 {
            0 => (0..nt).map(|t| if t % 2 == 0 { 0.0 } else { -0.0 }).collect(),
            _ => (0..nt).map(|_| [0.0, -0.0, 1.0, 2.0][rng.random_range(0..4)]).collect(),
        };
        // the order of the definition: by a, ties in time order (sorting by partial_cmp
        // keeps -0 and +0 together, stably)
        let mut order: Vec<usize> = (0..nt).collect();
        order.sort_by(|&p, &q| a[p].partial_cmp(&a[q]).unwrap());
        let mut sorted: Vec<f64> = (0..nt).map(|_| rng.random_range(-1.0..1.0)).collect();
        sorted.sort_by(f64::total_cmp);
        let mut b = vec![0.0; nt];
        match (i / 3) % 6 {
            0 => b.iter_mut().for_each(|v| *v = rng.random_range(-1.0..1.0)),
            1 => order.iter().zip(&sorted).for_each(|(&k, &v)| b[k] = v),
            2 => order.iter().zip(sorted.iter().rev()).for_each(|(&k, &v)| b[k] = v),
            3 => {
                // monotone along a but for the ties, each tie's values reversed in time: b is
                // no function of a there, so not monotone unless every tie is of one value
                order.iter().zip(&sorted).for_each(|(&k, &v)| b[k] = v);
                let mut s = 0;
                while s < nt {
                    let e = (s..nt).take_while(|&e| a[order[e]] == a[order[s]]).last().unwrap();
                    let vals: Vec<f64> = order[s..=e].iter().map(|&k| b[k]).collect();
                    order[s..=e].iter().zip(vals.iter().rev()).for_each(|(&k, &v)| b[k] = v);
                    s = e + 1;
                }
            }
            4 => b.iter_mut().for_each(|v| *v = 0.25),
            // a function of a, rising or falling with it, the odd samples in time dipping by
            // 1e-13 (below the tolerance)
            _ => {
                let slope = if i % 2 == 0 { 1e-3 } else { -1e-3 };
                b.iter_mut().zip(&a).enumerate().for_each(|(t, (v, &x))| *v = 0.5 + slope * x - (t % 2) as f64 * 1e-13);
            }
        }
        let (inc, dec) = monotone_by_pairs(&a, &b, rel);
        want = (want.0 + usize::from(inc || dec), want.1 + usize::from(inc), want.2 + usize::from(dec));
        values.push(a.iter().zip(&b).map(|(&x, &y)| vec![x, y]).collect::<Vec<_>>());
    }
    // every kind is there: the test decides something
    assert!(want.0 > members / 5 && want.0 < members - members / 10 && want.1 > 0 && want.2 > 0, "{want:?}");
    let tmp = tempfile::tempdir().unwrap();
    let times: Vec<f64> = (0..nt).map(|t| t as f64).collect();
    let an = read_and_fed(tmp.path(), &times, &["a", "b"], &values, &[("a", "b")], rel, &[5, 64]);
    let p = an.pooled("a", "b").unwrap();
    let frac = |c: usize| Some(c as f64 / members as f64);
    assert_eq!((p.monotone_fraction, p.monotone_increasing, p.monotone_decreasing), (frac(want.0), frac(want.1), frac(want.2)));
}
