"""Layer families: one module per kind of layer, each registered with the ``torch.nn`` types
it covers (:mod:`~bayesstruct.layers.base` states the contract).

==============  ==========================  ============================  ===================
family          types                       fast forward in SVI           units
==============  ==========================  ============================  ===================
``Linear``      ``nn.Linear``               local reparameterisation      features
``Conv``        ``nn.Conv1d/2d/3d``         local reparam. (Conv2d, zero  channels
                                            padding), else weight draws
``Recurrent``   the zoo's Elman RNN / GRU   one weight draw per batch     hidden units
==============  ==========================  ============================  ===================
"""

from __future__ import annotations

# the import order is the registration order
# isort: off
from .base import FAMILIES, LayerFamily, family_of
from .linear import Linear
from .conv import Conv
from .recurrent import Recurrent
# isort: on

__all__ = ["FAMILIES", "Conv", "LayerFamily", "Linear", "Recurrent", "family_of"]
