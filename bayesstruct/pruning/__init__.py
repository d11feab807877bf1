"""Relative density, pruning decisions, curves and smaller networks (METHODS.md M5)."""

from __future__ import annotations

from .compression import apply_masks, count_parameters, prune
from .curve import DEFAULT_FRACTIONS, mc_evaluate, pruning_curve
from .decisions import decide, fraction_removed, magnitude
from .density import log_relative_density, relative_density

__all__ = ["DEFAULT_FRACTIONS", "apply_masks", "count_parameters", "decide", "fraction_removed",
           "log_relative_density", "magnitude", "mc_evaluate", "prune", "pruning_curve",
           "relative_density"]
