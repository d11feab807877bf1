"""The mixed operation (M7): a one-hot gamma is the chosen operation, any gamma the weighted
sum, and the supernet under a one-hot structure is the genotype's single path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bayesstruct import nas
from bayesstruct.nas.networks import SuperNet
from bayesstruct.nas.ops import DEFAULT_OPS, OPS, MixedOp, make_op

ALL_OPS = tuple(OPS)


@pytest.fixture
def x():
    return torch.randn(4, 3, 6, 6)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("chosen", ALL_OPS)
def test_one_hot_gamma_equals_the_chosen_op(chosen, train, x):
    op = MixedOp(3, ALL_OPS)
    op.train(train)
    i = ALL_OPS.index(chosen)
    gamma = torch.zeros(len(ALL_OPS))
    gamma[i] = 1.0
    mixed = op(x, gamma)
    alone = op.ops[i](x)
    assert mixed.shape == x.shape
    assert torch.equal(mixed, alone)
    assert torch.equal(op(x, i), alone)  # the single-path call


def test_mixed_op_is_the_weighted_sum(x):
    op = MixedOp(3, ALL_OPS).eval()
    gamma = torch.softmax(torch.randn(len(ALL_OPS)), 0)
    expected = sum(g * o(x) for g, o in zip(gamma, op.ops, strict=True))
    torch.testing.assert_close(op(x, gamma), expected, rtol=1e-6, atol=1e-6)


def test_zero_op_and_shapes(x):
    op = make_op("none", 3)
    assert torch.equal(op(x), torch.zeros_like(x))
    for name in ALL_OPS:
        assert make_op(name, 3, search=True)(x).shape == x.shape


def test_bad_gamma_and_names_are_refused(x):
    with pytest.raises(ValueError, match="7 operations"):
        MixedOp(3, DEFAULT_OPS)(x, torch.ones(3) / 3)
    with pytest.raises(ValueError, match="allowed: conv_3x3"):
        make_op("conv_7x7", 3)


def _one_hot_structure(space: nas.SearchSpace, genotype: nas.Genotype) -> torch.Tensor:
    """gamma: the genotype's op on its edges, ``none`` on every other edge."""
    gamma = torch.zeros(space.n_edges, space.n_ops)
    gamma[:, space.ops.index("none")] = 1.0
    for i, node in enumerate(genotype.nodes):
        for op, j in node:
            e = space.edge_index(i, j)
            gamma[e] = 0.0
            gamma[e, space.ops.index(op)] = 1.0
    return gamma


@pytest.mark.parametrize("n_cells", [1, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_supernet_under_a_one_hot_structure_is_the_single_path(seed, n_cells):
    space = nas.SearchSpace(channels=4, n_cells=n_cells, stem_stride=1)
    torch.manual_seed(seed)
    net = SuperNet(space, in_channels=1, n_classes=10).eval()
    g = space.random_genotype(np.random.default_rng(seed))
    x = torch.randn(5, 1, 8, 8)
    torch.testing.assert_close(net(x, _one_hot_structure(space, g)), net(x, g),
                               rtol=1e-6, atol=1e-6)
    with net.using(g):
        torch.testing.assert_close(net(x), net(x, g), rtol=0, atol=0)
    with pytest.raises(ValueError, match="needs an architecture"):
        net(x)
