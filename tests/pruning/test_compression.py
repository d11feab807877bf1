"""Applying masks yields a plain network that is smaller and computes the same function."""

from __future__ import annotations

import numpy as np
import torch

from bayesstruct import nets, pruning


def _masked_mlp():
    torch.manual_seed(0)
    net = nets.mlp([6, 5, 4, 3])
    rng = np.random.default_rng(0)
    masks = {n: rng.random(p.shape) > 0.3 for n, p in net.named_parameters()
             if n.endswith("weight")}
    masks["fc2.weight"][:, 1] = False  # hidden unit 1 of fc1 is read by nobody
    masks["fc1.weight"][3, :] = False  # hidden unit 3 of fc1 gets no input: constant relu(b)
    masks["fc2.weight"][2, :] = False  # ditto for unit 2 of fc2
    return net, masks


def test_prune_equals_masked_and_is_smaller():
    net, masks = _masked_mlp()
    masked = pruning.apply_masks(net, masks)
    small = pruning.prune(net, masks)
    x = torch.randn(50, 6)
    torch.testing.assert_close(small(x), masked(x), rtol=1e-5, atol=1e-5)
    assert small.fc1.out_features == 3 and small.fc2.in_features == 3
    # fc2 unit 2 has no input (set above) and the seeded random mask leaves column 1 of fc3
    # empty, so fc2 unit 1 is read by nobody: 2 of the 4 fc2 units survive
    assert not masks["fc3.weight"][:, 1].any()
    assert small.fc2.out_features == 2 and small.fc3.in_features == 2
    assert pruning.count_parameters(small) < pruning.count_parameters(net)
    # the original is untouched
    assert net.fc1.out_features == 5 and bool((net.fc2.weight != 0).all())


def test_count_parameters():
    net, masks = _masked_mlp()
    masked = pruning.apply_masks(net, masks)
    kept = sum(int(m.sum()) for m in masks.values())
    assert pruning.count_parameters(masked, nonzero=True, weights_only=True) == kept
    assert pruning.count_parameters(net, weights_only=True) == sum(m.size for m in masks.values())
