"""``nn.MultiheadAttention``: the query/key/value projections carry the prior."""

from __future__ import annotations

from torch import nn

from .base import LayerFamily

__all__ = ["Attention"]


class Attention(LayerFamily, types=(nn.MultiheadAttention,)):
    """``in_proj_weight`` ``(3 E, E)`` (or ``q_proj_weight`` / ``k_proj_weight`` /
    ``v_proj_weight`` when key and value sizes differ) holds the projections; ``out_proj`` is a
    Linear child (the Linear family). ``in_proj_bias``, ``bias_k`` and ``bias_v`` are biases.
    A unit group is a column of a projection: one input feature of the query, key or value.
    Attention multiplies two noisy projections (the scores ``q k^T``), which is not Gaussian
    in the weights: no local reparameterisation; one weight draw per minibatch."""

    unit_groups = "input features of the projections (columns)"

    @staticmethod
    def role(layer: nn.Module, name: str, param) -> str:
        return "bias" if name.startswith("bias") or name.endswith("_bias") else "weight"

    @staticmethod
    def group_dim(layer: nn.Module, name: str) -> int | None:
        return 1

    @staticmethod
    def local_reparam_obstacle(layer: nn.Module) -> str | None:
        return "multiplies two noisy projections (attention scores are not Gaussian)"

    @staticmethod
    def units(layer: nn.Module) -> tuple[int, int]:
        return layer.embed_dim, layer.embed_dim
