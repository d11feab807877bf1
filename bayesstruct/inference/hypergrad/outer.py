"""The two outer loops of hypergradient optimisation: greedy and honest.

* :func:`greedy`: train with the inner optimiser; every ``k`` inner steps the hypergradient of
  the validation loss through those ``k`` steps (unrolled from the running state: the
  ``diff-argmin``) updates ``lambda``. Cheap and stochastic-friendly, but short-horizon biased.
* :func:`honest`: per outer step, optimise the inner problem (warm-started) until
  ``||grad_w L_train|| <= inner_tol``, then take the implicit hypergradient (CG on
  Hessian-vector products: ``diff-CG``) and update ``lambda``.

Both update ``lambda`` by Adam (``hyper_lr``) and return an :class:`OuterResult` with the
history of ``lambda`` and the validation loss. A validation loss, hypergradient or inner
gradient that is not finite stops them with :class:`~bayesstruct.errors.NonFiniteLossError`
naming the loop and the outer step (checked once per outer step).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ... import logs
from ...errors import NonFiniteLossError
from .implicit import SolveInfo, implicit
from .problem import HyperProblem, init_state, opt_step
from .reverse import unrolled

__all__ = ["OuterResult", "greedy", "honest", "minimise_inner", "newton"]


@dataclass
class OuterResult:
    """The final ``lambda`` and inner state, and one history row per outer update."""

    lam: Tensor
    state: dict[str, Tensor]
    history: list[dict[str, float]] = field(default_factory=list)


def _adam(lam: Tensor, lr: float) -> tuple[Tensor, torch.optim.Adam]:
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"need hyper_lr > 0, a finite number (got hyper_lr={lr})")
    lam = torch.as_tensor(lam).detach().clone()
    if not bool(torch.isfinite(lam).all()):
        raise ValueError("lam0 (the initial hyperparameters) must be finite")
    lam.requires_grad_(True)
    return lam, torch.optim.Adam([lam], lr=lr)


def _check_outer(loop: str, step: str, val: float | None, grad: Tensor | None) -> None:
    """One check per outer step: the validation loss and the hypergradient are finite."""
    if val is not None and not math.isfinite(val):
        raise NonFiniteLossError(f"{loop}: the validation loss became {val} at {step}; lower "
                                 "the inner learning rate or hyper_lr")
    if grad is not None and not bool(torch.isfinite(grad).all()):
        raise NonFiniteLossError(f"{loop}: the hypergradient is not finite at {step} "
                                 f"({int((~torch.isfinite(grad)).sum())} of {grad.numel()} "
                                 "entries); lower the inner learning rate or hyper_lr")


def greedy(problem: HyperProblem, lam0: Tensor, *, total_steps: int, k: int = 10,
           hyper_lr: float = 0.01, progress: bool = False,
           callback: Callable[[dict], None] | None = None) -> OuterResult:
    """Greedy hyperparameter optimisation (module docstring): ``total_steps`` inner steps,
    a ``k``-step unrolled hypergradient and one Adam step on ``lambda`` after every window."""
    if not (k >= 1 and total_steps >= 1):
        raise ValueError(f"greedy needs k >= 1 and total_steps >= 1 (got k={k}, "
                         f"total_steps={total_steps})")
    lam, opt = _adam(lam0, hyper_lr)
    state = init_state(problem.optimizer, problem.w0.detach())
    history = []
    bar = logs.progress(range(0, total_steps, k), desc="greedy", unit="outer step",
                        enabled=progress)
    for i, start in enumerate(bar):
        n = min(k, total_steps - start)
        grad, state = unrolled(problem, lam, n, state=state, start=start, return_state=True)
        where = f"outer step {i + 1} (inner steps {start + 1}..{start + n})"
        _check_outer("greedy hypergradient loop", where, None, grad)
        opt.zero_grad()
        lam.grad = grad
        opt.step()
        with torch.no_grad():
            val = float(problem.val_loss(state["w"], lam))
        _check_outer("greedy hypergradient loop", where, val, None)
        row = {"step": start + n, "val_loss": val, "grad_norm": float(grad.norm()),
               "lam_mean": float(lam.detach().mean())}
        history.append(row)
        bar.set_postfix(val=f"{val:.4g}")
        if callback is not None:
            callback(row)
    return OuterResult(lam.detach(), state, history)


def _full_grad(problem: HyperProblem, w: Tensor, lam: Tensor) -> Tensor:
    """``grad_w L_train(w, lambda)``: the full-batch gradient, whether or not the problem has a
    ``batch_loss`` (the implicit hypergradient holds at a stationary point of ``L_train``, so
    the honest loop's inner problem is the full-batch one)."""
    with torch.enable_grad():
        w = w.detach().requires_grad_(True)
        return torch.autograd.grad(problem.train_loss(w, lam), w)[0]


def minimise_inner(problem: HyperProblem, lam: Tensor, state: dict[str, Tensor], *,
                   tol: float, max_steps: int, check_every: int = 10
                   ) -> tuple[dict[str, Tensor], int, float]:
    """Inner steps on the full-batch ``L_train`` until ``||grad_w|| <= tol`` (checked every
    ``check_every`` steps) or ``max_steps``: ``(state, steps, final gradient norm)``.

    Every step uses the full-batch gradient of ``problem.train_loss``; the problem's
    ``batch_loss`` (the minibatches of :func:`greedy` and the unrolled methods) is not used
    here, since the implicit hypergradient is only valid at a stationary point of
    ``L_train``, which minibatch steps with a constant learning rate do not reach."""
    opt = problem.optimizer
    lam = lam.detach()
    norm = float("inf")
    for t in range(max_steps):
        g = _full_grad(problem, state["w"], lam)
        if t % check_every == 0:
            norm = float(g.norm())
            if norm <= tol:
                return state, t, norm
            _finite_norm(norm, t)
        with torch.no_grad():
            state = opt_step(opt, state, g, t)
    norm = float(_full_grad(problem, state["w"], lam).norm())
    _finite_norm(norm, max_steps)
    return state, max_steps, norm


def _finite_norm(norm: float, step: int) -> None:
    if not math.isfinite(norm):
        raise NonFiniteLossError(f"inner minimisation: the training-gradient norm became "
                                 f"{norm} at inner step {step}; lower the inner learning rate")


def newton(problem: HyperProblem, lam: Tensor, state: dict[str, Tensor], *, tol: float,
           max_steps: int = 100) -> tuple[dict[str, Tensor], int, float]:
    """Damped Newton on the full-batch ``L_train`` (exact Hessian, backtracking on the loss)
    until ``||grad_w|| <= tol``: for small convex inner problems, where it reaches the
    tolerance the implicit hypergradient needs in a few steps. Gradient, Hessian and line
    search all use ``problem.train_loss`` (never ``batch_loss``)."""
    lam = lam.detach()
    w = state["w"].detach()

    def loss(v: Tensor) -> Tensor:
        return problem.train_loss(v, lam)

    norm = float("inf")
    for i in range(max_steps):
        g = _full_grad(problem, w, lam)
        norm = float(g.norm())
        if norm <= tol:
            return {"w": w}, i, norm
        if not math.isfinite(norm):
            raise NonFiniteLossError(f"newton: the gradient of L_train is not finite at "
                                     f"Newton step {i}")
        h = torch.autograd.functional.hessian(loss, w)
        if not bool(torch.isfinite(h).all()):
            raise NonFiniteLossError(f"newton: the Hessian of L_train is not finite at "
                                     f"Newton step {i}")
        step = _damped_solve(h, g)
        f0, t = float(loss(w)), 1.0
        while t > 1e-8 and float(loss(w - t * step)) > f0 - 1e-4 * t * float(g @ step):
            t *= 0.5
        w = (w - t * step).detach()
    return {"w": w}, max_steps, float(_full_grad(problem, w, lam).norm())


def _damped_solve(h: Tensor, g: Tensor) -> Tensor:
    """``(H + mu I)^{-1} g`` with the smallest ``mu`` in ``0, 1e-12 tr(H)/n, x100 ...`` for
    which the Cholesky factorisation succeeds (a Levenberg safeguard for nearly singular H)."""
    eye = torch.eye(h.shape[0], dtype=h.dtype, device=h.device)
    scale = float(h.diagonal().abs().mean()) or 1.0
    mu = 0.0
    for _ in range(12):
        chol, bad = torch.linalg.cholesky_ex(h + mu * eye)
        if int(bad) == 0:
            return torch.cholesky_solve(g.unsqueeze(-1), chol).squeeze(-1)
        mu = scale * 1e-12 if mu == 0.0 else mu * 100.0
    raise FloatingPointError("newton: the Hessian is not positive definite even with damping")


def honest(problem: HyperProblem, lam0: Tensor, *, outer_steps: int, hyper_lr: float = 0.05,
           inner_tol: float = 1e-6, max_inner_steps: int = 10_000, solver: str = "cg",
           cg_tol: float = 1e-8, cg_max_iter: int = 500, neumann_lr: float | None = None,
           warm_start: bool = True, inner: str = "optimizer", progress: bool = False,
           callback: Callable[[dict], None] | None = None) -> OuterResult:
    """Honest hyperparameter optimisation (module docstring): converge, implicit
    hypergradient, Adam step on ``lambda``; ``outer_steps`` times.

    ``inner="optimizer"`` converges with the problem's inner optimiser; ``"newton"`` with
    :func:`newton` (small convex inner problems, ``max_inner_steps`` Newton steps)."""
    if inner not in ("optimizer", "newton"):
        raise ValueError(f"inner {inner!r}; allowed: optimizer, newton")
    for name, v in (("outer_steps", outer_steps), ("max_inner_steps", max_inner_steps),
                    ("cg_max_iter", cg_max_iter)):
        if not v >= 1:
            raise ValueError(f"{name} must be >= 1 (got {name}={v})")
    lam, opt = _adam(lam0, hyper_lr)
    state = init_state(problem.optimizer, problem.w0.detach())
    history = []
    for i in logs.progress(range(outer_steps), desc="honest", unit="outer step",
                           enabled=progress):
        if not warm_start:
            state = init_state(problem.optimizer, problem.w0.detach())
            state = state if inner == "optimizer" else {"w": state["w"]}
        elif inner == "optimizer":  # keep the weights, restart the moments
            state = init_state(problem.optimizer, state["w"])
        try:
            if inner == "newton":
                state, steps, norm = newton(problem, lam, state, tol=inner_tol,
                                            max_steps=max_inner_steps)
            else:
                state, steps, norm = minimise_inner(problem, lam, state, tol=inner_tol,
                                                    max_steps=max_inner_steps)
            info = SolveInfo()
            grad = implicit(problem, lam, state["w"], solver=solver, tol=cg_tol,
                            max_iter=cg_max_iter, neumann_lr=neumann_lr, info=info)
        except NonFiniteLossError as e:
            raise NonFiniteLossError(f"honest hypergradient loop, outer step {i + 1}: {e}"
                                     ) from None
        _check_outer("honest hypergradient loop", f"outer step {i + 1}", None, grad)
        opt.zero_grad()
        lam.grad = grad
        opt.step()
        with torch.no_grad():
            val = float(problem.val_loss(state["w"], lam))
        _check_outer("honest hypergradient loop", f"outer step {i + 1}", val, None)
        row = {"outer": i + 1, "inner_steps": steps, "inner_grad_norm": norm, "val_loss": val,
               "cg_iterations": info.iterations, "cg_converged": info.converged,
               "grad_norm": float(grad.norm()), "lam_mean": float(lam.detach().mean())}
        history.append(row)
        if callback is not None:
            callback(row)
    return OuterResult(lam.detach(), state, history)
