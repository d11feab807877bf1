"""Plain regularised training (the bases of the pruning comparison) and masked retraining."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bayesstruct import nets
from bayesstruct.training.plain import (
    evaluate_net,
    regularised_loss,
    train_plain,
    weight_names,
)


def test_weight_names_are_the_layer_weights():
    assert weight_names(nets.mlp([5, 4, 3])) == ["fc1.weight", "fc2.weight"]
    assert weight_names(nets.lenet5_caffe((1, 8, 8), 3)) == [
        "conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"]


def test_regularised_loss_is_ce_plus_weight_penalties():
    torch.manual_seed(0)
    net = nets.mlp([5, 4, 3])
    x, y = torch.randn(7, 5), torch.randint(0, 3, (7,))
    w1, w2 = net.fc1.weight, net.fc2.weight
    expected = (F.cross_entropy(net(x), y) + 0.3 * (w1.abs().sum() + w2.abs().sum())
                + 0.5 * 0.2 * (w1.pow(2).sum() + w2.pow(2).sum()))  # biases not penalised
    loss = regularised_loss(net, x, y, l1=0.3, l2=0.2)
    assert float(loss.detach()) == pytest.approx(float(expected.detach()))


def test_training_lowers_the_loss_and_l1_shrinks_weights(digits):
    torch.manual_seed(0)
    plain, sparse = (nets.logistic_regression(64, 10) for _ in range(2))
    sparse.load_state_dict(plain.state_dict())
    before = evaluate_net(plain, digits.test)
    hist = train_plain(plain, digits, epochs=5, lr=1e-2, batch_size=64)
    train_plain(sparse, digits, epochs=5, lr=1e-2, batch_size=64, l1=1e-2)
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert evaluate_net(plain, digits.test)["acc"] > before["acc"] + 0.3
    assert sparse.fc1.weight.abs().sum() < 0.7 * plain.fc1.weight.abs().sum()


def test_masked_weights_stay_exactly_zero_through_adam_and_weight_decay(digits):
    torch.manual_seed(0)
    net = nets.mlp([64, 16, 10])
    rng = np.random.default_rng(0)
    masks = {"fc1.weight": rng.random((16, 64)) > 0.7, "fc2.weight": rng.random((10, 16)) > 0.5}
    before = {k: v.detach().clone() for k, v in net.named_parameters()}
    train_plain(net, digits, epochs=10, lr=1e-2, batch_size=64, l1=1e-4, l2=1e-3, masks=masks)
    for name, keep in masks.items():
        w = dict(net.named_parameters())[name].detach()
        drop = torch.as_tensor(~keep)
        assert torch.equal(w[drop], torch.zeros(int(drop.sum())))  # exactly zero
        assert not torch.signbit(w[drop]).any()  # +0.0, not -0.0
        assert (w[~drop] != before[name][~drop]).float().mean() > 0.99  # the rest trained
    assert evaluate_net(net, digits.test)["acc"] > 0.8


def test_bad_arguments_raise(digits):
    net = nets.mlp([64, 4, 10])
    with pytest.raises(ValueError, match="unknown parameters \\['fc9.weight'\\]"):
        train_plain(net, digits, epochs=1, lr=1e-2, masks={"fc9.weight": np.ones((4, 64))})
    with pytest.raises(ValueError, match="allowed: cosine, constant"):
        train_plain(net, digits, epochs=1, lr=1e-2, lr_schedule="step")
    with pytest.raises(ValueError, match="lr > 0"):
        train_plain(net, digits, epochs=1, lr=0.0)


def test_evaluate_module_gives_the_figures_of_a_hand_computation(digits):
    """NLL per example, accuracy and macro F1 of a plain module through the categorical
    likelihood, against torch's cross-entropy and scikit-learn's macro F1; the module's
    training mode is restored."""
    from sklearn.metrics import f1_score

    from bayesstruct.models import likelihoods
    from bayesstruct.training import evaluate_module

    torch.manual_seed(0)
    net = nets.build("mlp", digits.input_shape, digits.n_classes, [16])
    net.train()
    got = evaluate_module(likelihoods.get("categorical"), net, digits.test, batch_size=50)
    assert net.training
    with torch.no_grad():
        out = net.eval()(digits.test.x)
    pred = out.argmax(1)
    assert got["nll"] == pytest.approx(float(F.cross_entropy(out, digits.test.y)), rel=1e-5)
    assert got["acc"] == pytest.approx(float((pred == digits.test.y).double().mean()))
    assert got["f1_macro"] == pytest.approx(
        f1_score(digits.test.y.numpy(), pred.numpy(), average="macro"), rel=1e-9)
