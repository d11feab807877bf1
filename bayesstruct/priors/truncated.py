"""The truncated log-normal / truncated log-uniform pair of Structured Bayesian Pruning.

Neklyudov, Molchanov, Ashukha & Vetrov (2017) multiply every unit of a layer by a positive noise
``theta`` and put on it a log-uniform prior truncated to ``log theta in [a, b]``
(``p(log theta) = 1 / (b - a)`` there; ``a = -20``, ``b = 0`` in the paper), and give it a
truncated log-normal posterior: ``log theta ~ N(mu, sigma^2)`` restricted to ``[a, b]``.
With ``alpha = (a - mu) / sigma``, ``beta = (b - mu) / sigma``, ``Z = Phi(beta) - Phi(alpha)``
(``Phi``, ``phi``: the standard normal CDF and density):

* **KL** (invariant under ``theta = exp(u)``, so computed for ``u = log theta``):

      KL(q || p) = log(b - a) - log(sqrt(2 pi e) sigma) - log Z
                   - (alpha phi(alpha) - beta phi(beta)) / (2 Z)

  (the entropy of a truncated normal, subtracted from the uniform's ``log(b - a)``);
* **moments**, ``E[theta^k] = exp(k mu + k^2 sigma^2 / 2)
  (Phi(beta - k sigma) - Phi(alpha - k sigma)) / Z``, and from them the signal-to-noise
  ratio ``SNR = E[theta] / sqrt(Var[theta])`` by which the paper removes a unit (``SNR < 1``);
* **draws** by the inverse CDF, ``u = mu + sigma Phi^{-1}(Phi(alpha) + U Z)``,
  ``U ~ Uniform(0, 1)``: reparameterised, so the noise's gradients reach ``mu`` and ``sigma``.

Every difference of normal CDFs is taken in log space on the side of the tail that keeps its
digits (``log_ndtr`` of the mirrored arguments when both lie above zero).
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch import Tensor
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

__all__ = ["TruncatedLogNormal", "TruncatedLogUniform", "kl_truncated_lognormal_loguniform",
           "log_ndtr_diff", "truncated_lognormal_log_moment", "truncated_lognormal_log_snr",
           "truncated_normal_icdf"]

_LOG_SQRT_2PI_E = 0.5 * math.log(2.0 * math.pi * math.e)


def _log1mexp(x: Tensor) -> Tensor:
    """``log(1 - exp(x))`` for ``x < 0`` (Maechler 2012's two branches)."""
    x = x.clamp(max=-1e-30)
    return torch.where(x > -math.log(2.0), torch.log(-torch.expm1(x)),
                       torch.log1p(-torch.exp(x)))


def log_ndtr_diff(lo: Tensor, hi: Tensor) -> Tensor:
    """``log(Phi(hi) - Phi(lo))`` for ``lo < hi``, without cancellation in either tail."""
    lo, hi = broadcast_all(lo, hi)
    upper = lo > 0  # both in the upper tail: Phi(hi) - Phi(lo) = Phi(-lo) - Phi(-hi)
    a = torch.where(upper, -hi, lo)
    b = torch.where(upper, -lo, hi)
    log_b = torch.special.log_ndtr(b)
    return log_b + _log1mexp(torch.special.log_ndtr(a) - log_b)


def _standardise(mu: Tensor, sigma: Tensor, a: float, b: float) -> tuple[Tensor, Tensor]:
    return (a - mu) / sigma, (b - mu) / sigma


def kl_truncated_lognormal_loguniform(mu: Tensor, sigma: Tensor, a: float, b: float) -> Tensor:
    """Elementwise ``KL(q || p)`` of the module docstring: ``q`` the log-normal ``(mu, sigma)``
    truncated to ``log theta in [a, b]``, ``p`` the log-uniform on the same interval."""
    alpha, beta = _standardise(mu, sigma, a, b)
    log_z = log_ndtr_diff(alpha, beta)
    # (alpha phi(alpha) - beta phi(beta)) / Z with phi / Z = exp(log phi - log Z)
    log_phi = -0.5 * math.log(2.0 * math.pi)
    t_a = alpha * torch.exp(log_phi - 0.5 * alpha * alpha - log_z)
    t_b = beta * torch.exp(log_phi - 0.5 * beta * beta - log_z)
    return math.log(b - a) - _LOG_SQRT_2PI_E - torch.log(sigma) - log_z - 0.5 * (t_a - t_b)


def truncated_lognormal_log_moment(mu: Tensor, sigma: Tensor, a: float, b: float,
                                   k: int) -> Tensor:
    """``log E[theta^k]`` under the truncated log-normal (module docstring)."""
    alpha, beta = _standardise(mu, sigma, a, b)
    return (k * mu + 0.5 * k * k * sigma * sigma
            + log_ndtr_diff(alpha - k * sigma, beta - k * sigma) - log_ndtr_diff(alpha, beta))


def _log_mean_and_variance(mu: Tensor, sigma: Tensor, a: float, b: float
                           ) -> tuple[Tensor, Tensor]:
    """``(log E[theta], log Var[theta])``, ``Var = E[theta^2] - E[theta]^2`` in log space:
    ``log Var = log E[theta^2] + log(1 - exp(2 log E[theta] - log E[theta^2]))``."""
    m1 = truncated_lognormal_log_moment(mu, sigma, a, b, 1)
    m2 = truncated_lognormal_log_moment(mu, sigma, a, b, 2)
    return m1, m2 + _log1mexp(2.0 * m1 - m2)


def truncated_lognormal_log_snr(mu: Tensor, sigma: Tensor, a: float, b: float) -> Tensor:
    """``log SNR = log E[theta] - 1/2 log Var[theta]``. A unit is removed by the paper's rule
    when ``SNR < 1``."""
    log_mean, log_var = _log_mean_and_variance(mu, sigma, a, b)
    return log_mean - 0.5 * log_var


def truncated_normal_icdf(mu: Tensor, sigma: Tensor, a: float, b: float, u: Tensor) -> Tensor:
    """``mu + sigma Phi^{-1}(Phi(alpha) + u Z)``: the draw of ``log theta`` at the uniform
    ``u`` (inverse CDF), mirrored into the lower tail when ``alpha > 0`` so that
    ``Phi^{-1}`` is evaluated where its argument has digits; clamped to ``[a, b]`` against
    rounding."""
    alpha, beta = _standardise(mu, sigma, a, b)
    upper = alpha > 0
    lo = torch.where(upper, -beta, alpha)
    hi = torch.where(upper, -alpha, beta)
    p_lo, p_hi = torch.special.ndtr(lo), torch.special.ndtr(hi)
    # the mirrored draw runs the other way: U -> 1 - U keeps the map monotone in u
    uu = torch.where(upper, 1.0 - u, u)
    x = torch.special.ndtri((p_lo + uu * (p_hi - p_lo)).clamp(1e-38, 1.0 - 1e-7))
    x = torch.where(upper, -x, x)
    return (mu + sigma * x).clamp(a, b)


class TruncatedLogNormal(dist.TorchDistribution):
    """``theta = exp(u)``, ``u ~ N(loc, scale^2)`` truncated to ``[low, high]`` (log space).

    ``mean`` and ``variance`` are the closed forms of the module docstring; ``rsample`` is the
    inverse-CDF draw, differentiable in ``loc`` and ``scale``."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    has_rsample = True

    def __init__(self, loc: Tensor, scale: Tensor, low: float, high: float,
                 validate_args: bool | None = None) -> None:
        if not low < high:
            raise ValueError(f"TruncatedLogNormal needs low < high (got {low}, {high})")
        self.loc, self.scale = broadcast_all(loc, scale)
        self.low, self.high = float(low), float(high)
        super().__init__(self.loc.shape, validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        return constraints.interval(math.exp(self.low), math.exp(self.high))

    def expand(self, batch_shape, _instance=None):
        shape = torch.Size(batch_shape)
        return TruncatedLogNormal(self.loc.expand(shape), self.scale.expand(shape), self.low,
                                  self.high)

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        u = torch.rand(shape, dtype=self.loc.dtype, device=self.loc.device)
        return torch.exp(truncated_normal_icdf(self.loc, self.scale, self.low, self.high, u))

    def log_prob(self, value: Tensor) -> Tensor:
        """``log q(theta) = log N(log theta; loc, scale) - log Z - log theta`` on the support
        (``-inf`` outside)."""
        u = torch.log(value)
        alpha, beta = _standardise(self.loc, self.scale, self.low, self.high)
        lp = (-0.5 * ((u - self.loc) / self.scale) ** 2 - torch.log(self.scale)
              - 0.5 * math.log(2.0 * math.pi) - log_ndtr_diff(alpha, beta) - u)
        inside = (u >= self.low) & (u <= self.high)
        return torch.where(inside, lp, torch.full_like(lp, -math.inf))

    @property
    def mean(self) -> Tensor:
        return torch.exp(truncated_lognormal_log_moment(self.loc, self.scale, self.low,
                                                        self.high, 1))

    @property
    def variance(self) -> Tensor:
        return torch.exp(_log_mean_and_variance(self.loc, self.scale, self.low, self.high)[1])


class TruncatedLogUniform(dist.TorchDistribution):
    """``log theta ~ Uniform(low, high)``: density ``1 / ((high - low) theta)`` on
    ``[exp(low), exp(high)]``, the truncated log-uniform prior of Structured Bayesian
    Pruning."""

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(self, low: float, high: float, batch_shape: torch.Size = torch.Size(),
                 device: torch.device | str | None = None,
                 validate_args: bool | None = None) -> None:
        if not low < high:
            raise ValueError(f"TruncatedLogUniform needs low < high (got {low}, {high})")
        self.low, self.high = float(low), float(high)
        self._device = torch.device(device) if device is not None else torch.device("cpu")
        super().__init__(torch.Size(batch_shape), validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        return constraints.interval(math.exp(self.low), math.exp(self.high))

    def expand(self, batch_shape, _instance=None):
        return TruncatedLogUniform(self.low, self.high, torch.Size(batch_shape), self._device)

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        u = torch.rand(self._extended_shape(sample_shape), device=self._device)
        return torch.exp(self.low + (self.high - self.low) * u)

    def log_prob(self, value: Tensor) -> Tensor:
        u = torch.log(value)
        lp = -math.log(self.high - self.low) - u
        inside = (u >= self.low) & (u <= self.high)
        return torch.where(inside, lp, torch.full_like(lp, -math.inf))

    @property
    def mean(self) -> Tensor:
        e = (math.exp(self.high) - math.exp(self.low)) / (self.high - self.low)
        return torch.full(self.batch_shape, e, device=self._device)
