//! The printed report of a run, and the rank and Pearson correlations `analyze` uses.

use crate::measures::Measure;

/// Ranks with ties averaged (1-based).
pub fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_unstable_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            r[idx[k]] = avg;
        }
        i = j + 1;
    }
    r
}

pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    sxy / (sxx * syy).sqrt()
}

pub fn print_report(r: &crate::run::RunInfo, members: usize) {
    println!("device      : {} ({} backend, {:?})", r.device, r.backend, r.precision);
    println!(
        "members     : {members}, {} samples, {:.3e} member-steps",
        r.times.len(),
        r.member_steps
    );
    let t = &r.timings;
    println!(
        "time        : setup {:.3} s, integrate {:.3} s, host measures {:.3} s, verify {:.3} s, statistics and checkpoints {:.3} s",
        t.setup, t.integrate, t.host_measures, t.verify, t.streaming
    );
    println!("throughput  : {:.3e} member-steps/s", r.member_steps_per_second());
    for n in &r.notes {
        println!("note        : {n}");
    }
    if let Some(v) = &r.verify {
        let worst = v.deviations.iter().map(|d| d.max_abs / d.tolerance).fold(0.0, f64::max);
        println!(
            "verify      : {} members re-run on the f64 reference; worst deviation {:.2}x tolerance: {}",
            v.members.len(),
            worst,
            if v.pass { "PASS" } else { "FAIL" }
        );
        let line: Vec<String> = v.deviations.iter().map(|d| format!("{} {:.1e}", d.measure, d.max_abs)).collect();
        println!("  largest |dev| per measure: {}", line.join(", "));
        if !v.pass {
            eprintln!("WARNING: --verify found deviations beyond tolerance:");
            for d in v.deviations.iter().filter(|d| !d.pass) {
                eprintln!("WARNING:   {:<22} max |dev| = {:.3e} > {:.1e}", d.measure, d.max_abs, d.tolerance);
            }
        }
    }
}

/// Ensemble statistics at the last sample time, one line per measure (at most 12).
pub fn print_final_stats(st: &crate::output::stats::Stats) {
    let last = st.times.len() - 1;
    println!("ensemble at t = {} (mean, std, 5% / 50% / 95%):", st.times[last]);
    for k in 0..st.measures.len().min(12) {
        let s = st.get(last, k);
        println!("  {:<22} {:>+11.5} {:>10.5}  {:>+10.5} / {:>+10.5} / {:>+10.5}", st.measures[k], s.mean, s.std, s.q05, s.q50, s.q95);
    }
    if st.measures.len() > 12 {
        println!("  ... {} more in stats.csv", st.measures.len() - 12);
    }
}

/// Cavity runs: the warning for members whose fock_tail exceeded the plan's threshold, with
/// the cutoff to use (from the largest photon number a flagged member reached, when measured).
pub fn fock_tail_warnings(plan: &crate::config::Plan, measures: &[Measure], flags: &crate::study::FockTailFlags) -> Vec<String> {
    let crate::model::Space::Cavity { n_fock } = plan.space else { return vec![] };
    if !measures.contains(&Measure::FockTail) {
        return vec![format!("fock_tail was not among the measures: the cutoff n_fock = {n_fock} was not checked")];
    }
    if flags.count == 0 {
        return vec![];
    }
    let worst_nbar = flags.worst_photon_number;
    let listed: Vec<String> = flags.first.iter().map(|(id, t)| format!("{id} ({t:.1e})")).collect();
    let suggestion = if worst_nbar > 0.0 {
        let n = crate::config::auto_n_fock(worst_nbar.sqrt()).max(n_fock + 1);
        format!("; use n_fock >= {n} (from the largest photon number reached, {worst_nbar:.2}), or --auto-fock")
    } else {
        format!("; raise n_fock above {n_fock}")
    };
    vec![format!(
        "fock_tail exceeds {:.0e} for {} member(s): {}{}{}",
        plan.fock_tail_threshold,
        flags.count,
        listed.join(", "),
        if flags.count as usize > listed.len() { ", ..." } else { "" },
        suggestion
    )]
}
