//! TOML config -> validated `Plan`. Raw values are checked here, once; every error names
//! the offending field (`params.j`, `time.dt`, `initial.ket`, ...) and the reason.

pub mod available_memory;
pub(crate) mod deep_key;
mod drives;
mod ensemble;
mod initial;
pub mod jobs;
pub mod memory;
mod output;
mod params;
mod parse_memory;
mod systems;
mod time;
pub mod values;

pub use available_memory::available_memory_bytes;
pub use ensemble::{ensemble_arg, ensemble_float, shard_range};
pub use initial::check_state;
pub use memory::result_bytes_per_member;
pub use params::{auto_n_fock, AUTO_FOCK_TAIL};
pub use values::{as_complex, as_matrix, MAX_MAGNITUDE};

use crate::ensemble::random::two_qubit_state;
use crate::ensemble::random::RandomKind;
use crate::ensemble::state_rng;
use crate::error::{QbatError, Result};
use crate::job::Schedule;
use crate::linalg::CMat;
pub use crate::measures::saved::StateSave;
use crate::measures::Measure;
use crate::model::{cavity_cells, dicke, resolve_params, ModelKind, OpenSystem, Params, Space};
use std::sync::Arc;
use toml::Table;
use values::{check_keys, invalid, section, TOP_KEYS};

/// Tolerance on normalisation, Hermiticity and positivity of input states (docs/physics.md).
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

impl InitialSpec {
    /// Whether it gives the whole state, the cavity's included (a model's start from its
    /// parameters then goes unused).
    pub fn is_full_space(&self) -> bool {
        matches!(self, InitialSpec::Full(_) | InitialSpec::PerMember(_))
    }
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
    /// Members of the whole run (`members` holds only a shard's when one was asked for).
    pub ensemble_size: usize,
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
    /// `--save-states`: the engines also return each sampled state (states.npy).
    pub save_states: Option<StateSave>,
    /// `[[drive]]`: the drives of each parameter point (index as `points`; every entry empty
    /// for an undriven run).
    pub drives: Vec<Vec<crate::model::drive::Drive>>,
}

impl Plan {
    pub fn dim(&self) -> usize {
        self.space.dim()
    }
    pub fn is_cavity(&self) -> bool {
        matches!(self.space, Space::Cavity { .. })
    }
    pub fn is_dicke(&self) -> bool {
        matches!(self.space, Space::Dicke { .. })
    }
    /// The cutoff of the cavity mode, where the model has one (cavity-cells, dicke).
    pub fn n_fock(&self) -> Option<usize> {
        match self.space {
            Space::Cavity { n_fock } | Space::Dicke { n_fock, .. } => Some(n_fock),
            Space::TwoQubit => None,
        }
    }
    /// Has the run any `[[drive]]`?
    pub fn is_driven(&self) -> bool {
        self.drives.iter().any(|d| !d.is_empty())
    }

    /// The plan restricted to members[range] (ids, points and seeds unchanged), so that a
    /// large ensemble can be run slice by slice with results identical to a single run.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Plan {
        let mut p = self.clone();
        p.members = self.members[range].to_vec();
        p
    }

    /// The plan of `members[range]` holding only the parameter points those members use
    /// (renumbered in order of first use; ids and seeds unchanged): a block's or one member's
    /// run without every other point, which `slice` keeps and the engines build (a sweep of
    /// 1,000,000 points took 21 s a build, once for each block and each run of the check of dt).
    pub fn slice_points(&self, range: std::ops::Range<usize>) -> Plan {
        let mut members = self.members[range].to_vec();
        let mut renumbered = vec![usize::MAX; self.points.len()];
        let mut used = vec![];
        for m in &mut members {
            if renumbered[m.point] == usize::MAX {
                renumbered[m.point] = used.len();
                used.push(m.point);
            }
            m.point = renumbered[m.point];
        }
        Plan {
            model: self.model,
            space: self.space,
            points: used.iter().map(|&p| self.points[p].clone()).collect(),
            systems: used.iter().map(|&p| self.systems[p].clone()).collect(),
            members,
            ensemble_size: self.ensemble_size,
            initial: self.initial.clone(),
            schedule: self.schedule.clone(),
            steady: self.steady,
            measures: self.measures.clone(),
            seed: self.seed,
            param_columns: self.param_columns.clone(),
            config_json: self.config_json.clone(),
            fock_tail_threshold: self.fock_tail_threshold,
            save_states: self.save_states,
            // (every point has an entry, or none has)
            drives: match self.drives.is_empty() {
                true => vec![],
                false => used.iter().map(|&p| self.drives.get(p).cloned().unwrap_or_default()).collect(),
            },
        }
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
            Space::Cavity { n_fock } => cavity_cells::product_state(q, cavity_cells::alpha(params).expect("validated"), n_fock),
            Space::Dicke { .. } => dicke::with_cavity(q, params).expect("validated"),
        }
    }
}

/// An explicit `[initial]` state replaces what parameters would start: dicke's cells
/// (`dicke_m`), and a full-space state the cavity's start too (dicke's `photons` and `alpha`,
/// cavity-cells' `alpha`); giving both would silently drop one (a swept `alpha` gave identical
/// members under differing `alpha` columns).
fn start_given_once(model: ModelKind, base: &Params, spec: &InitialSpec) -> Result<()> {
    let full = spec.is_full_space();
    let replaced: &[&str] = match model {
        ModelKind::Dicke if full => &["dicke_m", "photons", "alpha"],
        ModelKind::Dicke if matches!(spec, InitialSpec::Qubits(_)) => &["dicke_m"],
        ModelKind::CavityCells if full => &["alpha"],
        _ => &[],
    };
    match replaced.iter().find(|k| base.contains_key(**k)) {
        Some(k) => Err(invalid(&format!("params.{k}"), "the [initial] state already fixes it: give one or the other")),
        None => Ok(()),
    }
}

/// Overrides from the command line.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub ensemble: Option<u64>,
    pub seed: Option<u64>,
    /// Choose n_fock from the initial coherent states (`--auto-fock`, cavity-cells only).
    pub auto_fock: bool,
    /// `--shard K/N` as (K, N): only that shard's members are built (and counted by the
    /// memory check); their ids and seeds are those of the whole run.
    pub shard: Option<(usize, usize)>,
    /// `--save-states`: keep each sampled state (counted by the memory check).
    pub save_states: Option<StateSave>,
    /// Every backend but `--backend gpu` (auto is counted as the CPU engine): the memory check
    /// leaves out the GPU host's copies of each point's constants.
    pub cpu_only: bool,
}

/// The most bytes of TOML text a config holds: a config file's bound (the CLI reads no more),
/// and that of a config given from Python as a dict or text. Within it, parsing can take
/// hundreds of bytes of memory a byte of text (dotted keys, inline tables): a text of 64 KiB
/// or more is first estimated by `parse_memory` against the memory available.
pub const CONFIG_TEXT_LIMIT: usize = 4 << 20;

/// Parse and validate a TOML config.
pub fn parse_plan(text: &str, ov: &Overrides) -> Result<Plan> {
    if text.len() > CONFIG_TEXT_LIMIT {
        return Err(invalid(
            "config",
            format!(
                "its TOML text is {} bytes, more than the {CONFIG_TEXT_LIMIT} bytes a config may hold; sweep many points with a linspace or uniform axis, or split them across runs",
                text.len()
            ),
        ));
    }
    parse_memory::check_parse_memory(text)?;
    let root: Table = text.parse::<Table>().map_err(|e| parse_error(text, &e))?;
    plan_from_table(&root, ov)
}

/// A TOML syntax error on one line, naming the key where the error's span shows it:
/// `params.j: <reason> (line 4)`; `<reason> (line 4)` when no key can be told.
pub fn parse_error(text: &str, e: &toml::de::Error) -> QbatError {
    let reason = e.message().split('\n').map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ");
    // (the value as written, where the error's span is one short number)
    let literal =
        e.span().and_then(|s| text.get(s)).map(str::trim).filter(|l| l.len() <= 40 && l.chars().all(|c| c.is_ascii_alphanumeric() || "+-_".contains(c)));
    let reason = in_our_words(reason, literal);
    let Some(at) = e.span().map(|s| s.start.min(text.len())) else {
        // the parser's limit on a dotted key's parts comes without a span: its line found here
        return match reason.contains("recursion").then(|| deep_key::deep_key_line(text, deep_key::MAX_KEY_PARTS)).flatten() {
            Some((line_no, parts)) => {
                let reason = format!("a dotted key of {parts} parts, more than the {} the TOML parser takes", deep_key::MAX_KEY_PARTS);
                match key_at(text, line_no) {
                    Some(key) => QbatError::parse(format!("{}: {reason} (line {line_no})", deep_key::shortened(&key))),
                    None => QbatError::parse(format!("{reason} (line {line_no})")),
                }
            }
            None => QbatError::parse(reason),
        };
    };
    let line_no = text.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
    match key_at(text, line_no) {
        Some(key) => QbatError::parse(format!("{}: {reason} (line {line_no})", deep_key::shortened(&key))),
        None => QbatError::parse(format!("{reason} (line {line_no})")),
    }
}

/// The parser's reason, where it speaks of its own types, in the config's words: an integer
/// past i64 is "u64 value was too large" up to u64::MAX (the value written, `literal`, is
/// named), "invalid type: integer `N` as i128, expected any valid TOML value" within i128,
/// and "integer number overflowed" past it (kept: its words are the config's).
fn in_our_words(reason: String, literal: Option<&str>) -> String {
    let past_i64 = |n: &str| format!("the integer {n} is outside the range a config's integers take (|n| < 2^63 = 9.2e18)");
    if let Some((n, _)) = reason.strip_prefix("invalid type: integer `").and_then(|r| r.split_once("` as i128")) {
        return past_i64(n);
    }
    match (reason.as_str(), literal) {
        ("u64 value was too large", Some(n)) => past_i64(n),
        ("u64 value was too large", None) => past_i64("written"),
        _ => reason,
    }
}

/// The dotted key written on line `line_no` (1-based), under the nearest `[table]` above it;
/// on a header line, the table itself.
fn key_at(text: &str, line_no: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let line = lines.get(line_no.checked_sub(1)?)?.trim();
    // `[table]` or `[[table]]` with a comment at most after it (a matrix row `[0.0, 1.0],` is not).
    let header = |l: &str| -> Option<String> {
        let l = l.trim();
        let (inner, rest) = match l.strip_prefix("[[") {
            Some(r) => r.split_once("]]")?,
            None => l.strip_prefix('[')?.split_once(']')?,
        };
        let rest = rest.trim();
        let parts: Vec<&str> = inner.split('.').map(|p| p.trim().trim_matches('"').trim_matches('\'')).collect();
        let bare = |p: &&str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        ((rest.is_empty() || rest.starts_with('#')) && parts.iter().all(bare)).then(|| parts.join("."))
    };
    if let Some(h) = header(line) {
        return Some(h);
    }
    // A continuation line of a multi-line array or string: the key that opened it, above.
    let opened = |l: &&&str| l.split_once('=').is_some_and(|(_, v)| v.contains('[') || v.contains('{') || v.contains("\"\"\"") || v.contains("'''"));
    let line = match line.split_once('=') {
        Some(_) => line,
        None => lines[..line_no - 1].iter().rev().take_while(|l| header(l).is_none()).find(opened)?.trim(),
    };
    let (k, _) = line.split_once('=')?;
    let key: String = k.split('.').map(|p| p.trim().trim_matches('"').trim_matches('\'')).collect::<Vec<_>>().join(".");
    let bare = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.';
    if key.is_empty() || !key.chars().all(bare) {
        return None;
    }
    let table = lines[..line_no - 1].iter().rev().find_map(|l| header(l));
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key,
    })
}

/// Validate a parsed config table, section by section, in the order the errors are reported.
pub fn plan_from_table(root: &Table, ov: &Overrides) -> Result<Plan> {
    check_keys(root, &TOP_KEYS, "")?;
    let model_name = root.get("model").ok_or_else(|| invalid("model", "missing; `qbat-gpu models` lists them"))?;
    let model_name = model_name.as_str().ok_or_else(|| invalid("model", "must be a string"))?;
    let model = ModelKind::from_name(model_name)?;
    let cavity = matches!(model, ModelKind::CavityCells | ModelKind::Dicke);
    let mut params = params::parse_params(root, model, model_name, ov)?;
    // Validate the base point fully (names, NaN, ranges) before expanding.
    let base = resolve_params(model, &params.base)?;
    let space = model.space_for(&base)?;
    let empty = Table::new();
    let init = initial::parse_initial(section(root, "initial")?.unwrap_or(&empty), model, model_name, space, ov.auto_fock)?;
    start_given_once(model, &params.base, &init.spec)?;
    let mut time = time::parse_time(root, cavity)?;
    let drv = drives::parse_drives(root, space, model_name, time.steady)?;
    // every window edge ends a segment, so that no step straddles one
    let edges: Vec<f64> = drv.drives.iter().filter_map(|d| d.envelope.edges()).flatten().collect();
    if !edges.is_empty() {
        time.schedule = Schedule::with_edges(time.schedule.dt, &time.schedule.times, time.schedule.switch_off, &edges);
    }
    // (each grid axis as the config spells it, for the refusals of a grid too large: a swept
    // drive is no param)
    let named_axes: Vec<(String, usize)> = (params.axes.iter().map(|(k, v)| (format!("params.{k}"), v.len())))
        .chain(drv.axes.iter().map(|(k, v)| (k.clone(), v.len())))
        .chain(init.angle_axes.iter().map(|(k, v)| (format!("initial.{k}"), v.len())))
        .collect();
    params.axes.extend(drv.axes.iter().map(|(name, v)| (name.clone(), v.iter().map(|&x| crate::model::ParamValue::Real(x)).collect())));
    params.drawn.extend(drv.drawn.iter().cloned());
    // (the same order: params, drives, angles)
    let axis_lens: Vec<usize> = named_axes.iter().map(|(_, n)| *n).collect();
    // a grid's points are named by its longest axis (the first of the longest), which fewer
    // values shrink most
    let longest = named_axes.iter().rev().max_by_key(|(_, n)| *n).map_or("params", |(k, _)| k.as_str());
    let ens = ensemble::parse_ensemble(section(root, "ensemble")?.unwrap_or(&empty), ov, &axis_lens, longest)?;
    let out = output::parse_output(section(root, "output")?.unwrap_or(&empty), model, time.steady)?;
    // Refuse what cannot fit before allocating any member: a grid's points are set by the
    // sweeps, drawn points by the ensemble size.
    let range = match ov.shard {
        Some((k, n)) => ensemble::shard_range(k, n, ens.size as usize),
        None => 0..ens.size as usize,
    };
    let drawn = !params.drawn.is_empty();
    let n_points = if drawn { range.len() } else { ens.n_grid };
    let keeps_states = out.measures.iter().any(|m| m.needs_eigensolve());
    let points_field = if drawn { ens.size_field } else { longest };
    let saved_dim = ov.save_states.map_or(0, |s| crate::measures::saved::saved_dim(space, s));
    let extra = params.axes.iter().map(|(k, _)| k.as_str()).chain(params.drawn.iter().map(|(k, _, _)| k.as_str()));
    let shape = memory::PointShape {
        params: memory::params_bytes(&base, extra),
        drives: drv.drives.len(),
        steady: time.steady,
        switch_off: time.switch_off.is_some(),
        cpu_only: ov.cpu_only,
    };
    let (samples, measures) = (time.schedule.times.len(), out.measures.len());
    memory::check_memory(space, range.len(), n_points, &shape, samples, measures, keeps_states, saved_dim, ens.size_field, points_field)?;
    let (mut points, members) = ensemble::expand_members(model, &base, &params, &init, &ens, range);
    let drives: Vec<_> = points.iter_mut().map(|p| drives::drives_of_point(&drv, p)).collect();
    let systems = systems::build_systems(model, model_name, &points, time.schedule.dt, time.steady, time.switch_off, !init.spec.is_full_space())?;
    drives::check_stability(&systems, &drives, &time.schedule, time.switch_off.is_some())?;
    let points: Vec<Params> = points.iter().map(|p| resolve_params(model, p)).collect::<Result<_>>()?;
    let param_columns = params.columns();
    let config_json = serde_json::to_value(root).unwrap_or(serde_json::Value::Null);
    Ok(Plan {
        model,
        space,
        points,
        systems,
        members,
        ensemble_size: ens.size as usize,
        initial: init.spec,
        schedule: time.schedule,
        steady: time.steady,
        measures: out.measures,
        seed: ens.seed,
        param_columns,
        config_json,
        fock_tail_threshold: out.fock_tail_threshold,
        save_states: ov.save_states,
        drives,
    })
}
