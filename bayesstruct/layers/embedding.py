"""``nn.Embedding``: a lookup table ``W[token]``; units are the embedding dimensions."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .base import LayerFamily

__all__ = ["Embedding"]


class Embedding(LayerFamily, types=(nn.Embedding,)):
    """``out[b, t] = W[x[b, t]]``. The local reparameterisation is exact and trivial: the
    output *is* one row of independent Gaussians, ``N(m[x], s^2[x])``, drawn per example.
    A unit group is an embedding dimension, a column ``W[:, d]``: its scale multiplies the
    layer's *output* ``d`` (there is no input feature to scale). ``max_norm`` rescales rows of
    the table in place on lookup, which a sampled table cannot follow: refused (excluded from
    the prior, the layer is a point estimate and works)."""

    fast_path = "local reparameterisation"
    unit_groups = "embedding dimensions (columns)"
    scales_output = True

    @staticmethod
    def forward(layer: nn.Module, weight: Tensor, bias: Tensor | None, x: Tensor) -> Tensor:
        return F.embedding(x, weight, layer.padding_idx, None, layer.norm_type,
                           layer.scale_grad_by_freq, layer.sparse)

    @classmethod
    def variance(cls, layer: nn.Module, weight_var: Tensor, bias_var: Tensor | None,
                 x: Tensor) -> Tensor:
        return F.embedding(x, weight_var, layer.padding_idx)

    @staticmethod
    def group_dim(layer: nn.Module, name: str) -> int | None:
        return 1

    @staticmethod
    def refusal(layer: nn.Module) -> str | None:
        if layer.max_norm is not None:
            return ("nn.Embedding(max_norm=...) renormalises rows of its table in place on "
                    "lookup, which a sampled table cannot follow (drop max_norm, or exclude "
                    "the layer from the prior)")
        return None

    @staticmethod
    def local_reparam_obstacle(layer: nn.Module) -> str | None:
        return None

    @staticmethod
    def units(layer: nn.Module) -> tuple[int, int]:
        return layer.num_embeddings, layer.embedding_dim
