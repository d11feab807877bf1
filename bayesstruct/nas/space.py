"""The DARTS search space: cells of ``n_nodes`` intermediate nodes, their edges, genotypes
(discrete architectures) and the derivation of a genotype from structure weights.

A cell has two input states (the outputs of the two previous cells, or the stem) numbered
0 and 1, and intermediate nodes numbered 2, 3, ...; node ``i`` (0-based among the
intermediate ones) may take any of the ``i + 2`` earlier states, so a cell has
``sum_i (i + 2)`` edges (14 for 4 nodes), ordered node by node and, within a node, by input.
The cell's output is the concatenation of its intermediate nodes.

A :class:`Genotype` keeps, for each intermediate node, ``k`` (= 2) ``(operation, input)``
pairs. DARTS' derivation (Liu et al. 2019, section 2.4): on each edge the strongest op other
than ``none``; for each node the ``k`` incoming edges whose strongest op is strongest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .ops import DEFAULT_OPS, OPS

__all__ = ["Genotype", "SearchSpace", "architecture_change", "derive"]


@dataclass(frozen=True)
class SearchSpace:
    """The size of a search problem: the candidate operations, the nodes per cell, the number
    of (normal) cells, the channels per node, and the stem's stride (2 halves 28x28 inputs
    to 14x14, which keeps a CPU search affordable)."""

    ops: tuple[str, ...] = DEFAULT_OPS
    n_nodes: int = 4
    n_cells: int = 1
    channels: int = 8
    stem_stride: int = 2
    inputs_per_node: int = 2

    def __post_init__(self) -> None:
        bad = [o for o in self.ops if o not in OPS]
        if bad:
            raise ValueError(f"unknown operation(s) {bad}; allowed: {', '.join(OPS)}")
        if len(set(self.ops)) != len(self.ops) or not [o for o in self.ops if o != "none"]:
            raise ValueError(f"ops must be distinct and include one besides 'none': {self.ops}")
        for name in ("n_nodes", "n_cells", "channels", "stem_stride", "inputs_per_node"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (got {getattr(self, name)})")
        if self.inputs_per_node > 2:
            raise ValueError("inputs_per_node must be 1 or 2 (node 0 has two candidate inputs)")

    @property
    def edges(self) -> list[tuple[int, int]]:
        """``(input state, node)`` of every edge, in the order of the structure tensors."""
        return [(j, i) for i in range(self.n_nodes) for j in range(i + 2)]

    @property
    def n_edges(self) -> int:
        return len(self.edges)

    @property
    def n_ops(self) -> int:
        return len(self.ops)

    def edge_index(self, node: int, input_: int) -> int:
        return node * (node + 3) // 2 + input_

    @property
    def n_architectures(self) -> int:
        """How many genotypes the space holds: per node, ``C(i + 2, k)`` input sets times
        ``(n_ops - 1)^k`` operations."""
        live, k = self.n_ops - ("none" in self.ops), self.inputs_per_node
        return math.prod(math.comb(i + 2, k) * live ** k for i in range(self.n_nodes))

    def random_genotype(self, rng: np.random.Generator) -> Genotype:
        """A genotype drawn uniformly from the space (random search, SPOS's single paths)."""
        live = [o for o in self.ops if o != "none"]
        nodes = []
        for i in range(self.n_nodes):
            inputs = sorted(rng.choice(i + 2, size=self.inputs_per_node, replace=False).tolist())
            nodes.append(tuple((live[int(rng.integers(len(live)))], int(j)) for j in inputs))
        return Genotype(tuple(nodes))


@dataclass(frozen=True)
class Genotype:
    """A discrete cell: ``nodes[i]`` is a tuple of ``(operation, input state)`` pairs."""

    nodes: tuple[tuple[tuple[str, int], ...], ...]

    def __str__(self) -> str:
        return "; ".join(f"n{i + 2}<-" + ",".join(f"{op}({j})" for op, j in node)
                         for i, node in enumerate(self.nodes))

    def to_list(self) -> list[list[list]]:
        return [[[op, j] for op, j in node] for node in self.nodes]

    @classmethod
    def from_list(cls, nodes: Sequence[Sequence[Sequence]]) -> Genotype:
        return cls(tuple(tuple((str(op), int(j)) for op, j in node) for node in nodes))


def derive(weights: Tensor, space: SearchSpace) -> Genotype:
    """DARTS' discrete architecture from structure weights ``(n_edges, n_ops)`` (softmax of
    the logits): per edge the strongest operation other than ``none``, per node the
    ``inputs_per_node`` edges with the strongest such operation (ties: the earlier input)."""
    if tuple(weights.shape) != (space.n_edges, space.n_ops):
        raise ValueError(f"weights have shape {tuple(weights.shape)}; the space needs "
                         f"({space.n_edges}, {space.n_ops})")
    w = weights.detach().cpu().double()
    live = [o for o, name in enumerate(space.ops) if name != "none"]
    nodes = []
    for i in range(space.n_nodes):
        cand = []
        for j in range(i + 2):
            row = w[space.edge_index(i, j), live]
            best = int(torch.argmax(row))  # first maximum: the earlier op on ties
            cand.append((float(row[best]), -j, space.ops[live[best]], j))
        cand.sort(reverse=True)
        chosen = sorted(cand[: space.inputs_per_node], key=lambda c: c[3])
        nodes.append(tuple((op, j) for _, _, op, j in chosen))
    return Genotype(tuple(nodes))


def architecture_change(a: Genotype, b: Genotype) -> float:
    """The fraction of ``a``'s ``(operation, input)`` choices that ``b`` does not make
    (0: the same cell, 1: nothing in common), node by node."""
    if len(a.nodes) != len(b.nodes):
        raise ValueError("genotypes of different depth")
    total = sum(len(n) for n in a.nodes)
    same = sum(len(set(na) & set(nb)) for na, nb in zip(a.nodes, b.nodes, strict=True))
    return 1.0 - same / total
