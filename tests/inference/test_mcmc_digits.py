"""NUTS on Bayesian logistic regression of digits 0 vs 1 (4 chains): the convergence
diagnostics the issue asks for, through the zoo entry and the runner."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from bayesstruct import config, runner
from tests.helpers import seed

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az


@pytest.mark.slow
@pytest.mark.stochastic
def test_nuts_on_digits_logistic_regression_converges():
    """``logreg-digits01`` (65 parameters, Bernoulli likelihood) with the ``nuts`` recipe:
    the recipe's 4 chains of 500 warm-up + 1000 draws (with 500 draws the largest of the 65
    R-hats came within 0.0002 of the bound), max rank-normalised R-hat < 1.01 and min bulk
    ESS > 400 over all 65 parameters, no divergences (the run's seed, which also draws the
    data split, through ``seed``).

    Bound: the issue's fixed criteria, not a test tolerance; their margins in SEs of the
    estimates (printed; under seed shifts 0-5): a parameter's R-hat is 1.0010 with sd 0.0010
    over the 65, so 1.01 is ~9 SE above it (the largest of the 390: 1.0065, a right tail
    like chi2's); a bulk ESS is ~7000 with sd ~1000, so 400 is > 6 SE below (smallest seen:
    4340)."""
    cfg = config.resolve("logreg-digits01", "nuts", [f"seed={seed(0)}"])
    ds = runner.load_data(cfg)
    model = runner.build_model(cfg, ds)
    inf = cfg.inference
    assert (inf.num_warmup, inf.num_samples, inf.num_chains) == (500, 1000, 4)
    post = runner.infer(cfg, model, ds, progress=False)
    rhat = az.rhat(post, method="rank")
    ess = az.ess(post, method="bulk")
    rhats = np.concatenate([rhat[v].values.reshape(-1) for v in rhat.data_vars])
    esss = np.concatenate([ess[v].values.reshape(-1) for v in ess.data_vars])
    max_rhat, min_ess = float(rhats.max()), float(esss.min())
    print(f"max R-hat {max_rhat:.4f} (of {rhats.size}: mean {rhats.mean():.4f}, sd "
          f"{rhats.std():.4f}), min bulk ESS {min_ess:.0f} (mean {esss.mean():.0f}, sd "
          f"{esss.std():.0f}), {post.attrs['sampling_seconds']:.1f} s")
    assert max_rhat < 1.01
    assert min_ess > 400
    assert int(post.sample_stats["diverging"].sum()) == 0
    assert np.all(post.sample_stats["step_size"].values > 0)
