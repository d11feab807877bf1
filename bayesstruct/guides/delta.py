"""Delta guide: a point mass at every site, i.e. MAP estimation."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import Tensor, nn

from ..models.bayesnet import BayesianNet
from .base import Guide, site_key

__all__ = ["Delta"]


class Delta(Guide):
    """``q(w) = delta(w - w_hat)``: the negative ELBO reduces to the negative log joint

        -log p(y | X, w_hat) - beta * log p(w_hat, latents_hat)

    (the entropy of a point mass is a constant). Positive latents are optimised in log space.
    Empirical-Bayes ARD is refused: with no posterior variance its update
    ``alpha = 1 / m^2`` drives every weight to zero.
    """

    name = "delta"

    def _setup(self, model: BayesianNet) -> None:
        prior = model.prior
        prior.require_continuous("guide 'delta' (a point mass)")
        if not prior.proper:
            raise ValueError(
                f"guide 'delta' with the improper prior {prior.kind} has no MAP (the density "
                "is unbounded at zero); use guide 'meanfield'")
        if any(ls.bounds is not None for ls in prior.latents):
            raise ValueError(
                f"guide 'delta' with prior {prior.kind} has no MAP: the truncated log-uniform "
                "density 1/theta is largest at the interval's lower end, where every unit would "
                "go; use guide 'lognormal' (weights='point' keeps the weights point estimates)")
        if getattr(prior, "kind", "") == "ard" and prior.empirical_bayes:
            raise ValueError(
                "guide 'delta' with prior ard (hyper=empirical_bayes) collapses: the update "
                "alpha = 1/m^2 needs a posterior variance; use guide 'meanfield' or hyper=gamma")
        params = dict(model.net.named_parameters())
        self.value = nn.ParameterDict(
            {site_key(s.name): nn.Parameter(params[s.name].detach().clone()) for s in model.sites})
        self.log_latent = nn.ParameterDict()
        for ls in prior.latents:
            device = params[ls.target].device
            self.log_latent[site_key(ls.name)] = nn.Parameter(torch.zeros(ls.shape, device=device))

    def values(self) -> dict[str, Tensor]:
        return {s.name: self.value[site_key(s.name)] for s in self.model.sites}

    def latents(self) -> dict[str, Tensor]:
        return {ls.name: self.log_latent[site_key(ls.name)].exp()
                for ls in self.model.prior.latents}

    def forward(self, *args, **kwargs) -> None:
        pyro.module("delta", self)
        with poutine.scale(scale=self.model.kl_weight):
            for ls in self.model.prior.latents:
                v = self.latents()[ls.name]
                pyro.sample(ls.name, dist.Delta(v, event_dim=len(ls.shape)))
            for s in self.model.sites:
                v = self.value[site_key(s.name)]
                pyro.sample(s.name, dist.Delta(v, event_dim=len(s.shape)))

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        model = self.model
        values, latents = self.values(), self.latents()
        nll = model.likelihood.nll(model.predict(x, {**latents, **values}), y) * self._scale_n(x)
        return nll - model.kl_weight * model.prior.log_prob(values, latents)

    @torch.no_grad()
    def point(self) -> dict[str, Tensor]:
        out = {k: v.detach().clone() for k, v in self.latents().items()}
        out.update({k: v.detach().clone() for k, v in self.values().items()})
        return out

    @torch.no_grad()
    def moments(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        loc = {k: v.detach() for k, v in self.values().items()}
        return loc, {k: torch.zeros_like(v) for k, v in loc.items()}

    @torch.no_grad()
    def sample(self, num_draws: int) -> dict[str, Tensor]:
        out = {k: v.detach().expand(num_draws, *v.shape).clone()
               for k, v in self.latents().items()}
        out.update({k: v.detach().expand(num_draws, *v.shape).clone()
                    for k, v in self.values().items()})
        return out
