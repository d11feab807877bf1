"""The layer-family contract: what bayesstruct needs to know about one kind of layer.

A family is one class in one module (``layers/linear.py``, ``layers/conv.py``, ...) that
subclasses :class:`LayerFamily`, names the ``torch.nn`` types it covers and fills the hooks;
``class Linear(LayerFamily, types=(nn.Linear,))`` registers it. Guides, ``BayesianNet`` and the
pruning report ask :func:`family_of` instead of testing layer types themselves:

* :meth:`LayerFamily.forward` -- the layer's output for given weight and bias tensors (the
  sampled or mean values), by plain functional calls: the fast path of ``nn.Sequential`` nets
  (traceable by the PyTorch JIT) and the two products of the local reparameterisation;
* :meth:`LayerFamily.local_reparam_obstacle` -- why the local reparameterisation trick (sample
  pre-activations instead of weights; Kingma, Salimans & Welling 2015) is not exact for a
  layer, or ``None`` when it is: the guide then draws whole weight tensors instead;
* :meth:`LayerFamily.units` -- ``(inputs, outputs)`` in the units that unit-level pruning
  removes (features, channels, hidden units).

Shrinking a pruned ``nn.Sequential`` (:func:`bayesstruct.pruning.prune`) still matches
consecutive Linear and Conv2d layers itself; it is the one place that does.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

__all__ = ["FAMILIES", "LayerFamily", "family_of"]

#: the registered families, in registration order
FAMILIES: list[type[LayerFamily]] = []


class LayerFamily:
    """One kind of layer (see the module docstring). Subclasses set :attr:`types` through
    ``class X(LayerFamily, types=(...))`` and override the hooks that apply."""

    #: the module types the family covers (``isinstance`` of any of them)
    types: ClassVar[tuple[type[nn.Module], ...]] = ()

    def __init_subclass__(cls, types: tuple[type[nn.Module], ...] | None = None,
                          **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if types is None:
            return
        for other in FAMILIES:
            clash = set(types) & set(other.types)
            if clash:
                raise TypeError(f"layer types {sorted(t.__name__ for t in clash)} are already "
                                f"covered by {other.__name__}")
        cls.types = tuple(types)
        FAMILIES.append(cls)

    @staticmethod
    def forward(layer: nn.Module, weight: Tensor, bias: Tensor | None, x: Tensor) -> Tensor:
        """``layer(x)`` with ``weight`` and ``bias`` in place of its parameters."""
        raise NotImplementedError(f"{type(layer).__name__} has no functional forward")

    @staticmethod
    def local_reparam_obstacle(layer: nn.Module) -> str | None:
        """Why the local reparameterisation is not exact for ``layer`` (``None``: it is)."""
        return f"{type(layer).__name__} has no local reparameterisation"

    @staticmethod
    def units(layer: nn.Module) -> tuple[int, int] | None:
        """``(inputs, outputs)`` in prunable units, or ``None`` if the family has none."""
        return None


def family_of(layer: nn.Module) -> type[LayerFamily] | None:
    """The registered family covering ``layer``'s type (``None``: no family; a module without
    parameters of its own, or one bayesstruct does not know)."""
    for fam in FAMILIES:
        if isinstance(layer, fam.types):
            return fam
    return None
