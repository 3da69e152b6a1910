"""qb.mesolve against QuTiP's mesolve: a driven, decaying two-qubit battery."""

from __future__ import annotations

import numpy as np
import pytest
import qutip

import qbat_gpu as qb

# Basis |gg>, |ge>, |eg>, |ee> (charger left, battery right, |g> = index 0): in QuTiP,
# basis(2, 0) = |g> and destroy(2) = |g><e| = sigma_-.
SM = qutip.destroy(2)
SZ = qutip.Qobj(np.diag([-1.0, 1.0]))  # |e><e| - |g><g|
SX = SM + SM.dag()
I2 = qutip.qeye(2)

WC, WB, G, GAMMA_B, GAMMA_C = 1.0, 1.1, 0.4, 0.05, 0.02


def hamiltonian(f):
    """Charger (left) and battery (right), exchange coupling G, charger driven with strength f."""
    return (
        WC / 2 * qutip.tensor(SZ, I2)
        + WB / 2 * qutip.tensor(I2, SZ)
        + G * (qutip.tensor(SM.dag(), SM) + qutip.tensor(SM, SM.dag()))
        + f * qutip.tensor(SX, I2)
    )


C_OPS = [np.sqrt(GAMMA_B) * qutip.tensor(I2, SM), np.sqrt(GAMMA_C) * qutip.tensor(SM, I2)]
HB = WB / 2 * SZ
HC = WC / 2 * SZ
TSAVE = np.linspace(0.0, 6.0, 31)
MEASURES = ["energy_b", "energy_c", "purity", "concurrence", "coherence_l1", "ergotropy_b", "trace_error"]


def qutip_measures(states):
    out = {m: [] for m in MEASURES}
    for rho in states:
        rb, rc = rho.ptrace(1), rho.ptrace(0)
        full = rho.full()
        off = full - np.diag(np.diag(full))
        out["energy_b"].append(qutip.expect(HB, rb))
        out["energy_c"].append(qutip.expect(HC, rc))
        out["purity"].append((rho * rho).tr().real)
        out["concurrence"].append(qutip.concurrence(rho))
        out["coherence_l1"].append(np.abs(off).sum())
        # ergotropy of a qubit against h = (WB/2) sz: (WB/2)(z + |r|)
        r = np.array([qutip.expect(s, rb) for s in (SX, 1j * (SM - SM.dag()), SZ)]).real
        out["ergotropy_b"].append(WB / 2 * (r[2] + np.linalg.norm(r)))
        out["trace_error"].append(abs(rho.tr() - 1))
    return {m: np.array(v) for m, v in out.items()}


def qutip_solve(f, rho0):
    opts = {"atol": 1e-13, "rtol": 1e-12, "nsteps": 100000}
    return qutip.mesolve(hamiltonian(f), rho0, TSAVE, c_ops=C_OPS, options=opts).states


def initial_states():
    g, e = qutip.basis(2, 0), qutip.basis(2, 1)
    plus = (g + e).unit()
    ket = qutip.tensor(plus, g)
    mixed = 0.7 * qutip.ket2dm(qutip.tensor(e, g)) + 0.3 * qutip.ket2dm(qutip.tensor(g, plus))
    return ket, mixed


def test_mesolve_equals_qutip_on_the_cpu_engine_in_f64():
    ket, mixed = initial_states()
    drives = [0.0, 0.3, 0.7]
    H = np.stack([hamiltonian(f).full() for f in drives])[:, None]  # (3, 1, 4, 4)
    # rho0 batch (2,): one ket (as a dm) and one mixed state; broadcast with H -> (3, 2)
    rho0 = np.stack([qutip.ket2dm(ket).full(), mixed.full()])
    r = qb.mesolve(H, [L.full() for L in C_OPS], rho0, TSAVE, dt=1e-3, h_battery=HB.full(), h_charger=HC.full(),
                   measures=MEASURES, backend="cpu", precision="f64")
    assert r.batch_shape == (3, 2)
    assert r.series.shape == (6, len(TSAVE), len(MEASURES))
    assert r.info["backend"] == "cpu" and r.info["precision"] == "f64"
    assert np.array_equal(r.times, TSAVE)
    worst = 0.0
    for i, f in enumerate(drives):
        for j, start in enumerate((qutip.ket2dm(ket), mixed)):
            want = qutip_measures(qutip_solve(f, start))
            member = i * 2 + j
            for k, m in enumerate(MEASURES):
                err = np.max(np.abs(r.series[member, :, k] - want[m]))
                assert err < 1e-8, f"{m} (drive {f}, state {j}): {err:.2e}"
                worst = max(worst, err)
    assert worst > 0  # a real comparison, not two copies


def test_mesolve_kets_qobj_and_default_measures():
    ket, _ = initial_states()
    Hq = hamiltonian(0.3)
    # a Qobj H, Qobj jump operators and a Qobj ket: one member
    r = qb.mesolve(Hq, C_OPS, ket, TSAVE, dt=1e-3, h_battery=HB, h_charger=HC, backend="cpu")
    assert r.batch_shape == ()
    assert r.series.shape[0] == 1
    assert set(MEASURES) <= set(r.measures)
    want = qutip_measures(qutip_solve(0.3, qutip.ket2dm(ket)))
    for m in ("energy_b", "purity"):
        assert np.max(np.abs(r[m][0] - want[m])) < 1e-8
    # kets as (..., 4): three copies of the ket give three equal members
    kets = np.repeat(ket.full()[:, 0][None], 3, axis=0)
    r3 = qb.mesolve(Hq.full(), [L.full() for L in C_OPS], kets, TSAVE, dt=1e-3, h_battery=HB.full(), h_charger=HC.full(), backend="cpu")
    assert r3.batch_shape == (3,)
    assert np.array_equal(r3.series[0], r3.series[2])
    assert np.array_equal(r3.series[0], r.series[0])
    ds = r3.to_xarray()
    assert ds.sizes["member"] == 3


def test_mesolve_errors_name_the_argument():
    ket, _ = initial_states()
    H = hamiltonian(0.3).full()
    with pytest.raises(qb.ConfigError, match=r"^H\[0\]: must be Hermitian"):
        qb.mesolve(H + np.triu(np.ones((4, 4)), 1), [], ket, TSAVE, dt=1e-3, backend="cpu")
    with pytest.raises(qb.ConfigError, match=r"^dt: "):
        qb.mesolve(H, [], ket, TSAVE, dt=5.0, backend="cpu")
    with pytest.raises(qb.ConfigError, match=r"^rho0\[0\]: must have unit trace"):
        qb.mesolve(H, [], 2 * qutip.ket2dm(ket).full(), TSAVE, dt=1e-3, backend="cpu")
    with pytest.raises(qb.ConfigError, match=r"^measures: "):
        qb.mesolve(H, [], ket, TSAVE, dt=1e-3, measures=["nope"], backend="cpu")
    with pytest.raises(qb.ConfigError, match="broadcast"):
        qb.mesolve(np.stack([H, H]), [np.stack([H, H, H])], ket, TSAVE, dt=1e-3, backend="cpu")


def test_mesolve_takes_one_measure_name_as_a_string():
    """measures="energy_b" is one measure (as in QuTiP and dynamiqs), not its characters."""
    ket, _ = initial_states()
    H = hamiltonian(0.3).full()
    one = qb.mesolve(H, [], ket, TSAVE, dt=1e-3, measures="energy_b", backend="cpu")
    listed = qb.mesolve(H, [], ket, TSAVE, dt=1e-3, measures=["energy_b"], backend="cpu")
    assert one.measures == ("energy_b",)
    assert np.array_equal(one.series, listed.series)


@pytest.mark.parametrize(
    "tsave",
    [TSAVE.astype(np.complex128), TSAVE + 1j, [0.0, 1.0 + 0.5j], ["0", "one"]],
    ids=["complex-array", "complex-imaginary", "complex-list", "text"],
)
def test_mesolve_refuses_tsave_that_is_not_real(tsave):
    """A complex tsave is refused (its imaginary part is not dropped), as other bad times are."""
    ket, _ = initial_states()
    H = hamiltonian(0.3).full()
    with pytest.raises(qb.ConfigError, match=r"^tsave: "):
        qb.mesolve(H, [], ket, tsave, dt=1e-3, backend="cpu")


def test_mesolve_on_the_default_backend_is_close():
    """backend="auto" (a GPU in f32 where there is one): within f32 tolerances of the CPU engine."""
    ket, _ = initial_states()
    args = (hamiltonian(0.3).full(), [L.full() for L in C_OPS], ket.full(), TSAVE)
    kw = dict(dt=1e-3, h_battery=HB.full(), h_charger=HC.full(), measures=["energy_b", "purity"])
    a = qb.mesolve(*args, backend="auto", verify=1, **kw)
    b = qb.mesolve(*args, backend="cpu", **kw)
    assert np.max(np.abs(a.series - b.series)) < 1e-4


def test_mesolve_on_f32_gpu_names_a_hamiltonian_beyond_f32():
    """An H that f32 cannot hold (1e39) is refused on the f32 GPU kernels naming H, not the
    config field the batch is built into, before any work."""
    if not qb.devices():
        pytest.skip("no GPU adapter")
    ket, _ = initial_states()
    H = hamiltonian(0.3).full() * 1e39
    tsave = np.array([0.0, 1e-37])
    with pytest.raises(qb.ConfigError, match=r"^H: ") as e:
        qb.mesolve(H, [], ket, tsave, dt=1e-39, backend="gpu", precision="f32", verify=0)
    assert e.value.field == "H" and e.value.exit_code == 2
