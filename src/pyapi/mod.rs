//! Entry points for the Python bindings (`python/`): what they need beyond `config`, `run` and
//! `study`, gathered in one module so that the bindings follow one file when the library moves.
//!
//! - `InMemory`: an in-memory run (`run_plan`) with its health, summary.csv and stats.csv text,
//!   run.json and states.json (`save_states`), and `save` into the output files the CLI writes.
//! - `state_save`: the `save_states` option by name.
//! - `batch_plan`: a `two-qubit` plan from explicit per-point 4x4 Hamiltonians and jump
//!   operators and per-member initial states (what `qb.mesolve` takes; TOML cannot say it).
//! - `state_measure_batch`, `battery_measure_batch`: the measures applied to given states.
//! - `models`, `measures_list`, `devices`: descriptions for listings.
//! - `keyword_error`, `keyword_message`: the library's errors, notes and warnings with the CLI
//!   flags they name written as Python keywords, the caller's paths kept as given
//!   (`keyword_error_keeping`, `shown_paths`); `shard`: Python's `shard=(k, n)` (`keywords.rs`).

pub use crate::config::{parse_plan, Overrides, Plan};
pub use crate::error::QbatError;
pub use crate::measures::saved::StateSave;
pub use crate::output::{Format, OutputOptions};
pub use crate::run::{run_plan, Backend, Precision, RunOptions, RunResult};
pub use crate::study::merge::merge;
pub use crate::study::{run_study, OnDeviceLoss, Shard, StudyOptions, StudyOutcome, HEALTH_CODES};

use crate::error::Result;
use crate::job::Peak;
use crate::linalg::{reduced_battery, CMat, C64};
use crate::measures::saved::saved_dim;
use crate::measures::{coherence, correlations, energy, entanglement, Measure};
use crate::output::accumulate::StatsAccumulator;
use crate::output::series::{write_csv_header, write_csv_rows};
use crate::output::states::write_c16_header;
use crate::output::OutputDir;
use crate::run::RunInfo;
use crate::study::{
    fock_flags, fock_tail_warnings, member_health, summary_header, summary_rows, FockTailCheck, FockTailFlags, FockTailRecord, Health, HealthCounts,
};
use rayon::prelude::*;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};

/// An in-memory run without its values and saved states (the caller owns them, e.g. as numpy
/// arrays): `values[(member * n_samples + sample) * n_measures + k]` and
/// `states[((member * n_samples + sample) * d + i) * d + j]`, as in `RunResult`.
pub struct InMemory {
    pub plan: Plan,
    pub options: RunOptions,
    pub info: RunInfo,
    pub member_ids: Vec<u64>,
    /// peaks[member * 4 + k], k over `job::PEAK_MEASURES`.
    pub peaks: Vec<Peak>,
    pub health: Vec<Health>,
    /// The members whose Fock tail passed the threshold (cavity-cells, dicke), as a study
    /// counts them: run.json's `fock_tail`.
    pub fock: FockTailFlags,
    /// stats.csv of the values whose BLAKE3 hash is kept beside it: the caller's array may be
    /// edited in place between two reads, and the text must follow it.
    pub stats_cache: std::sync::Mutex<Option<(blake3::Hash, String)>>,
    /// Each member's saved states' hash (`state_checks::member_hashes`): `save` checks those the
    /// caller changed.
    pub state_hashes: Vec<blake3::Hash>,
}

/// The `save_states` option by name: "reduced" or "full".
pub fn state_save(name: &str) -> Result<StateSave> {
    match name {
        "reduced" => Ok(StateSave::Reduced),
        "full" => Ok(StateSave::Full),
        _ => Err(QbatError::invalid("save_states", format!("must be None, \"reduced\" or \"full\", got '{name}'"))),
    }
}

/// Run a plan in memory (`run_plan`) and judge each member's health as a streamed run does.
/// Returns the run, its values and, with `plan.save_states`, its saved states. A run where
/// every member is unhealthy is an error, as for the CLI.
pub fn run_in_memory(plan: Plan, options: RunOptions) -> Result<(InMemory, Vec<f64>, Option<Vec<C64>>)> {
    // Under an address-space or data-size limit the check must see the GPU driver's mapping:
    // opened first (its failure is the run's to report).
    if matches!(options.backend, Backend::Gpu | Backend::Auto) && crate::config::available_memory::process_limit_left().is_some() {
        let _ = crate::engine::gpu_context(options.adapter.as_deref(), options.precision == crate::engine::Precision::F64);
    }
    check_in_memory(&plan)?;
    let mut r = run_plan(&plan, &options)?;
    let values = std::mem::take(&mut r.values);
    let states = r.states.take();
    if let (Some(save), Some(st)) = (plan.save_states, &states) {
        let d = saved_dim(plan.space, save);
        if st.len() != r.member_ids.len() * r.info.times.len() * d * d {
            return Err(QbatError::Numerics(format!(
                "the engine returned {} state entries, not the {} of {} members x {} samples x {d}x{d}",
                st.len(),
                r.member_ids.len() * r.info.times.len() * d * d,
                r.member_ids.len(),
                r.info.times.len()
            )));
        }
    } else if plan.save_states.is_some() {
        return Err(QbatError::Numerics(format!("the {} engine returned no states for save_states", r.info.backend)));
    }
    let (ns, nm) = (r.info.times.len(), r.info.measures.len());
    let health: Vec<Health> =
        (0..r.member_ids.len()).map(|i| member_health(&values[i * ns * nm..(i + 1) * ns * nm], &r.info.measures, r.info.precision)).collect();
    let mut fock = FockTailFlags::default();
    fock_flags(&plan, &r.info.measures, &values, &plan, ns, &mut fock);
    let state_hashes = states.as_deref().map_or(vec![], |st| state_checks::member_hashes(st, st.len() / r.member_ids.len().max(1)));
    let mut run =
        InMemory { plan, options, info: r.info, member_ids: r.member_ids, peaks: r.peaks, health, fock, stats_cache: Default::default(), state_hashes };
    if !run.health.is_empty() && run.health.iter().all(|h| *h != Health::Ok) {
        return Err(run.health_counts().all_unhealthy(run.plan.schedule.dt));
    }
    // the warnings a study says (a Fock cutoff too low, members left out), said and kept alike
    let warnings: Vec<String> =
        fock_tail_warnings(&run.plan, &run.info.measures, &run.fock).into_iter().chain(run.health_counts().warning(run.plan.schedule.dt)).collect();
    for w in warnings {
        eprintln!("WARNING: {w}");
        run.info.notes.push(w);
    }
    // (said as a study says it: run.info's verify holds it)
    if let Some(w) = run.info.verify.as_ref().and_then(|v| v.warning()) {
        eprintln!("WARNING: {w}");
    }
    Ok((run, values, states))
}

/// Refuse an in-memory run whose results cannot fit: `check_memory` costs a streamed run (two
/// blocks), but `run_plan` holds every member's values (and saved states) at once, and an
/// allocation failure there aborts the process. Names `--ensemble`, `time.samples` or
/// `--save-states`, whichever costs most.
pub fn check_in_memory(plan: &Plan) -> Result<()> {
    use crate::config::available_memory::{size_need, size_text};
    let avail = crate::config::available_memory::available_memory();
    let (members, samples, nm) = (plan.members.len(), plan.schedule.times.len(), plan.measures.len());
    let keeps = plan.measures.iter().any(|m| m.needs_eigensolve());
    let d = plan.save_states.map_or(0, |s| saved_dim(plan.space, s));
    // (result_bytes_per_member counts a block twice over; the whole run is held once)
    let per_member = |dim| crate::config::result_bytes_per_member(plan.space, samples, nm, keeps, dim) / 2.0;
    let series = members as f64 * per_member(0);
    let states = members as f64 * per_member(d) - series;
    // member list, ids, peaks and health
    let total = series + states + members as f64 * 512.0;
    if total <= avail.usable() {
        return Ok(());
    }
    let under = avail.under();
    let field = if states > series {
        "--save-states"
    } else if samples > members {
        "time.samples"
    } else {
        "--ensemble"
    };
    let saved = if d > 0 { format!(" with {d}x{d} saved states") } else { String::new() };
    // (a mesolve batch has no streamed run: it is split instead)
    let advice =
        if plan.config_json.get("mesolve").is_some() { "split the batch into smaller qb.mesolve calls" } else { "stream the run to disk with qb.study" };
    Err(QbatError::TooLarge {
        field: field.into(),
        reason: format!(
            "an in-memory run holds all its results at once: {members} members x {samples} samples x {nm} measures{saved} need about {}, more than 60% of the {} available{under}; use fewer members or samples, or {advice}",
            size_need(total),
            size_text(avail.bytes)
        ),
    })
}

impl InMemory {
    pub fn health_counts(&self) -> HealthCounts {
        let mut c = HealthCounts::default();
        for (id, h) in self.member_ids.iter().zip(&self.health) {
            c.add(*id, *h);
        }
        c
    }

    /// Health codes of summary.npy (0 ok, 1 nonfinite, 2 trace, 3 nonpositive).
    pub fn health_codes(&self) -> Vec<f64> {
        self.health.iter().map(|h| HEALTH_CODES.iter().find(|(_, x)| x == h).map(|(c, _)| *c).unwrap_or(f64::NAN)).collect()
    }

    /// summary.csv, byte for byte as the CLI writes it.
    pub fn summary_csv(&self) -> String {
        let mut w: Vec<u8> = vec![];
        let _ = writeln!(w, "{}", summary_header(&self.plan));
        let _ = summary_rows(&mut w, &self.plan, &self.plan, &self.peaks, &self.health);
        String::from_utf8(w).expect("summary rows are ASCII")
    }

    /// stats.csv over the healthy members, byte for byte as the CLI writes it. `values` must
    /// hold the run's members x samples x measures (the caller's array may have been replaced,
    /// or edited in place: the text is kept for the values it was computed from, by their hash).
    pub fn stats_csv(&self, values: &[f64]) -> Result<String> {
        let (ns, nm) = (self.info.times.len(), self.info.measures.len());
        if values.len() != self.member_ids.len() * ns * nm {
            return Err(QbatError::invalid("series", format!("holds {} values, not the run's {}", values.len(), self.member_ids.len() * ns * nm)));
        }
        let key = blake3::Hasher::new().update_rayon(bytemuck::cast_slice(values)).finalize();
        let mut cache = self.stats_cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, text)) = cache.as_ref().filter(|(hash, _)| *hash == key) {
            return Ok(text.clone());
        }
        let mut acc = StatsAccumulator::new(ns, nm);
        let include: Vec<bool> = self.health.iter().map(|h| *h == Health::Ok).collect();
        acc.add_block(values, &include);
        let names: Vec<String> = self.info.measures.iter().map(|m| m.name().to_string()).collect();
        let stats = crate::output::stats::Stats::from_accumulator(&acc, self.info.times.clone(), names);
        let mut w: Vec<u8> = vec![];
        let _ = crate::output::stats::write_csv(&stats, &mut w);
        let text = String::from_utf8(w).expect("stats are ASCII");
        *cache = Some((key, text.clone()));
        Ok(text)
    }

    /// d of the saved d x d states (`save_states`), else None.
    pub fn states_dim(&self) -> Option<usize> {
        self.plan.save_states.map(|s| saved_dim(self.plan.space, s))
    }

    /// states.json of the saved states (`save_states`), as the CLI writes it
    /// (`output::states::states_axes`, as the CLI writes it); else None.
    pub fn states_json(&self) -> Option<serde_json::Value> {
        let save = self.plan.save_states?;
        Some(crate::output::states::states_axes(self.plan.space, save, &self.member_ids, &self.info.times))
    }

    /// run.json of the run (as the CLI's, without the streamed run's block and memory fields).
    pub fn run_json(&self) -> serde_json::Value {
        let mut rj = crate::run::run_json(&self.plan, &self.info, &self.options);
        rj["health"] = json!(self.health_counts());
        if let Some(check) = FockTailCheck::of(&self.plan, &self.info.measures) {
            rj["fock_tail"] = json!(FockTailRecord { check, flags: self.fock.clone() });
        }
        rj
    }

    /// Write the run's output files into `dir` (a new or empty directory, or any with
    /// `force`), as `qbat-gpu run` does: series (csv, or npy + series.json), summary.csv (and
    /// summary.npy + summary.json with npy), stats.csv, run.json, states.npy + states.json
    /// when `states` are given (a run with `save_states`), and the plots if asked.
    #[allow(clippy::too_many_arguments)]
    pub fn save(&self, values: &[f64], states: Option<&[C64]>, dir: &Path, format: Format, series: bool, plots: bool, force: bool) -> Result<PathBuf> {
        let (ns, nm) = (self.info.times.len(), self.info.measures.len());
        if values.len() != self.member_ids.len() * ns * nm {
            return Err(QbatError::invalid("series", format!("holds {} values, not the run's {}", values.len(), self.member_ids.len() * ns * nm)));
        }
        let saved = match (states, self.states_dim()) {
            (None, _) => None,
            (Some(st), Some(d)) if st.len() == self.member_ids.len() * ns * d * d => Some((st, d)),
            (Some(st), _) => {
                return Err(QbatError::invalid(
                    "states",
                    format!("holds {} entries, not the {} the run saved", st.len(), self.states_dim().map_or(0, |d| self.member_ids.len() * ns * d * d)),
                ))
            }
        };
        self.check_peaks(values)?;
        self.check_health(values)?;
        if let Some((st, d)) = saved {
            let tol = state_checks::DensityTol::run(self.info.precision);
            state_checks::check_saved_states(st, d, &self.member_ids, &self.info.times, &self.state_hashes, tol)?;
        }
        OutputDir::check(dir, force)?;
        let out = OutputDir::begin(dir, force)?;
        // The plots are drawn from the assembled files and committed with them (as the CLI does).
        let written = self
            .write_files(&out, values, format, series)
            .and_then(|()| match saved {
                Some((st, d)) => self.write_states(&out, st, d),
                None => Ok(()),
            })
            .and_then(|()| if plots { crate::output::plots::write_run_plots(out.staging(), true).map(|_| ()) } else { Ok(()) });
        if let Err(e) = written {
            out.abort();
            return Err(e);
        }
        out.commit().inspect(|d| {
            let _ = crate::output::manifest::Manifest::record_identities(d);
        })
    }

    /// Refuse a series whose peak measures (those of `job::PEAK_MEASURES` it holds) no longer
    /// give the run's peaks for a healthy member, folded as the engines fold them
    /// (`engine::reference::update_peaks`): summary.csv, written from the run's peaks, would
    /// contradict the series saved beside it (the caller edited the array since the run).
    fn check_peaks(&self, values: &[f64]) -> Result<()> {
        let (ns, nm) = (self.info.times.len(), self.info.measures.len());
        if ns == 0 {
            return Ok(());
        }
        let same = |a: f64, b: f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
        for (k, m) in crate::job::PEAK_MEASURES.iter().enumerate() {
            let Some(col) = self.info.measures.iter().position(|x| x == m) else { continue };
            let differs = |i: usize| -> Option<(usize, Peak)> {
                // (an unhealthy member's row says so, and its values may hold NaN, which a
                // GPU's comparisons need not order as the host's)
                if self.health[i] != Health::Ok {
                    return None;
                }
                let mut p = [Peak::default()];
                for (s, &t) in self.info.times.iter().enumerate() {
                    crate::engine::reference::update_peaks(&mut p, s, t, &[values[(i * ns + s) * nm + col]]);
                }
                let run = self.peaks[i * 4 + k];
                (!same(p[0].max, run.max) || !same(p[0].t_max, run.t_max)).then_some((i, p[0]))
            };
            if let Some((i, p)) = (0..self.member_ids.len()).into_par_iter().find_map_first(differs) {
                let run = self.peaks[i * 4 + k];
                return Err(QbatError::invalid(
                    "series",
                    format!(
                        "member {}'s {} peaks at {:?} (t = {:?}) in it, not at the run's {:?} (t = {:?}): it is not the run's series (edited, replaced or rounded since the run), and summary.csv holds the run's peaks; save the run's own series, or write the edited array with numpy",
                        self.member_ids[i],
                        m.name(),
                        p.max,
                        p.t_max,
                        run.max,
                        run.t_max
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Refuse a series in which a member's health (`member_health`) is not the run's: summary.csv
    /// says the run's, and stats.csv counts the run's healthy members (a replaced array with a
    /// NaN where the run had none).
    fn check_health(&self, values: &[f64]) -> Result<()> {
        let (ns, nm) = (self.info.times.len(), self.info.measures.len());
        let differs = |i: usize| {
            let h = member_health(&values[i * ns * nm..(i + 1) * ns * nm], &self.info.measures, self.info.precision);
            (h != self.health[i]).then_some((i, h))
        };
        match (0..self.member_ids.len()).into_par_iter().find_map_first(differs) {
            None => Ok(()),
            Some((i, h)) => Err(QbatError::invalid(
                "series",
                format!(
                    "member {} is {} in it, not {} as in the run: it is not the run's series (edited or replaced since the run), and summary.csv holds the run's health; save the run's own series, or write the edited array with numpy",
                    self.member_ids[i],
                    h.name(),
                    self.health[i].name()
                ),
            )),
        }
    }

    /// states.npy (complex128, (members, times, d, d)) and states.json, as the CLI writes them.
    fn write_states(&self, out: &OutputDir, states: &[C64], d: usize) -> Result<()> {
        let shape = [self.member_ids.len() as u64, self.info.times.len() as u64, d as u64, d as u64];
        out.write("states.npy", |w| {
            write_c16_header(w, &shape)?;
            crate::output::write_f64_le(w, states.iter().flat_map(|z| [z.re, z.im]))
        })?;
        let meta = self.states_json().unwrap_or_default();
        out.write("states.json", |w| serde_json::to_writer_pretty(&mut *w, &meta).map_err(std::io::Error::other))
    }

    fn write_files(&self, out: &OutputDir, values: &[f64], format: Format, series: bool) -> Result<()> {
        let (ns, nm) = (self.info.times.len(), self.info.measures.len());
        let names: Vec<&str> = self.info.measures.iter().map(|m| m.name()).collect();
        let times = &self.info.times;
        if series {
            match format {
                Format::Csv => out.write("series.csv", |w| {
                    write_csv_header(w, &names)?;
                    write_csv_rows(w, &self.member_ids, times, values, nm)
                })?,
                Format::Npy => {
                    out.write("series.npy", |w| {
                        use npyz::WriterBuilder;
                        let shape = [self.member_ids.len() as u64, ns as u64, nm as u64];
                        let mut npy = npyz::WriteOptions::<f64>::new().default_dtype().shape(&shape).writer(w).begin_nd()?;
                        npy.extend(values.iter().copied())?;
                        npy.finish()
                    })?;
                    let axes = json!({"members": self.member_ids, "times": times, "measures": names});
                    out.write("series.json", |w| serde_json::to_writer_pretty(&mut *w, &axes).map_err(std::io::Error::other))?;
                }
            }
        }
        let summary = self.summary_csv();
        if format == Format::Npy {
            let columns: Vec<&str> = summary.lines().next().unwrap_or("").split(',').collect();
            let codes = self.health_codes();
            out.write("summary.npy", |w| {
                use npyz::WriterBuilder;
                let shape = [self.member_ids.len() as u64, columns.len() as u64];
                let mut npy = npyz::WriteOptions::<f64>::new().default_dtype().shape(&shape).writer(w).begin_nd()?;
                for (line, code) in summary.lines().skip(1).zip(&codes) {
                    let cells: Vec<&str> = line.split(',').collect();
                    for (k, c) in cells.iter().enumerate() {
                        let v = if k + 1 == cells.len() { *code } else { c.parse::<f64>().map_err(std::io::Error::other)? };
                        npy.push(&v)?;
                    }
                }
                npy.finish()
            })?;
            let health: serde_json::Map<String, serde_json::Value> = HEALTH_CODES.iter().map(|(c, h)| (format!("{c}"), json!(h.name()))).collect();
            let meta = json!({"columns": columns, "health_codes": health});
            out.write("summary.json", |w| serde_json::to_writer_pretty(&mut *w, &meta).map_err(std::io::Error::other))?;
        }
        out.write("summary.csv", |w| w.write_all(summary.as_bytes()))?;
        let stats = self.stats_csv(values)?;
        out.write("stats.csv", |w| w.write_all(stats.as_bytes()))?;
        let rj = self.run_json();
        out.write("run.json", |w| serde_json::to_writer_pretty(&mut *w, &rj).map_err(std::io::Error::other))
    }
}

// ---------------------------------------------------------------------------------------------
// Explicit two-qubit batches (qb.mesolve): `batch.rs`

mod batch;
use batch::mat;
pub use batch::{batch_plan, batch_run_error, check_batch_arrays, Batch};

mod keywords;
mod state_checks;
pub use keywords::{keyword_error, keyword_error_keeping, keyword_field, keyword_message, keyword_message_keeping, renamed_field, shard, shown_paths};
use state_checks::{check_hamiltonian, check_measured_state};

// ---------------------------------------------------------------------------------------------
// Measures of given states

/// The measures of a two-qubit state (4x4, charger left) that `state_measure_batch` takes.
pub const STATE_MEASURES: [&str; 10] =
    ["concurrence", "steering_f3", "steering_ab", "steering_ba", "bell_chsh", "coherence_l1", "imaginarity_l1", "purity", "entropy_b", "texture_b"];
/// The measures of a battery state against its Hamiltonian (d x d) that
/// `battery_measure_batch` takes.
pub const BATTERY_MEASURES: [&str; 3] = ["ergotropy", "antiergotropy", "capacity"];

fn state_measure_fn(name: &str) -> Result<fn(&CMat) -> f64> {
    Ok(match name {
        "concurrence" => entanglement::concurrence,
        "steering_f3" => correlations::steering_f3,
        "steering_ab" => |r| correlations::steering_loo(r).0,
        "steering_ba" => |r| correlations::steering_loo(r).1,
        "bell_chsh" => correlations::bell_chsh,
        "coherence_l1" => coherence::coherence_l1,
        "imaginarity_l1" => coherence::imaginarity_l1,
        "purity" => coherence::purity,
        "entropy_b" => |r| coherence::entropy_bits(&reduced_battery(r)),
        "texture_b" => |r| coherence::texture(&reduced_battery(r)),
        _ => return Err(QbatError::invalid("measure", format!("unknown state measure '{name}'; known: {}", STATE_MEASURES.join(", ")))),
    })
}

/// A state measure over `states` (n x 16, row-major 4x4 two-qubit density matrices), in
/// parallel; each state must be a density matrix (`state_checks::DensityTol::measures`).
pub fn state_measure_batch(name: &str, states: &[C64]) -> Result<Vec<f64>> {
    let f = state_measure_fn(name)?;
    in_order(states.par_chunks(16).enumerate().map(|(i, s)| {
        let rho = mat(s, 4);
        check_measured_state(&rho, &format!("rho[{i}]"))?;
        Ok(f(&rho))
    }))
}

/// The values of a batch measured in parallel, or the error of its first refused item in the
/// batch's order (rayon's collect into a Result returns any of them), with no value kept
/// beside each item's result.
fn in_order(items: impl IndexedParallelIterator<Item = Result<f64>>) -> Result<Vec<f64>> {
    let first = std::sync::Mutex::new(None::<(usize, QbatError)>);
    let values: Vec<f64> = items
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|e| {
                let mut first = first.lock().unwrap_or_else(|p| p.into_inner());
                if first.as_ref().is_none_or(|(k, _)| i < *k) {
                    *first = Some((i, e));
                }
                f64::NAN
            })
        })
        .collect();
    match first.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some((_, e)) => Err(e),
        None => Ok(values),
    }
}

/// ergotropy, antiergotropy or capacity of battery states (n x d x d) against Hamiltonians
/// (n x d x d, or one d x d shared when `hamiltonians.len() == d * d`).
pub fn battery_measure_batch(name: &str, states: &[C64], hamiltonians: &[C64], d: usize) -> Result<Vec<f64>> {
    let f: fn(&CMat, &CMat) -> f64 = match name {
        "ergotropy" => energy::ergotropy,
        "antiergotropy" => energy::antiergotropy,
        "capacity" => energy::capacity,
        _ => return Err(QbatError::invalid("measure", format!("unknown battery measure '{name}'; known: {}", BATTERY_MEASURES.join(", ")))),
    };
    let shapes = || QbatError::invalid("h", "the states and Hamiltonians must be (..., d, d) with matching leading dimensions");
    let dd = d.checked_mul(d).filter(|&dd| dd > 0).ok_or_else(shapes)?;
    let shared = hamiltonians.len() == dd;
    if !states.len().is_multiple_of(dd) || (!shared && hamiltonians.len() != states.len()) {
        return Err(shapes());
    }
    // (only a shared one is built here: none for an empty batch of any d)
    let h0 = shared.then(|| mat(hamiltonians, d));
    if let Some(h0) = &h0 {
        check_hamiltonian(h0, "h")?;
    }
    in_order(states.par_chunks(dd).enumerate().map(|(i, s)| {
        let rho = mat(s, d);
        check_measured_state(&rho, &format!("rho_b[{i}]"))?;
        match &h0 {
            Some(h0) => Ok(f(&rho, h0)),
            None => {
                let h = mat(&hamiltonians[i * dd..(i + 1) * dd], d);
                check_hamiltonian(&h, &format!("h[{i}]"))?;
                Ok(f(&rho, &h))
            }
        }
    }))
}

// ---------------------------------------------------------------------------------------------
// Listings

pub struct ParamInfo {
    pub name: &'static str,
    pub default: String,
    pub doc: &'static str,
}

pub struct ModelInfo {
    pub name: &'static str,
    pub paper: &'static str,
    pub hamiltonian: &'static str,
    pub coupling: &'static str,
    pub params: Vec<ParamInfo>,
}

/// Every model with its parameters and defaults (as `qbat-gpu models`).
pub fn models() -> Vec<ModelInfo> {
    use crate::model::ModelKind;
    ModelKind::ALL
        .iter()
        .map(|m| ModelInfo {
            name: m.name(),
            paper: m.paper(),
            hamiltonian: m.hamiltonian_doc(),
            coupling: m.coupling_doc(),
            params: m.params().into_iter().map(|p| ParamInfo { name: p.name, default: p.default.to_string(), doc: p.doc }).collect(),
        })
        .collect()
}

pub struct MeasureInfo {
    pub name: &'static str,
    /// "all models", "two-qubit models", "cavity-cells" or "steady runs".
    pub scope: &'static str,
    pub doc: &'static str,
}

/// Every output measure (as `qbat-gpu measures`).
pub fn measures_list() -> Vec<MeasureInfo> {
    Measure::ALL
        .iter()
        .map(|m| MeasureInfo {
            name: m.name(),
            scope: match (m.applies(false), m.applies(true)) {
                _ if m.steady_only() => "steady runs",
                (true, true) => "all models",
                (true, false) => "two-qubit models",
                (false, true) => "cavity-cells",
                _ => "",
            },
            doc: m.doc(),
        })
        .collect()
}

pub struct DeviceInfo {
    pub name: String,
    pub device_type: String,
    pub backend: String,
    pub driver: String,
    pub f64: bool,
}

/// The GPU adapters wgpu finds on the backends qbat-gpu uses (none is an empty list).
pub fn devices() -> Vec<DeviceInfo> {
    // (listing the adapters loads their drivers)
    if let Some(why) = crate::engine::driver_gate_reason() {
        eprintln!("note: no GPU listed: {why}");
        return vec![];
    }
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle().with_env();
    desc.backends &= crate::gpu::context::BACKENDS;
    let backends = desc.backends;
    let instance = wgpu::Instance::new(desc);
    pollster::block_on(instance.enumerate_adapters(backends))
        .iter()
        .map(|a| {
            let i = a.get_info();
            DeviceInfo {
                name: i.name,
                device_type: format!("{:?}", i.device_type),
                backend: format!("{:?}", i.backend),
                driver: format!("{} {}", i.driver, i.driver_info).trim().to_string(),
                f64: a.features().contains(wgpu::Features::SHADER_F64),
            }
        })
        .collect()
}

/// The files of the finished output `dir`, as its manifest lists them, each checked against
/// its size and BLAKE3 hash first: what `qbat_gpu.open` reads (a file the manifest does not
/// list is not the run's, and is not read).
pub fn verified_files(dir: &Path) -> Result<Vec<String>> {
    // (under the directory's shared lock: a commit into it meanwhile is waited for, not taken
    // for one cut short by its hidden files)
    let _reading = crate::output::lock_dir_shared(dir, crate::output::WriteCancel::now())?;
    Ok(verified_manifest(dir)?.files.into_iter().map(|f| f.name).collect())
}

fn verified_manifest(dir: &Path) -> Result<crate::output::manifest::Manifest> {
    crate::output::recover::refuse_interrupted(dir)?;
    let manifest = crate::output::manifest::Manifest::read(dir)?
        .ok_or_else(|| crate::error::QbatError::invalid(dir.display().to_string(), "is not a finished qbat-gpu output (it has no .qbat-manifest.json)"))?;
    // each file as `--force` checks it: one untouched since the commit (its recorded identity)
    // is not read again, so opening a large run costs no pass over its series
    for f in &manifest.files {
        let path = dir.join(&f.name);
        if std::fs::symlink_metadata(&path).is_err() {
            return Err(crate::error::QbatError::invalid(path.display().to_string(), "listed in the manifest but missing"));
        }
        crate::output::manifest::check_still_written(&path, f, "it is not the file the run wrote")?;
    }
    Ok(manifest)
}

/// Save the finished output `src` as `dir`, under a run's own rules (`OutputDir`: `dir` new or
/// empty, or with `force` a qbat-gpu output whose own files alone are replaced; assembled
/// aside and committed whole): its listed files, checked first, without the series or the
/// plots where those are not wanted. `opened`: the manifest entries (name, bytes, BLAKE3) of
/// the run a Result was opened from, which `src` must still list, checked under the lock: a
/// run committed into `src` since (waited for here) is refused, never saved in its place.
pub fn copy_output(src: &Path, dir: &Path, series: bool, plots: bool, force: bool, opened: Option<&[(String, u64, String)]>) -> Result<PathBuf> {
    // (Python's Ctrl-C while the source is hashed stops the copy too)
    let cancel = crate::output::WriteCancel::now();
    // (read under its shared lock: a `--force` commit into `src` meanwhile waits for the copy)
    let reading = crate::output::lock_dir_shared(src, cancel)?;
    let manifest = verified_manifest(src)?;
    for (name, bytes, blake3) in opened.unwrap_or_default() {
        if manifest.get(name).is_none_or(|f| (f.bytes, &f.blake3) != (*bytes, blake3)) {
            return Err(crate::error::QbatError::invalid(
                src.display().to_string(),
                "no longer holds the run this result was opened from (replaced or removed since): qb.open it again",
            ));
        }
    }
    OutputDir::check(dir, force)?;
    let out = OutputDir::begin_marked(dir, force, cancel)?;
    let wanted = manifest.files.iter().filter(|f| (series || !f.name.starts_with("series.")) && (plots || !f.name.starts_with("plot_")));
    for f in wanted {
        let from = src.join(&f.name);
        let copied = crate::plain_file::open_regular(&from).map(|(file, _)| file).and_then(|mut r| out.write(&f.name, |w| std::io::copy(&mut r, w).map(drop)));
        if let Err(e) = copied {
            out.abort();
            return Err(e);
        }
    }
    drop(reading);
    out.commit().inspect(|d| {
        let _ = crate::output::manifest::Manifest::record_identities(d);
    })
}
