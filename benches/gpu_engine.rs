//! Criterion benches of the GPU engine on the standard two-qubit job shapes. Without an adapter
//! they print why and measure nothing. `QBAT_BENCH_QUICK=1` shrinks the ensembles.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use qbat_gpu::config::jobs::job_config_with_members;
use qbat_gpu::config::{parse_plan, Overrides};
use qbat_gpu::engine::gpu_context;
use qbat_gpu::run::{run_plan, Backend, Precision, RunOptions};

fn gpu_benches(c: &mut Criterion) {
    if let Err(e) = gpu_context(None, false) {
        eprintln!("skipping GPU benches: no GPU adapter ({e})");
        return;
    }
    let quick = std::env::var("QBAT_BENCH_QUICK").is_ok_and(|v| v == "1");
    for (job, members) in [("bloch-1k", None), ("bloch-100k", Some(if quick { 1_000 } else { 10_000 }))] {
        let members = if quick { members.or(Some(200)) } else { members };
        let plan = parse_plan(&job_config_with_members(job, members).expect("job"), &Overrides::default()).expect("plan");
        for precision in [Precision::F32, Precision::F64] {
            if precision == Precision::F64 && gpu_context(None, true).is_err() {
                eprintln!("skipping {job} f64: the adapter has no SHADER_F64");
                continue;
            }
            let opts = RunOptions { backend: Backend::Gpu, precision, verify: 0, ..Default::default() };
            let mut group = c.benchmark_group(format!("gpu-{job}-{}", precision.name()));
            group.sample_size(10);
            group.throughput(Throughput::Elements(plan.members.len() as u64 * plan.schedule.total_steps()));
            group.bench_function(format!("{} members", plan.members.len()), |b| b.iter(|| run_plan(&plan, &opts).expect("run")));
            group.finish();
        }
    }
}

criterion_group!(benches, gpu_benches);
criterion_main!(benches);
