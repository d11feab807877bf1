"""Pieces every training loop of bayesstruct shares: seeded minibatches, the optimiser, the
cosine learning-rate factor, and the evaluation metrics (NLL, accuracy, macro F1).

SVI, SGLD/pSGLD, plain (point-estimate) training, freezing, the architecture searchers and the
benchmarks all draw their batches and score their networks here, so a resumed run, a benchmark
and the engine see the same minibatches.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..data import Split

if TYPE_CHECKING:
    from ..models.bayesnet import BayesianNet

__all__ = ["Minibatches", "confusion_matrix", "cosine_factor", "evaluate", "evaluate_module",
           "macro_f1", "make_adam"]


@dataclass
class Minibatches:
    """Minibatches of a seeded permutation per epoch (the engine's, reused by the benchmarks)."""

    x: torch.Tensor
    y: torch.Tensor
    batch_size: int
    seed: int

    @property
    def n(self) -> int:
        return self.x.shape[0]

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def epoch(self, epoch: int):
        """Batches of a seeded permutation: epoch ``e`` is the same on a resumed run."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(self.n, generator=g).to(self.x.device)
        for i in range(0, self.n, self.batch_size):
            idx = perm[i: i + self.batch_size]
            yield self.x[idx], self.y[idx]

    def stream(self, start: int = 0):
        """The epochs' batches one after another, without end, from global step ``start``
        (epoch ``start // len(self)``, batch ``start % len(self)`` of it)."""
        epoch, skip = divmod(start, len(self))
        while True:
            batches = self.epoch(epoch)
            for _ in range(skip):
                next(batches)
            yield from batches
            epoch, skip = epoch + 1, 0


@torch.no_grad()
def evaluate(model: BayesianNet, params: dict[str, torch.Tensor], split: Split,
             batch_size: int = 1024) -> dict[str, float]:
    """NLL per example, accuracy and macro F1 of the network at ``params`` on a split, in
    evaluation mode (:func:`~bayesstruct.models.bayesnet.eval_mode`). Runs where the model
    lives (after ``svi(..., device="cuda")`` that is the GPU): the split's batches and
    ``params`` are moved there."""
    from ..models.bayesnet import eval_mode

    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    dev = first.device if first is not None else split.x.device
    params = {k: v.to(dev) if torch.is_tensor(v) else v for k, v in params.items()}
    with eval_mode(model.net):
        return _scores(model.likelihood, lambda x: model.predict(x, params), split, dev,
                       batch_size)


@torch.no_grad()
def evaluate_module(likelihood, net: torch.nn.Module, split: Split,
                    batch_size: int = 1024) -> dict[str, float]:
    """:func:`evaluate`'s figures for a plain module (a pruned, retrained or shrunk network)
    whose outputs ``likelihood`` reads; in evaluation mode (its mode is restored after)."""
    first = next(itertools.chain(net.parameters(), net.buffers()), None)
    dev = first.device if first is not None else split.x.device
    was = net.training
    net.eval()
    try:
        return _scores(likelihood, net, split, dev, batch_size)
    finally:
        net.train(was)


def _scores(likelihood, forward, split: Split, dev, batch_size: int) -> dict[str, float]:
    nll, confusion = 0.0, None
    for i in range(0, len(split), batch_size):
        x, y = split.x[i: i + batch_size].to(dev), split.y[i: i + batch_size].to(dev)
        out = forward(x)
        nll += float(likelihood.nll(out, y))
        if likelihood.classifier:
            logp = likelihood.class_log_probs(out)
            cm = confusion_matrix(logp.argmax(1), y, logp.shape[-1])
            confusion = cm if confusion is None else confusion + cm
    n = max(len(split), 1)
    if confusion is None:
        return {"nll": nll / n, "acc": 0.0, "f1_macro": 0.0}
    return {"nll": nll / n, "acc": float(confusion.diagonal().sum()) / n,
            "f1_macro": macro_f1(confusion)}


def confusion_matrix(pred: torch.Tensor, y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """``C[i, j]`` = number of examples of class ``i`` predicted as ``j``."""
    return torch.bincount(y * n_classes + pred, minlength=n_classes * n_classes).view(
        n_classes, n_classes)


def macro_f1(confusion: torch.Tensor) -> float:
    """Unweighted mean over classes of ``F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c)``, over the
    classes that occur as a label or a prediction (scikit-learn's ``f1_score(average="macro")``,
    tested against it)."""
    c = confusion.double()
    tp = c.diagonal()
    denom = c.sum(0) + c.sum(1)  # = 2 TP + FP + FN
    present = denom > 0
    return float((2 * tp[present] / denom[present]).mean()) if bool(present.any()) else 0.0


def make_adam(params, lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel (one pass over all parameters; CPU and CUDA in torch >= 2.4);
    the default for-each/for-loop Adam where the fused kernel is not available."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr)


def cosine_factor(total_steps: int, floor: float = 0.01) -> Callable[[int], float]:
    """lr factor ``floor + (1 - floor) (1 + cos(pi t / T)) / 2``: closed form in the step ``t``,
    so a resumed run (even one given more epochs) continues on the same curve."""
    def factor(t: int) -> float:
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(t, total_steps)
                                                         / total_steps))
    return factor
