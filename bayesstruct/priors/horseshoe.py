"""The group horseshoe prior (Bayesian Compression model 2, BC-GHS).

Non-centred form (Louizos, Ullrich & Welling 2017; Ghosh, Yao & Doshi-Velez 2019), one global
scale per layer and one local scale per group ``g`` (input unit / input channel):

    s ~ C+(0, tau0),    z_g ~ C+(0, 1),    w~_gj ~ N(0, 1),    w_gj = theta_g w~_gj,
    theta_g = s z_g                                   (plain horseshoe),
    theta_g = c s z_g / sqrt(c^2 + s^2 z_g^2)         (regularised, slab width c;
                                                       Piironen & Vehtari 2017).

Guides: log-normal on ``s`` and ``z_g``, Normal on ``w~``. The product of independent
log-normals is log-normal, so ``log theta_g ~ N(mu_s + mu_z, sd_s^2 + sd_z^2)`` under ``q``.

KL: ``w~`` against ``N(0, 1)`` in closed form; each scale against its half-Cauchy,

    KL(LogNormal(mu, sd) || C+(0, t)) = -H[q] - log(2 / (pi t)) + E_q log(1 + theta^2 / t^2),
    H[q] = mu + 1/2 + log sd + 1/2 log(2 pi),

where the last expectation, ``E_{u ~ N(mu, sd^2)} softplus(2u - 2 log t)``, is a smooth
one-dimensional integral computed by Gauss-Hermite quadrature (32 nodes; tested against
Monte Carlo).

**Unit decision.** The relative variational density compares ``q`` at the prior's mode with ``q`` at
its own mode. For the scale ``theta_g`` itself that ratio is degenerate: the log-normal has
density 0 at the mode 0 of ``p(theta)``, so every unit would look important. We therefore
apply it to what the scale acts on, the group's *effective weights* ``w_gj = theta_g w~_gj``,
whose prior (the horseshoe marginal) has its mode, a pole, at 0. With a Gaussian fit to each
effective weight's ``q`` (its exact mean and variance),

    E[w_gj] = E[theta] m_gj,   Var[w_gj] = E[theta^2](m_gj^2 + s_gj^2) - E[theta]^2 m_gj^2,
    log rho_g = sum_j log rho_gj = -1/2 sum_j E[w_gj]^2 / Var[w_gj],

and we report the group's ``log alpha_g = -log sum_j E[w_gj]^2 / Var[w_gj]`` (so
``log rho_g = -exp(-log alpha_g) / 2``), the same scale as BC-GNJ's ``log sigma_z^2 - log
mu_z^2``: a unit is pruned when ``log alpha_g`` exceeds its layer's threshold. The rule is
invariant to how the magnitude is split between ``theta`` and ``w~`` (only the effective
weights are identified), and a unit whose inputs the data do not need has ``q(w~)`` back at
its prior ``N(0, 1)`` (``m -> 0``), hence ``rho_g -> 1``. Tested against a sampled estimate.

**The paper's rule** (``unit_rule="log_scale"``). Louizos et al. (2017) prune a horseshoe group
by thresholding the expected log of its scale, ``E_q[log theta_g]``: under the log-normal
guide ``E_q[log s z_g] = mu_s + mu_z`` (with the slab, ``E_q[log slab(s z_g)]`` by
Gauss-Hermite); for a sampler, the mean of ``log theta_g`` over the draws. The score handed to
the unit decision is ``-E_q[log theta_g]`` (larger = removed first), on the same footing as
``log alpha_g``: a per-layer threshold, calibrated on the validation split by default. It reads
the scale alone, so it relies on the ``N(0, 1)`` prior keeping ``w~`` of order one.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from ..parallel import per_example
from .base import LatentSite, ParamSite, PriorConfig
from .group import GroupScalePrior

__all__ = ["Horseshoe", "HorseshoeConfig", "gauss_hermite_normal", "kl_lognormal_halfcauchy"]

_GH_NODES = 32
UNIT_RULES = ("snr", "log_scale")
_GH_CACHE: dict[tuple, tuple[Tensor, Tensor]] = {}


def gauss_hermite_normal(mu: Tensor, sd: Tensor, n: int = _GH_NODES) -> tuple[Tensor, Tensor]:
    """Nodes ``u`` (shape ``(*mu.shape, n)``) and weights ``w`` (``(n,)``) such that
    ``E_{u ~ N(mu, sd^2)} f(u) ~ sum_k w_k f(u_k)``: ``u_k = mu + sqrt(2) sd x_k``,
    ``w_k = h_k / sqrt(pi)`` with the Gauss-Hermite rule ``(x_k, h_k)``."""
    key = (n, mu.device, mu.dtype)
    if key not in _GH_CACHE:
        x, h = np.polynomial.hermite.hermgauss(n)
        _GH_CACHE[key] = (torch.as_tensor(x * math.sqrt(2.0), dtype=mu.dtype, device=mu.device),
                          torch.as_tensor(h / math.sqrt(math.pi), dtype=mu.dtype,
                                          device=mu.device))
    x, w = _GH_CACHE[key]
    return mu.unsqueeze(-1) + sd.unsqueeze(-1) * x, w


def kl_lognormal_halfcauchy(mu: Tensor, sd: Tensor, scale: float) -> Tensor:
    """Elementwise ``KL(LogNormal(mu, sd) || HalfCauchy(scale))`` (see the module docstring)."""
    u, w = gauss_hermite_normal(mu, sd)
    e_log1p = (F.softplus(2.0 * u - 2.0 * math.log(scale)) * w).sum(-1)
    entropy = mu + 0.5 + torch.log(sd) + 0.5 * math.log(2.0 * math.pi)
    return -entropy - math.log(2.0 / (math.pi * scale)) + e_log1p


class HorseshoeConfig(PriorConfig):
    """Settings of :class:`Horseshoe` (``prior.kind: horseshoe``)."""

    kind: Literal["horseshoe"]
    tau0: float = Field(1.0, gt=0)
    slab_scale: float | None = Field(None, gt=0)
    init_group_scale: float = Field(1.0, gt=0)
    unit_rule: Literal["snr", "log_scale"] = "snr"


class Horseshoe(GroupScalePrior, config=HorseshoeConfig):
    """Group horseshoe prior, non-centred; see the module docstring.

    Args:
        tau0: scale of the global half-Cauchy (one global scale per layer).
        slab_scale: ``c`` of the regularised horseshoe, or ``None`` for the plain one.
        init_group_scale: the guide's starting median of ``z_g`` (``s`` starts at 1); ``w~``
            starts at the initial weights divided by it (see :class:`LogUniform`).
        unit_rule: the unit score: ``"snr"`` (``-log sum_j E[w_gj]^2 / Var[w_gj]`` of the
            effective weights) or ``"log_scale"`` (Louizos et al.'s ``-E_q[log theta_g]``);
            see the module docstring.
    """

    criterion = "unit"

    def __init__(self, tau0: float = 1.0, slab_scale: float | None = None,
                 init_group_scale: float = 1.0, unit_rule: str = "snr",
                 bias_scale: float = 1.0) -> None:
        super().__init__(init_group_scale, bias_scale)
        if unit_rule not in UNIT_RULES:
            raise ValueError(f"horseshoe unit_rule={unit_rule!r}; allowed: "
                             f"{', '.join(UNIT_RULES)}")
        self.unit_rule = unit_rule
        if tau0 <= 0:
            raise ValueError(f"horseshoe tau0 must be > 0, got {tau0}")
        if slab_scale is not None and slab_scale <= 0:
            raise ValueError(f"horseshoe slab_scale must be > 0 or null, got {slab_scale}")
        self.tau0 = float(tau0)
        self.slab_scale = None if slab_scale is None else float(slab_scale)

    def bind(self, sites: list[ParamSite]) -> None:
        super().bind(sites)
        self._latents = []
        for s in sites:
            if s.role == "weight" and s.group_dim is not None:
                self._latents.append(LatentSite(f"{s.name}.s", (), (), s.name))
                self._latents.append(LatentSite(f"{s.name}.z", s.group_shape,
                                                (s.dims[s.group_dim],), s.name,
                                                init_loc=math.log(self.init_group_scale)))

    def _slab(self, theta: Tensor) -> Tensor:
        c = self.slab_scale
        return theta if c is None else c * theta * torch.rsqrt(c * c + theta * theta)

    # -- model side ---------------------------------------------------------------------------
    def latent_prior(self, latent: LatentSite) -> dist.Distribution:
        scale = self.tau0 if latent.name.endswith(".s") else 1.0
        d = dist.HalfCauchy(torch.tensor(scale, device=self._device()))
        return d.expand(latent.shape).to_event(len(latent.shape))

    def group_scale(self, site: ParamSite, values: dict[str, Tensor]) -> Tensor:
        return self._slab(values[f"{site.name}.s"] * values[f"{site.name}.z"])

    # -- fast path ----------------------------------------------------------------------------
    def input_scales(self, latent_loc, latent_scale, batch):
        out = {}
        for s in self.sites:
            if not self._grouped(s):
                continue
            mu_s, sd_s = latent_loc[f"{s.name}.s"], latent_scale[f"{s.name}.s"]
            mu_z, sd_z = latent_loc[f"{s.name}.z"], latent_scale[f"{s.name}.z"]
            eps = per_example(lambda n, mu_z=mu_z: torch.randn(n, mu_z.shape[0] + 1,
                                                               device=mu_z.device), batch)
            u = torch.addcmul(mu_z, sd_z, eps[:, 1:]) + (mu_s + sd_s * eps[:, :1])
            out[s.name] = self._slab(torch.exp(u))
        return out

    def weight_precision(self, site, latent_loc, latent_scale):
        """``w~ ~ N(0, 1)`` plus the KL of the layer's scales against their half-Cauchys."""
        ns, nz = f"{site.name}.s", f"{site.name}.z"
        extra = (kl_lognormal_halfcauchy(latent_loc[ns], latent_scale[ns], self.tau0).sum()
                 + kl_lognormal_halfcauchy(latent_loc[nz], latent_scale[nz], 1.0).sum())
        return self._one, self._zero, None, extra

    def scale_moments(self, site: ParamSite, latent_loc: dict[str, Tensor],
                      latent_scale: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """``E[theta_g]`` and ``E[theta_g^2]`` per group (closed form without the slab,
        Gauss-Hermite over ``log theta ~ N(mu_s + mu_z, sd_s^2 + sd_z^2)`` with it: 32 nodes,
        deterministic, tested against Monte Carlo). With the slab, ``E[theta] = E[slab(s z)]``
        is not ``slab(E[s] E[z])``: the posterior-mean network takes it from here
        (:meth:`~bayesstruct.priors.group.GroupScalePrior.mean_net_params`)."""
        mu = latent_loc[f"{site.name}.s"] + latent_loc[f"{site.name}.z"]
        var = latent_scale[f"{site.name}.s"] ** 2 + latent_scale[f"{site.name}.z"] ** 2
        if self.slab_scale is None:
            return torch.exp(mu + 0.5 * var), torch.exp(2.0 * mu + 2.0 * var)
        u, w = gauss_hermite_normal(mu, var.sqrt())
        theta = self._slab(torch.exp(u))
        return (theta * w).sum(-1), (theta * theta * w).sum(-1)

    def mean_site_values(self, values, latent_loc, latent_scale):
        """With the slab: ``z_g' = slab^{-1}(E_q[slab(s z_g)]) / s`` at the given ``s``, so
        that ``net_params`` forms ``E_q[theta_g] E_q[w~]``, the posterior-mean weight
        (``slab^{-1}(y) = c y / sqrt(c^2 - y^2)``; ``E_q[slab] < c``, clamped a hair below
        ``c`` in float). Without the slab ``E[s z] = E[s] E[z]`` and ``values`` stand."""
        if self.slab_scale is None:
            return values
        c = self.slab_scale
        out = dict(values)
        for s in self.sites:
            if not self._grouped(s):
                continue
            e1, _ = self.scale_moments(s, latent_loc, latent_scale)
            z = values[f"{s.name}.z"]
            y = e1.to(z).clamp(max=c * (1.0 - 1e-6))
            out[f"{s.name}.z"] = c * y * torch.rsqrt(c * c - y * y) / values[f"{s.name}.s"]
        return out

    def expected_log_scale(self, site: ParamSite, latent_loc: dict[str, Tensor],
                           latent_scale: dict[str, Tensor]) -> Tensor:
        """``E_q[log theta_g]`` per group: ``mu_s + mu_z`` without the slab, Gauss-Hermite
        over ``log s z ~ N(mu_s + mu_z, sd_s^2 + sd_z^2)`` with it."""
        mu = latent_loc[f"{site.name}.s"] + latent_loc[f"{site.name}.z"]
        if self.slab_scale is None:
            return mu
        var = latent_scale[f"{site.name}.s"] ** 2 + latent_scale[f"{site.name}.z"] ** 2
        u, w = gauss_hermite_normal(mu, var.sqrt())
        return (torch.log(self._slab(torch.exp(u))) * w).sum(-1)

    def unit_scores_from_draws(self, site: ParamSite, draws: dict[str, Tensor]) -> Tensor | None:
        """``-mean over draws of log theta_g`` under ``unit_rule="log_scale"`` (draws carry a
        leading draw axis); ``None`` (the effective weights' rule) otherwise."""
        if self.unit_rule != "log_scale":
            return None
        theta = self._slab(draws[f"{site.name}.s"].unsqueeze(-1) * draws[f"{site.name}.z"])
        return -torch.log(theta).mean(0)

    def unit_log_alpha(self, site: ParamSite, m: Tensor, var: Tensor,
                       latent_loc: dict[str, Tensor], latent_scale: dict[str, Tensor]) -> Tensor:
        """``log alpha_g = -log sum_j E[w_gj]^2 / Var[w_gj]`` (module docstring: unit rule), or
        with ``unit_rule="log_scale"`` ``-E_q[log theta_g]``."""
        if self.unit_rule == "log_scale":
            return -self.expected_log_scale(site, latent_loc, latent_scale)
        return super().unit_log_alpha(site, m, var, latent_loc, latent_scale)

    def extra_repr(self) -> str:
        return (f"tau0={self.tau0}, slab_scale={self.slab_scale}, "
                f"init_group_scale={self.init_group_scale}, unit_rule={self.unit_rule!r}, "
                f"bias_scale={self.bias_scale}")
