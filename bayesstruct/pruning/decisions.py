"""M5: pruning decisions -- boolean keep-masks from a threshold or a target fraction."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..posterior import InferenceData, point_estimate, weight_sites

__all__ = ["decide", "fraction_removed", "magnitude"]


def decide(scores: Mapping[str, np.ndarray], *, threshold: float | None = None,
           fraction: float | None = None) -> dict[str, np.ndarray]:
    """Keep-masks from *prunability* scores (larger = removed first), e.g. rho or log rho.

    Exactly one of:
        threshold: remove every weight with ``score >= threshold`` (``rho >= 0.5``, say);
        fraction: remove the ``round(fraction * total)`` weights with the largest scores,
            ranked jointly over all sites (ties broken by position, deterministically).
    """
    if (threshold is None) == (fraction is None):
        raise ValueError("give exactly one of threshold= or fraction=")
    if threshold is not None:
        return {k: ~(np.asarray(v) >= threshold) for k, v in scores.items()}
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    names = list(scores)
    flat = np.concatenate([np.asarray(scores[k], dtype=np.float64).ravel() for k in names])
    k = int(round(fraction * flat.size))
    keep = np.ones(flat.size, dtype=bool)
    if k:
        order = np.argsort(-flat, kind="stable")
        keep[order[:k]] = False
    masks, i = {}, 0
    for name in names:
        shape = np.shape(scores[name])
        n = int(np.prod(shape))
        masks[name] = keep[i: i + n].reshape(shape)
        i += n
    return masks


def fraction_removed(masks: Mapping[str, np.ndarray]) -> float:
    total = sum(np.size(m) for m in masks.values())
    kept = sum(int(np.sum(m)) for m in masks.values())
    return 1.0 - kept / max(total, 1)


def magnitude(post: InferenceData, sites: list[str] | None = None) -> dict[str, np.ndarray]:
    """Prunability ``-|w|`` of the posterior point estimate (the magnitude baseline)."""
    point = point_estimate(post)
    names = sites if sites is not None else weight_sites(post)
    return {k: -np.abs(point[k]) for k in names}
