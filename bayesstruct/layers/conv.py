"""``nn.Conv1d`` / ``Conv2d`` / ``Conv3d``: units are the input and output channels."""

from __future__ import annotations

import math

from torch import Tensor, nn

from .base import LayerFamily, keep_rows, set_param

__all__ = ["Conv"]


class Conv(LayerFamily, types=(nn.Conv1d, nn.Conv2d, nn.Conv3d)):
    """The layer's own convolution (stride, padding and its mode, dilation, groups) with the
    given weight and bias. The local reparameterisation,

        a ~ N(conv(x, m) + m_b, conv(x^2, s^2) + s_b^2),

    gives every output the exact marginal (each is a sum of independent Gaussian terms, one
    per weight in its receptive field; Molchanov, Ashukha & Vetrov 2017 use it for
    convolutions) for zero padding; other padding modes repeat border inputs, so one weight
    meets the same input twice in an output and the terms are no longer independent: those
    layers draw whole weight tensors. A unit group is an input channel, ``W[:, c]``; a
    grouped convolution (``groups > 1``) has no per-input-channel slice of ``W`` and so no
    unit groups (per-weight priors work)."""

    output_dim = 0
    fast_path = "local reparameterisation (zero padding; other padding modes: weight draws)"
    unit_groups = "input channels (``groups=1``)"
    shrink = "channels removed (``groups=1``, any ``torch.fx``-traceable net)"

    @staticmethod
    def forward(layer: nn.Module, weight: Tensor, bias: Tensor | None, x: Tensor) -> Tensor:
        return layer._conv_forward(x, weight, bias)

    @staticmethod
    def group_dim(layer: nn.Module, name: str) -> int | None:
        return 1 if layer.groups == 1 else None

    @staticmethod
    def no_groups(layer: nn.Module) -> str:
        return (f"{type(layer).__name__}(groups={layer.groups}) has no per-input-channel "
                "weight slice (use a per-weight prior, or groups=1)")

    @staticmethod
    def local_reparam_obstacle(layer: nn.Module) -> str | None:
        if layer.padding_mode != "zeros":
            return (f"{type(layer).__name__}(padding_mode={layer.padding_mode!r}): the local "
                    "reparameterisation needs padding_mode='zeros'")
        return None

    @staticmethod
    def units(layer: nn.Module) -> tuple[int, int]:
        return layer.in_channels, layer.out_channels

    input_layout = output_layout = "conv"

    @staticmethod
    def macs(layer: nn.Module, x: Tensor, out: Tensor) -> int:
        return out.numel() * (layer.in_channels // layer.groups) * math.prod(layer.kernel_size)

    @staticmethod
    def reads_units(layer: nn.Module) -> bool:
        return layer.groups == 1

    @staticmethod
    def output_units(layer: nn.Module) -> int | None:
        return layer.out_channels if layer.groups == 1 else None

    @staticmethod
    def input_blocks(layer: nn.Module, n: int) -> Tensor:
        return layer.weight.reshape(layer.out_channels, n, -1)

    @staticmethod
    def keep_inputs(layer: nn.Module, keep: Tensor) -> None:
        set_param(layer, "weight", layer.weight[:, keep])
        layer.in_channels = int(keep.sum())

    @staticmethod
    def keep_outputs(layer: nn.Module, keep: Tensor) -> None:
        keep_rows(layer, keep, "out_channels")


class ConvTranspose(LayerFamily, types=(nn.ConvTranspose1d, nn.ConvTranspose2d,
                                        nn.ConvTranspose3d)):
    """A transposed convolution's weight is ``(in, out / groups, *kernel)``: a unit group
    (one input channel) is ``W[c]``, dimension 0. Each output is a sum of independent terms
    ``x[c, p] W[c, o, k]``, one per (input channel, kernel offset) that reaches it, so the
    local reparameterisation gives its exact marginal, as for a convolution."""

    fast_path = "local reparameterisation"
    unit_groups = "input channels (``groups=1``)"

    @staticmethod
    def group_dim(layer: nn.Module, name: str) -> int | None:
        return 0 if layer.groups == 1 else None

    no_groups = Conv.no_groups

    @staticmethod
    def macs(layer: nn.Module, x: Tensor, out: Tensor) -> int:
        return x.numel() * (layer.out_channels // layer.groups) * math.prod(layer.kernel_size)

    @staticmethod
    def local_reparam_obstacle(layer: nn.Module) -> str | None:
        return None

    @staticmethod
    def units(layer: nn.Module) -> tuple[int, int]:
        return layer.in_channels, layer.out_channels
