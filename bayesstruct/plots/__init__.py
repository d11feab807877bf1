"""Figures: :mod:`~bayesstruct.plots.run` draws those of a run (pruning curve, SNR curves,
pruning comparison, IBP widths; :func:`save_figure` writes them), and
:mod:`~bayesstruct.plots.ibp` the prior-predictive figure of the Indian Buffet Process.

Every function draws with matplotlib's ``Agg`` backend (imported when called) and writes a PNG
atomically; it returns the path written.
"""

from __future__ import annotations

from . import ibp, run
from .ibp import ibp_dishes_vs_customers, plot_ibp_prior_predictive
from .run import (
    plot_comparison,
    plot_inclusion,
    plot_pruning_curve,
    plot_snr_curves,
    save_figure,
)

__all__ = ["ibp", "ibp_dishes_vs_customers", "plot_comparison", "plot_ibp_prior_predictive",
           "plot_inclusion", "plot_pruning_curve", "plot_snr_curves", "run", "save_figure"]
