//! Everything the commands print: the run report, the final statistics, and the tables of
//! `analyze` and `validate`.

use qbat_gpu::analyze::{Analysis, Scope, MAX_POOLED_SAMPLES};
use qbat_gpu::output::stats::Stats;
use qbat_gpu::run::RunInfo;
use qbat_gpu::validate::Check;

pub fn print_report(r: &RunInfo, members: usize) {
    println!("device      : {} ({} backend, {})", r.device, r.backend, r.precision.name());
    println!("members     : {members}, {} samples, {:.3e} member-steps", r.times.len(), r.member_steps);
    let t = &r.timings;
    println!(
        "time        : setup {:.3} s, ensemble {:.3} s, integrate {:.3} s, host measures {:.3} s, verify {:.3} s, statistics and checkpoints {:.3} s",
        t.setup, t.ensemble, t.integrate, t.host_measures, t.verify, t.streaming
    );
    println!("throughput  : {:.3e} member-steps/s", r.member_steps_per_second());
    // (a note may name a path of the user's: its control characters escaped, as on stderr)
    for n in &r.notes {
        println!("note        : {}", qbat_gpu::error::shown_line(n));
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
        // (each measure's worst member: the largest fraction of its own tolerance)
        println!("  worst member's |dev| per measure: {}", line.join(", "));
        if let Some(c) = &v.concurrence {
            println!("  concurrence computed in {c}");
        }
        // (a verify beyond its tolerance is the run's WARNING, said as it ends: `VerifyReport::warning`)
    }
}

/// Ensemble statistics at the last sample time, one line per measure (at most 12).
pub fn print_final_stats(st: &Stats) {
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

/// The pooled rows as a table.
pub fn print_table(an: &Analysis) {
    // (the members flagged unhealthy are in neither: said below)
    let all = match an.skipped {
        0 => format!("all {} members", an.members_total),
        _ => format!("the {} healthy members of {}", an.members_total.saturating_sub(an.skipped), an.members_total),
    };
    let set =
        if an.capped { format!("{} of {all} (evenly strided; cap --max-members / {} samples)", an.members_used, MAX_POOLED_SAMPLES) } else { all.clone() };
    println!("analysis of {}: {} members x {} sample times", qbat_gpu::error::one_line(&an.dir.display().to_string()), an.members_total, an.times.len());
    println!("  correlations pooled over {set} and every sample time; monotone fractions over {all} (tolerance {:.0e} relative)", an.monotone_tol);
    println!("  {:<14} {:<16} {:>9} {:>9}  {:>9} {:>9} {:>9}", "a", "b", "pearson", "spearman", "monotone", "incr", "decr");
    let f = |x: Option<f64>, w: usize| x.map(|v| format!("{v:>+w$.4}")).unwrap_or_else(|| format!("{:>w$}", "n/a"));
    let g = |x: Option<f64>| x.map(|v| format!("{v:>9.4}")).unwrap_or_else(|| format!("{:>9}", "n/a"));
    for r in an.rows.iter().filter(|r| r.scope == Scope::Pooled) {
        println!(
            "  {:<14} {:<16} {} {}  {} {} {}",
            r.a,
            r.b,
            f(r.pearson, 9),
            f(r.spearman, 9),
            g(r.monotone_fraction),
            g(r.monotone_increasing),
            g(r.monotone_decreasing)
        );
    }
    if an.capped {
        println!(
            "  (capped: correlations use {} of {} healthy members; raise --max-members for more)",
            an.members_used,
            an.members_total.saturating_sub(an.skipped)
        );
    }
    if an.skipped > 0 {
        println!("  ({} member(s) flagged unhealthy were left out, as in stats.csv)", an.skipped);
    }
}

/// The validate table; returns whether every check passed.
pub fn print_checks(all: &[Check]) -> bool {
    println!("{:<26} {:<62} {:>14} {:>14} {:>9}  result", "group", "check", "expected", "got", "tol");
    for c in all {
        println!("{:<26} {:<62} {:>14.8} {:>14.8} {:>9.1e}  {}", c.group, c.name, c.expected, c.got, c.tolerance, if c.pass() { "pass" } else { "FAIL" });
    }
    let failed = all.iter().filter(|c| !c.pass()).count();
    println!("validate: {} passed, {} failed", all.len() - failed, failed);
    failed == 0
}
