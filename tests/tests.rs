//! The integration tests, one binary with a module per topic (a single link step).
//! The kernel tests that drive a GPU adapter live in `tests/gpu.rs`.

mod common;

/// `qbat-gpu analyze` and the plots, against statistics computed here from the files
mod analyze;
/// `analyze` against exact references: Pearson in integer arithmetic, monotone pair by pair
mod analyze_exact;
/// the layers of ARCHITECTURE.md: no import circles, no upward imports
mod architecture;
/// bad configs and options: exit 2, the field named, nothing left behind
mod bad_input;
/// the bad-input corpus (tests/bad_inputs/): every case refused cleanly
mod bad_inputs;
/// bench's outputs and options: `--scaling --out` as a qbat-gpu output, `--json`, `--members`
mod bench_inputs;
/// the charger-side measures and <s-> against swapped states and explicit Tr(rho s-)
mod charger;
/// the command line end to end: outputs, formats, round-trip floats
mod cli;
/// `engine::Control`: cancellation and members done, on every CPU engine and a study
mod control;
/// the dicke model: 2^N ergotropy, N = 1 and N = 2 against explicit models, conservation
mod dicke;
/// a matrix drive: its identity part dropped by every engine, its Hermitian part taken
mod drive_shift;
/// `[[drive]]`: H(t) against an independent solve, the Rabi formula, windows bit for bit
mod drives;
/// `[[drive]]` on cavity-cells: the CPU engine against an independent solve and the reference
mod drives_cavity;
/// --verify's check of dt: a member at dt / 2, against the error at dt; run.json and merge
mod dt_check;
/// the CPU engine and the f64 reference agree on every model
mod engines;
/// a full disk at each file a command writes: one line naming it, nothing committed, the rerun or --resume the same bytes
mod full_disk;
/// hand-made hostile inputs: forged shard axes, summary ids not the series', npy trailers, --devices of empty names
mod hostile_inputs;
/// damaged shards and checkpoints, manifests, locks, mixed engines, bounded reads
mod integrity;
/// a commit killed at each step (`--force`, `analyze`): the next command finishes or undoes it, planted names refused
mod interrupted_commit;
/// conservation laws and positivity along trajectories
mod invariants;
/// the layouts of job/ against the shaders, parsed with naga
mod layouts;
/// the eigen-solve measures twin (4x4 Jacobi) against nalgebra and the f64 reference measures
mod measures_twin;
/// merge's inputs: only the files a shard's manifest lists, bounded counts, never an input as --out
mod merge_inputs;
/// what the user reads: one-line TOML errors naming the key, options named, no Debug text
mod messages;
/// the models' operators against dense products; the stability check's bounds at the limit
mod operators;
/// `--out` paths a command cannot use (a file behind a slash, unwritable, too long): refused before the work; umask 0777
mod out_paths;
/// the papers' closed-form checks (`qbat-gpu validate`)
mod papers;
/// the scheduler's GPU (CUDA_VISIBLE_DEVICES, SLURM_JOB_GPUS, ...) mapped to its adapter
mod pinning;
/// what the plots draw: the band where the quantiles do not resolve the spread, a panel a measure, no peak time without a peak, log axes, legends beside the curves
mod plots;
/// under `ulimit -v` and `ulimit -d`: a run that cannot fit refused (exit 2, one line), one that fits run; under `ulimit -s` a run unchanged
mod process_limits;
/// `[protocol] switch_off` on every engine
mod protocol;
/// reference values computed with QuTiP
mod qutip_crosscheck;
/// a resume refuses FIFOs, devices and links in its staging directory, never waits on or writes through them
mod resume_staging;
/// every shader parses and validates with naga in f32 and f64
mod shaders_validate;
/// `--save-states` (states.npy) and complex sweeps
mod states;
/// steady states from the null space of the Liouvillian
mod steady;
/// streamed studies: blocks, checkpoints, resume, shards, merge, faults
mod streaming;

/// --verify: each member held to its own tolerance, the worst member named
mod verify_members;
