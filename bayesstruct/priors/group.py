"""Non-centred group-scale priors (BC-GNJ, BC-GHS): what they share.

Both write a weight of group ``g`` (input unit / input channel) as

    w_gj = theta_g w~_gj,    w~_gj ~ N(0, 1),

with a prior-specific scale ``theta_g`` built from latent sites. The sample site named like the
network parameter (``fc1.weight``) holds ``w~``; :meth:`net_params` multiplies the scales in,
and under a mean-field ``q`` the network weight has

    E[w] = E[theta] m,    Var[w] = E[theta^2] (m^2 + s^2) - E[theta]^2 m^2,

from the two moments of the scale each prior supplies (:meth:`scale_moments`).

**The posterior-mean network.** :meth:`net_params` forms the weights from one set of values
(a draw). Fed the posterior means of the latents it gives ``theta(E[latents]) E[w~]``, which is
``E[w]`` only when ``theta`` is linear in each (independent) latent: so for BC-GNJ (``z``) and
the plain horseshoe (``s z``), but not for the regularised horseshoe, whose slab
``c s z / sqrt(c^2 + s^2 z^2)`` is concave (there ``slab(E[s] E[z])`` overstates ``E[slab(s z)]``,
by 30 % at ``c = 1`` with ``log s z ~ N(0, 1)``). :meth:`mean_net_params` gives ``E_q[w] =
E_q[theta] m`` from :meth:`scale_moments`, the same expectation :meth:`effective_moments` (the
reports) uses, for every prior.
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor

from .base import LatentSite, ParamSite, Prior, expand_group

__all__ = ["GroupScalePrior"]


class GroupScalePrior(Prior):
    """Base class of the non-centred group-scale priors (see the module docstring).

    Args:
        init_group_scale: where the guide starts the group scales; ``w~`` starts at the
            network's initial weights divided by it, so ``theta w~`` starts at the initial net
            while ``w~`` starts nearer the scale of its ``N(0, 1)`` prior.
    """

    def __init__(self, init_group_scale: float = 1.0, bias_scale: float = 1.0) -> None:
        super().__init__(bias_scale)
        if init_group_scale <= 0:
            raise ValueError(f"{self.kind} init_group_scale must be > 0, got {init_group_scale}")
        self.init_group_scale = float(init_group_scale)
        self.register_buffer("_one", torch.ones(()), persistent=False)
        self.register_buffer("_zero", torch.zeros(()), persistent=False)
        self._latents: list[LatentSite] = []

    @property
    def latents(self) -> list[LatentSite]:
        return self._latents

    @property
    def needs_units(self) -> bool:
        return True

    def _grouped(self, site: ParamSite) -> bool:
        return site.role == "weight" and site.group_dim is not None

    def init_site_scale(self, site: ParamSite) -> float:
        return self.init_group_scale if self._grouped(site) else 1.0

    def weight_loc_scale(self, site, latents):
        """``w~ ~ N(0, 1)``."""
        return self._zero, self._one

    @abstractmethod
    def group_scale(self, site: ParamSite, values: dict[str, Tensor]) -> Tensor:
        """``theta_g`` of a grouped site from the latents' values."""

    @abstractmethod
    def scale_moments(self, site: ParamSite, latent_loc: dict[str, Tensor],
                      latent_scale: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """``E_q[theta_g]`` and ``E_q[theta_g^2]`` per group."""

    def net_params(self, values: dict[str, Tensor]) -> dict[str, Tensor]:
        out = {}
        for s in self.sites:
            v = values[s.name]
            out[s.name] = expand_group(self.group_scale(s, values), s) * v if self._grouped(
                s) else v
        return out

    def mean_net_params(self, values: dict[str, Tensor], latent_loc: dict[str, Tensor],
                        latent_scale: dict[str, Tensor]) -> dict[str, Tensor]:
        """The posterior-mean network's parameters under a mean-field ``q``: ``E[theta_g] m``
        on the grouped sites (``m = values[site]``, the mean of ``w~``; ``E[theta_g]`` from
        :meth:`scale_moments`, deterministic), ``values[site]`` elsewhere. ``latent_loc`` and
        ``latent_scale`` are the latents' variational parameters (by latent name)."""
        out = {}
        for s in self.sites:
            v = values[s.name]
            if self._grouped(s):
                e1, _ = self.scale_moments(s, latent_loc, latent_scale)
                v = expand_group(e1.to(v), s) * v
            out[s.name] = v
        return out

    def effective_moments(self, site, m, var, latent_loc, latent_scale):
        """``E[theta w~] = E[theta] m``, ``Var = E[theta^2](m^2 + s^2) - E[theta]^2 m^2``."""
        if not self._grouped(site):
            return m, var
        e1, e2 = (expand_group(t, site) for t in self.scale_moments(site, latent_loc,
                                                                    latent_scale))
        mean = e1 * m
        return mean, e2 * (m * m + var) - mean * mean
