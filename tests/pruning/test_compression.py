"""Applying masks yields a plain network that is smaller and computes the same function."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from bayesstruct import nets, pruning
from bayesstruct.pruning.compression import SelectInputs, unit_counts


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


# -- structured pruning of conv nets, input selection, chains ------------------------------------


def _ones(net):
    return {n: np.ones(p.shape, dtype=bool) for n, p in net.named_parameters()
            if n.endswith("weight")}


def _assert_same_function(net, masks, small, x):
    masked = pruning.apply_masks(net, masks).eval()
    with torch.no_grad():
        torch.testing.assert_close(small.eval()(x), masked(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("side", [28, 8])
def test_prune_lenet5_removes_channels_and_units(side):
    torch.manual_seed(1)
    net = nets.lenet5_caffe((1, side, side))
    k = 16 if side == 28 else 4  # spatial positions per conv2 channel at fc1's input
    assert net.fc1.in_features == 50 * k and (net.conv2.padding == (0, 0)) == (side == 28)
    rng = np.random.default_rng(1)
    masks = {n: rng.random(p.shape) > 0.2 for n, p in net.named_parameters()
             if n.endswith("weight")}
    with torch.no_grad():
        net.conv1.bias[[2, 5]] = torch.tensor([0.3, -0.2])
        net.conv2.bias[[3, 4]] = torch.tensor([0.5, -0.1])
        net.fc1.bias[[0, 1]] = torch.tensor([0.2, -0.3])
    masks["conv1.weight"][[2, 5]] = False  # no input: relu(0.3) (folded if conv2 unpadded), 0
    masks["conv2.weight"][:, [7, 11]] = False  # conv1 channels 7, 11 read by nobody
    masks["conv2.weight"][[3, 4]] = False  # no input: relu(0.5) folded into fc1, relu(-0.1) = 0
    for j in (10, 20):  # conv2 channels 10, 20 read by nobody (their fc1 column blocks)
        masks["fc1.weight"][:, j * k:(j + 1) * k] = False
    masks["fc1.weight"][[0, 1]] = False  # no input: relu(0.2) folded into fc2, relu(-0.3) = 0
    masks["fc2.weight"][:, [2, 3, 4]] = False  # fc1 units 2, 3, 4 read by nobody
    small = pruning.prune(net, masks)
    _assert_same_function(net, masks, small, torch.randn(8, 1, side, side))
    c1 = 16 if side == 28 else 17  # a padded conv2 sees conv1 channel 2 as non-constant
    c2, f1 = 46, 495
    assert unit_counts(small) == {"conv1": (1, c1), "conv2": (c1, c2),
                                          "fc1": (c2 * k, f1), "fc2": (f1, 10)}
    assert small.conv1.out_channels == 20 - (4 if side == 28 else 3)
    assert small.fc1.in_features == (50 - 4) * k
    expected = (c1 * 25 + c1) + (c2 * c1 * 25 + c2) + (f1 * c2 * k + f1) + (10 * f1 + 10)
    assert pruning.count_parameters(small) == expected < pruning.count_parameters(net)
    assert not any(isinstance(m, SelectInputs) for m in small.modules())


def test_prune_mlp_selects_inputs_and_follows_chains():
    torch.manual_seed(2)
    net = nets.mlp([12, 8, 6, 4], activation="tanh")
    masks = _ones(net)
    masks["fc1.weight"][:, [3, 7, 8]] = False  # input pixels 3, 7, 8 are never read
    masks["fc1.weight"][[0, 1]] = False  # no input: tanh(b) folded into fc2
    masks["fc2.weight"][5, 2:] = False  # ... which leaves fc2 unit 5 without input: fold again
    masks["fc3.weight"][:, 4] = False  # fc2 unit 4 read by nobody ...
    masks["fc2.weight"][:4, 6] = False  # ... and fc1 unit 6 only by fc2 unit 4 (and 5)
    masks["fc2.weight"][5, 6] = False
    small = pruning.prune(net, masks)
    _assert_same_function(net, masks, small, torch.randn(20, 3, 4))
    assert list(small._modules) == ["flatten", "select_inputs", "fc1", "act1", "fc2", "act2",
                                    "fc3"]
    select = small.select_inputs
    assert isinstance(select, SelectInputs)
    assert select.indices.tolist() == [0, 1, 2, 4, 5, 6, 9, 10, 11]
    assert "select_inputs.indices" in small.state_dict()
    assert unit_counts(small) == {"fc1": (9, 5), "fc2": (5, 4), "fc3": (4, 4)}
    assert pruning.count_parameters(small) == 9 * 5 + 5 + 5 * 4 + 4 + 4 * 4 + 4
    # pruning again finds nothing more and keeps the single SelectInputs
    again = pruning.prune(small, {})
    assert unit_counts(again) == unit_counts(small)
    assert sum(isinstance(m, SelectInputs) for m in again.modules()) == 1


def test_prune_leaves_the_original_untouched():
    torch.manual_seed(3)
    net = nets.lenet5_caffe((1, 28, 28))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    masks = _ones(net)
    masks["conv1.weight"][[0, 1]] = False
    masks["fc1.weight"][:, :32] = False
    small = pruning.prune(net, masks)
    assert small is not net and small.conv1.out_channels == 18
    assert list(net._modules) == list(small._modules)
    assert unit_counts(net) == {"conv1": (1, 20), "conv2": (20, 50), "fc1": (800, 500),
                                        "fc2": (500, 10)}
    after = net.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        torch.testing.assert_close(after[key], value, rtol=0, atol=0)


def _pool_net():
    """Unpadded avg pool + replicate padding (fold), zero-padded avg pool (no), bias-free fc2."""
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(3, 6, 3, padding=1)),
        ("act1", nn.Sigmoid()),
        ("pool1", nn.AvgPool2d(2)),
        ("conv2", nn.Conv2d(6, 8, 3, padding=1, padding_mode="replicate")),
        ("act2", nn.Tanh()),
        ("pool2", nn.AvgPool2d(2, padding=1)),
        ("conv3", nn.Conv2d(8, 8, 1)),
        ("act3", nn.ReLU()),
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(8 * 9, 12)),
        ("act4", nn.GELU()),
        ("drop", nn.Dropout(0.5)),
        ("fc2", nn.Linear(12, 4, bias=False)),
    ]))


def test_prune_folds_only_constants_that_are_constant():
    torch.manual_seed(4)
    net = _pool_net()
    masks = _ones(net)
    with torch.no_grad():
        net.conv2.bias[[2, 3]] = torch.tensor([0.4, 0.0])
        net.conv3.bias[0] = 0.7
        net.fc1.bias[[4, 5]] = torch.tensor([0.5, 0.0])
    masks["conv1.weight"][:, 2] = False  # input channel 2 is never read
    masks["conv1.weight"][1] = False  # sigmoid(b) is constant through the unpadded avg pool and
    # conv2's replicate padding: folded into conv2's bias
    masks["conv2.weight"][[2, 3]] = False  # tanh(0.4) meets the zero-padded avg pool: kept;
    # tanh(0) = 0 stays 0 under zero padding: dropped
    masks["conv3.weight"][0] = False  # relu(0.7) folded into fc1 across the flatten
    masks["fc1.weight"][[4, 5]] = False  # gelu(0.5): fc2 has no bias to fold into, kept;
    # gelu(0) = 0: dropped
    small = pruning.prune(net, masks)
    _assert_same_function(net, masks, small, torch.randn(6, 3, 8, 8))
    assert unit_counts(small) == {"conv1": (2, 5), "conv2": (5, 7), "conv3": (7, 7),
                                  "fc1": (7 * 9, 11), "fc2": (11, 4)}
    assert small.select_inputs.dim == -3 and small.select_inputs.indices.tolist() == [0, 1]


_NETS = {
    "mlp": (lambda: nets.mlp([20, 16, 12, 5], activation="elu"), (20,)),
    "lenet300": (lambda: nets.lenet_300_100(64, 10), (1, 8, 8)),
    "lenet5_28": (lambda: nets.lenet5_caffe((1, 28, 28)), (1, 28, 28)),
    "lenet5_8": (lambda: nets.lenet5_caffe((1, 8, 8)), (1, 8, 8)),
    "pools": (_pool_net, (3, 8, 8)),
}


def _unit_structured_masks(net, rng, p_unit=0.2, p_weight=0.3):
    """Random weights, whole rows / filters (no input), whole input units (unread) off."""
    masks, n_prev = {}, None
    for name, m in net.named_modules():
        if not isinstance(m, nn.Linear | nn.Conv2d):
            continue
        mask = rng.random(m.weight.shape) > p_weight
        n_out = m.weight.shape[0]
        n_in = n_prev if n_prev is not None else m.weight.shape[1]
        mask[rng.random(n_out) < p_unit] = False
        blocks = mask.reshape(n_out, n_in, -1)
        blocks[:, rng.random(n_in) < p_unit] = False
        masks[f"{name}.weight"] = mask
        with torch.no_grad():
            if m.bias is not None:
                m.bias.copy_(0.5 * torch.randn(n_out))
        n_prev = n_out
    return masks


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("kind", list(_NETS))
def test_prune_random_unit_masks_computes_the_masked_function(kind, seed):
    build, shape = _NETS[kind]
    torch.manual_seed(seed)
    net = build()
    masks = _unit_structured_masks(net, np.random.default_rng(seed))
    small = pruning.prune(net, masks)
    _assert_same_function(net, masks, small, torch.randn(6, *shape))
    assert pruning.count_parameters(small) < pruning.count_parameters(net)
    last = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
    assert list(small.modules())[-1].out_features == last.out_features
    counts, dense = unit_counts(small), unit_counts(net)
    assert all(counts[k][0] <= dense[k][0] and counts[k][1] <= dense[k][1] for k in dense)
    assert unit_counts(pruning.prune(small, {})) == counts


@pytest.mark.parametrize("cell,pairs", [("rnn", False), ("gru", False), ("rnn", True)])
def test_recurrent_nets_lose_their_unread_hidden_units(cell, pairs):
    """Hidden units whose outgoing weights (U's column, fc's column(s)) are all masked go, and
    the smaller net computes what the masked one computes."""
    torch.manual_seed(0)
    shape = (2, 5, 4) if pairs else (1, 6, 3)
    net = nets.build(cell, shape, 4, [6], pairs=pairs)
    masks = {k: np.ones(tuple(p.shape), bool) for k, p in net.named_parameters()
             if k.endswith("weight")}
    masks["rnn.hh.weight"][:, [1, 4]] = False
    masks["fc.weight"][:, [1, 4]] = False
    if pairs:
        masks["fc.weight"][:, [7, 10]] = False
    masks["fc.weight"][:, 2] = False  # read by U only: stays
    x = torch.randn(5, *shape)
    if pairs:
        x[..., -1] = (torch.rand(5, 2, 5) < 0.7).float()
    small = pruning.prune(net, masks)
    assert small.rnn.hidden_size == 4 and small.fc.in_features == (8 if pairs else 4)
    gates = 3 if cell == "gru" else 1
    assert small.rnn.hh.weight.shape == (gates * 4, 4)
    torch.testing.assert_close(small(x), pruning.apply_masks(net, masks)(x))
    assert pruning.count_parameters(small) < pruning.count_parameters(net)
