"""The layer-family contract, looped over every covered type: the functional forward is the
layer's own forward, roles and unit groups are the documented ones, the local
reparameterisation matches sampling whole weight tensors (z-tests), and the registry refuses
overlaps."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import nn
from torch.func import functional_call

from bayesstruct import layers, nets
from bayesstruct.guides.meanfield import LRTLayer, local_reparam_obstacle
from bayesstruct.layers import FAMILIES, LayerFamily, family_of
from bayesstruct.priors import param_sites
from tests.helpers import seed


@dataclass
class Example:
    make: Callable[[], nn.Module]
    input: Callable[[], torch.Tensor]
    units: tuple[int, int] | None
    lrt: bool  # the local reparameterisation is exact for it
    roles: dict[str, str]  # parameter -> role
    groups: dict[str, int | None]  # weight -> group dim


def _floats(*shape):
    return lambda: torch.randn(shape)


def _tokens(n, *shape):
    return lambda: torch.randint(0, n, shape)


W_B = {"weight": "weight", "bias": "bias"}
RNN_ROLES = {"weight_ih_l0": "weight", "weight_hh_l0": "weight", "bias_ih_l0": "bias",
             "bias_hh_l0": "bias"}
RNN_GROUPS = {"weight_ih_l0": 1, "weight_hh_l0": 1}
NORM = {"weight": "point", "bias": "point"}

#: one example layer per covered type
EXAMPLES: dict[type, Example] = {
    nn.Linear: Example(lambda: nn.Linear(6, 3), _floats(4, 6), (6, 3), True, W_B,
                       {"weight": 1}),
    nn.Conv1d: Example(lambda: nn.Conv1d(2, 4, 3, padding=2, dilation=2), _floats(2, 2, 9),
                       (2, 4), True, W_B, {"weight": 1}),
    nn.Conv2d: Example(lambda: nn.Conv2d(2, 4, 3, stride=2, padding=1, groups=2),
                       _floats(2, 2, 7, 7), (2, 4), True, W_B, {"weight": None}),
    nn.Conv3d: Example(lambda: nn.Conv3d(1, 2, 2), _floats(2, 1, 4, 4, 4), (1, 2), True, W_B,
                       {"weight": 1}),
    nn.ConvTranspose1d: Example(lambda: nn.ConvTranspose1d(2, 3, 3, stride=2),
                                _floats(2, 2, 5), (2, 3), True, W_B, {"weight": 0}),
    nn.ConvTranspose2d: Example(lambda: nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1),
                                _floats(2, 2, 4, 4), (2, 3), True, W_B, {"weight": 0}),
    nn.ConvTranspose3d: Example(lambda: nn.ConvTranspose3d(1, 2, 2), _floats(1, 1, 3, 3, 3),
                                (1, 2), True, W_B, {"weight": 0}),
    nn.Embedding: Example(lambda: nn.Embedding(7, 4, padding_idx=0), _tokens(7, 3, 5), (7, 4),
                          True, {"weight": "weight"}, {"weight": 1}),
    nets.ElmanRNN: Example(lambda: nets.ElmanRNN(3, 5), _floats(2, 4, 3), None, False, {}, {}),
    nn.RNN: Example(lambda: nn.RNN(3, 5, batch_first=True), _floats(2, 4, 3), (3, 5), False,
                    RNN_ROLES, RNN_GROUPS),
    nn.LSTM: Example(lambda: nn.LSTM(3, 5, num_layers=2, bidirectional=True), _floats(4, 2, 3),
                     (3, 5), False, RNN_ROLES | {"weight_ih_l1_reverse": "weight"},
                     RNN_GROUPS),
    nn.GRU: Example(lambda: nn.GRU(3, 5), _floats(4, 2, 3), (3, 5), False, RNN_ROLES,
                    RNN_GROUPS),
    nn.MultiheadAttention: Example(
        lambda: nn.MultiheadAttention(8, 2, batch_first=True), _floats(2, 5, 8), (8, 8), False,
        {"in_proj_weight": "weight", "in_proj_bias": "bias"}, {"in_proj_weight": 1}),
    nn.BatchNorm1d: Example(lambda: nn.BatchNorm1d(4), _floats(6, 4), None, False, NORM, {}),
    nn.BatchNorm2d: Example(lambda: nn.BatchNorm2d(2), _floats(3, 2, 4, 4), None, False, NORM,
                            {}),
    nn.BatchNorm3d: Example(lambda: nn.BatchNorm3d(2), _floats(3, 2, 2, 2, 2), None, False,
                            NORM, {}),
    nn.SyncBatchNorm: Example(lambda: nn.SyncBatchNorm(2), _floats(3, 2, 4), None, False, NORM,
                              {}),
    nn.InstanceNorm1d: Example(lambda: nn.InstanceNorm1d(2, affine=True), _floats(3, 2, 5),
                               None, False, NORM, {}),
    nn.InstanceNorm2d: Example(lambda: nn.InstanceNorm2d(2, affine=True), _floats(3, 2, 4, 4),
                               None, False, NORM, {}),
    nn.InstanceNorm3d: Example(lambda: nn.InstanceNorm3d(2, affine=True),
                               _floats(3, 2, 3, 3, 3), None, False, NORM, {}),
    nn.LayerNorm: Example(lambda: nn.LayerNorm(6), _floats(3, 6), None, False, NORM, {}),
    nn.GroupNorm: Example(lambda: nn.GroupNorm(2, 4), _floats(3, 4, 5), None, False, NORM, {}),
    nn.RMSNorm: Example(lambda: nn.RMSNorm(6), _floats(3, 6), None, False,
                        {"weight": "point"}, {}),
}

SINGLE_WEIGHT = [t for t, e in EXAMPLES.items() if set(e.roles) <= {"weight", "bias"}
                 and e.roles and t is not nn.SyncBatchNorm]  # SyncBatchNorm: distributed only


def test_every_covered_type_has_an_example():
    covered = {t for fam in FAMILIES for t in fam.types}
    assert covered == set(EXAMPLES)
    assert [f.__name__ for f in FAMILIES] == ["Linear", "Conv", "ConvTranspose", "Embedding",
                                              "Recurrent", "TorchRecurrent", "Attention",
                                              "Norm"]


@pytest.mark.parametrize("kind", list(EXAMPLES), ids=lambda t: t.__name__)
def test_units_roles_and_groups(kind):
    ex = EXAMPLES[kind]
    layer = ex.make()
    family = family_of(layer)
    assert family is not None and isinstance(layer, family.types)
    assert family.units(layer) == ex.units
    assert (family.local_reparam_obstacle(layer) is None) == ex.lrt
    sites = {s.name: s for s in param_sites(layer)}
    for name, role in ex.roles.items():
        assert sites[name].role == role, name
    for name, dim in ex.groups.items():
        assert sites[name].group_dim == dim, name
        if dim is None:
            assert "groups=2" in sites[name].no_groups


@pytest.mark.parametrize("kind", SINGLE_WEIGHT, ids=lambda t: t.__name__)
def test_the_functional_forward_is_the_layers_forward(kind):
    ex = EXAMPLES[kind]
    torch.manual_seed(0)
    layer, x = ex.make(), ex.input()
    family = family_of(layer)
    w = torch.randn_like(layer.weight)
    b = None if getattr(layer, "bias", None) is None else torch.randn_like(layer.bias)
    with torch.no_grad():
        layer.weight.copy_(w)
        if b is not None:
            layer.bias.copy_(b)
        expected = layer(x)
    torch.testing.assert_close(family.forward(layer, w, b, x), expected)


@pytest.mark.parametrize("kind", [t for t in EXAMPLES if t not in SINGLE_WEIGHT],
                         ids=lambda t: t.__name__)
def test_layers_with_many_parameters_run_on_replaced_ones(kind):
    """What the weight-draw path does: ``functional_call`` with every parameter replaced."""
    ex = EXAMPLES[kind]
    torch.manual_seed(0)
    layer, x = ex.make(), ex.input()
    new = {k: torch.randn_like(v) for k, v in layer.named_parameters()}
    got = functional_call(layer, new, (x,) if kind is not nn.MultiheadAttention else (x, x, x))
    with torch.no_grad():
        for k, v in layer.named_parameters():
            v.copy_(new[k])
    want = layer(x) if kind is not nn.MultiheadAttention else layer(x, x, x)
    got, want = (got[0], want[0]) if isinstance(want, tuple) else (got, want)
    torch.testing.assert_close(got, want)


# -- the local reparameterisation against sampling whole weight tensors ------------------------
S = 4000


def _moments(layer, x, family, zeta=None):
    """Means and variances of the layer's output: S local-reparameterisation draws, and S
    forwards with independently sampled whole weight (and bias) tensors."""
    g = torch.Generator().manual_seed(seed(3))
    m = torch.randn(layer.weight.shape, generator=g) * 0.5
    s = torch.rand(layer.weight.shape, generator=g) * 0.4 + 0.05
    has_b = getattr(layer, "bias", None) is not None
    mb = torch.randn(layer.bias.shape, generator=g) * 0.3 if has_b else None
    sb = torch.rand(layer.bias.shape, generator=g) * 0.2 + 0.05 if has_b else None
    state = {"loc": {"w": m, **({"b": mb} if has_b else {})},
             "var": {"w": s * s, **({"b": sb * sb} if has_b else {})}}
    if zeta is not None:
        state["input_scale"] = {"w": zeta.expand(S * x.shape[0], -1)}
    lrt_layer = LRTLayer(state, "w", "b" if has_b else None, layer)
    big = x.expand(S, *x.shape).reshape(S * x.shape[0], *x.shape[1:])
    lrt = lrt_layer(big).reshape(S, x.shape[0], -1)
    full = []
    for _ in range(S):
        w = m + s * torch.randn(m.shape)
        if zeta is not None:
            w = w * zeta.view(1, -1)
        b = mb + sb * torch.randn(mb.shape) if has_b else None
        full.append(family.forward(layer, w, b, x).reshape(x.shape[0], -1))
    full = torch.stack(full)
    exact_mean = family.forward(layer, m if zeta is None else m * zeta.view(1, -1), mb, x)
    exact_var = family.variance(layer, s * s if zeta is None else s * s * zeta.view(1, -1) ** 2,
                                None if sb is None else sb * sb, x)
    return lrt, full, exact_mean.reshape(x.shape[0], -1), exact_var.reshape(x.shape[0], -1)


def _check(lrt, full, exact_mean, exact_var):
    """5 SE bounds: a mean's ``sqrt(var / n)``, a Gaussian sample variance's
    ``var sqrt(2 / (n - 1))``; outputs with zero variance (a padding token) are exact."""
    n = lrt.shape[0]
    live = exact_var > 1e-12
    for draws in (lrt, full):
        mean, var = draws.mean(0), draws.var(0)
        z_mean = (mean - exact_mean)[live] / torch.sqrt(exact_var[live] / n)
        z_var = (var - exact_var)[live] / (exact_var[live] * math.sqrt(2 / (n - 1)))
        assert z_mean.abs().max() < 5 and z_var.abs().max() < 5
        torch.testing.assert_close(mean[~live], exact_mean[~live])


LRT_TYPES = [t for t, e in EXAMPLES.items() if e.lrt]


@pytest.mark.stochastic
@pytest.mark.parametrize("kind", LRT_TYPES, ids=lambda t: t.__name__)
def test_local_reparameterisation_matches_sampled_weights(kind):
    """4000 draws each way: the local reparameterisation's output and a forward with whole
    sampled weight tensors both have the family's closed-form mean and variance."""
    torch.manual_seed(seed(4))
    ex = EXAMPLES[kind]
    layer, x = ex.make(), ex.input()
    family = family_of(layer)
    with torch.no_grad():
        _check(*_moments(layer, x[:1], family))


@pytest.mark.stochastic
def test_embedding_unit_scales_multiply_its_output():
    """``w = z * w~`` per embedding dimension: the table's unit scales act on the output."""
    torch.manual_seed(seed(5))
    layer = nn.Embedding(5, 3)
    x = torch.tensor([[1, 4]])
    zeta = torch.tensor([[0.5, 2.0, 1.5]])
    with torch.no_grad():
        _check(*_moments(layer, x, layers.Embedding, zeta))


def test_mean_only_mode_is_deterministic():
    layer = nn.Linear(4, 3)
    m, s, mb = torch.randn(3, 4), torch.rand(3, 4), torch.randn(3)
    state = {"loc": {"w": m, "b": mb}, "var": {"w": s * s, "b": s[:, 0]}, "mean_only": True}
    x = torch.randn(5, 4)
    torch.testing.assert_close(LRTLayer(state, "w", "b", layer)(x), x @ m.T + mb)


def test_conv_padding_modes_are_respected_and_refuse_the_local_trick():
    conv = nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect")
    x = torch.randn(1, 1, 5, 5)
    torch.testing.assert_close(layers.Conv.forward(conv, conv.weight, conv.bias, x), conv(x))
    assert "padding_mode" in layers.Conv.local_reparam_obstacle(conv)
    assert "padding_mode" in local_reparam_obstacle(nn.Sequential(conv))


def test_point_estimated_layers_run_inside_the_local_reparameterisation():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(),
                        nn.Linear(8, 3))
    prelu = nn.Sequential(nn.PReLU(), nn.Linear(2, 2))
    assert "no layer family" in local_reparam_obstacle(prelu)
    assert local_reparam_obstacle(prelu, {"0.weight"}) is None
    assert local_reparam_obstacle(net, {"1.weight", "1.bias"}) is None
    assert "Bayesian gain" in local_reparam_obstacle(net, {"1.bias"})


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
