"""The figures of a run: the pruning curve, the SNR curves, the pruning comparison, the IBP
widths, and :func:`save_figure`, which titles and writes every one of them."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..files import atomic_path

__all__ = ["plot_comparison", "plot_inclusion", "plot_pruning_curve", "plot_snr_curves",
           "save_figure"]


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
    return save_figure(fig, path, title)


def plot_snr_curves(rows: Sequence[Mapping[str, float]] | Mapping[str, Sequence[Mapping]],
                    path: str | os.PathLike, title: str = "") -> Path:
    """Three curves against the threshold ``lambda`` on ``|mu/sigma|``:
    parameters kept, test accuracy and macro F1, test log-likelihood. ``rows`` is one curve
    (:func:`~bayesstruct.pruning.snr_curve`) or ``label -> curve`` to overlay several."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = dict(rows) if isinstance(rows, Mapping) else {"": rows}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), constrained_layout=True)
    for k, (label, curve) in enumerate(curves.items()):
        curve = sorted(curve, key=lambda r: r["lambda"])
        lam = [r["lambda"] for r in curve]
        color = f"C{k}"
        axes[0].plot(lam, [r["params_kept"] for r in curve], ".-", color=color, label=label)
        axes[1].plot(lam, [100 * r["acc"] for r in curve], ".-", color=color,
                     label=f"{label} accuracy".strip())
        axes[1].plot(lam, [100 * r["f1_macro"] for r in curve], "--", color=color,
                     label=f"{label} macro F1".strip())
        axes[2].plot(lam, [r["log_lik"] for r in curve], ".-", color=color, label=label)
    axes[0].set(ylabel="parameters kept")
    axes[1].set(ylabel="test accuracy / macro F1 (%)")
    axes[2].set(ylabel="test log-likelihood")
    for ax in axes:
        ax.set_xscale("symlog", linthresh=0.1)
        ax.set(xlabel=r"threshold $\lambda$ on $|\mu / \sigma|$")
        ax.grid(alpha=0.3)
    if len(curves) > 1:
        axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    return save_figure(fig, path, title)


def save_figure(fig, path: str | os.PathLike, title: str) -> Path:
    """Title, atomic PNG write, close."""
    import matplotlib.pyplot as plt

    if title:
        fig.suptitle(title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return Path(path)


#: colour per method family; ``-retrain`` variants share it with a dashed line
_METHOD_STYLE = {"random": "0.45", "magnitude-l1": "C0", "magnitude-l2": "C1",
                 "variational": "C2", "obd": "C3", "obs": "C4"}


def plot_comparison(rows: Sequence[Mapping[str, object]], path: str | os.PathLike,
                    title: str = "", zoom_from: float = 80.0) -> Path:
    """Test accuracy against the percent of weights removed, one line per method: the whole
    range on the left, ``zoom_from``..100 % on the right (where the methods separate)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(str(r["method"]) for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)
    for i, m in enumerate(methods):
        pts = sorted((100 * float(r["removed"]), 100 * float(r["acc"]))
                     for r in rows if r["method"] == m)
        base = m.removesuffix("-retrain")
        style = {"color": _METHOD_STYLE.get(base, f"C{5 + i % 5}"),
                 "linestyle": "--" if m.endswith("-retrain") else "-",
                 "marker": "s" if m.endswith("-retrain") else "o", "markersize": 4,
                 "label": m}
        for ax in axes:
            ax.plot(*zip(*pts, strict=True), **style)
    axes[0].set(xlabel="weights removed (%)", ylabel="test accuracy (%)", xlim=(0, 100))
    axes[1].set(xlabel="weights removed (%)", ylabel="test accuracy (%)",
                xlim=(zoom_from, 100), title=f"zoom: {zoom_from:g}-100 % removed")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower left", fontsize=9)
    return save_figure(fig, path, title)


def plot_inclusion(probs: Mapping[str, Sequence[float]], path: str | os.PathLike,
                   prior: Mapping[str, Sequence[float]] | None = None, title: str = "") -> Path:
    """IBP widths: each layer's posterior inclusion probabilities ``P(z_k = 1)``
    against the unit index ``k`` (units with ``P > 1/2`` are kept), with the prior's
    inclusion probabilities for comparison when given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(probs), figsize=(5 * len(probs), 3.6), squeeze=False,
                             constrained_layout=True)
    for ax, (layer, p) in zip(axes[0], probs.items(), strict=True):
        k = range(1, len(p) + 1)
        kept = sum(1 for v in p if v > 0.5)
        ax.plot(k, p, ".", ms=3, label="posterior")
        if prior is not None and layer in prior:
            ax.plot(k, prior[layer], "-", lw=1, color="gray", label="prior")
        ax.axhline(0.5, ls="--", lw=0.8, color="k")
        ax.set(xlabel="unit k", ylabel="P(z_k = 1)", ylim=(-0.03, 1.03),
               title=f"{layer}: {kept} of {len(p)} units kept")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right")
    return save_figure(fig, path, title)
