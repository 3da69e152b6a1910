//! Criterion benches of the CPU engines on the standard jobs (docs/interface.md).
//! `QBAT_BENCH_QUICK=1` shrinks the ensembles for a short CI-sized run.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use qbat_gpu::config::jobs::job_config_with_members;
use qbat_gpu::config::{parse_plan, Overrides};
use qbat_gpu::run::{run_plan, Backend, Precision, RunOptions};

fn quick() -> bool {
    std::env::var("QBAT_BENCH_QUICK").is_ok_and(|v| v == "1")
}

fn bench_job(c: &mut Criterion, job: &str, backend: Backend, members: Option<u64>) {
    let text = job_config_with_members(job, members).expect("standard job");
    let plan = match parse_plan(&text, &Overrides::default()) {
        Ok(p) => p,
        Err(e) => panic!("job {job}: {e}"),
    };
    let opts = RunOptions { backend, precision: Precision::F64, verify: 0, ..Default::default() };
    let mut group = c.benchmark_group(format!("{job}-{backend:?}").to_lowercase());
    group.sample_size(10);
    group.throughput(Throughput::Elements(plan.members.len() as u64 * plan.schedule.total_steps()));
    group.bench_function(format!("{} members", plan.members.len()), |b| b.iter(|| run_plan(&plan, &opts).expect("run")));
    group.finish();
}

fn cpu_benches(c: &mut Criterion) {
    let q = quick();
    bench_job(c, "bloch-1k", Backend::Cpu, if q { Some(100) } else { None });
    bench_job(c, "cavity-100", Backend::Cpu, Some(if q { 4 } else { 100 }));
    if !q {
        bench_job(c, "bloch-1k", Backend::Reference, Some(100));
    }
}

/// The streamed statistics alone (`StatsAccumulator::add_block`), per value: a block of 1,000
/// members x 2,001 samples of one measure, valued like bloch-1k's energy_b (a smooth curve per
/// member, spread over two decades).
fn statistics_bench(c: &mut Criterion) {
    use qbat_gpu::output::accumulate::StatsAccumulator;
    let (members, samples) = if quick() { (100, 201) } else { (1_000, 2_001) };
    let values: Vec<f64> = (0..members)
        .flat_map(|m| (0..samples).map(move |s| 0.5 * (1.0 - (0.01 * s as f64 * (1.0 + 0.001 * m as f64)).cos()) + 1e-3 * m as f64 / members as f64))
        .collect();
    let include = vec![true; members];
    let mut group = c.benchmark_group("statistics");
    group.sample_size(10);
    group.throughput(Throughput::Elements(values.len() as u64));
    group.bench_function(format!("add_block {members}x{samples}"), |b| {
        b.iter(|| {
            let mut acc = StatsAccumulator::new(samples, 1);
            acc.add_block(&values, &include);
            acc
        })
    });
    group.finish();
}

/// The eigen-solve measures alone (`run_measures_twin` in f64, every eigen measure): 20,000
/// sample states rho = A A^+ / Tr(A A^+) with A's entries from a fixed pseudo-random sequence,
/// one point (its generator is not used here).
fn measures_bench(c: &mut Criterion) {
    use qbat_gpu::job::measures_two_qubit::{EigenJob, EIGEN_MEASURES};
    use qbat_gpu::job::pauli::to_pauli;
    use qbat_gpu::job::two_qubit::TwoQubitPoint;
    use qbat_gpu::linalg::{CMat, C64};
    use qbat_gpu::twin::measures_two_qubit::run_measures_twin;
    let n = if quick() { 2_000 } else { 20_000 };
    let mut seed = 7u64;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let states: Vec<f64> = (0..n)
        .flat_map(|_| {
            let a = CMat::from_fn(4, 4, |_, _| C64::new(next(), next()));
            let rho = &a * a.adjoint();
            let tr = rho.trace();
            to_pauli(&(rho / tr))
        })
        .collect();
    let point = TwoQubitPoint {
        generator: [0.0; 256],
        generator_off: None,
        h_battery: [0.0, 0.0, 0.0, 1.0],
        h_charger: [0.0, 0.0, 0.0, 1.0],
        dephasing: 0.0,
        drives: vec![],
    };
    let eigen = EigenJob { measures: EIGEN_MEASURES.to_vec(), h_total_eigs: vec![[-2.0, -1.0, 1.0, 2.0]] };
    let mut group = c.benchmark_group("measures");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function(format!("eigen measures of {n} states"), |b| {
        b.iter(|| run_measures_twin::<f64>(&eigen, std::slice::from_ref(&point), &vec![0; n], &states, 1))
    });
    group.finish();
}

/// The analysis' Spearman ranks alone (`analyze::ranks`): a pooled column of 2.02 million
/// distinct samples and one sample time's 20,000, like the main job's (log-uniform over 20
/// binades, as bell_chsh spans 3.7e-7 to 0.83).
fn ranks_bench(c: &mut Criterion) {
    use qbat_gpu::analyze::{doubled_ranks_whole_and_sliced, ranks};
    let pooled = if quick() { 202_000 } else { 2_020_000 };
    let mut seed = 11u64;
    let values: Vec<f64> = (0..pooled)
        .map(|_| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            2f64.powf(-20.0 * (seed >> 11) as f64 / (1u64 << 53) as f64)
        })
        .collect();
    let mut group = c.benchmark_group("ranks");
    group.sample_size(10);
    for n in [pooled, 20_000] {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("ranks of {n} samples"), |b| b.iter(|| ranks(&values[..n])));
    }
    // the pooled ranks and those within each sample time, as the default study's analysis
    // takes them (101 times of 20,000 members)
    let slice = pooled / 101;
    group.throughput(Throughput::Elements(pooled as u64));
    group.bench_function(format!("whole and sliced ranks of {pooled} samples in slices of {slice}"), |b| {
        let mut scratch = vec![];
        b.iter(|| doubled_ranks_whole_and_sliced(&values, slice, &mut scratch))
    });
    group.finish();
}

criterion_group!(benches, cpu_benches, statistics_bench, measures_bench, ranks_bench);
criterion_main!(benches);
