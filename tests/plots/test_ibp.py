"""The prior-predictive figure of the Indian Buffet Process (:mod:`bayesstruct.plots.ibp`)."""

from __future__ import annotations

import math

import pytest
import torch

from bayesstruct.plots import plot_ibp_prior_predictive
from tests.helpers import seed
from tests.test_distributions import poisson_mean


@pytest.mark.stochastic
def test_prior_predictive_figure(tmp_path):
    """The figure and its table; the Monte-Carlo mean K+ of 400 draws against the closed form
    (bound: 5 SE, the Poisson SE sqrt(mean / 400))."""
    state = torch.get_rng_state()
    path, rows = plot_ibp_prior_predictive(tmp_path / "ibp.png", num_customers=12,
                                           grid=((1, 1), (0.5, 2)), num_draws=400, seed=seed(1))
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is left alone
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(rows) == 2 * 12
    for r in rows:
        exact = poisson_mean(r["alpha"], r["beta"], r["N"])
        assert r["closed_form"] == pytest.approx(exact, rel=1e-12)
        assert abs(r["mc_mean"] - exact) < 5 * math.sqrt(exact / r["num_draws"]), r
