"""Relative density, pruning decisions, curves, smaller networks and their size (M5)."""

from __future__ import annotations

from .baselines import magnitude_scores, obd_scores, obs_scores, random_scores, sweep
from .coding import bit_precision, bits_per_weight, huffman_bits, kmeans_share, layer_code_size
from .comparison import (
    DEFAULT_METHODS,
    METHODS,
    TABLE_FRACTIONS,
    CompareSettings,
    Comparison,
    check_methods,
    compare,
    table_at,
)
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
from .decisions import check_matches, check_threshold, decide, fraction_removed, magnitude
from .density import log_relative_density, relative_density
from .hessian import diag_hessian, flatten_weights, hessian, unflatten_weights
from .obs import OBSPath, obs_path, obs_remove, obs_saliency
from .snr import lambda_grid, removable, snr, snr_curve
from .summary import compression_summary, summary_rows
from .units import (
    effective_moments,
    inclusion_probabilities,
    inferred_widths,
    log_alpha,
    mean_network,
    unit_keep,
    unit_log_alpha,
    weight_masks_from_units,
)

__all__ = [
    "CRITERIA", "CompareSettings", "Comparison", "DEFAULT_FRACTIONS", "DEFAULT_METHODS",
    "Decision", "METHODS", "OBSPath", "SelectInputs", "TABLE_FRACTIONS", "apply_masks",
    "bit_precision", "bits_per_weight", "calibrate_unit_thresholds", "check_matches",
    "check_methods", "check_threshold", "compare",
    "compression_summary", "count_parameters", "decide", "diag_hessian", "effective_moments",
    "flatten_weights", "fraction_removed", "hessian", "huffman_bits", "inclusion_probabilities",
    "inference_seconds", "inferred_widths",
    "kmeans_share", "lambda_grid", "layer_code_size", "log_alpha", "log_relative_density",
    "magnitude", "magnitude_scores", "make_decision", "mask_params", "mc_evaluate", "mean_network",
    "obd_scores", "obs_path", "obs_remove", "obs_saliency", "obs_scores", "prune", "pruning_curve",
    "random_scores", "relative_density", "removable", "resolve_criterion", "snr", "snr_curve",
    "summary_rows", "sweep", "table_at", "unflatten_weights", "unit_counts", "unit_keep",
    "unit_log_alpha", "weight_masks_from_units",
]
