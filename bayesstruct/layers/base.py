"""The layer-family contract: what bayesstruct needs to know about one kind of layer.

A family is one class in one module (``layers/linear.py``, ``layers/conv.py``, ...) that
subclasses :class:`LayerFamily`, names the ``torch.nn`` types it covers and fills the hooks;
``class Linear(LayerFamily, types=(nn.Linear,))`` registers it. Guides, ``BayesianNet``, the
sample sites and the pruning report ask :func:`family_of` instead of testing layer types:

* :meth:`LayerFamily.role` -- whether a parameter is a ``"weight"`` (it gets the prior and can
  be pruned), a ``"bias"`` (a Gaussian ``N(0, bias_scale^2)``, never pruned) or a ``"point"``
  estimate (no prior, never pruned: normalisation affine parameters, scalars);
* :meth:`LayerFamily.group_dim` -- which dimension of a weight indexes the layer's *input
  units*, the groups that unit-level priors give one scale each (a column of a Linear weight,
  an input channel of a convolution, a hidden unit feeding a recurrent layer, with every gate
  tied); :meth:`LayerFamily.no_groups` says why a layer has none;
* :meth:`LayerFamily.forward` -- the layer's output for given weight and bias tensors (the
  sampled or mean values), by plain functional calls: the fast path of ``nn.Sequential`` nets
  (traceable by the PyTorch JIT) and the mean of the local reparameterisation;
  :meth:`LayerFamily.variance` -- the output's variance when every weight is an independent
  Gaussian (the second product of the local reparameterisation);
* :meth:`LayerFamily.local_reparam_obstacle` -- why the local reparameterisation trick (sample
  pre-activations instead of weights; Kingma, Salimans & Welling 2015) is not exact for a
  layer, or ``None`` when it is: the guide then draws whole weight tensors instead;
* :meth:`LayerFamily.units` -- ``(inputs, outputs)`` in the units that unit-level pruning
  removes (features, channels, hidden units).

:attr:`LayerFamily.shrink` says how :func:`bayesstruct.pruning.prune` makes the family's
layers smaller (:mod:`bayesstruct.pruning.graph` follows the data flow of any network
``torch.fx`` can trace; :attr:`LayerFamily.output_dim` marks the layers whose rows are output
units); :func:`supported_layers` turns the registry into the README's table.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn
from torch.func import functional_call

__all__ = ["FAMILIES", "ROLES", "LayerFamily", "default_role", "family_of", "keep_rows",
           "markdown_table", "set_param", "supported_layers", "type_name"]

#: the registered families, in registration order
FAMILIES: list[type[LayerFamily]] = []

#: what a parameter can be: given the prior (and prunable), a Gaussian bias, a point estimate
ROLES = ("weight", "bias", "point")


def default_role(name: str, param: Tensor) -> str:
    """The role of a parameter no family claims: ``bias*`` -> ``"bias"``; a 1-D or scalar
    tensor (a temperature, a PReLU slope, a gain) -> ``"point"``; anything else -> ``"weight"``."""
    if name.startswith("bias"):
        return "bias"
    return "point" if param.dim() <= 1 else "weight"


class LayerFamily:
    """One kind of layer (see the module docstring). Subclasses set :attr:`types` through
    ``class X(LayerFamily, types=(...))`` and override the hooks that apply."""

    #: the module types the family covers (``isinstance`` of any of them)
    types: ClassVar[tuple[type[nn.Module], ...]] = ()
    #: whether the mean-field guide may run the layer's local reparameterisation and its KL as
    #: one autograd node (``bayesstruct.guides.fused``: a product of an input matrix and a 2-D
    #: weight)
    fused_lrt: ClassVar[bool] = False
    #: how a pruned network loses this family's units (the README's table)
    shrink: ClassVar[str] = "weights zeroed, shape kept"
    #: how a run directory's pruned network holds it (the README's table; every family's
    #: example in tests/models/test_any_network.py is exported and reloaded)
    export: ClassVar[str] = "TorchScript"
    #: the units a unit-level prior groups by (the README's table)
    unit_groups: ClassVar[str] = "-"
    #: how the mean-field guide runs the family's layers in SVI (the README's table)
    fast_path: ClassVar[str] = "one weight draw per minibatch"
    #: the weight dimension indexing the layer's output units, where a pruned unit takes its
    #: row with it (Linear, ConvNd: 0); ``None``: not a row per output unit
    output_dim: ClassVar[int | None] = None
    #: whether a unit scale multiplies the layer's output (a lookup table) rather than its input
    scales_output: ClassVar[bool] = False

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
    def refusal(layer: nn.Module) -> str | None:
        """Why bayesstruct cannot put a prior on this layer at all (``None``: it can);
        :class:`~bayesstruct.models.BayesianNet` refuses it before any training."""
        return None

    @staticmethod
    def role(layer: nn.Module, name: str, param: Tensor) -> str:
        """The default role of the layer's own parameter ``name`` (one of :data:`ROLES`)."""
        return default_role(name, param)

    @staticmethod
    def group_dim(layer: nn.Module, name: str) -> int | None:
        """The dimension of weight ``name`` that indexes the layer's input units."""
        return None

    @staticmethod
    def no_groups(layer: nn.Module) -> str:
        """Why the layer has no unit groups (when :meth:`group_dim` is ``None``)."""
        return f"bayesstruct knows no units of {type(layer).__name__}"

    @staticmethod
    def forward(layer: nn.Module, weight: Tensor, bias: Tensor | None, x: Tensor) -> Tensor:
        """``layer(x)`` with ``weight`` and ``bias`` in place of its parameters."""
        params = {"weight": weight} if bias is None else {"weight": weight, "bias": bias}
        return functional_call(layer, params, (x,))

    @classmethod
    def variance(cls, layer: nn.Module, weight_var: Tensor, bias_var: Tensor | None,
                 x: Tensor) -> Tensor:
        """The output's variance when every weight and bias is an independent Gaussian of these
        variances: ``f(x^2; s^2, s_b^2)`` for a layer linear in its weights."""
        return cls.forward(layer, weight_var, bias_var, x * x)

    @staticmethod
    def local_reparam_obstacle(layer: nn.Module) -> str | None:
        """Why the local reparameterisation is not exact for ``layer`` (``None``: it is)."""
        return f"{type(layer).__name__} has no local reparameterisation"

    @staticmethod
    def macs(layer: nn.Module, x: Tensor, out: Any) -> int:
        """Multiply-accumulates of one call ``out = layer(x)`` (one example in ``x``)."""
        return 0

    # -- shrinking (bayesstruct.pruning.graph) ----------------------------------------------
    #: where the units of the layer's input sit: ``"feat"`` (the last dim; a Linear also
    #: reads channels flattened into it) or ``"conv"`` (dim 1 of ``(B, C, ...)``)
    input_layout: ClassVar[str] = "feat"
    #: where its output units sit (``"tuple"``: a recurrent layer's ``(output, state)``, the
    #: units in the last dim of the first element)
    output_layout: ClassVar[str] = "feat"

    @staticmethod
    def reads_units(layer: nn.Module) -> bool:
        """Whether the layer can drop input units (:meth:`input_blocks`, :meth:`keep_inputs`)."""
        return False

    @staticmethod
    def output_units(layer: nn.Module) -> int | None:
        """How many output units :meth:`keep_outputs` can drop from (``None``: none)."""
        return None

    @staticmethod
    def self_blocks(layer: nn.Module) -> Tensor | None:
        """The layer's own weights reading its output units, ``(rows, units, -1)`` (the
        recurrence of a recurrent layer), or ``None``."""
        return None

    @staticmethod
    def fold_into(layer: nn.Module, previous: nn.Module) -> bool:
        """Fold ``layer`` into ``previous`` (a layer whose rows are its output units, read
        only by ``layer``), in eval mode; return whether it did (BatchNorm does)."""
        return False

    @staticmethod
    def input_blocks(layer: nn.Module, n: int) -> Tensor:
        """The weights reading each of the layer's ``n`` input units, ``(rows, n, -1)``: block
        ``j`` is everything unit ``j`` feeds (a column, an input channel's kernels, the
        ``k`` columns of a channel flattened into a Linear)."""
        raise NotImplementedError(f"{type(layer).__name__} does not drop input units")

    @staticmethod
    def keep_inputs(layer: nn.Module, keep: Tensor) -> None:
        """Drop the input units ``~keep`` in place (their blocks, :meth:`input_blocks`)."""
        raise NotImplementedError(f"{type(layer).__name__} does not drop input units")

    @staticmethod
    def keep_outputs(layer: nn.Module, keep: Tensor) -> None:
        """Drop the output units ``~keep`` in place (rows, bias entries, statistics)."""
        raise NotImplementedError(f"{type(layer).__name__} does not drop output units")

    @staticmethod
    def passes_units(layer: nn.Module) -> bool:
        """Whether the layer maps each unit of its input to the same unit of its output (a
        per-channel normalisation): the units flow through, and :meth:`keep_outputs` slices
        it with them."""
        return False

    @staticmethod
    def units(layer: nn.Module) -> tuple[int, int] | None:
        """``(inputs, outputs)`` in prunable units, or ``None`` if the family has none."""
        return None


def set_param(module: nn.Module, name: str, value: Tensor) -> None:
    """Replace parameter ``name`` of ``module`` by a new one holding ``value``."""
    old = getattr(module, name)
    setattr(module, name, nn.Parameter(value.detach().clone(), requires_grad=old.requires_grad))


def keep_rows(layer: nn.Module, keep: Tensor, count: str) -> None:
    """Keep the rows ``keep`` of ``layer.weight`` and ``layer.bias`` (output units) and set
    the layer's attribute ``count`` (``out_features``, ``out_channels``) to how many stay."""
    set_param(layer, "weight", layer.weight[keep])
    if layer.bias is not None:
        set_param(layer, "bias", layer.bias[keep])
    setattr(layer, count, int(keep.sum()))


def family_of(layer: nn.Module) -> type[LayerFamily] | None:
    """The registered family covering ``layer``'s type (``None``: no family; a module without
    parameters of its own, or one bayesstruct does not know)."""
    for fam in FAMILIES:
        if isinstance(layer, fam.types):
            return fam
    return None


def type_name(t: type) -> str:
    """``nn.Linear`` for torch's layers, the full path for others."""
    return f"nn.{t.__name__}" if t.__module__.startswith("torch.nn") else \
        f"{t.__module__}.{t.__name__}"


def supported_layers() -> list[list[str]]:
    """The registry as a table, one row per family: ``[types, family, SVI fast path, unit
    groups, shrink, export]`` (the README's supported-layers table is this, checked by a test)."""
    return [[", ".join(f"``{type_name(t)}``" for t in fam.types), fam.__name__, fam.fast_path,
             fam.unit_groups, fam.shrink, fam.export] for fam in FAMILIES]


HEADER = ["layer types", "family", "SVI fast path", "unit groups", "shrunk by prune()",
          "export"]


def markdown_table() -> str:
    """:func:`supported_layers` as a Markdown table (``python -m bayesstruct.layers`` prints
    it; the README holds a copy a test compares)."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row).replace("``", "`") + " |" for row in supported_layers()]
    return "\n".join(lines)
