r"""The networks whose bytes the compression summary counts, built so that they can be evaluated.

Two stored formats of a pruned network are counted in :mod:`~bayesstruct.pruning.summary`; here
each becomes a plain ``torch`` network holding exactly the weights that format stores, so its
test error can be measured beside its size.

**Deep Compression** (Han, Mao & Dally 2016, "Deep Compression: Compressing Deep Neural Networks
with Pruning, Trained Quantization and Huffman Coding"), :func:`deep_compression`:

1. *prune*: the keep-masks are given (pruned weights are zero and stay zero);
2. *quantise*: per layer, the kept weights are clustered by 1-D k-means into at most
   ``2**bits`` shared values, centroids initialised linearly over ``[min w, max w]``
   (:func:`~bayesstruct.pruning.coding.kmeans_share`; Han et al. found linear initialisation
   the best, their Sec. 3.2);
3. *fine-tune the shared centroids* (their Sec. 3.3): with the assignments ``a_i`` and the
   masks fixed, the layer's weights are ``w_i = c_{a_i}``, so the gradient of the loss with
   respect to a centroid is the sum of the gradients of the weights assigned to it,

   .. math:: \frac{\partial L}{\partial c_j} = \sum_i \frac{\partial L}{\partial w_i}
             \mathbb{1}[a_i = j],

   which autograd computes through the gather ``w = c[a]`` (:func:`shared_weight`).  The
   centroids are trained for a few epochs on the training split (Adam, a cosine learning-rate
   schedule down to 0, minibatches of a seeded permutation), the network in evaluation mode
   (dropout off, normalisation statistics held) and its other parameters (biases) held;
4. *Huffman-code* the centroid indices and the relative positions: the summary codes the
   fine-tuned network's weights with :func:`~bayesstruct.pruning.coding.layer_code_size`
   (whose codebook is then exactly the fine-tuned centroids), so the bytes reported are the
   bytes of the network evaluated.

**Bit precision** (Louizos, Ullrich & Welling 2017, "Bayesian Compression for Deep Learning"),
:func:`round_to_bits`: each layer's kept weights are stored as floats with ``t`` significand
(mantissa) bits, ``t`` the layer's :func:`~bayesstruct.pruning.coding.bit_precision`; a weight
``w = m 2^e`` (``1 <= |m| < 2``) is rounded to the nearest multiple of ``2^(e - t)``, i.e. its
significand to ``t`` bits after the leading one (round half to even), as an IEEE float with a
``t``-bit fraction stores it (``t = 23`` leaves float32 weights unchanged).  The exponent range
is not limited: the reference counts exponent bits from the largest weight only, with no
underflow bound, so each weight keeps its own exponent here.

:func:`evaluate_plain` measures a plain network on a split (accuracy and NLL per example, with
the model's likelihood), the figures the summary reports as ``acc_quantised`` and
``acc_bit_precision``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..data import Split
from ..errors import NonFiniteLossError
from .coding import kmeans_share

__all__ = ["Quantised", "deep_compression", "evaluate_plain", "finetune_centroids",
           "kmeans_layer", "round_significand", "round_to_bits", "shared_weight"]

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Quantised:
    """A Deep-Compression network: ``net`` holds ``codebooks[name][indices[name]]`` (0 where the
    index is ``-1``, the pruned weights) for every quantised weight; ``history`` the mean
    training loss of each fine-tuning epoch."""

    net: nn.Module
    codebooks: dict[str, torch.Tensor]
    indices: dict[str, torch.Tensor]
    history: list[dict[str, float]] = field(default_factory=list)


def kmeans_layer(weight: torch.Tensor, mask: np.ndarray | torch.Tensor, bits: int,
                 iters: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    """k-means weight sharing of one layer's kept weights (linear initialisation).

    Returns ``(codebook, indices)``: ``codebook`` float32 ``[k]`` (``k <= 2**bits``, sorted)
    and ``indices`` int64 of the weight's shape, the centroid of each kept weight and ``-1``
    at the pruned ones; both on the weight's device.
    """
    m = torch.as_tensor(np.asarray(mask.cpu() if torch.is_tensor(mask) else mask, dtype=bool))
    if tuple(m.shape) != tuple(weight.shape):
        raise ValueError(f"mask shape {tuple(m.shape)} != weight shape {tuple(weight.shape)}")
    w = weight.detach().cpu().double()
    codebook, idx = kmeans_share(w[m].numpy(), bits, iters=iters)
    indices = torch.full(tuple(weight.shape), -1, dtype=torch.int64)
    indices[m] = torch.as_tensor(idx, dtype=torch.int64)
    device = weight.device
    return torch.as_tensor(codebook, dtype=torch.float32).to(device), indices.to(device)


def shared_weight(codebook: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """``w = c[a]`` with ``w = 0`` where ``a = -1``; differentiable in ``codebook`` (the gather's
    backward adds up the gradients of the weights that share a centroid)."""
    padded = torch.cat([codebook, codebook.new_zeros(1)])
    return padded[torch.where(indices < 0, codebook.numel(), indices)]


def _cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(out, y)


def finetune_centroids(net: nn.Module, codebooks: Mapping[str, torch.Tensor],
                       indices: Mapping[str, torch.Tensor], train: Split, *, epochs: int,
                       lr: float = 1e-3, batch_size: int = 128, seed: int = 0,
                       loss: Loss = _cross_entropy) -> tuple[dict[str, torch.Tensor],
                                                             list[dict[str, float]]]:
    """Train the shared centroids (Han et al. 2016, Sec. 3.3); ``net`` is left unchanged.

    Every step evaluates ``net`` with the weights ``shared_weight(c, a)`` in place of its own
    (``torch.func.functional_call``; the other parameters are ``net``'s, held), takes ``loss``
    (a batch mean) and moves the centroids by Adam, with the learning rate on a cosine from
    ``lr`` to 0 over all steps. Assignments and masks do not change.

    Returns:
        ``(codebooks, history)``: the fine-tuned codebooks (float32, detached) and the mean
        training loss of each epoch.

    Raises:
        ValueError: ``epochs < 0``, or ``lr`` or ``batch_size`` not positive.
        NonFiniteLossError: an epoch's loss was NaN or infinite.
    """
    if epochs < 0:
        raise ValueError(f"need epochs >= 0 (got {epochs})")
    if not (math.isfinite(lr) and lr > 0) or batch_size < 1:
        raise ValueError(f"need lr > 0 and batch_size >= 1 (got lr={lr}, "
                         f"batch_size={batch_size})")
    from ..training.common import Minibatches, cosine_factor, make_adam

    params = {k: nn.Parameter(c.detach().clone().float()) for k, c in codebooks.items()}
    history: list[dict[str, float]] = []
    trainable = [p for p in params.values() if p.numel() > 0]
    if epochs == 0 or not trainable or len(train) == 0:
        return {k: p.detach() for k, p in params.items()}, history
    device = trainable[0].device
    train = train.to(device)
    batches = Minibatches(train.x, train.y, batch_size, seed)
    opt = make_adam(trainable, lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, cosine_factor(max(epochs * len(batches), 1), floor=0.0))
    was_training = net.training
    net.eval()
    try:
        for epoch in range(epochs):
            total = torch.zeros((), device=device)
            for x, y in batches.epoch(epoch):
                opt.zero_grad(set_to_none=True)
                weights = {k: shared_weight(p, indices[k]) for k, p in params.items()}
                value = loss(functional_call(net, weights, (x,)), y)
                value.backward()
                opt.step()
                sched.step()
                total += value.detach()
            mean = float(total) / len(batches)
            if not math.isfinite(mean):
                raise NonFiniteLossError(
                    f"centroid fine-tuning: loss became {mean} in epoch {epoch + 1} of "
                    f"{epochs}; lower the learning rate (lr={lr:g})")
            history.append({"epoch": epoch + 1, "loss": mean})
    finally:
        net.train(was_training)
    return {k: p.detach() for k, p in params.items()}, history


def deep_compression(net: nn.Module, masks: Mapping[str, np.ndarray | torch.Tensor],
                     bits: Mapping[str, int], train: Split | None = None, *, epochs: int = 2,
                     lr: float = 1e-3, batch_size: int = 128, seed: int = 0,
                     loss: Loss = _cross_entropy) -> Quantised:
    """Prune, quantise, fine-tune the centroids (module docstring); a copy of ``net`` is returned.

    Args:
        net: the network (not changed).
        masks: keep-mask per weight to quantise (parameter name -> mask of its shape); the
            other parameters (biases, unmasked layers) are left at full precision.
        bits: index width per masked parameter (``2**bits`` centroids at most).
        train: the training split for the fine-tuning; ``None`` (or ``epochs=0``) keeps the
            k-means centroids.
        loss: batch-mean loss of the network's output and the labels (cross-entropy by default).
    """
    params = dict(net.named_parameters())
    unknown = sorted(set(masks) - set(params))
    if unknown:
        raise ValueError(f"masks name unknown parameters {unknown}")
    codebooks, indices = {}, {}
    for name, mask in masks.items():
        codebooks[name], indices[name] = kmeans_layer(params[name], mask, int(bits[name]))
    history: list[dict[str, float]] = []
    if train is not None and epochs > 0:
        codebooks, history = finetune_centroids(net, codebooks, indices, train, epochs=epochs,
                                                lr=lr, batch_size=batch_size, seed=seed,
                                                loss=loss)
    out = copy.deepcopy(net)
    out_params = dict(out.named_parameters())
    with torch.no_grad():
        for name in masks:
            out_params[name].copy_(shared_weight(codebooks[name], indices[name]))
    return Quantised(out.eval(), codebooks, indices, history)


def round_significand(w: torch.Tensor, t: int) -> torch.Tensor:
    """``w`` rounded to ``t`` significand bits after the leading one: ``w = m 2^e`` with
    ``1 <= |m| < 2`` becomes the nearest multiple of ``2^(e - t)`` (ties to even); zeros stay
    zero. Computed in float64, returned in ``w``'s dtype."""
    if t < 0:
        raise ValueError(f"need t >= 0 significand bits (got {t})")
    frac, exp = torch.frexp(w.double())  # w = frac 2^exp, 0.5 <= |frac| < 1
    scale = 2.0 ** (t + 1)
    return torch.ldexp(torch.round(frac * scale) / scale, exp).to(w.dtype)


def round_to_bits(net: nn.Module, masks: Mapping[str, np.ndarray | torch.Tensor],
                  bits: Mapping[str, int]) -> nn.Module:
    """A copy of ``net`` with each masked weight zeroed where pruned and its kept entries
    rounded to ``bits[name]`` significand bits (:func:`round_significand`; Louizos et al.
    2017's bit precision). Other parameters are left at full precision."""
    out = copy.deepcopy(net)
    params = dict(out.named_parameters())
    unknown = sorted(set(masks) - set(params))
    if unknown:
        raise ValueError(f"masks name unknown parameters {unknown}")
    with torch.no_grad():
        for name, mask in masks.items():
            p = params[name]
            keep = torch.as_tensor(np.asarray(mask.cpu() if torch.is_tensor(mask) else mask,
                                              dtype=bool), device=p.device)
            p.copy_(torch.where(keep, round_significand(p, int(bits[name])),
                                torch.zeros_like(p)))
    return out.eval()


@torch.no_grad()
def evaluate_plain(net: nn.Module, split: Split, likelihood=None,
                   batch_size: int = 4096) -> dict[str, float]:
    """NLL per example and accuracy of a plain network on ``split``, in evaluation mode.

    ``likelihood``: the model's (:mod:`bayesstruct.models.likelihoods`; its ``nll`` and, for
    classifiers, ``class_log_probs``); ``None`` reads the outputs as logits of a categorical.
    A likelihood without classes reports accuracy 0.
    """
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    nll, correct = 0.0, 0
    for i in range(0, len(split), batch_size):
        x = split.x[i: i + batch_size].to(device)
        y = split.y[i: i + batch_size].to(device)
        out = net(x)
        if likelihood is None:
            nll += float(F.cross_entropy(out, y, reduction="sum"))
            correct += int((out.argmax(-1) == y).sum())
        else:
            nll += float(likelihood.nll(out, y))
            if likelihood.classifier:
                correct += int((likelihood.class_log_probs(out).argmax(-1) == y).sum())
    net.train(was_training)
    n = max(len(split), 1)
    return {"nll": nll / n, "acc": correct / n}
