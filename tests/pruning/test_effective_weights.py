"""Every pruning criterion reads the network's weights ``w = theta_g w~`` of the group-scale
priors (BC-GNJ, BC-GHS, IBP), not the sample sites' ``w~``, for variational and sampled
posteriors; priors whose sites are the weights score exactly as before.

The posteriors are planted on ``mlp([4, 3, 2])``: in ``fc2.weight`` (2 x 3) input unit
``A = 0`` has large ``w~`` but a group scale near 0 (network weights of about ``2e-4``, with a
scale posterior that is broad on the log scale, as a shrunk unit's is), unit ``B = 1`` has small
``w~`` (0.005, below the magnitude threshold) but a scale of 200 (network weights of about 1.0,
tightly determined), and unit 2 is ordinary. Every criterion must remove ``A`` and keep ``B``;
read on ``w~`` they keep ``A`` (its ``w~`` are large and sharp) and the magnitude rule removes
``B``.

Sampled posteriors are "quantile draws": the ``N`` quantiles ``(i + 1/2) / N`` of each planted
distribution, in a fixed random order per element (so distinct elements are independent), which
leaves no Monte-Carlo error to bound; the margins below are large.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import norm

from bayesstruct import guides, nets, posterior, priors, pruning
from bayesstruct.models import BayesianNet
from bayesstruct.pruning.criteria import resolve_criterion
from bayesstruct.pruning.density import kde_log_relative_density
from bayesstruct.pruning.units import effective_draws, log_alpha, unit_log_alpha
from tests.helpers import randomize_guide

N = 2000  # draws: kde_log_relative_density's max_draws
A, B = 0, 1
CRITERIA = ["rho", "magnitude", "log_alpha", "unit"]
SIGMA_A = 2.5  # log-scale sd of unit A's scale: a shrunk scale's posterior is broad


def _quantiles(mu, sd, rng, shape=()):
    """``(N, *shape)`` quantile draws of ``N(mu, sd^2)``, each element in its own order."""
    u = norm.ppf((np.arange(N) + 0.5) / N)
    out = np.empty((N, *shape))
    for idx in (np.ndindex(*shape) if shape else [()]):
        out[(slice(None), *idx)] = mu + sd * rng.permutation(u)
    return out


def _model(kind):
    prior = {"horseshoe": priors.Horseshoe(), "ibp": priors.IBP(),
             "gnj": priors.LogUniform(level="unit")}[kind]
    return BayesianNet(nets.mlp([4, 3, 2]), prior, num_data=10)


def _sampled(kind, engine):
    """A sampler's posterior (2 chains) with units A and B planted in ``fc2.weight``."""
    rng = np.random.default_rng(0)
    model = _model(kind)
    d = {"fc1.weight": _quantiles(1.0, 0.1, rng, (3, 4)), "fc1.bias": _quantiles(0, .1, rng, (3,)),
         "fc2.bias": _quantiles(0.0, 0.1, rng, (2,))}
    w = np.empty((N, 2, 3))
    w[:, :, 2] = _quantiles(1.0, 0.1, rng, (2,))
    if kind == "horseshoe":
        d["fc1.weight.s"] = np.exp(_quantiles(0.0, 0.05, rng))
        d["fc2.weight.s"] = np.exp(_quantiles(0.0, 0.05, rng))
        d["fc1.weight.z"] = np.exp(_quantiles(0.0, 0.05, rng, (4,)))
        z = np.empty((N, 3))
        # A: E[z] w~ ~ 2e-4 with log z ~ N(., SIGMA_A^2); B: z = 200 (+-2 %), w~ = 0.005
        z[:, A] = np.exp(_quantiles(np.log(2e-4 / 3) - SIGMA_A**2 / 2, SIGMA_A, rng))
        z[:, B] = np.exp(_quantiles(np.log(200.0), 0.02, rng))
        z[:, 2] = np.exp(_quantiles(0.0, 0.05, rng))
        d["fc2.weight.z"] = z
        w[:, :, A] = _quantiles(3.0, 0.3, rng, (2,))
        w[:, :, B] = _quantiles(0.005, 0.0002, rng, (2,))
    else:  # ibp: unit A is on in 1 draw of N (w = 3e-3 x 1/N), unit B in every draw
        z = np.ones((N, 3))
        z[1:, A] = 0.0
        d["fc1.z"] = z
        d["fc1.v"] = np.full((N, 3), 0.5)
        w[:, :, A] = _quantiles(3.0, 0.3, rng, (2,))
        w[:, :, B] = _quantiles(1.0, 0.1, rng, (2,))
    d["fc2.weight"] = w
    draws = {k: v.reshape(2, N // 2, *v.shape[1:]) for k, v in d.items()}
    return model, posterior.from_draws(model, draws, attrs={"engine": engine}, prior_draws=0)


def _variational(kind):
    """A variational posterior (its factors planted) with units A and B in ``fc2.weight``."""
    model = _model(kind)
    t = torch.tensor
    m2, s2 = t([[3.0, 0.005, 1.0]] * 2), t([[0.3, 0.0002, 0.1]] * 2)
    f = {"fc1.weight": ("Normal", torch.ones(3, 4), torch.full((3, 4), 0.1)),
         "fc1.bias": ("Normal", torch.zeros(3), torch.full((3,), 0.1)),
         "fc2.bias": ("Normal", torch.zeros(2), torch.full((2,), 0.1))}
    if kind == "horseshoe":  # log theta ~ N(mu_s + mu_z, sd_s^2 + sd_z^2)
        sig = 2.0
        f["fc1.weight.s"] = ("LogNormal", t(0.0), t(0.05))
        f["fc2.weight.s"] = ("LogNormal", t(0.0), t(0.05))
        f["fc1.weight.z"] = ("LogNormal", torch.zeros(4), torch.full((4,), 0.05))
        f["fc2.weight.z"] = ("LogNormal", t([np.log(2e-4 / 3) - sig**2 / 2, np.log(200.0), 0.0]),
                             t([sig, 0.02, 0.05]))
    elif kind == "gnj":  # z ~ N(mu, sd^2): A's mu = 2e-4 / 3 with sd = 5 mu (alpha_g = 25)
        f["fc1.weight.z"] = ("Normal", torch.ones(4), torch.full((4,), 0.05))
        f["fc2.weight.z"] = ("Normal", t([2e-4 / 3, 200.0, 1.0]), t([1e-3 / 3, 2.0, 0.05]))
    else:  # ibp: q(z_A = 1) = sigmoid(-8), q(z_B = 1) = sigmoid(8); w~_B = 1.0
        m2[:, B], s2[:, B] = 1.0, 0.1
        f["fc1.v"] = ("Kumaraswamy", torch.zeros(3), torch.ones(3))
        f["fc1.z"] = ("Bernoulli", t([-8.0, 8.0, 8.0]), torch.zeros(3))
    f["fc2.weight"] = ("Normal", m2, s2)
    draws = {k: _factor_value(fam, loc).expand(1, 2, *loc.shape)
             for k, (fam, loc, _) in f.items()}
    post = posterior.from_draws(model, draws, attrs={"engine": "svi", "guide": "meanfield"},
                                prior_draws=0)
    posterior.add_variational(post, model, f)
    return model, post


def _factor_value(family, loc):
    """A value of a factor to stand in for the draws (the scores read the factors)."""
    if family == "LogNormal":
        return torch.exp(loc)
    if family == "Bernoulli":
        return (loc > 0).float()
    if family == "Kumaraswamy":
        return torch.full_like(loc, 0.5)
    return loc


def _check_a_removed_b_kept(d):
    mask = d.masks["fc2.weight"]
    assert not mask[:, A].any(), (d.criterion, d.scores["fc2.weight"])
    assert mask[:, B].all() and mask[:, 2].all(), (d.criterion, d.scores["fc2.weight"])
    if d.criterion == "unit":
        np.testing.assert_array_equal(d.unit_masks["fc2.weight"], [False, True, True])


@pytest.mark.parametrize("criterion", CRITERIA + ["auto"])
@pytest.mark.parametrize("kind,engine", [("horseshoe", "nuts"), ("horseshoe", "sgld"),
                                         ("horseshoe", "psgld"), ("ibp", "nuts")])
def test_sampled_group_priors_are_scored_on_the_network_weights(kind, engine, criterion):
    """Default thresholds: rho >= 1/2, |E w| <= 1e-2, log alpha >= 3, log alpha_g >= 0."""
    model, post = _sampled(kind, engine)
    _check_a_removed_b_kept(pruning.make_decision(post, model, criterion))


@pytest.mark.parametrize("criterion", CRITERIA + ["auto"])
@pytest.mark.parametrize("kind", ["gnj", "horseshoe", "ibp"])
def test_variational_group_priors_are_scored_on_the_network_weights(kind, criterion):
    model, post = _variational(kind)
    _check_a_removed_b_kept(pruning.make_decision(post, model, criterion))


def test_auto_under_a_sampler_takes_the_horseshoe_unit_rule():
    model, post = _sampled("horseshoe", "nuts")
    assert resolve_criterion("auto", post, model) == "unit"
    model, post = _sampled("ibp", "nuts")
    assert resolve_criterion("auto", post, model) == "unit"


def test_effective_draws_and_the_sampled_unit_rule_follow_their_formulas():
    """``w = s z w~`` per draw; ``log alpha_g = -log sum_j mean(w_gj)^2 / var(w_gj)``."""
    model, post = _sampled("horseshoe", "nuts")
    p = post.posterior
    flat = {k: p[k].values.reshape(N, *p[k].shape[2:]) for k in p.data_vars}
    w = flat["fc2.weight.s"][:, None, None] * flat["fc2.weight.z"][:, None, :] * flat["fc2.weight"]
    eff = effective_draws(post, model)
    np.testing.assert_allclose(eff["fc2.weight"], w, rtol=1e-5)
    assert set(eff) == {"fc1.weight", "fc2.weight"}
    expected = -np.log((w.mean(0) ** 2 / w.var(0, ddof=1)).sum(0))
    np.testing.assert_allclose(unit_log_alpha(post, model)["fc2.weight"], expected, rtol=1e-4)
    # the network weights' own rho, not that of w~: the KDE of the draws of w
    rho = pruning.log_relative_density(post, model=model)["fc2.weight"]
    assert np.all(rho[:, A] > np.log(0.9)) and np.all(rho[:, B] < -100)
    assert np.all(pruning.log_relative_density(post)["fc2.weight"][:, A] < -100)  # w~'s rho


def test_variational_scores_are_the_effective_moments():
    """``log rho = -E[w]^2 / (2 Var[w])``, ``log alpha = log Var[w] - log E[w]^2``, ``-|E w|``
    with the moments of :func:`pruning.effective_moments`."""
    model, post = _variational("horseshoe")
    mean, var = pruning.effective_moments(post, model)["fc2.weight"]
    np.testing.assert_allclose(pruning.log_relative_density(post, model=model)["fc2.weight"],
                               -mean**2 / (2 * var), rtol=1e-10)
    np.testing.assert_allclose(log_alpha(post, model=model)["fc2.weight"],
                               np.log(var) - np.log(mean**2), rtol=1e-10)
    np.testing.assert_allclose(pruning.magnitude(post, model=model)["fc2.weight"], -np.abs(mean),
                               rtol=1e-10)


def _plain_posteriors(kind, sampler):
    torch.manual_seed(0)
    prior = {"gaussian": priors.Gaussian(), "ard": priors.ARD(per="unit", hyper="gamma"),
             "sparse_vd": priors.LogUniform()}[kind]
    model = BayesianNet(nets.mlp([6, 5, 3]), prior, num_data=20)
    guide = guides.MeanField(model)
    randomize_guide(guide, seed=1)
    post = posterior.from_guide(model, guide, num_draws=4)
    if not sampler:
        return model, post
    rng = np.random.default_rng(1)
    draws = {k: v.values[0, :1] + rng.standard_normal((2, 300, *v.shape[2:]))
             for k, v in post.posterior.data_vars.items()}
    return model, posterior.from_draws(model, draws, attrs={"engine": "nuts"}, prior_draws=0)


@pytest.mark.parametrize("sampler", [False, True], ids=["svi", "nuts"])
@pytest.mark.parametrize("kind", ["gaussian", "ard", "sparse_vd"])
def test_priors_without_group_scales_score_exactly_as_before(kind, sampler):
    """The scores with the model are bit for bit those of the sites' own values."""
    if kind == "sparse_vd" and sampler:
        pytest.skip("the per-weight log-uniform prior is improper: no sampler")
    model, post = _plain_posteriors(kind, sampler)
    names = [s.name for s in model.weight_sites]
    point = posterior.point_estimate(post)
    old_mag = {k: -np.abs(point[k]) for k in names}
    if sampler:
        old_rho = kde_log_relative_density(post)
    else:
        old_rho, old_la = {}, {}
        for k in names:
            m = post.variational_loc[k].values.astype(np.float64)
            s = post.variational_scale[k].values.astype(np.float64)
            old_rho[k], old_la[k] = -(m**2) / (2 * s * s), 2 * np.log(s) - np.log(m * m + 1e-300)
        la = pruning.make_decision(post, model, "log_alpha").scores
        assert la.keys() == old_la.keys()
        for k in names:
            np.testing.assert_array_equal(la[k], old_la[k])
    if kind != "sparse_vd" or not sampler:
        rho = pruning.make_decision(post, model, "rho").scores
        assert rho.keys() == old_rho.keys()
        for k in names:
            np.testing.assert_array_equal(rho[k], old_rho[k])
    mag = pruning.make_decision(post, model, "magnitude").scores
    for k in names:
        np.testing.assert_array_equal(mag[k], old_mag[k])
    assert resolve_criterion("auto", post, model) == (
        ("rho" if sampler else model.prior.criterion) if kind != "sparse_vd" else "log_alpha")
