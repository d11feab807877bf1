"""The |mu/sigma| rule (Graves 2011) and the pruning curves it draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bayesstruct import guides, nets, posterior, priors, pruning
from bayesstruct.inference import evaluate
from bayesstruct.models import BayesianNet
from bayesstruct.pruning.snr import lambda_grid
from tests.helpers import randomize_guide


def _post(ds, net="rnn", **prior_kw):
    torch.manual_seed(0)
    model = BayesianNet(nets.build(net, ds.input_shape, ds.n_classes, [8]),
                        priors.Gaussian(**prior_kw), num_data=len(ds.train))
    guide = guides.MeanField(model)
    randomize_guide(guide)
    return model, guide, posterior.from_guide(model, guide, 2)


def test_snr_is_mu_over_sigma_and_rho_its_gaussian(digits):
    model, guide, post = _post(digits)
    lam = pruning.snr(post, model)
    loc, scale = guide.moments()
    log_rho = pruning.log_relative_density(post)
    for s in model.weight_sites:
        expected = (loc[s.name].abs() / scale[s.name]).double().numpy()
        np.testing.assert_allclose(lam[s.name], expected, rtol=1e-5)
        np.testing.assert_allclose(log_rho[s.name], -lam[s.name] ** 2 / 2, rtol=1e-4)


def test_per_unit_prior_modes_enter_rho(digits):
    model, guide, post = _post(digits, per="unit", empirical_bayes=True)
    model.prior.empirical_bayes_(*guide.moments())
    post = posterior.from_guide(model, guide, 2)
    site = model.site("rnn.hh.weight")
    mu = model.prior.loc_var(site)[0]
    assert mu.shape == (8,) and post.variational_loc[site.name].attrs["prior_mode"].shape == (8,)
    m, s = (t[site.name].double() for t in guide.moments())
    expected = (-(m - mu.double()[None]) ** 2 / (2 * s * s)).numpy()
    np.testing.assert_allclose(pruning.log_relative_density(post)[site.name], expected,
                               rtol=1e-5)


def test_snr_curve_starts_dense_and_removes_by_threshold(digits):
    model, guide, post = _post(digits)
    scores = pruning.snr(post, model)
    lambdas = lambda_grid(scores)
    assert lambdas[0] == 0 and np.all(np.diff(lambdas) > 0)
    rows = pruning.snr_curve(model, post, digits.test, lambdas, scores=scores)
    params = {k: torch.as_tensor(v) for k, v in posterior.point_estimate(post).items()}
    dense = evaluate(model, params, digits.test)
    assert rows[0]["acc"] == dense["acc"] and rows[0]["removed"] == 0
    assert rows[0]["log_lik"] == pytest.approx(-dense["nll"] * len(digits.test))
    kept = [r["weights_kept"] for r in rows]
    assert kept[0] == sum(v.size for v in scores.values())
    assert all(a >= b for a, b in zip(kept[:-1], kept[1:], strict=True))
    last = pruning.snr_curve(model, post, digits.test, [np.inf], scores=scores)[0]
    assert last["weights_kept"] == 0 and last["removed"] == 1.0


def test_snr_curve_keeps_the_planted_weights(digits):
    """Logistic regression with planted q: mu = +-(0.5, 1.5, 2.5, 3.5) cycling, sigma = 1, so
    |mu/sigma| takes each of the four levels at 160 of the 640 weights; a weight is kept when
    |mu/sigma| >= lambda (at lambda = 1.5 the 1.5s stay)."""
    torch.manual_seed(0)
    model = BayesianNet(nets.build("logreg", digits.input_shape, digits.n_classes),
                        priors.Gaussian(), num_data=len(digits.train))
    guide = guides.MeanField(model)
    i = np.arange(640).reshape(10, 64)
    planted = (0.5 + i % 4) * np.where(i % 3 == 0, -1.0, 1.0)
    with torch.no_grad():
        guide.loc["fc1__weight"].copy_(torch.as_tensor(planted))
        guide.log_var["fc1__weight"].zero_()  # sigma = 1 exactly
    post = posterior.from_guide(model, guide, 2)
    lambdas = [0.0, 1.0, 1.5, 2.0, 3.0, 3.5, 4.0]
    rows = pruning.snr_curve(model, post, digits.test, lambdas)
    by_hand = [640, 480, 480, 320, 160, 160, 0]
    by_numpy = [int(np.count_nonzero(np.abs(planted) >= lam)) for lam in lambdas]
    assert by_numpy == by_hand
    assert [r["weights_kept"] for r in rows] == by_hand
    assert [r["params_kept"] for r in rows] == [k + 10 for k in by_hand]  # 10 biases kept
    assert [r["removed"] for r in rows] == pytest.approx([1 - k / 640 for k in by_hand])


def test_removable_reads_the_largest_fraction_within_tolerance():
    rows = [{"lambda": 0.0, "removed": 0.0, "acc": 0.90},
            {"lambda": 0.5, "removed": 0.5, "acc": 0.895},
            {"lambda": 1.0, "removed": 0.7, "acc": 0.891},
            {"lambda": 2.0, "removed": 0.9, "acc": 0.85},
            {"lambda": 3.0, "removed": 0.95, "acc": 0.89}]  # noisy tail beyond a drop
    r = pruning.removable(rows, 0.01)
    assert r["removed"] == 0.95 and r["lambda"] == 3.0 and r["dense"] == 0.90
    assert pruning.removable(rows, 0.0)["removed"] == 0.0
