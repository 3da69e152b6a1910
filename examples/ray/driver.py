"""A qbat-gpu study over a Ray cluster: one task per shard, then the merge.

    python examples/ray/driver.py examples/slurm/study.toml --shards 4 --out ray-study

Task k of N runs ``qb.study(config, ROOT/shards/shard-k, shard=(k, N))``, which checkpoints
after every block (``series=False``: paced) in ``ROOT/shards/.shard-k.partial``. A task that fails (its worker or node
dies, or it raises) is retried by Ray (``max_retries``) and continues from that checkpoint with
``resume=True``; a finished shard is not recomputed. When every task has succeeded, the driver
runs ``qb.merge`` into ``ROOT/merged``, whose series, summary.csv and stats.csv equal those of
the unsharded run bit for bit.

An --out root holds one study: its config is kept in ROOT/study.toml and the options its shards
run with (format, backend, precision, ...) in ROOT/study-options.json, and before any task starts
the driver refuses a root that holds another config, other options, or finished shards (their
run.json) of another shard count, rather than skip those shards and merge another study's
results.

Where the cluster has GPUs, each task asks for one (``num_gpus=1``) and Ray runs it on a node
with a free GPU. ROOT must be on storage every node sees (NFS, a shared volume) for the resume
and the merge to find the shards.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import ray

import qbat_gpu as qb


def shard_dir(root: Path, k: int) -> Path:
    return Path(root) / "shards" / f"shard-{k}"


def adapter_for_task() -> Optional[str]:
    """The GPU adapter this task names, or None to let qbat-gpu choose. Ray pins a task's GPU
    through CUDA_VISIBLE_DEVICES, and qbat-gpu follows it when no adapter is named (it maps the
    assigned device to its adapter by PCI bus id; `--adapter NAME|N|BUS`, the `adapter` option,
    would override it). So a task Ray gave a GPU names none: QBAT_ADAPTER (an adapter's index,
    PCI bus id or part of its name) is used only by tasks without one of Ray's GPUs, where it
    cannot put the tasks of a node on one GPU."""
    if ray.get_gpu_ids():
        return None
    return os.environ.get("QBAT_ADAPTER") or None


def _kill_after_first_checkpoint(staging: Path, marker: Path) -> None:
    """Test hook: on the first attempt only, SIGKILL this worker once the shard has written its
    first checkpoint (as a node failure or preemption would)."""
    if marker.exists():
        return
    marker.write_text(str(os.getpid()))

    def watch() -> None:
        while not (staging / "checkpoint.json").is_file():
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()


class ForeignShard(ValueError):
    """The --out root holds another study."""


def finished_shard(out: Path, k: int, n: int) -> bool:
    """Whether shard k of n has finished in `out`; a finished run there that is not shard k of
    n is refused (ForeignShard). (The config is checked for the whole root: `check_root`.)"""
    info_path = out / "run.json"
    if not info_path.is_file():
        return False
    try:
        shard = json.loads(info_path.read_text()).get("shard") or {}
        index, count = shard.get("index"), shard.get("count")
    except (OSError, ValueError, AttributeError) as e:
        raise ForeignShard(f"{info_path}: cannot be read as a shard's run.json ({e}); remove {out} to recompute the shard") from None
    if count != n or index != k:
        what = f"shard {index} of {count}" if count is not None else "not a shard"
        why = "another shard count" if count != n else "another shard"
        raise ForeignShard(
            f"{out} holds another study's output ({what}, not shard {k} of {n}: {why}): "
            f"use another --out root, or remove {out.parent.parent} to start over"
        )
    return True


# Options that do not shape the merged result: where a task runs, whether it says so, and the
# plots (the merge draws its own from the merged files).
TASK_LOCAL_OPTIONS = ("adapter", "progress", "plots")


def _as_json(value: Any) -> Any:
    """`value` as JSON takes it (json.dumps' `default`): a path as its text, a numpy number as
    the Python number it holds (`.item()`), anything else as its str."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            pass
    return str(value)


def shaping_options(options: Dict[str, Any]) -> Dict[str, Any]:
    """The options given to every shard's `qb.study` that shape its files (format, backend,
    precision, series, ...), as JSON values, each of `qb.study`'s left out at its default: an
    option left out and the same option given at its default are one study."""
    defaults = {
        name: p.default
        for name, p in inspect.signature(qb.study).parameters.items()
        if p.kind == p.KEYWORD_ONLY and p.default is not p.empty and name not in ("shard", "resume")
    }
    given = {**defaults, **options}
    shaping = {k: given[k] for k in sorted(given) if k not in TASK_LOCAL_OPTIONS}
    return json.loads(json.dumps(shaping, sort_keys=True, default=_as_json))


def check_root(root: Path, text: str, n: int, options: Optional[Dict[str, Any]] = None) -> None:
    """Refuse an --out root that holds another study: ROOT/study.toml (the config of the study
    whose shards are there) differs from `text`, ROOT/study-options.json (the options its shards
    ran with) differs from `options`, or a finished shard is of another shard count. Then record
    `text` and `options` there. (Finished shards are not run again: with other options, the
    merge would have returned the first options' results as the new ones'.)"""
    stamp = root / "study.toml"
    options_stamp = root / "study-options.json"
    now = shaping_options(options or {})
    shards = sorted(d for d in (root / "shards").glob("shard-*") if d.name[len("shard-"):].isdigit())
    started = shards or any((root / "shards").glob(".shard-*.partial"))
    finished = any((d / "run.json").exists() for d in shards)
    if started and stamp.is_file() and stamp.read_bytes() != text.encode():
        raise ForeignShard(f"{root} holds another study ({stamp} differs from this config): use another --out root, or remove {root} to start over")
    if started and not stamp.is_file() and finished:
        raise ForeignShard(f"{root} holds shards of an unrecorded study (no {stamp}): use another --out root, or remove {root} to start over")
    if started and not options_stamp.is_file() and finished:
        # (a root from before the options were recorded: its shards' options are not known)
        raise ForeignShard(
            f"{root} holds finished shards run with unrecorded options (no {options_stamp}): "
            f"remove {root} to start over, or use another --out root"
        )
    if started and options_stamp.is_file():
        try:
            recorded = json.loads(options_stamp.read_text())
            if not isinstance(recorded, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:
            raise ForeignShard(f"{options_stamp}: cannot be read ({e}): remove {root} to start over") from None
        # (an option a stamp does not name ran at its default: one written before the
        # defaults were recorded)
        recorded = {**shaping_options({}), **recorded}
        differ = [k for k in sorted(set(recorded) | set(now)) if recorded.get(k) != now.get(k)]
        if differ:
            shown = ", ".join(f"{k}: {recorded.get(k)!r} then, {now.get(k)!r} now" for k in differ)
            raise ForeignShard(
                f"{root} holds a study run with other options ({options_stamp} differs: {shown}): "
                f"give the same options, use another --out root, or remove {root} to start over"
            )
    for d in shards:
        finished_shard(d, int(d.name[len("shard-"):]), n)
    root.mkdir(parents=True, exist_ok=True)
    write_whole(stamp, text.encode())
    write_whole(options_stamp, json.dumps(now, sort_keys=True).encode())


def write_whole(path: Path, data: bytes) -> None:
    """Write `path` whole or not at all: a temporary name beside it, synced, then renamed over
    it (a driver killed while writing left a damaged stamp, which the next call refused)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def run_shard(config: str, root: str, k: int, n: int, options: Dict[str, Any], kill_marker: Optional[str] = None) -> Dict[str, Any]:
    """Run shard k of n into ROOT/shards/shard-k, resuming an interrupted attempt."""
    out = shard_dir(Path(root), k)
    staging = out.parent / f".{out.name}.partial"
    if finished_shard(out, k, n):
        return {"shard": k, "dir": str(out), "skipped": True}
    out.parent.mkdir(parents=True, exist_ok=True)
    resume = (staging / "qbat-staging").is_file()
    if kill_marker is not None:
        _kill_after_first_checkpoint(staging, Path(kill_marker))
    opts = dict(options)
    opts.setdefault("adapter", adapter_for_task())
    r = qb.study(config, out, shard=(k, n), resume=resume, progress=False, **opts)
    return {"shard": k, "dir": str(r.dir), "resumed": resume, "blocks": r.info.get("blocks"), "node": os.uname().nodename}


def run_sharded(
    config: Any,
    root: str | os.PathLike,
    shards: int,
    *,
    max_retries: int = 3,
    kill_first_attempt_of: Optional[int] = None,
    **options: Any,
) -> qb.Result:
    """Split the study `config` (dict, TOML text or path) into `shards` Ray tasks, run them,
    and merge them into ROOT/merged. `options` go to every `qb.study` call (backend, format,
    block_members, series, plots, ...). Ray must be initialised (``ray.init(...)``)."""
    from qbat_gpu._config import config_text

    text = config_text(config)
    root = Path(root).resolve()
    check_root(root, text, shards, options)
    if __name__ != "__main__":
        # workers import qbat_gpu, not this file: ship this module's functions by value
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    gpus = ray.cluster_resources().get("GPU", 0) > 0
    task = ray.remote(num_gpus=1 if gpus else 0, max_retries=max_retries, retry_exceptions=True)(run_shard)
    refs = []
    for k in range(shards):
        marker = str(root / f".kill-marker-{k}") if kill_first_attempt_of == k else None
        refs.append(task.remote(text, str(root), k, shards, options, marker))
    done: List[Dict[str, Any]] = ray.get(refs)
    merged = root / "merged"
    plots = options.get("plots", True)
    result = qb.merge([d["dir"] for d in sorted(done, key=lambda d: d["shard"])], merged, force=True, plots=plots)
    result.tasks = done
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--out", default="ray-study")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--format", default="npy", choices=["npy", "csv"])
    ap.add_argument("--address", default=None, help="Ray cluster address (default: start a local one)")
    ap.add_argument("--max-retries", type=int, default=3)
    ap.add_argument("--no-plots", action="store_true")
    a = ap.parse_args()
    ray.init(address=a.address)
    t0 = time.time()
    try:
        r = run_sharded(a.config, a.out, a.shards, max_retries=a.max_retries, backend=a.backend, format=a.format, plots=not a.no_plots)
    except ForeignShard as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    for t in r.tasks:
        print(f"shard {t['shard']}: {t['dir']}" + (" (resumed)" if t.get("resumed") else ""))
    print(f"merged {len(r.tasks)} shards into {r.dir}: {r} in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
