"""Shrinking along the data flow (torch.fx): a residual network with BatchNorm loses exactly
the units nothing reads, computes what the masked network computes, and keeps a channel a
skip connection still uses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bayesstruct.pruning import apply_masks, prune, shrink_note, unit_counts
from bayesstruct.pruning.graph import shrink_graph


class Block(nn.Module):
    def __init__(self, c: int, inner: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(c, inner, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(inner)
        self.c2 = nn.Conv2d(inner, c, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(x + self.b2(self.c2(torch.relu(self.b1(self.c1(x))))))


class ResNet(nn.Module):
    """A stem, two residual blocks on one 8-channel stage, a spatial mean, a Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.block1, self.block2 = Block(8, 6), Block(8, 6)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = torch.relu(self.bn(self.stem(x)))
        return self.fc(self.block2(self.block1(x)).mean((2, 3)))


def _resnet(seed: int = 0) -> ResNet:
    torch.manual_seed(seed)
    net = ResNet()
    with torch.no_grad():  # BatchNorm statistics and affine parameters away from identity
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_()
                m.bias.normal_()
    return net.eval()


def _ones(net):
    return {n: np.ones(p.shape, dtype=bool) for n, p in net.named_parameters() if p.dim() > 1}


def _same(small, masked, shape=(5, 1, 8, 8)):
    x = torch.randn(shape)
    with torch.no_grad():
        torch.testing.assert_close(small(x), masked.eval()(x), atol=1e-5, rtol=1e-5)


def test_a_stage_channel_goes_only_when_every_branch_drops_it():
    net = _resnet()
    masks = _ones(net)
    for reader in ("block1.c1.weight", "block2.c1.weight", "fc.weight"):
        masks[reader][:, 2] = False  # stage channel 2: unread everywhere
    masks["fc.weight"][:, 3] = False  # stage channel 3: unread by the head only
    masks["block1.c2.weight"][:, 4] = False  # inner channel 4 of block 1: unread by c2
    small = prune(net, masks)
    assert shrink_note(small) == ""
    units = unit_counts(small)
    assert units["stem"] == (1, 7) and units["fc"] == (7, 10)
    assert units["block1.c1"] == (7, 5) and units["block1.c2"] == (5, 7)
    assert units["block2.c1"] == (7, 6)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in small.modules())  # folded
    _same(small, apply_masks(net, masks))


@pytest.mark.parametrize("seed", range(5))
def test_random_column_masks_shrink_to_the_same_function(seed):
    net = _resnet(seed)
    rng = np.random.default_rng(seed)
    masks = _ones(net)
    for m in masks.values():  # whole input units off, as unit-level priors decide
        dead = rng.random(m.shape[1]) < 0.4
        m[:, dead] = False
    small = prune(net, masks)
    _same(small, apply_masks(net, masks))
    before = sum(p.numel() for p in net.parameters())
    assert sum(p.numel() for p in small.parameters()) < before


def test_flattened_channels_map_onto_consecutive_columns():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.fc = nn.Linear(4 * 36, 10)

        def forward(self, x):
            return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))

    torch.manual_seed(0)
    net = Net()
    masks = _ones(net)
    masks["fc.weight"][:, 36:72] = False  # channel 1's 36 columns
    small = prune(net, masks)
    assert unit_counts(small) == {"conv": (1, 3), "fc": (108, 10)}
    _same(small, apply_masks(net, masks))


def test_what_is_not_followed_pins_its_units():
    class Cat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 3), nn.Linear(4, 3)
            self.head = nn.Linear(6, 2)

        def forward(self, x):
            return self.head(torch.cat([self.a(x), self.b(x)], dim=1))

    net = Cat()
    masks = _ones(net)
    masks["head.weight"][:, 0] = False
    small = shrink_graph(apply_masks(net, masks))
    assert unit_counts(small)["a"] == (4, 3)  # concatenated: pinned, kept


def test_an_untraceable_module_comes_back_masked_and_says_so():
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 3), nn.Linear(3, 2)

        def forward(self, x):
            h = self.a(x)
            if h.sum() > 0:  # data-dependent control flow: fx cannot trace it
                h = torch.relu(h)
            return self.b(h)

    net = Branchy()
    masks = _ones(net)
    masks["b.weight"][:, 1] = False
    small = prune(net, masks)
    assert "masked, not shrunk: torch.fx cannot trace Branchy" in shrink_note(small)
    assert small.b.weight.shape == (2, 3) and (small.b.weight[:, 1] == 0).all()


class LastStep(nn.Module):
    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.rnn, self.head = rnn, nn.Linear(rnn.hidden_size, 3)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


@pytest.mark.parametrize("make", [lambda: nn.LSTM(4, 6, batch_first=True),
                                  lambda: nn.GRU(4, 6, num_layers=2, batch_first=True),
                                  lambda: nn.RNN(4, 6, batch_first=True)],
                         ids=["lstm", "gru2", "rnn"])
def test_recurrent_hidden_units_go_with_every_gate(make):
    """Hidden unit j is unread when its recurrence columns (every layer's weight_hh, the next
    layer's weight_ih) and the head's column are all zero; it leaves with its rows in every
    gate. The network's own inputs stay (input feature 1 stays masked)."""
    torch.manual_seed(0)
    net = LastStep(make())
    masks = {n: np.ones(p.shape, dtype=bool) for n, p in net.named_parameters() if p.dim() > 1}
    for name, m in masks.items():
        if "weight_hh" in name or name == "head.weight" or "weight_ih_l1" in name:
            m[:, [0, 4]] = False
    masks["rnn.weight_ih_l0"][:, 1] = False
    masks["rnn.weight_hh_l0"][:, 2] = False  # unit 2 is still read by the head: it stays
    small = prune(net, masks)
    assert small.rnn.hidden_size == 4 and small.rnn.input_size == 4
    assert small.head.in_features == 4
    assert small.rnn.weight_hh_l0.shape[0] == net.rnn.weight_hh_l0.shape[0] // 6 * 4
    _same(small, apply_masks(net, masks), (5, 7, 4))
