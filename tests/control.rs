//! `engine::Control`: a cancelled run stops with `QbatError::Cancelled` on every CPU engine
//! (the two-qubit twin, the cavity engine, the reference) and in a streamed study; a control
//! that is never cancelled changes no bit of the results and counts every member done.

use qbat_gpu::config::{parse_plan, Overrides, Plan};
use qbat_gpu::engine::Control;
use qbat_gpu::error::QbatError;
use qbat_gpu::pyapi::{OnDeviceLoss, OutputOptions};
use qbat_gpu::run::{run_plan, Backend, RunOptions};
use qbat_gpu::study::{run_study, StudyOptions};
use std::sync::Arc;

fn two_qubit(size: usize, t_end: f64) -> Plan {
    let cfg = format!("model = \"spin-pair\"\n[params]\nj1 = {{ uniform = [0.05, 0.4] }}\ndephasing = 0.1\n[initial]\nrandom = \"haar\"\n[time]\ndt = 0.01\nt_end = {t_end}\nsamples = 9\n[output]\nmeasures = [\"ergotropy_b\", \"concurrence\", \"capacity_b\"]\n[ensemble]\nsize = {size}\nseed = 3\n");
    parse_plan(&cfg, &Overrides::default()).unwrap()
}

fn cavity(size: usize, t_end: f64) -> Plan {
    let cfg = format!("model = \"cavity-cells\"\n[params]\nwc = {{ uniform = [0.8, 1.2] }}\ng = 0.3\nkappa = 0.1\ngamma = 0.05\nn_fock = 4\n[initial]\nrandom = \"haar\"\n[time]\ndt = 0.01\nt_end = {t_end}\nsamples = 5\n[ensemble]\nsize = {size}\nseed = 8\n");
    parse_plan(&cfg, &Overrides::default()).unwrap()
}

fn opts(backend: Backend, control: Option<Arc<Control>>) -> RunOptions {
    RunOptions { backend, verify: 0, control, ..Default::default() }
}

fn cancelled(r: Result<impl Sized, QbatError>) -> bool {
    matches!(r, Err(QbatError::Cancelled))
}

#[test]
fn cancelled_before_the_run_stops_every_cpu_engine() {
    for (plan, backend) in
        [(two_qubit(40, 2.0), Backend::Cpu), (cavity(6, 1.0), Backend::Cpu), (two_qubit(6, 1.0), Backend::Reference), (cavity(3, 0.5), Backend::Reference)]
    {
        let c = Arc::new(Control::default());
        c.cancel();
        let r = run_plan(&plan, &opts(backend, Some(c.clone())));
        assert!(cancelled(r), "{:?} on {}: not cancelled", backend, plan.model.name());
        assert_eq!(c.done(), 0, "{:?}: members were integrated after the cancel", backend);
    }
    assert_eq!(QbatError::Cancelled.exit_code(), 1);
    assert_eq!(QbatError::Cancelled.to_string(), "the run was cancelled");
}

/// Cancel once the first members are done: the run stops early with Err(Cancelled).
fn cancel_midway(plan: &Plan, backend: Backend) {
    let c = Arc::new(Control::default());
    let watcher = {
        let c = c.clone();
        std::thread::spawn(move || {
            while c.done() == 0 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            c.cancel();
        })
    };
    let r = run_plan(plan, &opts(backend, Some(c.clone())));
    watcher.join().unwrap();
    assert!(cancelled(r), "{:?} on {}: not cancelled", backend, plan.model.name());
    let n = plan.members.len() as u64;
    assert_eq!(c.total(), n);
    assert!(c.done() < n, "{:?} on {}: every member was integrated ({} of {n})", backend, plan.model.name(), c.done());
}

#[test]
fn cancelled_while_running_stops_early() {
    cancel_midway(&two_qubit(4000, 100.0), Backend::Cpu);
    cancel_midway(&cavity(400, 10.0), Backend::Cpu);
    cancel_midway(&two_qubit(400, 40.0), Backend::Reference);
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn a_control_changes_no_bit_and_counts_every_member() {
    // 437 members: with a control, slices of the two-qubit twin that do not divide the
    // ensemble; without one, a single slice.
    // (and the saved states, slice by slice)
    let saving = Plan { save_states: Some(qbat_gpu::config::StateSave::Full), ..two_qubit(437, 3.0) };
    for (plan, backend) in
        [(two_qubit(437, 3.0), Backend::Cpu), (saving, Backend::Cpu), (cavity(7, 1.0), Backend::Cpu), (two_qubit(9, 1.0), Backend::Reference)]
    {
        let plain = run_plan(&plan, &opts(backend, None)).unwrap();
        let c = Arc::new(Control::default());
        let with = run_plan(&plan, &opts(backend, Some(c.clone()))).unwrap();
        assert_eq!(bits(&plain.values), bits(&with.values), "{:?} on {}", backend, plan.model.name());
        assert_eq!(plain.peaks, with.peaks);
        assert_eq!(plain.states, with.states);
        assert_eq!(plain.states.is_some(), plan.save_states.is_some());
        let n = plan.members.len() as u64;
        assert_eq!((c.done(), c.total(), c.fraction()), (n, n, 1.0));
        assert!(!c.is_cancelled());
    }
}

#[test]
fn a_study_stops_between_blocks_and_counts_its_members() {
    let plan = two_qubit(50, 1.0);
    let dir = tempfile::tempdir().unwrap();
    let study = |c: Arc<Control>, out: &str| StudyOptions {
        run: opts(Backend::Cpu, Some(c)),
        output: OutputOptions { plots: false, ..Default::default() },
        out: dir.path().join(out),
        force: false,
        resume: false,
        shard: None,
        block_members: Some(10),
        on_device_loss: OnDeviceLoss::Cpu,
        devices: None,
        allow_mixed_backends: false,
        analyze: false,
    };
    let c = Arc::new(Control::default());
    run_study(&plan, &study(c.clone(), "whole")).unwrap();
    assert_eq!((c.done(), c.total()), (50, 50));
    let c = Arc::new(Control::default());
    c.cancel();
    assert!(cancelled(run_study(&plan, &study(c.clone(), "cancelled"))));
    assert_eq!(c.done(), 0);
}

/// One long member on each CPU engine (seconds of steps here) stops within a few ms of the
/// cancel (the two-qubit twin every `twin::STOP_EVERY` steps, the cavity and dicke engines
/// every step), not at its end: the run is cancelled with the member not counted done.
/// Before, it ran to its end (an hour-long member could not be stopped from Python) and was
/// counted.
#[test]
fn one_long_member_stops_inside_its_steps() {
    for (model, t_end) in [("spin-pair", 100000.0), ("cavity-cells", 5000.0), ("dicke", 1000.0)] {
        let cfg = format!("model = \"{model}\"\n[time]\ndt = 0.01\nt_end = {t_end}\nsamples = 3\n[ensemble]\nsize = 1\n");
        let plan = parse_plan(&cfg, &Overrides::default()).unwrap();
        let c = Arc::new(Control::default());
        let watcher = {
            let c = c.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                c.cancel();
            })
        };
        assert!(cancelled(run_plan(&plan, &opts(Backend::Cpu, Some(c.clone())))), "{model}");
        watcher.join().unwrap();
        assert_eq!(c.done(), 0, "{model}: the member ran to its end");
    }
}

/// Cancel `c` once every member of its run is integrated (its total known and reached).
fn cancel_when_integrated(c: &Arc<Control>) -> std::thread::JoinHandle<()> {
    let c = c.clone();
    std::thread::spawn(move || {
        while c.total() == 0 || c.done() < c.total() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        c.cancel();
    })
}

/// A study stopped while it re-runs its block's `--verify` members on the reference stops
/// before the next member's reference and keeps none of that block: no checkpoint names it,
/// and with no block kept, nothing is left to resume. (Cancelled as soon as the block's
/// members are integrated: its six references, each far longer than the watcher's poll, are
/// still to come.) Before, the references ran to their end and the block was checkpointed. A
/// plain run (Python's `qb.run`) stops among its references likewise.
#[test]
fn a_run_stopped_in_its_verify_stops_and_keeps_no_part_of_the_block() {
    let plan = cavity(6, 40.0);
    let dir = tempfile::tempdir().unwrap();
    let c = Arc::new(Control::default());
    let watcher = cancel_when_integrated(&c);
    let study = StudyOptions {
        run: RunOptions { verify: 6, ..opts(Backend::Cpu, Some(c.clone())) },
        output: OutputOptions { plots: false, ..Default::default() },
        out: dir.path().join("stopped"),
        force: false,
        resume: false,
        shard: None,
        block_members: None,
        on_device_loss: OnDeviceLoss::Cpu,
        devices: None,
        allow_mixed_backends: false,
        analyze: false,
    };
    assert!(cancelled(run_study(&plan, &study)));
    watcher.join().unwrap();
    let staging = dir.path().join(".stopped.partial");
    assert!(!staging.join("checkpoint.json").exists(), "the block being verified was kept: {:?}", std::fs::read_to_string(staging.join("checkpoint.json")));
    let c = Arc::new(Control::default());
    let watcher = cancel_when_integrated(&c);
    assert!(cancelled(run_plan(&plan, &RunOptions { verify: 6, ..opts(Backend::Cpu, Some(c.clone())) })));
    watcher.join().unwrap();
}

/// The GPU engines (lavapipe in CI) check the flag and count members after each chunk: a
/// cancelled run stops after its first chunk; a control changes no bit and counts every member.
#[test]
fn the_gpu_engines_stop_after_a_chunk_and_count_every_member() {
    let _serial = crate::common::SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !crate::common::have_gpu(false) {
        return;
    }
    for plan in [two_qubit(40, 1.0), cavity(24, 0.5)] {
        let gpu = |control: Option<Arc<Control>>| RunOptions { max_chunk: Some(8), ..opts(Backend::Gpu, control) };
        let c = Arc::new(Control::default());
        c.cancel();
        assert!(cancelled(run_plan(&plan, &gpu(Some(c.clone())))), "{}: not cancelled", plan.model.name());
        assert_eq!(c.done(), 8, "{}: the run went on after its first chunk", plan.model.name());
        let plain = run_plan(&plan, &gpu(None)).unwrap();
        let c = Arc::new(Control::default());
        let with = run_plan(&plan, &gpu(Some(c.clone()))).unwrap();
        assert_eq!(bits(&plain.values), bits(&with.values), "{}", plan.model.name());
        let n = plan.members.len() as u64;
        assert_eq!((c.done(), c.total()), (n, n), "{}", plan.model.name());
    }
}
