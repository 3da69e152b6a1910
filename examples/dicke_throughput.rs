//! Throughput of the dicke structured f64 CPU engine on the `dicke-1k` job shape (N = 8,
//! n_fock = 24, dim 225, dt = 0.01, 1,000 steps, 101 samples, energy_b), with fewer members
//! (evenly spread couplings g in [0.02, 0.2]); the full job's time is extrapolated.
//!
//!     cargo run --release --example dicke_throughput -- [MEMBERS]
//!
//! Default 20 members. The time is the pipeline's integrate phase (measures included). The
//! engine steps members in batches of `engine::dicke::LANES` (4), the batches in parallel: a
//! multiple of 8 members keeps both threads of a 2-core machine on full batches. Compare
//! engines by CPU time (`/usr/bin/time`) on a shared machine.

use qbat_gpu::config::jobs::job_config_with_members;
use qbat_gpu::config::{parse_plan, Overrides};
use qbat_gpu::run::{run_plan, Backend, RunOptions};

fn main() {
    let members: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    let cfg = job_config_with_members("dicke-1k", Some(members)).expect("standard job");
    let plan = parse_plan(&cfg, &Overrides::default()).expect("valid job");
    let steps = plan.schedule.total_steps() as f64;
    let r = run_plan(&plan, &RunOptions { backend: Backend::Cpu, verify: 0, ..Default::default() }).expect("run");
    let t = r.timings.integrate;
    println!("dicke-1k shape, {members} members x {steps} steps on {} ({}):", r.backend, r.device);
    println!(
        "  integrate {t:.3} s, {:.3e} member-steps/s, {:.3} s per member -> full job (1,000 members) ~{:.0} s",
        members as f64 * steps / t,
        t / members as f64,
        t / members as f64 * 1000.0
    );
}
