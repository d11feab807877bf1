"""Gaussian prior ``w ~ N(mu, sigma^2 I)`` per layer or per group (Graves 2011)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from .base import ParamSite, Prior, PriorConfig, expand_group

__all__ = ["Gaussian", "GaussianConfig"]

PER = ("layer", "unit")


class GaussianConfig(PriorConfig):
    """Settings of :class:`Gaussian` (``prior.kind: gaussian``)."""

    kind: Literal["gaussian"]
    scale: float = Field(1.0, gt=0)
    loc: float = 0.0
    empirical_bayes: bool = False
    per: Literal["layer", "unit"] = "layer"


class Gaussian(Prior, config=GaussianConfig):
    """Gaussian prior on every weight tensor: ``w ~ N(mu_g, sigma_g^2)`` for the weights of group
    ``g``: the whole site (``per="layer"``, one ``(mu_l, sigma_l)`` per weight tensor) or an
    input unit / input channel of it (``per="unit"``, a column of ``W[out, in]``).

    ``(mu, sigma)`` start at ``(loc, scale)``. With ``empirical_bayes=True`` (or the SVI
    engine's ``prior_update="closed_form"``) they follow the closed-form empirical-Bayes update
    after each gradient step on the guide,

        mu_hat_g      = (1/|g|) sum_{i in g} m_i
        sigma_hat_g^2 = (1/|g|) sum_{i in g} [ (mu_hat_g - m_i)^2 + s_i^2 ],

    which minimises ``sum_{i in g} KL(N(m_i, s_i^2) || N(mu_g, sigma_g^2))`` over
    ``(mu_g, sigma_g^2)`` (a scalar posterior covariance, ``s_i = beta``, gives
    ``sigma_hat^2 = mean (mu - m_i)^2 + beta^2``).
    """

    def __init__(self, scale: float = 1.0, loc: float = 0.0, empirical_bayes: bool = False,
                 bias_scale: float = 1.0, per: str = "layer") -> None:
        super().__init__(bias_scale)
        if scale <= 0:
            raise ValueError(f"Gaussian scale must be > 0, got {scale}")
        if per not in PER:
            raise ValueError(f"Gaussian per={per!r}; allowed: {', '.join(PER)}")
        self.init_loc, self.init_scale = float(loc), float(scale)
        self.empirical_bayes = bool(empirical_bayes)
        self.per = per

    def _group_shape(self, site: ParamSite) -> tuple[int, ...]:
        return site.group_shape if self.per == "unit" and site.group_dim is not None else ()

    @property
    def needs_units(self) -> bool:
        return self.per == "unit"

    def bind(self, sites: list[ParamSite]) -> None:
        super().bind(sites)
        for s in sites:
            if s.role == "weight":
                shape = self._group_shape(s)
                self.register_buffer(_key(s, "loc"), torch.full(shape, self.init_loc))
                self.register_buffer(_key(s, "var"), torch.full(shape, self.init_scale**2))

    def loc_var(self, site: ParamSite) -> tuple[Tensor, Tensor]:
        """``(mu, sigma^2)`` of a weight site: scalars, or one per group (``per="unit"``)."""
        return getattr(self, _key(site, "loc")), getattr(self, _key(site, "var"))

    def weight_loc_scale(self, site: ParamSite,
                         latents: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        mu, var = self.loc_var(site)
        return expand_group(mu, site), expand_group(var, site).sqrt()

    def weight_precision(self, site, latent_loc, latent_scale):
        mu, prior_var = self.loc_var(site)
        zero_mean = self.init_loc == 0 and not self.empirical_bayes
        return (expand_group(prior_var.reciprocal(), site), expand_group(-prior_var.log(), site),
                None if zero_mean else expand_group(mu, site), None)

    @torch.no_grad()
    def empirical_bayes_(self, q_loc: dict[str, Tensor], q_scale: dict[str, Tensor]) -> None:
        for site, m, s in self._eb_weight_moments(q_loc, q_scale):
            mu, var = self.loc_var(site)
            dims = ([d for d in range(m.dim()) if d != site.group_dim] if mu.dim()
                    else list(range(m.dim())))
            mu.copy_(m.mean(dim=dims))
            var.copy_(((m - expand_group(mu, site)) ** 2 + s * s).mean(dim=dims))

    def enable_empirical_bayes(self) -> None:
        self.empirical_bayes = True

    def mode(self, site: ParamSite) -> float | Tensor:
        if site.role != "weight":
            return 0.0
        mu = self.loc_var(site)[0]
        return float(mu) if mu.dim() == 0 else mu.detach().clone()

    def extra_repr(self) -> str:
        return (f"loc={self.init_loc}, scale={self.init_scale}, per={self.per!r}, "
                f"empirical_bayes={self.empirical_bayes}, bias_scale={self.bias_scale}")


def _key(site: ParamSite, what: str) -> str:
    return f"{site.name.replace('.', '__')}__{what}"
