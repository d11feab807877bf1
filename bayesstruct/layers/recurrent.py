"""The zoo's recurrent layers (:class:`~bayesstruct.nets.ElmanRNN` and its :class:`GRU`):
their ``ih`` / ``hh`` Linear children hold the weights; the layer reuses them at every step."""

from __future__ import annotations

from torch import nn

from ..nets import ElmanRNN
from .base import LayerFamily

__all__ = ["Recurrent"]


class Recurrent(LayerFamily, types=(ElmanRNN,)):
    """Each weight matrix acts at every time step, so a pre-activation's noise is not
    independent across steps: no local reparameterisation; the guide draws one weight tensor
    per minibatch, shared by every step (Fortunato, Blundell & Vinyals 2017). Their units are
    pruned through the ``ih`` / ``hh`` children (:mod:`bayesstruct.pruning.recurrent`)."""

    @staticmethod
    def local_reparam_obstacle(layer: nn.Module) -> str | None:
        return "is recurrent: it reuses its weights at every time step"
