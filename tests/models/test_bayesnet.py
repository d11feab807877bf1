"""The functional forward and the likelihoods against independent computations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from bayesstruct import nets, priors
from bayesstruct.models import BayesianNet, likelihoods
from bayesstruct.models.bayesnet import is_functional, sequential_forward


@pytest.mark.parametrize("kind,shape,hidden", [
    ("logreg", (1, 8, 8), []), ("mlp", (1, 8, 8), [7, 5]), ("lenet5", (1, 8, 8), []),
    ("lenet300", (1, 28, 28), [])])
def test_sequential_forward_equals_functional_call(kind, shape, hidden):
    torch.manual_seed(0)
    net = nets.build(kind, shape, 10, hidden, "tanh")
    assert is_functional(net)
    weights = {n: torch.randn_like(p) for n, p in net.named_parameters()}
    x = torch.randn(6, *shape)
    want = functional_call(net, weights, (x,))
    torch.testing.assert_close(sequential_forward(net, weights, x), want, rtol=0, atol=0)
    model = BayesianNet(net, priors.Gaussian(), "categorical")
    torch.testing.assert_close(model.predict(x, weights), want, rtol=0, atol=0)


def test_other_modules_fall_back_to_functional_call():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(3, 2)

        def forward(self, x):
            return 2 * self.fc1(x)

    net = Twice()
    assert not is_functional(net)
    assert not is_functional(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)))
    model = BayesianNet(net, priors.Gaussian(), "categorical")
    w = {n: torch.randn_like(p) for n, p in net.named_parameters()}
    x = torch.randn(4, 3)
    torch.testing.assert_close(model.predict(x, w), 2 * F.linear(x, w["fc1.weight"],
                                                                 w["fc1.bias"]))


def test_bernoulli_is_two_class_softmax_with_logits_zero_and_f():
    """``sigmoid(f)`` is ``softmax([0, f])[1]``: NLL, class log-probabilities and the
    MC-averaged predictive agree with the categorical likelihood on ``[0, f]``."""
    torch.manual_seed(0)
    f = 3 * torch.randn(5, 7, 1)  # 5 draws, 7 examples
    y = torch.randint(0, 2, (7,))
    ber, cat = likelihoods.get("bernoulli"), likelihoods.get("categorical")
    two = torch.cat([torch.zeros_like(f), f], -1)
    torch.testing.assert_close(ber.nll(f[0], y), cat.nll(two[0], y))
    torch.testing.assert_close(ber.nll(f[0], y), -ber.dist(f[0]).log_prob(ber.target(y, f[0]))
                               .sum())
    torch.testing.assert_close(ber.class_log_probs(f[0]), torch.log_softmax(two[0], -1))
    torch.testing.assert_close(ber.predictive(f), cat.predictive(two))
    assert ber.outputs(2) == 1 and cat.outputs(2) == 2
    with pytest.raises(ValueError, match="needs 2 classes"):
        ber.outputs(10)
    with pytest.raises(TypeError, match="no classes"):
        likelihoods.get("gaussian").class_log_probs(f[0])
