"""M5: rho against its definition evaluated with scipy's Normal density."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from bayesstruct import guides, posterior, pruning
from tests.helpers import randomize_guide, seed, small_model


@pytest.mark.parametrize("kind,kw", [("gaussian", {"loc": 0.3, "empirical_bayes": True}),
                                     ("ard", {"per": "weight"})])
def test_rho_is_density_at_prior_mode_over_density_at_q_mode(kind, kw):
    model = small_model(kind, kw)
    guide = guides.MeanField(model)
    randomize_guide(guide)
    post = posterior.from_guide(model, guide, num_draws=2)
    rho = pruning.relative_density(post)
    assert set(rho) == {"fc1.weight", "fc2.weight"}
    for name, r in rho.items():
        m = post.variational_loc[name].values.astype(np.float64)
        s = post.variational_scale[name].values.astype(np.float64)
        mode = model.prior.mode(model.site(name))
        expected = norm.pdf(mode, m, s) / norm.pdf(m, m, s)
        np.testing.assert_allclose(r, expected, rtol=1e-10)
        assert np.all((r >= 0) & (r <= 1))


def test_unit_rho_is_the_product_over_the_group():
    model = small_model("ard", {"per": "unit"})
    guide = guides.MeanField(model)
    randomize_guide(guide)
    post = posterior.from_guide(model, guide, num_draws=2)
    w = pruning.log_relative_density(post)["fc1.weight"]
    u = pruning.log_relative_density(post, level="unit")["fc1.weight"]
    assert u.shape == (5,)
    np.testing.assert_allclose(np.exp(u), np.prod(np.exp(w), axis=0), rtol=1e-10)


def test_rho_needs_a_density(digits):
    model = small_model("gaussian", {})
    post = posterior.from_guide(model, guides.Delta(model), num_draws=2)
    with pytest.raises(ValueError, match="magnitude"):
        pruning.relative_density(post)
    with pytest.raises(ValueError, match="level"):
        pruning.relative_density(post, level="layer")


def _gaussian_draws_posterior(m, s, n_draws, seed_=0):
    """An InferenceData of exact draws from N(m, s^2) per weight (2 chains), as an MCMC
    engine would write it."""
    from bayesstruct import nets, posterior, priors
    from bayesstruct.models import BayesianNet

    model = BayesianNet(nets.logistic_regression(m.shape[1], m.shape[0]), priors.Gaussian())
    rng = np.random.default_rng(seed_)
    w = m + s * rng.standard_normal((2, n_draws // 2, *m.shape))
    b = rng.standard_normal((2, n_draws // 2, m.shape[0]))
    return posterior.from_draws(model, {"fc1.weight": w, "fc1.bias": b},
                                attrs={"engine": "nuts"})


@pytest.mark.stochastic
def test_sample_based_rho_agrees_with_the_closed_form_on_a_gaussian_posterior():
    """For Gaussian draws, E[KDE(x)] = N(x; m, s^2 + h^2) exactly, so log rho_KDE estimates
    -m^2 / (2 (s^2 + h^2)); with the 2000 draws the KDE uses (its ``max_draws``) h ~ 0.2 s and
    that is within 5 % of the closed form -m^2 / (2 s^2) of the Gaussian posterior itself.

    Bound: 5 SE per weight, the KDE's asymptotic SE of log KDE(0) (below; it sets the size of
    the errors, measured: their sd over seeds is 1.04 SE, their mean -0.26 SE, the log's and
    the grid maximum's bias); the mean |z| over the 40 weights within 5 SE of 0.8 (the mean of
    |N(0, 1)|; its SE sd(|z|) / sqrt(40)); and every pair of weights whose smoothed values
    differ by more than 5 SE of the difference is ranked as the closed form ranks it (the
    ranking is what pruning uses)."""
    from bayesstruct.pruning import log_relative_density
    from bayesstruct.pruning.density import silverman_bandwidth

    n = 2000  # kde_log_relative_density's max_draws: more would be thinned to these
    snr = np.linspace(0.0, 2.5, 40).reshape(4, 10)
    s = np.full_like(snr, 0.3)
    m = snr * s * np.where(np.arange(40).reshape(4, 10) % 2, 1, -1)
    post = _gaussian_draws_posterior(m, s, n, seed(0))
    est = log_relative_density(post)["fc1.weight"]             # auto -> KDE for nuts
    assert np.array_equal(est, log_relative_density(post, method="kde")["fc1.weight"])
    closed = -m**2 / (2 * s**2)
    h = silverman_bandwidth(post.posterior["fc1.weight"].values.reshape(n, -1)).reshape(4, 10)
    smoothed = -m**2 / (2 * (s**2 + h**2))
    # Monte-Carlo error of log KDE(0): Var KDE(x) ~ q(x) / (2 sqrt(pi) n h), so its relative
    # sd is 1 / sqrt(2 sqrt(pi) n h q(0)); the mode's density is estimated far better
    q0 = np.exp(smoothed) / np.sqrt(2 * np.pi * (s**2 + h**2))
    se = 1.0 / np.sqrt(2 * np.sqrt(np.pi) * n * h * q0)
    z = np.abs(est - smoothed) / se
    assert z.max() < 5.0, z.max()
    assert abs(z.mean() - 0.8) < 5 * z.std() / np.sqrt(z.size), z.mean()  # errors as predicted
    # the bandwidth bias against the closed form itself stays within ~5 % (h ~ 0.2 s)
    assert np.all(np.abs(smoothed - closed) <= 0.05 * np.abs(closed) + 1e-12)
    assert np.all(est <= 0)
    # the ranking (what pruning uses) is the closed form's wherever the draws can tell
    e, c, sm, v = est.ravel(), closed.ravel(), smoothed.ravel(), se.ravel() ** 2
    apart = np.abs(sm[:, None] - sm[None]) > 5 * np.sqrt(v[:, None] + v[None])
    assert apart.sum() > 0.5 * apart.size  # most pairs are told apart (2/3 here)
    same = np.sign(e[:, None] - e[None]) == np.sign(c[:, None] - c[None])
    assert same[apart].all()


def test_sample_based_unit_rho_sums_the_weights():
    from bayesstruct.pruning import log_relative_density

    m = np.linspace(-1, 1, 12).reshape(3, 4)
    post = _gaussian_draws_posterior(m, np.full_like(m, 0.5), 1000)
    w = log_relative_density(post)["fc1.weight"]
    np.testing.assert_allclose(log_relative_density(post, level="unit")["fc1.weight"],
                               w.sum(0))
    with pytest.raises(ValueError, match="allowed: auto, closed_form, kde"):
        log_relative_density(post, method="hist")
