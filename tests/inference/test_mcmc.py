"""NUTS / HMC through Pyro's MCMC on a BayesianNet: the conjugate posterior, the layout."""

from __future__ import annotations

import numpy as np
import pytest

from bayesstruct.inference.mcmc import mcmc
from tests.helpers import SPARSE_GRID, small_model
from tests.inference.test_sgld import _analytic, _linear_model


@pytest.mark.parametrize("kernel", ["nuts", "hmc"])
def test_mcmc_matches_the_conjugate_posterior(kernel):
    """Exact gradients and a Metropolis correction, so no step-size bias: means within 0.35
    posterior sd (about 4 Monte-Carlo SEs at an ESS of ~150 of the 2 x 400 draws), variances
    within 20 %."""
    model, split = _linear_model()
    post = mcmc(model, split, kernel=kernel, num_warmup=200, num_samples=400, num_chains=2,
                step_size=0.05, num_steps=8, progress=False)
    assert post.posterior["fc1.weight"].dims == ("chain", "draw", "fc1_out", "fc1_in")
    assert post.sample_stats["diverging"].shape == (2, 400)
    assert post.attrs["engine"] == kernel
    draws = np.concatenate([post.posterior["fc1.weight"].values.reshape(-1, 3),
                            post.posterior["fc1.bias"].values.reshape(-1, 1)], 1)
    mean, var = _analytic(split)
    z = (draws.mean(0) - mean) / np.sqrt(var)
    ratio = draws.var(0) / var
    assert np.all(np.abs(z) < 0.35), z
    assert np.all((ratio > 0.8) & (ratio < 1.2)), ratio


def test_mcmc_refuses_what_it_cannot_do():
    model, split = _linear_model()
    with pytest.raises(ValueError, match="allowed: nuts, hmc"):
        mcmc(model, split, kernel="gibbs", progress=False)
    with pytest.raises(NotImplementedError, match="jit_compile=True is not supported yet"):
        mcmc(model, split, jit_compile=True, progress=False)
    with pytest.raises(ValueError, match="improper prior"):
        mcmc(small_model(*SPARSE_GRID[0]), split, progress=False)
