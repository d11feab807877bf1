"""The log-uniform prior -- sparse variational dropout per weight, normal-Jeffreys per unit.

**Weight level** (sparse variational dropout; Molchanov, Ashukha & Vetrov 2017). The improper
prior ``p(|w|) ~ 1/|w|`` with the mean-field guide ``q(w) = N(theta, sigma^2)`` in the additive
parameterisation: the guide stores ``theta`` and ``log sigma^2`` and the dropout rate is

    log alpha = log sigma^2 - log theta^2,   clipped to [-8, 8].

The KL depends on ``alpha`` alone and has no closed form,

    -KL(q || p) = 1/2 log alpha - E_{eps ~ N(1, alpha)} log|eps| + C,

which Molchanov et al. (eq. 14) approximate as

    -KL ~ k1 sigmoid(k2 + k3 log alpha) - 1/2 log(1 + 1/alpha) - k1,
    k1 = 0.63576, k2 = 1.87320, k3 = 1.48695

(``C = -k1`` makes ``-KL -> 0`` as ``alpha -> inf``; tested against a numerical integral over
a grid of ``log alpha``). A weight is pruned when ``log alpha >= 3`` (``alpha`` of about 20:
its posterior is almost all noise). Since ``rho = exp(-1 / (2 alpha))``, this is the
same ordering as the relative density.

**Group level** (Bayesian Compression with the normal-Jeffreys prior, BC-GNJ; Louizos, Ullrich
& Welling 2017). One scale per group ``g`` (input unit of a Linear, input channel of a Conv):

    z_g ~ p(z) ~ 1/|z|,    w~_gj ~ N(0, 1),    w_gj = z_g w~_gj    (i.e. w | z ~ N(0, z^2)),
    q(z_g) = N(mu_z, sigma_z^2),    q(w~_gj) = N(m_gj, s_gj^2)    (q(w | z) = N(z m, z^2 s^2)),

    KL = sum_g KL_approx(log alpha_g) + sum_gj KL(N(m_gj, s_gj^2) || N(0, 1)),
    log alpha_g = log sigma_z^2 - log mu_z^2  (clipped to [-8, 8]).

A unit is pruned when ``log alpha_g`` exceeds a per-layer threshold; a weight survives when
both the unit it leaves and the unit it enters survive.
"""

from __future__ import annotations

import math
from typing import Literal

import pyro.distributions as dist
import torch
from pydantic import Field
from pyro.distributions import constraints
from torch import Tensor

from ..parallel import per_example
from .base import LatentSite, ParamSite, PriorConfig
from .group import GroupScalePrior

__all__ = ["INIT_LOG_ALPHA", "K1", "K2", "K3", "LOG_ALPHA_CLIP", "LogUniform", "LogUniformConfig",
           "LogUniformImproper", "kl_log_uniform"]

K1, K2, K3 = 0.63576, 1.87320, 1.48695
LOG_ALPHA_CLIP = (-8.0, 8.0)
LEVELS = ("weight", "unit")
#: the default starting ``log alpha`` per level (see :meth:`LogUniform.init_site_log_var`)
INIT_LOG_ALPHA = {"weight": -2.0, "unit": -8.0}


def log_alpha(loc: Tensor, log_var: Tensor, clip: bool = True) -> Tensor:
    """``log alpha = log sigma^2 - log theta^2`` (``+1e-8`` guards ``theta = 0``), clipped."""
    la = log_var - torch.log(loc * loc + 1e-8)
    return la.clamp(*LOG_ALPHA_CLIP) if clip else la


def kl_log_uniform(log_alpha: Tensor) -> Tensor:
    """Elementwise ``KL(N(theta, alpha theta^2) || LogUniform)`` by Molchanov et al.'s fit:

        KL ~ k1 - k1 sigmoid(k2 + k3 log alpha) + 1/2 log(1 + exp(-log alpha)).
    """
    return (K1 - K1 * torch.sigmoid(K2 + K3 * log_alpha)
            + 0.5 * torch.nn.functional.softplus(-log_alpha))


class LogUniformImproper(dist.TorchDistribution):
    """The improper scale-invariant density ``p(x) ~ 1/|x|`` on the real line (unnormalised).

    ``log_prob(x) = -log|x|``; it cannot be sampled (there is no prior predictive), so a Pyro
    model with it runs only under a guide (SVI) that supplies the value.
    """

    support = constraints.real
    arg_constraints: dict = {}

    def __init__(self, shape: tuple[int, ...] = (), device: torch.device | None = None,
                 validate_args=None) -> None:
        self._device = device
        super().__init__(torch.Size(shape), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return LogUniformImproper(tuple(batch_shape), self._device)

    def log_prob(self, value: Tensor) -> Tensor:
        return -torch.log(value.abs())

    def sample(self, sample_shape=torch.Size()):
        raise NotImplementedError("the log-uniform prior is improper: it has no samples; "
                                  "run it under a guide (SVI)")


class LogUniformConfig(PriorConfig):
    """Settings of :class:`LogUniform` (``prior.kind: log_uniform``)."""

    kind: Literal["log_uniform"]
    level: Literal["weight", "unit"] = "weight"
    init_log_alpha: float | None = Field(None, le=8, ge=-20)
    init_group_scale: float = Field(1.0, gt=0)


class LogUniform(GroupScalePrior, config=LogUniformConfig):
    """Log-uniform prior per weight (``level="weight"``, sparse VD) or per input unit
    (``level="unit"``, BC-GNJ); see the module docstring for the formulas.

    Args:
        level: ``"weight"`` or ``"unit"``.
        init_log_alpha: the starting ``log alpha``: at the weight level relative to each
            layer's root-mean-square initial weight (``log sigma^2 = log mean(theta^2) +
            init_log_alpha``, one ``sigma`` per layer; default -2), at the unit level of the
            unit scales (default -8; Louizos et al. start near -9).
        init_group_scale: starting ``mu_z`` (unit level); the guide starts ``w~`` at the
            network's initial weights divided by it, so ``z w~`` starts at the initial net
            while ``w~`` starts nearer the scale of its ``N(0, 1)`` prior.
    """

    proper = False
    #: the KL's pull towards zero traps the weights of a small net started under it
    kl_warmup = True

    def __init__(self, level: str = "weight", init_log_alpha: float | None = None,
                 init_group_scale: float = 1.0, bias_scale: float = 1.0) -> None:
        if level not in LEVELS:
            raise ValueError(f"log_uniform level={level!r}; allowed: {', '.join(LEVELS)}")
        super().__init__(init_group_scale, bias_scale)
        self.level = level
        self.init_log_alpha = float(INIT_LOG_ALPHA[level] if init_log_alpha is None
                                    else init_log_alpha)
        self.criterion = "log_alpha" if level == "weight" else "unit"

    def bind(self, sites: list[ParamSite]) -> None:
        super().bind(sites)
        self._latents = []
        if self.level == "unit":
            for s in sites:
                if s.group_dim is not None:
                    self._latents.append(LatentSite(
                        f"{s.name}.z", s.group_shape, (s.dims[s.group_dim],), s.name,
                        family="normal", init_loc=self.init_group_scale,
                        init_scale=self.init_group_scale * math.exp(0.5 * self.init_log_alpha)))

    def init_site_log_var(self, site: ParamSite, w_init: Tensor) -> Tensor | None:
        """Weight level: one starting ``sigma`` per layer, relative to the layer's initial
        weights, ``log sigma^2 = log mean(theta^2) + init_log_alpha``.

        Scale-free, unlike the guide's one ``init_scale`` for every net: with ``sigma = 1e-3``
        a tabular net's weights (|theta| ~ 0.3) start at ``log alpha`` ~ -11, below the clip at
        -8 where the KL's gradient in ``sigma`` is zero, so the optimiser can lower the KL only
        by shrinking weights, each of which, once inside the clip, is pulled to zero by the
        KL's ``1/theta`` gradient (iris logistic regression: 84 % against the plain net's 95 %,
        and a worse ELBO than the same objective reached from a larger ``sigma``). One
        ``sigma`` per layer, rather than one ``alpha`` per weight, starts the small weights
        at a large ``alpha``, where that pull is weak. The default -2 gives LeNet-300-100's
        first layer ``log sigma^2`` ~ -9.8, Molchanov et al.'s -10; it was chosen on iris and
        wine logistic regression (against -4, -1, 0 and one ``alpha`` per weight) and
        ``benchmarks/tabular.py --sweep log-uniform`` compares it with -6."""
        if self.level != "weight" or site.role != "weight":
            return None
        start = torch.log((w_init * w_init).mean() + 1e-8) + self.init_log_alpha
        return start.expand_as(w_init)

    def _grouped(self, site: ParamSite) -> bool:
        return self.level == "unit" and super()._grouped(site)

    @property
    def needs_units(self) -> bool:
        return self.level == "unit"

    # -- model side ---------------------------------------------------------------------------
    def latent_prior(self, latent: LatentSite) -> dist.Distribution:
        return LogUniformImproper(latent.shape, self._device()).to_event(len(latent.shape))

    def site_prior(self, site: ParamSite, latents: dict[str, Tensor]) -> dist.Distribution:
        if site.role == "weight" and self.level == "weight":
            return LogUniformImproper(site.shape, self._device()).to_event(len(site.shape))
        return super().site_prior(site, latents)

    def weight_loc_scale(self, site, latents):
        """``w~ ~ N(0, 1)`` (unit level, non-centred); the weight level has no Normal form."""
        if self.level == "weight":
            raise NotImplementedError("the per-weight log-uniform prior is not Gaussian")
        return super().weight_loc_scale(site, latents)

    def group_scale(self, site: ParamSite, values: dict[str, Tensor]) -> Tensor:
        return values[f"{site.name}.z"]

    # -- fast path ----------------------------------------------------------------------------
    def input_scales(self, latent_loc, latent_scale, batch):
        out = {}
        for ls in self._latents:
            mu, sd = latent_loc[ls.name], latent_scale[ls.name]
            eps = per_example(lambda n, mu=mu: torch.randn(n, *mu.shape, device=mu.device),
                              batch)
            out[ls.target] = torch.addcmul(mu, sd, eps)
        return out

    def weight_kl(self, site, m, log_var, var):
        if self.level != "weight":
            return None
        return kl_log_uniform(log_alpha(m, log_var)).sum()

    def weight_precision(self, site, latent_loc, latent_scale):
        """Unit level: ``w~ ~ N(0, 1)`` plus the approximate KL of the site's unit scales."""
        name = f"{site.name}.z"
        mu, sd = latent_loc[name], latent_scale[name]
        extra = kl_log_uniform(log_alpha(mu, 2.0 * torch.log(sd))).sum()
        return self._one, self._zero, None, extra

    def scale_moments(self, site, latent_loc, latent_scale):
        """``E[z] = mu_z``, ``E[z^2] = mu_z^2 + sigma_z^2``."""
        mu, sd = latent_loc[f"{site.name}.z"], latent_scale[f"{site.name}.z"]
        return mu, mu * mu + sd * sd

    def unit_log_alpha(self, site: ParamSite, m: Tensor, var: Tensor,
                       latent_loc: dict[str, Tensor], latent_scale: dict[str, Tensor]) -> Tensor:
        """Per-group ``log sigma_z^2 - log mu_z^2`` (unclipped), the BC-GNJ unit criterion."""
        name = f"{site.name}.z"
        return log_alpha(latent_loc[name], 2.0 * torch.log(latent_scale[name]), clip=False)

    def extra_repr(self) -> str:
        return (f"level={self.level!r}, init_log_alpha={self.init_log_alpha}, "
                f"init_group_scale={self.init_group_scale}, bias_scale={self.bias_scale}")
