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
    with pytest.raises(ValueError, match="improper prior"):
        mcmc(small_model(*SPARSE_GRID[0]), split, progress=False)


def _ard_prior_model():
    """ARD with a Gamma(1, 1) hyperprior on a linear model whose likelihood is flat (noise
    1e6): the posterior is the prior, so each weight is Student-t with 2 degrees of freedom
    and scale 1 (the Normal-Gamma mixture), a funnel in (w, alpha)."""
    torch.manual_seed(0)
    x = torch.randn(20, 3)
    net = nn.Sequential()
    net.add_module("fc1", nn.Linear(3, 1))
    model = BayesianNet(net, priors.ARD(hyper="gamma", a=1.0, b=1.0),
                        GaussianLikelihood(1e6), num_data=20)
    return model, Split(x, torch.zeros(20))


def test_noncentred_ard_samples_the_student_t_marginal_without_divergences():
    model, split = _ard_prior_model()
    post = mcmc(model, split, num_warmup=200, num_samples=600, num_chains=2, seed=1,
                jit_compile=True, progress=False)
    assert post.attrs["noncentred"] == "fc1.weight"
    assert "fc1.weight_decentered" not in post.posterior
    assert int(post.sample_stats["diverging"].sum()) == 0
    w = post.posterior["fc1.weight"].values.reshape(-1)
    # 3600 correlated draws: test against t(2) on a thinned set (KS assumes independence)
    assert stats.kstest(w[::5], stats.t(df=2).cdf).pvalue > 1e-3
    alpha = post.posterior["fc1.weight.alpha"].values.reshape(-1)
    assert stats.kstest(alpha[::5], stats.gamma(a=1.0, scale=1.0).cdf).pvalue > 1e-3


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
