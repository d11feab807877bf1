"""NUTS on Bayesian logistic regression of digits 0 vs 1 (4 chains): the convergence
diagnostics the issue asks for, through the zoo entry and the runner."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from bayesstruct import config, runner

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az


@pytest.mark.slow
def test_nuts_on_digits_logistic_regression_converges():
    """``logreg-digits01`` (65 parameters, Bernoulli likelihood) with the ``nuts`` recipe:
    the recipe's 4 chains of 500 warm-up + 1000 draws (with 500 draws the largest of the 65
    R-hats came within 0.0002 of the bound), max rank-normalised R-hat < 1.01 and min bulk
    ESS > 400 over all 65 parameters, no divergences."""
    cfg = config.resolve("logreg-digits01", "nuts")
    ds = runner.load_data(cfg)
    model = runner.build_model(cfg, ds)
    inf = cfg.inference
    assert (inf.num_warmup, inf.num_samples, inf.num_chains) == (500, 1000, 4)
    post = runner.infer(cfg, model, ds, progress=False)
    rhat = az.rhat(post, method="rank")
    ess = az.ess(post, method="bulk")
    max_rhat = max(float(rhat[v].max()) for v in rhat.data_vars)
    min_ess = min(float(ess[v].min()) for v in ess.data_vars)
    print(f"max R-hat {max_rhat:.4f}, min bulk ESS {min_ess:.0f}, "
          f"{post.attrs['sampling_seconds']:.1f} s")
    assert max_rhat < 1.01
    assert min_ess > 400
    assert int(post.sample_stats["diverging"].sum()) == 0
    assert np.all(post.sample_stats["step_size"].values > 0)
