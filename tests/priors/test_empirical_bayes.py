"""M3: the closed-form empirical-Bayes updates against a numerical minimiser (scipy)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from bayesstruct import priors
from bayesstruct.nets import mlp
from bayesstruct.priors.base import param_sites


def _kl_sum(m, s, mu, var):
    return float(np.sum(0.5 * (np.log(var) - 2 * np.log(s) + (s**2 + (m - mu) ** 2) / var - 1)))


def _posterior(seed=0):
    rng = np.random.default_rng(seed)
    net = mlp([6, 5, 3])
    sites = param_sites(net)
    loc = {s.name: torch.tensor(rng.normal(0.3, 0.8, s.shape)) for s in sites}
    scale = {s.name: torch.tensor(rng.uniform(0.05, 0.6, s.shape)) for s in sites}
    return sites, loc, scale


def _groups(site, m, per):
    """Index tuples of the weights sharing one prior (mu, sigma^2)."""
    if per == "layer":
        return [(slice(None),) * m.ndim]
    return [(slice(None), j) for j in range(m.shape[1])]


@pytest.mark.parametrize("covariance", ["diagonal", "scalar"])
@pytest.mark.parametrize("per", ["layer", "unit"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gaussian_closed_form_is_the_minimiser(per, covariance, seed):
    """M3: (mu_hat, sigma_hat^2) minimise sum_i KL(N(m_i, s_i^2) || N(mu, sigma^2)) over each
    group, for random posteriors with a diagonal or a scalar (s_i = beta) covariance."""
    sites, loc, scale = _posterior(seed)
    if covariance == "scalar":
        scale = {k: torch.full_like(v, float(v.reshape(-1)[0])) for k, v in scale.items()}
    prior = priors.Gaussian(empirical_bayes=True, per=per)
    prior.bind(sites)
    prior.double()
    prior.empirical_bayes_(loc, scale)
    for site in (s for s in sites if s.role == "weight"):
        m, s = loc[site.name].numpy(), scale[site.name].numpy()
        mu_all, var_all = (np.atleast_1d(t.numpy()) for t in prior.loc_var(site))
        for g, idx in enumerate(_groups(site, m, per)):
            mg, sg = m[idx], s[idx]
            res = minimize(lambda p, mg=mg, sg=sg: _kl_sum(mg, sg, p[0], np.exp(p[1])),
                           x0=[0.0, 0.0], method="Nelder-Mead",
                           options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 10_000})
            mu, var = mu_all[g], var_all[g]
            assert mu == pytest.approx(res.x[0], abs=1e-5)
            assert var == pytest.approx(np.exp(res.x[1]), rel=1e-5)
            # and the closed form's value is no worse than the minimiser's
            assert _kl_sum(mg, sg, mu, var) <= res.fun + 1e-9


@pytest.mark.parametrize("per", ["layer", "unit"])
@pytest.mark.parametrize("seed", range(5))
def test_eb_kl_is_never_larger_than_the_initial_priors(per, seed):
    """For the same variational parameters, the KL term under the updated prior is <= the KL
    under the prior held at its initial value (here N(0.2, 0.5^2) and N(0, 1))."""
    sites, loc, scale = _posterior(seed)
    log_var = {k: 2 * v.log() for k, v in scale.items()}
    for init in ({"loc": 0.2, "scale": 0.5}, {}):
        fixed = priors.Gaussian(**init, per=per)
        fixed.bind(sites)
        eb = priors.Gaussian(**init, per=per, empirical_bayes=True)
        eb.bind(sites)
        fixed.double()
        eb.double()
        eb.empirical_bayes_(loc, scale)
        assert float(eb.kl(loc, log_var)) <= float(fixed.kl(loc, log_var)) + 1e-9


@pytest.mark.parametrize("per", ["weight", "unit"])
def test_ard_closed_form_is_the_minimiser(per):
    sites, loc, scale = _posterior(1)
    prior = priors.ARD(per=per, hyper="empirical_bayes")
    prior.bind(sites)
    prior.double()
    prior.empirical_bayes_(loc, scale)
    for site in (s for s in sites if s.role == "weight"):
        m, s = loc[site.name].numpy(), scale[site.name].numpy()
        alpha = prior.precision(site).numpy()
        if per == "weight":
            groups = [(np.unravel_index(i, m.shape),) for i in range(m.size)][:7]
        else:
            groups = [((slice(None), j),) for j in range(m.shape[1])]
        for (idx,) in groups:
            mg, sg = m[idx], s[idx]
            res = minimize(lambda la, mg=mg, sg=sg: _kl_sum(mg, sg, 0.0, np.exp(-la[0])), x0=[0.0],
                           method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-13})
            a = alpha[idx] if per == "weight" else alpha[idx[1]]
            assert float(a) == pytest.approx(np.exp(res.x[0]), rel=1e-4)


def test_no_update_without_empirical_bayes():
    sites, loc, scale = _posterior()
    prior = priors.Gaussian(scale=0.5)
    prior.bind(sites)
    before = {k: v.clone() for k, v in prior.state_dict().items()}
    prior.empirical_bayes_({k: v.float() for k, v in loc.items()},
                           {k: v.float() for k, v in scale.items()})
    for k, v in prior.state_dict().items():
        assert torch.equal(v, before[k])
