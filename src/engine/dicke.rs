//! The `dicke` model on the engines (docs/physics.md "dicke"): the structured f64 engine
//! (`twin::rk4_dicke`, rayon over members) for `--backend cpu`, and for `--backend gpu` until a
//! kernel exists (with a note); the f64 reference for `--backend reference`. The measures are
//! `measures::dicke`'s, from the full state at each sample.

use super::{reference::run_reference, update_peaks, Engine, EngineOutput, RunOptions};
use crate::config::{Member, Plan};
use crate::error::Result;
use crate::job::dicke::DickeCoeffs;
use crate::job::{Peak, Precision, SegmentEnd, PEAK_MEASURES};
use crate::linalg::{CMat, C64};
use crate::measures::saved::{push_row_major, saved_state};
use crate::measures::{evaluate, Measure, MeasureContext, Sample};
use crate::model::{dicke, real, Params};
use crate::twin::rk4_dicke::{DickeOps, DickeWork};

/// Coefficients of a dicke point for the structured engine.
pub fn dicke_coeffs(p: &Params) -> Result<DickeCoeffs> {
    let (n_cells, n_fock) = dicke::sizes(p)?;
    Ok(DickeCoeffs {
        n_cells,
        n_fock,
        wc: real(p, "wc")?,
        wa: real(p, "wa")?,
        g: real(p, "g")?,
        tavis_cummings: dicke::is_tavis_cummings(p)?,
        kappa: real(p, "kappa")?,
        gamma: real(p, "gamma")?,
    })
}

/// Integrate one member on the structured f64 engine; values [sample][measure], peaks, and
/// the saved states (`--save-states`, `measures::saved`; empty without).
pub fn dicke_member(plan: &Plan, m: &Member) -> Result<(Vec<f64>, [Peak; 4], Vec<C64>)> {
    let sys = &plan.systems[m.point];
    let coeffs = dicke_coeffs(&plan.points[m.point])?;
    let dim = coeffs.dim();
    let ops = DickeOps::new(&coeffs);
    // `[protocol] switch_off`: the cavity-cell coupling g is off after T.
    let ops_off = plan.schedule.switch_segment().map(|_| DickeOps::new(&coeffs.uncoupled()));
    let rho0 = plan.initial_state(m);
    let ctx = MeasureContext::new(sys, &rho0);
    let mut x: Vec<C64> = (0..dim * dim).map(|i| rho0[(i / dim, i % dim)]).collect();
    let mut work = DickeWork::new(dim);
    let mut list: Vec<Measure> = plan.measures.clone();
    list.extend(PEAK_MEASURES);
    let nm = plan.measures.len();
    let mut values = Vec::with_capacity(plan.schedule.times.len() * nm);
    let mut peaks = [Peak::default(); 4];
    let mut states = vec![];
    let mut gen = &ops;
    for seg in &plan.schedule.segments {
        for _ in 0..seg.n_full {
            work.step(gen, &mut x, plan.schedule.dt);
        }
        if seg.h_last > 0.0 {
            work.step(gen, &mut x, seg.h_last);
        }
        let s = match seg.end {
            SegmentEnd::Sample(s) => s,
            SegmentEnd::SwitchOff => {
                gen = ops_off.as_ref().unwrap_or(&ops);
                continue;
            }
        };
        let t = plan.schedule.times[s];
        let rho = CMat::from_fn(dim, dim, |r, c| x[r * dim + c]);
        let v = evaluate(&list, &ctx, &Sample { t, rho: &rho, y: None });
        values.extend_from_slice(&v[..nm]);
        update_peaks(&mut peaks, s, t, &v[nm..]);
        if let Some(save) = plan.save_states {
            push_row_major(&mut states, &saved_state(plan.space, &rho, 0.0, save));
        }
    }
    Ok((values, peaks, states))
}

/// Run a dicke plan: the reference engine for `--backend reference`, else the structured
/// f64 engine in parallel over members.
pub fn run_dicke(plan: &Plan, opts: &RunOptions, engine: &Engine) -> Result<EngineOutput> {
    if matches!(engine, Engine::Reference) {
        let (values, peaks, states) = run_reference(plan, opts)?;
        let mut out = EngineOutput::new(plan, values, peaks, Precision::F64, 0.0, 0.0);
        out.states = plan.save_states.map(|_| states);
        return Ok(out);
    }
    let (values, peaks, states) = super::per_member(plan, opts, "cpu f64 (dicke)", |m| dicke_member(plan, m))?;
    let mut out = EngineOutput::new(plan, values, peaks, Precision::F64, 0.0, 0.0);
    out.states = states;
    if matches!(engine, Engine::Gpu(_)) {
        let note = "dicke has no GPU kernel yet: it ran on the structured f64 CPU engine".to_string();
        eprintln!("note: {note}");
        out.notes.push(note);
        out.ran_on = Some(("cpu", Engine::Cpu.device_name()));
    }
    Ok(out)
}
