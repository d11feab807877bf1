"""Evaluations run in evaluation mode: dropout off, normalisation layers on their running
statistics (not updated), every module's flag restored afterwards; the posterior-mean network
carries the buffers."""

from __future__ import annotations

import torch
from torch import nn

from bayesstruct import data, guides, inference, priors, pruning
from bayesstruct.models import BayesianNet
from bayesstruct.models.bayesnet import eval_mode
from bayesstruct.pruning.curve import mc_evaluate
from bayesstruct.training import evaluate


def _model(ds) -> BayesianNet:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16, affine=False),
                        nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, ds.n_classes))
    return BayesianNet(net, priors.Gaussian(), num_data=len(ds.train))


def _params(model):
    return {k: v.detach().clone() for k, v in model.net.named_parameters()}


def test_evaluate_is_deterministic_batch_independent_and_leaves_the_statistics():
    ds = data.load("digits", seed=0)
    model = _model(ds)
    model.net(ds.train.x[:256])  # training mode: running statistics move off their start
    stats = model.net[2].running_mean.clone()
    params = _params(model)
    a = evaluate(model, params, ds.test)
    b = evaluate(model, params, ds.test, batch_size=7)
    assert a["acc"] == b["acc"] and abs(a["nll"] - b["nll"]) < 1e-5
    assert evaluate(model, params, ds.test) == a  # no dropout noise
    assert torch.equal(model.net[2].running_mean, stats)
    assert all(m.training for m in model.net.modules())  # restored
    with torch.no_grad():  # the same numbers as the module itself in eval mode
        out = model.net.eval()(ds.test.x)
    model.net.train()
    assert round(a["acc"] * len(ds.test)) == int((out.argmax(1) == ds.test.y).sum())
    mc = mc_evaluate(model, [params, params], ds.test)  # the Monte-Carlo predictive too
    assert abs(mc["nll"] - a["nll"]) < 1e-5 and abs(mc["acc"] - a["acc"]) < 1e-6  # float32 mean
    assert torch.equal(model.net[2].running_mean, stats)


def test_eval_mode_restores_mixed_flags():
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    net[1].eval()
    with eval_mode(net):
        assert not any(m.training for m in net.modules())
    assert [m.training for m in net.modules()] == [True, True, False]


def test_the_mean_network_keeps_the_buffers_and_evaluates_in_eval_mode():
    ds = data.load("digits", seed=0)
    model = _model(ds)
    post = inference.svi(model, guides.MeanField(), ds, epochs=1, progress=False, num_draws=2)
    net = pruning.mean_network(post, model)
    assert not net.training
    assert torch.equal(net[2].running_mean, model.net[2].running_mean)
    assert not torch.equal(net[2].running_mean, torch.zeros(16))  # trained statistics
    with torch.no_grad():
        x = ds.test.x[:9]
        torch.testing.assert_close(net(x), net(x))  # dropout off
