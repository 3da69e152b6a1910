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

criterion_group!(benches, cpu_benches, statistics_bench);
criterion_main!(benches);
