"""What a network costs to run: multiply-accumulates per example and wall time.

:func:`count_macs` adds up each layer family's :meth:`~bayesstruct.layers.LayerFamily.macs`
over one forward pass of one example (Linear, convolutions, transposed convolutions,
recurrent layers; normalisation, pooling and activations are not counted, and attention's
score products neither), so a pruned network's figure is the dense one's minus what its
removed units cost. FLOPs are twice the MACs."""

from __future__ import annotations

import torch
from torch import nn

from ..layers import family_of
from ..models.bayesnet import eval_mode

__all__ = ["count_macs", "hidden_units"]


@torch.no_grad()
def count_macs(net: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of ``net`` on one example (``x[:1]``), in eval mode."""
    total = 0

    def hook(module: nn.Module, args: tuple, out: object) -> None:
        nonlocal total
        total += family_of(module).macs(module, args[0], out)

    handles = [m.register_forward_hook(hook) for m in net.modules() if family_of(m) is not None]
    try:
        with eval_mode(net):
            net(x[:1])
    finally:
        for h in handles:
            h.remove()
    return int(total)


def hidden_units(dense: nn.Module, pruned: nn.Module) -> dict[str, float]:
    """Output units (features, channels, hidden units) of every layer with units but the
    last (the network's outputs), before and after pruning, and the fraction removed; layers
    are matched by name (``unit_counts``)."""
    from .compression import unit_counts

    before, after = unit_counts(dense), unit_counts(pruned)
    names = list(before)[:-1]
    n_before = sum(before[k][1] for k in names)
    n_after = sum(after.get(k, before[k])[1] for k in names)
    return {"dense": n_before, "pruned": n_after,
            "fraction_removed": 1.0 - n_after / n_before if n_before else 0.0}
