"""qbat-gpu from Python: large ensembles of open quantum batteries (two qubits, and two cells
with a cavity mode), RK4 Lindblad on the GPU (wgpu) or a fast f64 CPU engine.

>>> import qbat_gpu as qb
>>> r = qb.run("examples/bloch-charger.toml", backend="cpu")     # or a dict, or TOML text
>>> ds = r.to_xarray()                                           # dims ("member", "time")
>>> ds.ergotropy_b.max("time").plot.line(x="theta")              # doctest: +SKIP

Main entry points: `run`, `study`, `open`, `merge`, `mesolve`, `measures` (batched measures of
given states), `models`, `measures_list`, `devices`. Errors: `ConfigError` (a ValueError whose
message names the field, as the CLI's), `DeviceError` (a RuntimeError), `RunError`.

The library's warnings (the CLI's ``WARNING: `` lines: a Fock cutoff too low, members left out
as unhealthy) are issued as `QbatWarning` (a UserWarning: ``warnings.filterwarnings`` takes
it), and its notes are written to ``sys.stderr``: in Jupyter both show in the cell.
`set_stderr_capture(False)` writes them to the process's stderr (fd 2) instead, as the CLI does.
"""

from __future__ import annotations

import atexit
import math
import numbers
import operator
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _native
from . import measures
from ._config import ConfigLike, config_error, config_text, dict_to_toml, flag, path_arg
from ._config import show as _show
from ._native import ConfigError, DeviceError, QbatWarning, RunError
from ._progress import finish, progress_for, relay, relayed, relayed_while
from ._signals import ending_by
from .result import Result

__version__ = _native.VERSION
__all__ = [
    "run", "study", "open", "merge", "mesolve", "measures", "models", "measures_list", "devices",
    "Result", "ConfigError", "DeviceError", "RunError", "QbatWarning", "dict_to_toml",
    "set_stderr_capture", "__version__",
]


def set_stderr_capture(on: bool) -> None:
    """Whether the library's notes and warnings are relayed through Python (on, from import:
    `QbatWarning` and ``sys.stderr``, which Jupyter shows in the cell) or written to the
    process's stderr, fd 2, as the CLI writes them (off)."""
    if not on:
        relay()
    _native.capture_stderr(bool(on))


set_stderr_capture(True)
# what a call outside the package's wrappers left queued is not lost at exit: written to fd 2
atexit.register(_native.capture_stderr, False)
# the per-process runtime directory made at the import (where the per-user one was taken) goes
# with the process, as the CLI's does
atexit.register(_native.remove_runtime_dir)


# Keyword checks: a wrong type is a ConfigError naming the keyword, not PyO3's bare
# TypeError/OverflowError (and a bool is not taken as 0 or 1).
def _boolish(v: Any) -> bool:
    """A bool of any library (Python's, numpy's, a bool array or tensor)."""
    return isinstance(v, (bool, np.bool_)) or getattr(getattr(v, "dtype", None), "kind", None) == "b" or "bool" in str(getattr(v, "dtype", ""))


def _uint(name: str, v: Any, optional: bool = False) -> Optional[int]:
    if v is None and optional:
        return None
    # any integer type (numpy's, a 0-d integer array: operator.index), never a bool
    try:
        n = None if _boolish(v) else operator.index(v)
    except TypeError:
        n = None
    if isinstance(n, bool):
        n = None
    if n is None or not 0 <= n < 2**64:
        raise config_error(name, f"must be an integer >= 0, got {_show(v)}")
    return n


def _ensemble(v: Any) -> Optional[int]:
    """The ensemble size: an integer (of any type, as `_uint`), or a real number that is a whole
    float (1e5, 4.0), read by ``ensemble.size``'s rules (the library's: from 1 to 1e9); a
    fraction is a ConfigError naming ``ensemble``."""
    if v is None:
        return None
    # any integer type (operator.index), never a bool; the range is the library's, and so are
    # the words where a u64 cannot carry the value there (below 0, 2**64 and more)
    try:
        n = None if _boolish(v) else operator.index(v)
    except TypeError:
        n = None
    if n is not None and not isinstance(n, bool):
        if n < 0:
            raise config_error("ensemble", f"must be an integer >= 1, got {n}")
        if n >= 2**64:
            raise config_error("ensemble", f"{n} members is more than 1e9")
        return n
    if _boolish(v) or isinstance(v, (str, bytes, complex)) or not hasattr(v, "__float__"):
        raise config_error("ensemble", f"must be an integer >= 1 (or a whole float: 1e5), got {_show(v)}")
    return _native.ensemble_float(_real("ensemble", v))


def _str(name: str, v: Any, optional: bool = False) -> Optional[str]:
    if v is None and optional:
        return None
    if not isinstance(v, str):
        raise config_error(name, f"must be a string, got {_show(v)}")
    return v


def _real(name: str, v: Any) -> float:
    # a real number of any type (Fraction, Decimal, numpy's, a 0-d array), never a bool
    real = isinstance(v, (numbers.Real, np.integer, np.floating)) or (isinstance(v, np.ndarray) and v.ndim == 0 and v.dtype.kind in "iuf")
    kind = getattr(getattr(v, "dtype", None), "kind", None)
    if not real and kind in (None, "i", "u", "f") and not isinstance(v, (complex, str, bytes)) and hasattr(v, "__float__"):
        real = True  # a decimal.Decimal, or a scalar of another array library
    if _boolish(v) or not real:
        raise config_error(name, f"must be a real number, got {_show(v)}")
    try:
        return float(v)
    except (TypeError, ValueError, OverflowError) as e:
        raise config_error(name, f"must be a real number, got {_show(v)} ({e})") from None


def _shard(v: Any) -> Optional[Tuple[int, int]]:
    if v is None:
        return None
    if not isinstance(v, (tuple, list, np.ndarray)) or len(v) != 2:
        raise config_error("shard", f"must be a pair (k, n) of integers (shard k of n, 0-based), got {_show(v)}")
    return (_uint("shard", v[0]), _uint("shard", v[1]))


def _names(name: str, v: Any) -> Optional[List[str]]:
    """None, one name, or a sequence of names."""
    if v is None:
        return None
    if isinstance(v, str):
        return [v]
    # any ordered iterable of names (a list, dict keys, a pandas Index), not bytes, nor a set
    # (its order, the columns', would change from one process to the next)
    try:
        ordered = hasattr(v, "__iter__") and not isinstance(v, (bytes, bytearray, set, frozenset))
        items = list(v) if ordered else None
    except TypeError:
        items = None
    if items is None or not all(isinstance(x, str) for x in items):
        raise config_error(name, f"must be a name or a list of names, got {_show(v)}")
    return [str(x) for x in items]


def run(
    config: ConfigLike,
    *,
    backend: str = "auto",
    precision: str = "f32",
    ensemble: Union[None, int, float] = None,
    seed: Optional[int] = None,
    verify: int = 8,
    adapter: Optional[str] = None,
    progress: bool = True,
    save_states: Optional[str] = None,
) -> Result:
    """Run a config in memory (no output directory) and return its `Result`.

    Parameters
    ----------
    config : dict, str or path
        A dict with the TOML's structure (``{"model": "bloch-charger", "params": {...},
        "time": {...}}``), a TOML string, or the path of a TOML file. See the README's config
        reference; ``qb.models()`` lists the parameters.
    backend : "auto" | "gpu" | "cpu" | "reference"
        "auto" takes a hardware GPU adapter when there is one, else the CPU engine (f64);
        a software adapter (lavapipe) only with backend="gpu".
    precision : "f32" | "f64"
        GPU precision (f64 needs an adapter with SHADER_F64). The CPU engine is f64.
    ensemble, seed : int, optional
        Override ``ensemble.size`` and ``ensemble.seed`` (the config's are still read: one that
        is no size or seed is a ConfigError naming it). ``ensemble`` may be a whole float
        (``1e5``, ``4.0``), as ``ensemble.size`` may; a fraction is a ConfigError.
    verify : int
        Members re-integrated on the f64 reference after a GPU run (deviations in ``info["verify"]``).
    adapter : str, optional
        GPU adapter by part of its name.
    progress : bool
        A progress bar of members done (with the elapsed time and an estimate of the time
        left): on stderr in a terminal, in the cell's output in Jupyter.
    save_states : None | "reduced" | "full"
        Also keep every member's state at every sample time, as ``qbat-gpu run --save-states``:
        ``Result.states`` is then a complex128 array (members, T, d, d) (the Rust buffer, no
        copy) and ``Result.states_info`` names its basis (what states.json holds). "reduced" is
        the two-qubit state the measures see (d = 4; cavity-cells: the cells with the cavity
        traced out; dicke: the cells on the symmetric subspace, d = N + 1); "full" the model's
        whole state (cavity-cells d = 4 (n_fock + 1); the two-qubit models are 4x4 either way).

    The GIL is released while the run goes. Ctrl-C cancels the run (the engines stop at their
    next member, slice of members, GPU chunk or block, within moments) and then raises
    KeyboardInterrupt; a second Ctrl-C raises at once without waiting. SIGTERM and SIGHUP (at
    their default action, on the main thread) stop it the same way and then end the process by
    the signal, as they end the CLI. The series (and the
    states) equal, bit for bit, those of ``qbat-gpu run`` with the same config and options.

    Raises ConfigError (bad config, naming the field), DeviceError (GPU), RunError (numerics).
    """
    text = config_text(config)
    backend, precision, adapter = _str("backend", backend), _str("precision", precision), _str("adapter", adapter, True)
    ensemble, seed, verify = _ensemble(ensemble), _uint("seed", seed, True), _uint("verify", verify)
    rust_bar, ticker = progress_for(progress, "run")
    with ending_by():
        try:
            native, series, states = _native.run(
                text, backend=backend, precision=precision, ensemble=ensemble, seed=seed, verify=verify,
                adapter=adapter, progress=rust_bar, ticker=ticker, save_states=save_states,
            )
        except BaseException:
            finish(ticker, failing=True)
            raise
        finish(ticker)
    return Result._from_native(native, series, states=states)


def study(
    config: ConfigLike,
    out: Union[str, "os.PathLike[str]"],
    *,
    shard: Optional[Tuple[int, int]] = None,
    resume: bool = False,
    series: bool = True,
    devices: Union[None, str, Sequence[str]] = None,
    format: str = "npy",
    block_members: Optional[int] = None,
    force: bool = False,
    plots: bool = True,
    on_device_loss: str = "cpu",
    allow_mixed_backends: bool = False,
    backend: str = "auto",
    precision: str = "f32",
    ensemble: Union[None, int, float] = None,
    seed: Optional[int] = None,
    verify: int = 8,
    adapter: Optional[str] = None,
    progress: bool = True,
    save_states: Optional[str] = None,
) -> Result:
    """The streamed, checkpointed run into the directory `out` (``qbat-gpu run --out``), for runs
    that do not fit in memory; returns ``qb.open(out)`` (the series memory-mapped).

    shard=(k, n) runs shard k of n (0-based): members [k M / n, (k + 1) M / n) with the seeds
    of the whole run; combine the shards with `merge`. resume=True continues the interrupted
    run of `out` from its checkpoint (same config and options). devices="all" or a list of
    adapter names spreads the blocks across several GPUs. The other options are those of `run`
    and of the CLI (format "npy" or "csv", block_members, force, plots, on_device_loss,
    allow_mixed_backends). save_states="reduced" or "full" also writes states.npy + states.json
    (``--save-states``), streamed and checkpointed like the series; the result's ``states`` is
    states.npy memory-mapped.
    """
    text = config_text(config)
    out = path_arg("out", out)
    resume, series, force, plots = flag("resume", resume), flag("series", series), flag("force", force), flag("plots", plots)
    allow_mixed_backends = flag("allow_mixed_backends", allow_mixed_backends)
    if devices is not None and not isinstance(devices, str):
        devices = ",".join(_names("devices", devices))
    backend, precision, adapter = _str("backend", backend), _str("precision", precision), _str("adapter", adapter, True)
    format, on_device_loss = _str("format", format), _str("on_device_loss", on_device_loss)
    ensemble, seed, verify = _ensemble(ensemble), _uint("seed", seed, True), _uint("verify", verify)
    block_members, shard = _uint("block_members", block_members, True), _shard(shard)
    rust_bar, ticker = progress_for(progress, "study")
    with ending_by():
        try:
            d = _native.study(
                text, out, shard=shard, resume=resume, series=series,
                format=format, devices=devices, block_members=block_members, force=force, plots=plots,
                on_device_loss=on_device_loss, allow_mixed_backends=allow_mixed_backends, backend=backend, precision=precision, ensemble=ensemble, seed=seed,
                verify=verify, adapter=adapter, progress=rust_bar, ticker=ticker, save_states=save_states,
            )
        except BaseException:
            finish(ticker, failing=True)
            raise
        finish(ticker)
    return Result._from_dir(d)


def open(dir: Union[str, "os.PathLike[str]"]) -> Result:  # noqa: A001 - the API's name
    """Read a run directory (written by the CLI, `study`, `merge` or `Result.save`; csv or npy).
    A series.npy is memory-mapped, and so is a states.npy (``--save-states``) as ``states``."""
    return Result._from_dir(path_arg("dir", dir))


def merge(dirs: Union[str, "os.PathLike[str]", Iterable[Union[str, "os.PathLike[str]"]]], out: Union[str, "os.PathLike[str]"], *, force: bool = False, plots: bool = True) -> Result:
    """Combine the N shard directories of a run (``study(..., shard=(k, N))``) into `out`
    (``qbat-gpu merge``): series, summary and statistics equal those of the unsharded run bit for
    bit, and so are their saved states (states.npy). Missing, duplicated or foreign shards are
    refused. Returns ``qb.open(out)``. One directory (a str or path) is a list of one."""
    if isinstance(dirs, (str, bytes, os.PathLike)):
        dirs = [dirs]
    try:
        dirs = list(dirs)
    except TypeError:
        raise config_error("dirs", f"must be a directory or a list of them, got {_show(dirs)}") from None
    dirs = [path_arg(f"dirs[{k}]", x) for k, x in enumerate(dirs)]
    out, force, plots = path_arg("out", out), flag("force", force), flag("plots", plots)
    with ending_by():
        d = relayed_while(_native.merge, dirs, out, force=force, plots=plots)
    return Result._from_dir(d)


_SZ = np.diag([-1.0, 1.0]).astype(np.complex128)


def _ket_or_dm(a: np.ndarray) -> np.ndarray:
    if a.ndim >= 2 and a.shape[-2:] == (4, 1):
        a = a[..., 0]
    elif a.ndim >= 2 and a.shape[-2:] == (4, 4):
        return a
    if a.shape[-1:] != (4,):
        raise config_error("rho0", f"must be density matrices (..., 4, 4) or kets (..., 4), got shape {a.shape}")
    # (the projectors of the distinct kets, broadcast back: a broadcast view stays one)
    from .measures import distinct

    c = distinct(a)
    return np.broadcast_to(c[..., :, None] * np.conj(c[..., None, :]), a.shape + (4,))


def _complex(name: str, x: Any) -> np.ndarray:
    """A copy of `x` as complex128, of its own shape: a broadcast view stays one
    (`measures.complex_entries`), and a batch it makes too large is refused before it is built."""
    from .measures import as_array, complex_entries

    # (qutip's superoperators are 4x4 for one qubit: one given as an operator would be
    # integrated as something it is not, where qutip.mesolve takes it as a Liouvillian)
    pieces = x if isinstance(x, (list, tuple)) else [x]
    if any(getattr(q, "issuper", False) is True for q in pieces):
        raise config_error(name, "is a superoperator (a qutip.Qobj of type 'super'): give the operator itself, (..., 4, 4), as qb.mesolve builds the Lindbladian")
    # (a vectorised operator, qutip's operator-ket or -bra, is a one-qubit density matrix as a
    # column: taken as a two-qubit ket, it would be another state)
    if any(getattr(q, "isoperket", False) is True or getattr(q, "isoperbra", False) is True for q in pieces):
        wanted = "the state as a ket (4,) or a density matrix (4, 4)" if name == "rho0" else "the operator itself"
        raise config_error(name, f"is a vectorised operator (a qutip.Qobj of type 'operator-ket' or 'operator-bra'): give {wanted}")
    try:
        a = as_array(x)
    except (TypeError, ValueError) as e:
        raise config_error(name, f"must be numbers (an array or a qutip.Qobj) ({e})") from None
    return complex_entries(name, a)


def _one_axis(x: Any) -> bool:
    try:
        return np.ndim(x) == 1
    except ValueError:  # a ragged list
        return False


def _time_dependent(H: Any) -> bool:
    """QuTiP's time-dependent forms: a QobjEvo, or a list [H0, [H1, coeff], ...]."""
    if type(H).__name__ == "QobjEvo":
        return True
    return isinstance(H, (list, tuple)) and any(
        # (a Qobj is callable too: a coefficient is a callable that is not an operator)
        isinstance(e, (list, tuple)) and len(e) == 2 and (hasattr(e[0], "full") or isinstance(e[0], np.ndarray)) and not hasattr(e[1], "full")
        and (isinstance(e[1], str) or callable(e[1]) or _one_axis(e[1]))
        for e in H
    )


def mesolve(
    H: Any,
    jump_ops: Sequence[Any],
    rho0: Any,
    tsave: Any,
    *,
    dt: float,
    h_battery: Any = None,
    h_charger: Any = None,
    measures: Union[None, str, Sequence[str]] = None,
    backend: str = "auto",
    precision: Optional[str] = None,
    verify: int = 8,
    progress: bool = False,
) -> Result:
    """Integrate batches of custom two-qubit open systems, straight from arrays (the
    ``two-qubit`` model without a config), with fixed-step RK4 of step `dt`.

    Parameters
    ----------
    H : array (..., 4, 4) or qutip.Qobj
        Hamiltonians, basis |gg>, |ge>, |eg>, |ee> (charger left, battery right, |g> = 0).
        Constant: a time-dependent H (QobjEvo, [H0, [H1, coeff]]) is refused; drives go in a
        two-qubit config's [[drive]] tables (`run`).
    jump_ops : list of arrays (..., 4, 4)
        Jump operators already scaled by sqrt(rate) (the QuTiP/dynamiqs convention):
        each adds D[L] rho = L rho L^+ - {L^+ L, rho}/2.
    rho0 : array (..., 4, 4) density matrices, or kets (..., 4) / (..., 4, 1)
        Initial states at t = 0 (a qutip bra is refused: pass its ket).
    tsave : array (T,)
        Increasing real sample times, each 0 or at least 1.2e-38 (a single number is one
        sample); the integration starts at t = 0 and lands on each
        exactly.
    dt : float
        RK4 step (checked against RK4 stability for each Hamiltonian and jump set).
    h_battery, h_charger : array (2, 2), optional
        The local Hamiltonians the battery measures use (default: sigma_z = diag(-1, 1)).
    measures : str or list of str, optional
        A measure name or a list of them (default: every two-qubit measure;
        ``qb.measures_list()``).
    backend : "auto" | "gpu" | "cpu" | "reference"
    precision : "f32" | "f64", optional
        GPU precision (default f32 on a GPU; the CPU engine and the reference are f64).

    Leading dimensions of H, each jump operator and rho0 broadcast together (as dynamiqs does
    with ``cartesian_batching=False``); the members are the broadcast batch in C order, and
    ``Result.batch_shape`` holds its shape. A ``qutip.Qobj`` (or a list of them) is accepted
    wherever an array is.
    """
    if _time_dependent(H):
        raise config_error("H", "mesolve takes a constant H (..., 4, 4), not a time-dependent one (QobjEvo, [H0, [H1, coeff]]): give drives as [[drive]] tables of a two-qubit config and run it with qb.run")
    if jump_ops is None or isinstance(jump_ops, (str, bytes)) or hasattr(jump_ops, "full") or not hasattr(jump_ops, "__iter__"):
        raise config_error("jump_ops", f"must be a list of operators (..., 4, 4) ([] for none), got {_show(jump_ops)}")
    if getattr(rho0, "isbra", False) or (isinstance(rho0, (list, tuple)) and any(getattr(q, "isbra", False) for q in rho0)):
        raise config_error("rho0", "is a bra (a qutip.Qobj of shape (1, 4)), not a state: pass the ket (rho0.dag()) or a density matrix")
    dt, verify = _real("dt", dt), _uint("verify", verify)
    backend, precision, measures = _str("backend", backend), _str("precision", precision, True), _names("measures", measures)
    h = _complex("H", H)
    if h.ndim < 2 or h.shape[-2:] != (4, 4):
        raise config_error("H", f"must have shape (..., 4, 4), got {h.shape}")
    jumps = [_complex(f"jump_ops[{k}]", L) for k, L in enumerate(jump_ops)]
    for k, L in enumerate(jumps):
        if L.ndim < 2 or L.shape[-2:] != (4, 4):
            raise config_error(f"jump_ops[{k}]", f"must have shape (..., 4, 4), got {L.shape}")
    rho = _ket_or_dm(_complex("rho0", rho0))
    # parameter points: the broadcast of H and the jump operators; members: that with rho0
    try:
        point_shape = np.broadcast_shapes(h.shape[:-2], *[L.shape[:-2] for L in jumps])
        batch_shape = np.broadcast_shapes(point_shape, rho.shape[:-2])
    except ValueError as e:
        raise config_error("H", f"the leading dimensions of H, jump_ops and rho0 do not broadcast ({e})") from None
    # (Python's integers: a product of large axes must not wrap)
    n_points, n_members = math.prod(point_shape), math.prod(batch_shape)
    if n_members > 10**9:
        raise config_error("rho0", f"H, jump_ops and rho0 broadcast to {' x '.join(map(str, batch_shape))} = {n_members} members, more than 1e9")
    if n_members:  # (an empty batch is refused, naming H, as it is built)
        relayed(_native.check_batch_arrays, n_points, len(jumps), n_members)
    hs = np.ascontiguousarray(np.broadcast_to(h, point_shape + (4, 4)).reshape(n_points, 16))
    if jumps:
        js = np.stack([np.broadcast_to(L, point_shape + (4, 4)).reshape(n_points, 16) for L in jumps], axis=1)
    else:
        js = np.zeros((n_points, 0, 16), dtype=np.complex128)
    js = np.ascontiguousarray(js)
    member_point = np.ascontiguousarray(np.broadcast_to(np.arange(n_points, dtype=np.uint64).reshape(point_shape), batch_shape).reshape(-1))
    rhos = np.ascontiguousarray(np.broadcast_to(rho, batch_shape + (4, 4)).reshape(-1, 16))
    hb = np.ascontiguousarray(_SZ if h_battery is None else _complex("h_battery", h_battery))
    hc = np.ascontiguousarray(_SZ if h_charger is None else _complex("h_charger", h_charger))
    for name, m in (("h_battery", hb), ("h_charger", hc)):
        if m.shape != (2, 2):
            raise config_error(name, f"must be 2x2, got shape {m.shape}")
    try:
        t = np.asarray(tsave)
    except (TypeError, ValueError) as e:
        raise config_error("tsave", f"sample times must be real numbers ({e})") from None
    if np.iscomplexobj(t):
        raise config_error("tsave", f"sample times must be real, got a complex array ({t.dtype})")
    # one axis of numbers (a single time is one sample): a 2-D array is not flattened, nor a
    # text converted
    if t.ndim == 0:
        t = t.reshape(1)
    if t.ndim != 1:
        raise config_error("tsave", f"must be a 1-D array (T,) or a list of sample times, got shape {t.shape}")
    if t.dtype.kind not in "iuf":
        raise config_error("tsave", f"sample times must be real numbers, got {t.dtype} entries")
    t = np.ascontiguousarray(t, dtype=np.float64)
    if precision is None:
        precision = "f64" if backend in ("cpu", "reference") else "f32"
    rust_bar, ticker = progress_for(progress, "mesolve")
    with ending_by():
        try:
            native, series, _ = _native.mesolve(
                hs, js, len(jumps), member_point, rhos, t, dt, hb, hc,
                measures=measures, backend=backend, precision=precision,
                verify=verify, progress=rust_bar, ticker=ticker, batch_shape=list(batch_shape),
            )
        except BaseException:
            finish(ticker, failing=True)
            raise
        finish(ticker)
    return Result._from_native(native, series)


def models() -> List[Dict[str, Any]]:
    """Every model: name, paper, hamiltonian, coupling (what [protocol] switch_off turns off),
    and params (name, default, doc), as ``qbat-gpu models``."""
    return relayed(_native.models)


def measures_list() -> List[Dict[str, str]]:
    """Every output measure: name, scope (which models) and doc, as ``qbat-gpu measures``."""
    return relayed(_native.measures_list)


def devices() -> List[Dict[str, Any]]:
    """The GPU adapters found: name, type, backend, driver and f64 (SHADER_F64 support).
    Runs with backend="auto" go to the CPU engine unless one is a hardware adapter
    (type other than "Cpu")."""
    return relayed(_native.devices)
