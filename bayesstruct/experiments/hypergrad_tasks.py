"""Two hyperparameter experiments by hypergradients, as library calls (the loops of
:mod:`bayesstruct.inference.hypergrad`: greedy unrolled, Luketina et al. 2016; honest with
implicit gradients, Pedregosa 2016). :mod:`bayesstruct.experiments.hypergrad` runs them from
a catalog entry.

1. **L2 coefficients of a network** (:func:`l2_experiment`): the training loss is the MAP
   objective with a Gaussian prior of log-precision ``lambda`` per parameter, per example,

       L_train(w, lambda) = mean_i CE(f(x_i; w), y_i) + 1/(2N) sum_j exp(lambda_j) w_j^2,

   and ``L_val`` the validation cross-entropy. Three variants: no regularisation, one shared
   coefficient, one per parameter ("individual"). The protocol: 20 epochs of the
   weights with ``lambda`` fixed, then 20 epochs of the greedy loop (every ``k`` inner steps a
   ``k``-step unrolled hypergradient updates ``lambda``). Reported: test cross-entropy and
   ``1 - AUC`` (one-vs-rest macro AUC of the class probabilities).
2. **Kernel width of kernel logistic regression** (:func:`klr_experiment`), the
   objective on ``(a, b)`` for a fixed RBF kernel ``K_ij = exp(-|x_i - x_j|^2 / (2 s^2))``,

       L_train(a, b) = -y^T K a + 1^T log(1 + exp(K a + b 1)) + (c/2) a^T (K + eps I) a,

   divided by the number of examples. A wide RBF kernel is numerically of low rank, so the
   penalty carries a jitter ``eps`` (default 1e-2, as ``c``) that keeps the inner problem strongly
   convex, as the implicit function theorem needs. ``lambda = log s`` is learned by the
   honest loop: the inner problem solved by damped Newton to a gradient tolerance, then the
   implicit hypergradient by conjugate gradients. Reported: the initial and tuned width,
   test CE and AUC before and after.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from .. import logs
from ..errors import NonFiniteLossError
from ..inference.hypergrad.outer import greedy, honest, newton
from ..inference.hypergrad.problem import (
    HyperProblem,
    InnerOptimizer,
    epoch_batches,
    flat_params,
    init_state,
    run_inner,
    unflatten,
)

__all__ = ["L2_MODES", "KLRResult", "L2Result", "auc", "klr_experiment", "l2_experiment",
           "rbf"]

L2_MODES = ("none", "shared", "individual")


def auc(probs: np.ndarray, y: np.ndarray) -> float:
    """ROC AUC: binary from ``P(y = 1)``, or one-vs-rest macro over classes from ``(n, C)``
    class probabilities (scikit-learn's ``roc_auc_score``)."""
    from sklearn.metrics import roc_auc_score

    if probs.ndim == 1:
        return float(roc_auc_score(y, probs))
    return float(roc_auc_score(y, probs, multi_class="ovr", average="macro"))


@dataclass
class L2Result:
    """One variant's outcome: test CE and 1 - AUC, the learned log-precisions' summary."""

    mode: str
    test_ce: float
    one_minus_auc: float
    test_acc: float
    lam_mean: float
    lam_std: float
    seconds: float
    history: list[dict[str, float]]


def l2_experiment(make_net: Callable[[], nn.Module], train, val, test, mode: str, *,
                  epochs_weights: int = 20, epochs_hyper: int = 20, batch_size: int = 128,
                  lr: float = 1e-3, k: int = 10, hyper_lr: float = 0.05,
                  init_decay: float = 1e-4, optimizer: str = "adam", seed: int = 0,
                  device: str | torch.device = "cpu", progress: bool = True) -> L2Result:
    """One variant of experiment 1 (module docstring) on ``(x, y)`` splits.

    ``init_decay`` is the starting coefficient ``exp(lambda) / N`` (weight decay); ``mode``
    ``"none"`` trains ``epochs_weights + epochs_hyper`` epochs without it.
    """
    import time

    if mode not in L2_MODES:
        raise ValueError(f"mode {mode!r}; allowed: {', '.join(L2_MODES)}")
    _at_least(epochs_weights=(epochs_weights, 0), epochs_hyper=(epochs_hyper, 1),
              batch_size=(batch_size, 1), k=(k, 1))
    _positive(lr=lr, hyper_lr=hyper_lr, init_decay=init_decay)
    torch.manual_seed(seed)
    device = torch.device(device)
    net = make_net().to(device)
    xt, yt = train.x.to(device), train.y.to(device)
    xv, yv = val.x.to(device), val.y.to(device)
    n = xt.shape[0]
    batches_per_epoch = math.ceil(n / batch_size)
    batch = epoch_batches(n, batch_size, seed, device)

    def logits(w: Tensor, x: Tensor) -> Tensor:
        return functional_call(net, unflatten(net, w), (x,))

    def penalty(w: Tensor, lam: Tensor) -> Tensor:
        if mode == "none":
            return w.new_zeros(())
        return 0.5 * (torch.exp(lam) * w * w).sum() / n

    def batch_loss(w, lam, t):
        idx = batch(t)
        return F.cross_entropy(logits(w, xt[idx]), yt[idx]) + penalty(w, lam)

    def train_loss(w, lam):
        return F.cross_entropy(logits(w, xt), yt) + penalty(w, lam)

    def val_loss(w, lam):
        return F.cross_entropy(logits(w, xv), yv)

    w0 = flat_params(net)
    problem = HyperProblem(train_loss, val_loss, w0, InnerOptimizer(optimizer, lr=lr),
                           batch_loss=batch_loss)
    lam0 = math.log(init_decay * n)
    lam = torch.full((1,) if mode != "individual" else (w0.numel(),), lam0, device=device)
    t0 = time.perf_counter()
    steps_w = epochs_weights * batches_per_epoch
    steps_h = epochs_hyper * batches_per_epoch
    state = init_state(problem.optimizer, w0)
    for e in logs.progress(range(epochs_weights + (epochs_hyper if mode == "none" else 0)),
                           desc=f"{mode}: weights", unit="epoch", enabled=progress):
        try:  # run_inner checks the weights once per call: once per epoch
            state = run_inner(problem, lam, batches_per_epoch, state,
                              start=e * batches_per_epoch)
        except NonFiniteLossError as err:
            raise NonFiniteLossError(f"l2 experiment ({mode}), weight epoch {e + 1}: {err}"
                                     ) from None
    history: list[dict[str, float]] = []
    if mode != "none":
        warm = HyperProblem(train_loss, val_loss, state["w"], problem.optimizer, batch_loss)
        try:
            res = greedy(_offset(warm, steps_w), lam, total_steps=steps_h, k=k,
                         hyper_lr=hyper_lr, progress=progress)
        except NonFiniteLossError as err:
            raise NonFiniteLossError(f"l2 experiment ({mode}): {err}") from None
        state, lam, history = res.state, res.lam, res.history
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        out = logits(state["w"], test.x.to(device))
        probs = torch.softmax(out, -1).cpu().numpy()
        y = test.y.cpu().numpy()
        ce = float(F.cross_entropy(out, test.y.to(device)))
        acc = float((out.argmax(-1).cpu().numpy() == y).mean())
    return L2Result(mode, ce, 1.0 - auc(probs, y), acc, float(lam.mean()),
                    float(lam.std()) if lam.numel() > 1 else 0.0, seconds, history)


def _at_least(**values: tuple[int, int]) -> None:
    for name, (v, lo) in values.items():
        if not v >= lo:
            raise ValueError(f"{name} must be >= {lo} (got {name}={v})")


def _positive(**values: float) -> None:
    for name, v in values.items():
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"need {name} > 0, a finite number (got {name}={v})")


def _offset(problem: HyperProblem, start: int) -> HyperProblem:
    """The same problem with the step index shifted (minibatches continue where they were)."""
    bl = problem.batch_loss
    return HyperProblem(problem.train_loss, problem.val_loss, problem.w0, problem.optimizer,
                        None if bl is None else (lambda w, lam, t: bl(w, lam, t + start)))


def rbf(xa: Tensor, xb: Tensor, log_width: Tensor) -> Tensor:
    """``K_ij = exp(-|xa_i - xb_j|^2 / (2 s^2))`` with ``s = exp(log_width)``."""
    d2 = torch.cdist(xa, xb).pow(2)
    return torch.exp(-0.5 * d2 * torch.exp(-2.0 * log_width))


@dataclass
class KLRResult:
    """Kernel width and test CE / AUC before and after tuning, with the outer history."""

    width_before: float
    width_after: float
    ce_before: float
    ce_after: float
    auc_before: float
    auc_after: float
    history: list[dict[str, float]]


def klr_experiment(train, val, test, *, width0: float = 50.0, c: float = 1e-2,
                   jitter: float = 1e-2, outer_steps: int = 60, hyper_lr: float = 0.1,
                   inner_tol: float = 1e-9, max_newton_steps: int = 50,
                   progress: bool = True) -> KLRResult:
    """Experiment 2 (module docstring) on two-class ``(x, y)`` splits (float64 inside):
    the kernel machine is fitted on ``train``, the width tuned on ``val``, reported on
    ``test``."""
    _positive(width0=width0, hyper_lr=hyper_lr, inner_tol=inner_tol)
    _at_least(outer_steps=(outer_steps, 1), max_newton_steps=(max_newton_steps, 1))
    for name, v in (("c", c), ("jitter", jitter)):
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"need {name} >= 0, a finite number (got {name}={v})")

    def xy(split) -> tuple[Tensor, Tensor]:
        return split.x.detach().cpu().to(torch.float64), split.y.detach().cpu().to(torch.float64)

    (xt, yt), (xv, yv), (xs, ys) = xy(train), xy(val), xy(test)

    def split(w: Tensor) -> tuple[Tensor, Tensor]:
        return w[:-1], w[-1]

    def train_loss(w, lam):
        a, b = split(w)
        k = rbf(xt, xt, lam[0])
        f = k @ a + b
        pen = a @ k @ a + jitter * a @ a
        return (-(yt * f).sum() + F.softplus(f).sum() + 0.5 * c * pen) / xt.shape[0]

    def decision(w, lam, xs):
        a, b = split(w)
        return rbf(xs, xt, lam[0]) @ a + b

    def val_loss(w, lam):
        return F.binary_cross_entropy_with_logits(decision(w, lam, xv), yv)

    problem = HyperProblem(train_loss, val_loss, torch.zeros(xt.shape[0] + 1, dtype=xt.dtype),
                           InnerOptimizer("sgd", lr=1.0))  # the inner solve is Newton's

    def evaluate(w, lam) -> tuple[float, float]:
        with torch.no_grad():
            f = decision(w, lam, xs)
            ce = float(F.binary_cross_entropy_with_logits(f, ys))
            return ce, auc(torch.sigmoid(f).numpy(force=True), ys.numpy(force=True))

    lam0 = torch.tensor([math.log(width0)], dtype=xt.dtype)
    w_before, _, _ = newton(problem, lam0, {"w": problem.w0}, tol=inner_tol,
                            max_steps=max_newton_steps)
    ce0, auc0 = evaluate(w_before["w"], lam0)
    try:
        res = honest(problem, lam0, outer_steps=outer_steps, hyper_lr=hyper_lr,
                     inner_tol=inner_tol, max_inner_steps=max_newton_steps, inner="newton",
                     progress=progress)
    except NonFiniteLossError as err:
        raise NonFiniteLossError(f"klr experiment: {err}") from None
    w_after, _, _ = newton(problem, res.lam, res.state, tol=inner_tol,
                           max_steps=max_newton_steps)
    ce1, auc1 = evaluate(w_after["w"], res.lam)
    return KLRResult(width0, float(torch.exp(res.lam[0])), ce0, ce1, auc0, auc1, res.history)
