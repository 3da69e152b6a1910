#!/usr/bin/env python3
"""dynamiqs side of the qbat-gpu bloch-1k benchmark job (docs/interface.md).

All members go through ONE `dq.mesolve` call: the initial kets are stacked into a batch of
shape (members, 4, 1), which dynamiqs vmaps over. Tsit5 (diffrax) at rtol = atol = 1e-9, in
double precision (jax x64, `dq.set_precision('double')`), on the CPU. Operators, members and
the closed form come from ../bloch_job.py, shared with the QuTiP bench.

    python bench_dynamiqs.py                                  # the job's defaults, numpy's members
    python bench_dynamiqs.py --config job.toml --qbat-out DIR # qbat-gpu's config and members
    python bench_dynamiqs.py --members 50                     # a quick check

`--config` is `qbat-gpu bench bloch-1k --print-config` saved to a file. `--qbat-out` is the
output directory of a `qbat-gpu run --format npy` of that config: the members are then
qbat-gpu's own (theta, phi from summary.csv), and the max abs deviation of energy_b from
qbat-gpu's series.npy is reported beside the error against the closed form.

Timed: the first call (tracing, XLA compilation and the run) and then `--repeat` calls of the
compiled function (the same shapes, so no recompilation); each ends with
`block_until_ready` on the expectation values. Imports, JAX's backend start-up (done before
the first call) and the operators' construction are not timed.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ left in benches/
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import bloch_job  # noqa: E402

import numpy as np  # noqa: E402

try:
    import jax
    import jax.numpy as jnp
    import dynamiqs as dq
except ImportError:  # pragma: no cover - reported to the user
    sys.stderr.write(
        "error: dynamiqs (with jax) is not installed for this Python (%s).\n"
        "       pip install dynamiqs==0.3.7 'jax[cpu]'   (or: bash benches/compare.sh --install)\n"
        % sys.executable
    )
    sys.exit(2)

DEFAULT_TOL = 1e-9


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None,
                   help="the job's TOML (`qbat-gpu bench bloch-1k --print-config`); default: bloch-1k's values")
    p.add_argument("--qbat-out", default=None,
                   help="a `qbat-gpu run --format npy` directory of the config: use its members, compare with its energy_b")
    p.add_argument("--members", type=int, default=None,
                   help="run only an evenly spread subset of this many members (a quick check; no extrapolation)")
    p.add_argument("--seed", type=int, default=None, help="numpy seed of the members without --qbat-out (default: the config's)")
    p.add_argument("--rtol", type=float, default=DEFAULT_TOL)
    p.add_argument("--atol", type=float, default=DEFAULT_TOL)
    p.add_argument("--repeat", type=int, default=3, help="timed calls of the compiled function (default 3)")
    p.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = p.parse_args(argv)
    if args.repeat < 1:
        raise SystemExit("error: --repeat must be >= 1")

    jax.config.update("jax_enable_x64", True)
    dq.set_precision("double")
    dq.set_device("cpu")
    dq.set_progress_meter(False)

    cfg = bloch_job.read_config(args.config)
    tlist = bloch_job.times(cfg)
    qbat_energy = None
    if args.qbat_out:
        theta, phi, qbat_energy, qbat_t = bloch_job.qbat_members(args.qbat_out)
        if len(theta) != cfg["size"] or len(qbat_t) != len(tlist) or np.max(np.abs(qbat_t - tlist)) > 1e-9:
            raise SystemExit(f"error: --qbat-out {args.qbat_out}: its members or times are not the config's")
        members_from = f"qbat-gpu run {args.qbat_out} (summary.csv theta, phi)"
    else:
        seed = cfg["seed"] if args.seed is None else args.seed
        theta, phi = bloch_job.numpy_angles(cfg["size"], seed)
        members_from = f"numpy.random.default_rng({seed})"
    total = len(theta)
    idx = bloch_job.member_indices(total, args.members)
    theta, phi = theta[idx], phi[idx]
    m = len(idx)

    h, jump, h_b = bloch_job.operators(cfg)
    H, L, HB = dq.asqarray(h), dq.asqarray(jump), dq.asqarray(h_b)
    psi0 = dq.asqarray(bloch_job.kets(theta, phi))  # (m, 4, 1): the batch dimension
    tsave = jnp.asarray(tlist)
    method = dq.method.Tsit5(rtol=args.rtol, atol=args.atol)
    jnp.zeros(1).block_until_ready()  # JAX's CPU backend starts here, outside the timings

    def call():
        res = dq.mesolve(H, [L], psi0, tsave, exp_ops=[HB], method=method, save_states=False)
        res.expects.block_until_ready()
        return res

    t0 = time.perf_counter()
    res = call()
    first = time.perf_counter() - t0
    compiled = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        res = call()
        compiled.append(time.perf_counter() - t0)

    energy = np.real(np.asarray(res.expects))[:, 0, :]  # (members, len(exp_ops), samples)
    assert energy.shape == (m, len(tlist)), energy.shape
    err_cf = float(np.max(np.abs(energy - bloch_job.closed_form(theta, tlist, cfg))))
    dev_qbat = None if qbat_energy is None else float(np.max(np.abs(energy - qbat_energy[idx])))
    nsteps = np.asarray(res.infos.nsteps) if hasattr(res.infos, "nsteps") else None
    steps_per_s = float(m * (len(tlist) - 1) / statistics.median(compiled))

    out = {
        "job": "bloch-1k",
        "members": m,
        "total_members": total,
        "member_indices": idx.tolist() if m < total else None,
        "members_from": members_from,
        "samples": len(tlist),
        "t_end": cfg["t_end"],
        "params": {k: cfg[k] for k in ("wb", "j", "gamma")},
        "first_call_s": first,
        "compiled_s": compiled,
        "compiled_median_s": statistics.median(compiled),
        "compiled_min_s": min(compiled),
        "solver_steps_mean": float(np.mean(nsteps)) if nsteps is not None else None,
        "sample_steps_per_s": steps_per_s,
        "max_abs_error": err_cf,
        "error_reference": "closed form energy_b (paper 004, with decay), all members, all samples",
        "max_abs_dev_qbat": dev_qbat,
        "integrator": {"method": "Tsit5", "rtol": args.rtol, "atol": args.atol, "precision": "double",
                       "batching": "one dq.mesolve call, kets batched (members, 4, 1)"},
        "dynamiqs_version": dq.__version__,
        "jax_version": jax.__version__,
        "jax_devices": [str(d) for d in jax.devices()],
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "machine": {"processor": platform.processor(), "machine": platform.machine(),
                    "cpu_count": os.cpu_count(), "platform": platform.platform()},
    }

    print(f"job           : bloch-1k  ({m} of {total} members, one batched dq.mesolve call)")
    print(f"first call    : {first:.3f} s  (tracing + XLA compilation + run)")
    print(f"compiled call : {statistics.median(compiled):.3f} s median, {min(compiled):.3f} s min of {len(compiled)}")
    if nsteps is not None:
        print(f"solver steps  : {np.mean(nsteps):.0f} per member (mean)")
    print(f"max abs error : {err_cf:.3e}  [closed form]")
    if dev_qbat is not None:
        print(f"vs qbat-gpu   : {dev_qbat:.3e}  [max |energy_b - qbat-gpu's series.npy|]")
    print(f"integrator    : Tsit5, rtol={args.rtol:g}, atol={args.atol:g}, double precision")
    print(f"members       : {members_from}")
    print(f"versions      : dynamiqs {dq.__version__}, jax {jax.__version__} ({out['jax_devices'][0]}), numpy {np.__version__}")
    print(f"machine       : {out['machine']['processor'] or out['machine']['machine']}, {os.cpu_count()} CPUs")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
        print(f"json          : {args.json}")
    return out


if __name__ == "__main__":
    main()
