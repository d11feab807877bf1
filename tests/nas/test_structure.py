"""The Gumbel-softmax structure posterior (M2.6): the Monte Carlo KL estimator against a
brute-force integral over a 2-op edge, and its log-densities against Pyro's."""

from __future__ import annotations

import math

import numpy as np
import pyro.distributions as dist
import pytest
import torch
from scipy import integrate, special, stats

from bayesstruct.nas.structure import OperationChoice, relaxed_kl_integrand
from tests.helpers import seed


def _brute_force_kl(logits: tuple[float, float], tau: float, prior: str, c: float) -> float:
    """KL(q || p) for a 2-op edge by quadrature, from first principles.

    gamma = (t, 1 - t) with t = sigmoid((d + L) / tau), d = alpha_1 - alpha_2 and
    L = g_1 - g_2 ~ Logistic(0, 1) (difference of two Gumbels). In u = logit t the density
    of q is tau * logistic(tau u - d); the uniform Concrete prior is the same with d = 0,
    Dirichlet(c, c) is Beta(c, c) in t, i.e. Beta(sigmoid u) sigmoid(u) sigmoid(-u) in u.
    KL is invariant under the change of variables t -> u.
    """
    d = logits[0] - logits[1]

    def log_q(u):
        return math.log(tau) + stats.logistic.logpdf(tau * u - d)

    def log_p(u):
        if prior == "uniform":
            return math.log(tau) + stats.logistic.logpdf(tau * u)
        log_t, log_1mt = -np.logaddexp(0.0, -u), -np.logaddexp(0.0, u)  # stable in the tails
        log_beta = float(special.betaln(c, c))
        return (c - 1.0) * (log_t + log_1mt) - log_beta + log_t + log_1mt

    def f(u):
        lq = log_q(u)
        return math.exp(lq) * (lq - log_p(u))

    lo, hi = (d - 40.0) / tau, (d + 40.0) / tau  # q's mass outside is below e^-40
    val, err = integrate.quad(f, lo, hi, limit=400, points=[d / tau])
    assert err < 1e-7
    return val


CASES = [((0.0, 0.0), 1.0, "uniform", 1.0), ((1.5, -0.5), 1.0, "uniform", 1.0),
         ((2.0, 0.0), 0.5, "uniform", 1.0), ((-1.0, 0.7), 0.3, "uniform", 1.0),
         ((0.0, 0.0), 1.0, "dirichlet", 1.0), ((1.5, -0.5), 0.5, "dirichlet", 1.0),
         ((2.0, 0.0), 1.0, "dirichlet", 0.5), ((-1.0, 0.7), 0.7, "dirichlet", 2.0)]


@pytest.mark.stochastic
@pytest.mark.parametrize(("logits", "tau", "prior", "c"), CASES)
def test_kl_estimator_is_unbiased_against_a_brute_force_integral(logits, tau, prior, c):
    """200k float64 draws of the integrand against the quadrature (bound: 5 SE, ``sd /
    sqrt(n)``, plus 1e-4 for the quadrature), and the module's own float32 estimate from 20k
    draws (bound: 5 SE plus 1e-3 for float32)."""
    exact = _brute_force_kl(logits, tau, prior, c)
    choice = OperationChoice(1, 2, temperature=tau, prior=prior, concentration=c)
    with torch.no_grad():
        choice.alpha.copy_(torch.tensor([logits]))
    torch.manual_seed(seed(0))
    n = 200_000
    q = torch.distributions.relaxed_categorical.ExpRelaxedCategorical(
        torch.tensor(tau, dtype=torch.float64), logits=choice.alpha.detach().double())
    x = q.sample((n,))
    terms = relaxed_kl_integrand(x, choice.alpha.detach().double(), tau, prior, c)[:, 0]
    est, se = float(terms.mean()), float(terms.std()) / math.sqrt(n)
    assert abs(est - exact) < 5 * se + 1e-4, (est, exact, se)
    # the module's own estimate (float32, reparameterised draws) agrees as well
    with torch.no_grad():
        assert abs(float(choice.kl(20_000)) - exact) < 5 * float(terms.std()) / math.sqrt(
            20_000) + 1e-3
    if logits == (0.0, 0.0) and (prior == "uniform" or (tau == 1.0 and c == 1.0)):
        # q = p: the uniform Concrete, and at tau = 1 sigmoid(Logistic) is Uniform(0, 1)
        assert exact == pytest.approx(0.0, abs=1e-9)
    else:
        assert exact > 1e-4


@pytest.mark.parametrize("prior", ["uniform", "dirichlet"])
def test_log_ratio_matches_pyro_densities(prior):
    """On draws away from the simplex's edges, log q(gamma) - log p(gamma) equals Pyro's
    RelaxedOneHotCategorical / Dirichlet log-densities of gamma."""
    torch.manual_seed(1)
    choice = OperationChoice(5, 4, temperature=2.0, prior=prior, concentration=1.5,
                             init_scale=1.0)
    x = torch.distributions.relaxed_categorical.ExpRelaxedCategorical(
        torch.tensor(2.0), logits=choice.alpha.detach()).sample((64,)).double()
    alpha = choice.alpha.detach().double()
    ratio = relaxed_kl_integrand(x, alpha, 2.0, prior, 1.5)
    gamma = x.exp()
    q = dist.RelaxedOneHotCategorical(torch.tensor(2.0, dtype=torch.float64), logits=alpha)
    p = (dist.RelaxedOneHotCategorical(torch.tensor(2.0, dtype=torch.float64),
                                       logits=torch.zeros_like(alpha)) if prior == "uniform"
         else dist.Dirichlet(torch.full_like(alpha, 1.5)))
    torch.testing.assert_close(ratio, q.log_prob(gamma) - p.log_prob(gamma), rtol=1e-6,
                               atol=1e-6)


def test_rsample_is_differentiable_and_on_the_simplex():
    choice = OperationChoice(14, 7, temperature=0.5, init_scale=1.0)
    gamma, kl = choice.rsample()
    assert gamma.shape == (14, 7)
    torch.testing.assert_close(gamma.sum(-1), torch.ones(14))
    kl.backward()
    assert choice.alpha.grad is not None and torch.isfinite(choice.alpha.grad).all()
    assert np.isfinite(float(choice.kl(8).detach()))


def test_low_temperature_draws_keep_a_finite_dirichlet_kl():
    # at tau = 0.05 most components of gamma underflow to 0 in float32; the log-space
    # density stays finite
    choice = OperationChoice(14, 7, temperature=0.05, prior="dirichlet", init_scale=3.0)
    assert torch.isfinite(choice.kl(256))


def test_bad_prior_is_refused():
    with pytest.raises(ValueError, match="allowed: uniform, dirichlet"):
        OperationChoice(2, 2, prior="beta")
