"""The regularised horseshoe's posterior-mean network: ``E_q[w] = E_q[slab(s z)] m``, not
``slab(E[s] E[z]) m``, checked against brute-force Monte Carlo over ``q``'s log-normal
factors (bound: 5 Monte-Carlo SE per group)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bayesstruct import guides, nets, posterior, priors
from bayesstruct.models import BayesianNet
from bayesstruct.pruning.units import variational_tensors
from tests.helpers import randomize_guide, seed

C = 0.8  # slab width
DRAWS = 400_000


def _posterior(slab_scale):
    torch.manual_seed(0)
    model = BayesianNet(nets.mlp([4, 3, 2]), priors.Horseshoe(tau0=1.0, slab_scale=slab_scale),
                        num_data=10)
    guide = guides.MeanField(model)
    randomize_guide(guide, seed=3)
    with torch.no_grad():  # broad log-normal scales, centred near the slab's bend
        for v in guide.latent_loc.values():
            v.copy_(torch.linspace(-0.6, 0.4, v.numel()).reshape(v.shape))
    post = posterior.from_guide(model, guide, 10)
    return model, post


def _mc_scale_mean(loc, scale, site, c, rng):
    """Per group: the Monte-Carlo mean of ``theta = slab(s z)`` and its SE, ``s``, ``z`` drawn
    from their log-normal factors independently."""
    mu_s, sd_s = float(loc[f"{site}.s"]), float(scale[f"{site}.s"])
    mu_z, sd_z = loc[f"{site}.z"].numpy(), scale[f"{site}.z"].numpy()
    s = np.exp(mu_s + sd_s * rng.standard_normal((DRAWS, 1)))
    z = np.exp(mu_z + sd_z * rng.standard_normal((DRAWS, mu_z.size)))
    x = s * z
    theta = x if c is None else c * x / np.sqrt(c * c + x * x)
    return theta.mean(0), theta.std(0) / np.sqrt(DRAWS)


@pytest.mark.stochastic
@pytest.mark.parametrize("slab_scale", [C, None], ids=["regularised", "plain"])
def test_mean_network_is_the_monte_carlo_mean_of_the_weights(slab_scale):
    model, post = _posterior(slab_scale)
    loc, scale = variational_tensors(post)
    means = {k: torch.as_tensor(v, dtype=torch.float64)
             for k, v in posterior.point_estimate(post).items()}
    got = model.prior.mean_net_params(means, loc, scale)
    naive = model.prior.net_params(means)  # slab(E[s] E[z]) m
    rng = np.random.default_rng(seed(11))
    off = []
    for site in ("fc1.weight", "fc2.weight"):
        m = means[site].numpy()
        theta, se = _mc_scale_mean(loc, scale, site, slab_scale, rng)
        want = theta[None, :] * m  # groups are input units: the columns
        bound = 5 * se[None, :] * np.abs(m) + 1e-12
        np.testing.assert_array_less(np.abs(got[site].numpy() - want), bound)
        off.append(np.max(np.abs(naive[site].numpy() - want) / bound))
    for b in ("fc1.bias", "fc2.bias"):
        torch.testing.assert_close(got[b], means[b])
    if slab_scale is not None:  # the composition of the means is many SE off
        assert min(off) > 10, off
    else:  # without the slab E[s z] = E[s] E[z]: the two agree
        assert max(off) < 1, off


def test_the_slab_mean_is_what_the_report_uses():
    """``mean_net_params`` and ``effective_moments`` (the reports' ``E[w]``) agree exactly."""
    model, post = _posterior(C)
    loc, scale = variational_tensors(post)
    means = {k: torch.as_tensor(v, dtype=torch.float64)
             for k, v in posterior.point_estimate(post).items()}
    got = model.prior.mean_net_params(means, loc, scale)
    for s in model.weight_sites:
        mean, _ = model.prior.effective_moments(s, loc[s.name], scale[s.name] ** 2, loc, scale)
        torch.testing.assert_close(got[s.name], mean, rtol=1e-6, atol=1e-9)


def test_slab_scale_mean_against_numerical_integration():
    """``E[slab(s z)]`` at ``c = 1``, ``log(s z) ~ N(0, 1)``, against adaptive quadrature
    (scipy): 0.65815; ``slab(E[s] E[z])`` would be 1.30 times that."""
    from scipy.integrate import quad
    from scipy.stats import norm

    prior = priors.Horseshoe(slab_scale=1.0)
    site = type("S", (), {"name": "w"})()
    mu = torch.zeros(1, dtype=torch.float64)
    sd = torch.full((1,), 0.5**0.5, dtype=torch.float64)  # sd_s^2 + sd_z^2 = 1
    e1, _ = prior.scale_moments(site, {"w.s": mu, "w.z": mu}, {"w.s": sd, "w.z": sd})
    want = quad(lambda u: np.exp(u) / np.sqrt(1 + np.exp(2 * u)) * norm.pdf(u), -30, 30)[0]
    assert float(e1) == pytest.approx(want, rel=1e-6)
    x = np.exp(0.5)
    assert (x / np.sqrt(1 + x * x)) / want == pytest.approx(1.30, abs=0.01)


def test_pruning_mean_network_holds_the_expected_weights():
    """``pruning.mean_network`` (what prune() shrinks and export writes) carries
    ``mean_net_params``: E_q[slab(s z)] m, not the composition of the means."""
    from bayesstruct.pruning import mean_network

    model, post = _posterior(C)
    loc, scale = variational_tensors(post)
    means = {k: torch.as_tensor(v, dtype=torch.float32)
             for k, v in posterior.point_estimate(post).items()}
    want = model.prior.mean_net_params(means, loc, scale)
    naive = model.prior.net_params(means)
    net = mean_network(post, model)
    for site in ("fc1.weight", "fc2.weight"):
        got = net.get_parameter(site).detach()
        torch.testing.assert_close(got, want[site].to(got), rtol=1e-5, atol=1e-7)
        assert not torch.allclose(got, naive[site].to(got), rtol=1e-3)


def _split(model, n=64):
    from bayesstruct.data import Split

    g = torch.Generator().manual_seed(5)
    return Split(torch.randn(n, 4, generator=g), torch.randint(0, 2, (n,), generator=g))


def _plain_nll(net, split):
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(net(split.x), split.y))


def test_mean_values_form_the_expected_weights():
    """``Prior.mean_site_values`` (what every evaluation path feeds ``predict``) gives the
    sites whose network is ``mean_net_params``: ``E_q[slab(s z)] m`` per weight."""
    model, post = _posterior(C)
    loc, scale = variational_tensors(post)
    means = {k: torch.as_tensor(v, dtype=torch.float64)
             for k, v in posterior.point_estimate(post).items()}
    got = model.prior.net_params(model.prior.mean_site_values(means, loc, scale))
    want = model.prior.mean_net_params(means, loc, scale)
    for s in model.sites:
        torch.testing.assert_close(got[s.name], want[s.name], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("slab_scale", [C, None], ids=["regularised", "plain"])
def test_evaluation_paths_read_the_posterior_mean_network(slab_scale):
    """The test metrics, the unpruned point of the pruning and SNR curves, and SVI validation
    all evaluate the network whose weights are E_q[w]: the NLL of a plain forward pass of
    ``mean_network`` (checked against Monte Carlo above)."""
    from bayesstruct.pruning import mean_network, mean_values, pruning_curve, snr_curve
    from bayesstruct.training import evaluate

    model, post = _posterior(slab_scale)
    split = _split(model)
    want = _plain_nll(mean_network(post, model), split)
    assert evaluate(model, mean_values(post, model), split)["nll"] == pytest.approx(want,
                                                                                    rel=1e-5)
    curve = pruning_curve(model, post, split, [0.0], mc_samples=0)
    assert curve[0]["nll_mean"] == pytest.approx(want, rel=1e-5)
    rows = snr_curve(model, post, split, lambdas=[0.0])
    assert rows[0]["nll"] == pytest.approx(want, rel=1e-5)
    naive = evaluate(model, {k: torch.as_tensor(v, dtype=torch.float32) for k, v in
                             posterior.point_estimate(post).items()}, split)["nll"]
    if slab_scale is not None:  # composing the means is a different network
        assert naive != pytest.approx(want, rel=1e-4)
    guide = guides.MeanField(model)
    randomize_guide(guide, seed=3)
    with torch.no_grad():
        for v in guide.latent_loc.values():
            v.copy_(torch.linspace(-0.6, 0.4, v.numel()).reshape(v.shape))
    guide_net = model.prior.net_params(guide.mean_values())
    post_net = mean_network(post, model)
    for s in model.weight_sites:
        torch.testing.assert_close(guide_net[s.name], post_net.get_parameter(s.name),
                                   rtol=1e-5, atol=1e-7)
