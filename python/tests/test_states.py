"""save_states: the sampled density matrices of qb.run / qb.study / qb.open / qb.merge, checked
against the physics (Hermitian, unit trace, energy_b and photon_number recomputed from the
states with operators built here from docs/physics.md's conventions) and against the states.npy
and states.json that `qbat-gpu run --save-states` writes."""

from __future__ import annotations

import json

import numpy as np
import pytest

import qbat_gpu as qb
from conftest import BLOCH, SPIN_PAIR, run_cli

# docs/physics.md: (g, e) basis with g = 0, sigma_z = diag(-1, 1), n = |e><e|; two-qubit order
# (charger, battery) with the battery the right Kronecker factor.
I2 = np.eye(2)
SZ = np.diag([-1.0, 1.0])
N_EXC = np.diag([0.0, 1.0])

ENERGY = '\n[output]\nmeasures = ["energy_b", "stored_energy_b", "purity"]\n'

# cavity-cells with a small Fock space: (cell 1, cell 2, Fock n) basis, index (2 i1 + i2)(N + 1) + n
N_FOCK = 4
CAVITY = f"""
model = "cavity-cells"
[params]
wc = 1.0
wq = 1.0
lambda = 0.8
g = 0.2
zeta = {{ values = [0.0, 1.0] }}
kappa = 0.05
gamma = 0.02
alpha = [0.7, 0.0]
n_fock = {N_FOCK}
[time]
dt = 0.01
t_end = 2.0
samples = 11
[output]
measures = ["energy_b", "photon_number", "trace_error"]
"""

# dicke: the cells on the symmetric subspace, k = 0..N excited cells, index k (n_fock + 1) + n
N_CELLS, DICKE_FOCK, WA = 3, 4, 1.3
DICKE = f"""
model = "dicke"
[params]
n_cells = {N_CELLS}
n_fock = {DICKE_FOCK}
wa = {WA}
wc = 1.0
g = {{ values = [0.1, 0.3] }}
kappa = 0.02
gamma = 0.01
[time]
dt = 0.01
t_end = 2.0
samples = 11
[output]
measures = ["energy_b", "photon_number"]
"""


def same_complex_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit for bit, real and imaginary parts (also -0.0 against 0.0)."""
    a = np.ascontiguousarray(a, dtype=np.complex128)
    b = np.ascontiguousarray(b, dtype=np.complex128)
    return a.shape == b.shape and np.array_equal(a.view(np.uint64), b.view(np.uint64))


def cli_states(qbat_bin, cfg, out, kind, *extra):
    run_cli(qbat_bin, "run", str(cfg), "--out", str(out), "--format", "npy", "--no-plots", "--no-progress", "--save-states", kind, *extra)
    return np.load(out / "states.npy"), json.loads((out / "states.json").read_text())


def check_density_matrices(states: np.ndarray, tol: float = 1e-12) -> None:
    assert states.dtype == np.complex128
    herm = np.abs(states - np.conj(np.swapaxes(states, -1, -2))).max()
    assert herm <= tol, f"largest |rho - rho^+| = {herm:.3e}"
    trace = np.trace(states, axis1=-2, axis2=-1)
    assert np.abs(trace - 1.0).max() <= tol
    # positive semidefinite up to RK4's step error (RK4 does not preserve positivity) or f32
    assert np.linalg.eigvalsh(states).min() >= -max(tol, 1e-8)


def battery_state(rho4: np.ndarray) -> np.ndarray:
    """Partial trace over the charger (left factor) of (..., 4, 4) states."""
    r = rho4.reshape(rho4.shape[:-2] + (2, 2, 2, 2))
    return np.einsum("...aiaj->...ij", r)


@pytest.mark.parametrize(
    "text, h_battery",
    [(BLOCH + ENERGY, 1.0 * N_EXC), (SPIN_PAIR + ENERGY, 1.0 * SZ)],
    ids=["bloch-charger", "spin-pair"],
)
def test_states_are_density_matrices_and_give_energy_b(text, h_battery):
    # bloch-charger: H_B = wb s+_b s-_b; spin-pair: H_B = wb sz_b (wb = 1 in both configs),
    # on the battery, the right Kronecker factor
    h_b = np.kron(I2, h_battery)
    r = qb.run(text, backend="cpu", progress=False, save_states="reduced")
    m, t, _ = r.series.shape
    assert r.states.shape == (m, t, 4, 4)
    check_density_matrices(r.states)
    energy = np.einsum("mtij,ji->mt", r.states, h_b)
    assert np.abs(energy.imag).max() <= 1e-12
    np.testing.assert_allclose(energy.real, r["energy_b"], rtol=0, atol=1e-12)
    # stored_energy_b is relative to t = 0, and purity is Tr(rho^2) of the same state
    np.testing.assert_allclose(energy.real - energy.real[:, :1], r["stored_energy_b"], rtol=0, atol=1e-12)
    purity = np.einsum("mtij,mtji->mt", r.states, r.states).real
    np.testing.assert_allclose(purity, r["purity"], rtol=0, atol=1e-12)
    # the same battery energy from the reduced battery state
    rho_b = battery_state(r.states)
    np.testing.assert_allclose(np.einsum("mtij,ji->mt", rho_b, h_battery).real, r["energy_b"], rtol=0, atol=1e-12)
    assert r.states_info["dim"] == 4 and r.states_info["kind"] == "reduced"
    assert r.states_info["members"] == [int(i) for i in r.member_ids]
    np.testing.assert_array_equal(r.states_info["times"], r.times)
    # the buffer Rust filled, not a copy
    assert not r.states.flags["OWNDATA"] and r.states.base is not None and r.states.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("text", [BLOCH, SPIN_PAIR], ids=["bloch-charger", "spin-pair"])
def test_run_states_equal_the_cli_states_bit_for_bit(tmp_path, qbat_bin, text):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(text)
    want, want_info = cli_states(qbat_bin, cfg, tmp_path / "cli", "reduced", "--backend", "cpu")
    r = qb.run(cfg, backend="cpu", progress=False, save_states="reduced")
    assert same_complex_bits(r.states, want)
    assert r.states_info == want_info
    # Result.save writes the CLI's files byte for byte
    out = r.save(tmp_path / "saved", plots=False)
    for name in ("states.npy", "states.json"):
        assert (out / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), f"{name} differs from the CLI's"


def test_cavity_reduced_and_full_states(tmp_path, qbat_bin):
    reduced = qb.run(CAVITY, backend="cpu", progress=False, save_states="reduced")
    full = qb.run(CAVITY, backend="cpu", progress=False, save_states="full")
    m, t, _ = reduced.series.shape
    d = 4 * (N_FOCK + 1)
    assert reduced.states.shape == (m, t, 4, 4)
    assert full.states.shape == (m, t, d, d)
    assert full.states_info["dim"] == d and full.states_info["kind"] == "full"
    assert reduced.states_info["dim"] == 4 and reduced.states_info["kind"] == "reduced"
    check_density_matrices(reduced.states)
    check_density_matrices(full.states)
    # the cavity traced out of the full state is the reduced state (same integration)
    f6 = full.states.reshape(m, t, 4, N_FOCK + 1, 4, N_FOCK + 1)
    np.testing.assert_allclose(np.einsum("mtinjn->mtij", f6), reduced.states, rtol=0, atol=1e-13)
    # photon number Tr(rho a^+ a) from the full state; energy_b with H_B = (wq/2) sz on cell 2
    n_op = np.kron(np.eye(4), np.diag(np.arange(N_FOCK + 1, dtype=float)))
    photons = np.einsum("mtij,ji->mt", full.states, n_op).real
    np.testing.assert_allclose(photons, full["photon_number"], rtol=0, atol=1e-12)
    energy = np.einsum("mtij,ji->mt", reduced.states, np.kron(I2, 0.5 * SZ)).real
    np.testing.assert_allclose(energy, reduced["energy_b"], rtol=0, atol=1e-12)
    # both equal the CLI's states.npy bit for bit
    cfg = tmp_path / "cav.toml"
    cfg.write_text(CAVITY)
    for kind, r in (("reduced", reduced), ("full", full)):
        want, want_info = cli_states(qbat_bin, cfg, tmp_path / kind, kind, "--backend", "cpu")
        assert same_complex_bits(r.states, want), kind
        assert r.states_info == want_info


def test_dicke_reduced_and_full_states():
    reduced = qb.run(DICKE, backend="cpu", progress=False, save_states="reduced")
    full = qb.run(DICKE, backend="cpu", progress=False, save_states="full")
    m, t, _ = reduced.series.shape
    k, n = N_CELLS + 1, DICKE_FOCK + 1
    assert reduced.states.shape == (m, t, k, k)
    assert full.states.shape == (m, t, k * n, k * n)
    check_density_matrices(reduced.states)
    check_density_matrices(full.states)
    np.testing.assert_allclose(np.einsum("mtanbn->mtab", full.states.reshape(m, t, k, n, k, n)), reduced.states, rtol=0, atol=1e-13)
    # H_B = wa (J_z + N/2): wa k on |k>;  a^+ a: n on |n>
    energy = np.einsum("mtkk,k->mt", reduced.states, WA * np.arange(k)).real
    np.testing.assert_allclose(energy, reduced["energy_b"], rtol=0, atol=1e-12)
    photons = np.einsum("mtii,i->mt", full.states, np.tile(np.arange(n, dtype=float), k)).real
    np.testing.assert_allclose(photons, full["photon_number"], rtol=0, atol=1e-12)


def test_gpu_states_equal_the_cli_and_full_cavity_is_refused(tmp_path, qbat_bin):
    """On a GPU adapter (lavapipe in CI): the f32 kernel's states, as the CLI's; the GPU cavity
    engine keeps only the reduced state, so "full" on it is a ConfigError naming save_states."""
    if not qb.devices():
        pytest.skip("no GPU adapter")
    cfg = tmp_path / "b.toml"
    cfg.write_text(BLOCH)
    want, want_info = cli_states(qbat_bin, cfg, tmp_path / "cli", "reduced", "--backend", "gpu", "--verify", "0")
    r = qb.run(cfg, backend="gpu", verify=0, progress=False, save_states="reduced")
    assert r.info["backend"] == "gpu"
    assert same_complex_bits(r.states, want)
    assert r.states_info == want_info
    check_density_matrices(r.states, tol=1e-5)
    with pytest.raises(qb.ConfigError) as e:
        qb.run(CAVITY, backend="gpu", progress=False, save_states="full")
    assert e.value.field == "save_states"


def test_study_open_and_merge_keep_the_states(tmp_path):
    whole = qb.run(SPIN_PAIR, backend="cpu", progress=False, save_states="reduced")
    # streamed in blocks of 5 members: states.npy assembled block by block
    s = qb.study(SPIN_PAIR, tmp_path / "study", backend="cpu", progress=False, plots=False, block_members=5, save_states="reduced")
    assert isinstance(s.states, np.memmap)
    assert same_complex_bits(s.states, whole.states)
    assert s.states_info == whole.states_info
    o = qb.open(tmp_path / "study")
    assert same_complex_bits(o.states, whole.states)
    # shards merged: the states of the whole run
    shards = [
        qb.study(SPIN_PAIR, tmp_path / f"shard{k}", shard=(k, 3), backend="cpu", progress=False, plots=False, save_states="reduced")
        for k in range(3)
    ]
    assert sum(len(x.states) for x in shards) == len(whole.states)
    merged = qb.merge([x.dir for x in shards], tmp_path / "merged", plots=False)
    assert same_complex_bits(merged.states, whole.states)
    assert merged.states_info == whole.states_info


def test_without_save_states_there_are_none(tmp_path):
    r = qb.run(BLOCH, backend="cpu", progress=False)
    assert r.states is None and r.states_info is None
    s = qb.study(BLOCH, tmp_path / "s", backend="cpu", progress=False, plots=False)
    assert s.states is None and s.states_info is None
    assert not (tmp_path / "s" / "states.npy").exists()


@pytest.mark.parametrize("bad", ["fulll", True, 1, ""])
def test_bad_save_states_is_a_config_error(tmp_path, bad):
    with pytest.raises(qb.ConfigError) as e:
        qb.run(BLOCH, backend="cpu", progress=False, save_states=bad)
    assert e.value.field == "save_states" and "save_states" in str(e.value)
    with pytest.raises(qb.ConfigError) as e:
        qb.study(BLOCH, tmp_path / "s", backend="cpu", progress=False, save_states=bad)
    assert e.value.field == "save_states"
    assert not (tmp_path / "s").exists()
