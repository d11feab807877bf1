"""Structured Bayesian Pruning: the truncated log-normal / log-uniform closed forms against
numerical integration and independent draws (SciPy's truncated normal), and the prior's fast
forward against sampling the noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from bayesstruct import nets, priors
from bayesstruct.guides import LogNormal
from bayesstruct.models import BayesianNet
from bayesstruct.priors.truncated import (
    TruncatedLogNormal,
    TruncatedLogUniform,
    kl_truncated_lognormal_loguniform,
    log_ndtr_diff,
    truncated_lognormal_log_moment,
    truncated_lognormal_log_snr,
)
from tests.helpers import iid_se, iid_se_var, seed

A, B = -20.0, 0.0
#: (mu, sigma) of log theta: inside the interval, at its upper end (where the paper's
#: guide starts), far below it, above it, wide, and very narrow
CASES = [(-3.0, 1.0), (0.0, math.exp(-5)), (-25.0, 2.0), (2.0, 0.5), (-10.0, 8.0),
         (-0.5, 0.01), (-19.0, 0.3)]


def _t(x: float) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


def _truncnorm(mu: float, sigma: float, a: float = A, b: float = B):
    return stats.truncnorm((a - mu) / sigma, (b - mu) / sigma, loc=mu, scale=sigma)


@pytest.mark.parametrize("mu,sigma", CASES)
def test_kl_matches_numerical_integration(mu, sigma):
    """KL(q || p) = int q(u) log(q(u) (b - a)) du over u = log theta in [a, b] (quadrature
    of SciPy's truncated-normal density, with the bulk of q as breakpoints)."""
    q = _truncnorm(mu, sigma)
    lo, hi = q.ppf(1e-12), q.ppf(1 - 1e-12)

    def integrand(u):
        return q.pdf(u) * (q.logpdf(u) + math.log(B - A))

    ref, err = integrate.quad(integrand, lo, hi, points=[q.median()], limit=200,
                              epsabs=1e-11, epsrel=1e-10)
    ours = float(kl_truncated_lognormal_loguniform(_t(mu), _t(sigma), A, B))
    assert ours == pytest.approx(ref, rel=1e-7, abs=1e-7)


@pytest.mark.parametrize("mu,sigma", CASES)
def test_moments_match_numerical_integration(mu, sigma):
    """E[theta^k] = int exp(k u) q(u) du, k = 1, 2."""
    q = _truncnorm(mu, sigma)
    lo, hi = q.ppf(1e-12), q.ppf(1 - 1e-12)
    for k in (1, 2):
        ref, _ = integrate.quad(lambda u, k=k: math.exp(k * u) * q.pdf(u), lo, hi,
                                points=[q.median()], limit=200, epsabs=0, epsrel=1e-11)
        ours = float(torch.exp(truncated_lognormal_log_moment(_t(mu), _t(sigma), A, B, k)))
        assert ours == pytest.approx(ref, rel=1e-7)


def test_log_ndtr_diff_in_both_tails():
    """log(Phi(hi) - Phi(lo)) far in either tail, where the plain difference is 0 or 1 - 1."""
    for lo, hi in [(-40.0, -39.0), (39.0, 40.0), (-1.0, 2.0), (8.0, 8.0 + 1e-6)]:
        if lo > 0:  # Phi(hi) - Phi(lo) = sf(lo) - sf(hi), by SciPy's log survival function
            big, small = stats.norm.logsf(lo), stats.norm.logsf(hi)
        else:
            big, small = stats.norm.logcdf(hi), stats.norm.logcdf(lo)
        ref = big + np.log1p(-np.exp(small - big))
        ours = float(log_ndtr_diff(_t(lo), _t(hi)))
        assert ours == pytest.approx(float(ref), rel=1e-8)


@pytest.mark.stochastic
@pytest.mark.parametrize("mu,sigma", [(-3.0, 1.0), (-0.5, 0.4), (-10.0, 8.0), (1.0, 1.5)])
def test_snr_matches_monte_carlo(mu, sigma):
    """SNR = E[theta] / sd[theta] against 400k draws of SciPy's truncated normal (not our
    sampler); the bound is 5 SE of the sample SNR by the delta method, whose gradient in
    ``(E theta, E theta^2)`` is applied to the draws' own covariance."""
    rng = np.random.default_rng(seed(11))
    theta = np.exp(_truncnorm(mu, sigma).rvs(400_000, random_state=rng))
    m1, m2 = theta.mean(), (theta**2).mean()
    var = m2 - m1 * m1
    snr = m1 / math.sqrt(var)
    grad = np.array([1 / math.sqrt(var) + m1 * m1 / var**1.5, -0.5 * m1 / var**1.5])
    cov = np.cov(np.stack([theta, theta**2])) / len(theta)
    se = math.sqrt(grad @ cov @ grad)
    ours = math.exp(float(truncated_lognormal_log_snr(_t(mu), _t(sigma), A, B)))
    assert abs(ours - snr) < 5 * se


@pytest.mark.stochastic
@pytest.mark.parametrize("mu,sigma", [(-3.0, 1.0), (0.0, 0.05), (-25.0, 2.0), (3.0, 1.0)])
def test_sampler_matches_scipy_truncnorm(mu, sigma):
    """Our inverse-CDF draws of log theta against SciPy's truncated normal: the mean (5 SE)
    and a Kolmogorov-Smirnov test at the 5-SE p-value floor. The draws keep their gradient
    in (mu, sigma)."""
    torch.manual_seed(seed(12))
    loc = _t(mu).requires_grad_()
    q = TruncatedLogNormal(loc.expand(200_000), _t(sigma).expand(200_000), A, B)
    u = torch.log(q.rsample())
    u.sum().backward()
    assert loc.grad is not None and torch.isfinite(loc.grad)
    u = u.detach().numpy()
    ref = _truncnorm(mu, sigma)
    assert abs(u.mean() - ref.mean()) < 5 * float(iid_se(u)) + 1e-12
    assert stats.kstest(u, ref.cdf).pvalue > 5.7e-7
    assert A <= u.min() and u.max() <= B


def test_log_probs_integrate_to_one():
    """Both densities of theta integrate to 1 over (e^a, e^b) (quadrature in u = log theta,
    with the Jacobian theta)."""
    q = TruncatedLogNormal(_t(-2.0), _t(0.7), A, B)
    p = TruncatedLogUniform(A, B)
    for d in (q, p):
        total, _ = integrate.quad(lambda u, d=d: math.exp(u + float(d.log_prob(_t(math.exp(u))))),
                                  A, B, points=[-2.0], limit=200)
        assert total == pytest.approx(1.0, rel=1e-7)
    assert float(q.log_prob(_t(2.0))) == -math.inf  # theta = 2 > e^0: outside the support


@pytest.mark.stochastic
@pytest.mark.parametrize("weights", ["point", "meanfield"])
def test_fast_forward_moments_match_sampled_noise(weights):
    """The guide's first layer under SBP: one x repeated 40k times, each copy with its own
    draw of every unit's noise. Per output unit, the sample mean and variance against

        E[a_j] = sum_g x_g E[theta_g] m_jg + b_j,
        Var[a_j] = sum_g x_g^2 (E[theta_g^2] (m_jg^2 + s_jg^2) - E[theta_g]^2 m_jg^2)

    (independent units; ``s = 0`` for point weights), z-tests at 5 SE."""
    torch.manual_seed(seed(13))
    model = BayesianNet(nets.mlp([6, 4, 3]), priors.SBP(), num_data=100)
    guide = LogNormal(model, weights=weights)
    with torch.no_grad():
        guide.latent_loc["fc1__weight__theta"].copy_(torch.linspace(-3.0, -0.2, 6))
        guide.latent_raw_scale["fc1__weight__theta"].copy_(torch.linspace(-1.0, 1.0, 6))
        if weights == "meanfield":
            guide.log_var["fc1__weight"].fill_(-3.0)
    x = torch.linspace(-1.0, 2.0, 6)
    n = 40_000
    with torch.no_grad():
        loc, (lat_loc, lat_scale) = guide.locs(), guide.latent_params()
        var = {k: v.exp() for k, v in guide.log_variances().items()}
        scales = model.prior.input_scales(lat_loc, lat_scale, n)
        guide._state.update(loc=loc, var=var, mean_only=False, input_scale=scales)
        a = guide.lrt_net.fc1(x.expand(n, 6)).double().numpy()
    guide._state.clear()
    site = model.site("fc1.weight")
    e1, e2 = (t.detach().double() for t in model.prior.scale_moments(site, lat_loc, lat_scale))
    m = loc["fc1.weight"].detach().double()
    s2 = var["fc1.weight"].double() if "fc1.weight" in var else torch.zeros_like(m)
    b = loc["fc1.bias"].detach().double()
    s2b = var["fc1.bias"].double() if "fc1.bias" in var else torch.zeros_like(b)
    xd = x.double()
    mean = (xd * e1 * m).sum(1) + b
    variance = (xd**2 * (e2 * (m**2 + s2) - e1**2 * m**2)).sum(1) + s2b
    z_mean = (a.mean(0) - mean.numpy()) / iid_se(a)
    z_var = (a.var(0, ddof=1) - variance.numpy()) / iid_se_var(a)
    assert np.abs(z_mean).max() < 5 and np.abs(z_var).max() < 5
