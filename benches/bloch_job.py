"""The bloch-1k job as the Python peers see it (QuTiP, dynamiqs): NumPy only.

Shared by `qutip/bench_qutip.py` and `dynamiqs/bench_dynamiqs.py`, so both integrate the same
members with the same operators and check them against the same closed form.

Convention (docs/physics.md): |0> = |g>, |1> = |e>, sigma_- = |g><e| = [[0, 1], [0, 0]];
two-qubit order (charger, battery), the charger the left Kronecker factor.

    H   = wb (s+_c s-_c + s+_b s-_b) + j (s+_c s-_b + s-_c s+_b)
    L   = sqrt(gamma) s-_c                  (charger decay)
    H_B = wb s+_b s-_b                      (energy_b = Tr(rho H_B))
    |psi0> = (cos(theta/2)|g> + e^{i phi} sin(theta/2)|e>)_c x |g>_b

The job's parameters come from `qbat-gpu bench bloch-1k --print-config` (a TOML file), or
from the defaults below, which are that file's values.
"""

import csv
import json
import math
import os

import numpy as np

# `qbat-gpu bench bloch-1k --print-config`
DEFAULTS = dict(wb=1.0, j=1.0, gamma=0.05, dt=0.01, t_end=20.0, samples=2001, size=1000, seed=1)


def read_config(path=None):
    """The job's parameters: DEFAULTS, overridden by a printed config file when given."""
    cfg = dict(DEFAULTS)
    if path is None:
        return cfg
    import tomllib  # Python >= 3.11

    with open(path, "rb") as f:
        t = tomllib.load(f)
    if t.get("model") != "bloch-charger" or t.get("initial", {}).get("random") != "bloch":
        raise SystemExit(f"error: {path}: not a bloch-charger job with random = \"bloch\"")
    p, tm, en = t.get("params", {}), t.get("time", {}), t.get("ensemble", {})
    for k in ("wb", "j", "gamma"):
        cfg[k] = float(p.get(k, cfg[k]))
    cfg["dt"] = float(tm.get("dt", cfg["dt"]))
    cfg["t_end"] = float(tm.get("t_end", cfg["t_end"]))
    cfg["samples"] = int(tm.get("samples", cfg["samples"]))
    cfg["size"] = int(en.get("size", cfg["size"]))
    cfg["seed"] = int(en.get("seed", cfg["seed"]))
    return cfg


def times(cfg):
    return np.linspace(0.0, cfg["t_end"], cfg["samples"])


def member_indices(total, members):
    """All members, or an evenly spread subset of `members` of them (first and last included)."""
    if members is None or members >= total:
        return np.arange(total)
    if members < 1:
        raise SystemExit("error: --members must be >= 1")
    return np.unique(np.round(np.linspace(0, total - 1, members)).astype(int))


def numpy_angles(total, seed):
    """Bloch angles uniform on the sphere from numpy.random.default_rng(seed): theta =
    arccos(1 - 2u), phi = 2 pi v. Not qbat-gpu's own draw (see qbat_members for that)."""
    rng = np.random.default_rng(seed)
    u, v = rng.random(total), rng.random(total)
    return np.arccos(1.0 - 2.0 * u), 2.0 * np.pi * v


def qbat_members(out_dir):
    """The members of a finished `qbat-gpu run --format npy` of the job: theta and phi from
    summary.csv (written exactly, docs/interface.md), energy_b (members x samples) from
    series.npy and the times from series.json."""
    theta, phi = [], []
    with open(os.path.join(out_dir, "summary.csv"), newline="") as f:
        for row in csv.DictReader(f):
            theta.append(float(row["theta"]))
            phi.append(float(row["phi"]))
    meta = json.load(open(os.path.join(out_dir, "series.json")))
    col = meta["measures"].index("energy_b")
    energy = np.load(os.path.join(out_dir, "series.npy"))[:, :, col]  # (members, samples, measures)
    return np.array(theta), np.array(phi), np.asarray(energy, dtype=float), np.array(meta["times"])


def operators(cfg):
    """H, the jump operator L and H_B as dense 4x4 complex NumPy matrices."""
    sm = np.array([[0, 1], [0, 0]], dtype=complex)  # |g><e|
    i2 = np.eye(2, dtype=complex)
    sm_c, sm_b = np.kron(sm, i2), np.kron(i2, sm)
    sp_c, sp_b = sm_c.conj().T, sm_b.conj().T
    wb, j, gamma = cfg["wb"], cfg["j"], cfg["gamma"]
    h = wb * (sp_c @ sm_c + sp_b @ sm_b) + j * (sp_c @ sm_b + sm_c @ sp_b)
    jump = math.sqrt(gamma) * sm_c
    h_b = wb * sp_b @ sm_b
    return h, jump, h_b


def kets(theta, phi):
    """Initial kets, shape (members, 4, 1): charger on the Bloch sphere, battery |g>."""
    theta, phi = np.asarray(theta, dtype=float), np.asarray(phi, dtype=float)
    out = np.zeros((len(theta), 4, 1), dtype=complex)
    out[:, 0, 0] = np.cos(theta / 2)  # |g g>
    out[:, 2, 0] = np.exp(1j * phi) * np.sin(theta / 2)  # |e g>: charger excited (left factor)
    return out


def closed_form(theta, tlist, cfg):
    """energy_b(t) = wb s^2 (j/G)^2 sin^2(G t) e^{-gamma t/2}, s = sin(theta/2),
    G = sqrt(j^2 - gamma^2/16) (paper 004 with charger decay, wb = wc)."""
    wb, j, gamma = cfg["wb"], cfg["j"], cfg["gamma"]
    G = math.sqrt(j * j - gamma * gamma / 16)
    s2 = np.sin(np.asarray(theta) / 2) ** 2
    t = np.asarray(tlist)
    return wb * s2[:, None] * (j / G) ** 2 * np.sin(G * t)[None, :] ** 2 * np.exp(-gamma * t / 2)[None, :]
