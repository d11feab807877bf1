"""Normalisation layers: their affine parameters are point estimates by default."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import LayerFamily, set_param

#: normalisation layers whose statistics and affine parameters are one per channel
PER_CHANNEL = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
               nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)

__all__ = ["PER_CHANNEL", "Norm"]


class Norm(LayerFamily, types=(nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
                               nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
                               nn.LayerNorm, nn.GroupNorm, nn.RMSNorm)):
    """BatchNorm, InstanceNorm, LayerNorm, GroupNorm, RMSNorm. The gain and shift rescale a
    normalised unit; a prior that shrinks the gain towards zero would prune the unit through
    the back door, so both are point estimates (``role = "point"``) unless a user includes them
    in the prior. Running statistics are buffers: they update in training mode only (every
    evaluation runs in eval mode). With only point parameters the layer runs unchanged inside
    the local reparameterisation (on the batch's noisy activations, as Molchanov et al. 2017
    do in their VGG-like nets)."""

    fast_path = "point estimates (runs inside the local reparameterisation)"
    shrink = "BatchNorm folded into the layer before it, or sliced with its channels"

    @staticmethod
    def role(layer: nn.Module, name: str, param: Tensor) -> str:
        return "point"

    @staticmethod
    def passes_units(layer: nn.Module) -> bool:
        return isinstance(layer, PER_CHANNEL)

    @staticmethod
    @torch.no_grad()
    def fold_into(layer: nn.Module, previous: nn.Module) -> bool:
        """``W' = W gamma / sqrt(var + eps)``, ``b' = (b - mean) gamma / sqrt(var + eps) +
        beta`` (eval mode: the running statistics), in float64."""
        if not isinstance(layer, PER_CHANNEL[:4]) or layer.running_mean is None:
            return False
        scale = layer.running_var.double().add(layer.eps).rsqrt()
        if layer.weight is not None:
            scale = scale * layer.weight.double()
        shift = -layer.running_mean.double() * scale
        if layer.bias is not None:
            shift = shift + layer.bias.double()
        w = previous.weight
        previous.weight = nn.Parameter(
            (w.double() * scale.reshape(-1, *([1] * (w.dim() - 1)))).to(w.dtype))
        b = shift if previous.bias is None else previous.bias.double() * scale + shift
        previous.bias = nn.Parameter(b.to(w.dtype))
        return True

    @staticmethod
    def keep_outputs(layer: nn.Module, keep: Tensor) -> None:
        for name in ("weight", "bias"):
            if getattr(layer, name, None) is not None:
                set_param(layer, name, getattr(layer, name)[keep])
        for name in ("running_mean", "running_var"):
            if getattr(layer, name, None) is not None:
                setattr(layer, name, getattr(layer, name)[keep].clone())
        layer.num_features = int(keep.sum())

    @staticmethod
    def local_reparam_obstacle(layer: nn.Module) -> str | None:
        if not any(p is not None for p in layer._parameters.values()):
            return None  # affine=False: nothing to sample
        return ("has a Bayesian gain or shift (only point estimates run inside the local "
                "reparameterisation)")
