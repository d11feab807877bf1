"""``BayesianNet``: a plain network + a prior + a likelihood, as a Pyro model."""

from __future__ import annotations

import pyro
import torch
from pyro import poutine
from torch import Tensor, nn
from torch.func import functional_call

from ..priors.base import ParamSite, Prior, param_sites
from . import likelihoods

__all__ = ["BayesianNet"]


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
            pyro.sample("obs", self.likelihood.dist(out), obs=y)
        return out

    def predict(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        """The plain network's output at the given sample-site values (and, for group-scale
        priors, the latents they need): :meth:`Prior.net_params` forms the weights."""
        return functional_call(self.net, self.prior.net_params(params), (x,))

    def num_weights(self) -> int:
        return sum(s.numel for s in self.weight_sites)
