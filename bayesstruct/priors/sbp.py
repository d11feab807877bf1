"""Structured Bayesian Pruning (SBP): multiplicative log-normal noise on every unit.

Neklyudov, Molchanov, Ashukha & Vetrov (2017) multiply each unit's signal by a positive noise
``theta_g`` and learn its distribution. In the non-centred form every group-scale prior here
shares (:class:`~bayesstruct.priors.group.GroupScalePrior`), the noise of a layer's input unit
``g`` (an input feature of a Linear layer, an input channel of a convolution, the hidden state
of a recurrent layer) scales the weights leaving it,

    w_gj = theta_g w~_gj,
    log theta_g ~ Uniform(a, b)            (the truncated log-uniform prior; a = -20, b = 0),
    w~_gj ~ N(0, 1),

which is the paper's noise on the previous layer's output. The variational factor of
``theta_g`` is a log-normal truncated to the same interval (``family="truncated_lognormal"``:
:class:`~bayesstruct.guides.LogNormal`, or :class:`~bayesstruct.guides.MeanField`), and its KL
against the prior has a closed form
(:func:`~bayesstruct.priors.truncated.kl_truncated_lognormal_loguniform`).

**Fast forward.** As in the paper, the noise is drawn per example and unit: the guide's local
reparameterisation layers multiply their input by an independent draw of ``theta`` for every
example (:meth:`SBP.input_scales`), so the output of a unit keeps mean ``x E[theta]`` and
variance ``x^2 Var[theta]``.

**Unit decision.** A unit is removed when the signal-to-noise ratio of its noise,
``SNR_g = E[theta_g] / sd[theta_g]``, is small; the paper's rule is ``SNR < 1``. The score the
unit decisions read is ``-2 log SNR_g = log(Var / E^2)`` (larger = removed first), on the same
footing as BC-GNJ's ``log sigma_z^2 - log mu_z^2``: ``pruning.unit_threshold: 0`` is the
paper's threshold, and ``auto`` calibrates one per layer on the validation split. For a
sampler's draws the same ratio is read from the draws of ``theta_g``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor

from ..parallel import per_example
from .base import LatentSite, ParamSite, PriorConfig
from .group import GroupScalePrior
from .truncated import (
    TruncatedLogUniform,
    kl_truncated_lognormal_loguniform,
    truncated_lognormal_log_moment,
    truncated_lognormal_log_snr,
    truncated_normal_icdf,
)

__all__ = ["SBP", "SBPConfig"]


class SBPConfig(PriorConfig):
    """Settings of :class:`SBP` (``prior.kind: sbp``)."""

    kind: Literal["sbp"]
    log_low: float = Field(-20.0, le=0)
    log_high: float = Field(0.0, le=10)
    init_log_scale: float = Field(-5.0, le=0)

    @model_validator(mode="after")
    def _interval(self) -> SBPConfig:
        if not self.log_low < self.log_high:
            raise ValueError(f"log_low ({self.log_low}) must be below log_high "
                             f"({self.log_high})")
        return self


class SBP(GroupScalePrior, config=SBPConfig):
    """Structured Bayesian Pruning's truncated log-uniform noise prior; see the module
    docstring.

    Args:
        log_low: ``a``, the lower end of ``log theta`` (the paper: -20).
        log_high: ``b``, the upper end of ``log theta`` (the paper: 0).
        init_log_scale: where the guide starts ``log sigma`` of every noise (the paper's code:
            -5); ``mu`` starts at ``b``'s side of the interval, ``min(0, b)``.
    """

    criterion = "unit"

    def __init__(self, log_low: float = -20.0, log_high: float = 0.0,
                 init_log_scale: float = -5.0, bias_scale: float = 1.0) -> None:
        if not log_low < log_high:
            raise ValueError(f"sbp log_low ({log_low}) must be below log_high ({log_high})")
        self.log_low, self.log_high = float(log_low), float(log_high)
        self.init_log_scale = float(init_log_scale)
        self.init_log_loc = min(0.0, self.log_high)
        super().__init__(self._initial_mean(), bias_scale)

    def _initial_mean(self) -> float:
        mu = torch.tensor(self.init_log_loc, dtype=torch.float64)
        sd = torch.tensor(math.exp(self.init_log_scale), dtype=torch.float64)
        return float(torch.exp(truncated_lognormal_log_moment(mu, sd, self.log_low,
                                                              self.log_high, 1)))

    def bind(self, sites: list[ParamSite]) -> None:
        super().bind(sites)
        self._latents = [
            LatentSite(f"{s.name}.theta", s.group_shape, (s.dims[s.group_dim],), s.name,
                       family="truncated_lognormal", init_loc=self.init_log_loc,
                       init_scale=math.exp(self.init_log_scale),
                       bounds=(self.log_low, self.log_high))
            for s in sites if self._grouped(s)]

    # -- model side ---------------------------------------------------------------------------
    def latent_prior(self, latent: LatentSite):
        d = TruncatedLogUniform(self.log_low, self.log_high, latent.shape, self._device())
        return d.to_event(len(latent.shape))

    def group_scale(self, site: ParamSite, values: dict[str, Tensor]) -> Tensor:
        return values[f"{site.name}.theta"]

    # -- fast path ----------------------------------------------------------------------------
    def input_scales(self, latent_loc, latent_scale, batch):
        """One draw of every unit's ``theta`` per example (inverse CDF of the truncated
        log-normal): ``weight site -> (batch, units)``."""
        out = {}
        for ls in self._latents:
            mu, sd = latent_loc[ls.name], latent_scale[ls.name]
            u = per_example(lambda n, mu=mu: torch.rand(n, *mu.shape, dtype=mu.dtype,
                                                        device=mu.device), batch)
            out[ls.target] = torch.exp(truncated_normal_icdf(mu, sd, self.log_low,
                                                             self.log_high, u))
        return out

    def weight_precision(self, site, latent_loc, latent_scale):
        """``w~ ~ N(0, 1)`` plus the closed-form KL of the site's unit noises."""
        name = f"{site.name}.theta"
        extra = kl_truncated_lognormal_loguniform(latent_loc[name], latent_scale[name],
                                                  self.log_low, self.log_high).sum()
        return self._one, self._zero, None, extra

    def scale_moments(self, site, latent_loc, latent_scale):
        """``E[theta_g]`` and ``E[theta_g^2]`` of the truncated log-normal (closed form)."""
        mu, sd = latent_loc[f"{site.name}.theta"], latent_scale[f"{site.name}.theta"]
        return (torch.exp(truncated_lognormal_log_moment(mu, sd, self.log_low, self.log_high, 1)),
                torch.exp(truncated_lognormal_log_moment(mu, sd, self.log_low, self.log_high, 2)))

    # -- unit decisions -----------------------------------------------------------------------
    def unit_log_alpha(self, site: ParamSite, m: Tensor, var: Tensor,
                       latent_loc: dict[str, Tensor], latent_scale: dict[str, Tensor]) -> Tensor:
        """``-2 log SNR_g`` of the unit's noise (module docstring; the paper removes a unit
        when it is above 0)."""
        name = f"{site.name}.theta"
        return -2.0 * truncated_lognormal_log_snr(latent_loc[name], latent_scale[name],
                                                  self.log_low, self.log_high)

    def unit_scores_from_draws(self, site: ParamSite, draws: dict[str, Tensor]) -> Tensor:
        """``log(Var / mean^2)`` of the draws of ``theta_g`` (leading draw axis)."""
        theta = draws[f"{site.name}.theta"]
        return torch.log(theta.var(0) / theta.mean(0) ** 2)

    def extra_repr(self) -> str:
        return (f"log_low={self.log_low}, log_high={self.log_high}, "
                f"init_log_scale={self.init_log_scale}, bias_scale={self.bias_scale}")
