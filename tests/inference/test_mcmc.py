"""NUTS / HMC through Pyro's MCMC on a BayesianNet: the conjugate posterior, the layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from bayesstruct import priors
from bayesstruct.data import Split
from bayesstruct.inference.mcmc import mcmc
from bayesstruct.models import BayesianNet
from bayesstruct.models.likelihoods import Gaussian as GaussianLikelihood
from tests.helpers import SPARSE_GRID, chain_se, chain_se_var, seed, small_model
from tests.inference.test_sgld import _analytic, _linear_model


@pytest.mark.stochastic
@pytest.mark.parametrize("kernel", ["nuts", "hmc"])
def test_mcmc_matches_the_conjugate_posterior(kernel):
    """Exact gradients and a Metropolis correction, so no step-size bias: each posterior mean
    and variance of [w, b] within 5 Monte-Carlo SEs of the analytic ones (bound: 5 SE; the SE
    of a mean is ``sd / sqrt(ESS)``, of a variance the SE of the mean of ``(x - mean)^2``,
    both with ArviZ's ESS of those draws). The bounds must stay useful (a mixing regression
    fails here): 5 SE below 0.3 posterior sd for the means, below 50 % for the variances.

    HMC's trajectory length is ``step_size * num_steps`` at the initial step size (Pyro takes
    ``int(length / adapted step)`` leapfrog steps afterwards, 2-3 here): 2.2, so with the
    adapted step (~0.75) a trajectory spans a quarter to a third of the period 2 pi of the
    preconditioned Gaussian and the draws are nearly independent (an ESS of 800-3700 of the
    2 x 800 for the means, 400-1400 for the variances, measured); the JIT-traced potential
    gives the eager one's draws (tested below) three times faster."""
    model, split = _linear_model(seed(0))
    post = mcmc(model, split, kernel=kernel, num_warmup=200, num_samples=800, num_chains=2,
                step_size=0.1, num_steps=22, jit_compile=True, seed=seed(0), progress=False)
    assert post.posterior["fc1.weight"].dims == ("chain", "draw", "fc1_out", "fc1_in")
    assert post.sample_stats["diverging"].shape == (2, 800)
    assert post.attrs["engine"] == kernel
    draws = np.concatenate([post.posterior["fc1.weight"].values.reshape(2, 800, 3),
                            post.posterior["fc1.bias"].values.reshape(2, 800, 1)], -1)
    mean, var = _analytic(split)
    se_mean, se_var = chain_se(draws), chain_se_var(draws)
    z = (draws.mean((0, 1)) - mean) / se_mean
    z_var = (draws.var((0, 1)) - var) / se_var
    assert np.all(np.abs(z) < 5), z
    assert np.all(np.abs(z_var) < 5), z_var
    assert np.all(5 * se_mean < 0.3 * np.sqrt(var)), se_mean / np.sqrt(var)
    assert np.all(5 * se_var < 0.5 * var), se_var / var


def test_mcmc_refuses_what_it_cannot_do():
    model, split = _linear_model()
    with pytest.raises(ValueError, match="allowed: nuts, hmc"):
        mcmc(model, split, kernel="gibbs", progress=False)
    with pytest.raises(ValueError, match="improper prior"):
        mcmc(small_model(*SPARSE_GRID[0]), split, progress=False)


def _ard_prior_model(data_seed: int = 0):
    """ARD with a Gamma(1, 1) hyperprior on a linear model whose likelihood is flat (noise
    1e6): the posterior is the prior, so each weight is Student-t with 2 degrees of freedom
    and scale 1 (the Normal-Gamma mixture), a funnel in (w, alpha)."""
    torch.manual_seed(data_seed)
    x = torch.randn(20, 3)
    net = nn.Sequential()
    net.add_module("fc1", nn.Linear(3, 1))
    model = BayesianNet(net, priors.ARD(hyper="gamma", a=1.0, b=1.0),
                        GaussianLikelihood(1e6), num_data=20)
    return model, Split(x, torch.zeros(20))


def _cdf_at_quantiles(draws: np.ndarray, law, probs) -> tuple[np.ndarray, np.ndarray]:
    """The empirical CDF of correlated draws ``(chain, draw, k)`` of ``k`` independent
    coordinates with the same law, at the law's ``probs``-quantiles, and its SE: per quantile,
    the indicator ``x <= q`` averaged over draws and coordinates, each coordinate's SE from
    the ESS of its own indicator draws."""
    ind = (draws[..., None] <= law.ppf(probs)).astype(np.float64)  # (chain, draw, k, p)
    k = draws.shape[-1]
    return ind.mean((0, 1, 2)), np.sqrt((chain_se(ind) ** 2).sum(0)) / k


@pytest.mark.stochastic
def test_noncentred_ard_samples_the_student_t_marginal_with_rare_divergences():
    """The draws of the 3 weights follow t(2) and those of their alpha Gamma(1, 1): the
    empirical CDF at 7 quantiles (5 % .. 95 %) of each law within 5 SE of the probability
    (bound: 5 SE, the ESS standard error of the indicator draws ``x <= q``; the t(2) has no
    variance, so quantiles, not moments). The chains are correlated: this replaces a KS test
    on thinned draws, whose p-value assumes independent ones.

    Divergences are rare, not impossible: over seed shifts 0-10 (13,200 draws) one transition
    diverged (shift 4, at alpha = 2.9), so the bound is 1 % of the draws, about 100 times the
    measured rate; a divergent transition is rejected, and the CDF check above sees any bias."""
    model, split = _ard_prior_model(seed(0))
    post = mcmc(model, split, num_warmup=200, num_samples=600, num_chains=2, seed=seed(1),
                jit_compile=True, progress=False)
    assert post.attrs["noncentred"] == "fc1.weight"
    assert "fc1.weight_decentered" not in post.posterior
    assert int(post.sample_stats["diverging"].sum()) <= 0.01 * 2 * 600
    probs = np.array([0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95])
    for site, law in (("fc1.weight", stats.t(df=2)),
                      ("fc1.weight.alpha", stats.gamma(a=1.0, scale=1.0))):
        draws = post.posterior[site].values.reshape(2, 600, -1)
        assert draws.shape[-1] == 3
        cdf, se = _cdf_at_quantiles(draws, law, probs)
        assert np.all(np.abs(cdf - probs) < 5 * se), (site, cdf, se)
        assert np.all(5 * se < 0.1), (site, se)  # still sharp: >= ~200 effective draws each


def test_jit_parallel_and_sequential_give_the_same_draws(tmp_path):
    """The JIT-traced potential equals the eager one; chains in worker processes equal chains
    in sequence (per-chain seeds); a resumed run reads finished chains back."""
    model, split = _linear_model()
    kw = dict(num_warmup=50, num_samples=50, num_chains=2, progress=False)
    eager = mcmc(model, split, **kw)
    jit = mcmc(model, split, jit_compile=True, **kw)
    par = mcmc(model, split, chain_method="parallel", checkpoint_dir=tmp_path, **kw)
    a = eager.posterior["fc1.weight"].values
    np.testing.assert_allclose(jit.posterior["fc1.weight"].values, a, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(par.posterior["fc1.weight"].values, a, rtol=1e-4, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chain-0.pt", "chain-1.pt"]
    (tmp_path / "chain-1.pt").unlink()
    resumed = mcmc(model, split, checkpoint_dir=tmp_path, resume=True, **kw)
    np.testing.assert_array_equal(resumed.posterior["fc1.weight"].values,
                                  par.posterior["fc1.weight"].values)
    with pytest.raises(ValueError, match="other settings"):
        mcmc(model, split, checkpoint_dir=tmp_path, resume=True, seed=5, **kw)
    with pytest.raises(ValueError, match="allowed: sequential, parallel"):
        mcmc(model, split, chain_method="threads", **kw)
