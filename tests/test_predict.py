"""``bayesstruct.predict``: per-draw outputs, the predictive mean, posterior predictive draws."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bayesstruct
from bayesstruct import guides, posterior, priors
from bayesstruct.models import BayesianNet
from bayesstruct.models.likelihoods import Gaussian as GaussianLikelihood
from bayesstruct.predict import Prediction, add_posterior_predictive, predict
from tests.helpers import iid_se, iid_se_var, randomize_guide, seed, small_model


def _posterior(model, n: int = 40, draws: int = 12):
    """A posterior from a spread-out guide (no fitting needed), with its training data."""
    guide = guides.MeanField(model)
    randomize_guide(guide, seed=seed(1))
    g = torch.Generator().manual_seed(seed(2))
    x, y = torch.randn(n, 5, generator=g), torch.arange(n) % 3
    torch.manual_seed(seed(3))
    return posterior.from_guide(model, guide, draws, observed=y, inputs=x), x, y


def _by_hand(post, x, c: int, d: int) -> torch.Tensor:
    w = {k: torch.as_tensor(post.posterior[k].values[c, d]) for k in post.posterior.data_vars}
    h = F.relu(F.linear(x, w["fc1.weight"], w["fc1.bias"]))
    return torch.softmax(F.linear(h, w["fc2.weight"], w["fc2.bias"]).double(), -1)


def test_outputs_and_mean_by_hand():
    model = small_model("gaussian", {})
    post, x, _ = _posterior(model)
    pred = bayesstruct.predict(post, model, x)
    assert isinstance(pred, Prediction) and pred.classifier
    assert pred.outputs.shape == (12, 40, 3)
    ref = np.stack([_by_hand(post, x, 0, d).numpy() for d in range(12)])
    np.testing.assert_allclose(pred.outputs, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pred.mean, ref.mean(0), rtol=1e-5, atol=1e-6)


def test_a_subset_of_draws_and_a_saved_file(tmp_path):
    model = small_model("gaussian", {})
    post, x, _ = _posterior(model)
    path = posterior.save(post, tmp_path / "post.nc")
    full = predict(path, model, x)
    part = predict(post, model, x, num_samples=4, batch_size=7)
    assert list(part.draw) == [0, 4, 7, 11] and list(part.chain) == [0] * 4
    np.testing.assert_allclose(part.outputs, full.outputs[part.draw], rtol=1e-6)


def test_two_chains_keep_their_indices():
    model = small_model("gaussian", {})
    post, x, y = _posterior(model, draws=6)
    draws = {k: np.concatenate([v.values, v.values[:, ::-1]]) for k, v in
             post.posterior.data_vars.items()}  # chain 1: chain 0 reversed
    two = posterior.from_draws(model, draws, observed=y, inputs=x, prior_draws=0)
    pred = predict(two, model, x)
    assert list(pred.chain) == [0] * 6 + [1] * 6
    np.testing.assert_allclose(pred.outputs[6:], pred.outputs[:6][::-1], rtol=1e-6)
    add_posterior_predictive(two, model, seed=seed(4))  # inputs from constant_data
    pp = two.posterior_predictive["obs"]
    assert pp.dims == ("chain", "draw", "obs_id") and pp.shape == (2, 6, 40)
    assert two.posterior_predictive.attrs["inference_library"] == "pyro"


def test_evaluation_mode():
    """Dropout is off while predicting (the outputs are the deterministic network's), and
    the network's training flag is restored."""
    torch.manual_seed(0)
    net = nn.Sequential(OrderedDict(fc1=nn.Linear(5, 4), drop=nn.Dropout(0.5),
                                    act=nn.ReLU(), fc2=nn.Linear(4, 3)))
    model = BayesianNet(net, priors.Gaussian())
    post, x, _ = _posterior(model, draws=3)
    net.train()
    a, b = predict(post, model, x), predict(post, model, x)
    assert net.training
    np.testing.assert_array_equal(a.outputs, b.outputs)
    np.testing.assert_allclose(a.outputs[1], _by_hand(post, x, 0, 1).numpy(), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.stochastic
def test_sampled_labels_follow_the_class_probabilities():
    """Over draws x inputs the frequency of each label is within 5 SE of the mean of its
    probabilities (independent Bernoulli indicators: SE ``sqrt(sum p (1 - p)) / N``)."""
    model = small_model("gaussian", {})
    post, x, _ = _posterior(model, n=200, draws=50)
    pred = predict(post, model, x)
    labels = pred.sample(seed=seed(5))
    p = pred.outputs.astype(np.float64)
    for c in range(3):
        freq = (labels == c).mean()
        se = np.sqrt((p[..., c] * (1 - p[..., c])).sum()) / p[..., c].size
        assert abs(freq - p[..., c].mean()) < 5 * se, (c, freq, p[..., c].mean())


@pytest.mark.stochastic
def test_regression_outputs_and_noise():
    """Gaussian likelihood: the outputs are ``x w' + b`` per draw, and the sampled targets
    scatter around them with the likelihood's noise (mean and variance within 5 SE)."""
    torch.manual_seed(0)
    net = nn.Sequential(OrderedDict(fc1=nn.Linear(5, 1)))
    model = BayesianNet(net, priors.Gaussian(), GaussianLikelihood(0.7))
    guide = guides.MeanField(model)
    randomize_guide(guide, seed=seed(6))
    x = torch.randn(100, 5, generator=torch.Generator().manual_seed(seed(7)))
    torch.manual_seed(seed(8))
    post = posterior.from_guide(model, guide, 30, observed=torch.zeros(100), inputs=x)
    pred = predict(post, model, x)
    assert not pred.classifier and pred.outputs.shape == (30, 100)
    w, b = post.posterior["fc1.weight"].values[0], post.posterior["fc1.bias"].values[0]
    ref = np.einsum("ni,sji->snj", x.numpy(), w)[..., 0] + b
    np.testing.assert_allclose(pred.outputs, ref, rtol=1e-5, atol=1e-5)
    resid = (pred.sample(seed=seed(9)) - pred.outputs).reshape(-1)
    assert abs(resid.mean()) < 5 * iid_se(resid)
    assert abs(resid.var() - 0.49) < 5 * iid_se_var(resid)


def test_missing_inputs_are_asked_for():
    model = small_model("gaussian", {})
    guide = guides.MeanField(model)
    post = posterior.from_guide(model, guide, 3)
    with pytest.raises(ValueError, match="pass them as x"):
        add_posterior_predictive(post, model)
    with pytest.raises(ValueError, match="num_samples"):
        predict(post, model, torch.randn(4, 5), num_samples=0)
