"""Recurrent layers: ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` and the zoo's Elman RNN and GRU.

Each weight matrix acts at every time step, so a pre-activation's noise is not independent
across steps: no local reparameterisation; the guide draws one weight tensor per minibatch,
shared by every step (Fortunato, Blundell & Vinyals 2017)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..nets import ElmanRNN
from .base import LayerFamily, set_param

__all__ = ["Recurrent", "TorchRecurrent"]

_REUSES = "is recurrent: it reuses its weights at every time step"


class Recurrent(LayerFamily, types=(ElmanRNN,)):
    """The zoo's cells hold their weights in ``ih`` / ``hh`` Linear children (so a unit group
    is a column of those: an input feature or a hidden unit); their hidden units are pruned
    through them (:mod:`bayesstruct.pruning.recurrent`)."""

    unit_groups = "hidden units (via its ``ih`` / ``hh`` Linear children)"
    shrink = "hidden units removed"

    @staticmethod
    def local_reparam_obstacle(layer: nn.Module) -> str | None:
        return _REUSES


class TorchRecurrent(LayerFamily, types=(nn.RNN, nn.LSTM, nn.GRU)):
    """``weight_ih_l{k}`` is ``(G H, in_k)`` and ``weight_hh_l{k}`` is ``(G H, H)``, the ``G``
    gates stacked along the rows (``G`` = 1, 4, 3 for RNN, LSTM, GRU; ``_reverse`` copies for
    the backward direction, ``weight_hr`` for an LSTM projection). A unit group is a column:
    one input feature of layer 0, or one hidden unit feeding the recurrence and the next
    layer, with every gate's weights from it tied under one scale. ``bias_ih`` / ``bias_hh``
    are biases. Multi-layer, bidirectional and ``batch_first`` layers work (the module's own
    forward runs on the sampled weights)."""

    unit_groups = "input features and hidden units (columns, gates tied)"

    @staticmethod
    def group_dim(layer: nn.Module, name: str) -> int | None:
        return 1

    @staticmethod
    def local_reparam_obstacle(layer: nn.Module) -> str | None:
        return _REUSES

    @staticmethod
    def units(layer: nn.Module) -> tuple[int, int]:
        return layer.input_size, layer.hidden_size

    # shrinking: hidden unit j is row j of every gate (j, H + j, ...) of weight_ih / weight_hh
    # and the biases of every layer, column j of weight_hh and of the next layer's weight_ih
    output_layout = "tuple"

    @staticmethod
    def macs(layer: nn.Module, x: Tensor, out: object) -> int:
        """Every step multiplies the input and the state by every gate's rows."""
        steps = x.shape[1 if layer.batch_first else 0] if x.dim() == 3 else x.shape[0]
        total = 0
        for k in range(layer.num_layers):
            for name in _names(layer, f"weight_ih_l{k}") + _names(layer, f"weight_hh_l{k}"):
                total += getattr(layer, name).numel()
        return steps * total

    @staticmethod
    def reads_units(layer: nn.Module) -> bool:
        return layer.proj_size == 0

    @staticmethod
    def output_units(layer: nn.Module) -> int | None:
        return layer.hidden_size if not layer.bidirectional and layer.proj_size == 0 else None

    @staticmethod
    def input_blocks(layer: nn.Module, n: int) -> Tensor:
        return torch.cat([w.reshape(w.shape[0], n, 1) for w in _first_ih(layer)])

    @staticmethod
    def keep_inputs(layer: nn.Module, keep: Tensor) -> None:
        for name in _names(layer, "weight_ih_l0"):
            set_param(layer, name, getattr(layer, name)[:, keep])
        layer.input_size = int(keep.sum())
        layer._init_flat_weights()

    @staticmethod
    def self_blocks(layer: nn.Module) -> Tensor:
        """Every recurrence ``weight_hh_l{k}`` and every deeper ``weight_ih_l{k}``, by column:
        one ``hidden_size`` serves all layers, so unit ``j`` goes from all of them at once."""
        ws = []
        for k in range(layer.num_layers):
            ws.append(getattr(layer, f"weight_hh_l{k}"))
            if k:
                ws.append(getattr(layer, f"weight_ih_l{k}"))
        h = layer.hidden_size
        return torch.cat([w.reshape(w.shape[0], h, 1) for w in ws])

    @staticmethod
    def keep_outputs(layer: nn.Module, keep: Tensor) -> None:
        h = layer.hidden_size
        gates = layer.weight_hh_l0.shape[0] // h
        rows = keep.repeat(gates)
        for k in range(layer.num_layers):
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                name = f"{kind}_l{k}"
                if getattr(layer, name, None) is None:
                    continue
                value = getattr(layer, name)[rows]
                if kind == "weight_hh" or (kind == "weight_ih" and k > 0):
                    value = value[:, keep]
                set_param(layer, name, value)
        layer.hidden_size = int(keep.sum())
        layer._init_flat_weights()


def _names(layer: nn.Module, name: str) -> list[str]:
    return [name] + ([f"{name}_reverse"] if layer.bidirectional else [])


def _first_ih(layer: nn.Module) -> list[Tensor]:
    return [getattr(layer, n) for n in _names(layer, "weight_ih_l0")]
