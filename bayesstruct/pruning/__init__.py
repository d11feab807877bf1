"""Relative density, pruning decisions, curves, smaller networks and their size (M5)."""

from __future__ import annotations

from .coding import bit_precision, bits_per_weight, huffman_bits, kmeans_share, layer_code_size
from .compression import (
    SelectInputs,
    apply_masks,
    count_parameters,
    inference_seconds,
    mask_params,
    prune,
    unit_counts,
)
from .criteria import (
    CRITERIA,
    Decision,
    calibrate_unit_thresholds,
    make_decision,
    resolve_criterion,
)
from .curve import DEFAULT_FRACTIONS, mc_evaluate, pruning_curve
from .decisions import decide, fraction_removed, magnitude
from .density import log_relative_density, relative_density
from .summary import compression_summary, summary_rows
from .units import (
    effective_moments,
    log_alpha,
    mean_network,
    unit_keep,
    unit_log_alpha,
    weight_masks_from_units,
)

__all__ = [
    "CRITERIA", "DEFAULT_FRACTIONS", "Decision", "SelectInputs", "apply_masks", "bit_precision",
    "bits_per_weight", "calibrate_unit_thresholds", "compression_summary", "count_parameters",
    "decide", "effective_moments", "fraction_removed", "huffman_bits", "inference_seconds",
    "kmeans_share", "layer_code_size", "log_alpha", "log_relative_density", "magnitude",
    "make_decision", "mask_params", "mc_evaluate", "mean_network", "prune", "pruning_curve",
    "relative_density", "resolve_criterion", "summary_rows", "unit_counts", "unit_keep",
    "unit_log_alpha", "weight_masks_from_units",
]
