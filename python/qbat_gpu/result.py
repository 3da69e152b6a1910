"""`qb.Result`: a run's values and tables, in memory (`qb.run`, `qb.mesolve`) or read from a
run directory (`qb.open`, `qb.study`, `qb.merge`)."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import stat
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np

from . import _native
from ._config import config_error, flag, path_arg
from ._progress import relayed, relayed_while
from ._signals import ending_by

HEALTH_NAMES = {0.0: "ok", 1.0: "nonfinite", 2.0: "trace", 3.0: "nonpositive"}


# The files a Result reads (at its opening, or later: summary, stats, save).
_RUN_FILES = {"run.json", "summary.csv", "stats.csv", "series.npy", "series.json", "series.csv", "states.npy", "states.json"}


def _read_manifest(d: Path) -> Optional[tuple]:
    """What identifies the run in d: its manifest's entries (name, size, hash) of the files a
    Result reads, not those `qbat-gpu analyze` adds later (analysis.csv, its plots). None where
    the manifest is gone, not a regular file (never waiting on a FIFO) or not readable."""
    try:
        with open(d / ".qbat-manifest.json", "rb", opener=lambda p, flags: os.open(p, flags | getattr(os, "O_NONBLOCK", 0))) as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return None
            files = json.loads(f.read(64 << 20))["files"]
        return tuple(sorted((e["name"], e["bytes"], e["blake3"]) for e in files if e["name"] in _RUN_FILES))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _pandas():
    try:
        import pandas as pd
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("Result.summary and Result.stats need pandas: pip install pandas") from e
    return pd


class Result:
    """The values of a run and its description.

    Attributes
    ----------
    times : numpy.ndarray, shape (T,)
        Sample times.
    measures : tuple of str
        Measure names, the last axis of ``series``.
    series : numpy.ndarray, shape (members, T, K), float64
        Every measure of every member at every sample. For in-memory runs it is the Rust
        buffer itself (no copy); for run directories it is memory-mapped from series.npy
        (or read from series.csv). None when the run wrote no series.
    expect : numpy.ndarray, shape (members, K, T)
        ``series`` in the QuTiP/dynamiqs order (a view, no copy).
    member_ids : numpy.ndarray, shape (members,)
        Member ids (the seeds' index; a shard holds a contiguous range).
    params : dict of str to numpy.ndarray (members,)
        The swept or drawn parameters of each member (and theta/phi where they apply).
    summary, stats : pandas.DataFrame
        summary.csv and stats.csv, exactly as the CLI writes them (pandas required).
    health : numpy.ndarray of str, shape (members,)
        "ok", "nonfinite", "trace" or "nonpositive" per member.
    info : dict
        The run.json content.
    dir : pathlib.Path or None
        The run directory this result was read from (None in memory).
    batch_shape : tuple or None
        For `qb.mesolve`: the broadcast batch shape of the members (series.reshape(batch_shape + (T, K))),
        kept in run.json (``config.mesolve.batch_shape``), so a saved and opened result has it too.
    states : numpy.ndarray, shape (members, T, d, d), complex128, or None
        With ``save_states``: every member's density matrix at every sample time. For in-memory
        runs it is the Rust buffer itself (no copy); for run directories it is memory-mapped
        from states.npy. None when the run saved no states.
    states_info : dict or None
        What states.json says of ``states``: "kind" ("reduced" or "full"), "dim" (d), "basis"
        (the tensor factors, slowest first, e.g. ["charger (cell 1): g, e", "battery (cell 2):
        g, e"]: index 2 * charger + battery with g = 0), "axes", "members" and "times".
    """

    def __init__(self) -> None:
        self._native = None
        self.dir: Optional[Path] = None
        self.batch_shape: Optional[Tuple[int, ...]] = None
        self.states: Optional[np.ndarray] = None
        self.states_info: Optional[Dict[str, Any]] = None
        self._summary_text: Optional[str] = None
        self._summary_path: Optional[Path] = None
        self._stats_path: Optional[Path] = None
        # the run directory's manifest as opened: its files read later must still be that run's
        self._manifest: Optional[tuple] = None

    # ----- construction
    @classmethod
    def _from_native(cls, native, series: np.ndarray, states: Optional[np.ndarray] = None) -> "Result":
        r = cls()
        r._native = native
        r.series = series
        r.states = states
        info = native.states_json()
        r.states_info = json.loads(info) if info is not None else None
        r.times = native.times
        r.measures = tuple(native.measures)
        r.member_ids = native.member_ids
        r.params = _params(native.param_columns, native.param_values, native.theta_phi)
        r.health = np.array([HEALTH_NAMES.get(float(c), "?") for c in native.health_codes], dtype=object)
        r.info = json.loads(native.run_json())
        r.batch_shape = _batch_shape(r.info, len(r.member_ids), "run.json")
        return r

    @classmethod
    def _from_dir(cls, path) -> "Result":
        d = Path(path)
        if not (d / "run.json").is_file():
            hint = ""
            partial = d.parent / f".{d.name}.partial"
            if (partial / "qbat-staging").is_file():
                hint = f"; it has an interrupted run ({partial}): continue it with qb.study(..., resume=True)"
            raise FileNotFoundError(f"{d} is not a qbat-gpu run directory (no run.json){hint}")
        # Only the files the run wrote are read, each checked against the manifest's size and
        # hash first: an edited, truncated or replaced one (a FIFO, a link to /dev/zero) is
        # refused, naming it, and a file the manifest does not list is not the run's.
        # (read before the files are verified: a run that replaces this one meanwhile is then
        # told apart at the next read, never recorded as the one verified)
        # (on a thread of its own, as a save: a commit into `d` meanwhile is waited for, said
        # while it waits, and Ctrl-C stops the wait)
        manifest = _read_manifest(d)
        listed = set(relayed_while(_native.verified_files, os.fspath(d)))

        def has(name: str) -> bool:
            return name in listed

        # Every output lists these (and each series or states file its .json): a manifest that
        # does not is damaged, and an unlisted file is not read unchecked.
        wanted = ["run.json", "summary.csv", "stats.csv"]
        wanted += ["series.json"] if has("series.npy") else []
        wanted += ["states.json"] if has("states.npy") else []
        missing = [f for f in wanted if not has(f)]
        if missing:
            manifest = d / ".qbat-manifest.json"
            raise config_error(str(manifest), f"is damaged: it does not list {', '.join(missing)}, which every run directory has")
        r = cls()
        r.dir = d
        r._manifest = manifest
        # (each file read as qbat-gpu writes it, else refused naming it: a file whose manifest
        # entry was written again to match it is read as input)
        with _reading(d / "run.json"):
            r.info = json.loads((d / "run.json").read_text(encoding="utf-8"))
            if not isinstance(r.info, dict) or not all(isinstance(m, str) for m in r.info.get("measures", [])):
                raise ValueError("not a run's record (an object whose measures are names)")
            r.measures = tuple(r.info.get("measures", []))
        r._summary_path = d / "summary.csv"
        r._stats_path = d / "stats.csv"
        with _reading(r._summary_path):
            header, cols = _read_csv_columns(r._summary_path)
            r.member_ids = np.array(cols["member"], dtype=np.uint64)
            r.health = np.array(cols["health"], dtype=object)
            swept = (r.info.get("resolved") or {}).get("swept") or []
            r.params = {k: np.array(cols[k], dtype=float) for k in swept if k in cols}
            for k in ("theta", "phi"):
                if k in cols:
                    r.params[k] = np.array(cols[k], dtype=float)
        nm = len(r.measures)
        if has("series.npy"):
            with _reading(d / "series.json"):
                axes = json.loads((d / "series.json").read_text(encoding="utf-8"))
                r.times = np.array([np.inf if t is None else t for t in axes["times"]], dtype=float)
            with _reading(d / "series.npy"):
                r.series = np.load(d / "series.npy", mmap_mode="r")
        elif has("series.csv"):
            with _reading(d / "series.csv"):
                data = _read_series_csv(d / "series.csv", nm)
                n = len(r.member_ids)
                ns = data.shape[0] // max(n, 1)
                r.times = data[:ns, 1].copy()
                r.series = data[:, 2:].reshape(n, ns, nm)
        else:
            r.series = None
            with _reading(r._stats_path):
                _, st = _read_csv_columns(r._stats_path)
                seen = []
                for t in st["t"]:
                    x = float(t)
                    if not seen or seen[-1] != x:
                        seen.append(x)
                r.times = np.array(seen)
        if r.series is not None:
            want = (len(r.member_ids), len(r.times), nm)
            name = "series.npy" if has("series.npy") else "series.csv"
            if r.series.dtype != np.float64 or r.series.shape != want:
                raise config_error(str(d / name), f"holds {r.series.dtype} values of shape {r.series.shape}, not the run's (members, times, measures) {want} of float64")
        if has("states.npy"):
            with _reading(d / "states.npy"):
                r.states = np.load(d / "states.npy", mmap_mode="r")
            with _reading(d / "states.json"):
                r.states_info = json.loads((d / "states.json").read_text(encoding="utf-8"))
        r.batch_shape = _batch_shape(r.info, len(r.member_ids), str(d / "run.json"))
        return r

    # ----- views and tables
    @property
    def expect(self) -> np.ndarray:
        """(members, K, T): the series in the QuTiP/dynamiqs order (a view)."""
        if self.series is None:
            raise ValueError("this run wrote no series (series=False)")
        return np.swapaxes(self.series, 1, 2)

    def __getitem__(self, measure: str) -> np.ndarray:
        """(members, T) values of one measure."""
        if self.series is None:
            raise ValueError("this run wrote no series (series=False)")
        try:
            k = self.measures.index(measure)
        except ValueError:
            raise KeyError(f"'{measure}' is not among this run's measures: {', '.join(self.measures)}") from None
        return self.series[:, :, k]

    @property
    def summary(self):
        """summary.csv as a pandas DataFrame (one row per member)."""
        pd = _pandas()
        if self._summary_path is not None:
            self._same_run()
            return pd.read_csv(self._summary_path)
        if self._summary_text is None:
            self._summary_text = relayed(self._native.summary_csv)
        return pd.read_csv(io.StringIO(self._summary_text))

    @property
    def stats(self):
        """stats.csv as a pandas DataFrame (long format: t, measure, mean, std, min, max, q05, q50, q95, n)."""
        pd = _pandas()
        if self._stats_path is not None:
            self._same_run()
            return pd.read_csv(self._stats_path)
        # (series may have been replaced, or edited in place: the native side checks its dtype
        # and length, and computes the statistics again where its values changed)
        s = np.ascontiguousarray(self.series) if isinstance(self.series, np.ndarray) else self.series
        return pd.read_csv(io.StringIO(relayed(self._native.stats_csv, s)))

    def to_xarray(self):
        """An xarray.Dataset: dims ("member", "time"), one variable per measure, the swept
        parameters (and theta/phi) as member coordinates, run.json in attrs."""
        import xarray as xr

        if self.series is None:
            raise ValueError("this run wrote no series (series=False)")
        coords: Dict[str, Any] = {"member": np.asarray(self.member_ids), "time": np.asarray(self.times)}
        for k, v in self.params.items():
            coords[k] = ("member", np.asarray(v))
        data = {m: (("member", "time"), np.asarray(self.series[:, :, k])) for k, m in enumerate(self.measures)}
        attrs: Dict[str, Any] = {"run_json": json.dumps(self.info)}
        for k, v in self.info.items():
            if isinstance(v, (str, int, float, bool)):
                attrs[k] = v
        return xr.Dataset(data, coords=coords, attrs=attrs)

    def save(self, out, format: str = "npy", *, series: bool = True, plots: bool = True, force: bool = False) -> Path:
        """Write the run's files into `out`, as the CLI does: run.json, series.npy + series.json
        (or series.csv), summary.csv (and summary.npy + summary.json with npy), stats.csv,
        states.npy + states.json (a run with ``save_states``), and the plots. `out` must be new
        or empty unless `force`. A bad `format` is a ConfigError naming ``format`` (a run
        directory's result keeps its own: the format of its series on disk).

        The files are the run's: summary.csv holds the run's peaks and each member's health,
        and stats.csv the statistics of its healthy members. ``series`` may have been edited in
        place or replaced since the run; one whose peaks (``max_energy_b``, ...) or members'
        health no longer agree with the run's is refused (a ConfigError naming ``series``)
        rather than saved beside a summary that contradicts it: save the run's own series, or
        write an altered array with numpy. Likewise ``states``: a member's states that differ
        from the run's must each be a density matrix (finite, Hermitian, positive, of unit
        trace, to the health tolerances of the run's precision: 1e-3 for f32, 1e-8 and 1e-6
        for f64), else a ConfigError naming ``states``."""
        if not isinstance(format, str):
            raise config_error("format", f"must be 'npy' or 'csv', got {type(format).__name__}")
        if format not in ("npy", "csv"):
            raise config_error("format", f"must be 'npy' or 'csv', got {format!r}")
        out = path_arg("out", out)
        series, plots, force = flag("series", series), flag("plots", plots), flag("force", force)
        if self._native is not None:
            # (either may have been replaced by the caller: the native side checks shapes)
            try:
                arr = np.ascontiguousarray(self.series, dtype=np.float64)
            except (TypeError, ValueError) as e:
                raise config_error("series", f"must be an array of real numbers ({e})") from None
            try:
                states = None if self.states is None else np.ascontiguousarray(self.states, dtype=np.complex128)
            except (TypeError, ValueError) as e:
                raise config_error("states", f"must be an array of complex numbers ({e})") from None
            with ending_by():
                return Path(relayed_while(self._native.save, arr, states, out, format, series, plots, force))
        self._same_run()
        # A run directory: its files, as its manifest lists them, checked and saved under a
        # run's own rules (the format on disk is kept; `force` replaces only qbat-gpu's files).
        on_disk = "npy" if (self.dir / "series.npy").is_file() else "csv"
        if series and self.series is not None and format != on_disk:
            raise config_error("format", f"{self.dir} holds a {on_disk} series; save it with format='{on_disk}'")
        # (checked again under the directory's lock: a run committed into it since this check,
        # which the copy waits for, is refused rather than saved as this result)
        opened = None if self._manifest is None else list(self._manifest)
        with ending_by():
            return Path(relayed_while(_native.copy_output, os.fspath(self.dir), out, series, plots, force, opened))

    def _same_run(self) -> None:
        """Raise where the run directory no longer holds the run this result was opened from
        (replaced by another run with force=True, or removed): its files read now would mix
        the two runs (a replaced directory's summary with the series mapped before)."""
        if self.dir is not None and self._manifest is not None and _read_manifest(self.dir) != self._manifest:
            raise config_error(str(self.dir), "no longer holds the run this result was opened from (replaced or removed since): qb.open it again")

    def __len__(self) -> int:
        return len(self.member_ids)

    def __reduce__(self):
        # A run directory's result pickles as its path, opened again (and its files checked
        # again) where it is unpickled: for Ray or multiprocessing on one file system. An
        # in-memory run's values live in the extension: refused, with what to do instead.
        if self.dir is None:
            raise TypeError(
                "an in-memory qbat_gpu.Result cannot be pickled: save it first with "
                "r.save(dir) and pass qb.open(dir) (which pickles as its directory), or pass r.series"
            )
        # (the batch shape too, which run.json also holds: a pickle an earlier version reads)
        return (_reopen, (os.fspath(self.dir), self.batch_shape))

    def __repr__(self) -> str:
        where = f" dir={str(self.dir)!r}" if self.dir is not None else ""
        return (
            f"<qbat_gpu.Result {self.info.get('model', '?')}: {len(self.member_ids)} members x {len(self.times)} samples x "
            f"{len(self.measures)} measures, backend={self.info.get('backend')}, precision={self.info.get('precision')}{where}>"
        )


def _reopen(dir: str, batch_shape=None) -> "Result":
    # (a pickle of an earlier version carries the batch shape that its run.json may not)
    r = Result._from_dir(dir)
    if r.batch_shape is None and batch_shape is not None:
        r.batch_shape = tuple(batch_shape)
    return r


def _batch_shape(info: Dict[str, Any], members: int, where: str) -> Optional[Tuple[int, ...]]:
    """A `qb.mesolve` run's batch shape, as run.json's config.mesolve.batch_shape records it
    (None for other runs, and for one saved by a version that did not record it). One that
    does not hold the run's members is refused, naming the file."""
    mesolve = (info.get("config") or {}).get("mesolve") if isinstance(info.get("config"), dict) else None
    shape = mesolve.get("batch_shape") if isinstance(mesolve, dict) else None
    if shape is None:
        return None
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape) or math.prod(shape) != members:
        raise config_error(where, f"config.mesolve.batch_shape {str(shape)[:80]} does not hold the run's {members} members")
    return tuple(shape)


def _params(columns, values, theta_phi) -> Dict[str, np.ndarray]:
    out = {c: np.array(values[:, i]) for i, c in enumerate(columns)}
    if theta_phi is not None:
        out["theta"] = np.array(theta_phi[:, 0])
        out["phi"] = np.array(theta_phi[:, 1])
    return out


@contextlib.contextmanager
def _reading(path: Path):
    """Read `path` as qbat-gpu writes it: what fails as the file is parsed (not JSON, not
    UTF-8, a column or key missing, a shape that does not hold) is a ConfigError naming it."""
    try:
        yield
    except (KeyError, ValueError, TypeError, AttributeError, IndexError) as e:
        if isinstance(e, _native.ConfigError):
            raise
        raise config_error(str(path), f"is not as qbat-gpu writes it ({type(e).__name__}: {e})") from None


def _read_csv_columns(path: Path):
    with open(path, encoding="utf-8") as f:
        header = f.readline().strip().split(",")
        rows = [line.rstrip("\n").split(",") for line in f if line.strip()]
    cols = {h: [r[i] for r in rows] for i, h in enumerate(header)}
    return header, cols


def _read_series_csv(path: Path, nm: int) -> np.ndarray:
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    return data.reshape(-1, nm + 2)
