"""The operation-choice structure posterior of variational DARTS (a relaxed categorical,
Jang, Gu & Poole 2017; Maddison, Mnih & Teh 2017, over the DARTS space of Liu et al. 2019).

On every edge ``e`` a vector ``gamma_e`` on the simplex weights the candidate operations.

    q(gamma_e) = RelaxedOneHotCategorical(tau, logits alpha_e)     (Gumbel-softmax / Concrete)
    p(gamma_e) = RelaxedOneHotCategorical(tau, logits 0)            ("uniform"), or
    p(gamma_e) = Dirichlet(c, ..., c)                               ("dirichlet")

(Maddison, Mnih & Teh 2017; Jang, Gu & Poole 2017.) ``KL(q || p)`` has no closed form; it is
estimated by Monte Carlo, ``KL ~ (1/S) sum_s [log q(gamma_s) - log p(gamma_s)]`` with
``gamma_s = exp(x_s)`` reparameterised draws, which is unbiased. As Maddison et al. advise,
the draws and densities live in log space (the ExpConcrete ``x = log gamma``): for
``K`` ops,

    log q_x(x) = log (K-1)! + (K-1) log tau + sum_k (alpha_k - tau x_k)
                 - K logsumexp_k(alpha_k - tau x_k),

and since ``gamma = exp(x)`` maps q and p alike, ``log q(gamma) - log p(gamma)`` is
``log q_x(x) - log p_x(x)`` for the Concrete prior and
``log q_x(x) - sum_k x_k - log Dir(exp x)`` for the Dirichlet one (the Jacobian of the
exponential, ``sum_k x_k``, appears in PyTorch's ``RelaxedOneHotCategorical.log_prob``; the
Dirichlet's ``sum (c - 1) x_k`` is computed from ``x`` directly, so a draw whose smallest
components underflow in ``gamma`` still has a finite density). The test checks the estimator
against a brute-force integral over a 2-op edge.

The temperature is shared by q and the Concrete prior and may be annealed (the searcher's
schedule); the structure is read off as ``softmax(alpha)`` (the probabilities of the
categorical that the Concrete relaxes: ``P(argmax gamma = o) = softmax(alpha)_o``).
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch import Tensor, nn
from torch.distributions.relaxed_categorical import ExpRelaxedCategorical

__all__ = ["STRUCTURE_PRIORS", "OperationChoice", "relaxed_kl_integrand"]

STRUCTURE_PRIORS = ("uniform", "dirichlet")


def relaxed_kl_integrand(x: Tensor, logits: Tensor, temperature: float | Tensor,
                         prior: str = "uniform", concentration: float = 1.0) -> Tensor:
    """``log q(gamma) - log p(gamma)`` at ``gamma = exp(x)`` (module docstring), summed over
    nothing: one value per edge (the last dimension of ``x`` holds the ops)."""
    t = torch.as_tensor(temperature, dtype=logits.dtype, device=logits.device)
    log_q = ExpRelaxedCategorical(t, logits=logits).log_prob(x)
    if prior == "uniform":
        return log_q - ExpRelaxedCategorical(t, logits=torch.zeros_like(logits)).log_prob(x)
    if prior == "dirichlet":
        k = x.shape[-1]
        c = float(concentration)
        log_dir = (math.lgamma(k * c) - k * math.lgamma(c)) + (c - 1.0) * x.sum(-1)
        return log_q - x.sum(-1) - log_dir
    raise ValueError(f"structure prior {prior!r}; allowed: {', '.join(STRUCTURE_PRIORS)}")


class OperationChoice(nn.Module):
    """``q(Gamma) = prod_e RelaxedOneHotCategorical(tau, alpha_e)`` with its prior.

    Args:
        n_edges, n_ops: the shape of ``alpha``.
        temperature: ``tau`` (the searcher may change :attr:`temperature` as it goes).
        prior: ``"uniform"`` (Concrete with zero logits at the same ``tau``) or
            ``"dirichlet"`` (symmetric, ``concentration``).
        init_scale: ``alpha`` starts at ``init_scale * N(0, 1)`` (DARTS: 1e-3).
    """

    def __init__(self, n_edges: int, n_ops: int, temperature: float = 1.0,
                 prior: str = "uniform", concentration: float = 1.0, init_scale: float = 1e-3,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if prior not in STRUCTURE_PRIORS:
            raise ValueError(f"structure prior {prior!r}; allowed: {', '.join(STRUCTURE_PRIORS)}")
        if not temperature > 0 or not concentration > 0:
            raise ValueError("temperature and concentration must be > 0")
        self.alpha = nn.Parameter(init_scale * torch.randn(n_edges, n_ops, generator=generator))
        self.temperature = float(temperature)
        self.prior, self.concentration = prior, float(concentration)

    def q(self) -> dist.RelaxedOneHotCategorical:
        """The Pyro distribution of ``gamma`` (batch: edges; event: ops)."""
        return dist.RelaxedOneHotCategorical(torch.tensor(self.temperature), logits=self.alpha)

    def p(self) -> dist.Distribution:
        if self.prior == "uniform":
            return dist.RelaxedOneHotCategorical(torch.tensor(self.temperature),
                                                 logits=torch.zeros_like(self.alpha))
        return dist.Dirichlet(torch.full_like(self.alpha, self.concentration))

    def rsample(self, num_samples: int | None = None) -> tuple[Tensor, Tensor]:
        """``(gamma, kl)``: a reparameterised draw ``(n_edges, n_ops)`` (or
        ``(S, n_edges, n_ops)``) and the Monte Carlo KL estimate from it, summed over edges
        and averaged over draws."""
        shape = torch.Size() if num_samples is None else torch.Size([num_samples])
        q = ExpRelaxedCategorical(torch.tensor(self.temperature, device=self.alpha.device),
                                  logits=self.alpha)
        x = q.rsample(shape)
        kl = relaxed_kl_integrand(x, self.alpha, self.temperature, self.prior,
                                  self.concentration).sum(-1)
        return x.exp(), kl.mean() if kl.dim() else kl

    def kl(self, num_samples: int = 64) -> Tensor:
        """``KL(q(Gamma) || p(Gamma))`` by Monte Carlo with ``num_samples`` draws."""
        return self.rsample(num_samples)[1]

    def weights(self) -> Tensor:
        """``softmax(alpha)``: the categorical probabilities the derivation reads."""
        return torch.softmax(self.alpha, dim=-1)
