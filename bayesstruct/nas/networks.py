"""The search network (a supernet of mixed operations) and the derived network.

Both are ``stem -> n_cells cells -> global average pool -> Linear``: the stem is a 3x3
convolution to ``3 C`` channels (stride ``stem_stride``); every cell preprocesses its two
inputs with ReLU-Conv1x1-BN to ``C`` channels, runs its nodes, and concatenates them
(``n_nodes * C`` channels). Cells are all normal cells and share one architecture, as DARTS'
normal cells do.

:class:`SuperNet` evaluates every edge's mixed operation with structure weights
``gamma`` of shape ``(n_edges, n_ops)``, or a :class:`~.space.Genotype`'s single path (SPOS).
Its parameters are all ``Conv2d`` / ``Linear`` weights (BatchNorms have ``affine=False``), so
the mean-field guide's local reparameterisation applies to it unchanged
(:func:`~bayesstruct.guides.meanfield.lrt_twin`). The architecture reaches the LRT twin
through ``arch_state``, a dict the twin shares: :meth:`SuperNet.using` sets it.

:class:`DerivedNet` is the discrete network of a genotype, trained from scratch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from .ops import MixedOp, make_op
from .space import Genotype, SearchSpace

__all__ = ["DerivedNet", "SuperNet"]

Arch = Tensor | Genotype


def _relu_conv_bn(c_in: int, c_out: int, affine: bool) -> nn.Module:
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False),
                         nn.BatchNorm2d(c_out, affine=affine))


def _stem(in_channels: int, space: SearchSpace, affine: bool) -> nn.Module:
    c = 3 * space.channels
    return nn.Sequential(nn.Conv2d(in_channels, c, 3, stride=space.stem_stride, padding=1,
                                   bias=False), nn.BatchNorm2d(c, affine=affine))


class _SearchCell(nn.Module):
    def __init__(self, space: SearchSpace, c_prev_prev: int, c_prev: int) -> None:
        super().__init__()
        self.space = space
        c = space.channels
        self.pre0 = _relu_conv_bn(c_prev_prev, c, affine=False)
        self.pre1 = _relu_conv_bn(c_prev, c, affine=False)
        self.edges = nn.ModuleList(MixedOp(c, space.ops) for _ in range(space.n_edges))
        self._op_index = {o: i for i, o in enumerate(space.ops)}

    def forward(self, s0: Tensor, s1: Tensor, arch: Arch) -> Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        sp = self.space
        for i in range(sp.n_nodes):
            if isinstance(arch, Genotype):
                terms = [self.edges[sp.edge_index(i, j)](states[j], self._op_index[op])
                         for op, j in arch.nodes[i]]
            else:
                terms = [self.edges[sp.edge_index(i, j)](states[j], arch[sp.edge_index(i, j)])
                         for j in range(i + 2)]
            states.append(torch.stack(terms).sum(0) if len(terms) > 1 else terms[0])
        return torch.cat(states[2:], dim=1)


class _CellNetwork(nn.Module):
    """``stem -> cells -> global average pool -> Linear``; ``make_cell(c_prev_prev, c_prev)``
    builds each cell, which maps ``(s0, s1, *arch)`` to ``n_nodes * C`` channels."""

    def __init__(self, space: SearchSpace, in_channels: int, n_classes: int, affine: bool,
                 make_cell: Callable[[int, int], nn.Module]) -> None:
        super().__init__()
        self.space = space
        self.stem = _stem(in_channels, space, affine)
        c_pp = c_p = 3 * space.channels
        cells = []
        for _ in range(space.n_cells):
            cells.append(make_cell(c_pp, c_p))
            c_pp, c_p = c_p, space.n_nodes * space.channels
        self.cells = nn.ModuleList(cells)
        self.classifier = nn.Linear(c_p, n_classes)

    def _run(self, x: Tensor, *arch: Arch) -> Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, *arch)
        return self.classifier(s1.mean(dim=(2, 3)))


class SuperNet(_CellNetwork):
    """The DARTS search network over ``space`` (module docstring).

    ``forward(x, arch)``: ``arch`` is ``gamma`` ``(n_edges, n_ops)`` on the simplex per edge,
    or a :class:`Genotype` (single path); left out, the one set by :meth:`using`.
    """

    def __init__(self, space: SearchSpace, in_channels: int = 1, n_classes: int = 10) -> None:
        super().__init__(space, in_channels, n_classes, affine=False,
                         make_cell=lambda c_pp, c_p: _SearchCell(space, c_pp, c_p))
        self.arch_state: dict[str, Arch] = {}

    @contextmanager
    def using(self, arch: Arch) -> Iterator[None]:
        """Run every forward inside the block (the LRT twin's too) with ``arch``."""
        old = self.arch_state.get("arch")
        self.arch_state["arch"] = arch
        try:
            yield
        finally:
            if old is None:
                self.arch_state.pop("arch", None)
            else:
                self.arch_state["arch"] = old

    def forward(self, x: Tensor, arch: Arch | None = None) -> Tensor:
        if arch is None:
            arch = self.arch_state.get("arch")
            if arch is None:
                raise ValueError("SuperNet needs an architecture: forward(x, arch) or "
                                 "`with net.using(arch): ...`")
        if isinstance(arch, Tensor) and tuple(arch.shape) != (self.space.n_edges,
                                                               self.space.n_ops):
            raise ValueError(f"gamma has shape {tuple(arch.shape)}; the space needs "
                             f"({self.space.n_edges}, {self.space.n_ops})")
        return self._run(x, arch)


class _DerivedCell(nn.Module):
    def __init__(self, space: SearchSpace, genotype: Genotype, c_prev_prev: int,
                 c_prev: int) -> None:
        super().__init__()
        c = space.channels
        self.genotype = genotype
        self.pre0 = _relu_conv_bn(c_prev_prev, c, affine=True)
        self.pre1 = _relu_conv_bn(c_prev, c, affine=True)
        self.ops = nn.ModuleList(nn.ModuleList(make_op(op, c, affine=True) for op, _ in node)
                                 for node in genotype.nodes)

    def forward(self, s0: Tensor, s1: Tensor) -> Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for node, ops in zip(self.genotype.nodes, self.ops, strict=True):
            out = None
            for (_, j), op in zip(node, ops, strict=True):
                y = op(states[j])
                out = y if out is None else out + y
            states.append(out)
        return torch.cat(states[2:], dim=1)


class DerivedNet(_CellNetwork):
    """The discrete network of ``genotype`` (affine BatchNorms), trained from scratch."""

    def __init__(self, space: SearchSpace, genotype: Genotype, in_channels: int = 1,
                 n_classes: int = 10) -> None:
        if len(genotype.nodes) != space.n_nodes:
            raise ValueError(f"genotype has {len(genotype.nodes)} nodes; the space "
                             f"{space.n_nodes}")
        super().__init__(space, in_channels, n_classes, affine=True,
                         make_cell=lambda c_pp, c_p: _DerivedCell(space, genotype, c_pp, c_p))
        self.genotype = genotype

    def forward(self, x: Tensor) -> Tensor:
        return self._run(x)
