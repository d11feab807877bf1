"""The hand-written floor of ``benchmarks/svi_throughput.py`` computes the engine's step: the
same loss and gradients on one minibatch with the same noise (else its ratio would not be a
floor for *this* computation)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

from bayesstruct import guides, nets, priors
from bayesstruct.guides.base import site_key
from bayesstruct.models import BayesianNet

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture
def throughput(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    yield importlib.import_module("svi_throughput")
    sys.modules.pop("svi_throughput", None)


@pytest.mark.parametrize("scale", [1.0, 0.3])
def test_floor_matches_the_engine(throughput, scale):
    torch.manual_seed(0)
    model = BayesianNet(nets.lenet_300_100(64, 10), priors.Gaussian(scale), num_data=1000)
    guide = guides.MeanField(model, init_scale=0.05)
    x, y = torch.randn(32, 64), torch.randint(0, 10, (32,))
    floor, (M, LV) = throughput.floor_step(guide, 1000)
    torch.manual_seed(7)
    ours = guide.loss(x, y)
    ours.backward()
    torch.manual_seed(7)
    theirs = floor(x, y)
    theirs.backward()
    torch.testing.assert_close(theirs, ours, rtol=1e-5, atol=0.0)
    order = ([s.name for s in model.sites if s.role == "weight"]  # the floor's layout
             + [s.name for s in model.sites if s.role == "bias"])
    for flat, table in ((M, guide.loc), (LV, guide.log_var)):
        expected = torch.cat([table[site_key(n)].grad.reshape(-1) for n in order])
        torch.testing.assert_close(flat.grad, expected, rtol=1e-4,
                                   atol=1e-5 * float(expected.abs().max()))


def test_floor_refuses_mixed_precisions(throughput):
    model = BayesianNet(nets.lenet_300_100(64, 10), priors.ARD(hyper="empirical_bayes"),
                        num_data=1000)
    with torch.no_grad():  # one weight's precision apart from the others'
        dict(model.prior.named_buffers())["fc1__weight__alpha"][0, 0] = 2.0
    with pytest.raises(ValueError, match="one precision for every weight"):
        throughput.floor_step(guides.MeanField(model), 1000)
