//! TOML config -> validated `Plan`. Raw values are checked here, once; every error names
//! the offending field (`params.j`, `time.dt`, `initial.ket`, ...) and the reason.

use crate::ensemble::random::{two_qubit_state, RandomKind};
use crate::ensemble::sweep::{grid_index, grid_size, Sweep};
use crate::ensemble::{param_rng, state_rng};
use crate::error::{QbatError, Result};
use crate::job::Schedule;
use crate::linalg::*;
use crate::measures::Measure;
use crate::model::{cavity_cells, resolve_params, ModelKind, OpenSystem, ParamValue, Params, Space};
use rand::Rng;
use std::sync::Arc;
use toml::{Table, Value};

/// Tolerance on normalisation, Hermiticity and positivity of input states (PHYSICS.md).
pub const STATE_TOL: f64 = 1e-10;
/// RK4's stability region reaches about 2.78 along the negative real axis and 2.83 along the
/// imaginary axis; dt * (bound on |eigenvalue of L|) must stay below this.
pub const RK4_STABILITY: f64 = 2.7;

/// How member i's initial state is made.
#[derive(Clone, Debug)]
pub enum InitialSpec {
    /// The model's default (theta/phi for bloch-charger come from the member).
    Default,
    /// A full-space density matrix, shared by all members.
    Full(Arc<CMat>),
    /// A two-qubit (charger, battery) density matrix shared by all members; for the cavity
    /// model it is tensored with the member's coherent state.
    Qubits(Arc<CMat>),
    /// A seeded random state of the two qubits.
    Random(RandomKind),
    /// One full-space density matrix per member, indexed by member id (`pyapi::batch_plan`).
    PerMember(Arc<Vec<CMat>>),
}

/// One ensemble member: its parameter point and initial state.
#[derive(Clone, Debug)]
pub struct Member {
    pub id: u64,
    pub point: usize,
    /// Values of `Plan::param_columns` for this member.
    pub param_values: Vec<f64>,
    /// Bloch angles of the charger where they apply.
    pub theta_phi: Option<(f64, f64)>,
}

/// A validated run.
#[derive(Clone, Debug)]
pub struct Plan {
    pub model: ModelKind,
    pub space: Space,
    /// Resolved parameters of each point.
    pub points: Vec<Params>,
    /// Built operators of each point.
    pub systems: Vec<Arc<OpenSystem>>,
    pub members: Vec<Member>,
    pub initial: InitialSpec,
    pub schedule: Schedule,
    /// `[time] steady = true`: each member's steady state is solved for directly (the null
    /// space of its Liouvillian, `steady.rs`); the schedule is then one sample at t = inf.
    pub steady: bool,
    pub measures: Vec<Measure>,
    pub seed: u64,
    /// Swept (or drawn) parameter names, columns of summary.csv.
    pub param_columns: Vec<String>,
    /// The config as given, for run.json.
    pub config_json: serde_json::Value,
    /// Warn when a cavity member's fock_tail exceeds this.
    pub fock_tail_threshold: f64,
}

impl Plan {
    pub fn dim(&self) -> usize {
        self.space.dim()
    }
    pub fn is_cavity(&self) -> bool {
        matches!(self.space, Space::Cavity { .. })
    }

    /// The plan restricted to members[range] (ids, points and seeds unchanged), so that a
    /// large ensemble can be run slice by slice with results identical to a single run.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Plan {
        let mut p = self.clone();
        p.members = self.members[range].to_vec();
        p
    }

    /// Member i's initial density matrix (full space).
    pub fn initial_state(&self, m: &Member) -> CMat {
        let params = &self.points[m.point];
        match &self.initial {
            InitialSpec::Default => self.model.default_state(params, m.theta_phi).expect("validated"),
            InitialSpec::Full(rho) => (**rho).clone(),
            InitialSpec::PerMember(rhos) => rhos[m.id as usize].clone(),
            InitialSpec::Qubits(q) => self.with_cavity(q, params),
            InitialSpec::Random(kind) => {
                let (q, _) = two_qubit_state(*kind, &mut state_rng(self.seed, m.id));
                self.with_cavity(&q, params)
            }
        }
    }

    fn with_cavity(&self, q: &CMat, params: &Params) -> CMat {
        match self.space {
            Space::TwoQubit => q.clone(),
            Space::Cavity { n_fock } => {
                cavity_cells::product_state(q, cavity_cells::alpha(params).expect("validated"), n_fock)
            }
        }
    }
}

/// Overrides from the command line.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub ensemble: Option<u64>,
    pub seed: Option<u64>,
    /// Choose n_fock from the initial coherent states (`--auto-fock`, cavity-cells only).
    pub auto_fock: bool,
}

/// `--auto-fock`: the initial coherent state's tail beyond the cutoff must be below
/// AUTO_FOCK_TAIL = 1e-10 times a safety margin of 1e-2, and the cutoff gets 2 more levels
/// because the two cells can hand their two excitations to the mode.
pub const AUTO_FOCK_TAIL: f64 = 1e-12;

/// Smallest n_fock for which P(n >= N) of the Poisson distribution of |alpha|^2 is below
/// AUTO_FOCK_TAIL, plus 2.
pub fn auto_n_fock(alpha_abs_max: f64) -> usize {
    let a = C64::new(alpha_abs_max, 0.0);
    let mut n = 1;
    while cavity_cells::coherent_tail(a, n) >= AUTO_FOCK_TAIL && n < cavity_cells::MAX_N_FOCK {
        n += 1;
    }
    (n + 2).min(cavity_cells::MAX_N_FOCK)
}

fn invalid(field: &str, reason: impl Into<String>) -> QbatError {
    QbatError::invalid(field, reason)
}

fn as_f64(v: &Value, field: &str) -> Result<f64> {
    let x = match v {
        Value::Float(x) => *x,
        Value::Integer(i) => *i as f64,
        _ => return Err(invalid(field, format!("must be a number, got {}", v.type_str()))),
    };
    if !x.is_finite() {
        return Err(invalid(field, format!("must be finite, got {x}")));
    }
    if x.abs() > MAX_MAGNITUDE {
        return Err(invalid(field, format!("{x:e} is too large in magnitude (limit {MAX_MAGNITUDE:e})")));
    }
    Ok(x)
}

/// Largest magnitude of any number in a config: far beyond any physical parameter, and far
/// enough below f64::MAX that sums and products of a few of them stay finite.
pub const MAX_MAGNITUDE: f64 = 1e100;

/// A complex number: `x` or `[re, im]`.
pub fn as_complex(v: &Value, field: &str) -> Result<C64> {
    match v {
        Value::Array(a) if a.len() == 2 => Ok(c(as_f64(&a[0], field)?, as_f64(&a[1], field)?)),
        Value::Array(a) => Err(invalid(field, format!("a complex number is [re, im], got an array of {}", a.len()))),
        _ => Ok(c(as_f64(v, field)?, 0.0)),
    }
}

fn as_array<'a>(v: &'a Value, field: &str) -> Result<&'a Vec<Value>> {
    v.as_array().ok_or_else(|| invalid(field, format!("must be an array, got {}", v.type_str())))
}

/// A square complex matrix: rows of complex entries.
pub fn as_matrix(v: &Value, field: &str) -> Result<CMat> {
    let rows = as_array(v, field)?;
    let n = rows.len();
    if n == 0 {
        return Err(invalid(field, "must be a non-empty matrix"));
    }
    let mut m = CMat::zeros(n, n);
    for (i, row) in rows.iter().enumerate() {
        let row = as_array(row, &format!("{field}[{i}]"))?;
        if row.len() != n {
            return Err(invalid(&format!("{field}[{i}]"), format!("the matrix must be square: row has {} entries, expected {n}", row.len())));
        }
        for (j, z) in row.iter().enumerate() {
            m[(i, j)] = as_complex(z, &format!("{field}[{i}][{j}]"))?;
        }
    }
    Ok(m)
}

fn as_ket(v: &Value, field: &str) -> Result<Vec<C64>> {
    as_array(v, field)?.iter().enumerate().map(|(i, z)| as_complex(z, &format!("{field}[{i}]"))).collect()
}

/// A numeric sweep: scalar, { linspace }, { values } or { uniform }.
fn as_sweep(v: &Value, field: &str) -> Result<Sweep> {
    match v {
        Value::Table(t) => {
            if t.len() != 1 {
                return Err(invalid(field, "a sweep table has exactly one of linspace, values, uniform"));
            }
            let (k, val) = t.iter().next().unwrap();
            let f = format!("{field}.{k}");
            let arr = as_array(val, &f)?;
            match k.as_str() {
                "linspace" => {
                    if arr.len() != 3 {
                        return Err(invalid(&f, "must be [lo, hi, n]"));
                    }
                    Sweep::linspace(&f, as_f64(&arr[0], &f)?, as_f64(&arr[1], &f)?, as_f64(&arr[2], &f)?)
                }
                "values" => {
                    if arr.is_empty() {
                        return Err(invalid(&f, "must not be empty"));
                    }
                    Ok(Sweep::Values(arr.iter().map(|x| as_f64(x, &f)).collect::<Result<_>>()?))
                }
                "uniform" => {
                    if arr.len() != 2 {
                        return Err(invalid(&f, "must be [lo, hi]"));
                    }
                    let (lo, hi) = (as_f64(&arr[0], &f)?, as_f64(&arr[1], &f)?);
                    if lo > hi {
                        return Err(invalid(&f, format!("lo must be <= hi, got [{lo}, {hi}]")));
                    }
                    Ok(Sweep::Uniform(lo, hi))
                }
                other => Err(invalid(field, format!("unknown sweep '{other}'; use linspace, values or uniform"))),
            }
        }
        _ => Ok(Sweep::Fixed(as_f64(v, field)?)),
    }
}

const TOP_KEYS: [&str; 7] = ["model", "params", "initial", "time", "ensemble", "output", "protocol"];

fn check_keys(t: &Table, allowed: &[&str], section: &str) -> Result<()> {
    for k in t.keys() {
        if !allowed.contains(&k.as_str()) {
            let field = if section.is_empty() { k.clone() } else { format!("{section}.{k}") };
            return Err(invalid(&field, format!("unknown key; allowed here: {}", allowed.join(", "))));
        }
    }
    Ok(())
}

fn section<'a>(root: &'a Table, name: &str) -> Result<Option<&'a Table>> {
    match root.get(name) {
        None => Ok(None),
        Some(Value::Table(t)) => Ok(Some(t)),
        Some(v) => Err(invalid(name, format!("must be a table [{name}], got {}", v.type_str()))),
    }
}

/// Parse and validate a TOML config.
pub fn parse_plan(text: &str, ov: &Overrides) -> Result<Plan> {
    let root: Table = text.parse::<Table>().map_err(|e| QbatError::Parse(e.to_string().trim().to_string()))?;
    plan_from_table(&root, ov)
}

/// Validate a parsed config table.
pub fn plan_from_table(root: &Table, ov: &Overrides) -> Result<Plan> {
    check_keys(root, &TOP_KEYS, "")?;
    let model_name = root.get("model").ok_or_else(|| invalid("model", "missing; `qbat-gpu models` lists them"))?;
    let model_name = model_name.as_str().ok_or_else(|| invalid("model", "must be a string"))?;
    let model = ModelKind::from_name(model_name)?;
    let cavity = model == ModelKind::CavityCells;

    // --- parameters: fixed values, grid axes and per-member draws
    let empty = Table::new();
    let params_t = section(root, "params")?.unwrap_or(&empty);
    let specs = model.params();
    let mut base = Params::new();
    let mut axes: Vec<(String, Vec<f64>)> = vec![];
    let mut drawn: Vec<(String, f64, f64)> = vec![];
    for (k, v) in params_t {
        let field = format!("params.{k}");
        if !specs.iter().any(|s| s.name == k) {
            let names: Vec<_> = specs.iter().map(|s| s.name).collect();
            return Err(invalid(&field, format!("unknown parameter for model '{model_name}'; known: {}", names.join(", "))));
        }
        let value = match (model, k.as_str()) {
            (ModelKind::TwoQubit, "hamiltonian" | "h_battery" | "h_charger") => ParamValue::Matrix(as_matrix(v, &field)?),
            (ModelKind::TwoQubit, "jumps") => {
                let mut list = vec![];
                for (i, j) in as_array(v, &field)?.iter().enumerate() {
                    let f = format!("{field}[{i}]");
                    let t = j.as_table().ok_or_else(|| invalid(&f, "must be a table { op = matrix, rate = r }"))?;
                    check_keys(t, &["op", "rate"], &f)?;
                    let op = as_matrix(t.get("op").ok_or_else(|| invalid(&format!("{f}.op"), "missing"))?, &format!("{f}.op"))?;
                    let rate = as_f64(t.get("rate").ok_or_else(|| invalid(&format!("{f}.rate"), "missing"))?, &format!("{f}.rate"))?;
                    list.push((op, rate));
                }
                ParamValue::Jumps(list)
            }
            (ModelKind::DrivenPair, "reservoir") => {
                ParamValue::Text(v.as_str().ok_or_else(|| invalid(&field, "must be \"boson\" or \"fermion\""))?.to_string())
            }
            (ModelKind::CavityCells, "alpha") if v.is_array() => ParamValue::Complex(as_complex(v, &field)?),
            _ => match as_sweep(v, &field)? {
                Sweep::Fixed(x) => ParamValue::Real(x),
                Sweep::Values(vals) => {
                    axes.push((k.clone(), vals.clone()));
                    ParamValue::Real(vals[0])
                }
                Sweep::Uniform(lo, hi) => {
                    drawn.push((k.clone(), lo, hi));
                    ParamValue::Real(lo)
                }
            },
        };
        base.insert(k.clone(), value);
    }
    if axes.iter().any(|(k, _)| k == "n_fock") || drawn.iter().any(|(k, _, _)| k == "n_fock") {
        return Err(invalid("params.n_fock", "all members share one n_fock: it cannot be swept"));
    }
    if ov.auto_fock {
        if !cavity {
            return Err(invalid("--auto-fock", format!("applies to cavity-cells only, not '{model_name}'")));
        }
        // the largest |alpha| any member can start from
        let mut amax = match base.get("alpha") {
            Some(ParamValue::Complex(z)) => z.norm(),
            Some(ParamValue::Real(x)) => x.abs(),
            _ => 2.0,
        };
        for (k, vals) in &axes {
            if k == "alpha" {
                amax = vals.iter().fold(amax, |m, v| m.max(v.abs()));
            }
        }
        for (k, lo, hi) in &drawn {
            if k == "alpha" {
                amax = amax.max(lo.abs()).max(hi.abs());
            }
        }
        base.insert("n_fock".into(), ParamValue::Real(auto_n_fock(amax) as f64));
    }
    // Validate the base point fully (names, NaN, ranges) before expanding.
    let base = resolve_params(model, &base)?;
    let space = model.space_for(&base)?;

    // --- initial state
    let init_t = section(root, "initial")?.unwrap_or(&empty);
    check_keys(init_t, &["ket", "dm", "random", "theta", "phi"], "initial")?;
    let given: Vec<&str> = ["ket", "dm", "random"].into_iter().filter(|k| init_t.contains_key(*k)).collect();
    let angles = init_t.contains_key("theta") || init_t.contains_key("phi");
    if given.len() + usize::from(angles) > 1 {
        let mut got = given.clone();
        if angles {
            got.push("theta/phi");
        }
        return Err(invalid("initial", format!("give exactly one of ket, dm, random or theta/phi; got {}", got.join(", "))));
    }
    if angles && model != ModelKind::BlochCharger {
        return Err(invalid("initial.theta", format!("theta/phi apply to bloch-charger only, not '{model_name}'")));
    }
    let dim = space.dim();
    let initial = if let Some(v) = init_t.get("ket") {
        let ket = as_ket(v, "initial.ket")?;
        let norm2: f64 = ket.iter().map(|z| z.norm_sqr()).sum();
        if (norm2 - 1.0).abs() > STATE_TOL {
            return Err(invalid("initial.ket", format!("must be normalised: |psi|^2 = {norm2:.12} (tolerance {STATE_TOL:e})")));
        }
        qubits_or_full(projector(&ket), dim, cavity, "initial.ket")?
    } else if let Some(v) = init_t.get("dm") {
        let rho = as_matrix(v, "initial.dm")?;
        check_state(&rho, "initial.dm")?;
        qubits_or_full(rho, dim, cavity, "initial.dm")?
    } else if let Some(v) = init_t.get("random") {
        let name = v.as_str().ok_or_else(|| invalid("initial.random", "must be a string"))?;
        InitialSpec::Random(RandomKind::from_name(name)?)
    } else {
        InitialSpec::Default
    };
    let mut angle_axes: Vec<(String, Vec<f64>)> = vec![];
    let mut angle_fixed = (std::f64::consts::PI, 0.0);
    for (k, slot) in [("theta", 0), ("phi", 1)] {
        if let Some(v) = init_t.get(k) {
            let field = format!("initial.{k}");
            match as_sweep(v, &field)? {
                Sweep::Fixed(x) => {
                    if slot == 0 { angle_fixed.0 = x } else { angle_fixed.1 = x }
                }
                Sweep::Values(vals) => angle_axes.push((k.to_string(), vals)),
                Sweep::Uniform(..) => return Err(invalid(&field, "use random = \"bloch\" for random angles; uniform is not supported here")),
            }
        }
    }

    // --- time grid: integrated, or steady states (no time grid at all)
    let time_t = section(root, "time")?.ok_or_else(|| invalid("time", "missing [time] section (dt with t_end + samples, dt with times, or steady = true)"))?;
    check_keys(time_t, &["dt", "t_end", "samples", "times", "steady"], "time")?;
    let steady = match time_t.get("steady") {
        None => false,
        Some(Value::Boolean(b)) => *b,
        Some(v) => return Err(invalid("time.steady", format!("must be true or false, got {}", v.type_str()))),
    };
    // --- protocol: the charger-battery coupling goes off at switch_off = T
    let switch_off = match section(root, "protocol")? {
        None => None,
        Some(t) => {
            check_keys(t, &["switch_off"], "protocol")?;
            match t.get("switch_off") {
                None => return Err(invalid("protocol.switch_off", "missing ([protocol] needs switch_off = T, the time the coupling goes off)")),
                Some(v) => {
                    let t_off = as_f64(v, "protocol.switch_off")?;
                    if t_off <= 0.0 {
                        return Err(invalid("protocol.switch_off", format!("must be > 0, got {t_off}")));
                    }
                    Some(t_off)
                }
            }
        }
    };
    let schedule = if steady {
        if switch_off.is_some() {
            return Err(invalid("protocol.switch_off", "not used with time.steady = true (a steady state has no time at which to switch)"));
        }
        if cavity {
            return Err(invalid(
                "time.steady",
                "cavity-cells has no direct steady-state solver: its Liouvillian is (4(n_fock + 1))^2 square, too large to factorise; integrate to a long t_end instead",
            ));
        }
        for k in ["dt", "t_end", "samples", "times"] {
            if time_t.contains_key(k) {
                return Err(invalid(&format!("time.{k}"), "not used with time.steady = true (the steady state is solved for directly, without integrating); remove it"));
            }
        }
        Schedule::steady()
    } else {
        integration_schedule(time_t, switch_off)?
    };
    let dt = schedule.dt;

    // --- ensemble
    let ens_t = section(root, "ensemble")?.unwrap_or(&empty);
    check_keys(ens_t, &["size", "seed", "mode"], "ensemble")?;
    let zip = match ens_t.get("mode").map(|v| v.as_str()) {
        None | Some(Some("grid")) => false,
        Some(Some("zip")) => true,
        Some(_) => return Err(invalid("ensemble.mode", "must be \"grid\" or \"zip\"")),
    };
    let seed = match (ov.seed, ens_t.get("seed")) {
        (Some(s), _) => s,
        (None, Some(v)) => match v {
            // read as an integer: every u63 seed is distinct (an f64 would merge seeds above 2^53)
            Value::Integer(i) if *i >= 0 => *i as u64,
            _ => return Err(invalid("ensemble.seed", format!("must be a non-negative integer, got {v}"))),
        },
        (None, None) => 0,
    };
    let all_axes: Vec<(String, Vec<f64>)> = axes.iter().cloned().chain(angle_axes.iter().cloned()).collect();
    let axis_lens: Vec<usize> = all_axes.iter().map(|(_, v)| v.len()).collect();
    let n_grid = grid_size(&axis_lens, zip)?;
    let size_cfg = match ens_t.get("size") {
        Some(v) => Some(as_f64(v, "ensemble.size")?),
        None => None,
    };
    let size = match (ov.ensemble, size_cfg) {
        (Some(n), _) => n as f64,
        (None, Some(s)) => s,
        (None, None) => n_grid as f64,
    };
    let size_field = if ov.ensemble.is_some() { "--ensemble" } else { "ensemble.size" };
    if size.fract() != 0.0 || size < 1.0 {
        return Err(invalid(size_field, format!("must be an integer >= 1, got {size}")));
    }
    if size > 1e9 {
        return Err(QbatError::TooLarge { field: size_field.into(), reason: format!("{size} members is more than 1e9") });
    }
    let size = size as u64;
    if size % n_grid as u64 != 0 {
        return Err(invalid(size_field, format!("must be a multiple of the sweep grid size {n_grid} (each grid point gets size/{n_grid} members)")));
    }

    // --- measures
    let out_t = section(root, "output")?.unwrap_or(&empty);
    check_keys(out_t, &["measures", "fock_tail_threshold"], "output")?;
    let fock_tail_threshold = match out_t.get("fock_tail_threshold") {
        Some(v) => {
            let x = as_f64(v, "output.fock_tail_threshold")?;
            if !(x > 0.0 && x < 1.0) {
                return Err(invalid("output.fock_tail_threshold", format!("must lie in (0, 1), got {x}")));
            }
            x
        }
        None => 1e-6,
    };
    let mut measures = match out_t.get("measures") {
        None => {
            let mut ms = crate::measures::default_measures(cavity);
            if steady {
                ms.push(Measure::SteadyResidual);
            }
            ms
        }
        Some(v) => {
            let arr = as_array(v, "output.measures")?;
            if arr.is_empty() {
                return Err(invalid("output.measures", "must name at least one measure"));
            }
            let mut ms = vec![];
            for x in arr {
                let name = x.as_str().ok_or_else(|| invalid("output.measures", "entries must be strings"))?;
                let m = Measure::from_name(name)?;
                if !m.applies(cavity) {
                    return Err(invalid("output.measures", format!("'{name}' does not apply to model '{model_name}'")));
                }
                if m.steady_only() && !steady {
                    return Err(invalid("output.measures", format!("'{name}' applies to steady-state runs only ([time] steady = true)")));
                }
                if ms.contains(&m) {
                    return Err(invalid("output.measures", format!("'{name}' is listed twice")));
                }
                ms.push(m);
            }
            ms
        }
    };

    // PHYSICS.md: every cavity run reports fock_tail, the truncation diagnostic.
    if cavity && !measures.contains(&Measure::FockTail) {
        measures.push(Measure::FockTail);
    }
    // Refuse what cannot fit before allocating any member.
    let n_points = if drawn.is_empty() { n_grid } else { size as usize };
    let keeps_states = measures.iter().any(|m| m.needs_eigensolve());
    // a grid's points are set by the sweeps, drawn points by the ensemble size
    let points_field = if drawn.is_empty() { "params" } else { size_field };
    check_memory(space, size as usize, n_points, schedule.times.len(), measures.len(), keeps_states, size_field, points_field)?;

    // --- points and members
    let n_param_axes = axes.len();
    let param_columns: Vec<String> = axes.iter().map(|(k, _)| k.clone()).chain(drawn.iter().map(|(k, _, _)| k.clone())).collect();
    let per_member_points = !drawn.is_empty();
    let mut points = vec![];
    let mut members = Vec::with_capacity(size as usize);
    let grid_point = |k: usize| -> (Params, Vec<f64>, Option<(f64, f64)>) {
        let idx = grid_index(&axis_lens, zip, k);
        let mut p = base.clone();
        let mut vals = vec![];
        let mut ang = angle_fixed;
        for (a, (name, values)) in all_axes.iter().enumerate() {
            let x = values[idx[a]];
            if a < n_param_axes {
                p.insert(name.clone(), ParamValue::Real(x));
                vals.push(x);
            } else if name == "theta" {
                ang.0 = x;
            } else {
                ang.1 = x;
            }
        }
        (p, vals, if model == ModelKind::BlochCharger { Some(ang) } else { None })
    };
    if !per_member_points {
        for k in 0..n_grid {
            points.push(grid_point(k).0);
        }
    }
    for id in 0..size {
        let k = (id % n_grid as u64) as usize;
        let (mut p, mut vals, mut ang) = grid_point(k);
        let point = if per_member_points {
            let mut rng = param_rng(seed, id);
            for (name, lo, hi) in &drawn {
                let x = lo + (hi - lo) * rng.random::<f64>();
                p.insert(name.clone(), ParamValue::Real(x));
                vals.push(x);
            }
            points.push(p);
            points.len() - 1
        } else {
            k
        };
        if let InitialSpec::Random(kind) = initial {
            ang = if kind == RandomKind::Bloch { two_qubit_state(kind, &mut state_rng(seed, id)).1 } else { None };
        } else if !matches!(initial, InitialSpec::Default) {
            ang = None;
        }
        members.push(Member { id, point, param_values: std::mem::take(&mut vals), theta_phi: ang });
    }

    // Build the operators of every point; check each point and the RK4 stability of dt.
    let mut systems = Vec::with_capacity(points.len());
    for p in &points {
        let p = resolve_params(model, p)?;
        let sys = model.build(&p)?;
        let bound = sys.generator_norm_bound();
        if !bound.is_finite() {
            return Err(invalid("params", "the parameters are too large: the generator's spectral bound is not finite"));
        }
        if !steady && dt * bound > RK4_STABILITY {
            return Err(invalid(
                "time.dt",
                format!(
                    "dt = {dt} is beyond RK4 stability for this model: the generator's spectral radius is up to {bound:.4e}, so dt must be <= {:.4e}",
                    RK4_STABILITY / bound
                ),
            ));
        }
        if switch_off.is_some() {
            // After T the model runs without its coupling: that generator must be stable too.
            let off = sys.uncoupled().generator_norm_bound();
            if !off.is_finite() || dt * off > RK4_STABILITY {
                return Err(invalid(
                    "time.dt",
                    format!("dt = {dt} is beyond RK4 stability for this model after protocol.switch_off: the uncoupled generator's spectral radius is up to {off:.4e}"),
                ));
            }
        }
        systems.push(Arc::new(sys));
    }
    if switch_off.is_some() && !systems.iter().any(|s| s.has_coupling()) {
        return Err(invalid(
            "protocol.switch_off",
            format!("model '{model_name}' has no charger-battery coupling to switch off at any parameter point (its coupling is {})", model.coupling_doc()),
        ));
    }
    let points: Vec<Params> = points.iter().map(|p| resolve_params(model, p)).collect::<Result<_>>()?;

    let config_json = serde_json::to_value(root).unwrap_or(serde_json::Value::Null);
    Ok(Plan { model, space, points, systems, members, initial, schedule, steady, measures, seed, param_columns, config_json, fock_tail_threshold })
}

/// `[time]` of an integrated run: dt with t_end + samples, or dt with times.
fn integration_schedule(time_t: &Table, switch_off: Option<f64>) -> Result<Schedule> {
    let dt = as_f64(time_t.get("dt").ok_or_else(|| invalid("time.dt", "missing"))?, "time.dt")?;
    if dt <= 0.0 {
        return Err(invalid("time.dt", format!("must be > 0, got {dt}")));
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
                return Err(invalid("time.t_end", format!("must be >= 0, got {t_end}")));
            }
            if ns.fract() != 0.0 || !(1.0..=1e7).contains(&ns) {
                return Err(invalid("time.samples", format!("must be an integer in [1, 1e7], got {ns}")));
            }
            if t_end == 0.0 && ns > 1.0 {
                return Err(invalid("time.t_end", format!("must be > 0 for {ns} samples (or use samples = 1)")));
            }
            let n = ns as usize;
            if n == 1 { vec![t_end] } else { (0..n).map(|k| t_end * k as f64 / (n - 1) as f64).collect() }
        }
        (None, Some(_), None) => return Err(invalid("time.samples", "missing (t_end needs samples)")),
        (None, None, _) => return Err(invalid("time.t_end", "missing (give t_end with samples, or times)")),
    };
    if times[0] < 0.0 {
        return Err(invalid("time.times", format!("sample times must be >= 0, got {}", times[0])));
    }
    if let Some(w) = times.windows(2).position(|w| w[1] <= w[0]) {
        return Err(invalid("time.times", format!("sample times must be strictly increasing: t[{}] = {} then t[{}] = {}", w, times[w], w + 1, times[w + 1])));
    }
    // Steps per gap in f64, before any integer cast can saturate or wrap.
    let mut prev = 0.0;
    let mut total_steps = 0.0;
    for &t in &times {
        total_steps += ((t - prev) / dt).ceil();
        prev = t;
    }
    if total_steps > 1e9 {
        return Err(QbatError::TooLarge {
            field: "time.dt".into(),
            reason: format!("dt = {dt:e} needs {total_steps:.3e} RK4 steps per member (limit 1e9)"),
        });
    }
    Ok(Schedule::with_switch_off(dt, &times, switch_off))
}

/// An explicit state: full-space, or (cavity) a two-qubit state to tensor with |alpha>.
fn qubits_or_full(rho: CMat, dim: usize, cavity: bool, field: &str) -> Result<InitialSpec> {
    if rho.nrows() == dim {
        check_state(&rho, field)?;
        return Ok(if cavity { InitialSpec::Full(Arc::new(rho)) } else { InitialSpec::Qubits(Arc::new(rho)) });
    }
    if cavity && rho.nrows() == 4 {
        check_state(&rho, field)?;
        return Ok(InitialSpec::Qubits(Arc::new(rho)));
    }
    let expect = if cavity { format!("{dim} (or 4 for the two cells, tensored with |alpha>)") } else { dim.to_string() };
    Err(invalid(field, format!("has dimension {}, the model needs {expect}", rho.nrows())))
}

/// Normalised, Hermitian and positive to STATE_TOL.
pub fn check_state(rho: &CMat, field: &str) -> Result<()> {
    let herm = hermiticity_error(rho);
    if herm > STATE_TOL {
        return Err(invalid(field, format!("must be Hermitian: largest |rho_ij - conj rho_ji| = {herm:.3e}")));
    }
    let tr = rho.trace();
    if (tr.re - 1.0).abs() > STATE_TOL || tr.im.abs() > STATE_TOL {
        return Err(invalid(field, format!("must have unit trace, got {:.12}", tr.re)));
    }
    let lam = eigvals_hermitian(rho)[0];
    if lam < -STATE_TOL {
        return Err(invalid(field, format!("must be positive semidefinite: smallest eigenvalue {lam:.3e}")));
    }
    Ok(())
}

/// Refuse runs whose members, parameter points, smallest result block or per-thread work space
/// cannot fit in this machine's memory. Costs: a member about 256 B in the member list; a block
/// of 1,024 members its results (samples x measures f64, and 16 state reals per sample when
/// two-qubit eigen-solve measures are on), twice over; the streamed statistics a cell per
/// (sample, measure) with its quantile sketch, twice over (the accumulator and its checkpoint);
/// a point its operators (about 8 dim x dim complex matrices) plus 4 KiB (parameters, the
/// Pauli-basis generator).
#[allow(clippy::too_many_arguments)]
fn check_memory(space: Space, members: usize, points: usize, samples: usize, measures: usize, keeps_states: bool, size_field: &str, points_field: &str) -> Result<()> {
    let available = available_memory_bytes();
    let gib = |b: f64| b / 2f64.powi(30);
    let dim = space.dim() as f64;
    // Reference work space: about 10 dim x dim complex matrices per worker thread.
    let per_thread = 10.0 * dim * dim * 16.0;
    let threads = rayon::current_num_threads() as f64;
    if per_thread * threads > available {
        return Err(QbatError::TooLarge {
            field: "params.n_fock".into(),
            reason: format!("a {dim}x{dim} state needs {:.1} GiB of work space, more than the {:.1} GiB available", gib(per_thread * threads), gib(available)),
        });
    }
    // Runs stream their results block by block (study.rs), so a member costs its entry in the
    // member list, and the results of one smallest block (1,024 members) must fit; the
    // two-qubit engines keep 16 state reals per sample only for the eigen-solve measures.
    let results_per_member = result_bytes_per_member(space, samples, measures, keeps_states);
    let per_point = 8.0 * dim * dim * 16.0 + 4096.0;
    let members_bytes = members as f64 * 256.0 + members.min(1024) as f64 * results_per_member;
    let points_bytes = points as f64 * per_point;
    // The streamed statistics: a cell per (sample, measure), about 200 B plus its quantile
    // sketch, which holds at most one 4-byte bucket per member (about 4,000 in practice).
    let cells = samples as f64 * measures as f64;
    let stats_bytes = cells * (200.0 + 4.0 * members.min(4000) as f64) * 2.0;
    let per_sample_bytes = stats_bytes + members.min(1024) as f64 * results_per_member;
    // the field to name: whichever of samples, members and points costs most
    let (members_bytes, size_field) = if per_sample_bytes > members as f64 * 256.0 { (members_bytes + stats_bytes, "time.samples") } else { (members_bytes + stats_bytes, size_field) };
    let total = members_bytes + points_bytes;
    if total > 0.6 * available {
        return Err(QbatError::TooLarge {
            field: if points_bytes > members_bytes { points_field.into() } else { size_field.into() },
            reason: format!(
                "{members} members x {samples} samples x {measures} measures ({points} parameter points) need about {:.1} GiB in memory, more than 60% of the {:.1} GiB available; {}",
                gib(total),
                gib(available),
                if points_bytes > members_bytes {
                    "use fewer parameter points (each builds its own operators)"
                } else {
                    "select fewer measures (output.measures) or samples, or split the run"
                }
            ),
        });
    }
    Ok(())
}

/// Bytes a member's results take while its block is processed: samples x measures f64, plus 16
/// state reals per sample when two-qubit eigen-solve measures are on, twice over (the engine's
/// output and its assembly). Sizes blocks (study.rs) and the memory check.
pub fn result_bytes_per_member(space: Space, samples: usize, measures: usize, keeps_states: bool) -> f64 {
    let states = if space == Space::TwoQubit && keeps_states { 16.0 } else { 0.0 };
    samples as f64 * (measures as f64 + states) * 8.0 * 2.0
}

/// MemAvailable from /proc/meminfo (Linux); 16 GiB where it cannot be read.
pub fn available_memory_bytes() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("MemAvailable:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb * 1024.0)
        .unwrap_or(16.0 * 2f64.powi(30))
}
