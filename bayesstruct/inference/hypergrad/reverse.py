"""Reverse-mode hypergradients through T inner steps.

With ``s_t`` the optimiser state (weights and moments) and ``s_{t+1} = Phi_t(s_t, lambda)``,

    d L_val / d lambda = dL_val/dlambda + sum_t  abar_{t+1}^T  dPhi_t/dlambda (s_t, lambda),
    abar_T = dL_val/ds_T,     abar_t = abar_{t+1}^T dPhi_t/ds_t (s_t, lambda),

a backward sweep that needs ``s_t`` for ``t = T-1 .. 0`` in reverse order. The methods differ
only in how they get those states back:

* ``unrolled``: autograd keeps the whole graph of the T steps: time O(T), memory O(T).
* ``checkpointed`` (tree checkpointing; Griewank & Walther 2000): to reverse steps ``[a, b)``
  from ``s_a``, run forward to the midpoint ``m``, reverse ``[m, b)`` from ``s_m``, then
  ``[a, m)`` from ``s_a``; at most ``max(1, ceil(log2 T)) + 1`` states are held at once and
  each step is recomputed ``O(log T)`` times: memory O(log T), time O(T log T).
* ``reversible`` (Maclaurin, Duvenaud & Adams 2015): the forward run is exact in fixed-point
  arithmetic (:class:`~.exact.ReversibleTrajectory`), so each ``s_t`` is recovered by undoing
  the step, bit for bit; memory is the information buffer, ``O(T sum_k log2(1/gamma_k))`` bits.

The last two apply :func:`step_vjp` (one step's vector-Jacobian product, with ``grad_w
L_train`` differentiated through, i.e. Hessian-vector products) per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .problem import HyperProblem, init_state, opt_step

__all__ = ["ReverseStats", "checkpoint_bound", "checkpointed", "step_vjp", "unrolled"]


@dataclass
class ReverseStats:
    """What a reverse sweep cost: forward steps computed and the most states held at once."""

    forward_steps: int = 0
    max_states: int = 0
    states: int = 0

    def hold(self, n: int = 1) -> None:
        self.states += n
        self.max_states = max(self.max_states, self.states)


def final_adjoint(problem: HyperProblem, state: dict[str, Tensor], lam: Tensor
                   ) -> tuple[dict[str, Tensor], Tensor]:
    """``abar_T = dL_val/ds_T`` (non-zero on ``w`` only) and ``dL_val/dlambda`` at ``s_T``."""
    with torch.enable_grad():
        w = state["w"].detach().requires_grad_(True)
        lam_ = lam.detach().requires_grad_(True)
        gw, gl = torch.autograd.grad(problem.val_loss(w, lam_), (w, lam_), allow_unused=True)
    adj = {k: torch.zeros_like(v) for k, v in state.items()}
    adj["w"] = gw
    return adj, gl if gl is not None else torch.zeros_like(lam)


def step_vjp(problem: HyperProblem, state: dict[str, Tensor], adj: dict[str, Tensor],
             lam: Tensor, t: int) -> tuple[dict[str, Tensor], Tensor]:
    """``(abar_t, abar_{t+1}^T dPhi_t/dlambda)`` for one step from ``state = s_t``."""
    with torch.enable_grad():
        s = {k: v.detach().requires_grad_(True) for k, v in state.items()}
        lam_ = lam.detach().requires_grad_(True)
        g = torch.autograd.grad(problem.step_loss(s["w"], lam_, t), s["w"],
                                create_graph=True)[0]
        nxt = opt_step(problem.optimizer, s, g, t)
        out = sum((nxt[k] * adj[k]).sum() for k in nxt)
        keys = list(s)
        grads = torch.autograd.grad(out, [s[k] for k in keys] + [lam_], allow_unused=True)
    new = {k: (gr if gr is not None else torch.zeros_like(s[k])).detach()
           for k, gr in zip(keys, grads[:-1], strict=True)}
    dl = grads[-1]
    return new, (dl.detach() if dl is not None else torch.zeros_like(lam))


def unrolled(problem: HyperProblem, lam: Tensor, steps: int,
             state: dict[str, Tensor] | None = None, start: int = 0,
             return_state: bool = False) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
    """Reverse mode through the whole unrolled loop (autograd keeps every step's graph).

    From ``state`` at step index ``start`` (default ``w_0``, zero moments, step 0): the
    ``diff-argmin`` over a window, which the greedy loop calls with the running state;
    ``return_state`` also returns the (detached) state after the window."""
    with torch.enable_grad():
        lam_ = lam.detach().requires_grad_(True)
        s = init_state(problem.optimizer, problem.w0) if state is None else state
        s = {k: v.detach().clone().requires_grad_(k == "w") for k, v in s.items()}
        for t in range(start, start + steps):
            g = torch.autograd.grad(problem.step_loss(s["w"], lam_, t), s["w"],
                                    create_graph=True)[0]
            s = opt_step(problem.optimizer, s, g, t)
        (grad,) = torch.autograd.grad(problem.val_loss(s["w"], lam_), lam_, allow_unused=True)
    grad = grad.detach() if grad is not None else torch.zeros_like(lam)
    if return_state:
        return grad, {k: v.detach() for k, v in s.items()}
    return grad


def _forward(problem: HyperProblem, state: dict[str, Tensor], lam: Tensor, a: int, b: int,
             stats: ReverseStats) -> dict[str, Tensor]:
    for t in range(a, b):
        g = problem.grad(state["w"], lam, t)
        state = {k: v.detach() for k, v in opt_step(problem.optimizer, state, g, t).items()}
        stats.forward_steps += 1
    return state


def checkpointed(problem: HyperProblem, lam: Tensor, steps: int,
                 stats: ReverseStats | None = None) -> Tensor:
    """Binomial (tree) checkpointing of the trajectory: O(log T) states, O(T log T) steps."""
    stats = stats if stats is not None else ReverseStats()
    lam = lam.detach()
    s0 = init_state(problem.optimizer, problem.w0.detach())
    stats.hold()
    s_t = _forward(problem, s0, lam, 0, steps, stats)
    stats.hold()
    adj, dlam = final_adjoint(problem, s_t, lam)
    stats.states -= 1  # s_T is no longer needed

    def sweep(a: int, b: int, s_a: dict[str, Tensor], adj_b: dict[str, Tensor]
              ) -> tuple[dict[str, Tensor], Tensor]:
        if b - a == 1:
            return step_vjp(problem, s_a, adj_b, lam, a)
        m = (a + b) // 2
        s_m = _forward(problem, s_a, lam, a, m, stats)
        stats.hold()
        adj_m, d1 = sweep(m, b, s_m, adj_b)
        del s_m
        stats.states -= 1
        adj_a, d2 = sweep(a, m, s_a, adj_m)
        return adj_a, d1 + d2

    if steps > 0:
        _, d = sweep(0, steps, s0, adj)
        dlam = dlam + d
    stats.states -= 1
    return dlam


def checkpoint_bound(steps: int) -> int:
    """The most states :func:`checkpointed` holds at once, ``max(1, ceil(log2 T)) + 1``:
    ``s_0`` throughout, plus ``s_T`` during the first forward run or one midpoint per level
    of the bisection during the sweep."""
    return max(1, math.ceil(math.log2(steps)) if steps > 1 else 0) + 1
