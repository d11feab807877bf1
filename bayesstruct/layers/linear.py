"""``nn.Linear``: ``a = x W^T + b``; units are the input and output features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import LayerFamily, keep_rows, set_param

__all__ = ["Linear"]


class Linear(LayerFamily, types=(nn.Linear,)):
    """A weight with batch dimensions, ``(..., out, in)``, broadcasts against the input's
    batch dimensions (``x[..., in]``): that is how Pyro's enumerated IBP unit masks reach the
    network. The local reparameterisation is exact: each pre-activation is a sum of
    independent Gaussian terms, ``a_j ~ N(x m_j + m_b, x^2 s_j^2 + s_b^2)``. A unit group is
    a column of ``W`` (every weight leaving one input feature)."""

    output_dim = 0
    fused_lrt = True
    fast_path = "local reparameterisation"
    unit_groups = "input features (columns)"
    shrink = "features removed (any ``torch.fx``-traceable net)"

    @staticmethod
    def forward(layer: nn.Module, weight: Tensor, bias: Tensor | None, x: Tensor) -> Tensor:
        if weight.dim() == 2:
            return F.linear(x, weight, bias)
        out = torch.einsum("...oi,...i->...o", weight, x)
        return out if bias is None else out + bias

    @staticmethod
    def group_dim(layer: nn.Module, name: str) -> int | None:
        return 1

    @staticmethod
    def local_reparam_obstacle(layer: nn.Module) -> str | None:
        return None

    @staticmethod
    def units(layer: nn.Module) -> tuple[int, int]:
        return layer.in_features, layer.out_features

    @staticmethod
    def macs(layer: nn.Module, x: Tensor, out: Tensor) -> int:
        return out.numel() * layer.in_features

    @staticmethod
    def reads_units(layer: nn.Module) -> bool:
        return True

    @staticmethod
    def output_units(layer: nn.Module) -> int:
        return layer.out_features

    @staticmethod
    def input_blocks(layer: nn.Module, n: int) -> Tensor:
        return layer.weight.reshape(layer.out_features, n, -1)

    @staticmethod
    def keep_inputs(layer: nn.Module, keep: Tensor) -> None:
        w = layer.weight.reshape(layer.out_features, keep.numel(), -1)[:, keep]
        set_param(layer, "weight", w.reshape(layer.out_features, -1))
        layer.in_features = layer.weight.shape[1]

    @staticmethod
    def keep_outputs(layer: nn.Module, keep: Tensor) -> None:
        keep_rows(layer, keep, "out_features")
