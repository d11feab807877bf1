"""The horseshoe's ``unit_rule="log_scale"``: Louizos et al. (2017)'s thresholding of the
expected log group scale, ``score_g = -E_q[log theta_g]``, under ``q`` (closed form without the
slab, Monte Carlo with it: 5 SE) and over a sampler's draws (the draws' mean); the planted
units of ``tests/pruning/test_effective_weights.py`` come out in the right order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bayesstruct import nets, priors, pruning
from bayesstruct.models import BayesianNet
from bayesstruct.pruning.units import unit_log_alpha, variational_tensors
from tests.helpers import seed
from tests.pruning.test_effective_weights import A, B, N, _sampled, _variational

DRAWS = 200_000


def _log_scale(model):
    model.prior.unit_rule = "log_scale"
    return model


def test_variational_score_is_minus_the_mean_log_scale():
    model, post = _variational("horseshoe")
    _log_scale(model)
    loc, _ = variational_tensors(post)
    got = unit_log_alpha(post, model)
    for site in ("fc1.weight", "fc2.weight"):
        want = -(float(loc[f"{site}.s"]) + loc[f"{site}.z"].numpy())
        np.testing.assert_allclose(got[site], want, rtol=1e-12)
    assert got["fc2.weight"][A] > got["fc2.weight"][2] > got["fc2.weight"][B]


@pytest.mark.stochastic
def test_slab_score_against_monte_carlo():
    """``E_q[log slab(s z)]`` by Gauss-Hermite against draws of the two log-normals."""
    c = 0.8
    model, post = _variational("horseshoe")
    model = BayesianNet(nets.mlp([4, 3, 2]), priors.Horseshoe(slab_scale=c,
                                                              unit_rule="log_scale"),
                        num_data=10)
    loc, scale = variational_tensors(post)
    got = unit_log_alpha(post, model)["fc2.weight"]
    rng = np.random.default_rng(seed(4))
    mu_s, sd_s = float(loc["fc2.weight.s"]), float(scale["fc2.weight.s"])
    mu_z, sd_z = loc["fc2.weight.z"].numpy(), scale["fc2.weight.z"].numpy()
    x = np.exp(mu_s + sd_s * rng.standard_normal((DRAWS, 1))
               + mu_z + sd_z * rng.standard_normal((DRAWS, mu_z.size)))
    log_theta = np.log(c * x / np.sqrt(c * c + x * x))
    want, se = -log_theta.mean(0), log_theta.std(0) / np.sqrt(DRAWS)
    np.testing.assert_array_less(np.abs(got - want), 5 * se + 1e-9)
    plain = -(mu_s + mu_z)  # the slab caps log theta at log c: the scores differ
    assert abs(got[B] - plain[B]) > 1.0


def test_sampled_score_is_the_draws_mean_log_scale():
    model, post = _sampled("horseshoe", "nuts")
    _log_scale(model)
    p = post.posterior
    s = p["fc2.weight.s"].values.reshape(N)
    z = p["fc2.weight.z"].values.reshape(N, 3)
    want = -np.log(s[:, None] * z).mean(0)
    got = unit_log_alpha(post, model)["fc2.weight"]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert got[A] > got[2] > got[B]


@pytest.mark.parametrize("engine", ["svi", "nuts"])
def test_planted_unit_goes_at_a_layer_threshold(engine):
    """Unit A (scale ~ 1e-4) is removed and B (scale 200) kept at a threshold between them."""
    model, post = _variational("horseshoe") if engine == "svi" else _sampled("horseshoe", "nuts")
    _log_scale(model)
    d = pruning.make_decision(post, model, "unit", unit_threshold=3.0)
    np.testing.assert_array_equal(d.unit_masks["fc2.weight"], [False, True, True])


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="unit_rule='x'; allowed: snr, log_scale"):
        priors.Horseshoe(unit_rule="x")
    torch.manual_seed(0)
