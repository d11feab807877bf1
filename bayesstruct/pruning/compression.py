"""Applying decisions: a plain network that is actually smaller (M5).

:func:`prune` zeroes the removed weights and then deletes hidden units that no longer matter:
in a chain ``Linear A -> elementwise activation -> Linear B`` (an ``nn.Sequential``), unit ``j``
of ``A`` is removed when

* column ``j`` of ``B`` is all zero (nothing reads it), or
* row ``j`` of ``A`` is all zero: the unit outputs the constant ``act(b_A[j])``, which is folded
  into ``B``'s bias (``b_B += B[:, j] act(b_A[j])``) before the column is dropped.

The result computes exactly what the masked network computes (tested), with fewer rows and
columns.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

__all__ = ["apply_masks", "count_parameters", "prune"]

_ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.ELU, nn.Sigmoid, nn.LeakyReLU, nn.GELU, nn.Identity,
                nn.Dropout)


def apply_masks(net: nn.Module, masks: Mapping[str, np.ndarray | torch.Tensor]) -> nn.Module:
    """A copy of ``net`` with ``param *= mask`` for every masked parameter."""
    net = copy.deepcopy(net)
    params = dict(net.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            p = params[name]
            p.mul_(torch.as_tensor(np.asarray(mask), dtype=p.dtype, device=p.device))
    return net


def count_parameters(net: nn.Module, nonzero: bool = False, weights_only: bool = False) -> int:
    """Number of (non-zero) parameters; ``weights_only`` skips biases."""
    total = 0
    for name, p in net.named_parameters():
        if weights_only and name.endswith("bias"):
            continue
        total += int((p != 0).sum()) if nonzero else p.numel()
    return total


def prune(net: nn.Module, masks: Mapping[str, np.ndarray | torch.Tensor]) -> nn.Module:
    """Masked copy of ``net`` with dead hidden units of Linear chains removed (see module doc)."""
    net = apply_masks(net, masks)
    if not isinstance(net, nn.Sequential):
        return net
    names = list(net._modules)
    i = 0
    while i < len(names):
        a = net._modules[names[i]]
        if not isinstance(a, nn.Linear):
            i += 1
            continue
        j = i + 1
        while j < len(names) and isinstance(net._modules[names[j]], _ELEMENTWISE):
            j += 1
        if j < len(names) and isinstance(net._modules[names[j]], nn.Linear):
            acts = [net._modules[n] for n in names[i + 1: j]]
            _shrink_pair(net, names[i], names[j], acts)
        i = j
    return net


@torch.no_grad()
def _shrink_pair(net: nn.Sequential, name_a: str, name_b: str, acts: list[nn.Module]) -> None:
    a, b = net._modules[name_a], net._modules[name_b]
    dead_in = (a.weight == 0).all(dim=1)
    unread = (b.weight == 0).all(dim=0)
    b_bias = b.bias.detach().clone() if b.bias is not None else None
    if dead_in.any() and b_bias is not None:
        const = a.bias[dead_in] if a.bias is not None else torch.zeros(int(dead_in.sum()))
        for act in acts:
            act_eval = act.training
            act.eval()
            const = act(const)
            act.train(act_eval)
        b_bias += b.weight[:, dead_in] @ const
    elif dead_in.any():
        dead_in = dead_in & (a.bias == 0 if a.bias is not None else dead_in)
    keep = ~(dead_in | unread)
    if bool(keep.all()):
        return
    new_a = nn.Linear(a.in_features, int(keep.sum()), bias=a.bias is not None,
                      device=a.weight.device, dtype=a.weight.dtype)
    new_a.weight.copy_(a.weight[keep])
    if a.bias is not None:
        new_a.bias.copy_(a.bias[keep])
    new_b = nn.Linear(int(keep.sum()), b.out_features, bias=b.bias is not None,
                      device=b.weight.device, dtype=b.weight.dtype)
    new_b.weight.copy_(b.weight[:, keep])
    if b_bias is not None:
        new_b.bias.copy_(b_bias)
    net._modules[name_a], net._modules[name_b] = new_a, new_b
