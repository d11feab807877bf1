"""``BayesianNet``: a plain network + a prior + a likelihood, as a Pyro model."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pyro
import torch
from pyro import poutine
from torch import Tensor, nn
from torch.func import functional_call

from ..layers import family_of
from ..priors.base import ParamSite, Prior, param_sites
from . import likelihoods

__all__ = ["BayesianNet", "eval_mode", "is_functional", "sequential_forward"]


class BayesianNet(nn.Module):
    """The generative model of METHODS.md M1 for a plain ``nn.Module``.

        w, latents ~ p(w, latents | h)           (the prior's sample sites)
        y_i | x_i, w ~ likelihood(f(x_i; w))     i in a minibatch of B out of N

    ``forward(x, y)`` *is* the Pyro model: one sample site per parameter tensor, named as in
    ``net.named_parameters()`` (``fc1.weight``), the prior's hyper-latents, and ``obs`` inside
    ``pyro.plate("data", N)`` so a minibatch's log-likelihood is scaled by ``N / B``. Any Pyro
    inference works on it (``SVI`` with any guide, ``NUTS``). ``kl_weight`` (beta, M1) scales
    every prior site; guides scale their sites by the same factor.

    The net's own ``nn.Parameter`` values are not used by the model (they are replaced through
    :func:`torch.func.functional_call`); guides use them as initial means.
    """

    def __init__(self, net: nn.Module, prior: Prior, likelihood: str | likelihoods.Likelihood =
                 "categorical", num_data: int | None = None) -> None:
        super().__init__()
        self.net = net
        self.prior = prior
        self.sites: list[ParamSite] = param_sites(net)
        prior.bind(self.sites)
        self.likelihood = likelihoods.get(likelihood)
        self.num_data = num_data
        self.kl_weight = 1.0
        self._functional = is_functional(net)

    @property
    def weight_sites(self) -> list[ParamSite]:
        return [s for s in self.sites if s.role == "weight"]

    def site(self, name: str) -> ParamSite:
        for s in self.sites:
            if s.name == name:
                return s
        raise KeyError(name)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        with poutine.scale(scale=self.kl_weight):
            params = self.prior.sample()
        out = self.predict(x, params)
        n = self.num_data or x.shape[0]
        with pyro.plate("data", size=n, subsample=torch.arange(x.shape[0], device=x.device)):
            obs = None if y is None else self.likelihood.target(y, out)
            pyro.sample("obs", self.likelihood.dist(out), obs=obs)
        return out

    def predict(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        """The plain network's output at the given sample-site values (and, for group-scale
        priors, the latents they need): :meth:`Prior.net_params` forms the weights.

        ``nn.Sequential`` nets of the zoo's layer types run through :func:`sequential_forward`
        (plain ``F.linear`` / ``F.conv2d`` calls: traceable by the PyTorch JIT, which NUTS's
        ``jit_compile`` needs); anything else through ``torch.func.functional_call``."""
        weights = self.prior.net_params(params)
        if self._functional:
            return sequential_forward(self.net, weights, x)
        return functional_call(self.net, weights, (x,))

    def num_weights(self) -> int:
        return sum(s.numel for s in self.weight_sites)


@contextlib.contextmanager
def eval_mode(net: nn.Module) -> Iterator[nn.Module]:
    """Run ``net`` in evaluation mode inside the block: dropout off, normalisation layers on
    their running statistics, which are not updated; each submodule's training flag is
    restored afterwards. Every evaluation of a fitted network (test metrics, pruning curves,
    Monte-Carlo predictions) runs under it; training runs in training mode."""
    flags = [(m, m.training) for m in net.modules()]
    net.eval()
    try:
        yield net
    finally:
        for m, flag in flags:
            m.training = flag


_ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.ELU, nn.Sigmoid, nn.Identity)


def is_functional(net: nn.Module) -> bool:
    """Whether :func:`sequential_forward` can run ``net``: an ``nn.Sequential`` of Linear,
    Conv2d, MaxPool2d/AvgPool2d, Flatten and element-wise
    activations."""
    if not isinstance(net, nn.Sequential):
        return False
    ok = (nn.Linear, nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.Flatten, *_ELEMENTWISE)
    return all(isinstance(m, ok) for m in net)


def sequential_forward(net: nn.Sequential, weights: dict[str, Tensor], x: Tensor) -> Tensor:
    """``net(x)`` with its parameters taken from ``weights`` (``"fc1.weight"`` ...), by plain
    functional calls; equal to ``functional_call(net, weights, (x,))`` (tested).

    A Linear weight may carry batch dimensions, ``(..., out, in)``: they broadcast against
    the input's batch dimensions (``x[..., in]``), which is how Pyro's enumerated IBP masks
    (M2.5) reach the network."""
    for name, m in net.named_children():
        family = family_of(m)
        if family is not None:
            x = family.forward(m, weights[f"{name}.weight"], weights.get(f"{name}.bias"), x)
        elif isinstance(m, nn.Flatten):
            x = x.flatten(m.start_dim, m.end_dim)
        else:  # pooling and element-wise activations hold no parameters
            x = m(x)
    return x
