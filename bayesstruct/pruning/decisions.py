"""Pruning decisions -- boolean keep-masks from a threshold or a target fraction, and the
check that a posterior belongs to the model it is applied to."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import numpy as np

from ..errors import UserInputError
from ..posterior import InferenceData, point_estimate, weight_sites

__all__ = ["check_matches", "check_threshold", "decide", "fraction_removed", "magnitude"]


def check_threshold(name: str, value: object, low: float | None = None,
                    high: float | None = None, note: str = "") -> float:
    """``value`` as a float, refused (:class:`UserInputError` naming ``name``) unless it is a
    finite number within ``[low, high]`` (either bound may be absent)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    v = float(value) if ok else math.nan
    if not (ok and math.isfinite(v) and (low is None or v >= low)
            and (high is None or v <= high)):
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        bound = ("a finite number" if low is None and high is None
                 else f"a finite number in [{lo}, {hi}]")
        raise UserInputError(f"{name}={value!r} is not {bound}{note}")
    return v


def check_matches(post: InferenceData, model) -> None:
    """Refuse a posterior whose weight sites are not ``model``'s (names or shapes): pruning
    it would give masks for the wrong sites. The message names the missing, extra and
    mis-shaped sites.

    The posterior's sites are its ``weight_sites`` attribute; a site's shape is read from its
    draws (``posterior`` group, without the chain and draw dimensions) or, failing those, from
    its variational factor."""
    ours = {s.name: tuple(int(d) for d in s.shape) for s in model.weight_sites}
    names = weight_sites(post)
    theirs: dict[str, tuple[int, ...] | None] = {}
    for n in names:
        if "posterior" in post.groups() and n in post.posterior:
            theirs[n] = tuple(int(d) for d in post.posterior[n].shape[2:])
        elif "variational_loc" in post.groups() and n in post.variational_loc:
            theirs[n] = tuple(int(d) for d in post.variational_loc[n].shape)
        else:
            theirs[n] = None
    missing = [n for n in ours if n not in theirs]
    extra = [n for n in theirs if n not in ours]
    shaped = [f"{n} {theirs[n]} vs {ours[n]}" for n in ours
              if n in theirs and theirs[n] is not None and theirs[n] != ours[n]]
    if not (missing or extra or shaped):
        return
    parts = []
    if missing:
        parts.append(f"missing from the posterior: {', '.join(missing)}")
    if extra:
        parts.append(f"not in the model: {', '.join(extra)}")
    if shaped:
        parts.append(f"other shapes (posterior vs model): {'; '.join(shaped)}")
    engine = post.attrs.get("engine", "?")
    raise UserInputError(f"the posterior (engine {engine}) does not belong to this model: its "
                         f"weight sites differ ({'; '.join(parts)}); use the posterior of this "
                         "model (same network, same prior)")


def masks_at(scores: Mapping[str, np.ndarray], threshold: float) -> dict[str, np.ndarray]:
    return {k: ~(np.asarray(v) >= threshold) for k, v in scores.items()}


def decide(scores: Mapping[str, np.ndarray], *, threshold: float | None = None,
           fraction: float | None = None,
           bounds: str | tuple[float, float] | None = "auto") -> dict[str, np.ndarray]:
    """Keep-masks from *prunability* scores (larger = removed first), e.g. rho or log rho.

    Exactly one of:
        threshold: remove every weight with ``score >= threshold`` (``rho >= 0.5``, say);
        fraction: remove the ``round(fraction * total)`` weights with the largest scores,
            ranked jointly over all sites (ties broken by position, deterministically).

    A threshold must be a finite number. ``bounds`` is the range it must lie in: ``"auto"``
    takes ``[0, 1]`` when every score lies in ``[0, 1]`` and one is positive (rho, or a
    probability: a threshold outside would remove everything or nothing) and no range
    otherwise (log rho, ``-|w|``, log alpha); a ``(low, high)`` pair, or ``None`` for none.
    Refusals are :class:`~bayesstruct.errors.UserInputError` (a ``ValueError``) naming the
    argument.
    """
    if (threshold is None) == (fraction is None):
        raise ValueError("give exactly one of threshold= or fraction=")
    if threshold is not None:
        if bounds == "auto":
            arrays = [np.asarray(v, dtype=np.float64) for v in scores.values()]
            unit = bool(arrays) and all(a.size == 0 or (np.nanmin(a) >= 0 and np.nanmax(a) <= 1)
                                        for a in arrays) and any(
                a.size and np.nanmax(a) > 0 for a in arrays)
            bounds = (0.0, 1.0) if unit else None
        elif bounds is not None and not (isinstance(bounds, tuple) and len(bounds) == 2):
            raise ValueError(f"bounds={bounds!r}; allowed: 'auto', None or a (low, high) pair")
        low, high = bounds if bounds is not None else (None, None)
        note = (" (the scores are rho-like, all in [0, 1]: outside, the threshold would "
                "remove every weight or none)") if bounds == (0.0, 1.0) else ""
        return masks_at(scores, check_threshold("threshold", threshold, low, high, note))
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or \
            not 0.0 <= fraction <= 1.0:
        raise UserInputError(f"fraction must be in [0, 1], got {fraction!r}")
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


def magnitude(post: InferenceData, sites: list[str] | None = None,
              model=None) -> dict[str, np.ndarray]:
    """Prunability ``-|w|`` of the posterior point estimate (the magnitude baseline).

    Without ``model``: of the sites' posterior means (:func:`~bayesstruct.posterior.
    point_estimate`). With ``model`` the weights are the network's
    (:mod:`~bayesstruct.pruning.units`): ``-|E[w]|`` of ``w = theta_g w~`` for the group-scale
    priors (BC-GNJ, BC-GHS, IBP), under ``q`` (:func:`~bayesstruct.pruning.units.
    effective_moments`) or over the draws (:func:`~bayesstruct.pruning.units.
    effective_draw_moments`); the sites' own means, as without, for the other priors."""
    point = point_estimate(post)
    names = sites if sites is not None else weight_sites(post)
    out = {k: -np.abs(point[k]) for k in names}
    if model is None:
        return out
    from .units import effective_draw_moments, effective_moments, scaled_sites

    scaled = [k for k in scaled_sites(model) if k in out]
    if not scaled:
        return out
    if "variational_loc" in post.groups():
        moments = effective_moments(post, model)
        means = {k: moments[k][0] for k in scaled}
    else:
        means = {k: v[0] for k, v in effective_draw_moments(post, model, scaled).items()}
    out.update({k: -np.abs(v) for k, v in means.items()})
    return out
