//! Fixed-step classical RK4 in f64 on the matrix-form Lindblad equation:
//!   k1 = L[x], k2 = L[x + h/2 k1], k3 = L[x + h/2 k2], k4 = L[x + h k3],
//!   x <- x + h/6 (k1 + 2 k2 + 2 k3 + k4).
//! Steps follow a `Schedule`, which shortens the last step before each sample so the
//! integrator lands exactly on every sample time.

use super::lindblad::{DriveTerms, LindbladRhs};
use crate::job::{Schedule, SegmentEnd};
use crate::linalg::{CMat, C64};

/// The state at one sample time: rho(t), and Y(t) when it was evolved alongside.
#[derive(Clone, Debug)]
pub struct ReferenceSample {
    pub t: f64,
    pub rho: CMat,
    pub y: Option<CMat>,
}

/// y += a x, entrywise.
fn axpy(y: &mut CMat, a: C64, x: &CMat) {
    for (yi, xi) in y.as_mut_slice().iter_mut().zip(x.as_slice()) {
        *yi += a * xi;
    }
}

/// Work matrices for one RK4 step.
struct Rk4Work {
    k: CMat,
    acc: CMat,
    stage: CMat,
    scratch: CMat,
}

impl Rk4Work {
    fn new(dim: usize) -> Self {
        let z = CMat::zeros(dim, dim);
        Rk4Work { k: z.clone(), acc: z.clone(), stage: z.clone(), scratch: z }
    }

    /// One classical RK4 step of dx/dt = L(t)[x] = L[x] + sum_k c_k(t)(-i[O_k, x]) from t:
    /// the stages take the drives at t, t + h/2, t + h/2 and t + h (none: the autonomous step).
    fn step(&mut self, rhs: &LindbladRhs, drives: &DriveTerms, x: &mut CMat, t: f64, h: f64) {
        let half = C64::new(h / 2.0, 0.0);
        let (tm, te) = (t + 0.5 * h, t + h);
        // k1
        rhs.apply(x, &mut self.k, &mut self.scratch);
        drives.add(t, tm, x, &mut self.k);
        self.acc.copy_from(&self.k);
        self.stage.copy_from(x);
        axpy(&mut self.stage, half, &self.k);
        // k2
        rhs.apply(&self.stage, &mut self.k, &mut self.scratch);
        drives.add(tm, tm, &self.stage, &mut self.k);
        axpy(&mut self.acc, C64::new(2.0, 0.0), &self.k);
        self.stage.copy_from(x);
        axpy(&mut self.stage, half, &self.k);
        // k3
        rhs.apply(&self.stage, &mut self.k, &mut self.scratch);
        drives.add(tm, tm, &self.stage, &mut self.k);
        axpy(&mut self.acc, C64::new(2.0, 0.0), &self.k);
        self.stage.copy_from(x);
        axpy(&mut self.stage, C64::new(h, 0.0), &self.k);
        // k4
        rhs.apply(&self.stage, &mut self.k, &mut self.scratch);
        drives.add(te, tm, &self.stage, &mut self.k);
        self.acc += &self.k;
        axpy(x, C64::new(h / 6.0, 0.0), &self.acc);
    }
}

/// Integrate rho0 (and y0 = H_B rho0 when given) over the schedule, calling `on_sample`
/// at each sample time with the state there. One generator throughout: a switch-off segment
/// of the schedule changes nothing here (see `integrate_driven_with`).
pub fn integrate_with(rhs: &LindbladRhs, rho0: &CMat, y0: Option<&CMat>, schedule: &Schedule, on_sample: impl FnMut(usize, f64, &CMat, Option<&CMat>)) {
    integrate_driven_with(rhs, rhs, &DriveTerms::new(&[]), rho0, y0, schedule, on_sample)
}

/// As `integrate_with`, with `rhs` up to the schedule's switch-off segment (`[protocol]
/// switch_off`, where the integrator lands exactly) and `rhs_off`, the uncoupled generator,
/// after it, Y(t) following the same generators as rho; and with the `[[drive]]` terms (none
/// for an autonomous run) added to both generators: H(t) =
/// H + sum_k c_k(t) O_k. Step j of a segment that starts at t_s (t = 0, a sample time, the
/// switch-off time or a window edge) starts at t_s + j dt.
#[allow(clippy::too_many_arguments)]
pub fn integrate_driven_with(
    rhs: &LindbladRhs,
    rhs_off: &LindbladRhs,
    drives: &DriveTerms,
    rho0: &CMat,
    y0: Option<&CMat>,
    schedule: &Schedule,
    mut on_sample: impl FnMut(usize, f64, &CMat, Option<&CMat>),
) {
    let mut work = Rk4Work::new(rhs.dim);
    let mut rho = rho0.clone();
    let mut y = y0.cloned();
    let mut gen = rhs;
    let mut t_seg = 0.0;
    for seg in &schedule.segments {
        let steps = (0..seg.n_full).map(|j| (t_seg + j as f64 * schedule.dt, schedule.dt));
        let last = (seg.h_last > 0.0).then_some((t_seg + seg.n_full as f64 * schedule.dt, seg.h_last));
        for (t, h) in steps.chain(last) {
            work.step(gen, drives, &mut rho, t, h);
            if let Some(y) = y.as_mut() {
                work.step(gen, drives, y, t, h);
            }
        }
        t_seg = schedule.end_time(seg.end);
        match seg.end {
            SegmentEnd::Sample(s) => on_sample(s, t_seg, &rho, y.as_ref()),
            SegmentEnd::SwitchOff => gen = rhs_off,
            SegmentEnd::Edge(_) => {}
        }
    }
}

/// Integrate and collect every sample.
pub fn integrate(rhs: &LindbladRhs, rho0: &CMat, y0: Option<&CMat>, schedule: &Schedule) -> Vec<ReferenceSample> {
    let mut out = Vec::with_capacity(schedule.times.len());
    integrate_with(rhs, rho0, y0, schedule, |_, t, rho, y| out.push(ReferenceSample { t, rho: rho.clone(), y: y.cloned() }));
    out
}
