"""One trial in a worker process: resolve the entry with the trial's overrides, run it into
its own run directory, return its outcome (never raise: a failed trial is a result too)."""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path
from typing import Any

__all__ = ["METRICS", "TIMING", "finished", "run_trial", "scalar_metrics"]

METRICS = "metrics.json"
# metrics that measure the machine, not the trial's result: left out when sweeps are compared
TIMING = ("train_seconds", "test_inference_seconds_dense", "test_inference_seconds_pruned",
          "seconds")


def scalar_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float | int]:
    """The numbers (and booleans) of a run's ``metrics.json``; nested mappings flattened to
    dotted keys (a comparison's ``test_acc_at.obs.0.9``), lists left out."""
    out: dict[str, float | int] = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            out.update(scalar_metrics(v, f"{prefix}{k}."))
        elif isinstance(v, int | float):  # bool: an int
            out[f"{prefix}{k}"] = v
    return out


def finished(run_dir: Path) -> dict[str, Any] | None:
    """The metrics of a run directory that finished (its ``metrics.json``), else ``None``."""
    path = run_dir / METRICS
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_trial(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one trial; ``spec``: ``entry``, ``inference``, ``set`` (override list), ``out``
    (its run directory), ``threads`` (torch threads in this worker), ``resume``.

    Returns ``{"status": "ok", "metrics": {...}, "seconds": s}`` or ``{"status": "failed",
    "error": "Type: message", "traceback": ..., "seconds": s}``.
    """
    import torch

    from ..config import resolve
    from ..runner import run

    torch.set_num_threads(int(spec.get("threads", 1)))
    t0 = time.perf_counter()
    out = Path(spec["out"])
    (out / "error.txt").unlink(missing_ok=True)  # a failure recorded before: this is a rerun
    try:
        cfg = resolve(spec["entry"], spec.get("inference"), list(spec["set"]))
        resume = bool(spec.get("resume")) and (out / "config.yaml").exists()
        metrics = run(cfg, out, resume=resume, progress=False, echo=lambda _msg: None)
        return {"status": "ok", "metrics": scalar_metrics(metrics),
                "seconds": time.perf_counter() - t0}
    except Exception as e:  # noqa: BLE001 -- a failed trial is recorded, the sweep goes on
        return {"status": "failed", "error": f"{type(e).__name__}: {e}".splitlines()[0][:500],
                "traceback": traceback.format_exc(), "seconds": time.perf_counter() - t0}
