"""qb.measures against QuTiP and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import qutip

import qbat_gpu as qb

# Pauli matrices (any consistent set: the closed forms below are basis-independent)
SX = np.array([[0, 1], [1, 0]], dtype=complex)
SY = np.array([[0, -1j], [1j, 0]], dtype=complex)
SZ = np.array([[1, 0], [0, -1]], dtype=complex)


def random_mixed(rng, n, dim=4, rank=None):
    """n random density matrices (Ginibre, rank `rank`)."""
    rank = rank or dim
    g = rng.normal(size=(n, dim, rank)) + 1j * rng.normal(size=(n, dim, rank))
    rho = g @ np.conj(np.swapaxes(g, 1, 2))
    return rho / np.trace(rho, axis1=1, axis2=2)[:, None, None]


def test_concurrence_equals_qutip_on_random_mixed_states():
    rng = np.random.default_rng(1)
    rhos = random_mixed(rng, 400)  # full rank (Ginibre): a real mix of entangled and separable states
    got = qb.measures.concurrence(rhos)
    assert got.shape == (400,)
    want = np.array([qutip.concurrence(qutip.Qobj(r, dims=[[2, 2], [2, 2]])) for r in rhos])
    assert np.max(np.abs(got - want)) < 1e-9
    assert (want > 1e-3).sum() > 50 and (want == 0).sum() > 50  # entangled and separable states


def test_concurrence_of_pure_states_equals_the_closed_form():
    # C(psi) = 2 |a_gg a_ee - a_ge a_eg|. (QuTiP's concurrence is off by ~2e-8 on rank-deficient
    # states: it takes square roots of eigenvalues that are rounding noise around 0.)
    rng = np.random.default_rng(7)
    psi = rng.normal(size=(200, 4)) + 1j * rng.normal(size=(200, 4))
    psi /= np.linalg.norm(psi, axis=1)[:, None]
    rhos = np.einsum("ni,nj->nij", psi, psi.conj())
    exact = 2 * np.abs(psi[:, 0] * psi[:, 3] - psi[:, 1] * psi[:, 2])
    assert np.max(np.abs(qb.measures.concurrence(rhos) - exact)) < 1e-12


def test_batching_and_qobj_inputs():
    rng = np.random.default_rng(2)
    rhos = random_mixed(rng, 12).reshape(3, 4, 4, 4)
    got = qb.measures.purity(rhos)
    assert got.shape == (3, 4)
    want = np.einsum("...ij,...ji->...", rhos, rhos).real
    assert np.max(np.abs(got - want)) < 1e-12
    q = qutip.rand_dm([2, 2], seed=3)
    assert abs(qb.measures.concurrence(q) - qutip.concurrence(q)) < 1e-9
    assert isinstance(qb.measures.purity(q), float)


def test_reduced_state_measures_against_qutip():
    rng = np.random.default_rng(3)
    for rho in random_mixed(rng, 20):
        q = qutip.Qobj(rho, dims=[[2, 2], [2, 2]])
        rb = q.ptrace(1)  # the battery is the right qubit
        assert abs(qb.measures.entropy_b(rho) - qutip.entropy_vn(rb, base=2)) < 1e-9
        off = rho - np.diag(np.diag(rho))
        assert abs(qb.measures.coherence_l1(rho) - np.abs(off).sum()) < 1e-12
        assert abs(qb.measures.imaginarity_l1(rho) - np.abs(off.imag).sum()) < 1e-12
        plus = qutip.Qobj(np.full((2, 2), 0.5))
        assert abs(qb.measures.texture_b(rho) - 0.5 * (rb - plus).norm("tr")) < 1e-9


def test_correlation_measures_of_werner_states():
    # Werner state p |psi-><psi-| + (1 - p) I/4: T = -p I, so steering_f3 = 3p^2 - 1,
    # bell_chsh = 2 sqrt(2) p - 2, concurrence = max(0, (3p - 1)/2).
    psi = np.array([0, 1, -1, 0]) / np.sqrt(2)
    for p in np.linspace(0, 1, 11):
        rho = p * np.outer(psi, psi) + (1 - p) * np.eye(4) / 4
        assert abs(qb.measures.steering_f3(rho) - (3 * p * p - 1)) < 1e-12
        assert abs(qb.measures.bell_chsh(rho) - (2 * np.sqrt(2) * p - 2)) < 1e-12
        assert abs(qb.measures.concurrence(rho) - max(0.0, (3 * p - 1) / 2)) < 1e-9
        # symmetric state: both steering directions agree
        assert abs(qb.measures.steering_ab(rho) - qb.measures.steering_ba(rho)) < 1e-9


def bloch(rho):
    return np.array([np.trace(rho @ s).real for s in (SX, SY, SZ)])


def test_ergotropy_antiergotropy_capacity_closed_forms_for_a_qubit():
    # h = e I + (D/2) n.sigma, rho = (I + r.sigma)/2: ergotropy = (D/2)(r.n + |r|),
    # antiergotropy = (D/2)(r.n - |r|), capacity = D |r|.
    rng = np.random.default_rng(4)
    rhos = random_mixed(rng, 200, dim=2, rank=2)
    rhos[:20] = random_mixed(rng, 20, dim=2, rank=1)  # pure states too
    n = rng.normal(size=3)
    n /= np.linalg.norm(n)
    e, gap = 0.3, 1.7
    h = e * np.eye(2) + (gap / 2) * (n[0] * SX + n[1] * SY + n[2] * SZ)
    r = np.array([bloch(x) for x in rhos])
    rn, rr = r @ n, np.linalg.norm(r, axis=1)
    assert np.max(np.abs(qb.measures.ergotropy(rhos, h) - gap / 2 * (rn + rr))) < 1e-12
    assert np.max(np.abs(qb.measures.antiergotropy(rhos, h) - gap / 2 * (rn - rr))) < 1e-12
    assert np.max(np.abs(qb.measures.capacity(rhos, h) - gap * rr)) < 1e-12
    # one Hamiltonian per state (broadcast)
    hs = np.stack([h * (1 + k / 10) for k in range(5)])
    got = qb.measures.capacity(rhos[:5], hs)
    assert np.max(np.abs(got - gap * (1 + np.arange(5) / 10) * rr[:5])) < 1e-12


def test_ergotropy_of_a_qutrit_against_its_definition():
    rng = np.random.default_rng(5)
    rho = random_mixed(rng, 1, dim=3)[0]
    h = np.diag([0.0, 1.0, 2.5])
    lam = np.sort(np.linalg.eigvalsh(rho))[::-1]
    passive = (lam * np.array([0.0, 1.0, 2.5])).sum()
    assert abs(qb.measures.ergotropy(rho, h) - (np.trace(rho @ h).real - passive)) < 1e-12


def test_measure_input_errors():
    with pytest.raises(ValueError):
        qb.measures.concurrence(np.eye(2))
    with pytest.raises(qb.ConfigError, match="Hermitian"):
        qb.measures.concurrence(np.triu(np.ones((4, 4))) / 4)


def test_measures_refuse_states_that_are_not_density_matrices():
    """A state of trace 2 gave concurrence 2.0 (only |entries| <= 1 was checked): a state whose
    trace is not 1, that is not Hermitian or not positive beyond the measures' tolerance, or
    has a non-finite entry is a ConfigError naming the argument and the state's index in the
    batch, on one line. States within the tolerance (complex64 rounding, a healthy f32 run's
    drift) are measured."""
    bell = np.zeros((4, 4), dtype=complex)
    bell[1, 1] = bell[2, 2] = bell[1, 2] = bell[2, 1] = 0.5
    nonherm = bell.copy()
    nonherm[0, 3] = 0.01
    nonpos = np.diag([0.6, 0.5, -0.1, 0.0]).astype(complex)
    nan = bell.copy()
    nan[0, 0] = np.nan
    for bad, what in ((2 * bell, "trace"), (0.5 * bell, "trace"), (nonherm, "Hermitian"), (nonpos, "positive"), (nan, "finite")):
        for name in ("concurrence", "purity", "entropy_b", "steering_f3"):
            with pytest.raises(qb.ConfigError) as e:
                getattr(qb.measures, name)(np.stack([bell, bell, bad]))
            assert e.value.field == "rho[2]" and what in str(e.value) and "\n" not in str(e.value), (name, what, str(e.value))
    rho_b = np.diag([0.3, 0.7]).astype(complex)
    for bad in (2 * rho_b, np.diag([1.2, -0.2]).astype(complex)):
        with pytest.raises(qb.ConfigError) as e:
            qb.measures.ergotropy(np.stack([rho_b, bad]), np.diag([0.0, 1.0]))
        assert e.value.field == "rho_b[1]", str(e.value)
    # complex64 rounding and a trace drift of 1e-4 are within the tolerance
    rng = np.random.default_rng(3)
    g = rng.normal(size=(50, 4, 4)) + 1j * rng.normal(size=(50, 4, 4))
    rho = g @ np.conj(np.swapaxes(g, 1, 2))
    rho /= np.trace(rho, axis1=1, axis2=2)[:, None, None]
    f32 = rho.astype(np.complex64)
    assert np.allclose(qb.measures.concurrence(f32), qb.measures.concurrence(rho), atol=1e-5)
    assert abs(qb.measures.purity(bell * (1 + 1e-4)) - 1.0) < 1e-3
