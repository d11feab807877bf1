"""Tables and figures of a run."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from .files import atomic_path, write_text

__all__ = ["format_table", "plot_pruning_curve", "write_csv"]


def format_table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    """A plain monospace table."""
    cells = [[str(h) for h in header]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True)), line]
    out += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells[1:]]
    return "\n".join(out)


def _fmt(c: object) -> str:
    if isinstance(c, float):
        return f"{c:.4f}"
    return str(c)


def write_csv(rows: Sequence[Mapping[str, object]], path: str | os.PathLike) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return write_text(path, buf.getvalue())


def plot_pruning_curve(rows: Sequence[Mapping[str, float]], path: str | os.PathLike,
                       title: str = "") -> Path:
    """Accuracy and NLL against the fraction of weights removed (mean net and MC predictive)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [100 * r["removed"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for key, label in (("mean", "posterior-mean net"), ("mc", "MC-averaged predictive")):
        ax1.plot(x, [100 * r[f"acc_{key}"] for r in rows], "o-", label=label)
        ax2.plot(x, [r[f"nll_{key}"] for r in rows], "o-", label=label)
    ax1.set(xlabel="weights removed (%)", ylabel="test accuracy (%)")
    ax2.set(xlabel="weights removed (%)", ylabel="test NLL per example", yscale="log")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return Path(path)
