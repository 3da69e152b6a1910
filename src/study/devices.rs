//! The engines of a run: one per `--devices` entry (each its own driver instance, checked
//! against the memory a driver takes), else the backend resolved for `--backend`.

use super::StudyOptions;
use crate::engine::{Engine, Precision};
use crate::error::{QbatError, Result};

/// The most `--devices` entries a run opens.
pub const MAX_DEVICES: usize = 64;

/// The engines of a run: one per `--devices` entry, else the resolved backend.
pub(super) fn engines_for(opts: &StudyOptions, engine: Engine, notes: &mut Vec<String>) -> Result<Vec<Engine>> {
    let Some(spec) = opts.devices.as_deref() else {
        return Ok(vec![engine]);
    };
    let entries = || spec.split(',').map(str::trim);
    // (the list as a message quotes it: its start, when it is long)
    let shown = || crate::config::deep_key::shortened(spec);
    let listed: Vec<String> = entries().filter(|s| !s.is_empty()).map(str::to_string).collect();
    // (each entry opens a driver instance of its own: hundreds of one adapter's name took
    // gigabytes of memory before any block ran)
    if listed.len() > MAX_DEVICES {
        return Err(QbatError::invalid("--devices", format!("names {} devices, more than the {MAX_DEVICES} a run spreads over", listed.len())));
    }
    if !matches!(engine, Engine::Gpu(_)) {
        let note = "--devices ignored: the run is not on the GPU";
        crate::console::note(&note);
        notes.push(note.into());
        return Ok(vec![engine]);
    }
    let need_f64 = opts.run.precision == Precision::F64;
    // (an empty entry: a list of nothing but commas, said so on the GPU, where the list is
    // used, as a run elsewhere ignores any list with a note; or one among names, "a,,b" or
    // "a,", a name left out or a typo, where the run would spread over fewer devices than the
    // list seems to say)
    if let Some(k) = entries().position(str::is_empty) {
        let why = match listed.is_empty() {
            true => format!("{:?} names no adapter: its entries are empty", shown()),
            false => format!("{:?}: entry {} of {} is empty", shown(), k + 1, entries().count()),
        };
        return Err(QbatError::invalid("--devices", format!("{why} (give adapter names separated by commas, or 'all')")));
    }
    let names = if spec == "all" { crate::gpu::GpuContext::adapter_names() } else { listed };
    if names.is_empty() {
        return Err(QbatError::invalid("--devices", "'all' found no adapter"));
    }
    let mut engines = vec![];
    for name in &names {
        // (each device's driver instance maps its own queues and threads)
        crate::engine::driver_fits("another device's driver")
            .map_err(|short| QbatError::invalid("--devices", format!("'{name}': {}; {} or name fewer devices", short.why, short.raise)))?;
        let ctx = crate::gpu::GpuContext::new(Some(name), need_f64).map_err(|e| {
            // (a name that matches nothing is this option's, not --adapter's)
            let why = match e {
                QbatError::Invalid { reason, .. } => reason,
                e => e.to_string(),
            };
            QbatError::invalid("--devices", format!("'{name}': {why}"))
        })?;
        engines.push(Engine::Gpu(std::sync::Arc::new(ctx)));
    }
    Ok(engines)
}
