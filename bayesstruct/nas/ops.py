"""Candidate operations of a DARTS edge and the mixed operation (Liu, Simonyan &
Yang 2019, "DARTS").

Every operation maps ``(B, C, H, W) -> (B, C, H, W)`` (stride 1: the search space of this
package has normal cells only). Convolutions are ReLU -> Conv -> BatchNorm as in DARTS; in the
search network the BatchNorms are ``affine=False`` (DARTS' choice: the structure weights
gamma then scale the op's output alone) and the pools get one too, so every op's output has the
same scale before it is weighted. The derived (retrained) network uses ``affine=True``.

=================  ==================================================================
``conv_3x3``       ReLU, Conv 3x3, BN
``sep_conv_3x3``   ReLU, depthwise Conv 3x3, pointwise Conv 1x1, BN (separable)
``conv_5x5``       ReLU, Conv 5x5, BN
``dil_conv_3x3``   ReLU, Conv 3x3 with dilation 2 (5x5 receptive field), BN
``max_pool_3x3``   MaxPool 3x3 (+ BN in search)
``avg_pool_3x3``   AvgPool 3x3, padding excluded from the mean (+ BN in search)
``skip_connect``   identity
``none``           zero (the "no edge" op; never chosen by the derivation)
=================  ==================================================================

The mixed operation of an edge is ``o_bar(x) = sum_o gamma_o * o(x)`` with ``gamma`` on the
simplex (softmax of the logits for DARTS, a Gumbel-softmax draw for variational DARTS; Jang,
Gu & Poole 2017; Maddison, Mnih & Teh 2017).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

__all__ = ["DEFAULT_OPS", "OPS", "MixedOp", "make_op"]


class Zero(nn.Module):
    """``x -> 0`` (the ``none`` op)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mul(0.0)


def _conv(c: int, k: int, dilation: int, affine: bool) -> nn.Module:
    pad = dilation * (k - 1) // 2
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, k, padding=pad, dilation=dilation,
                                              bias=False), nn.BatchNorm2d(c, affine=affine))


def _sep_conv(c: int, affine: bool) -> nn.Module:
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False),
                         nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c, affine=affine))


def _pool(kind: str, c: int, affine: bool, search: bool) -> nn.Module:
    pool = (nn.MaxPool2d(3, 1, 1) if kind == "max" else
            nn.AvgPool2d(3, 1, 1, count_include_pad=False))
    return nn.Sequential(pool, nn.BatchNorm2d(c, affine=False)) if search else pool


#: name -> ``(channels, affine, search) -> module``
OPS: dict[str, Callable[[int, bool, bool], nn.Module]] = {
    "conv_3x3": lambda c, affine, search: _conv(c, 3, 1, affine),
    "sep_conv_3x3": lambda c, affine, search: _sep_conv(c, affine),
    "conv_5x5": lambda c, affine, search: _conv(c, 5, 1, affine),
    "dil_conv_3x3": lambda c, affine, search: _conv(c, 3, 2, affine),
    "max_pool_3x3": lambda c, affine, search: _pool("max", c, affine, search),
    "avg_pool_3x3": lambda c, affine, search: _pool("avg", c, affine, search),
    "skip_connect": lambda c, affine, search: nn.Identity(),
    "none": lambda c, affine, search: Zero(),
}

#: the issue's candidate set: a 3x3 conv (plain; ``sep_conv_3x3`` is the separable choice),
#: conv 5x5, dilated conv 3x3, max pool, avg pool, skip, zero
DEFAULT_OPS: tuple[str, ...] = ("conv_3x3", "conv_5x5", "dil_conv_3x3", "max_pool_3x3",
                                "avg_pool_3x3", "skip_connect", "none")


def make_op(name: str, channels: int, affine: bool = True, search: bool = False) -> nn.Module:
    """One candidate operation by name (:data:`OPS`)."""
    if name not in OPS:
        raise ValueError(f"unknown operation {name!r}; allowed: {', '.join(OPS)}")
    return OPS[name](channels, affine, search)


class MixedOp(nn.Module):
    """``o_bar(x) = sum_o gamma_o o(x)`` over the candidate operations of one edge.

    ``forward(x, gamma)`` with ``gamma`` a ``(n_ops,)`` tensor on the simplex (the ``none``
    op contributes ``gamma_none * 0`` and is not evaluated), or with an ``int``: the single
    path through that operation (SPOS, and the derived architecture inside the supernet).
    """

    def __init__(self, channels: int, ops: Sequence[str], affine: bool = False) -> None:
        super().__init__()
        self.names = tuple(ops)
        self.ops = nn.ModuleList(make_op(o, channels, affine, search=True) for o in ops)
        self._live = [i for i, o in enumerate(self.names) if o != "none"]

    def forward(self, x: Tensor, gamma: Tensor | int) -> Tensor:
        if isinstance(gamma, int):
            return self.ops[gamma](x)
        if gamma.shape != (len(self.names),):
            raise ValueError(f"gamma has shape {tuple(gamma.shape)}; this edge has "
                             f"{len(self.names)} operations")
        out = None
        for i in self._live:
            y = gamma[i] * self.ops[i](x)
            out = y if out is None else out + y
        return out if out is not None else torch.zeros_like(x)
