"""The plain architectures: shapes, names, parameter counts."""

from __future__ import annotations

import pytest
import torch

from bayesstruct import nets


def test_lenet300_parameter_count():
    net = nets.lenet_300_100()
    assert sum(p.numel() for p in net.parameters()) == 784 * 300 + 300 + 300 * 100 + 100 + 1010
    assert [n for n, _ in net.named_parameters()][0] == "fc1.weight"


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8)])
def test_lenet5_forward(shape):
    net = nets.lenet5_caffe(shape, 10)
    assert net(torch.randn(3, *shape)).shape == (3, 10)
    if shape == (1, 28, 28):  # the Caffe variant: 20-50 conv, 800 -> 500 -> 10
        assert net.fc1.in_features == 800 and net.conv2.out_channels == 50


def test_build_and_errors():
    assert nets.build("mlp", (1, 8, 8), 10, [7])(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert nets.build("logreg", (13,), 3)(torch.randn(2, 13)).shape == (2, 3)
    with pytest.raises(ValueError, match="logreg"):
        nets.build("resnet", (3,), 2)
    with pytest.raises(ValueError, match="activation"):
        nets.mlp([3, 2], "swish")
