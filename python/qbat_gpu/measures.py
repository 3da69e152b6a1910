"""Battery and correlation measures of given states, batched over leading dimensions.

The same Rust code as the engines' measures (f64, nalgebra), applied in parallel. States are
numpy arrays (or ``qutip.Qobj``) of shape (..., 4, 4) for two-qubit density matrices in the
``two-qubit`` model's basis |gg>, |ge>, |eg>, |ee> (charger left, battery right; |g> = index 0),
and (..., d, d) for a battery state with its Hamiltonian. Each returns an array of shape (...)
(a float for a single state).

Each state must be a density matrix: finite, Hermitian to 1e-5 of its largest entry, of trace 1
to within 1e-3 and with no eigenvalue below -1e-3 (the health tolerances of an f32 run: any
state a healthy run saved, complex64 rounding included, is measured). Anything else is a
ConfigError naming the argument and the state's index in the batch (``rho[3]: is not a density
matrix: its trace is 2.000000000 ...``).

>>> import qbat_gpu as qb, numpy as np
>>> bell = np.zeros((4, 4)); bell[1, 1] = bell[2, 2] = bell[1, 2] = bell[2, 1] = 0.5
>>> float(qb.measures.concurrence(bell))
1.0
"""

from __future__ import annotations

import numbers
import re
from typing import Any

import numpy as np

from . import _native
from ._config import config_error
from ._native import ConfigError

__all__ = [
    "concurrence", "steering_f3", "steering_ab", "steering_ba", "bell_chsh", "coherence_l1",
    "imaginarity_l1", "purity", "entropy_b", "texture_b", "ergotropy", "antiergotropy", "capacity",
]


def _qobj(x: Any) -> bool:
    return hasattr(x, "full") and callable(x.full)


def as_array(x: Any) -> np.ndarray:
    """A numpy array from an array-like or a ``qutip.Qobj`` (through ``.full()``), or a list
    of them (Qobj and arrays mixed; of one shape)."""
    if _qobj(x):
        return np.asarray(x.full())
    if isinstance(x, (list, tuple)) and any(_qobj(q) for q in x):
        return np.stack([np.asarray(q.full()) if _qobj(q) else np.asarray(q) for q in x])
    return np.asarray(x)


def distinct(a: np.ndarray) -> np.ndarray:
    """`a` without the axes a broadcast view repeats (stride 0): each such axis cut to length 1,
    so that `np.broadcast_to(f(distinct(a)), ...)` of an elementwise f is f(a) without
    building it."""
    return _cut(a, _repeated([a], a.ndim))


def _number(x: Any) -> bool:
    """A number an object array may hold: Python's and numpy's (np.bool_ too), and a 0-d array
    of them."""
    if isinstance(x, np.ndarray) and x.ndim == 0:
        return x.dtype.kind in "biufc" or (x.dtype.kind == "O" and _number(x[()]))
    return isinstance(x, (numbers.Number, np.bool_))


def complex_entries(arg: str, a: np.ndarray) -> np.ndarray:
    """`a` as complex128, of its own shape, where its entries are numbers: text, bytes, dates
    and records are refused naming `arg`, as is an object array of anything else. A copy, but
    of the distinct entries alone: a broadcast view (np.broadcast_to) stays one, so that a batch
    it makes too large can be refused by its shape before it is built."""
    if a.dtype.kind not in "biufcO":
        raise config_error(arg, f"must be numbers, got {a.dtype} entries")
    # (an array of 0 dimensions, None's too, is cut to its one entry: kept an array)
    entries = np.asarray(distinct(a))
    # (numpy reads the text "0" of an object array, a pandas column's, as the number 0)
    if a.dtype.kind == "O":
        for x in entries.flat:
            if not _number(x):
                raise config_error(arg, f"must be numbers, got a {type(x).__name__} entry")
    try:
        return np.broadcast_to(np.array(entries, dtype=np.complex128), a.shape)
    except (TypeError, ValueError, OverflowError) as e:
        raise config_error(arg, f"must be numbers ({e})") from None


def _argument(arg: str, x: Any) -> np.ndarray:
    """`as_array` of the argument `arg`, as complex128, its failure a ConfigError naming it."""
    try:
        a = as_array(x)
    except (TypeError, ValueError) as e:
        raise config_error(arg, f"must be an array of matrices of one shape (or qutip.Qobj) ({e})") from None
    return complex_entries(arg, a)


def _repeated(arrays, nlead: int) -> list:
    """The leading axes (of the first `nlead`) that every array of `arrays` repeats (stride 0,
    as np.broadcast_to makes them): the measure of one entry along them stands for all."""
    return [k for k in range(nlead) if all(a.shape[k] > 1 and a.strides[k] == 0 for a in arrays)]


def _cut(a: np.ndarray, axes: list) -> np.ndarray:
    """`a` with each axis of `axes` cut to its first entry."""
    return a[tuple(slice(0, 1) if k in axes else slice(None) for k in range(a.ndim))]


def _measure_distinct(measure, a: np.ndarray, lead: tuple, repeated: list) -> np.ndarray:
    """`measure(flat)` of the states `a` (lead + (d, d)) cut to one along each axis of
    `repeated`, back in the batch's shape: a broadcast (read-only) view where they repeated, so
    that a view of 1e10 copies of one state is measured once, not copied (numpy's MemoryError).
    A refusal of state i of the cut batch names it as the caller's batch counts it (the first
    of its repeats)."""
    a = _cut(a, repeated)
    cut_lead, d = a.shape[:-2], a.shape[-1]
    flat = np.ascontiguousarray(a.reshape(-1, d * d), dtype=np.complex128)
    try:
        out = measure(flat).reshape(cut_lead)
    except ConfigError as e:
        m = re.fullmatch(r"(rho|rho_b|h)\[(\d+)\]", getattr(e, "field", "") or "")
        if not repeated or m is None:
            raise
        i = int(np.ravel_multi_index(np.unravel_index(int(m[2]), cut_lead), lead))
        raise config_error(f"{m[1]}[{i}]", str(e)[len(e.field) + 2:]) from None
    return np.broadcast_to(out, lead) if repeated else out


def _state(name: str, rho: Any):
    a = _argument("rho", rho)
    if a.ndim < 2 or a.shape[-2:] != (4, 4):
        raise config_error("rho", f"{name} takes states of shape (..., 4, 4), got {a.shape}")
    lead = a.shape[:-2]
    out = _measure_distinct(lambda flat: _native.state_measure(name, flat), a, lead, _repeated([a], len(lead)))
    return float(out) if out.ndim == 0 else out


def _battery(name: str, rho_b: Any, h: Any):
    a = _argument("rho_b", rho_b)
    hh = _argument("h", h)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2] or a.shape[-1] == 0:
        raise config_error("rho_b", f"{name} takes battery states of shape (..., d, d), d >= 1, got {a.shape}")
    d = a.shape[-1]
    if hh.ndim < 2 or hh.shape[-2:] != (d, d):
        raise config_error("h", f"must be (..., {d}, {d}) like rho_b, got {hh.shape}")
    if hh.ndim == 2:
        lead = a.shape[:-2]
        repeated = _repeated([a], len(lead))
        hs = np.ascontiguousarray(hh.reshape(-1), dtype=np.complex128)
    else:
        try:
            lead = np.broadcast_shapes(a.shape[:-2], hh.shape[:-2])
        except ValueError:
            raise config_error("h", f"its leading shape {hh.shape[:-2]} does not broadcast with rho_b's {a.shape[:-2]}") from None
        a = np.broadcast_to(a, lead + (d, d))
        hh = np.broadcast_to(hh, lead + (d, d))
        repeated = _repeated([a, hh], len(lead))
        hh = _cut(hh, repeated)
        hs = np.ascontiguousarray(hh.reshape(-1, d * d), dtype=np.complex128)
    out = _measure_distinct(lambda flat: _native.battery_measure(name, flat, hs, d), a, lead, repeated)
    return float(out) if out.ndim == 0 else out


def concurrence(rho):
    """Wootters concurrence of two-qubit states (..., 4, 4)."""
    return _state("concurrence", rho)


def steering_f3(rho):
    """Tr(T T^T) - 1, T the correlation matrix of two-qubit states (..., 4, 4)."""
    return _state("steering_f3", rho)


def steering_ab(rho):
    """LOO steering charger -> battery (paper 002) of two-qubit states (..., 4, 4)."""
    return _state("steering_ab", rho)


def steering_ba(rho):
    """LOO steering battery -> charger (paper 002) of two-qubit states (..., 4, 4)."""
    return _state("steering_ba", rho)


def bell_chsh(rho):
    """2 sqrt(u1 + u2) - 2, u the two largest eigenvalues of T^T T, for states (..., 4, 4)."""
    return _state("bell_chsh", rho)


def coherence_l1(rho):
    """sum_{i != j} |rho_ij| of two-qubit states (..., 4, 4)."""
    return _state("coherence_l1", rho)


def imaginarity_l1(rho):
    """sum_{i != j} |Im rho_ij| of two-qubit states (..., 4, 4)."""
    return _state("imaginarity_l1", rho)


def purity(rho):
    """Tr rho^2 of two-qubit states (..., 4, 4)."""
    return _state("purity", rho)


def entropy_b(rho):
    """-Tr rho_b log2 rho_b (bits) of the battery (right qubit) of states (..., 4, 4)."""
    return _state("entropy_b", rho)


def texture_b(rho):
    """(1/2) ||rho_b - |+><+| ||_tr of the battery (right qubit) of states (..., 4, 4)."""
    return _state("texture_b", rho)


def ergotropy(rho_b, h):
    """Ergotropy Tr(rho_b h) - sum_i eps_i lam_{d-1-i} of battery states (..., d, d) against h (d, d) or (..., d, d)."""
    return _battery("ergotropy", rho_b, h)


def antiergotropy(rho_b, h):
    """Antiergotropy Tr(rho_b h) - sum_i eps_i lam_i (<= 0) of battery states (..., d, d)."""
    return _battery("antiergotropy", rho_b, h)


def capacity(rho_b, h):
    """Battery capacity sum_i eps_i (lam_i - lam_{d-1-i}) of battery states (..., d, d) against h."""
    return _battery("capacity", rho_b, h)
