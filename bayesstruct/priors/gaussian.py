"""M2.1: isotropic Gaussian prior ``w ~ N(mu, sigma^2 I)`` (Graves 2011; seed 001)."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import ParamSite, Prior

__all__ = ["Gaussian"]


class Gaussian(Prior):
    """Isotropic Gaussian prior on every weight tensor: ``w ~ N(mu_l, sigma_l^2 I)``.

    One ``(mu_l, sigma_l)`` per weight site (layer) ``l``, initialised to ``(loc, scale)``.
    With ``empirical_bayes=True`` they follow the closed-form M3 update (seed 001) after each
    gradient step on the guide:

        mu_hat      = (1/W) sum_i m_i
        sigma_hat^2 = (1/W) sum_i [ (mu_hat - m_i)^2 + s_i^2 ]

    which minimises ``sum_i KL(N(m_i, s_i^2) || N(mu, sigma^2))`` over ``(mu, sigma^2)``.
    """

    kind = "gaussian"

    def __init__(self, scale: float = 1.0, loc: float = 0.0, empirical_bayes: bool = False,
                 bias_scale: float = 1.0) -> None:
        super().__init__(bias_scale)
        if scale <= 0:
            raise ValueError(f"Gaussian scale must be > 0, got {scale}")
        self.init_loc, self.init_scale = float(loc), float(scale)
        self.empirical_bayes = bool(empirical_bayes)

    def bind(self, sites: list[ParamSite]) -> None:
        super().bind(sites)
        for s in sites:
            if s.role == "weight":
                self.register_buffer(_key(s, "loc"), torch.tensor(self.init_loc))
                self.register_buffer(_key(s, "var"), torch.tensor(self.init_scale**2))

    def loc_var(self, site: ParamSite) -> tuple[Tensor, Tensor]:
        return getattr(self, _key(site, "loc")), getattr(self, _key(site, "var"))

    def weight_loc_scale(self, site: ParamSite,
                         latents: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        mu, var = self.loc_var(site)
        return mu, var.sqrt()

    def weight_precision(self, site, latent_loc, latent_scale):
        mu, prior_var = self.loc_var(site)
        zero_mean = self.init_loc == 0 and not self.empirical_bayes
        return prior_var.reciprocal(), -prior_var.log(), None if zero_mean else mu, None

    @torch.no_grad()
    def empirical_bayes_(self, q_loc: dict[str, Tensor], q_scale: dict[str, Tensor]) -> None:
        for site, m, s in self._eb_weight_moments(q_loc, q_scale):
            mu, var = self.loc_var(site)
            mu.copy_(m.mean())
            var.copy_(((m - mu) ** 2 + s * s).mean())

    def mode(self, site: ParamSite) -> float:
        return float(self.loc_var(site)[0]) if site.role == "weight" else 0.0

    def extra_repr(self) -> str:
        return (f"loc={self.init_loc}, scale={self.init_scale}, "
                f"empirical_bayes={self.empirical_bayes}, bias_scale={self.bias_scale}")


def _key(site: ParamSite, what: str) -> str:
    return f"{site.name.replace('.', '__')}__{what}"
