"""Hessians of the training loss (OBD, OBS) against torch.autograd.functional.hessian."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from bayesstruct import nets
from bayesstruct.data import Split
from bayesstruct.pruning.hessian import (
    diag_hessian,
    flatten_weights,
    hessian,
    softmax_regression,
    unflatten_weights,
)
from tests.helpers import seed

L2 = 0.03


def _data(digits, n: int = 120, features: int | None = None) -> Split:
    x = digits.train.x[:n].double().flatten(1)
    if features is not None:
        x = x[:, :features]
    return Split(x, digits.train.y[:n])


def _logreg(features: int = 64) -> torch.nn.Module:
    torch.manual_seed(0)
    net = nets.logistic_regression(features, 10).double()
    with torch.no_grad():
        net.fc1.weight.normal_(0, 0.3)
    return net


def _mlp(seed_: int = 1) -> torch.nn.Module:
    torch.manual_seed(seed_)
    return nets.mlp([12, 6, 10], activation="tanh").double()


def _reference(net: torch.nn.Module, split: Split, l2: float) -> torch.Tensor:
    """``torch.autograd.functional.hessian`` of ``mean CE + l2/2 |W|^2`` over the weights."""
    w0 = flatten_weights(net)
    fixed = {k: v.detach() for k, v in net.named_parameters() if not k.endswith("weight")}

    def loss(w):
        out = functional_call(net, {**fixed, **unflatten_weights(w, net)}, (split.x,))
        return F.cross_entropy(out, split.y) + 0.5 * l2 * (w * w).sum()
    return torch.autograd.functional.hessian(loss, w0)


def _gauss_newton_reference(net: torch.nn.Module, split: Split, l2: float) -> torch.Tensor:
    """``(1/N) sum_n J_n^T (diag p - p p^T) J_n`` with J_n by ``autograd.functional.jacobian``."""
    w0 = flatten_weights(net)
    fixed = {k: v.detach() for k, v in net.named_parameters() if not k.endswith("weight")}
    g = torch.zeros(w0.numel(), w0.numel(), dtype=torch.float64)
    for x in split.x:
        def logits(w, x=x):
            return functional_call(net, {**fixed, **unflatten_weights(w, net)}, (x[None],))[0]
        j = torch.autograd.functional.jacobian(logits, w0)
        p = torch.softmax(logits(w0), 0)
        g += j.T @ (torch.diag(p) - torch.outer(p, p)) @ j
    return g / len(split) + l2 * torch.eye(w0.numel(), dtype=torch.float64)


def test_softmax_regression_is_recognised():
    assert softmax_regression(nets.logistic_regression(5, 3)) is not None
    assert softmax_regression(nets.mlp([5, 4, 3])) is None


def test_logreg_diagonal_closed_form_against_autograd(digits):
    net, split = _logreg(), _data(digits)
    ref = _reference(net, split, L2).diagonal()
    diag = diag_hessian(net, split, method="exact", l2=L2)
    torch.testing.assert_close(flatten_weights_from(diag, net), ref, rtol=1e-10, atol=1e-12)


def test_logreg_full_closed_form_against_autograd(digits):
    net, split = _logreg(20), _data(digits, features=20)
    ref = _reference(net, split, L2)
    for method in ("exact", "gauss_newton"):  # one matrix for a model linear in w
        torch.testing.assert_close(hessian(net, split, method=method, l2=L2), ref, rtol=1e-10,
                                   atol=1e-12)


@pytest.mark.parametrize("method", ["exact", "gauss_newton"])
def test_mlp_full_hessian_and_diagonal(digits, method):
    net, split = _mlp(), _data(digits, n=60, features=12)
    ref = (_reference(net, split, L2) if method == "exact"
           else _gauss_newton_reference(net, split, L2))
    full = hessian(net, split, method=method, l2=L2, batch_size=16)
    torch.testing.assert_close(full, ref, rtol=1e-9, atol=1e-11)
    diag = diag_hessian(net, split, method=method, l2=L2, batch_size=16)
    torch.testing.assert_close(flatten_weights_from(diag, net), ref.diagonal(), rtol=1e-9,
                               atol=1e-11)
    if method == "gauss_newton":  # the MLP's Hessian is not its Gauss-Newton matrix
        assert not torch.allclose(ref, _reference(net, split, L2), rtol=1e-3)


@pytest.mark.stochastic
def test_hutchinson_is_unbiased_within_its_own_standard_error(digits):
    """``z_i (H z)_i`` has mean ``H_ii`` and variance ``sum_{j != i} H_ij^2`` for Rademacher z,
    so the S-probe mean lies within 5 ``sqrt(sum_{j != i} H_ij^2 / S)`` of the diagonal (bound:
    5 SE, that exact SE); and the errors are of that size: the mean |z| within 5 SE of 0.8, the
    mean of |N(0, 1)| (its SE: sd(|z|) / sqrt(number of weights))."""
    net, split = _mlp(seed(1)), _data(digits, n=60, features=12)
    ref = _reference(net, split, 0.0)
    samples = 3000
    est = flatten_weights_from(diag_hessian(net, split, method="hutchinson", samples=samples,
                                            batch_size=60, seed=seed(3)), net)
    off = (ref ** 2).sum(1) - ref.diagonal() ** 2
    se = (off / samples).sqrt()
    dead = se == 0  # weights of a constant-zero pixel: no curvature, estimated exactly
    assert 0 < int(dead.sum()) < se.numel() // 2
    torch.testing.assert_close(est[dead], ref.diagonal()[dead])
    z = (est - ref.diagonal()).abs()[~dead] / se[~dead]
    assert z.max() < 5.0, float(z.max())
    # and it is not the exact answer by construction: the error is of the size the SE says
    assert abs(float(z.mean()) - 0.8) < 5 * float(z.std()) / z.numel() ** 0.5, float(z.mean())


def test_max_examples_subsamples_and_limits_are_enforced(digits):
    net, split = _mlp(), _data(digits, n=60, features=12)
    sub = diag_hessian(net, split, method="exact", max_examples=20, seed=0)
    full = diag_hessian(net, split, method="exact")
    assert not torch.allclose(sub["fc1.weight"], full["fc1.weight"])
    with pytest.raises(ValueError, match="max_params=10"):
        diag_hessian(net, split, method="exact", max_params=10)
    with pytest.raises(ValueError, match="allowed: exact, gauss_newton, hutchinson"):
        diag_hessian(net, split, method="fisher")
    with pytest.raises(ValueError, match="allowed: exact, gauss_newton"):
        hessian(net, split, method="hutchinson")


def flatten_weights_from(d: dict[str, torch.Tensor], net) -> torch.Tensor:
    params = dict(net.named_parameters())
    return torch.cat([d[n].reshape(-1) for n in params if n in d])
