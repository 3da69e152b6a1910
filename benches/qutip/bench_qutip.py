#!/usr/bin/env python3
"""QuTiP 5 side of the qbat-gpu standard benchmark jobs (docs/interface.md).

Each ensemble member is one `qutip.mesolve` call; members are spread over worker
processes with `qutip.parallel_map`. Operators are built explicitly in the
project's convention (docs/physics.md): basis |0> = |g>, |1> = |e>,
sigma_- = |g><e|, sigma_z = |e><e| - |g><g|, sigma_y = -i(sigma_+ - sigma_-);
two-qubit order (charger, battery); cavity order (cell 1, cell 2, Fock n).

    python bench_qutip.py --job bloch-1k --workers 2 --json out.json
    python bench_qutip.py --job cavity-10k --members 200     # time a subset, extrapolate

The wall time covers the parallel_map over all members (worker start-up
included); imports, operator construction and the accuracy check are outside it.
"""

import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np

sys.dont_write_bytecode = True  # no __pycache__ left in benches/
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import bloch_job  # noqa: E402  (bloch-1k's operators, members and closed form)

try:
    import qutip
    from qutip import Qobj, mesolve, parallel_map, tensor, qeye
except ImportError:  # pragma: no cover - reported to the user
    sys.stderr.write(
        "error: QuTiP is not installed for this Python (%s).\n"
        "       pip install qutip   (or: bash benches/compare.sh --install)\n" % sys.executable
    )
    sys.exit(2)

JOBS = ("bloch-1k", "cavity-100", "cavity-10k", "dicke-1k")

# Integrator settings: scipy zvode 'adams' (mesolve's default method) with
# tolerances tightened so that bloch-1k meets the 1e-6 closed-form bound of
# docs/interface.md with margin.
DEFAULT_ATOL = 1e-10
DEFAULT_RTOL = 1e-8
# The accuracy reference for the cavity jobs (no closed form): the same
# members re-integrated with these much tighter tolerances.
REF_ATOL = 1e-13
REF_RTOL = 1e-12


# ---------------------------------------------------------------- operators

def qubit_ops(dtype):
    """sigma_-, sigma_+, sigma_z, sigma_x, sigma_y, identity in the (g, e) basis."""
    sm = Qobj(np.array([[0, 1], [0, 0]], dtype=complex))  # |g><e|
    sp = sm.dag()  # |e><g|
    sz = Qobj(np.diag([-1.0, 1.0]).astype(complex))  # |e><e| - |g><g|
    sx = sp + sm
    sy = -1j * (sp - sm)  # minus the textbook matrix in (g, e) order
    i2 = Qobj(np.eye(2, dtype=complex))
    return tuple(o.to(dtype) for o in (sm, sp, sz, sx, sy, i2))


def destroy_op(nf, dtype):
    """Truncated annihilation operator on Fock states |0>..|nf-1>."""
    a = np.zeros((nf, nf), dtype=complex)
    for n in range(1, nf):
        a[n - 1, n] = math.sqrt(n)
    return Qobj(a).to(dtype)


def bloch_setup(args):
    # operators, members and closed form shared with the dynamiqs bench (../bloch_job.py)
    cfg = bloch_job.read_config(args.config)
    h, jump, h_b = (Qobj(o, dims=[[2, 2], [2, 2]]).to(args.dtype) for o in bloch_job.operators(cfg))
    c_ops = [jump]  # H_B on the full space: Tr(rho H_B) = Tr(rho_b H_B)
    if args.qbat_out:
        theta, phi, qbat_energy, _ = bloch_job.qbat_members(args.qbat_out)
    else:
        theta, phi = bloch_job.numpy_angles(cfg["size"], args.seed)
        qbat_energy = None
    total = len(theta)
    idx = member_indices(total, args.members)
    psis = bloch_job.kets(theta[idx], phi[idx])
    states = [Qobj(psi, dims=[[2, 2], [1, 1]]).to(args.dtype) for psi in psis]
    tlist = bloch_job.times(cfg)
    values = [(int(i), s) for i, s in zip(idx, states)]
    shared = dict(h=h, c_ops=c_ops, e_ops=[h_b])
    meta = dict(params={k: cfg[k] for k in ("wb", "j", "gamma")}, seed=args.seed, total_members=total,
                theta=theta[idx].tolist(), phi=phi[idx].tolist(), cfg=cfg,
                qbat_energy=None if qbat_energy is None else qbat_energy[idx],
                members_from=f"qbat-gpu run {args.qbat_out}" if args.qbat_out else f"numpy.random.default_rng({args.seed})")
    return values, shared, tlist, meta


def cavity_setup(args, total):
    wc, wq, g, zeta, alpha, kappa, gamma, n_fock = 1.0, 1.0, 0.2, 0.5, 2.0, 0.1, 0.05, 20
    nf = n_fock + 1
    sm, sp, sz, sx, sy, i2 = qubit_ops(args.dtype)
    a = destroy_op(nf, args.dtype)
    iq, ia = i2, Qobj(np.eye(nf, dtype=complex)).to(args.dtype)
    op1 = lambda o: tensor(o, iq, ia)  # cell 1
    op2 = lambda o: tensor(iq, o, ia)  # cell 2
    A = tensor(iq, iq, a)
    sm1, sp1, sz1, sx1, sy1 = (op1(o) for o in (sm, sp, sz, sx, sy))
    sm2, sp2, sz2, sx2, sy2 = (op2(o) for o in (sm, sp, sz, sx, sy))
    h0 = (wc * A.dag() * A + (wq / 2) * (sz1 + sz2)
          + (g / 2) * ((1 + zeta) * sx1 * sx2 + (1 - zeta) * sy1 * sy2))
    h_int = sp1 * A + sm1 * A.dag()  # multiplied by lambda per member
    c_ops = [math.sqrt(kappa) * A, math.sqrt(gamma) * sm1, math.sqrt(gamma) * sm2]
    h_b = (wq / 2) * sz2
    # |g g> x |alpha>, coherent amplitudes truncated at n_fock and renormalised
    coh = np.array([math.exp(-abs(alpha) ** 2 / 2) * alpha ** n / math.sqrt(math.factorial(n))
                    for n in range(nf)], dtype=complex)
    coh /= np.linalg.norm(coh)
    g_ket = np.array([1.0, 0.0])
    psi0 = np.kron(np.kron(g_ket, g_ket), coh)  # index = (2 i1 + i2)(N+1) + n
    rho0 = Qobj(np.outer(psi0, psi0.conj()), dims=[[2, 2, nf], [2, 2, nf]]).to(args.dtype)
    e_b0 = float(np.real((rho0 * h_b).tr()))
    lambdas_all = np.linspace(0.5, 1.5, total)
    idx = member_indices(total, args.members)
    tlist = np.linspace(0.0, 10.0, 1001)
    values = [(int(i), float(lambdas_all[i])) for i in idx]
    shared = dict(h0=h0, h_int=h_int, c_ops=c_ops, e_ops=[h_b], rho0=rho0, e_b0=e_b0)
    meta = dict(params=dict(wc=wc, wq=wq, g=g, zeta=zeta, alpha=alpha, kappa=kappa, gamma=gamma,
                            n_fock=n_fock), total_members=total,
                lambdas=lambdas_all[idx].tolist(), energy_b0=e_b0)
    return values, shared, tlist, meta


def dicke_setup(args, total):
    """dicke-1k: N = 8 cells in the symmetric subspace (index k = excited cells, J_+ |k> =
    sqrt((k+1)(N-k)) |k+1>), cavity cut at n_fock = 24, H = wc a^+a + wa (J_z + N/2)
    + 2 g J_x (a + a^+), kappa D[a] + gamma D[J_-]; start |k = 0> x |8>; g swept."""
    n, n_fock, wc, wa, kappa, gamma = 8, 24, 1.0, 1.0, 0.05, 0.02
    nf = n_fock + 1
    jp = np.zeros((n + 1, n + 1), dtype=complex)
    for k in range(n):
        jp[k + 1, k] = math.sqrt((k + 1) * (n - k))
    Jp = tensor(Qobj(jp), Qobj(np.eye(nf, dtype=complex))).to(args.dtype)
    Jm = Jp.dag()
    nb = tensor(Qobj(np.diag(np.arange(n + 1)).astype(complex)), Qobj(np.eye(nf, dtype=complex))).to(args.dtype)
    A = tensor(Qobj(np.eye(n + 1, dtype=complex)), destroy_op(nf, "Dense")).to(args.dtype)
    h0 = wc * A.dag() * A + wa * nb
    h_int = (Jp + Jm) * (A + A.dag())  # 2 J_x (a + a^+), multiplied by g per member
    c_ops = [math.sqrt(kappa) * A, math.sqrt(gamma) * Jm]
    h_b = wa * nb
    psi0 = np.zeros((n + 1) * nf, dtype=complex)
    psi0[n] = 1.0  # k = 0, n = N photons: index k (n_fock + 1) + n
    rho0 = Qobj(np.outer(psi0, psi0.conj()), dims=[[n + 1, nf], [n + 1, nf]]).to(args.dtype)
    gs_all = np.linspace(0.02, 0.2, total)
    idx = member_indices(total, args.members)
    tlist = np.linspace(0.0, 10.0, 101)
    values = [(int(i), float(gs_all[i])) for i in idx]
    shared = dict(h0=h0, h_int=h_int, c_ops=c_ops, e_ops=[h_b], rho0=rho0, e_b0=0.0)
    meta = dict(params=dict(n_cells=n, n_fock=n_fock, wc=wc, wa=wa, kappa=kappa, gamma=gamma),
                total_members=total, lambdas=gs_all[idx].tolist(), energy_b0=0.0)
    return values, shared, tlist, meta


member_indices = bloch_job.member_indices


# ---------------------------------------------------------------- tasks (run in workers)

def bloch_task(value, shared, tlist, options):
    _, psi0 = value
    res = mesolve(shared["h"], psi0, tlist, c_ops=shared["c_ops"], e_ops=shared["e_ops"],
                  options=options)
    return np.real(np.asarray(res.expect[0]))


def cavity_task(value, shared, tlist, options):
    _, lam = value
    h = shared["h0"] + lam * shared["h_int"]
    res = mesolve(h, shared["rho0"], tlist, c_ops=shared["c_ops"], e_ops=shared["e_ops"],
                  options=options)
    return np.real(np.asarray(res.expect[0])) - shared["e_b0"]


# ---------------------------------------------------------------- driver

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--job", required=True, choices=JOBS)
    p.add_argument("--workers", type=int, default=2, help="parallel_map worker processes (default 2)")
    p.add_argument("--members", type=int, default=None,
                   help="time an evenly spread subset of this many members; the full-job wall time is extrapolated")
    p.add_argument("--json", default=None, help="write the figures to this JSON file")
    p.add_argument("--atol", type=float, default=DEFAULT_ATOL)
    p.add_argument("--rtol", type=float, default=DEFAULT_RTOL)
    p.add_argument("--method", default="adams", help="mesolve integrator (default: adams, mesolve's default)")
    p.add_argument("--dtype", default="CSR", help="QuTiP data layer of the operators: CSR (default) or Dense")
    p.add_argument("--seed", type=int, default=1, help="numpy RNG seed of the bloch states (default 1)")
    p.add_argument("--config", default=None,
                   help="bloch-1k: the job's TOML (`qbat-gpu bench bloch-1k --print-config`); default: its values")
    p.add_argument("--qbat-out", default=None,
                   help="bloch-1k: take the members (theta, phi) from this `qbat-gpu run --format npy` directory")
    p.add_argument("--no-check", action="store_true", help="skip the cavity accuracy re-run")
    args = p.parse_args(argv)

    if args.job == "bloch-1k":
        values, shared, tlist, meta = bloch_setup(args)
        task = bloch_task
    elif args.job == "dicke-1k":
        # the cavity task: h0 + value * h_int, energy_b - energy_b0 (= energy_b: cells start in |g>)
        values, shared, tlist, meta = dicke_setup(args, 1_000)
        task = cavity_task
    else:
        total = 100 if args.job == "cavity-100" else 10_000
        values, shared, tlist, meta = cavity_setup(args, total)
        task = cavity_task
    options = {"method": args.method, "atol": args.atol, "rtol": args.rtol, "nsteps": 100_000,
               "store_states": False, "store_final_state": False, "progress_bar": False}

    t0 = time.perf_counter()
    results = parallel_map(task, values, task_args=(shared, tlist, options),
                           map_kw={"num_cpus": args.workers}, progress_bar=None)
    wall = time.perf_counter() - t0
    series = np.array(results)  # (members, times)

    m = len(values)
    total = meta["total_members"]
    out = {
        "job": args.job,
        "members": m,
        "total_members": total,
        "member_indices": [v[0] for v in values] if m < total else None,
        "workers": args.workers,
        "wall_s": wall,
        "per_member_s": wall / m,
        "extrapolated_wall_s": wall / m * total,
        "samples": len(tlist),
        "t_end": float(tlist[-1]),
        "integrator": {"method": args.method, "atol": args.atol, "rtol": args.rtol, "data_layer": args.dtype},
        "qutip_version": qutip.__version__,
        "numpy_version": np.__version__,
        "scipy_version": __import__("scipy").__version__,
        "python_version": platform.python_version(),
        "machine": {"processor": platform.processor(), "machine": platform.machine(),
                    "cpu_count": os.cpu_count(), "platform": platform.platform()},
        "params": meta["params"],
    }
    if args.job == "bloch-1k":
        exact = bloch_job.closed_form(meta["theta"], tlist, meta["cfg"])
        out["max_abs_error"] = float(np.max(np.abs(series - exact)))
        out["error_reference"] = "closed form energy_b (paper 004, with decay), all members, all samples"
        out["seed"] = meta["seed"]
        out["members_from"] = meta["members_from"]
        if meta["qbat_energy"] is not None:
            out["max_abs_dev_qbat"] = float(np.max(np.abs(series - meta["qbat_energy"])))
        out["measure"] = "energy_b"
    else:
        k = min(4, m)
        out["measure"] = "stored_energy_b"
        out["energy_b0"] = meta["energy_b0"]
        out["lambdas"] = meta["lambdas"]  # dicke-1k: the couplings g
        out["sweep"] = "g" if args.job == "dicke-1k" else "lambda"
        out["times"] = tlist.tolist()
        out["series_first4"] = {"lambda": meta["lambdas"][:k], "stored_energy_b": series[:k].tolist()}
        if not args.no_check:
            ref_opts = dict(options, atol=REF_ATOL, rtol=REF_RTOL)
            ref = np.array([task(v, shared, tlist, ref_opts) for v in values[:k]])
            out["max_abs_error"] = float(np.max(np.abs(series[:k] - ref)))
            out["error_reference"] = (f"same members re-integrated with atol={REF_ATOL:g}, rtol={REF_RTOL:g}, "
                                      f"first {k} members")
        else:
            out["max_abs_error"] = None
            out["error_reference"] = "not checked (--no-check)"
        picks = {}
        for tt in (1.0, 5.0, 10.0):
            s = int(np.argmin(np.abs(tlist - tt)))
            picks[f"t={tt:g}"] = float(series[0, s])
        out["first_member_stored_energy_b"] = picks

    print(f"job           : {out['job']}  ({m} of {total} members, {args.workers} workers)")
    print(f"wall          : {wall:.3f} s  (parallel_map over all members)")
    print(f"per member    : {wall / m * 1e3:.3f} ms" + (f"  -> full job ~{out['extrapolated_wall_s']:.1f} s" if m < total else ""))
    err = out["max_abs_error"]
    print(f"max abs error : {err:.3e}  [{out['error_reference']}]" if err is not None else "max abs error : n/a")
    if out.get("max_abs_dev_qbat") is not None:
        print(f"vs qbat-gpu   : {out['max_abs_dev_qbat']:.3e}  [max |energy_b - qbat-gpu's series.npy|]")
    print(f"integrator    : mesolve {args.method}, atol={args.atol:g}, rtol={args.rtol:g}, data {args.dtype}")
    if "first_member_stored_energy_b" in out:
        pk = out["first_member_stored_energy_b"]
        print(f"member 0      : lambda={meta['lambdas'][0]:.6g}  stored_energy_b "
              + "  ".join(f"{k_}: {v:.10f}" for k_, v in pk.items()))
    print(f"versions      : qutip {out['qutip_version']}, numpy {out['numpy_version']}, scipy {out['scipy_version']}")
    print(f"machine       : {out['machine']['processor'] or out['machine']['machine']}, {out['machine']['cpu_count']} CPUs")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
        print(f"json          : {args.json}")
    return out


if __name__ == "__main__":
    main()
