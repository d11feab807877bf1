"""Hyperparameters by hypergradients (Bengio 2000; Maclaurin, Duvenaud & Adams 2015).

    min_lambda L_val(w*(lambda), lambda),    w*(lambda) ~ T steps of an optimiser on L_train

One entry point, :func:`hypergradient` with ``method=``:

==================  ===========================================  ==============  ==========
method              how                                          time            memory
==================  ===========================================  ==============  ==========
``finite_diff``     central differences, 2 runs per coordinate   O(T dim lam)    O(1)
``unrolled``        reverse mode through the T steps (autograd)  O(T)            O(T)
``checkpointed``    tree (binomial) checkpointing, recompute     O(T log T)      O(log T)
``reversible``      exact fixed-point reversal (info buffer)     O(T)            O(T bits)
``implicit``        implicit function theorem, CG / Neumann      O(T) + O(CG)    O(1)
==================  ===========================================  ==============  ==========

(The last column counts optimiser states; ``reversible`` stores ``sum_k log2(1/gamma_k)``
bits per weight and step instead of whole states.) Outer loops: :func:`greedy` and
:func:`honest` (:mod:`.outer`); the two experiments that use them (L2 coefficients of a
network, the kernel width of kernel logistic regression):
:mod:`bayesstruct.experiments.hypergrad_tasks`.

>>> from bayesstruct.inference import hypergrad as hg
>>> problem = hg.HyperProblem(train_loss, val_loss, w0, hg.InnerOptimizer("adam", lr=1e-3))
>>> g = hg.hypergradient(problem, lam, method="reversible", steps=1000)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ...errors import NonFiniteLossError
from .exact import ReversibleTrajectory
from .implicit import SOLVERS, SolveInfo, implicit
from .outer import OuterResult, greedy, honest
from .problem import (
    OPTIMIZERS,
    HyperProblem,
    InnerOptimizer,
    epoch_batches,
    flat_params,
    init_state,
    opt_step,
    run_inner,
    unflatten,
)
from .reverse import (
    ReverseStats,
    checkpoint_bound,
    checkpointed,
    final_adjoint,
    step_vjp,
    unrolled,
)

__all__ = ["METHODS", "OPTIMIZERS", "SOLVERS", "HyperProblem", "InnerOptimizer", "OuterResult",
           "ReverseStats", "ReversibleTrajectory", "SolveInfo", "checkpoint_bound",
           "checkpointed", "epoch_batches", "finite_diff", "flat_params",
           "greedy", "honest", "hypergradient", "implicit", "init_state", "opt_step",
           "reversible", "run_inner", "step_vjp", "unflatten", "unrolled"]

METHODS = ("finite_diff", "unrolled", "reversible", "checkpointed", "implicit")


def hypergradient(problem: HyperProblem, lam: Tensor, *, method: str = "unrolled",
                  steps: int = 100, **kw) -> Tensor:
    """``d L_val(w_T(lambda), lambda) / d lambda`` by ``method`` (module table).

    ``steps`` is T. Method options: ``finite_diff``: ``h`` (default ``1e-5``);
    ``checkpointed``: ``stats`` (a :class:`ReverseStats` to fill); ``reversible``:
    ``radix_bits``, ``trajectory`` (returns the :class:`ReversibleTrajectory` through a list
    you pass); ``implicit``: ``w_star`` (default: ``w_T`` of ``steps`` inner steps), ``solver``,
    ``tol``, ``max_iter``, ``neumann_lr``, ``info``.

    Raises :class:`~bayesstruct.errors.NonFiniteLossError` when the hypergradient (or the
    inner trajectory) is not finite.
    """
    if method not in METHODS:
        raise ValueError(f"method {method!r}; allowed: {', '.join(METHODS)}")
    if not steps >= 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    lam = torch.as_tensor(lam, dtype=problem.w0.dtype, device=problem.w0.device)
    if method == "finite_diff":
        out = finite_diff(problem, lam, steps, **kw)
    elif method == "unrolled":
        out = unrolled(problem, lam, steps, **kw)
    elif method == "checkpointed":
        out = checkpointed(problem, lam, steps, **kw)
    elif method == "reversible":
        out = reversible(problem, lam, steps, **kw)
    else:
        w_star = kw.pop("w_star", None)
        if w_star is None:
            w_star = run_inner(problem, lam, steps)["w"]
        out = implicit(problem, lam, w_star, **kw)
    if not bool(torch.isfinite(out).all()):
        raise NonFiniteLossError(f"hypergradient ({method}, {steps} inner steps) is not finite "
                                 f"({int((~torch.isfinite(out)).sum())} of {out.numel()} "
                                 "entries); lower the inner learning rate or the number of "
                                 "steps")
    return out


@torch.no_grad()
def finite_diff(problem: HyperProblem, lam: Tensor, steps: int, h: float = 1e-5) -> Tensor:
    """Central differences ``(L(lam + h e_i) - L(lam - h e_i)) / 2h`` of ``L_val(w_T)`` per
    coordinate (for checking: two inner runs per coordinate)."""
    if not (math.isfinite(h) and h > 0):
        raise ValueError(f"need h > 0, a finite number (got h={h})")
    flat = lam.detach().reshape(-1)
    out = torch.empty_like(flat)

    def value(x: Tensor) -> float:
        x = x.view_as(lam)
        return float(problem.val_loss(run_inner(problem, x, steps)["w"], x))

    for i in range(flat.numel()):
        e = torch.zeros_like(flat)
        e[i] = h
        out[i] = (value(flat + e) - value(flat - e)) / (2 * h)
    return out.view_as(lam)


def reversible(problem: HyperProblem, lam: Tensor, steps: int, radix_bits: int = 32,
               trajectory: list | None = None) -> Tensor:
    """Reverse sweep over the exactly reversed fixed-point trajectory (Maclaurin et al.
    2015): the forward run keeps only its final state and information buffer; each ``s_t`` is
    recovered by undoing step ``t`` bit for bit, then :func:`step_vjp` back-propagates
    through it."""
    opt = problem.optimizer
    lam = lam.detach()

    def grad(w: Tensor, t: int) -> Tensor:
        g = problem.grad(w.to(problem.w0.dtype), lam, t).to(torch.float64)
        if not bool(torch.isfinite(g).all()):
            raise NonFiniteLossError(f"reversible hypergradient: the training gradient of "
                                     f"inner step {t + 1} is not finite; lower the inner "
                                     "learning rate")
        return g

    traj = ReversibleTrajectory(opt.kind, problem.w0.detach().to(torch.float64), grad,
                                lr=opt.lr, momentum=opt.momentum, betas=opt.betas, eps=opt.eps,
                                radix_bits=radix_bits)
    traj.forward(steps)
    if trajectory is not None:
        trajectory.append(traj)
    dtype = problem.w0.dtype
    final = {k: v.to(dtype) for k, v in traj.state().items()}
    adj, dlam = final_adjoint(problem, final, lam)
    for t in reversed(range(steps)):
        before, _ = traj.backward_step()
        adj, d = step_vjp(problem, {k: v.to(dtype) for k, v in before.items()}, adj, lam, t)
        dlam = dlam + d
    return dlam
