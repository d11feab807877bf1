"""pSGLD in Li et al.'s (2016) units: the preconditioner is built from the per-example mean
gradient, the log-posterior units are the same sampler at ``(N lr, N eps)``, and the paper's
units sample the conjugate Gaussian posterior."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bayesstruct.inference.sgld import LangevinTarget, precondition, psgld
from tests.helpers import chain_se, chain_se_var, seed
from tests.inference.test_sgld import NOISE, N, _analytic, _linear_model, _reference_langevin


def _per_example_mean_gradient(z, x, y):
    """``(1/B) sum_i grad log p(y_i | x_i, w, b) + grad log p(w, b) / N`` by hand for the
    linear Gaussian model (prior sd 1 on w, 2 on b; noise sd NOISE)."""
    w, b = z["fc1.weight"].detach().double(), z["fc1.bias"].detach().double()
    r = y.double() - (x.double() @ w.T).squeeze(-1) - b  # residuals, (B,)
    gw = (r.unsqueeze(-1) * x.double()).mean(0) / NOISE**2 - w.squeeze(0) / N
    gb = r.mean() / NOISE**2 - b / 4.0 / N
    return {"fc1.weight": gw.reshape(1, -1), "fc1.bias": gb.reshape(1)}


def test_preconditioner_is_built_from_the_per_example_mean_gradient():
    model, split = _linear_model(0)
    target = LangevinTarget(model, split.x, split.y)
    z = target.initial(torch.Generator().manual_seed(0), jitter=0.7)
    z = {k: v.requires_grad_(True) for k, v in z.items()}
    beta, eps = 0.9, 1e-3
    v_acc = {k: None for k in z}
    expected = {k: None for k in z}
    for rows in (slice(0, 50), slice(50, 100)):  # two fixed minibatches, in turn
        x, y = split.x[rows], split.y[rows]
        grads = torch.autograd.grad(target.log_density(z, x, y), list(z.values()))
        mean_grad = _per_example_mean_gradient(z, x, y)
        for (k, _), g in zip(z.items(), grads, strict=True):
            v_acc[k], G = precondition(v_acc[k], g, beta=beta, eps=eps, scale=1.0 / N)
            gg = mean_grad[k] ** 2
            expected[k] = gg if expected[k] is None else beta * expected[k] + (1 - beta) * gg
            torch.testing.assert_close(v_acc[k].double(), expected[k], rtol=1e-4, atol=1e-9)
            torch.testing.assert_close(G.double(), 1.0 / (eps + expected[k].sqrt()),
                                       rtol=1e-4, atol=0.0)


def test_log_posterior_units_are_the_paper_units_at_n_times_lr_and_eps():
    kw = dict(num_samples=15, burn_in=5, num_chains=2, batch_size=40, seed=4, progress=False)
    model, split = _linear_model(1)
    a = psgld(model, split, lr=2e-3, eps=1e-2, units="log_posterior", **kw)
    model, split = _linear_model(1)
    b = psgld(model, split, lr=2e-3 / N, eps=1e-2 / N, units="paper", **kw)
    assert b.attrs["units"] == "paper"
    for k in ("fc1.weight", "fc1.bias"):
        np.testing.assert_allclose(a.posterior[k].values, b.posterior[k].values, rtol=1e-4,
                                   atol=1e-5)
    # and the paper's lr is not the log-posterior lr: the same numbers give another sampler
    model, split = _linear_model(1)
    c = psgld(model, split, lr=2e-3, eps=1e-2, units="paper", **kw)
    assert not np.allclose(a.posterior["fc1.weight"].values, c.posterior["fc1.weight"].values,
                           atol=1e-3)


def test_units_are_checked():
    model, split = _linear_model(0)
    with pytest.raises(ValueError, match="units 'sum'; allowed: log_posterior, paper"):
        psgld(model, split, units="sum", progress=False)


@pytest.mark.stochastic
def test_paper_units_sample_the_conjugate_posterior():
    """The paper's units at ``lr = 1e-2 / N`` (the log-posterior test's ``1e-2``): the draws'
    mean and variance of [w, b] against the stationary law of an independent float64
    implementation (5 SE, engine and reference SEs combined), and that law against the
    analytic posterior (means within 0.1 sd, variances 0.95-1.25 x; see test_sgld.py)."""
    draws = 2000
    model, split = _linear_model(seed(0))
    post = psgld(model, split, num_samples=draws, burn_in=1000, num_chains=4, batch_size=50,
                 lr=1e-2 / N, eps=1e-5 / N, units="paper", seed=seed(0), progress=False)
    x = np.concatenate([post.posterior["fc1.weight"].values.reshape(4, draws, -1),
                        post.posterior["fc1.bias"].values.reshape(4, draws, 1)], -1)
    ref_mean, ref_var, ref_se_mean, ref_se_var = _reference_langevin(
        split, 1e-2, True, seed=seed(1))  # its units: lr = N * 1e-2 / N, eps = N * 1e-5 / N
    se_mean = np.sqrt(chain_se(x) ** 2 + ref_se_mean**2)
    se_var = np.sqrt(chain_se_var(x) ** 2 + ref_se_var**2)
    assert np.all(np.abs(x.mean((0, 1)) - ref_mean) < 5 * se_mean)
    assert np.all(np.abs(x.var((0, 1)) - ref_var) < 5 * se_var)
    mean, var = _analytic(split)
    assert np.all(5 * se_mean < 0.5 * np.sqrt(var)), se_mean / np.sqrt(var)
    assert np.all(np.abs(x.mean((0, 1)) - mean) < 5 * se_mean + 0.1 * np.sqrt(var))
    assert np.all((ref_var > 0.95 * var) & (ref_var < 1.25 * var)), ref_var / var
