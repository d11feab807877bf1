"""Shrinking any network ``torch.fx`` can trace: channels and features removed along the
data flow, BatchNorm folded, residual additions kept consistent.

:func:`shrink_graph` traces the (masked) network into a graph of module calls and tensor
operations and follows each *unit space*: the output units of a layer whose weight rows are
its outputs (Linear features, ConvNd channels; :attr:`LayerFamily.output_dim`), through the
operations that keep units apart (element-wise activations, dropout, pooling, per-channel
normalisation, flattening into a Linear, a spatial mean), to the layers that read them.

* A **residual addition** ``a + b`` ties the unit spaces of ``a`` and ``b`` into one: unit
  ``j`` of a ResNet stage is the same channel in the stem, in every block's last convolution
  and in every skip connection, so it can only go when *every* layer reading it -- on every
  branch -- reads nothing from it.
* A unit is removed when it is **unread**: every layer reading the space has an all-zero input
  slice for it (a column of a Linear, ``W[:, j]`` of a convolution, the ``k`` columns of a
  channel flattened into a Linear). Its rows leave every producer, its slice every reader,
  and its entries every normalisation layer in between; nothing downstream changes, so the
  smaller network computes exactly what the masked one computes (tested). Unit-level priors
  (BC-GNJ, the group horseshoe, ARD per unit) decide by exactly these input slices.
* **BatchNorm folding**: a BatchNorm (eval mode, running statistics) that alone reads a
  Linear's or a convolution's output is folded into it, ``W' = W gamma / sqrt(var + eps)``,
  ``b' = (b - mean) gamma / sqrt(var + eps) + beta``, and dropped.
* Everything else that reads a unit space -- the network's output, a concatenation, a
  reshape, a recurrent or attention layer, LayerNorm, any function not listed -- *pins* it:
  its units stay. A layer called at two places pins its spaces too.

A unit whose weights into it are all zero (no input) is not removed here: its output is the
constant ``act(b_j)``, which only :mod:`~bayesstruct.pruning.compression`'s ``nn.Sequential``
path folds into the next bias.
"""

from __future__ import annotations

import copy
import operator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..layers import POOLS, STATELESS, family_of

__all__ = ["GraphShrinkError", "analyse_units", "shrink_graph"]


class GraphShrinkError(RuntimeError):
    """``torch.fx`` cannot trace the network (its message says why)."""


_ADDS = {operator.add, operator.iadd, torch.add}


@dataclass
class _Space:
    """One set of units shared by producers, readers and layers in between."""

    size: int
    producers: list[str] = field(default_factory=list)
    readers: list[str] = field(default_factory=list)
    own: list[str] = field(default_factory=list)  # producers reading their own units
    between: list[str] = field(default_factory=list)  # per-unit layers (normalisation)
    pinned: str = ""  # why the units must stay


@dataclass(frozen=True)
class _Tag:
    """What a tensor in the graph carries: a unit space, laid out as a convolution's channels
    (``"conv"``: dim 1 of ``(B, C, ...)``), as features (``"feat"``: the last dim), flattened
    channel-major (``"flat"``: ``(B, C * k)``), or as a recurrent layer's ``(output, state)``
    (``"tuple"``). ``ndim``: the tensor's dimensions where known (a recurrent output's 3)."""

    space: int
    layout: str
    ndim: int | None = None


class _Spaces:
    """Union-find over unit spaces (a residual addition merges two)."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.data: list[_Space] = []

    def new(self, size: int) -> int:
        self.parent.append(len(self.parent))
        self.data.append(_Space(size))
        return len(self.parent) - 1

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def get(self, i: int) -> _Space:
        return self.data[self.find(i)]

    def union(self, i: int, j: int) -> int:
        i, j = self.find(i), self.find(j)
        if i == j:
            return i
        a, b = self.data[i], self.data[j]
        if a.size != b.size:
            a.pinned = b.pinned = f"added tensors of {a.size} and {b.size} units"
        a.producers += b.producers
        a.readers += b.readers
        a.own += b.own
        a.between += b.between
        a.pinned = a.pinned or b.pinned
        self.parent[j] = i
        return i

    def pin(self, i: int, why: str) -> None:
        space = self.get(i)
        space.pinned = space.pinned or why

    def roots(self) -> list[int]:
        return [i for i in range(len(self.parent)) if self.parent[i] == i]


def _module(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    return gm.get_submodule(node.target) if node.op == "call_module" else None


def _is_flatten(node: fx.Node, gm: fx.GraphModule) -> bool:
    m = _module(gm, node)
    if m is not None:
        return isinstance(m, nn.Flatten) and m.start_dim == 1 and m.end_dim == -1
    if (node.op == "call_function" and node.target is torch.flatten) or (
            node.op == "call_method" and node.target == "flatten"):
        start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
        end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
        return start == 1 and end == -1
    return False


def _is_spatial_mean(node: fx.Node) -> bool:
    if not ((node.op == "call_method" and node.target == "mean")
            or (node.op == "call_function" and node.target is torch.mean)):
        return False
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    dims = (dims,) if isinstance(dims, int) else tuple(dims or ())
    keep = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
    return bool(dims) and all(d >= 2 for d in dims) and not keep


def _keeps_last_dim(index: object, ndim: int | None) -> tuple[bool, int | None]:
    """Whether ``x[index]`` keeps the last dim of an ``ndim``-dim tensor whole (and the
    result's ndim): ints and full slices before it (``out[:, -1]`` of ``(B, T, H)``)."""
    idx = index if isinstance(index, tuple) else (index,)
    if ndim is None or not all(isinstance(i, int) or i == slice(None) for i in idx):
        return False, None
    if len(idx) > ndim or (len(idx) == ndim and idx[-1] != slice(None)):
        return False, None
    return True, ndim - sum(isinstance(i, int) for i in idx)


def _calls(gm: fx.GraphModule, target: str) -> int:
    return sum(1 for n in gm.graph.nodes if n.op == "call_module" and n.target == target)


def _fold(gm: fx.GraphModule) -> None:
    """Fold each layer that alone reads a row layer's output into it (BatchNorm)."""
    for node in list(gm.graph.nodes):
        m, src = _module(gm, node), node.args[0] if node.args else None
        family = family_of(m) if m is not None else None
        if family is None or not isinstance(src, fx.Node) or len(src.users) != 1:
            continue
        prev = _module(gm, src)
        prev_family = family_of(prev) if prev is not None else None
        if (prev_family is None or prev_family.output_dim != 0
                or prev_family.output_units(prev) is None or _calls(gm, src.target) > 1
                or _calls(gm, node.target) > 1):
            continue
        if family.fold_into(m, prev):
            node.replace_all_uses_with(src)
            gm.graph.erase_node(node)
    gm.graph.eliminate_dead_code()
    gm.delete_all_unused_submodules()
    gm.recompile()


_PASS_FUNCTIONS = {torch.relu, F.relu, F.gelu, F.silu, F.elu, F.leaky_relu, torch.tanh,
                   torch.sigmoid, F.dropout, F.relu6, F.hardswish, F.mish, F.softplus}
_PASS_METHODS = {"relu", "sigmoid", "tanh", "contiguous"}
_POOL_FUNCTIONS = {F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d, F.avg_pool2d,
                   F.avg_pool3d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
                   F.adaptive_avg_pool3d, F.adaptive_max_pool2d}


def analyse_units(gm: fx.GraphModule) -> _Spaces:
    """Follow every unit space through the graph (module doc)."""
    spaces = _Spaces()
    tags: dict[fx.Node, _Tag] = {}

    def pin_inputs(node: fx.Node, why: str) -> None:
        for arg in node.all_input_nodes:
            if arg in tags:
                spaces.pin(tags[arg].space, why)

    for node in gm.graph.nodes:
        args = [a for a in node.args if isinstance(a, fx.Node)]
        first = tags.get(args[0]) if args else None
        single = len(node.all_input_nodes) == 1
        m = _module(gm, node)
        family = family_of(m) if m is not None else None
        if first is not None and first.layout == "tuple":  # (output, state) of a recurrence
            if (node.op == "call_function" and node.target is operator.getitem
                    and node.args[1] == 0):
                tags[node] = _Tag(first.space, "feat", 3)
            else:
                pin_inputs(node, "the recurrent state is read")
            continue
        if family is not None and (family.reads_units(m) or family.output_units(m)):
            once = _calls(gm, node.target) == 1
            if first is not None:
                layouts = ("feat", "flat") if family.input_layout == "feat" else ("conv",)
                if once and family.reads_units(m) and first.layout in layouts:
                    spaces.get(first.space).readers.append(node.target)
                else:
                    spaces.pin(first.space, f"{node.target} cannot drop its inputs here")
            for extra in node.all_input_nodes[1:]:
                if extra in tags:
                    spaces.pin(tags[extra].space, f"an extra input of {node.target}")
            units = family.output_units(m)
            if units is not None:
                space = spaces.new(units)
                spaces.get(space).producers.append(node.target)
                if family.self_blocks(m) is not None:
                    spaces.get(space).own.append(node.target)
                if not once:
                    spaces.pin(space, f"{node.target} is called more than once")
                tags[node] = _Tag(space, family.output_layout)
            continue
        if first is not None and single:
            if _passes(node, gm, m, family, first):
                if family is not None:
                    spaces.get(first.space).between.append(node.target)
                tags[node] = first
                continue
            if _is_flatten(node, gm) and first.layout in ("conv", "feat"):
                tags[node] = _Tag(first.space, "flat" if first.layout == "conv" else "feat")
                continue
            if _is_spatial_mean(node) and first.layout == "conv":
                tags[node] = _Tag(first.space, "feat")
                continue
            if node.op == "call_function" and node.target is operator.getitem and \
                    first.layout == "feat":
                ok, ndim = _keeps_last_dim(node.args[1], first.ndim)
                if ok:
                    tags[node] = _Tag(first.space, "feat", ndim)
                    continue
            if node.op == "call_method" and node.target == "size" and node.args[1:] in (
                    (0,), ()):
                continue  # the batch size or the shape: no unit is read
        if node.op == "call_function" and node.target in _ADDS and len(args) == 2 == len(
                node.args):
            a, b = (tags.get(x) for x in args)
            if a is not None and b is not None and a.layout == b.layout:
                tags[node] = _Tag(spaces.union(a.space, b.space), a.layout)
                continue
        if node.op == "output":
            pin_inputs(node, "it is the network's output")
        elif node.op != "placeholder":
            pin_inputs(node, f"read by {node.target if m is None else type(m).__name__}")
    return spaces


def _passes(node: fx.Node, gm: fx.GraphModule, m: nn.Module | None, family, tag: _Tag) -> bool:
    """Does ``node`` keep every unit of its input apart, in place (activations, dropout,
    pooling of a channel map, a per-channel normalisation)?"""
    if m is not None:
        if family is not None:
            return family.passes_units(m) and tag.layout in ("conv", "feat")
        if isinstance(m, STATELESS):
            return True
        return isinstance(m, POOLS) and tag.layout == "conv" and not getattr(
            m, "return_indices", False)
    if node.op == "call_function":
        return node.target in _PASS_FUNCTIONS or (node.target in _POOL_FUNCTIONS
                                                  and tag.layout == "conv")
    return node.op == "call_method" and node.target in _PASS_METHODS


@torch.no_grad()
def _shrink(gm: fx.GraphModule, spaces: _Spaces) -> int:
    """Remove the unread units of every free space; return how many went."""
    removed = 0
    for root in spaces.roots():
        space = spaces.data[root]
        if space.pinned or not (space.readers or space.own):
            continue
        n = space.size
        unread = torch.ones(n, dtype=torch.bool)
        for name in space.readers + space.own:
            layer = gm.get_submodule(name)
            family = family_of(layer)
            if name in space.readers:
                try:
                    w = family.input_blocks(layer, n)
                except RuntimeError:  # its input does not split into n equal blocks
                    unread[:] = False
                    break
                unread &= (w == 0).all(dim=2).all(dim=0).cpu()
            if name in space.own:
                unread &= (family.self_blocks(layer) == 0).all(dim=2).all(dim=0).cpu()
        if bool(unread.all()):
            unread[0] = False  # a layer keeps one unit
        if not bool(unread.any()):
            continue
        keep = ~unread
        for name in dict.fromkeys(space.producers + space.between):
            layer = gm.get_submodule(name)
            family_of(layer).keep_outputs(layer, keep.to(_device(layer)))
        for name in space.readers:
            layer = gm.get_submodule(name)
            family_of(layer).keep_inputs(layer, keep.to(_device(layer)))
        removed += int(unread.sum())
    return removed


def _device(layer: nn.Module) -> torch.device:
    return next(iter(layer.parameters())).device


def shrink_graph(net: nn.Module) -> fx.GraphModule:
    """``net`` (already masked; it is not modified) as a traced ``GraphModule`` with
    BatchNorm folded and every unread unit removed (module doc), in eval mode. Removing units
    can leave more units unread, so this repeats until nothing changes.

    Raises:
        GraphShrinkError: ``torch.fx.symbolic_trace`` cannot trace ``net`` (data-dependent
            control flow, say); the caller keeps the masked network.
    """
    try:
        gm = fx.symbolic_trace(copy.deepcopy(net).eval())
    except Exception as e:  # torch.fx raises many kinds (TraceError, TypeError, ...)
        first_line = str(e).splitlines()[0] if str(e) else ""
        raise GraphShrinkError(f"torch.fx cannot trace {type(net).__name__}: "
                               f"{type(e).__name__}: {first_line}") from e
    gm.eval()
    _fold(gm)
    while _shrink(gm, analyse_units(gm)):
        pass
    gm.recompile()
    return gm
