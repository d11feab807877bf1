"""The stability report of architecture search (the claim to test: the Bayesian search is
more stable):
how much a derived cell changes when the structure logits are perturbed, how much the cells
of different seeds differ, and a figure of both beside the spread of accuracy over seeds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .space import Genotype, SearchSpace, architecture_change, derive

__all__ = ["cross_seed_change", "perturbation_change", "plot_stability"]


def perturbation_change(logits: Tensor, space: SearchSpace, eps: float, draws: int = 200,
                        seed: int = 0) -> float:
    """Mean :func:`architecture_change` between the cell derived from ``alpha`` and from
    ``alpha + eps * N(0, I)`` over ``draws`` noise draws."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.as_tensor(logits, dtype=torch.float32)
    base = derive(torch.softmax(logits, -1), space)
    return float(np.mean([architecture_change(base, derive(torch.softmax(
        logits + eps * torch.randn(logits.shape, generator=g), -1), space))
        for _ in range(draws)]))


def cross_seed_change(genotypes: Sequence[Genotype]) -> float:
    """Mean :func:`architecture_change` over pairs of the cells found from different seeds
    (``nan`` for fewer than two)."""
    pairs = [architecture_change(a, b) for i, a in enumerate(genotypes)
             for b in genotypes[i + 1:]]
    return float(np.mean(pairs)) if pairs else float("nan")


def plot_stability(runs: Mapping[str, Sequence[Mapping]], space: SearchSpace,
                   noise: Sequence[float], path: str | Path, draws: int = 200) -> None:
    """Left: test accuracy of every seed per searcher; right: the cell change under logit
    noise (searchers with logits). ``runs[label]`` holds dicts with ``test_acc``, ``seed``
    and ``logits`` (or ``None``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..files import atomic_path

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    labels = list(runs)
    for i, label in enumerate(labels):
        rs = runs[label]
        axes[0].scatter([i] * len(rs), [100 * r["test_acc"] for r in rs], color=f"C{i}")
        if rs and rs[0].get("logits") is not None:
            ys = [np.mean([perturbation_change(torch.tensor(r["logits"]), space, e, draws,
                                               17 + r["seed"]) for r in rs]) for e in noise]
            axes[1].plot(noise, ys, marker="o", label=label, color=f"C{i}")
    axes[0].set_xticks(range(len(labels)), labels, rotation=15, fontsize=8)
    axes[0].set_ylabel("test top-1 (%) of the retrained cell")
    axes[0].set_title("spread over seeds")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("logit noise sd eps")
    axes[1].set_ylabel("fraction of the cell that changes")
    axes[1].set_title("stability under structure-parameter noise")
    if axes[1].lines:
        axes[1].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
