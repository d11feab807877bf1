"""``nn.Conv1d`` / ``Conv2d`` / ``Conv3d``: units are the input and output channels."""

from __future__ import annotations

from torch import Tensor, nn

from .base import LayerFamily

__all__ = ["Conv"]


class Conv(LayerFamily, types=(nn.Conv1d, nn.Conv2d, nn.Conv3d)):
    """The layer's own convolution (stride, padding and its mode, dilation, groups) with the
    given weight and bias. The local reparameterisation, ``a ~ N(conv(x, m) + m_b,
    conv(x^2, s^2) + s_b^2)``, is used for ``Conv2d`` with zero padding (other padding modes
    repeat border inputs, whose noise is then no longer independent across positions);
    ``Conv1d`` and ``Conv3d`` draw whole weight tensors until their fast forward has its own
    test."""

    @staticmethod
    def forward(layer: nn.Module, weight: Tensor, bias: Tensor | None, x: Tensor) -> Tensor:
        return layer._conv_forward(x, weight, bias)

    @staticmethod
    def local_reparam_obstacle(layer: nn.Module) -> str | None:
        if not isinstance(layer, nn.Conv2d):
            return (f"MeanField's local reparameterisation supports Linear and Conv2d layers; "
                    f"{type(layer).__name__} is drawn as whole weight tensors")
        if layer.padding_mode != "zeros":
            return "LRT Conv2d supports padding_mode='zeros' only"
        return None

    @staticmethod
    def units(layer: nn.Module) -> tuple[int, int]:
        return layer.in_channels, layer.out_channels
