"""Retraining a derived architecture from scratch and scoring it (the last stage of a search)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ..data import Dataset
from ..errors import NonFiniteLossError
from ..pruning.compression import count_parameters
from ..training.plain import evaluate_net, train_plain
from .networks import DerivedNet
from .space import Genotype, SearchSpace

__all__ = ["RetrainResult", "retrain"]


@dataclass
class RetrainResult:
    genotype: Genotype
    test_acc: float
    val_acc: float
    n_params: int
    seconds: float


def retrain(genotype: Genotype, space: SearchSpace, data: Dataset, *, epochs: int = 10,
            lr: float = 3e-3, batch_size: int = 128, seed: int = 0,
            device: str | torch.device = "cpu", progress: bool = False) -> RetrainResult:
    """Train :class:`DerivedNet` ``(space, genotype)`` from scratch on ``data.train`` (Adam,
    cosine schedule) and report its validation and test top-1 accuracy. ``space`` may be
    wider or deeper than the search space (DARTS retrains with more channels and cells);
    it must have the same number of nodes. A diverging loss raises
    :class:`~bayesstruct.errors.NonFiniteLossError` naming the genotype and the epoch."""
    torch.manual_seed(seed)
    net = DerivedNet(space, genotype, data.input_shape[0], data.n_classes).to(device)
    t0 = time.perf_counter()
    try:
        train_plain(net, data, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                    device=device, progress=progress, desc=f"retrain {genotype}"[:40])
    except NonFiniteLossError as e:
        raise NonFiniteLossError(f"nas retrain of {genotype}: {e}") from None
    seconds = time.perf_counter() - t0
    data = data.to(device)
    return RetrainResult(genotype, evaluate_net(net, data.test, 1000)["acc"],
                         evaluate_net(net, data.val, 1000)["acc"], count_parameters(net), seconds)
