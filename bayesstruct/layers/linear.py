"""``nn.Linear``: ``a = x W^T + b``; units are the input and output features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import LayerFamily

__all__ = ["Linear"]


class Linear(LayerFamily, types=(nn.Linear,)):
    """A weight with batch dimensions, ``(..., out, in)``, broadcasts against the input's
    batch dimensions (``x[..., in]``): that is how Pyro's enumerated IBP unit masks reach the
    network. The local reparameterisation is exact: each pre-activation is a sum of
    independent Gaussian terms, ``a_j ~ N(x m_j + m_b, x^2 s_j^2 + s_b^2)``."""

    @staticmethod
    def forward(layer: nn.Module, weight: Tensor, bias: Tensor | None, x: Tensor) -> Tensor:
        if weight.dim() == 2:
            return F.linear(x, weight, bias)
        out = torch.einsum("...oi,...i->...o", weight, x)
        return out if bias is None else out + bias

    @staticmethod
    def local_reparam_obstacle(layer: nn.Module) -> str | None:
        return None

    @staticmethod
    def units(layer: nn.Module) -> tuple[int, int]:
        return layer.in_features, layer.out_features
