"""Gaussian automatic relevance determination (ARD), per weight or per input unit.

``w_i ~ N(0, 1 / alpha_{g(i)})`` where ``g(i)`` is the weight itself (``per="weight"``) or the
input unit / input channel it leaves (``per="unit"``, a column of ``W[out, in]``; MacKay 1994,
Neal 1996). The precisions are either

* latent, with a ``Gamma(a, b)`` hyperprior (``hyper="gamma"``; full Bayes, log-normal guide on
  alpha), or
* point hyperparameters set by empirical Bayes (``hyper="empirical_bayes"``):

      alpha_hat_g = |g| / sum_{i in g} (m_i^2 + s_i^2)

  (per weight: ``alpha_hat_i = 1 / (m_i^2 + s_i^2)``), which minimises
  ``sum_{i in g} KL(N(m_i, s_i^2) || N(0, 1/alpha_g))``.
"""

from __future__ import annotations

import math
from typing import Literal

import pyro.distributions as dist
import torch
from pydantic import Field
from torch import Tensor

from .base import (
    LatentSite,
    ParamSite,
    Prior,
    PriorConfig,
    expand_group,
    kl_lognormal_gamma,
)

__all__ = ["ARD", "ARDConfig"]

PER = ("weight", "unit")
HYPER = ("gamma", "empirical_bayes")


class ARDConfig(PriorConfig):
    """Settings of :class:`ARD` (``prior.kind: ard``)."""

    kind: Literal["ard"]
    per: Literal["weight", "unit"] = "weight"
    hyper: Literal["gamma", "empirical_bayes"] = "empirical_bayes"
    a: float = Field(1.0, gt=0)
    b: float = Field(1.0, gt=0)
    init_precision: float = Field(1.0, gt=0)


class ARD(Prior, config=ARDConfig):
    """Gaussian ARD prior; see the module docstring for the formulas.

    With ``hyper="gamma"`` the closed-form ``E_q KL`` for ``q(w) = N(m, s^2)``,
    ``q(alpha) = LogNormal(mu_a, sigma_a)`` is

        E_q KL(q(w) || N(0, 1/alpha)) = -1/2 E[log alpha] - log s + 1/2 E[alpha] (s^2 + m^2) - 1/2

    with ``E[log alpha] = mu_a`` and ``E[alpha] = exp(mu_a + sigma_a^2 / 2)``, plus
    ``KL(LogNormal || Gamma)`` (:func:`~bayesstruct.priors.base.kl_lognormal_gamma`).
    """

    def __init__(self, per: str = "weight", hyper: str = "empirical_bayes", a: float = 1.0,
                 b: float = 1.0, init_precision: float = 1.0, bias_scale: float = 1.0) -> None:
        super().__init__(bias_scale)
        if per not in PER:
            raise ValueError(f"ARD per={per!r}; allowed: {', '.join(PER)}")
        if hyper not in HYPER:
            raise ValueError(f"ARD hyper={hyper!r}; allowed: {', '.join(HYPER)}")
        if a <= 0 or b <= 0 or init_precision <= 0:
            raise ValueError("ARD a, b and init_precision must be > 0")
        self.per, self.hyper = per, hyper
        self.a, self.b, self.init_precision = float(a), float(b), float(init_precision)
        self.empirical_bayes = hyper == "empirical_bayes"
        self._latents: list[LatentSite] = []

    def _alpha_shape(self, site: ParamSite) -> tuple[tuple[int, ...], tuple[str, ...]]:
        if self.per == "unit" and site.group_dim is not None:
            return site.group_shape, (site.dims[site.group_dim],)
        return site.shape, site.dims

    def bind(self, sites: list[ParamSite]) -> None:
        super().bind(sites)
        self._latents = []
        for s in sites:
            if s.role != "weight":
                continue
            shape, dims = self._alpha_shape(s)
            if self.empirical_bayes:
                self.register_buffer(_key(s), torch.full(shape, self.init_precision))
            else:
                self._latents.append(LatentSite(f"{s.name}.alpha", shape, dims, s.name))

    @property
    def latents(self) -> list[LatentSite]:
        return self._latents

    @property
    def needs_units(self) -> bool:
        return self.per == "unit"

    def centred_sites(self) -> list[str]:
        return [] if self.empirical_bayes else [s.name for s in self.sites if s.role == "weight"]

    def latent_prior(self, latent: LatentSite) -> dist.Distribution:
        dev = self._device()
        a, b = torch.tensor(self.a, device=dev), torch.tensor(self.b, device=dev)
        return dist.Gamma(a, b).expand(latent.shape).to_event(len(latent.shape))

    def precision(self, site: ParamSite) -> Tensor:
        """The empirical-Bayes precisions of a site (per weight or per group)."""
        return getattr(self, _key(site))

    def weight_loc_scale(self, site: ParamSite,
                         latents: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        alpha = latents[f"{site.name}.alpha"] if not self.empirical_bayes else self.precision(site)
        scale = expand_group(alpha, site).rsqrt()
        return torch.zeros((), device=scale.device), scale

    def weight_precision(self, site, latent_loc, latent_scale):
        """``1/2 sum [alpha (m^2 + s^2) - log alpha - log s^2 - 1]``; under a LogNormal
        hyper-posterior ``alpha`` and ``log alpha`` become ``E_q alpha = exp(mu + sd^2/2)`` and
        ``E_q log alpha = mu``, plus ``KL(q(alpha) || Gamma(a, b))``."""
        if self.empirical_bayes:
            alpha = expand_group(self.precision(site), site)
            return alpha, alpha.log(), None, None
        name = f"{site.name}.alpha"
        mu_a, sd_a = latent_loc[name], latent_scale[name]
        e_alpha = expand_group(torch.exp(mu_a + 0.5 * sd_a * sd_a), site)
        return (e_alpha, expand_group(mu_a, site), None,
                kl_lognormal_gamma(mu_a, sd_a, self.a, self.b).sum())

    def enable_empirical_bayes(self) -> None:
        if not self.empirical_bayes:
            raise ValueError("ARD with hyper='gamma' has latent precisions, not point ones to "
                             "update in closed form; use hyper=empirical_bayes")

    @torch.no_grad()
    def empirical_bayes_(self, q_loc: dict[str, Tensor], q_scale: dict[str, Tensor]) -> None:
        for site, m, s in self._eb_weight_moments(q_loc, q_scale):
            m2s2 = m * m + s * s
            alpha = self.precision(site)
            if alpha.shape == m2s2.shape:
                alpha.copy_(m2s2.reciprocal())
            else:
                dims = [d for d in range(m2s2.dim()) if d != site.group_dim]
                size = math.prod(m2s2.shape[d] for d in dims)
                alpha.copy_(size / m2s2.sum(dim=dims))

    def extra_repr(self) -> str:
        return (f"per={self.per!r}, hyper={self.hyper!r}, a={self.a}, b={self.b}, "
                f"bias_scale={self.bias_scale}")


def _key(site: ParamSite) -> str:
    return f"{site.name.replace('.', '__')}__alpha"
