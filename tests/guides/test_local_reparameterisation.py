"""The LRT layers against sampling whole weight matrices (statistical tests)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bayesstruct.guides.meanfield import LRTLayer, lrt_twin
from tests.helpers import seed

S = 40_000


def _z(a, b, sa, sb, n):
    """z-scores of the difference of two sample means."""
    return (a - b) / torch.sqrt((sa + sb) / n)


def _params(shape_w, shape_b, seed_=0):
    g = torch.Generator().manual_seed(seed_)
    m = torch.randn(shape_w, generator=g) * 0.5
    s = torch.rand(shape_w, generator=g) * 0.4 + 0.05
    mb = torch.randn(shape_b, generator=g) * 0.3
    sb = torch.rand(shape_b, generator=g) * 0.2 + 0.05
    return m, s, mb, sb


def _check(lrt_out, full_out, exact_mean, exact_var):
    n = lrt_out.shape[0]
    m1, v1 = lrt_out.mean(0), lrt_out.var(0)
    m2, v2 = full_out.mean(0), full_out.var(0)
    # means: both agree with the closed form and with each other
    assert _z(m1, exact_mean, exact_var, 0, n).abs().max() < 5
    assert _z(m1, m2, v1, v2, n).abs().max() < 5
    # variances: the sample variance of a Gaussian has sd var * sqrt(2 / (n - 1))
    sd = exact_var * math.sqrt(2 / (n - 1))
    assert ((v1 - exact_var) / sd).abs().max() < 5
    assert ((v2 - exact_var) / sd).abs().max() < 5


@pytest.mark.stochastic
def test_linear_lrt_matches_sampled_weights():
    """40000 draws each way (bound: 5 SE for each output's mean, ``sqrt(var / n)``, and
    variance, ``var sqrt(2 / (n - 1))`` of a Gaussian)."""
    torch.manual_seed(seed(0))
    m, s, mb, sb = _params((3, 6), (3,), seed(0))
    x = torch.randn(2, 6)
    state = {"loc": {"w": m, "b": mb}, "var": {"w": s * s, "b": sb * sb}}
    layer = LRTLayer(state, "w", "b", torch.nn.Linear(6, 3))
    lrt = layer(x.expand(S, 2, 6).reshape(S * 2, 6)).reshape(S, 2, 3)
    w = m + s * torch.randn(S, 3, 6)
    b = mb + sb * torch.randn(S, 3)
    full = torch.einsum("ni,sji->snj", x, w) + b[:, None, :]
    exact_mean = F.linear(x, m, mb)
    exact_var = F.linear(x * x, s * s, sb * sb)
    _check(lrt, full, exact_mean, exact_var)


@pytest.mark.stochastic
def test_conv_lrt_matches_sampled_weights():
    """8000 draws each way (bound: 5 SE as above)."""
    torch.manual_seed(seed(1))
    m, s, mb, sb = _params((2, 1, 3, 3), (2,), seed(0))
    x = torch.randn(1, 1, 5, 5)
    conv = torch.nn.Conv2d(1, 2, 3, padding=1)
    state = {"loc": {"w": m, "b": mb}, "var": {"w": s * s, "b": sb * sb}}
    layer = LRTLayer(state, "w", "b", conv)
    n = 8000
    lrt = layer(x.expand(n, 1, 5, 5).contiguous())
    w = m + s * torch.randn(n, 2, 1, 3, 3)
    b = mb + sb * torch.randn(n, 2)
    # grouped conv = one independent weight sample per draw
    full = F.conv2d(x.expand(1, n, 5, 5).contiguous(), w.reshape(n * 2, 1, 3, 3),
                    b.reshape(-1), padding=1, groups=n).reshape(n, 2, 5, 5)
    exact_mean = F.conv2d(x, m, mb, padding=1)[0]
    exact_var = F.conv2d(x * x, s * s, sb * sb, padding=1)[0]
    _check(lrt, full, exact_mean, exact_var)


def test_mean_only_mode_is_deterministic():
    m, s, mb, sb = _params((3, 4), (3,))
    state = {"loc": {"w": m, "b": mb}, "var": {"w": s * s, "b": sb * sb}, "mean_only": True}
    x = torch.randn(5, 4)
    torch.testing.assert_close(LRTLayer(state, "w", "b", torch.nn.Linear(4, 3))(x),
                               F.linear(x, m, mb))


@pytest.mark.parametrize("padding_mode", ["reflect"])
def test_conv_other_padding_is_refused(padding_mode):
    conv = torch.nn.Conv2d(1, 2, 3, padding=1, padding_mode=padding_mode)
    with pytest.raises(NotImplementedError, match="padding_mode"):
        lrt_twin(conv, {})
