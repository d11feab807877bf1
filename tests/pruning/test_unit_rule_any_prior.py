"""The unit rule for priors without unit scales (ARD per unit, Gaussian): each group scored by
``log alpha_g = -log sum_j E[w_gj]^2 / Var[w_gj]`` of its weights, under ``q`` and over a
sampler's draws, against numpy on the stored moments; a planted dead unit goes first."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bayesstruct import guides, nets, posterior, priors, pruning
from bayesstruct.models import BayesianNet
from bayesstruct.pruning.units import unit_log_alpha
from tests.helpers import randomize_guide


def _post(prior):
    torch.manual_seed(0)
    model = BayesianNet(nets.mlp([4, 3, 2]), prior, num_data=10)
    guide = guides.MeanField(model)
    randomize_guide(guide, seed=1)
    with torch.no_grad():  # fc2's input unit 0: weights near 0, broad (a dead unit)
        guide.loc["fc2__weight"][:, 0] = 1e-3
        guide.log_var["fc2__weight"][:, 0] = 0.0
    return model, posterior.from_guide(model, guide, 4)


@pytest.mark.parametrize("prior", [priors.ARD(per="unit", hyper="gamma"), priors.Gaussian()],
                         ids=["ard-unit", "gaussian"])
def test_variational_group_score_and_planted_unit(prior):
    model, post = _post(prior)
    got = unit_log_alpha(post, model)
    for site in ("fc1.weight", "fc2.weight"):
        m = post.variational_loc[site].values
        s = post.variational_scale[site].values
        np.testing.assert_allclose(got[site], -np.log((m**2 / s**2).sum(0)), rtol=1e-6)
    d = pruning.make_decision(post, model, "unit", unit_threshold=5.0)
    np.testing.assert_array_equal(d.unit_masks["fc2.weight"], [False, True, True])
    assert not d.masks["fc2.weight"][:, 0].any() and d.masks["fc2.weight"][:, 1:].all()


def test_sampled_group_score_is_the_draws_snr():
    model, post = _post(priors.ARD(per="unit", hyper="gamma"))
    rng = np.random.default_rng(0)
    draws = {k: v.values[0, :1] + 0.3 * rng.standard_normal((2, 50, *v.shape[2:]))
             for k, v in post.posterior.data_vars.items()}
    sampled = posterior.from_draws(model, draws, attrs={"engine": "nuts"}, prior_draws=0)
    got = unit_log_alpha(sampled, model)["fc2.weight"]
    w = sampled.posterior["fc2.weight"].values.reshape(100, 2, 3)
    np.testing.assert_allclose(got, -np.log((w.mean(0) ** 2 / w.var(0, ddof=1)).sum(0)),
                               rtol=1e-6)
