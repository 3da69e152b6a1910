"""A qbat-gpu study over a Ray cluster: one task per shard, then the merge.

    python examples/ray/driver.py examples/slurm/study.toml --shards 4 --out ray-study

Task k of N runs ``qb.study(config, ROOT/shards/shard-k, shard=(k, N))``, which checkpoints
after every block (``series=False``: paced) in ``ROOT/shards/.shard-k.partial``. A task that fails (its worker or node
dies, or it raises) is retried by Ray (``max_retries``) and continues from that checkpoint with
``resume=True``; a finished shard is not recomputed. When every task has succeeded, the driver
runs ``qb.merge`` into ``ROOT/merged``, whose series, summary.csv and stats.csv equal those of
the unsharded run bit for bit.

Where the cluster has GPUs, each task asks for one (``num_gpus=1``) and Ray runs it on a node
with a free GPU. ROOT must be on storage every node sees (NFS, a shared volume) for the resume
and the merge to find the shards.
"""

from __future__ import annotations

import argparse
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
    """The GPU adapter of this task. Ray pins a task's GPU through CUDA_VISIBLE_DEVICES, which
    Vulkan does not honour; until qbat-gpu can pick an adapter by index or PCI bus id
    (the GPU-pinning item of the reliability issue), QBAT_ADAPTER (part of an adapter name) may
    name it, and otherwise the library picks the best adapter of the node."""
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


def run_shard(config: str, root: str, k: int, n: int, options: Dict[str, Any], kill_marker: Optional[str] = None) -> Dict[str, Any]:
    """Run shard k of n into ROOT/shards/shard-k, resuming an interrupted attempt."""
    out = shard_dir(Path(root), k)
    staging = out.parent / f".{out.name}.partial"
    if (out / "run.json").is_file():
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
    root.mkdir(parents=True, exist_ok=True)
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
    r = run_sharded(a.config, a.out, a.shards, max_retries=a.max_retries, backend=a.backend, format=a.format, plots=not a.no_plots)
    for t in r.tasks:
        print(f"shard {t['shard']}: {t['dir']}" + (" (resumed)" if t.get("resumed") else ""))
    print(f"merged {len(r.tasks)} shards into {r.dir}: {r} in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
