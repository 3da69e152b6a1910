//! Every closed-form check of docs/physics.md (`qbat-gpu validate`, `ALL_CHECKS`), on the CPU
//! engines; `protocol_storage` is run in tests/protocol.rs with the other `[protocol]` tests.

use qbat_gpu::run::{Backend, Precision, RunOptions};
use qbat_gpu::validate::*;

/// The options of a check run on `backend` in `precision`.
fn on(backend: Backend, precision: Precision) -> RunOptions {
    RunOptions { backend, precision, ..Default::default() }
}

fn assert_all_pass(checks: Vec<Check>) {
    let failed: Vec<_> = checks.iter().filter(|c| !c.pass()).collect();
    assert!(failed.is_empty(), "failed checks: {failed:#?}");
    assert!(!checks.is_empty());
}

#[test]
fn paper000_table_i() {
    assert_all_pass(paper000_table1(&on(Backend::Reference, Precision::F64)).unwrap());
    assert_all_pass(paper000_table1(&on(Backend::Cpu, Precision::F64)).unwrap());
}

#[test]
fn paper000_theorem_relations() {
    assert_all_pass(paper000_relations(&on(Backend::Reference, Precision::F64)).unwrap());
    assert_all_pass(paper000_relations(&on(Backend::Cpu, Precision::F64)).unwrap());
}

#[test]
fn paper002_eq8_steady_state() {
    assert_all_pass(paper002_steady_state(&on(Backend::Cpu, Precision::F64)).unwrap());
}

/// Steady states from the Liouvillian null space: solved on the CPU in f64 whatever the backend.
#[test]
fn paper002_eq8_from_the_null_space() {
    assert_all_pass(paper002_steady_null_space(&on(Backend::Cpu, Precision::F64)).unwrap());
}

#[test]
fn paper004_closed_forms_hold() {
    assert_all_pass(paper004_closed_forms(&on(Backend::Reference, Precision::F64)).unwrap());
    assert_all_pass(paper004_closed_forms(&on(Backend::Cpu, Precision::F64)).unwrap());
}

#[test]
fn paper004_decay_and_t_e() {
    assert_all_pass(paper004_decay(&on(Backend::Cpu, Precision::F64)).unwrap());
}

#[test]
fn paper004_optimal_power_constants() {
    assert_all_pass(paper004_optimal_powers(&on(Backend::Cpu, Precision::F64)).unwrap());
}

#[test]
fn eq8_limits() {
    // With no dissipation relative to the drive (l -> 0) the formula stays finite; at k = 0 nothing is charged.
    let (eb, ec) = eq8(0.0, 1.0);
    assert_eq!((eb, ec), (0.0, 0.0));
    let (eb, ec) = eq8(1.0, 1.0);
    assert!(eb > 0.0 && ec > 0.0 && eb < 1.0 && ec < 1.0);
}

#[test]
fn circular_drive_follows_the_rabi_formula() {
    assert_all_pass(drive_rabi(&on(Backend::Reference, Precision::F64)).unwrap());
    assert_all_pass(drive_rabi(&on(Backend::Cpu, Precision::F64)).unwrap());
}

/// Each of `ALL_CHECKS` has its test: those above, and protocol_storage in tests/protocol.rs. A
/// new check fails this until it is added.
#[test]
fn every_validate_check_has_a_test() {
    let covered = [
        "paper000_table1",
        "paper000_relations",
        "paper002_steady_state",
        "paper004_closed_forms",
        "paper004_decay",
        "paper004_optimal_powers",
        "paper002_steady_null_space",
        "protocol_storage",
        "drive_rabi",
    ];
    let all: Vec<&str> = ALL_CHECKS.iter().map(|(name, _)| *name).collect();
    assert_eq!(all, covered);
}
