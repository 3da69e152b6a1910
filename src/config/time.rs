//! `[time]` and `[protocol]`: the integration schedule (dt with t_end + samples, or dt with
//! times), or steady states solved for directly; and the time at which the coupling goes off.

use super::values::{as_array, as_f64, check_keys, invalid, section};
use crate::error::{QbatError, Result};
use crate::job::Schedule;
use toml::{Table, Value};

/// The time section of a config.
pub struct TimeSection {
    pub schedule: Schedule,
    pub steady: bool,
    pub switch_off: Option<f64>,
}

/// Read `[time]` and `[protocol]`; `cavity` runs have no steady-state solver.
pub fn parse_time(root: &Table, cavity: bool) -> Result<TimeSection> {
    let time_t = section(root, "time")?.ok_or_else(|| invalid("time", "missing [time] section (dt with t_end + samples, dt with times, or steady = true)"))?;
    check_keys(time_t, &["dt", "t_end", "samples", "times", "steady"], "time")?;
    let steady = match time_t.get("steady") {
        None => false,
        Some(Value::Boolean(b)) => *b,
        Some(v) => return Err(invalid("time.steady", format!("must be true or false, got {}", v.type_str()))),
    };
    let switch_off = parse_protocol(root)?;
    let schedule = if steady {
        if switch_off.is_some() {
            return Err(invalid("protocol.switch_off", "not used with time.steady = true (a steady state has no time at which to switch)"));
        }
        if cavity {
            return Err(invalid(
                "time.steady",
                "the cavity models (cavity-cells, dicke) have no direct steady-state solver: the Liouvillian is dim^2 square, dim = 4(n_fock + 1) or (N + 1)(n_fock + 1), too large to factorise; integrate to a long t_end instead",
            ));
        }
        for k in ["dt", "t_end", "samples", "times"] {
            if time_t.contains_key(k) {
                return Err(invalid(
                    &format!("time.{k}"),
                    "not used with time.steady = true (the steady state is solved for directly, without integrating); remove it",
                ));
            }
        }
        Schedule::steady()
    } else {
        integration_schedule(time_t, switch_off)?
    };
    Ok(TimeSection { schedule, steady, switch_off })
}

/// `[protocol]`: the charger-battery coupling goes off at switch_off = T.
fn parse_protocol(root: &Table) -> Result<Option<f64>> {
    let Some(t) = section(root, "protocol")? else {
        return Ok(None);
    };
    check_keys(t, &["switch_off"], "protocol")?;
    let v = t.get("switch_off").ok_or_else(|| invalid("protocol.switch_off", "missing ([protocol] needs switch_off = T, the time the coupling goes off)"))?;
    let t_off = as_f64(v, "protocol.switch_off")?;
    if t_off <= 0.0 {
        return Err(invalid("protocol.switch_off", format!("must be > 0, got {}", crate::error::shown(t_off))));
    }
    Ok(Some(t_off))
}

/// The smallest positive sample time: f32's smallest normal number (1.2e-38).
use crate::job::MIN_POSITIVE_GAP as MIN_POSITIVE_TIME;

/// `[time]` of an integrated run: dt with t_end + samples, or dt with times.
fn integration_schedule(time_t: &Table, switch_off: Option<f64>) -> Result<Schedule> {
    let dt = as_f64(time_t.get("dt").ok_or_else(|| invalid("time.dt", "missing"))?, "time.dt")?;
    if dt <= 0.0 {
        return Err(invalid("time.dt", format!("must be > 0, got {}", crate::error::shown(dt))));
    }
    let times: Vec<f64> = match (time_t.get("times"), time_t.get("t_end"), time_t.get("samples")) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(invalid("time.times", "give either times, or t_end with samples, not both"));
        }
        (Some(v), None, None) => {
            let ts: Vec<f64> = as_array(v, "time.times")?.iter().map(|x| as_f64(x, "time.times")).collect::<Result<_>>()?;
            if ts.is_empty() {
                return Err(invalid("time.times", "must not be empty"));
            }
            ts
        }
        (None, Some(te), Some(ns)) => {
            let t_end = as_f64(te, "time.t_end")?;
            let ns = as_f64(ns, "time.samples")?;
            if t_end < 0.0 {
                return Err(invalid("time.t_end", format!("must be >= 0, got {}", crate::error::shown(t_end))));
            }
            if ns.fract() != 0.0 || !(1.0..=1e7).contains(&ns) {
                return Err(invalid("time.samples", format!("must be an integer in [1, 1e7], got {}", crate::error::shown(ns))));
            }
            if t_end == 0.0 && ns > 1.0 {
                return Err(invalid("time.t_end", format!("must be > 0 for {ns} samples (or use samples = 1)")));
            }
            let n = ns as usize;
            if n == 1 {
                vec![t_end]
            } else {
                let ts: Vec<f64> = (0..n).map(|k| t_end * k as f64 / (n - 1) as f64).collect();
                // (a t_end too small to hold that many distinct times is this pair's fault,
                // not a `times` list's the user never wrote)
                if ts.windows(2).any(|w| w[1] <= w[0]) {
                    return Err(invalid("time.t_end", format!("{t_end} is too small for {n} distinct sample times (fewer samples, or a larger t_end)")));
                }
                ts
            }
        }
        (None, Some(_), None) => return Err(invalid("time.samples", "missing (t_end needs samples)")),
        (None, None, _) => return Err(invalid("time.t_end", "missing (give t_end with samples, or times)")),
    };
    if times[0] < 0.0 {
        return Err(invalid("time.times", format!("sample times must be >= 0, got {}", crate::error::shown(times[0]))));
    }
    if let Some(w) = times.windows(2).position(|w| w[1] <= w[0]) {
        return Err(invalid(
            "time.times",
            format!(
                "sample times must be strictly increasing: t[{}] = {} then t[{}] = {}",
                w,
                crate::error::shown(times[w]),
                w + 1,
                crate::error::shown(times[w + 1])
            ),
        ));
    }
    // A positive time below f32's smallest normal is 0 on an f32 GPU, and the rate measures'
    // E/t overflows on the f64 engines: one backend would differ from another, or fail.
    if let Some(k) = times.iter().position(|&t| t > 0.0 && t < MIN_POSITIVE_TIME) {
        let field = if time_t.contains_key("times") { "time.times" } else { "time.t_end" };
        return Err(invalid(
            field,
            format!(
                "sample time t[{k}] = {:e} is positive but below {MIN_POSITIVE_TIME:.2e}, the smallest the engines resolve (f32's); use 0 or a larger time",
                times[k]
            ),
        ));
    }
    // Likewise a positive gap between two of the schedule's times (0, the samples, the switch):
    // a step an f32 kernel rounds to none, while the host counts it.
    let mut bounds: Vec<f64> = std::iter::once(0.0).chain(times.iter().copied()).chain(switch_off).collect();
    bounds.sort_by(f64::total_cmp);
    if let Some(w) = bounds.windows(2).find(|w| w[1] > w[0] && w[1] - w[0] < MIN_POSITIVE_TIME) {
        let field = match switch_off {
            Some(t_off) if w.contains(&t_off) => "protocol.switch_off",
            _ if time_t.contains_key("times") => "time.times",
            _ => "time.t_end",
        };
        return Err(invalid(
            field,
            format!("the times {:e} and {:e} are {:e} apart: positive but below {MIN_POSITIVE_TIME:.2e}, the smallest step the engines resolve (f32's); make them equal or further apart", w[0], w[1], w[1] - w[0]),
        ));
    }
    // Steps per gap in f64, before any integer cast can saturate or wrap.
    let mut prev = 0.0;
    let mut total_steps = 0.0;
    for &t in &times {
        total_steps += ((t - prev) / dt).ceil();
        prev = t;
    }
    if total_steps > 1e9 {
        return Err(QbatError::TooLarge { field: "time.dt".into(), reason: format!("dt = {dt:e} needs {total_steps:.3e} RK4 steps per member (limit 1e9)") });
    }
    Ok(Schedule::with_switch_off(dt, &times, switch_off))
}
