//! The standard benchmark jobs (`qbat-gpu bench`), as configs: bloch-1k, bloch-1k-driven,
//! bloch-100k, cavity-100, cavity-10k and dicke-1k.

use crate::error::{QbatError, Result};
use crate::measures::Measure;

pub const JOBS: [&str; 6] = ["bloch-1k", "bloch-1k-driven", "bloch-100k", "cavity-100", "cavity-10k", "dicke-1k"];

/// The config of a standard job.
pub fn job_config(name: &str) -> Result<String> {
    job_config_with_members(name, None)
}

/// The config of a standard job, optionally with another member count (for scaling curves
/// and short CI runs): bloch jobs draw that many charger states, cavity jobs that many lambdas,
/// dicke-1k that many couplings g (N = 8 cells from |8> photons, n_fock = 24, dt = 0.01, 1,000
/// steps, dissipative).
pub fn job_config_with_members(name: &str, members: Option<u64>) -> Result<String> {
    let bloch = |n: u64, measures: &str| {
        format!("model = \"bloch-charger\"\n[params]\nwb = 1.0\nj = 1.0\ngamma = 0.05\n[initial]\nrandom = \"bloch\"\n[time]\ndt = 0.01\nt_end = 20.0\nsamples = 2001\n[ensemble]\nsize = {n}\nseed = 1\n{measures}")
    };
    let cavity = |n: u64| {
        format!("model = \"cavity-cells\"\n[params]\nwc = 1.0\nwq = 1.0\ng = 0.2\nzeta = 0.5\nalpha = 2.0\nkappa = 0.1\ngamma = 0.05\nn_fock = 20\nlambda = {{ linspace = [0.5, 1.5, {n}] }}\n[time]\ndt = 0.01\nt_end = 10.0\nsamples = 1001\n[output]\nmeasures = [\"stored_energy_b\"]\n")
    };
    Ok(match name {
        "bloch-1k" => bloch(members.unwrap_or(1_000), "[output]\nmeasures = [\"energy_b\"]\n"),
        // bloch-1k with a resonant constant drive on the battery: every step takes the driven
        // stages (the cost of [[drive]] per member-step against bloch-1k).
        "bloch-1k-driven" => bloch(
            members.unwrap_or(1_000),
            "[output]\nmeasures = [\"energy_b\"]\n[[drive]]\noperator = \"sx_b\"\namplitude = 0.2\nfrequency = 1.0\n",
        ),
        "bloch-100k" => bloch(members.unwrap_or(100_000), &kernel_measures_section()),
        "cavity-100" => cavity(members.unwrap_or(100)),
        "cavity-10k" => cavity(members.unwrap_or(10_000)),
        "dicke-1k" => format!(
            "model = \"dicke\"\n[params]\nn_cells = 8\nn_fock = 24\nwc = 1.0\nwa = 1.0\nkappa = 0.05\ngamma = 0.02\ng = {{ linspace = [0.02, 0.2, {}] }}\n[time]\ndt = 0.01\nt_end = 10.0\nsamples = 101\n[output]\nmeasures = [\"energy_b\"]\n",
            members.unwrap_or(1_000)
        ),
        other => return Err(QbatError::invalid("JOB", format!("unknown job '{other}'; jobs: {}", JOBS.join(", ")))),
    })
}

/// `[output]` listing every two-qubit measure that needs no eigen-solve (what the GPU kernel
/// computes itself). bloch-100k uses it: the eigen-solve measures run on the host, 2e8
/// samples of them would take the 2-core host an hour, and they are timed in the default study.
fn kernel_measures_section() -> String {
    let names: Vec<String> = Measure::ALL
        .iter()
        .filter(|m| m.applies(false) && !m.needs_eigensolve() && !m.steady_only() && !m.opt_in())
        .map(|m| format!("\"{}\"", m.name()))
        .collect();
    format!("[output]\nmeasures = [{}]\n", names.join(", "))
}
