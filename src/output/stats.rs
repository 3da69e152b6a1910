//! Ensemble statistics per sample time and measure: mean, std (population), min, max and the
//! 5/50/95% quantiles (linear interpolation between order statistics, numpy's default).
//! `column_stat` works exactly from one stored column (the reference for tests); runs stream
//! their statistics through `accumulate::StatsAccumulator` and `Stats::from_accumulator`.

use crate::error::{QbatError, Result};
use rayon::prelude::*;
use std::io::Write;
use std::path::Path;

#[derive(Clone, Debug, PartialEq)]
pub struct Stat {
    /// Members in the statistic (the healthy ones).
    pub n: u64,
    pub sample: usize,
    pub measure: usize,
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub max: f64,
    pub q05: f64,
    pub q50: f64,
    pub q95: f64,
}

pub struct Stats {
    pub times: Vec<f64>,
    pub measures: Vec<String>,
    /// stats[sample * n_measures + measure]
    pub stats: Vec<Stat>,
}

impl Stats {
    pub fn get(&self, sample: usize, measure: usize) -> &Stat {
        &self.stats[sample * self.measures.len() + measure]
    }
}

/// Quantile q of sorted data (linear interpolation, numpy's default).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 1 {
        return sorted[0];
    }
    let pos = q * (n - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

pub fn column_stat(sample: usize, measure: usize, mut v: Vec<f64>) -> Stat {
    let n = v.len() as f64;
    // two-pass mean and variance
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    v.sort_unstable_by(|a, b| a.total_cmp(b));
    Stat {
        n: v.len() as u64,
        sample,
        measure,
        mean,
        std: var.sqrt(),
        min: v[0],
        max: v[v.len() - 1],
        q05: quantile_sorted(&v, 0.05),
        q50: quantile_sorted(&v, 0.50),
        q95: quantile_sorted(&v, 0.95),
    }
}

impl Stats {
    /// The statistics of a streamed accumulator (quantiles within its stated resolution).
    pub fn from_accumulator(acc: &super::accumulate::StatsAccumulator, times: Vec<f64>, measures: Vec<String>) -> Stats {
        let nm = acc.n_measures;
        // (the cells in parallel: a cell's exact sums and quantile walk are its own)
        let stats = acc
            .cells
            .par_iter()
            .enumerate()
            .map(|(cell, c)| {
                let [q05, q50, q95] = c.quantiles([0.05, 0.50, 0.95]);
                Stat {
                    n: c.n,
                    sample: cell / nm,
                    measure: cell % nm,
                    mean: c.mean(),
                    std: c.std(),
                    min: if c.n == 0 { f64::NAN } else { c.min },
                    max: if c.n == 0 { f64::NAN } else { c.max },
                    q05,
                    q50,
                    q95,
                }
            })
            .collect();
        Stats { times, measures, stats }
    }
}

pub fn write_csv(st: &Stats, w: &mut dyn Write) -> std::io::Result<()> {
    writeln!(w, "t,measure,mean,std,min,max,q05,q50,q95,n")?;
    for s in &st.stats {
        writeln!(
            w,
            "{:?},{},{:?},{:?},{:?},{:?},{:?},{:?},{:?},{}",
            st.times[s.sample], st.measures[s.measure], s.mean, s.std, s.min, s.max, s.q05, s.q50, s.q95, s.n
        )?;
    }
    Ok(())
}

/// stats.csv read back (the inverse of `write_csv`): its times and measures in file order.
pub fn read_stats(dir: &Path) -> Result<Stats> {
    let path = dir.join("stats.csv");
    let mut rdr = csv::Reader::from_reader(crate::plain_file::open_followed_regular(&path)?.0);
    let mut st = Stats { times: vec![], measures: vec![], stats: vec![] };
    for (i, rec) in rdr.records().enumerate() {
        let bad = |why: String| QbatError::invalid(path.display().to_string(), format!("line {}: {why}", i + 2));
        let rec = rec.map_err(|e| bad(e.to_string()))?;
        if rec.len() < 9 {
            return Err(bad(format!("{} fields, expected at least 9", rec.len())));
        }
        let f = |k: usize| rec[k].trim().parse::<f64>().map_err(|_| bad(format!("not a number: {:?}", &rec[k])));
        let t = f(0)?;
        if st.times.last().is_none_or(|x| x.to_bits() != t.to_bits()) {
            st.times.push(t);
        }
        let measure = match st.measures.iter().position(|m| m == &rec[1]) {
            Some(k) => k,
            None => {
                st.measures.push(rec[1].to_string());
                st.measures.len() - 1
            }
        };
        let n = match rec.get(9) {
            Some(n) => n.trim().parse::<u64>().map_err(|_| bad(format!("not a count: {n:?}")))?,
            None => 0,
        };
        st.stats.push(Stat { n, sample: st.times.len() - 1, measure, mean: f(2)?, std: f(3)?, min: f(4)?, max: f(5)?, q05: f(6)?, q50: f(7)?, q95: f(8)? });
    }
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn quantiles_match_numpy_linear() {
        // numpy.quantile([1,2,3,4,10], [0.05, 0.5, 0.95]) = [1.2, 3.0, 8.8]
        let s = column_stat(0, 0, vec![10.0, 2.0, 1.0, 4.0, 3.0]);
        assert!((s.q05 - 1.2).abs() < 1e-12 && (s.q50 - 3.0).abs() < 1e-12 && (s.q95 - 8.8).abs() < 1e-12);
        assert!((s.mean - 4.0).abs() < 1e-12);
        assert!((s.std - 10f64.sqrt()).abs() < 1e-12);
        assert_eq!((s.min, s.max), (1.0, 10.0));
    }
}
