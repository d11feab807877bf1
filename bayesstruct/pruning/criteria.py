"""One entry point from a posterior to pruning decisions, whatever the criterion (M5).

==============  ==========================================  =============================
criterion       score (larger = removed first)              removed when
==============  ==========================================  =============================
``rho``         ``log rho`` per weight (Normal guide)       ``rho >= threshold``
``magnitude``   ``-|E w|`` per weight                       ``|E w| <= magnitude_threshold``
``log_alpha``   ``log sigma^2 - log theta^2`` per weight    ``log alpha >= 3`` (sparse VD)
``unit``        ``log alpha_g`` per input unit / channel    ``log alpha_g >= threshold_l``
==============  ==========================================  =============================

``auto`` takes the prior's own criterion (:attr:`Prior.criterion`) when the posterior has
variational factors and ``magnitude`` otherwise. For ``unit`` the weight masks are the outer
products of unit masks (:func:`~bayesstruct.pruning.units.weight_masks_from_units`) and the
per-weight scores used for pruning curves are the unit scores broadcast over each group.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..models.bayesnet import BayesianNet
from ..posterior import InferenceData
from .decisions import decide, magnitude
from .density import log_relative_density
from .units import log_alpha, unit_keep, unit_log_alpha, weight_masks_from_units

__all__ = ["CRITERIA", "Decision", "make_decision", "resolve_criterion"]

CRITERIA = ("auto", "rho", "magnitude", "log_alpha", "unit")


@dataclass
class Decision:
    """Masks (``site -> keep``), the per-weight scores behind them, and unit scores if any."""

    criterion: str
    threshold: float
    masks: dict[str, np.ndarray]
    scores: dict[str, np.ndarray]
    unit_scores: dict[str, np.ndarray] = field(default_factory=dict)
    unit_masks: dict[str, np.ndarray] = field(default_factory=dict)


def resolve_criterion(criterion: str, post: InferenceData, model: BayesianNet) -> str:
    if criterion not in CRITERIA:
        raise ValueError(f"criterion {criterion!r}; allowed: {', '.join(CRITERIA)}")
    if criterion != "auto":
        return criterion
    if "variational_loc" not in post.groups():
        return "magnitude"
    return model.prior.criterion


def make_decision(post: InferenceData, model: BayesianNet, criterion: str = "auto", *,
                  rho_threshold: float = 0.5, magnitude_threshold: float = 1e-2,
                  log_alpha_threshold: float = 3.0, unit_threshold: float = 0.0,
                  layer_thresholds: Mapping[str, float] | None = None) -> Decision:
    """Pruning masks of every weight site by ``criterion`` (see the module table)."""
    criterion = resolve_criterion(criterion, post, model)
    weight_names = [s.name for s in model.weight_sites]
    if criterion == "rho":
        scores = log_relative_density(post)
        thr = float(np.log(rho_threshold))
        return Decision(criterion, rho_threshold, decide(scores, threshold=thr), scores)
    if criterion == "magnitude":
        scores = magnitude(post)
        return Decision(criterion, magnitude_threshold,
                        decide(scores, threshold=-magnitude_threshold), scores)
    if criterion == "log_alpha":
        scores = log_alpha(post, weight_names)
        return Decision(criterion, log_alpha_threshold,
                        decide(scores, threshold=log_alpha_threshold), scores)
    units = unit_log_alpha(post, model)
    keep = unit_keep(units, unit_threshold, layer_thresholds)
    masks = weight_masks_from_units(model, keep)
    scores = {}
    for s in model.weight_sites:
        if s.name in units:
            shape = [1] * len(s.shape)
            shape[s.group_dim] = s.shape[s.group_dim]
            scores[s.name] = np.broadcast_to(units[s.name].reshape(shape), s.shape).copy()
    return Decision(criterion, unit_threshold, masks, scores, units, keep)
