//! Throughput of the cavity-cells engines on the `cavity-100` job shape (N = 20, dt = 0.01,
//! 1,000 steps, 1,001 samples, stored_energy_b), with fewer members: the GPU kernel
//! (rk4_cavity) in f32 and f64 and the structured f64 CPU engine, in the same process.
//!
//!     cargo run --release --example cavity_throughput -- [MEMBERS] [fluct]
//!
//! Default 4 members. `fluct` adds energy_fluctuation_b (Z evolved beside rho: twice the
//! work). Times are the pipeline's integrate phase (GPU: upload, dispatches, readback; the
//! pipeline is compiled in a warm-up run first); host measures are reported apart.

use qbat_gpu::config::jobs::job_config_with_members;
use qbat_gpu::config::{parse_plan, Overrides};
use qbat_gpu::run::{run_plan, Backend, Precision, RunOptions};

fn main() {
    // As the CLI does first thing: a runtime dir for Mesa's Vulkan drivers, which otherwise print
    // `error: XDG_RUNTIME_DIR is invalid ...` on every adapter probe (gpu/runtime_dir.rs).
    qbat_gpu::gpu::runtime_dir::ensure_runtime_dir();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let members: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(4);
    let fluct = args.iter().any(|a| a == "fluct");
    let mut cfg = job_config_with_members("cavity-100", Some(members)).expect("standard job");
    if fluct {
        cfg = cfg.replace("measures = [\"stored_energy_b\"]", "measures = [\"stored_energy_b\", \"energy_fluctuation_b\"]");
    }
    let plan = parse_plan(&cfg, &Overrides::default()).expect("valid job");
    let work = plan.members.len() as f64 * plan.schedule.total_steps() as f64;
    println!("cavity-100 shape: {} members x {} steps, N = 20, measures {:?}", plan.members.len(), plan.schedule.total_steps(), plan.measures);
    let run = |backend: Backend, precision: Precision| run_plan(&plan, &RunOptions { backend, precision, verify: 0, ..Default::default() }).expect("run");
    let mut reference: Option<Vec<f64>> = None;
    let cpu = run(Backend::Cpu, Precision::F64);
    println!(
        "cpu  f64  integrate {:8.3} s  {:10.3e} member-steps/s  host measures {:.3} s  ({})",
        cpu.timings.integrate,
        work / cpu.timings.integrate,
        cpu.timings.host_measures,
        cpu.device
    );
    reference.get_or_insert(cpu.values.clone());
    for precision in [Precision::F32, Precision::F64] {
        let mut warm = plan.clone();
        warm.members.truncate(1);
        let opts = RunOptions { backend: Backend::Gpu, precision, verify: 0, ..Default::default() };
        if let Err(e) = run_plan(&warm, &opts) {
            println!("gpu  {}: {e}", precision.name());
            continue;
        }
        let g = run(Backend::Gpu, precision);
        let dev = g.values.iter().zip(reference.as_ref().unwrap()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        println!(
            "gpu  {:<4} integrate {:8.3} s  {:10.3e} member-steps/s  host measures {:.3} s  max|gpu - cpu| {dev:.1e}  ({})",
            precision.name(),
            g.timings.integrate,
            work / g.timings.integrate,
            g.timings.host_measures,
            g.device
        );
        if let Some(p) = &g.engine_plan {
            println!("     plan: {}", serde_json::to_string(p).unwrap_or_default());
        }
    }
}
