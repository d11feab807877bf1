"""The search space and DARTS' derivation (M7): edges, genotypes, derivation on hand-set
logits, and the architecture-change measure of the stability report."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from bayesstruct import nas
from bayesstruct.nas.ops import DEFAULT_OPS
from bayesstruct.nas.space import architecture_change, derive

OPS = DEFAULT_OPS  # conv_3x3 conv_5x5 dil_conv_3x3 max_pool avg_pool skip none


def test_edges_are_indexed_node_by_node():
    space = nas.SearchSpace()
    assert space.n_edges == 14 and space.n_ops == 7
    for e, (j, i) in enumerate(space.edges):
        assert space.edge_index(i, j) == e
        assert 0 <= j < i + 2


def test_architecture_count_matches_enumeration():
    space = nas.SearchSpace(ops=("conv_3x3", "skip_connect", "none"), n_nodes=3)
    live = ("conv_3x3", "skip_connect")
    brute = 1
    for i in range(space.n_nodes):
        brute *= sum(1 for _ in itertools.combinations(range(i + 2), 2)) * len(live) ** 2
    assert space.n_architectures == brute == (1 * 4) * (3 * 4) * (6 * 4)
    seen = {str(space.random_genotype(np.random.default_rng(s))) for s in range(3000)}
    assert len(seen) <= space.n_architectures


@pytest.mark.parametrize("seed", range(5))
def test_random_genotypes_are_valid(seed):
    space = nas.SearchSpace()
    g = space.random_genotype(np.random.default_rng(seed))
    assert len(g.nodes) == space.n_nodes
    for i, node in enumerate(g.nodes):
        inputs = [j for _, j in node]
        assert len(set(inputs)) == 2 and all(0 <= j < i + 2 for j in inputs)
        assert all(op in OPS and op != "none" for op, _ in node)
    assert nas.Genotype.from_list(g.to_list()) == g


def _logits(space, entries):
    """Logits of -5 everywhere except ``{(node, input): {op: value}}``."""
    a = torch.full((space.n_edges, space.n_ops), -5.0)
    for (i, j), ops in entries.items():
        for op, v in ops.items():
            a[space.edge_index(i, j), OPS.index(op)] = v
    return a


def test_derivation_picks_the_expected_edges_on_hand_set_logits():
    space = nas.SearchSpace()
    logits = _logits(space, {
        # node 0 (state 2): both inputs kept, whichever op is strongest on each
        (0, 0): {"conv_5x5": 2.0, "skip_connect": 1.0},
        (0, 1): {"avg_pool_3x3": 0.5},
        # node 1: input 2 strongest (dil conv), input 0 second (max pool); input 1's edge is
        # dominated by `none`, which the derivation ignores (its best live op is weak)
        (1, 2): {"dil_conv_3x3": 3.0},
        (1, 0): {"max_pool_3x3": 2.5},
        (1, 1): {"none": 9.0, "conv_3x3": -1.0},
        # node 2: a three-way tie for the top two places goes to the earlier inputs
        (2, 3): {"skip_connect": 1.0},
        (2, 2): {"skip_connect": 1.0},
        (2, 1): {"skip_connect": 1.0},
        (2, 0): {"conv_3x3": 0.9},
        # node 3: the two latest inputs
        (3, 4): {"conv_3x3": 4.0},
        (3, 3): {"avg_pool_3x3": 3.0},
        (3, 0): {"conv_5x5": 2.0},
    })
    g = derive(torch.softmax(logits, -1), space)
    assert g == nas.Genotype((
        (("conv_5x5", 0), ("avg_pool_3x3", 1)),
        (("max_pool_3x3", 0), ("dil_conv_3x3", 2)),
        (("skip_connect", 1), ("skip_connect", 2)),
        (("avg_pool_3x3", 3), ("conv_3x3", 4)),
    ))


def test_derivation_uses_the_softmax_weights_not_the_raw_logits():
    # edge A: logits (3, 3, ...): strongest op has weight ~0.5; edge B: (2.5, -5, ...): ~0.9.
    # By raw logit A wins; by weight (what DARTS compares) B wins.
    space = nas.SearchSpace(n_nodes=2)
    a = torch.full((space.n_edges, space.n_ops), -5.0)
    a[space.edge_index(1, 0), :2] = 3.0
    a[space.edge_index(1, 1), 0] = 2.5
    a[space.edge_index(1, 2), 0] = 2.4
    g = derive(torch.softmax(a, -1), space)
    assert [j for _, j in g.nodes[1]] == [1, 2]


def test_architecture_change():
    space = nas.SearchSpace()
    g = space.random_genotype(np.random.default_rng(0))
    assert architecture_change(g, g) == 0.0
    nodes = [list(n) for n in g.nodes]
    op, j = nodes[2][0]
    nodes[2][0] = ("conv_3x3" if op != "conv_3x3" else "conv_5x5", j)
    assert architecture_change(g, nas.Genotype(tuple(map(tuple, nodes)))) == 1 / 8
    other = nas.Genotype(tuple(tuple(("skip_connect" if o != "skip_connect" else "conv_3x3",
                                      k) for o, k in n) for n in g.nodes))
    assert architecture_change(g, other) == 1.0


def test_bad_spaces_name_the_field():
    with pytest.raises(ValueError, match="unknown operation"):
        nas.SearchSpace(ops=("conv_9x9", "none"))
    with pytest.raises(ValueError, match="channels must be >= 1"):
        nas.SearchSpace(channels=0)
    with pytest.raises(ValueError, match=r"\(14, 7\)"):
        derive(torch.zeros(3, 7), nas.SearchSpace())
