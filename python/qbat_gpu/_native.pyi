"""Type stubs of the extension module qbat_gpu._native (PyO3). Use the `qbat_gpu` package's
functions; these are its building blocks."""

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import numpy.typing as npt

VERSION: str
STATE_MEASURES: List[str]
BATTERY_MEASURES: List[str]

class ConfigError(ValueError):
    """A bad config, option or input; the message names the field, as the CLI's does."""
    field: Optional[str]
    exit_code: int

class DeviceError(RuntimeError):
    """The GPU device is missing, lacks a feature, ran out of memory or was lost."""
    field: Optional[str]
    exit_code: int

class RunError(RuntimeError):
    """A numerical failure during a run (NaN, lost trace)."""
    field: Optional[str]
    exit_code: int

class QbatWarning(UserWarning):
    """A warning of the library (the CLI's `WARNING: ` lines): a Fock cutoff too low, members left out as unhealthy."""

class NativeRun:
    @property
    def times(self) -> npt.NDArray[np.float64]: ...
    @property
    def measures(self) -> List[str]: ...
    @property
    def member_ids(self) -> npt.NDArray[np.uint64]: ...
    @property
    def param_columns(self) -> List[str]: ...
    @property
    def param_values(self) -> npt.NDArray[np.float64]: ...
    @property
    def theta_phi(self) -> Optional[npt.NDArray[np.float64]]: ...
    @property
    def health_codes(self) -> npt.NDArray[np.float64]: ...
    def summary_csv(self) -> str: ...
    def stats_csv(self, series: npt.NDArray[np.float64]) -> str: ...
    def run_json(self) -> str: ...
    def states_json(self) -> Optional[str]: ...
    def save(
        self, series: npt.NDArray[np.float64], states: Optional[npt.NDArray[np.complex128]], out: str, format: str,
        write_series: bool, plots: bool, force: bool,
    ) -> Path: ...

def run(
    config: str, *, backend: str = "auto", precision: str = "f32", ensemble: Optional[int] = None, seed: Optional[int] = None,
    verify: int = 8, adapter: Optional[str] = None, progress: bool = False, ticker: Optional[Callable[[float, int, int], None]] = None,
    save_states: Optional[str] = None,
) -> Tuple[NativeRun, npt.NDArray[np.float64], Optional[npt.NDArray[np.complex128]]]: ...
def mesolve(
    h: npt.NDArray[np.complex128], jumps: npt.NDArray[np.complex128], n_jumps: int, member_point: npt.NDArray[np.uint64],
    rho0: npt.NDArray[np.complex128], tsave: npt.NDArray[np.float64], dt: float, h_battery: npt.NDArray[np.complex128],
    h_charger: npt.NDArray[np.complex128], measures: Optional[Sequence[str]] = None, backend: str = "auto",
    precision: str = "f32", verify: int = 8, progress: bool = False, ticker: Optional[Callable[[float, int, int], None]] = None,
) -> Tuple[NativeRun, npt.NDArray[np.float64], None]: ...
def study(
    config: str, out: str, *, shard: Optional[Tuple[int, int]] = None, resume: bool = False, series: bool = True,
    format: str = "npy", devices: Optional[str] = None, block_members: Optional[int] = None, force: bool = False,
    plots: bool = True, on_device_loss: str = "cpu", allow_mixed_backends: bool = False, backend: str = "auto", precision: str = "f32",
    ensemble: Optional[int] = None, seed: Optional[int] = None, verify: int = 8, adapter: Optional[str] = None,
    progress: bool = False, ticker: Optional[Callable[[float, int, int], None]] = None, save_states: Optional[str] = None,
) -> Path: ...
def check_batch_arrays(n_points: int, n_jumps: int, n_members: int) -> None: ...
def merge(dirs: Sequence[str], out: str, force: bool = False, plots: bool = True) -> Path: ...
def state_measure(name: str, states: npt.NDArray[np.complex128]) -> npt.NDArray[np.float64]: ...
def battery_measure(name: str, states: npt.NDArray[np.complex128], h: npt.NDArray[np.complex128], d: int) -> npt.NDArray[np.float64]: ...
def models() -> List[Dict[str, Any]]: ...
def measures_list() -> List[Dict[str, str]]: ...
def devices() -> List[Dict[str, Any]]: ...
def capture_stderr(on: bool) -> None: ...
def take_stderr() -> List[str]: ...
