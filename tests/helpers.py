"""Small builders shared by the tests."""

from __future__ import annotations

import torch

from bayesstruct import nets, priors
from bayesstruct.models import BayesianNet

# every prior configuration of the grid (name, constructor kwargs)
PRIOR_GRID = [
    ("gaussian", {}),
    ("gaussian", {"empirical_bayes": True, "loc": 0.1, "scale": 0.7}),
    ("ard", {"per": "weight", "hyper": "empirical_bayes"}),
    ("ard", {"per": "unit", "hyper": "empirical_bayes"}),
    ("ard", {"per": "weight", "hyper": "gamma", "a": 2.0, "b": 0.5}),
    ("ard", {"per": "unit", "hyper": "gamma", "a": 1.5, "b": 2.0}),
    ("horseshoe", {}),
    ("horseshoe", {"tau0": 0.1, "slab_scale": 2.0}),
]
# the improper log-uniform priors: their KL is Molchanov's approximation, so they are checked
# against their own references (tests/priors/test_sparsity_priors.py), not Pyro's ELBO
SPARSE_GRID = [
    ("log_uniform", {"level": "weight"}),
    ("log_uniform", {"level": "unit"}),
]
SPARSE_IDS = [f"{k}-{kw['level']}" for k, kw in SPARSE_GRID]
PRIOR_IDS = [f"{k}-{'-'.join(f'{a}={b}' for a, b in kw.items())}" for k, kw in PRIOR_GRID]


def small_model(kind: str, kw: dict, net: str = "mlp", num_data: int = 50) -> BayesianNet:
    torch.manual_seed(0)
    if net == "mlp":
        module = nets.mlp([5, 4, 3])
    elif net == "conv":
        module = nets.lenet5_caffe((1, 8, 8), 3)
    elif net in ("rnn", "gru"):  # reads the mlp's 5 inputs as 5 steps of 1 feature
        module = nets.SequenceClassifier(net, 5, 1, 4, 3)
    else:
        raise ValueError(net)
    return BayesianNet(module, priors.get(kind, **kw), num_data=num_data)


def randomize_guide(guide, seed: int = 1) -> None:
    """Spread the variational parameters so tests do not sit at the initial values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in guide.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if "raw_scale" in name:  # softplus scales of the latents
                p.copy_(-1.0 + 0.5 * noise)
            elif "log_var" in name:  # sd around exp(-1.3) ~ 0.27
                p.copy_(-2.6 + 1.0 * noise)
            else:
                p.copy_(0.5 * noise)


def loss_difference(model, guide, x, y, n: int, elbo=None) -> tuple[float, float]:
    """``mean(guide.loss) - mean(Pyro ELBO loss)`` over ``n`` draws each, and its standard
    error: the two estimate the same negative ELBO when the fast path is right."""
    import math

    import pyro

    elbo = elbo or pyro.infer.Trace_ELBO()
    with torch.no_grad():
        ours = torch.tensor([float(guide.loss(x, y)) for _ in range(n)], dtype=torch.float64)
        ref = torch.tensor([elbo.loss(model, guide, x, y) for _ in range(n)],
                           dtype=torch.float64)
    return float(ours.mean() - ref.mean()), math.sqrt(ours.var() / n + ref.var() / n)
