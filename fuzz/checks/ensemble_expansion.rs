//! The check of the `ensemble_expansion` fuzz target, shared by the target and the corpus
//! replay of `cargo test` (tests/fuzz_corpus.rs).
//!
//! Structured configs with sweeps, random or explicit initial states, ensemble sizes and seeds:
//! `parse_plan` either refuses them or gives a plan whose members' initial states are all
//! finite density matrices (unit trace, Hermitian, positive).
use arbitrary::Arbitrary;
use qbat_gpu::config::{parse_plan, Overrides};
use qbat_gpu::linalg::{eigvals_hermitian, hermiticity_error, is_finite};
use qbat_gpu::model::ModelKind;
use toml::{Table, Value};

/// Tolerance of the state checks: the library's STATE_TOL on input plus rounding of the
/// construction (projectors, tensor products, QR of random unitaries).
const TOL: f64 = 1e-9;

#[derive(Arbitrary, Debug)]
enum Number {
    Small(i8),
    Float(f64),
    Int(i64),
    Text(bool),
}

impl Number {
    fn value(&self) -> Value {
        match self {
            Number::Small(i) => Value::Float(*i as f64 / 8.0),
            Number::Float(x) => Value::Float(*x),
            Number::Int(i) => Value::Integer(*i),
            Number::Text(nan) => Value::String(if *nan { "nan".into() } else { "1.0".into() }),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum SweepSpec {
    Fixed(Number),
    Linspace(Number, Number, u8),
    Values(Vec<Number>),
    Uniform(Number, Number),
    Empty,
}

impl SweepSpec {
    fn value(&self) -> Value {
        let table = |k: &str, v: Vec<Value>| {
            let mut t = Table::new();
            t.insert(k.into(), Value::Array(v));
            Value::Table(t)
        };
        match self {
            SweepSpec::Fixed(x) => x.value(),
            // at most 8 points an axis, as `values` below, so four swept axes make at most 4,096
            // grid points: the fuzzer's 10 s per input, not the library's limit (30 x 17 x 30 x 30
            // points took 13 s to expand)
            SweepSpec::Linspace(lo, hi, n) => table("linspace", vec![lo.value(), hi.value(), Value::Integer(*n as i64 % 9)]),
            SweepSpec::Values(v) => table("values", v.iter().take(8).map(Number::value).collect()),
            SweepSpec::Uniform(lo, hi) => table("uniform", vec![lo.value(), hi.value()]),
            SweepSpec::Empty => Value::Table(Table::new()),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Initial {
    Default,
    Random(u8),
    Ket(Vec<(i8, i8)>),
    Normalised(Vec<(i8, i8)>),
    Angles(SweepSpec, Option<SweepSpec>),
}

#[derive(Arbitrary, Debug)]
pub struct Input {
    model: u8,
    params: Vec<(u8, SweepSpec)>,
    n_fock: u8,
    initial: Initial,
    size: Option<u16>,
    seed: Option<i64>,
    zip: Option<bool>,
    members: Vec<u16>,
}

fn config(input: &Input) -> String {
    let model = ModelKind::ALL[input.model as usize % ModelKind::ALL.len()];
    let names: Vec<&str> = model.params().iter().map(|s| s.name).collect();
    let mut root = Table::new();
    root.insert("model".into(), Value::String(model.name().into()));
    let mut params = Table::new();
    let eye = |n: usize, scale: f64| {
        Value::Array((0..n).map(|i| Value::Array((0..n).map(|j| Value::Float(if i == j { scale * (i as f64 - 1.5) } else { 0.0 })).collect())).collect())
    };
    match model {
        ModelKind::TwoQubit => {
            params.insert("hamiltonian".into(), eye(4, 1.0));
            params.insert("h_battery".into(), eye(2, 1.0));
            params.insert("h_charger".into(), eye(2, 1.0));
        }
        ModelKind::CavityCells => {
            params.insert("n_fock".into(), Value::Integer(input.n_fock as i64 % 7));
        }
        _ => {}
    }
    // n_fock stays the small value above: validating a cavity plan builds dense operators and
    // eigen-solves them, O(dim^3) per point (seconds at n_fock ~ 200)
    let free: Vec<&str> = names.iter().copied().filter(|n| *n != "n_fock").collect();
    for (k, s) in input.params.iter().take(4) {
        params.insert(free[*k as usize % free.len()].into(), s.value());
    }
    root.insert("params".into(), Value::Table(params));

    let dim = match model {
        ModelKind::CavityCells => 4 * (input.n_fock as usize % 7 + 1),
        _ => 4,
    };
    let mut initial = Table::new();
    let ket = |amps: &[(i8, i8)], normalise: bool| {
        let amps: Vec<(f64, f64)> = amps.iter().take(dim).map(|&(re, im)| (re as f64, im as f64)).collect();
        let norm = amps.iter().map(|(re, im)| re * re + im * im).sum::<f64>().sqrt();
        let n = if normalise && norm > 0.0 { norm } else { 1.0 };
        Value::Array(amps.iter().map(|(re, im)| Value::Array(vec![Value::Float(re / n), Value::Float(im / n)])).collect())
    };
    match &input.initial {
        Initial::Default => {}
        Initial::Random(k) => {
            let kinds = ["haar", "haar-charger", "bloch", "mixed-hs", "mixed-bures", "none"];
            initial.insert("random".into(), Value::String(kinds[*k as usize % kinds.len()].into()));
        }
        Initial::Ket(a) => {
            initial.insert("ket".into(), ket(a, false));
        }
        Initial::Normalised(a) => {
            initial.insert("ket".into(), ket(a, true));
        }
        Initial::Angles(theta, phi) => {
            initial.insert("theta".into(), theta.value());
            if let Some(phi) = phi {
                initial.insert("phi".into(), phi.value());
            }
        }
    }
    root.insert("initial".into(), Value::Table(initial));

    let mut time = Table::new();
    time.insert("dt".into(), Value::Float(0.01));
    time.insert("t_end".into(), Value::Float(0.1));
    time.insert("samples".into(), Value::Integer(3));
    root.insert("time".into(), Value::Table(time));

    let mut ensemble = Table::new();
    if let Some(size) = input.size {
        // at most 4096 members: the fuzzer's memory limit, not the library's
        ensemble.insert("size".into(), Value::Integer(size as i64 % 4097));
    }
    if let Some(seed) = input.seed {
        ensemble.insert("seed".into(), Value::Integer(seed));
    }
    if let Some(zip) = input.zip {
        ensemble.insert("mode".into(), Value::String(if zip { "zip".into() } else { "grid".into() }));
    }
    root.insert("ensemble".into(), Value::Table(ensemble));
    toml::to_string(&root).expect("a table of plain values serialises")
}

/// One input: its config either refused, or a plan whose chosen members' initial states are
/// density matrices. Whether it was accepted.
pub fn check(input: &Input) -> bool {
    let text = config(input);
    let Ok(plan) = parse_plan(&text, &Overrides::default()) else { return false };
    let n = plan.members.len();
    assert!(n >= 1);
    // the first and last members and a few chosen by the input
    let picks = [0, n - 1].into_iter().chain(input.members.iter().take(4).map(|&i| i as usize % n));
    for i in picks {
        let m = &plan.members[i];
        assert!(m.point < plan.points.len() && m.point < plan.systems.len(), "member {i}: point {} of {}", m.point, plan.points.len());
        let rho = plan.initial_state(m);
        assert_eq!((rho.nrows(), rho.ncols()), (plan.dim(), plan.dim()), "member {i}");
        assert!(is_finite(&rho), "member {i}: non-finite initial state\n{text}");
        let tr = rho.trace();
        assert!((tr.re - 1.0).abs() < TOL && tr.im.abs() < TOL, "member {i}: trace {tr}\n{text}");
        assert!(hermiticity_error(&rho) < TOL, "member {i}: not Hermitian\n{text}");
        let lam = eigvals_hermitian(&rho)[0];
        assert!(lam > -TOL, "member {i}: smallest eigenvalue {lam}\n{text}");
    }
    true
}
