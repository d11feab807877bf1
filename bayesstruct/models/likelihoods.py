"""Observation models ``p(y | f(x; w))`` by name."""

from __future__ import annotations

from abc import ABC, abstractmethod

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LIKELIHOODS", "Bernoulli", "Categorical", "Gaussian", "Likelihood", "get"]


class Likelihood(ABC):
    """Maps network outputs to a distribution over targets."""

    name: str = ""
    #: whether the targets are class labels (then :meth:`class_log_probs` is defined)
    classifier: bool = False

    def outputs(self, n_classes: int) -> int:
        """How many network outputs this likelihood reads for ``n_classes`` classes."""
        return n_classes

    def target(self, y: Tensor, out: Tensor) -> Tensor:
        """``y`` as the distribution's ``log_prob`` takes it (labels stay integers)."""
        return y

    def class_log_probs(self, out: Tensor) -> Tensor:
        """``log p(y = c | x)`` for every class, shape ``[N, C]`` (classifiers only)."""
        raise TypeError(f"the {self.name} likelihood has no classes")

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
    classifier = True

    def class_log_probs(self, out: Tensor) -> Tensor:
        return torch.log_softmax(out, dim=-1)

    def dist(self, out: Tensor) -> dist.Distribution:
        return dist.Categorical(logits=out)

    def nll(self, out: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(out, y, reduction="sum")

    def predictive(self, outs: Tensor) -> Tensor:
        """Log of the MC-averaged class probabilities, ``log (1/S) sum_s softmax(f_s)``."""
        return _log_mean_probs(self.class_log_probs(outs))


class Bernoulli(Likelihood):
    """``y ~ Bernoulli(sigmoid(f(x)))`` for two classes: one output, the log-odds of class 1.

    The identifiable form of two-class logistic regression (a 2-output softmax only sees the
    difference of its logits, so its posterior has a flat direction that NUTS crawls along)."""

    name = "bernoulli"
    classifier = True

    def outputs(self, n_classes: int) -> int:
        if n_classes != 2:
            raise ValueError(f"the bernoulli likelihood needs 2 classes, the data has "
                             f"{n_classes} (select two with data.classes: [a, b])")
        return 1

    def dist(self, out: Tensor) -> dist.Distribution:
        return dist.Bernoulli(logits=out.squeeze(-1))

    def target(self, y: Tensor, out: Tensor) -> Tensor:
        return y.to(out.dtype)

    def nll(self, out: Tensor, y: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(out.squeeze(-1), y.to(out.dtype),
                                                  reduction="sum")

    def class_log_probs(self, out: Tensor) -> Tensor:
        f = out.squeeze(-1)
        return torch.stack([F.logsigmoid(-f), F.logsigmoid(f)], dim=-1)

    def predictive(self, outs: Tensor) -> Tensor:
        """``log (1/S) sum_s p(y = c | x, w_s)`` for c = 0, 1."""
        return _log_mean_probs(self.class_log_probs(outs))


def _log_mean_probs(logp: Tensor) -> Tensor:
    """``log (1/S) sum_s exp(logp[s])`` over the leading axis."""
    return torch.logsumexp(logp, 0) - torch.log(torch.tensor(float(logp.shape[0])))


class Gaussian(Likelihood):
    """``y ~ N(f(x), noise^2)`` with a fixed noise scale; the network outputs one value."""

    name = "gaussian"

    def __init__(self, noise: float = 1.0) -> None:
        self.noise = float(noise)

    def dist(self, out: Tensor) -> dist.Distribution:
        return dist.Normal(out.squeeze(-1), self.noise)

    def nll(self, out: Tensor, y: Tensor) -> Tensor:
        return -self.dist(out).log_prob(y).sum()


LIKELIHOODS: dict[str, type[Likelihood]] = {"categorical": Categorical, "bernoulli": Bernoulli,
                                             "gaussian": Gaussian}


def get(name: str | Likelihood) -> Likelihood:
    """A likelihood by name (``categorical``, ``bernoulli``, ``gaussian``) or pass-through."""
    if isinstance(name, Likelihood):
        return name
    try:
        return LIKELIHOODS[name]()
    except KeyError:
        raise ValueError(f"likelihood {name!r}; allowed: {', '.join(LIKELIHOODS)}") from None
