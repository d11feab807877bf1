"""Relative density, pruning decisions, curves, smaller networks and their size.

The pipeline from a posterior to a smaller network:

1. scores: :func:`relative_density` / :func:`log_relative_density` (rho), :func:`snr`
   (``|mu / sigma|``), :func:`magnitude` (``-|w|``);
2. decisions: :func:`decide` (keep-masks at a threshold or a fraction), :func:`make_decision`
   (one entry point for every criterion, a :class:`Decision`), :func:`fraction_removed`;
3. the posterior's network: :func:`mean_network`, :func:`effective_moments`, and for the IBP
   :func:`inclusion_probabilities` and :func:`inferred_widths`;
4. applying the masks: :func:`prune` (a genuinely smaller network), :func:`apply_masks`,
   :func:`mask_params`, and its size: :func:`count_parameters`, :func:`unit_counts`,
   :func:`compression_summary`;
5. curves: :func:`pruning_curve` (over :data:`DEFAULT_FRACTIONS`), :func:`snr_curve` and
   :func:`removable`;
6. the comparison with the baselines: :func:`compare` (:class:`CompareSettings`, the
   :data:`METHODS`, a :class:`Comparison`, :func:`table_at`), and the per-weight scores it
   sweeps (:func:`random_scores`, :func:`magnitude_scores`, :func:`obd_scores`,
   :func:`obs_scores`, :func:`sweep`).

The rest is in the submodules: the criteria (:mod:`~bayesstruct.pruning.criteria`), unit
scores and masks (:mod:`~bayesstruct.pruning.units`), Hessians
(:mod:`~bayesstruct.pruning.hessian`), Optimal Brain Surgeon (:mod:`~bayesstruct.pruning.obs`),
storage coding (:mod:`~bayesstruct.pruning.coding`), the compressed networks whose test error
the compression summary reports (:mod:`~bayesstruct.pruning.quantize`), recurrent nets
(:mod:`~bayesstruct.pruning.recurrent`).
"""

from __future__ import annotations

from .baselines import magnitude_scores, obd_scores, obs_scores, random_scores, sweep
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
    apply_masks,
    count_parameters,
    inference_seconds,
    mask_params,
    prune,
    shrink_note,
    unit_counts,
)
from .cost import count_macs, hidden_units
from .criteria import Decision, make_decision
from .curve import DEFAULT_FRACTIONS, pruning_curve
from .decisions import decide, fraction_removed, magnitude
from .density import log_relative_density, relative_density
from .snr import removable, snr, snr_curve
from .summary import compression_networks, compression_summary, summary_rows
from .unit_spaces import network_units
from .units import (
    effective_moments,
    inclusion_probabilities,
    inferred_widths,
    mean_network,
    mean_values,
)

__all__ = [
    # scores and decisions
    "relative_density", "log_relative_density", "snr", "magnitude", "decide", "make_decision",
    "Decision", "fraction_removed",
    # the posterior's network and units
    "mean_network", "mean_values", "effective_moments", "inclusion_probabilities",
    "inferred_widths", "network_units",
    # applying the masks, and the size of what is left
    "prune", "shrink_note", "apply_masks", "mask_params", "count_parameters", "unit_counts",
    "count_macs", "hidden_units",
    "compression_summary", "compression_networks",
    # curves
    "pruning_curve", "DEFAULT_FRACTIONS", "snr_curve", "removable",
    # the comparison with the baselines
    "compare", "CompareSettings", "Comparison", "METHODS", "table_at", "random_scores",
    "magnitude_scores", "obd_scores", "obs_scores", "sweep",
]

# also importable from here, though not in the API above: runner.py and tests/test_config.py
# use them by these names (kept until they import from pruning.comparison, .compression and
# .summary)
_KEPT_FOR_RUNNER = (DEFAULT_METHODS, TABLE_FRACTIONS, check_methods, inference_seconds,
                    summary_rows)
