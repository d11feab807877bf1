"""Hessians of the training loss with respect to the weights, for OBD and OBS.

The loss is :func:`bayesstruct.training.plain.regularised_loss` averaged over the training
split: ``L(w) = (1/N) sum_n CE_n(w) + l1 ||W||_1 + (l2/2) ||W||^2``. Its Hessian over the weight
vector ``w`` (the Linear / Conv weights of :func:`weight_names`, flattened row-major and
concatenated; biases held fixed) is ``H = H_CE + l2 I`` (the L1 term has zero curvature away
from 0). Methods:

``exact``
    Softmax (multinomial logistic) regression ``p = softmax(W x + b)`` has the closed form

        H[(c, j), (d, k)] = (1/N) sum_n (p_nc [c = d] - p_nc p_nd) x_nj x_nk,
        diag H[(c, j)]   = (1/N) sum_n p_nc (1 - p_nc) x_nj^2

    (LeCun, Denker, Solla 1990 for the diagonal; Hassibi & Stork 1993 for the full matrix).
    Any other network: forward-over-reverse ``torch.func.jacfwd(jacrev(L))`` per data chunk,
    for models of at most ``max_params`` weights.
``gauss_newton``
    The generalised Gauss-Newton matrix ``G = (1/N) sum_n J_n^T (diag p_n - p_n p_n^T) J_n``
    with ``J_n = d logits_n / d w`` (per-example Jacobians by ``vmap(jacrev)``): positive
    semi-definite, equal to ``H`` where the network is linear in ``w`` (logistic regression)
    and at zero residual, and what OBS needs for a usable inverse on an MLP.
``hutchinson``
    (diagonal only) ``diag H ~ (1/S) sum_s z_s * (H z_s)`` with Rademacher probes ``z_s``
    (Bekas, Kokiopoulou, Saad 2007): unbiased, one Hessian-vector product per probe and data
    chunk, any network size.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, jacfwd, jacrev, vmap

from ..data import Split
from ..training.plain import weight_names, weights

__all__ = ["DIAG_METHODS", "FULL_METHODS", "diag_hessian", "flatten_weights", "hessian",
           "softmax_regression", "unflatten_weights"]

DIAG_METHODS = ("exact", "gauss_newton", "hutchinson")
#: the default limit of the autodiff ``exact`` diagonal (it forms the full Hessian)
EXACT_DIAG_MAX = 5000
FULL_METHODS = ("exact", "gauss_newton")


def flatten_weights(net: nn.Module) -> torch.Tensor:
    """The weight vector ``w``: every weight tensor of :func:`weight_names`, row-major."""
    return torch.cat([w.reshape(-1) for w in weights(net).values()])


def unflatten_weights(vector: torch.Tensor, net: nn.Module) -> dict[str, torch.Tensor]:
    """Inverse of :func:`flatten_weights`: ``name -> tensor`` of the weights' shapes."""
    params = dict(net.named_parameters())
    out, i = {}, 0
    for n in weight_names(net):
        k = params[n].numel()
        out[n] = vector[i: i + k].reshape(params[n].shape)
        i += k
    if i != vector.numel():
        raise ValueError(f"vector has {vector.numel()} entries; the net has {i} weights")
    return out


def softmax_regression(net: nn.Module) -> tuple[nn.Module, nn.Linear] | None:
    """``(features, linear)`` if ``net`` is ``Linear(flatten(x))``, else ``None``."""
    if not isinstance(net, nn.Sequential):
        return None
    mods = list(net.children())
    if (mods and isinstance(mods[-1], nn.Linear)
            and all(isinstance(m, nn.Flatten | nn.Identity) for m in mods[:-1])):
        return nn.Sequential(*mods[:-1]), mods[-1]
    return None


def _subset(split: Split, max_examples: int | None, seed: int) -> Split:
    if max_examples is None or max_examples >= len(split):
        return split
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(split), generator=g)[:max_examples].sort().values.to(split.x.device)
    return Split(split.x[idx], split.y[idx])


@contextmanager
def _eval_mode(net: nn.Module):
    """``net.eval()`` for the block, the previous mode restored after."""
    was_training = net.training
    net.eval()
    try:
        yield
    finally:
        net.train(was_training)


def _chunks(split: Split, batch_size: int):
    for i in range(0, len(split), batch_size):
        yield split.x[i: i + batch_size], split.y[i: i + batch_size]


def _check(method: str, allowed: tuple[str, ...]) -> None:
    if method not in allowed:
        raise ValueError(f"method={method!r}; allowed: {', '.join(allowed)}")


def _functional(net: nn.Module) -> tuple[torch.Tensor, Callable[[torch.Tensor, torch.Tensor],
                                                                  torch.Tensor]]:
    """``(w, logits(w, x))`` with every non-weight parameter held at its value."""
    names = weight_names(net)
    fixed = {k: v.detach() for k, v in net.named_parameters() if k not in names}
    w = flatten_weights(net)

    def logits(wv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return functional_call(net, {**fixed, **unflatten_weights(wv, net)}, (x,))
    return w, logits


def _too_big(p: int, max_params: int, method: str) -> None:
    if p > max_params:
        raise ValueError(f"the {method} Hessian of {p} weights is a {p}x{p} matrix; this method "
                         f"is limited to max_params={max_params} weights. Use "
                         "method='gauss_newton' or 'hutchinson' for the diagonal, or raise "
                         "max_params.")


# -- diagonal --------------------------------------------------------------------------------
def diag_hessian(net: nn.Module, split: Split, *, method: str = "exact", l2: float = 0.0,
                 samples: int = 64, max_examples: int | None = None, batch_size: int = 256,
                 max_params: int = EXACT_DIAG_MAX, seed: int = 0) -> dict[str, torch.Tensor]:
    """``diag H`` of the training loss, per weight tensor (module docstring).

    Args:
        method: ``exact`` (closed form for softmax regression, else autodiff for at most
            ``max_params`` weights), ``gauss_newton`` or ``hutchinson``.
        l2: the weight decay of the training loss (adds ``l2`` to every entry).
        samples: Rademacher probes for ``hutchinson``.
        max_examples: estimate on a seeded random subset of the split.
    """
    _check(method, DIAG_METHODS)
    split = _subset(split, max_examples, seed)
    n = len(split)
    with _eval_mode(net):
        lr = softmax_regression(net)
        if method == "exact" and lr is not None:
            feats, lin = lr
            with torch.no_grad():
                diag = torch.zeros_like(lin.weight)
                for x, _ in _chunks(split, 4096):
                    f = feats(x)
                    p = torch.softmax(lin(f), dim=1)
                    diag += (p * (1 - p)).T @ (f * f)
            out = {weight_names(net)[0]: diag / n}
        else:
            w, logits = _functional(net)
            if method == "exact":
                _too_big(w.numel(), max_params, "exact")
                vec = _full_exact(logits, w, split, batch_size).diagonal() / n
            elif method == "gauss_newton":
                vec = _ggn(logits, w, split, batch_size, diag=True) / n
            else:
                vec = _hutchinson(logits, w, split, batch_size, samples, seed) / n
            out = unflatten_weights(vec, net)
    return {k: v + l2 for k, v in out.items()}


# -- full ------------------------------------------------------------------------------------
def hessian(net: nn.Module, split: Split, *, method: str = "exact", l2: float = 0.0,
            max_examples: int | None = None, batch_size: int = 256, max_params: int = 20000,
            dtype: torch.dtype = torch.float64, seed: int = 0) -> torch.Tensor:
    """The full ``P x P`` Hessian (``exact``) or Gauss-Newton matrix of the training loss over
    the weight vector of :func:`flatten_weights`, in ``dtype``."""
    _check(method, FULL_METHODS)
    split = _subset(split, max_examples, seed)
    n = len(split)
    with _eval_mode(net):
        w, logits = _functional(net)
        _too_big(w.numel(), max_params, method)
        lr = softmax_regression(net)
        if lr is not None:  # exact == Gauss-Newton for a model linear in w
            h = _softmax_regression_hessian(*lr, split, dtype)
        elif method == "exact":
            h = _full_exact(logits, w, split, batch_size).to(dtype)
        else:
            h = _ggn(logits, w, split, batch_size, diag=False).to(dtype)
    h /= n
    h.diagonal().add_(l2)
    return h


@torch.no_grad()
def _softmax_regression_hessian(feats: nn.Module, lin: nn.Linear, split: Split,
                                dtype: torch.dtype) -> torch.Tensor:
    """``sum_n (diag p_n - p_n p_n^T) (x) x_n x_n^T`` block by block (module docstring)."""
    c, j = lin.weight.shape
    h = torch.zeros(c, j, c, j, dtype=dtype, device=lin.weight.device)
    for x, _ in _chunks(split, 8192):
        f = feats(x)
        p = torch.softmax(lin(f), dim=1)
        for a in range(c):
            for b in range(a, c):
                coef = p[:, a] * ((1.0 if a == b else 0.0) - p[:, b])
                block = ((f * coef[:, None]).T @ f).to(dtype)
                h[a, :, b, :] += block
                if b != a:
                    h[b, :, a, :] += block.T
    return h.reshape(c * j, c * j)


def _full_exact(logits, w: torch.Tensor, split: Split, batch_size: int) -> torch.Tensor:
    def loss(wv, x, y):
        return F.cross_entropy(logits(wv, x), y, reduction="sum")
    h = torch.zeros(w.numel(), w.numel(), dtype=w.dtype, device=w.device)
    for x, y in _chunks(split, batch_size):
        h += jacfwd(jacrev(loss))(w, x, y)
    return h


def _ggn(logits, w: torch.Tensor, split: Split, batch_size: int, diag: bool) -> torch.Tensor:
    """``sum_n J_n^T (diag p - p p^T) J_n`` (or its diagonal) over per-example Jacobians."""
    def one(wv, x):
        return logits(wv, x[None])[0]
    jac = vmap(jacrev(one), in_dims=(None, 0))
    p_ = w.numel()
    out = torch.zeros(p_ if diag else (p_, p_), dtype=w.dtype, device=w.device)
    for x, _ in _chunks(split, max(1, min(batch_size, 2 ** 22 // max(p_, 1)))):
        with torch.no_grad():
            p = torch.softmax(logits(w, x), dim=1)
        j = jac(w, x).detach()                                   # (B, C, P)
        hz = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]  # (B, C, C)
        hj = hz @ j                                              # (B, C, P)
        if diag:
            out += (j * hj).sum(dim=(0, 1))
        else:
            out += j.reshape(-1, p_).T @ hj.reshape(-1, p_)
    return out


def _hutchinson(logits, w: torch.Tensor, split: Split, batch_size: int, samples: int,
                seed: int) -> torch.Tensor:
    if samples < 1:
        raise ValueError(f"hutchinson needs samples >= 1 (got {samples})")
    g = torch.Generator(device="cpu").manual_seed(seed)
    probes = (torch.randint(0, 2, (samples, w.numel()), generator=g) * 2 - 1).to(w)
    acc = torch.zeros_like(w)
    wv = w.clone().requires_grad_(True)
    for x, y in _chunks(split, batch_size):
        loss = F.cross_entropy(logits(wv, x), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, wv, create_graph=True)
        for s in range(samples):
            (hz,) = torch.autograd.grad(grad @ probes[s], wv, retain_graph=s < samples - 1)
            acc += probes[s] * hz
    return acc / samples

