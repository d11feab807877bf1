"""Implicit differentiation at an inner optimum (Pedregosa 2016; Lorraine, Vicol & Duvenaud
2020).

At ``w*`` with ``grad_w L_train(w*, lambda) = 0`` the implicit function theorem gives

    d L_val / d lambda = dL_val/dlambda - (d^2 L_train / dlambda dw) H^{-1} grad_w L_val,
    H = d^2 L_train / dw dw (w*, lambda),

with the solve ``H v = grad_w L_val`` done matrix-free on Hessian-vector products: conjugate
gradients (H symmetric positive definite at a strict minimum; Hestenes & Stiefel 1952) or the
Neumann series ``H^{-1} ~ alpha sum_{j=0}^{J} (I - alpha H)^j`` (Lorraine, Vicol & Duvenaud
2020), each with a tolerance and an iteration limit. Memory O(1) in the number of inner steps;
the answer is exact only at a converged inner problem (tested against the closed form of
ridge regression, where it equals the unrolled hypergradient of a converged run).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ...errors import NonFiniteLossError
from .problem import HyperProblem

__all__ = ["SOLVERS", "SolveInfo", "implicit"]

SOLVERS = ("cg", "neumann")


@dataclass
class SolveInfo:
    """How the linear solve ended: iterations, the final residual norm, converged or not."""

    iterations: int = 0
    residual: float = float("nan")
    converged: bool = False


def implicit(problem: HyperProblem, lam: Tensor, w_star: Tensor, *, solver: str = "cg",
             tol: float = 1e-10, max_iter: int = 1000, neumann_lr: float | None = None,
             info: SolveInfo | None = None) -> Tensor:
    """The implicit hypergradient at ``w_star`` (module docstring).

    Args:
        solver: ``"cg"`` or ``"neumann"``.
        tol: stop when ``||H v - grad_w L_val|| <= tol * ||grad_w L_val||`` (CG) or when the
            Neumann term's norm falls below ``tol`` times the first.
        max_iter: the iteration limit (``info.converged`` says whether ``tol`` was met).
        neumann_lr: ``alpha`` of the Neumann series (needs ``alpha ||H|| < 2``); required for
            ``"neumann"``.
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver {solver!r}; allowed: {', '.join(SOLVERS)}")
    if solver == "neumann" and neumann_lr is None:
        raise ValueError("the neumann solver needs neumann_lr (alpha with alpha ||H|| < 2)")
    if neumann_lr is not None and not neumann_lr > 0:
        raise ValueError(f"need neumann_lr > 0 (got neumann_lr={neumann_lr})")
    if not max_iter >= 1:
        raise ValueError(f"max_iter must be >= 1 (got max_iter={max_iter})")
    if not tol >= 0:
        raise ValueError(f"need tol >= 0 (got tol={tol})")
    info = info if info is not None else SolveInfo()
    lam_ = lam.detach().requires_grad_(True)
    with torch.enable_grad():
        w = w_star.detach().requires_grad_(True)
        val = problem.val_loss(w, lam_)
        if not bool(torch.isfinite(val)):
            raise NonFiniteLossError(f"implicit hypergradient: the validation loss at w_star is "
                                     f"{float(val)}")
        gw_val, gl_val = torch.autograd.grad(val, (w, lam_), allow_unused=True)
        g_train = torch.autograd.grad(problem.train_loss(w, lam_), w, create_graph=True)[0]

        def hvp(v: Tensor) -> Tensor:
            return torch.autograd.grad(g_train, w, v, retain_graph=True)[0]

        v = (_cg if solver == "cg" else _neumann)(hvp, gw_val.detach(), tol, max_iter, info,
                                                  neumann_lr)
        mixed = torch.autograd.grad(g_train, lam_, v.detach(), allow_unused=True)[0]
    out = gl_val if gl_val is not None else torch.zeros_like(lam)
    if mixed is not None:
        out = out - mixed
    return out.detach()


def _cg(hvp, b: Tensor, tol: float, max_iter: int, info: SolveInfo, _unused) -> Tensor:
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs = torch.dot(r, r)
    bnorm = float(b.norm()) or 1.0
    for i in range(1, max_iter + 1):
        hp = hvp(p)
        curv = torch.dot(p, hp)
        if not bool(torch.isfinite(curv)):
            raise NonFiniteLossError(f"conjugate gradients: a Hessian-vector product is not "
                                     f"finite at iteration {i} (an ill-conditioned or diverged "
                                     "inner problem)")
        if curv <= 0:
            raise ValueError("conjugate gradients met non-positive curvature: the Hessian is "
                             "not positive definite at w_star (not a strict minimum; raise the "
                             "L2 term or converge the inner problem further)")
        step = rs / curv
        x = x + step * p
        r = r - step * hp
        rs_new = torch.dot(r, r)
        info.iterations, info.residual = i, float(rs_new.sqrt())
        if info.residual <= tol * bnorm:
            info.converged = True
            break
        p = r + (rs_new / rs) * p
        rs = rs_new
    return x


def _neumann(hvp, b: Tensor, tol: float, max_iter: int, info: SolveInfo, alpha: float
             ) -> Tensor:
    term = b.clone()
    total = b.clone()
    first = float(b.norm()) or 1.0
    for i in range(1, max_iter + 1):
        term = term - alpha * hvp(term)
        total = total + term
        info.iterations, info.residual = i, float(term.norm())
        if info.residual <= tol * first:
            info.converged = True
            break
    return alpha * total
