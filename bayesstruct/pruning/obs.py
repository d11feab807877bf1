"""Optimal Brain Surgeon (Hassibi & Stork 1993): remove weights with the compensating update.

Around a minimum ``w`` of the training loss with Hessian ``H``, the second-order model of the
loss after a change ``dw`` is ``dL = 1/2 dw^T H dw``. Removing weight ``q`` means the constraint
``e_q^T (w + dw) = 0``; the constrained minimum is

    dw  = -(w_q / [H^-1]_qq) H^-1 e_q,        L_q = w_q^2 / (2 [H^-1]_qq)

(the saliency ``L_q`` is the loss increase). Removing a set ``Q`` jointly:

    dw  = -H^-1 E_Q ([H^-1]_QQ)^-1 w_Q,       L_Q = 1/2 w_Q^T ([H^-1]_QQ)^-1 w_Q.

After the removal the remaining weights' inverse Hessian is the Schur complement
``H^-1 - H^-1 E_Q ([H^-1]_QQ)^-1 E_Q^T H^-1`` (which equals ``(H_RR)^-1`` and has zero rows and
columns at ``Q``), so a greedy path of removals costs ``O(P^2 |Q|)`` per step after one
``O(P^3)`` inversion. :func:`obs_path` removes ``block`` weights per step (``block = 1`` is
Hassibi & Stork's one-at-a-time procedure; larger blocks are the joint update above, chosen by
the current saliencies) and records the weights at the requested numbers of removals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import logs

__all__ = ["OBSPath", "obs_path", "obs_remove", "obs_saliency"]


def obs_saliency(w: torch.Tensor, h_inv_diag: torch.Tensor) -> torch.Tensor:
    """``L_q = w_q^2 / (2 [H^-1]_qq)`` for every weight."""
    return w * w / (2.0 * h_inv_diag)


def obs_remove(w: torch.Tensor, h_inv: torch.Tensor, q: Sequence[int] | torch.Tensor
               ) -> tuple[torch.Tensor, float]:
    """Weights after removing the set ``q`` with the compensating update, and ``L_Q``.

    Returns ``(w + dw, L_Q)``; ``(w + dw)[q]`` is exactly zero.
    """
    q = torch.as_tensor(q, dtype=torch.long, device=w.device).reshape(-1)
    s = h_inv[q][:, q]
    coef = torch.linalg.solve(s, w[q])
    new = w - h_inv[:, q] @ coef
    new[q] = 0.0
    return new, float(0.5 * w[q] @ coef)


@dataclass
class OBSPath:
    """A greedy OBS removal path.

    Attributes:
        order: weight indices in the order they were removed.
        weights: ``number removed -> weight vector`` at every requested count.
        loss_increase: ``number removed -> sum of the predicted L_Q`` up to that count.
    """

    order: np.ndarray
    weights: dict[int, torch.Tensor] = field(default_factory=dict)
    loss_increase: dict[int, float] = field(default_factory=dict)

    def scores(self, num_weights: int) -> np.ndarray:
        """Per-weight prunability that reproduces the path's masks through ``decide``: the
        ``k``-th weight removed scores ``num_weights - k``, weights never removed score 0."""
        s = np.zeros(num_weights)
        s[self.order] = num_weights - np.arange(len(self.order))
        return s

    def weights_at(self, removed: int) -> torch.Tensor:
        if removed not in self.weights:
            raise KeyError(f"the OBS path holds the weights after {sorted(self.weights)} "
                           f"removals, not {removed}")
        return self.weights[removed]


def obs_path(w: torch.Tensor, hess: torch.Tensor, counts: Sequence[int], *, block: int = 1,
             damping: float = 0.0, progress: bool = False) -> OBSPath:
    """Remove weights greedily by OBS saliency until each count in ``counts`` is reached.

    Args:
        w: the weight vector at the optimum (``P``).
        hess: the ``P x P`` Hessian (or Gauss-Newton matrix) of the training loss at ``w``.
        counts: numbers of removed weights at which to record the weights.
        block: at most this many weights are removed jointly per step.
        damping: ``lambda`` of ``(H + lambda I)^-1`` (for singular Hessians, e.g. pixels that are
            constant over the training set and no L2 term).
    """
    p = w.numel()
    if hess.shape != (p, p):
        raise ValueError(f"hess has shape {tuple(hess.shape)}; expected ({p}, {p})")
    if block < 1:
        raise ValueError(f"block must be >= 1 (got {block})")
    counts = sorted({int(c) for c in counts})
    if counts and not 0 <= counts[0] <= counts[-1] <= p:
        raise ValueError(f"counts must lie in 0..{p} (got {counts[0]}..{counts[-1]})")
    dtype = torch.float64
    h = hess.to(dtype).clone()
    h.diagonal().add_(damping)
    try:
        chol = torch.linalg.cholesky(h)
    except torch.linalg.LinAlgError as e:
        raise ValueError("the Hessian is not positive definite; use the Gauss-Newton matrix, an "
                         "L2 term or damping > 0") from e
    h_inv = torch.cholesky_inverse(chol)
    del h, chol
    w = w.detach().to(dtype).clone()
    removed = torch.zeros(p, dtype=torch.bool, device=w.device)
    order: list[np.ndarray] = []
    path = OBSPath(order=np.zeros(0, dtype=np.int64))
    total, n_removed = 0.0, 0
    bar = logs.progress(total=counts[-1] if counts else 0, desc="OBS", unit="weight",
                        enabled=progress, leave=False)
    for target in counts:
        while n_removed < target:
            b = min(block, target - n_removed)
            sal = obs_saliency(w, h_inv.diagonal())
            sal[removed] = torch.inf
            q = torch.topk(sal, b, largest=False).indices
            w, dl = obs_remove(w, h_inv, q)
            s = h_inv[q][:, q]
            h_inv.addmm_(h_inv[:, q], torch.linalg.solve(s, h_inv[q, :]), alpha=-1.0)
            h_inv[q, :] = 0.0
            h_inv[:, q] = 0.0
            w[removed] = 0.0
            removed[q] = True
            order.append(q.cpu().numpy())
            total += dl
            n_removed += b
            bar.update(b)
        path.weights[target] = w.clone()
        path.loss_increase[target] = total
    bar.close()
    path.order = np.concatenate(order) if order else np.zeros(0, dtype=np.int64)
    return path
