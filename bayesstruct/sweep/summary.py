"""A sweep's tables and figure: ``sweep.csv`` (one row per trial), the summary over seeds
(mean and sample standard deviation per grid setting) and ``sweep.png``."""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..files import atomic_path, write_text
from ..report import format_table

__all__ = ["FIRST", "summarise", "summary_table", "write_figure", "write_rows"]

# columns before the metrics, in this order
FIRST = ("trial", "status", "setting", "seed", "seconds", "error", "run_dir")


def write_rows(rows: Sequence[dict[str, Any]], path: Path, grid_keys: Sequence[str]) -> Path:
    """``sweep.csv``: every trial's settings, status and metrics (the union of the columns;
    empty where a trial has none), written atomically."""
    metrics = sorted({k for r in rows for k in r} - set(FIRST) - set(grid_keys))
    fields = [*FIRST[:3], *grid_keys, *FIRST[3:], *metrics]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return write_text(path, buf.getvalue())


def _mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (NaN for one value)."""
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return statistics.fmean(values), sd


def summarise(rows: Sequence[dict[str, Any]], metrics: Sequence[str]
              ) -> list[dict[str, Any]]:
    """Per grid setting (first-seen order): trials ok / run, and ``(mean, sd, n)`` over the
    seeds of each metric among the finished trials."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["setting"], []).append(r)
    out = []
    for setting, rs in groups.items():
        ok = [r for r in rs if r["status"] == "ok"]
        stats = {}
        for m in metrics:
            vals = [float(r[m]) for r in ok if isinstance(r.get(m), int | float)]
            stats[m] = (*_mean_sd(vals), len(vals)) if vals else (float("nan"),) * 2 + (0,)
        out.append({"setting": setting, "ok": len(ok), "trials": len(rs), "stats": stats})
    return out


def _fmt(mean: float, sd: float, percent: bool) -> str:
    if math.isnan(mean):
        return "-"
    k = 100.0 if percent else 1.0
    spread = "" if math.isnan(sd) else f" ± {k * sd:.2f}"
    return f"{k * mean:.2f}{spread}"


def summary_table(summary: Sequence[dict[str, Any]], metrics: Sequence[str], *,
                  markdown: bool = False) -> str:
    """Setting, trials ok / run, ``mean ± sd`` of each metric (fractions and accuracies in
    percent): a console table, or a markdown one."""
    percent = {m: m.startswith(("test_acc", "fraction", "val_acc")) for m in metrics}
    header = ["setting", "ok / trials", *(f"{m} (%)" if percent[m] else m for m in metrics)]
    rows = [[s["setting"], f"{s['ok']} / {s['trials']}",
             *(_fmt(*s["stats"][m][:2], percent[m]) for m in metrics)] for s in summary]
    if not markdown:
        return format_table(rows, header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


def write_figure(rows: Sequence[dict[str, Any]], summary: Sequence[dict[str, Any]], metric: str,
                 path: Path, title: str) -> Path | None:
    """Each setting's ``metric``: the seeds as dots, the mean ± sd as a bar; ``None`` when no
    trial has the metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not any(s["stats"][metric][2] for s in summary):
        return None
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(summary) + 2), 3.6))
    for i, s in enumerate(summary):
        pts = [float(r[metric]) for r in rows if r["setting"] == s["setting"]
               and r["status"] == "ok" and isinstance(r.get(metric), int | float)]
        ax.scatter([i] * len(pts), pts, s=14, color="0.45", zorder=3)
        mean, sd, n = s["stats"][metric]
        if not n:
            ax.annotate("no finished trial", (i, 0.5), xycoords=("data", "axes fraction"),
                        ha="center", fontsize=8, color="C3", rotation=90)
        if n:
            ax.errorbar([i], [mean], yerr=[0 if math.isnan(sd) else sd], fmt="o",
                        color="C0", capsize=5, zorder=4)
    ax.set_xticks(range(len(summary)), [s["setting"] for s in summary], rotation=20,
                  ha="right", fontsize=8)
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
