"""Applying decisions: a plain network that is actually smaller.

:func:`prune` zeroes the removed weights (:func:`apply_masks`) and then deletes the units that
no longer matter, so that the returned network has fewer rows, columns and channels and computes
exactly what the masked network computes (in eval mode; tested).

Layers and pairs
----------------
The network is an ``nn.Sequential`` of parameterised layers (``Linear``, ``Conv2d``) and
parameter-free modules in between. A *unit* of a layer is a row of a ``Linear`` weight (an
output feature) or an output channel of a ``Conv2d``. Units of a layer ``A`` are removed against
the next parameterised layer ``B`` when ``A -> ... -> B`` is one of

* ``Linear -> elementwise* -> Linear``: unit ``j`` is read by column ``j`` of ``B``;
* ``Conv2d -> (elementwise | pool)* -> Conv2d``: channel ``j`` is read by the input-channel
  slice ``B[:, j]``;
* ``Conv2d -> (elementwise | pool)* -> Flatten -> elementwise* -> Linear``: flatten is
  channel-major, so with ``k = B.in_features / A.out_channels`` channel ``j`` is read by the
  columns ``j*k .. (j+1)*k - 1`` of ``B``.

Elementwise modules are ReLU, Tanh, ELU, Sigmoid, LeakyReLU, GELU, Identity, Dropout and a few
other stateless activations; pools are ``MaxPool2d``, ``AvgPool2d`` and their adaptive
versions. Convolutions must have ``groups == 1``; ``Flatten`` must be ``Flatten(1, -1)``. Any
other module between two layers (BatchNorm, a custom block, ...) ends the chain and that pair
is left as it is (its weights are still masked).

When a unit is removed
----------------------
Unit ``j`` of ``A`` is removed, together with its bias entry and the column(s) / input channel
of ``B`` that read it, when

(a) *nothing reads it*: the column(s) / input-channel slice of ``B`` belonging to ``j`` are all
    zero; or
(b) *it has no input*: row / filter ``j`` of ``A`` is all zero. Its output is then the constant
    ``c_j = act(b_A[j])`` (``act`` = the elementwise modules up to ``B``, Dropout in eval mode;
    ``b_A[j] = 0`` without a bias), provided that constant really is constant everywhere ``B``
    looks. Elementwise modules, max pooling, adaptive pooling, ``Flatten`` and average pooling
    without zero padding (``padding == 0`` or ``count_include_pad=False``, no
    ``divisor_override``) keep a constant map constant; zero-padded average pooling and a
    zero-padded convolution ``B`` do not (the borders see the zero padding), unless ``c_j`` is
    exactly 0 (a zero map stays zero under zero padding; e.g. ReLU of a non-positive bias).
    Then:

    * if ``c_j == 0`` exactly (and the map is zero everywhere), the unit is dropped: it
      contributes nothing, with or without a bias in ``B``;
    * otherwise, if the map is constant and ``B`` has a bias, the constant is *folded* into
      ``B``'s bias before the unit is dropped: ``b_B += B[:, j] c_j`` (Linear),
      ``b_B += B[:, j*k:(j+1)*k].sum(1) c_j`` (across Flatten),
      ``b_B[o] += c_j B[o, j].sum()`` (Conv -> Conv, only when ``B`` has no zero padding, i.e.
      ``padding == 0`` or a non-``zeros`` ``padding_mode``);
    * otherwise (``B`` has no bias, or the map is not constant at the borders) the unit stays
      unless (a) holds.

Folding is computed in float64 and cast back. Removing units of ``B`` (as the ``A`` of the next
pair) can make more units of ``A`` unread, and folding can leave a unit of ``B`` without input,
so the pairs are swept in order until nothing changes. The last parameterised layer (the
output layer) keeps all its outputs. A layer never shrinks to zero units: if every unit could
go, one of them stays (unfolded), since PyTorch convolutions need at least one channel.

Input pruning
-------------
If some inputs of the first parameterised layer are never read (all-zero columns of a
``Linear``, all-zero input-channel slices of a ``Conv2d``), a :class:`SelectInputs` module is
inserted right before it (so after a leading ``Flatten``) and the layer drops those inputs: the
pruned network keeps the input interface of the original, but its first layer is smaller.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from ..layers import POOLS, STATELESS, family_of

__all__ = ["SelectInputs", "apply_masks", "count_parameters", "inference_seconds", "mask_params",
           "prune", "shrink_note", "unit_counts"]

_ELEMENTWISE = STATELESS
_POOLS = tuple(p for p in POOLS if p.__name__.endswith("2d"))  # this path shrinks Conv2d
_LAYERS = (nn.Linear, nn.Conv2d)

Layer = nn.Linear | nn.Conv2d


class SelectInputs(nn.Module):
    """Keep the inputs ``indices`` along dimension ``dim``: ``x.index_select(dim, indices)``.

    :func:`prune` puts it right before the first layer: ``dim=-1`` selects the features of a
    ``Linear`` (after a ``Flatten`` this is ``x.flatten(1).index_select(1, indices)``),
    ``dim=-3`` the channels of a ``Conv2d``. ``indices`` is a registered buffer, so it moves
    with the module and is part of its ``state_dict``.
    """

    indices: torch.Tensor

    def __init__(self, indices: Sequence[int] | np.ndarray | torch.Tensor, dim: int = -1) -> None:
        super().__init__()
        self.dim = int(dim)
        self.register_buffer("indices", torch.as_tensor(indices, dtype=torch.long).flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.index_select(self.dim, self.indices)

    def extra_repr(self) -> str:
        return f"n={self.indices.numel()}, dim={self.dim}"


def apply_masks(net: nn.Module, masks: Mapping[str, np.ndarray | torch.Tensor]) -> nn.Module:
    """A copy of ``net`` with ``param *= mask`` for every masked parameter."""
    net = copy.deepcopy(net)
    params = dict(net.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            p = params[name]
            p.mul_(torch.as_tensor(np.asarray(mask), dtype=p.dtype, device=p.device))
    return net


def mask_params(params: Mapping[str, torch.Tensor],
                masks: Mapping[str, np.ndarray | torch.Tensor]) -> dict[str, torch.Tensor]:
    """``value * mask`` for every masked entry of a parameter (or sample-site) dict; the rest
    unchanged. Masks may be numpy or torch, on any device."""
    return {k: v * torch.as_tensor(masks[k], dtype=v.dtype, device=v.device) if k in masks
            else v for k, v in params.items()}


def shrink_note(net: nn.Module) -> str:
    """How :func:`prune` made ``net``: ``"masked, not shrunk: <why>"`` when it could not
    trace it, else ``""``."""
    return net.__dict__.get("shrink_note", "")


def count_parameters(net: nn.Module, nonzero: bool = False, weights_only: bool = False) -> int:
    """Number of (non-zero) parameters; ``weights_only`` skips biases."""
    total = 0
    for name, p in net.named_parameters():
        if weights_only and name.endswith("bias"):
            continue
        total += int((p != 0).sum()) if nonzero else p.numel()
    return total


def unit_counts(net: nn.Module) -> dict[str, tuple[int, int]]:
    """``name -> (in_units, out_units)`` of every layer whose family has units
    (:mod:`bayesstruct.layers`: Linear features, Conv channels)."""
    counts: dict[str, tuple[int, int]] = {}
    for name, m in net.named_modules():
        family = family_of(m)
        units = family.units(m) if family is not None else None
        if units is not None:
            counts[name] = units
    return counts


def prune(net: nn.Module, masks: Mapping[str, np.ndarray | torch.Tensor]) -> nn.Module:
    """Masked copy of ``net`` with dead units removed and constant units folded (module doc).

    ``masks`` maps parameter names to boolean keep-masks of the parameters' shapes. The result
    is a new module (``net`` is untouched) that computes what ``apply_masks(net, masks)``
    computes in eval mode. ``nn.Sequential`` nets (this module: units removed and constant
    units folded into the next bias), the zoo's recurrent classifiers
    (:func:`~bayesstruct.pruning.recurrent.shrink_recurrent`) and any other module
    ``torch.fx`` can trace (:func:`~bayesstruct.pruning.graph.shrink_graph`: unread units
    removed along the data flow, BatchNorm folded, residual additions kept consistent) are
    shrunk. A module fx cannot trace comes back masked, with the reason in its
    ``shrink_note`` attribute (:func:`shrink_note`).
    """
    from ..nets import PairClassifier, SequenceClassifier
    from .graph import GraphShrinkError, shrink_graph
    from .recurrent import shrink_recurrent

    net = apply_masks(net, masks)
    if isinstance(net, SequenceClassifier | PairClassifier):
        return shrink_recurrent(net)
    if not isinstance(net, nn.Sequential):
        try:
            return shrink_graph(net)
        except GraphShrinkError as e:
            net.__dict__["shrink_note"] = f"masked, not shrunk: {e}"
            return net
    changed = True
    while changed:
        changed = False
        for pair in _pairs(net):
            changed |= _shrink_pair(net, pair)
    _select_inputs(net)
    return net


# -- pairs of consecutive layers ---------------------------------------------------------------


@dataclass(frozen=True)
class _Pair:
    a: str
    b: str
    between: tuple[str, ...]
    kind: Literal["linear", "conv", "flatten"]


def _is_full_flatten(m: nn.Module) -> bool:
    return isinstance(m, nn.Flatten) and m.start_dim == 1 and m.end_dim == -1


def _pairs(net: nn.Sequential) -> list[_Pair]:
    """Consecutive layers ``A -> ... -> B`` whose units can be matched (module doc)."""
    names = list(net._modules)
    mods = [net._modules[n] for n in names]
    pairs = []
    for i, a in enumerate(mods):
        if not isinstance(a, _LAYERS) or (isinstance(a, nn.Conv2d) and a.groups != 1):
            continue
        flattened = False
        for j in range(i + 1, len(mods)):
            m = mods[j]
            if isinstance(m, _LAYERS):
                kind: Literal["linear", "conv", "flatten"] | None = None
                if isinstance(a, nn.Linear) and isinstance(m, nn.Linear):
                    kind = "linear"
                elif isinstance(m, nn.Conv2d) and not flattened and m.groups == 1:
                    kind = "conv"
                elif (isinstance(m, nn.Linear) and flattened
                      and m.in_features % a.out_channels == 0):
                    kind = "flatten"
                if kind is not None:
                    pairs.append(_Pair(names[i], names[j], tuple(names[i + 1: j]), kind))
                break
            conv_map = isinstance(a, nn.Conv2d) and not flattened
            if isinstance(m, _ELEMENTWISE):
                continue
            if conv_map and isinstance(m, _POOLS) and not getattr(m, "return_indices", False):
                continue
            if conv_map and _is_full_flatten(m):
                flattened = True
                continue
            break
    return pairs


def _n_units(layer: Layer) -> int:
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


def _n_inputs(layer: Layer) -> int:
    return layer.in_features if isinstance(layer, nn.Linear) else layer.in_channels


def _keeps_constant(m: nn.Module) -> bool:
    """Does ``m`` map a constant (per-channel) map to a constant map, borders included?"""
    if isinstance(m, nn.AvgPool2d):
        no_pad = all(p == 0 for p in np.atleast_1d(m.padding)) or not m.count_include_pad
        return no_pad and m.divisor_override is None
    return True


def _zero_padded(conv: nn.Conv2d) -> bool:
    """Does ``conv`` see zeros beyond the borders of its input?"""
    if conv.padding_mode != "zeros" or conv.padding == "valid":
        return False
    if isinstance(conv.padding, str):  # "same"
        return any(d * (k - 1) > 0 for d, k in zip(conv.dilation, conv.kernel_size, strict=True))
    return any(p != 0 for p in conv.padding)


@torch.no_grad()
def _constants(a: Layer, between: list[nn.Module], b: Layer,
               kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Output that ``B`` sees from each unit of ``A`` if that unit has no input.

    Returns ``(c, uniform)``: ``c[j]`` is the value, ``uniform[j]`` whether the map is that value
    everywhere ``B`` looks (borders included; a zero map stays zero under zero padding).
    """
    n = _n_units(a)
    w = a.weight
    c = a.bias.detach().clone() if a.bias is not None else torch.zeros(n, dtype=w.dtype,
                                                                       device=w.device)
    uniform = torch.ones(n, dtype=torch.bool, device=w.device)
    for m in between:
        if isinstance(m, _ELEMENTWISE):
            was_training = m.training
            m.eval()
            c = m(c)
            m.train(was_training)
        elif not _keeps_constant(m):
            uniform &= c == 0
    if kind == "conv" and _zero_padded(b):
        uniform &= c == 0
    return c, uniform


def _set_param(module: nn.Module, name: str, value: torch.Tensor) -> None:
    old = getattr(module, name)
    setattr(module, name, nn.Parameter(value.detach().clone(), requires_grad=old.requires_grad))


def _keep_outputs(layer: Layer, keep: torch.Tensor) -> None:
    _set_param(layer, "weight", layer.weight[keep])
    if layer.bias is not None:
        _set_param(layer, "bias", layer.bias[keep])
    if isinstance(layer, nn.Linear):
        layer.out_features = int(keep.sum())
    else:
        layer.out_channels = int(keep.sum())


def _input_blocks(layer: Layer, n: int) -> torch.Tensor:
    """``layer.weight`` as ``(out, n, -1)``: block ``j`` holds everything input unit ``j`` feeds."""
    return layer.weight.reshape(layer.weight.shape[0], n, -1)


def _keep_inputs(layer: Layer, keep: torch.Tensor) -> None:
    if isinstance(layer, nn.Linear):
        w = _input_blocks(layer, keep.numel())[:, keep].reshape(layer.out_features, -1)
        _set_param(layer, "weight", w)
        layer.in_features = w.shape[1]
    else:
        _set_param(layer, "weight", layer.weight[:, keep])
        layer.in_channels = int(keep.sum())


@torch.no_grad()
def _shrink_pair(net: nn.Sequential, pair: _Pair) -> bool:
    """Remove the dead units of ``pair.a`` (folding constants into ``pair.b``); changed?"""
    a, b = net._modules[pair.a], net._modules[pair.b]
    assert isinstance(a, _LAYERS) and isinstance(b, _LAYERS)
    n = _n_units(a)
    blocks = _input_blocks(b, n)
    no_input = (a.weight.reshape(n, -1) == 0).all(dim=1)
    unread = (blocks == 0).all(dim=2).all(dim=0)
    c, uniform = _constants(a, [net._modules[m] for m in pair.between], b, pair.kind)
    zero = no_input & uniform & (c == 0)
    fold = no_input & uniform & ~zero & ~unread & (b.bias is not None)
    remove = unread | zero | fold
    if bool(remove.all()):  # keep one unit, preferably one that needs no folding
        spare = int(torch.argmax((~fold).to(torch.int8)))
        remove[spare] = fold[spare] = False
    if not bool(remove.any()):
        return False
    if bool(fold.any()):
        shift = blocks[:, fold].sum(dim=2).double() @ c[fold].double()
        _set_param(b, "bias", (b.bias.double() + shift).to(b.bias.dtype))
    keep = ~remove
    _keep_outputs(a, keep)
    _keep_inputs(b, keep)
    return True


# -- input pruning -----------------------------------------------------------------------------


@torch.no_grad()
def _select_inputs(net: nn.Sequential) -> None:
    """Drop the unread inputs of the first layer behind a :class:`SelectInputs` (module doc)."""
    names = list(net._modules)
    first = next((i for i, n in enumerate(names) if isinstance(net._modules[n], _LAYERS)), None)
    if first is None:
        return
    layer = net._modules[names[first]]
    if isinstance(layer, nn.Conv2d) and layer.groups != 1:
        return
    n = _n_inputs(layer)
    w = layer.weight.transpose(0, 1).reshape(n, -1)
    keep = (w != 0).any(dim=1)
    if bool(keep.all()):
        return
    if not bool(keep.any()):
        keep[0] = True
    indices = torch.nonzero(keep).flatten()
    _keep_inputs(layer, keep)
    dim = -1 if isinstance(layer, nn.Linear) else -3
    prev = net._modules[names[first - 1]] if first > 0 else None
    if isinstance(prev, SelectInputs) and prev.dim == dim:  # pruning a pruned net again
        prev.indices = prev.indices[indices]
        return
    name = "select_inputs"
    while name in net._modules:
        name = "_" + name
    select = SelectInputs(indices.cpu(), dim=dim).to(layer.weight.device)
    items = list(net._modules.items())
    items.insert(first, (name, select))
    net._modules.clear()
    net._modules.update(items)


@torch.no_grad()
def inference_seconds(net: nn.Module, x: torch.Tensor, repeats: int = 5,
                      batch_size: int = 1000) -> float:
    """Median wall time of one forward pass of ``net`` over ``x`` (in batches), eval mode.

    One warm-up pass first; used to show that a pruned network is faster, not only smaller.
    """
    was = net.training
    net.eval()
    times = []
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        for i in range(0, x.shape[0], batch_size):
            net(x[i: i + batch_size])
        if x.is_cuda:
            torch.cuda.synchronize(x.device)
        if r:
            times.append(time.perf_counter() - t0)
    net.train(was)
    return float(np.median(times))
