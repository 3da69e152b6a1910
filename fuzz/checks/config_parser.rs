//! The check of the `config_parser` fuzz target, shared by the target and the corpus replay of
//! `cargo test` (tests/fuzz_corpus.rs).
//!
//! Arbitrary bytes as a config: `parse_plan` must return Ok or a QbatError, never panic, hang
//! or exhaust memory.
use qbat_gpu::config::{parse_plan, Overrides};
use toml::{Table, Value};

/// Largest ensemble, sweep grid and samples tried here. The library sizes its limits by the
/// machine's memory (check_memory); libFuzzer stops at 2 GiB, so bigger plans are skipped.
const MAX_MEMBERS: f64 = 10_000.0;
const MAX_SAMPLES: f64 = 100_000.0;
/// Bound on (parameter points) x dim^2: each point holds a few dim x dim operators.
const MAX_POINT_CELLS: f64 = 2e6;
/// Bound on (parameter points) x dim^3: validation builds and eigen-solves each point's
/// operators (about 7 s for one point at n_fock = 236, dim = 948).
const MAX_POINT_WORK: f64 = 1e8;

fn number(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Integer(i) => Some(*i as f64),
        Value::Float(x) => Some(*x),
        _ => None,
    }
}

/// Points of one sweep value ({ linspace }, { values }), 1 for anything else.
fn sweep_points(v: &Value) -> f64 {
    let Some(t) = v.as_table() else { return 1.0 };
    if let Some(Value::Array(a)) = t.get("linspace") {
        return a.get(2).and_then(|n| number(Some(n))).unwrap_or(1.0).abs().max(1.0);
    }
    if let Some(Value::Array(a)) = t.get("values") {
        return a.len().max(1) as f64;
    }
    1.0
}

/// Whether a parsed config is small enough for the fuzzer's memory limit.
fn within_budget(root: &Table) -> bool {
    let section = |name: &str| root.get(name).and_then(|v| v.as_table());
    let mut points = 1.0;
    let mut drawn = false;
    let mut dim = 4.0;
    for s in ["params", "initial"] {
        for (k, v) in section(s).into_iter().flatten() {
            points *= sweep_points(v);
            drawn |= v.as_table().is_some_and(|t| t.contains_key("uniform"));
            if k == "n_fock" {
                dim = 4.0 * (number(Some(v)).unwrap_or(0.0).abs() + 1.0);
            }
        }
    }
    if section("params").is_some_and(|p| !p.contains_key("n_fock")) && root.get("model").and_then(|m| m.as_str()) == Some("cavity-cells") {
        dim = 4.0 * 21.0; // the default n_fock = 20
    }
    let members = number(section("ensemble").and_then(|e| e.get("size"))).unwrap_or(points).abs();
    let samples = number(section("time").and_then(|t| t.get("samples"))).unwrap_or(0.0).abs();
    let point_count = if drawn { members.max(points) } else { points };
    members <= MAX_MEMBERS
        && samples <= MAX_SAMPLES
        && point_count <= MAX_MEMBERS
        && point_count * dim * dim <= MAX_POINT_CELLS
        && point_count * dim * dim * dim <= MAX_POINT_WORK
}

/// One input: taken as UTF-8 text and parsed when its sizes are within the budget. Whether
/// it was accepted: None when it was not given to `parse_plan`.
pub fn check(data: &[u8]) -> Option<bool> {
    let text = std::str::from_utf8(data).ok()?;
    // Sizes are read from the same TOML the library will see; unparsable text goes straight on.
    if let Ok(root) = text.parse::<Table>() {
        if !within_budget(&root) {
            return None;
        }
    }
    Some(parse_plan(text, &Overrides::default()).is_ok())
}
