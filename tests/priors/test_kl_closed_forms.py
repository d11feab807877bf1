"""Closed-form KLs of every prior against Monte-Carlo estimates and torch's kl_divergence."""

from __future__ import annotations

import math

import pyro.distributions as dist
import pytest
import torch
from torch.distributions import kl_divergence

from bayesstruct.guides import MeanField
from bayesstruct.priors.base import kl_lognormal_gamma, kl_normal_normal, kl_normal_sum
from tests.helpers import PRIOR_GRID, PRIOR_IDS, randomize_guide, seed, small_model


def test_normal_normal_matches_torch():
    g = torch.Generator().manual_seed(0)
    m, mu = torch.randn(100, generator=g), torch.randn(100, generator=g)
    s, sig = torch.rand(100, generator=g) + 0.1, torch.rand(100, generator=g) + 0.1
    ours = kl_normal_normal(m, s, mu, sig**2)
    ref = kl_divergence(dist.Normal(m, s), dist.Normal(mu, sig))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("prec_shape", [(), (1, 7), (5, 7)])
@pytest.mark.parametrize("with_mu", [False, True])
def test_summed_precision_form_matches_torch(prec_shape, with_mu):
    """kl_normal_sum (scalar / per-group / per-weight precision) == sum of torch's KLs."""
    g = torch.Generator().manual_seed(1)
    m, lv = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g) - 1
    prec = torch.rand(prec_shape, generator=g) + 0.2
    mu = torch.randn(5, 7, generator=g) if with_mu else None
    ours = kl_normal_sum(m, lv.exp(), lv, prec, prec.log(), mu)
    ref = kl_divergence(dist.Normal(m, (0.5 * lv).exp()),
                        dist.Normal(0.0 if mu is None else mu,
                                    prec.rsqrt().expand(5, 7))).sum()
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.stochastic
@pytest.mark.parametrize("loc,scale,a,b", [(0.0, 0.3, 1.0, 1.0), (1.2, 0.7, 2.0, 0.5),
                                           (-0.5, 0.1, 0.5, 3.0)])
def test_lognormal_gamma_vs_monte_carlo(loc, scale, a, b):
    """The closed form against 400k draws of ``log q - log p`` (bound: 5 SE, the SE of
    their mean, ``sd / sqrt(n)``)."""
    torch.manual_seed(seed(0))
    q = dist.LogNormal(torch.tensor(loc, dtype=torch.float64), torch.tensor(scale,
                       dtype=torch.float64))
    p = dist.Gamma(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64))
    x = q.sample((400_000,))
    terms = q.log_prob(x) - p.log_prob(x)
    mc, se = terms.mean(), terms.std() / math.sqrt(len(terms))
    exact = kl_lognormal_gamma(torch.tensor(loc, dtype=torch.float64),
                               torch.tensor(scale, dtype=torch.float64), a, b)
    assert abs(float(exact - mc)) < 5 * float(se) + 1e-9


@pytest.mark.stochastic
@pytest.mark.parametrize("kind,kw", PRIOR_GRID, ids=PRIOR_IDS)
def test_prior_kl_vs_monte_carlo(kind, kw):
    """sum E_q KL(q || p) in closed form == E_q[log q(w, a) - log p(w, a)] by sampling (bound:
    5 SE, the SE of the mean of the 4000 draws, ``sd / sqrt(n)``)."""
    model = small_model(kind, kw, seed=seed(0))
    guide = MeanField(model)
    randomize_guide(guide, seed=seed(1))
    torch.manual_seed(seed(3))
    with torch.no_grad():
        exact = float(guide.kl())
        factors = guide.latent_factors()  # log-normal, or SBP's truncated log-normal
        loc, scale = guide.locs(), guide.scales()
        samples = []
        for _ in range(4000):
            lat = {k: f.sample() for k, f in factors.items()}
            w = {k: dist.Normal(loc[k], scale[k]).sample() for k in loc}
            log_q = sum(factors[k].log_prob(v).sum() for k, v in lat.items()) + sum(
                dist.Normal(loc[k], scale[k]).log_prob(v).sum() for k, v in w.items())
            samples.append(float(log_q - model.prior.log_prob(w, lat)))
    t = torch.tensor(samples, dtype=torch.float64)
    mc, se = float(t.mean()), float(t.std() / math.sqrt(len(t)))
    assert abs(exact - mc) < 5 * se, (exact, mc, se)
