"""Plain (point-estimate) training: the regularised empirical risk of the pruning baselines.

The loss is the mean cross-entropy plus penalties on the *weights* (biases are not penalised):

    L(w) = (1/N) sum_n -log softmax(f(x_n; w))_{y_n}  +  l1 ||W||_1  +  (l2 / 2) ||W||_2^2

so ``l2`` is the usual weight decay and the Hessian of the penalty is ``l2 I``
(:mod:`bayesstruct.pruning.hessian` adds it). Minimised by minibatch Adam with an optional cosine
learning-rate schedule.

*Masked* training (retraining after pruning; Han et al. 2015, "Learning both weights and
connections"): a mask ``m`` (``True`` = kept) is applied to the gradient before each step and to
the weight after it, so pruned weights stay exactly zero, whatever Adam's moment estimates hold.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import logs, parallel
from ..data import Dataset, Split
from ..errors import NonFiniteLossError
from .common import Minibatches, cosine_factor, make_adam

__all__ = ["check_positive", "evaluate_net", "regularised_loss", "train_plain", "weight_names",
           "weights"]

_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def weight_names(net: nn.Module) -> list[str]:
    """Names of the weight tensors of every Linear / Conv layer (what pruning removes)."""
    return [f"{name}.weight" if name else "weight" for name, m in net.named_modules()
            if isinstance(m, _LAYERS)]


def weights(net: nn.Module) -> dict[str, torch.Tensor]:
    """``name -> weight tensor`` (detached) for :func:`weight_names`, in network order."""
    params = dict(net.named_parameters())
    return {n: params[n].detach() for n in weight_names(net)}


def regularised_loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor, *, l1: float = 0.0,
                     l2: float = 0.0) -> torch.Tensor:
    """``mean CE + l1 ||W||_1 + (l2/2) ||W||^2`` on one batch (module docstring). In a
    data-parallel step (:func:`bayesstruct.parallel.shard_of`) the CE is this rank's sum times
    ``W / B`` over the global batch, so the ranks' average is the global batch's mean."""
    scale = parallel.mean_scale(x.shape[0])
    loss = (F.cross_entropy(net(x), y) if scale is None
            else F.cross_entropy(net(x), y, reduction="sum") * scale)
    if l1 or l2:
        if isinstance(net, nn.parallel.DistributedDataParallel):
            net = net.module
        params = dict(net.named_parameters())
        weights = [params[n] for n in weight_names(net)]
        if l1:
            loss = loss + l1 * sum(w.abs().sum() for w in weights)
        if l2:
            loss = loss + 0.5 * l2 * sum(w.pow(2).sum() for w in weights)
    return loss


@torch.no_grad()
def evaluate_net(net: nn.Module, split: Split, batch_size: int = 4096) -> dict[str, float]:
    """Test NLL per example and accuracy of a plain classifier."""
    net.eval()
    nll, correct = 0.0, 0
    for i in range(0, len(split), batch_size):
        x, y = split.x[i: i + batch_size], split.y[i: i + batch_size]
        out = net(x)
        nll += float(F.cross_entropy(out, y, reduction="sum"))
        correct += int((out.argmax(1) == y).sum())
    n = max(len(split), 1)
    return {"nll": nll / n, "acc": correct / n}


def check_positive(**values: float) -> None:
    """Refuse any value that is not a finite number ``> 0``, naming the argument:
    ``check_positive(epochs=epochs, lr=lr)``."""
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not (
                math.isfinite(v) and v > 0):
            raise ValueError(f"need {name} > 0, a finite number (got {name}={v!r})")


def train_plain(net: nn.Module, data: Dataset | Split, *, epochs: int, lr: float,
                batch_size: int = 128, l1: float = 0.0, l2: float = 0.0,
                masks: Mapping[str, np.ndarray | torch.Tensor] | None = None,
                lr_schedule: str = "cosine", seed: int = 0,
                device: str | torch.device | None = None, progress: bool = False,
                desc: str = "train") -> list[dict[str, float]]:
    """Minimise the regularised loss in place; return the per-epoch history.

    Args:
        net: the network (trained in place, moved to ``device``).
        data: a Dataset (its training split is used) or a Split.
        masks: ``parameter name -> keep mask``; masked entries are held at exactly zero
            (they are zeroed first, so a dense ``net`` may be passed).
        lr_schedule: ``"cosine"`` (from ``lr`` down to 0) or ``"constant"``.

    Raises:
        ValueError: ``epochs``, ``batch_size`` or ``lr`` not ``> 0``, or ``l1``/``l2`` not
            finite and ``>= 0``.
        NonFiniteLossError: the training loss of an epoch became NaN/inf (checked once per
            epoch on a loss accumulated on the device: no synchronisation per step).
    """
    check_positive(epochs=epochs, batch_size=batch_size, lr=lr)
    for name, v in (("l1", l1), ("l2", l2)):
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"need {name} >= 0, a finite number (got {name}={v!r})")
    if lr_schedule not in ("cosine", "constant"):
        raise ValueError(f"lr_schedule={lr_schedule!r}; allowed: cosine, constant")
    train = data.train if isinstance(data, Dataset) else data
    device = torch.device(device) if device is not None else train.x.device
    net.to(device)
    train = train.to(device)
    params = dict(net.named_parameters())
    unknown = sorted(set(masks or {}) - set(params))
    if unknown:
        raise ValueError(f"masks name unknown parameters {unknown}; parameters: {sorted(params)}")
    drop = {k: ~torch.as_tensor(np.asarray(m) if not torch.is_tensor(m) else m,
                                dtype=torch.bool, device=device)
            for k, m in (masks or {}).items()}
    with torch.no_grad():
        for k, d in drop.items():
            params[k].masked_fill_(d, 0.0)
    torch.manual_seed(seed)
    opt = make_adam(list(net.parameters()), lr)
    batches = Minibatches(train.x, train.y, batch_size, seed)
    sched = (torch.optim.lr_scheduler.LambdaLR(opt, cosine_factor(max(epochs * len(batches), 1),
                                                            floor=0.0))
             if lr_schedule == "cosine" else None)
    history = []
    net.train()
    model = parallel.wrap(net)  # DistributedDataParallel over W > 1 ranks
    for epoch in logs.progress(range(epochs), desc=desc, unit="epoch", enabled=progress,
                               leave=False):
        total = torch.zeros((), device=device)
        for x, y in batches.epoch(epoch):
            opt.zero_grad(set_to_none=True)
            with parallel.shard_of(x.shape[0]) as rows:  # this rank's rows (all in 1)
                loss = regularised_loss(model, x[rows], y[rows], l1=l1, l2=l2)
            loss.backward()
            for k, d in drop.items():
                params[k].grad.masked_fill_(d, 0.0)
            opt.step()
            if sched is not None:
                sched.step()
            with torch.no_grad():
                for k, d in drop.items():
                    params[k].masked_fill_(d, 0.0)
            total += loss.detach()
        epoch_loss = float(parallel.all_reduce_mean(total)) / len(batches)
        if not math.isfinite(epoch_loss):
            raise NonFiniteLossError(
                f"plain training ({desc}): loss became {epoch_loss} in epoch {epoch + 1} of "
                f"{epochs}; no checkpoint was written (the network holds the diverged weights). "
                f"Lower the learning rate (lr={lr:g}) or the penalties.")
        history.append({"epoch": epoch + 1, "loss": epoch_loss})
    net.eval()
    return history
