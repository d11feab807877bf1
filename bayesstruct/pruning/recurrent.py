"""Removing hidden units of the zoo's recurrent nets (a pruned net is genuinely smaller).

In :class:`~bayesstruct.nets.SequenceClassifier` and :class:`~bayesstruct.nets.PairClassifier`
hidden unit ``j`` of the recurrent layer is read only by column ``j`` of ``U`` (``rnn.hh``, every
gate for a GRU) and by the read-out ``fc`` (columns ``j`` and, for the pair head
``[h_a * h_b, |h_a - h_b|]``, ``H + j``). When all of those are zero nothing depends on the
unit, so it is deleted with its rows of ``W``, ``b`` and ``U`` (one per gate) and its columns:
the smaller net computes exactly what the masked one computes (tested). Deleting a unit removes
a row of ``U``, which may leave another unit unread, so this repeats until nothing changes.

A unit with no input (its rows of ``W`` and ``U`` zero) is *not* folded away as in
:mod:`~bayesstruct.pruning.compression`: ``h_0 = 0`` makes its output ``0`` at the first step
and ``tanh(b_j)`` after, which no bias can represent.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["shrink_recurrent"]


def _linear(weight: Tensor, bias: Tensor | None) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None,
                      device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


@torch.no_grad()
def shrink_recurrent(net: nn.Module) -> nn.Module:
    """Delete the unread hidden units of a (masked) recurrent classifier, in place."""
    from ..nets import PairClassifier

    rnn, fc = net.rnn, net.fc
    pair = isinstance(net, PairClassifier)
    while True:
        h = rnn.hidden_size
        gates = rnn.ih.out_features // h
        read = (rnn.hh.weight != 0).any(0) | (fc.weight[:, :h] != 0).any(0)
        if pair:
            read |= (fc.weight[:, h:] != 0).any(0)
        if bool(read.all()):
            return net
        keep = read.nonzero().flatten()
        rows = torch.cat([keep + g * h for g in range(gates)])
        rnn.ih = _linear(rnn.ih.weight[rows], rnn.ih.bias[rows])
        rnn.hh = _linear(rnn.hh.weight[rows][:, keep],
                         rnn.hh.bias[rows] if rnn.hh.bias is not None else None)
        cols = torch.cat([keep, keep + h]) if pair else keep
        net.fc = fc = _linear(fc.weight[:, cols], fc.bias)
        rnn.hidden_size = len(keep)
