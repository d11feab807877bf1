"""The layer-family contract, looped over every registered family: the functional forward is
the layer's own forward, the units are the layer's, and the registry refuses overlaps."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bayesstruct import layers, nets
from bayesstruct.guides.meanfield import local_reparam_obstacle
from bayesstruct.layers import FAMILIES, LayerFamily, family_of

#: one example layer per covered type, its input, its units (inputs, outputs) and whether the
#: local reparameterisation is exact for it
EXAMPLES = {
    nn.Linear: (lambda: nn.Linear(6, 3), (4, 6), (6, 3), True),
    nn.Conv1d: (lambda: nn.Conv1d(2, 4, 3, padding=1), (2, 2, 9), (2, 4), False),
    nn.Conv2d: (lambda: nn.Conv2d(2, 4, 3, stride=2, padding=1, dilation=1, groups=2),
                (2, 2, 7, 7), (2, 4), True),
    nn.Conv3d: (lambda: nn.Conv3d(1, 2, 2), (2, 1, 4, 4, 4), (1, 2), False),
    nets.ElmanRNN: (lambda: nets.ElmanRNN(3, 5), (2, 4, 3), None, False),
}


def test_every_covered_type_has_an_example():
    covered = {t for fam in FAMILIES for t in fam.types}
    assert covered == set(EXAMPLES)
    assert [f.__name__ for f in FAMILIES] == ["Linear", "Conv", "Recurrent"]


@pytest.mark.parametrize("kind", list(EXAMPLES), ids=lambda t: t.__name__)
def test_the_functional_forward_is_the_layers_forward(kind):
    make, shape, units, lrt = EXAMPLES[kind]
    torch.manual_seed(0)
    layer, x = make(), torch.randn(shape)
    family = family_of(layer)
    assert family is not None and isinstance(layer, family.types)
    assert family.units(layer) == units
    assert (family.local_reparam_obstacle(layer) is None) == lrt
    if kind is nets.ElmanRNN:  # its weights sit in its Linear children
        with pytest.raises(NotImplementedError):
            family.forward(layer, None, None, x)
        return
    w, b = torch.randn_like(layer.weight), torch.randn_like(layer.bias)
    with torch.no_grad():
        layer.weight.copy_(w)
        layer.bias.copy_(b)
        expected = layer(x)
    torch.testing.assert_close(family.forward(layer, w, b, x), expected)


def test_conv_padding_modes_are_respected_and_refuse_the_local_trick():
    conv = nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect")
    x = torch.randn(1, 1, 5, 5)
    torch.testing.assert_close(layers.Conv.forward(conv, conv.weight, conv.bias, x), conv(x))
    assert "padding_mode" in layers.Conv.local_reparam_obstacle(conv)
    assert "padding_mode" in local_reparam_obstacle(nn.Sequential(conv))


def test_linear_broadcasts_batched_weights():
    """``(..., out, in)`` weights (enumerated IBP masks) against ``x[..., in]``."""
    layer = nn.Linear(4, 3)
    w, b, x = torch.randn(2, 1, 3, 4), torch.randn(3), torch.randn(5, 4)
    out = layers.Linear.forward(layer, w, b, x)
    assert out.shape == (2, 5, 3)
    torch.testing.assert_close(out[1], x @ w[1, 0].T + b)


def test_modules_without_a_family_are_none():
    assert family_of(nn.ReLU()) is None and family_of(nn.Sequential()) is None


def test_covering_a_type_twice_is_refused():
    with pytest.raises(TypeError, match="already covered by Linear"):
        class Again(LayerFamily, types=(nn.Linear,)):
            pass
    assert family_of(nn.Linear(1, 1)) is layers.Linear


def test_a_new_family_is_one_registration(monkeypatch):
    """What docs/contributing.md shows: a subclass with its types registers itself; the
    registry finds it for its layers."""
    monkeypatch.setattr(layers.base, "FAMILIES", list(FAMILIES))

    class Bilinear(LayerFamily, types=(nn.Bilinear,)):
        @staticmethod
        def units(layer):
            return layer.in1_features + layer.in2_features, layer.out_features

    assert layers.base.family_of(nn.Bilinear(2, 3, 4)) is Bilinear
    assert Bilinear.units(nn.Bilinear(2, 3, 4)) == (5, 4)
    monkeypatch.undo()
    assert family_of(nn.Bilinear(2, 3, 4)) is None  # the real registry is untouched
