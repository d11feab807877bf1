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
        nets.build("vgg", (3,), 2)
    with pytest.raises(ValueError, match=r"net 'resnet' reads images \(C, H, W\)"):
        nets.build("resnet", (3,), 2)
    with pytest.raises(ValueError, match="net 'lstm' reads sequences"):
        nets.build("lstm", (5,), 2)
    with pytest.raises(ValueError, match="activation"):
        nets.mlp([3, 2], "swish")


@pytest.mark.parametrize("ours,ref", [
    (nets.ElmanRNN, torch.nn.RNN),  # tanh(x W^T + h U^T + b): bias_hh = 0
    (nets.GRU, torch.nn.GRU),
])
def test_recurrent_layers_equal_torch(ours, ref):
    torch.manual_seed(0)
    layer, reference = ours(5, 7), ref(5, 7, batch_first=True)
    with torch.no_grad():
        reference.weight_ih_l0.copy_(layer.ih.weight)
        reference.weight_hh_l0.copy_(layer.hh.weight)
        reference.bias_ih_l0.copy_(layer.ih.bias)
        reference.bias_hh_l0.copy_(layer.hh.bias if layer.hh.bias is not None else 0.0)
    x = torch.randn(4, 9, 5)
    torch.testing.assert_close(layer(x), reference(x)[1][0])


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_masked_steps_carry_the_state(cell):
    torch.manual_seed(0)
    layer = nets.GRU(3, 4) if cell == "gru" else nets.ElmanRNN(3, 4)
    x = torch.randn(2, 6, 3)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    h = layer(x, mask)
    torch.testing.assert_close(h[1], layer(x[1:, :3])[0])
    torch.testing.assert_close(h[0], layer(x[:1])[0])


def test_sequence_classifier_reads_images_row_by_row():
    net = nets.build("rnn", (1, 28, 28), 10, [16])
    assert isinstance(net, nets.SequenceClassifier) and net.steps == 28
    assert net.rnn.ih.in_features == 28 and net(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    names = [n for n, _ in net.named_parameters()]
    assert names == ["rnn.ih.weight", "rnn.ih.bias", "rnn.hh.weight", "fc.weight", "fc.bias"]
    assert nets.build("gru", (1, 8, 8), 10).rnn.hh.weight.shape == (3 * 64, 64)
    with pytest.raises(ValueError, match="one recurrent layer"):
        nets.build("rnn", (1, 8, 8), 10, [8, 8])
    with pytest.raises(ValueError, match="no time axis"):
        nets.build("rnn", (13,), 3)
