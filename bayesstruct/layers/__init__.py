"""Layer families: one module per kind of layer, each registered with the ``torch.nn`` types
it covers (:mod:`~bayesstruct.layers.base` states the contract; :func:`supported_layers` lists
them as the README's table).

Parameters of a module no family covers follow :func:`default_role`: ``bias*`` is a bias,
1-D and scalar tensors are point estimates, anything else is a weight with the prior but no
unit groups (per-weight priors work; unit-level priors refuse it before training).
"""

from __future__ import annotations

# the import order is the registration order
# isort: off
from .base import (FAMILIES, ROLES, LayerFamily, default_role, family_of, markdown_table,
                   supported_layers, type_name)
from .linear import Linear
from .conv import Conv, ConvTranspose
from .embedding import Embedding
from .recurrent import Recurrent, TorchRecurrent
from .attention import Attention
from .norm import Norm
from .stateless import POOLS, STATELESS
# isort: on

__all__ = ["FAMILIES", "POOLS", "ROLES", "STATELESS", "Attention", "Conv", "ConvTranspose",
           "Embedding", "LayerFamily", "Linear", "Norm", "Recurrent", "TorchRecurrent",
           "default_role", "family_of", "markdown_table", "supported_layers", "type_name"]
