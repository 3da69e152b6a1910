//! Throughput of the two-qubit engines (GPU kernel and CPU twin) on one shared point:
//! bloch-charger (wb = j = 1, gamma = 0.05), charger states spread over the Bloch sphere.
//!
//!     cargo run --release --example two_qubit_throughput -- [MEMBERS] [STEPS] [SAMPLES] [all]
//!
//! Defaults: 100,000 members, 1,000 steps of 1e-3, 11 samples, energy_b only (`all`: every
//! kernel measure). GPU times include the upload, every dispatch and the readback; the
//! pipeline is compiled in a warm-up run first.

use qbat_gpu::gpu::{run_two_qubit_gpu, GpuContext, Precision};
use qbat_gpu::job::pauli::{point, to_pauli};
use qbat_gpu::job::two_qubit::KERNEL_MEASURES;
use qbat_gpu::job::{Schedule, TwoQubitJob};
use qbat_gpu::measures::Measure;
use qbat_gpu::model::{resolve_params, ModelKind, ParamValue, Params};
use qbat_gpu::twin::rk4_two_qubit::run_two_qubit_twin;
use std::time::Instant;

fn main() {
    // As the CLI does first thing: a runtime dir for Mesa's Vulkan drivers, which otherwise print
    // `error: XDG_RUNTIME_DIR is invalid ...` on every adapter probe (gpu/runtime_dir.rs).
    qbat_gpu::gpu::runtime_dir::ensure_runtime_dir();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (members, steps, samples) = (arg(0, 100_000), arg(1, 1_000), arg(2, 11).max(1));
    let all = args.iter().any(|a| a == "all");

    let mut p = Params::new();
    p.insert("gamma".into(), ParamValue::Real(0.05));
    let sys = ModelKind::BlochCharger.build(&resolve_params(ModelKind::BlochCharger, &p).unwrap()).unwrap();
    let dt = 1e-3;
    let t_end = steps as f64 * dt;
    let times: Vec<f64> = (0..samples).map(|k| if samples == 1 { t_end } else { t_end * k as f64 / (samples - 1) as f64 }).collect();
    let golden = std::f64::consts::PI * (3.0 - 5f64.sqrt());
    let initial = (0..members)
        .map(|i| {
            // Fibonacci points on the charger's Bloch sphere.
            let zc = 1.0 - 2.0 * (i as f64 + 0.5) / members as f64;
            let theta = zc.clamp(-1.0, 1.0).acos();
            let phi = golden * i as f64;
            to_pauli(&ModelKind::BlochCharger.default_state(&Params::new(), Some((theta, phi))).unwrap())
        })
        .collect();
    let job = TwoQubitJob {
        points: vec![point(&sys)],
        member_point: vec![0; members],
        initial,
        schedule: Schedule::new(dt, &times),
        measures: if all { KERNEL_MEASURES.to_vec() } else { vec![Measure::EnergyB] },
        keep_states: false,
    };
    let work = members as f64 * job.schedule.total_steps() as f64;
    println!("{members} members x {} steps, {samples} samples, {} measure(s)", job.schedule.total_steps(), job.measures.len());

    match GpuContext::new(None, false) {
        Ok(ctx) => {
            println!("adapter: {} ({}, {})", ctx.info.name, ctx.info.backend, ctx.info.device_type);
            let mut precisions = vec![Precision::F32];
            if ctx.info.has_f64 {
                precisions.push(Precision::F64);
            }
            for precision in precisions {
                let mut warm = job.clone();
                warm.initial.truncate(64);
                warm.member_point.truncate(64);
                run_two_qubit_gpu(&ctx, &warm, precision, &|_| Ok(())).expect("warm-up");
                let t0 = Instant::now();
                let r = run_two_qubit_gpu(&ctx, &job, precision, &|_| Ok(())).expect("gpu run");
                let s = t0.elapsed().as_secs_f64();
                println!(
                    "gpu  {:<4} {s:8.3} s  {:10.3e} member-steps/s  (energy_b(t_end) of member 0: {:.6})",
                    precision.name(),
                    work / s,
                    r.values[(samples - 1) * job.measures.len()]
                );
            }
        }
        Err(e) => println!("no GPU: {e}"),
    }
    let t0 = Instant::now();
    let r = run_two_qubit_twin::<f64>(&job);
    let s = t0.elapsed().as_secs_f64();
    println!(
        "twin f64  {s:8.3} s  {:10.3e} member-steps/s  (energy_b(t_end) of member 0: {:.6}, {} threads)",
        work / s,
        r.values[(samples - 1) * job.measures.len()],
        rayon::current_num_threads()
    );
    let t0 = Instant::now();
    run_two_qubit_twin::<f32>(&job);
    let s = t0.elapsed().as_secs_f64();
    println!("twin f32  {s:8.3} s  {:10.3e} member-steps/s", work / s);
}
