"""Observation models ``p(y | f(x; w))`` by name."""

from __future__ import annotations

from abc import ABC, abstractmethod

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LIKELIHOODS", "Categorical", "Gaussian", "Likelihood", "get"]


class Likelihood(ABC):
    """Maps network outputs to a distribution over targets."""

    name: str = ""

    @abstractmethod
    def dist(self, out: Tensor) -> dist.Distribution:
        """The per-example distribution (batch shape = number of examples)."""

    @abstractmethod
    def nll(self, out: Tensor, y: Tensor) -> Tensor:
        """Summed negative log-likelihood of a batch (fast path; equals ``-dist.log_prob``)."""

    def predictive(self, outs: Tensor) -> Tensor:
        """Average the predictive over Monte-Carlo draws ``outs[S, N, ...]``."""
        return outs.mean(0)


class Categorical(Likelihood):
    """``y ~ Categorical(softmax(f(x)))``; the network outputs logits."""

    name = "categorical"

    def dist(self, out: Tensor) -> dist.Distribution:
        return dist.Categorical(logits=out)

    def nll(self, out: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(out, y, reduction="sum")

    def predictive(self, outs: Tensor) -> Tensor:
        """Log of the MC-averaged class probabilities, ``log (1/S) sum_s softmax(f_s)``."""
        logp = torch.log_softmax(outs, dim=-1)
        return torch.logsumexp(logp, 0) - torch.log(torch.tensor(float(outs.shape[0])))


class Gaussian(Likelihood):
    """``y ~ N(f(x), noise^2)`` with a fixed noise scale; the network outputs one value."""

    name = "gaussian"

    def __init__(self, noise: float = 1.0) -> None:
        self.noise = float(noise)

    def dist(self, out: Tensor) -> dist.Distribution:
        return dist.Normal(out.squeeze(-1), self.noise)

    def nll(self, out: Tensor, y: Tensor) -> Tensor:
        return -self.dist(out).log_prob(y).sum()


LIKELIHOODS: dict[str, type[Likelihood]] = {"categorical": Categorical, "gaussian": Gaussian}


def get(name: str | Likelihood) -> Likelihood:
    """A likelihood by name (``categorical``, ``gaussian``) or pass-through."""
    if isinstance(name, Likelihood):
        return name
    try:
        return LIKELIHOODS[name]()
    except KeyError:
        raise ValueError(f"likelihood {name!r}; allowed: {', '.join(LIKELIHOODS)}") from None
