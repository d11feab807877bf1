"""The log-normal guide: log-normal structure factors over point or mean-field weights.

Structure, here, is a positive multiplicative noise or scale per unit: Structured Bayesian
Pruning's ``theta_g`` (Neklyudov et al. 2017, :class:`~bayesstruct.priors.SBP`: a log-normal
truncated to the prior's interval), the group horseshoe's scales (Louizos, Ullrich & Welling
2017) or ARD's per-unit precisions with a Gamma hyperprior. This guide gives every such latent
its log-normal factor (:class:`~bayesstruct.guides.MeanField`'s, by the latent's family) and
lets the user choose what sits underneath:

* ``weights="point"`` (the default, as in the SBP paper): every weight and bias is a point
  estimate, ``q(w) = delta(w - m)``. The ELBO's weight term is then ``E_q[log p(m | latents)]``
  (a Delta has no entropy term in Pyro's convention, so the fast path and Pyro's
  ``Trace_ELBO`` of :meth:`forward` estimate the same objective); the network's only noise is
  the structure's, drawn per example and unit (the prior's ``input_scales``).
* ``weights="meanfield"``: a mean-field Normal on the weights with the local
  reparameterisation, exactly :class:`~bayesstruct.guides.MeanField`.

The guide refuses priors without positive unit-level latents (Gaussian, ARD with empirical
Bayes or per weight, the log-uniform priors, the IBP), naming why.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

import torch
from torch import Tensor

from ..models.bayesnet import BayesianNet
from ..priors.base import Prior
from .base import site_key
from .meanfield import MeanField

__all__ = ["LogNormal", "lognormal_obstacle"]

WEIGHTS = ("point", "meanfield")
_POSITIVE = ("lognormal", "truncated_lognormal")


def lognormal_obstacle(prior: Prior) -> str | None:
    """Why the log-normal guide cannot hold ``prior`` (``None`` if it can): it needs positive
    latents, at least one of them per unit group, and nothing discrete or real-valued."""
    if prior.discrete:
        return ("its unit masks are discrete (use the meanfield guide, which relaxes them, or "
                "NUTS)")
    latents = prior.latents
    if not latents:
        what = ("its precisions are point hyperparameters (empirical Bayes)"
                if getattr(prior, "empirical_bayes", False) else "it has no latent scales")
        return f"{what}: there is no unit-level structure for a log-normal factor"
    real = [ls.name for ls in latents if ls.family not in _POSITIVE]
    if real:
        return (f"its latents {', '.join(real[:3])} are real-valued (a Normal factor), not "
                "positive scales")
    sites = {s.name: s for s in prior.sites}
    per_unit = [ls for ls in latents if sites[ls.target].group_dim is not None
                and tuple(ls.shape) == sites[ls.target].group_shape]
    if not per_unit:
        return ("its latents are per weight, not per unit: there is no unit structure for the "
                "guide to decide")
    return None


class LogNormal(MeanField):
    """Log-normal factors on the prior's positive unit latents; point-estimated (default) or
    mean-field weights underneath (module docstring).

    Args:
        model: the :class:`~bayesstruct.models.BayesianNet` (or ``None``; the engine binds it).
        weights: ``"point"`` or ``"meanfield"``.
        init_scale: the weights' initial posterior standard deviation (``meanfield`` only).
        init_latent_scale: initial log-space standard deviation of latents whose prior sets
            none (SBP's noise starts at its own ``init_log_scale``).
        reparam: as :class:`MeanField`.
        max_scale: as :class:`MeanField`; it bounds mean-field weights, so it needs
            ``weights="meanfield"``.
        max_scale_sites: as :class:`MeanField`.
        fuse: as :class:`MeanField` (no effect with point weights).
    """

    name = "lognormal"

    def __init__(self, model: BayesianNet | None = None, weights: str = "point",
                 init_scale: float = 1e-3, init_latent_scale: float = 0.1,
                 reparam: str = "auto", max_scale: float | None = None,
                 max_scale_sites: Sequence[str] = ("*",), fuse: bool = True) -> None:
        if weights not in WEIGHTS:
            raise ValueError(f"weights={weights!r}; allowed: {', '.join(WEIGHTS)}")
        if weights == "point" and max_scale is not None:
            raise ValueError("max_scale bounds mean-field weights; with weights='point' there "
                             "are none (use weights='meanfield' or max_scale=None)")
        self.weights = weights
        super().__init__(model, init_scale=init_scale, init_latent_scale=init_latent_scale,
                         reparam=reparam, max_scale=max_scale, max_scale_sites=max_scale_sites,
                         fuse=fuse)

    def _setup(self, model: BayesianNet) -> None:
        reason = lognormal_obstacle(model.prior)
        if reason is not None:
            raise ValueError(f"guide 'lognormal' cannot hold prior {model.prior.kind!r}: "
                             f"{reason}; use guide 'meanfield'")
        super()._setup(model)
        self._points: list[str] = []
        if self.weights == "point":
            for s in model.sites:
                if site_key(s.name) in self.log_var:
                    del self.log_var[site_key(s.name)]
                    self._points.append(s.name)
            self._fusable = []

    def _prior_kl(self, loc: dict[str, Tensor], log_var: dict[str, Tensor],
                  lat_loc: dict[str, Tensor], lat_scale: dict[str, Tensor],
                  var: dict[str, Tensor] | None = None, skip: Collection[str] = ()) -> Tensor:
        """With point weights: ``-E_q[log p(m | latents)]`` of every weight and bias plus the
        latents' KL. The prior's Gaussian form at zero variance,
        ``1/2 sum_i [prec_i m_i^2 - log prec_i - 1]``, is that cross-entropy less
        ``1/2 (log 2 pi + 1)`` per value, which is added back."""
        if not self._points:
            return super()._prior_kl(loc, log_var, lat_loc, lat_scale, var, skip)
        zeros = {n: torch.zeros_like(loc[n]) for n in self._points}
        q_var = {**({k: var[k] for k in log_var} if var is not None else
                    {k: torch.exp(v) for k, v in log_var.items()}), **zeros}
        kl = self.model.prior.kl(loc, {**log_var, **zeros}, lat_loc, lat_scale, q_var=q_var,
                                 skip=skip)
        n = sum(loc[name].numel() for name in self._points if name not in skip)
        return kl + 0.5 * (math.log(2.0 * math.pi) + 1.0) * n
