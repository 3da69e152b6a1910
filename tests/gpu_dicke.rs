//! dicke with `--backend gpu`: there is no dicke kernel yet, so the run must say so and give
//! exactly the structured CPU engine's values (never a silent different path).

use qbat_gpu::config::{parse_plan, Overrides};
use qbat_gpu::run::{run_plan, Backend, RunOptions};

use crate::common::{have_gpu, SERIAL};

#[test]
fn dicke_on_the_gpu_backend_runs_the_cpu_engine_with_a_note() {
    let _lock = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    let cfg = "model = \"dicke\"\n[params]\nn_cells = 2\nn_fock = 4\ng = { values = [0.1, 0.3] }\nkappa = 0.1\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 3\n";
    let plan = parse_plan(cfg, &Overrides::default()).unwrap();
    let gpu = run_plan(&plan, &RunOptions { backend: Backend::Gpu, verify: 1, ..Default::default() }).unwrap();
    let cpu = run_plan(&plan, &RunOptions { backend: Backend::Cpu, verify: 0, ..Default::default() }).unwrap();
    assert!(gpu.notes.iter().any(|n| n.contains("no GPU kernel yet")), "{:?}", gpu.notes);
    assert_eq!(gpu.values, cpu.values);
    // the report and run.json name the engine that ran, not the one asked for
    assert_eq!(gpu.backend, "cpu");
    assert_eq!(gpu.device, cpu.device);
    assert!(gpu.verify.as_ref().unwrap().pass);
}
