"""Per-weight importance scores of the pruning baselines, and the sweep that turns any of them
into "fraction removed vs test metric".

Every scorer returns ``name -> array`` of *prunability* (larger = removed first) over the
weight tensors of :func:`~bayesstruct.training.plain.weight_names`, so :func:`decide` ranks
them jointly over the layers:

=================  =====================================================  =====================
method             score                                                  source
=================  =====================================================  =====================
random             ``u ~ U(0, 1)`` per weight (seeded)                    --
magnitude          ``-|w|`` (of a net trained with L1 or L2)              Han et al. 2015
variational        ``log rho = -mu^2 / (2 sigma^2)`` of ``q(w)``          Graves 2011
OBD                ``-s``, ``s = H_ii w_i^2 / 2``                         LeCun et al. 1990
OBS                removal order of the greedy path (:mod:`.obs`)         Hassibi & Stork 1993
=================  =====================================================  =====================

:func:`sweep` evaluates a method over a grid of fractions. Without retraining it masks the
trained network (OBS: takes the compensated weights of its path instead). With ``retrain`` it
prunes iteratively as Han et al. do: at each fraction the scores are recomputed on the previous
fraction's retrained network (weights already removed stay removed), the mask is applied and
the network is retrained from there with the mask held (``train_plain(masks=...)``).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .. import logs
from ..data import Split
from ..training.plain import evaluate_net, weights
from .compression import apply_masks
from .decisions import decide, fraction_removed
from .hessian import diag_hessian, flatten_weights, hessian, unflatten_weights
from .obs import OBSPath, obs_path

__all__ = ["Scores", "magnitude_scores", "obd_scores", "obs_scores", "random_scores", "sweep"]

Scores = dict[str, np.ndarray]


def random_scores(net: nn.Module, seed: int = 0) -> Scores:
    """Uniform random prunability, a function of ``seed`` and the weight shapes only."""
    rng = np.random.default_rng(seed)
    return {n: rng.random(tuple(w.shape)) for n, w in weights(net).items()}


def magnitude_scores(net: nn.Module) -> Scores:
    """``-|w|``: the smallest weights go first."""
    return {n: -w.abs().cpu().double().numpy() for n, w in weights(net).items()}


def obd_scores(net: nn.Module, split: Split, *, method: str = "exact", l2: float = 0.0,
               **hessian_kw) -> Scores:
    """``-s_i`` with the OBD saliency ``s_i = H_ii w_i^2 / 2`` (LeCun, Denker, Solla 1990).

    ``H_ii`` is the diagonal of the training loss's Hessian by ``method`` (``exact``,
    ``gauss_newton`` or ``hutchinson``; :func:`~bayesstruct.pruning.hessian.diag_hessian`).
    """
    diag = diag_hessian(net, split, method=method, l2=l2, **hessian_kw)
    return {n: -(0.5 * diag[n] * w * w).cpu().double().numpy()
            for n, w in weights(net).items()}


def obs_scores(net: nn.Module, split: Split, fractions: Sequence[float], *,
               method: str = "exact", l2: float = 0.0, block: int | None = None,
               damping: float = 0.0, max_params: int = 20000, progress: bool = False,
               **hessian_kw) -> tuple[Scores, Callable[[Mapping[str, np.ndarray]], nn.Module]]:
    """OBS path over ``fractions``: scores (removal order) and ``masks -> network`` with the
    compensating updates applied.

    ``block`` weights are removed jointly per step (default ``max(1, P // 500)``: 500 steps to
    remove everything); the Hessian is ``hessian(net, split, method=method)`` plus ``l2 I``.
    """
    w = flatten_weights(net)
    p = w.numel()
    if p > max_params:
        raise ValueError(f"OBS needs the inverse of a {p}x{p} Hessian; the limit is "
                         f"max_params={max_params} weights (raise it if memory allows, or use "
                         "OBD)")
    h = hessian(net, split, method=method, l2=l2, max_params=max_params, **hessian_kw)
    counts = [int(round(f * p)) for f in fractions]
    path: OBSPath = obs_path(w, h, counts, block=block or max(1, p // 500), damping=damping,
                             progress=progress)
    flat = path.scores(p)
    scores = {n: v.cpu().numpy() for n, v in
              unflatten_weights(torch.as_tensor(flat), net).items()}

    def network(masks: Mapping[str, np.ndarray]) -> nn.Module:
        k = p - sum(int(np.sum(m)) for m in masks.values())
        out = copy.deepcopy(net)
        params = dict(out.named_parameters())
        with torch.no_grad():
            for n, v in unflatten_weights(path.weights_at(k), net).items():
                params[n].copy_(v.to(params[n].dtype))
        return out
    return scores, network


def sweep(net: nn.Module, scores: Scores | Callable[[nn.Module], Scores], split: Split,
          fractions: Sequence[float], *,
          retrain: Callable[[nn.Module, Mapping[str, np.ndarray]], object] | None = None,
          network: Callable[[Mapping[str, np.ndarray]], nn.Module] | None = None,
          method: str = "", progress: bool = False) -> list[dict[str, float | str]]:
    """One row per fraction: ``method, fraction, removed, acc, nll, seconds``.

    Args:
        net: the trained network the scores refer to (not modified).
        scores: a score dict, or ``net -> scores`` (re-evaluated on the retrained networks).
        retrain: ``(net, masks) -> ...`` retrains ``net`` in place with ``masks`` held; makes
            the sweep iterative (module docstring). Fractions are visited in increasing order.
        network: ``masks -> network`` for methods that change the kept weights (OBS).
    """
    if retrain is not None and network is not None:
        raise ValueError("retraining after OBS's compensating update is not supported")
    fractions = sorted(fractions)
    fixed = None if retrain is not None else (scores(net) if callable(scores) else scores)
    current = net
    removed_before: dict[str, np.ndarray] = {}
    rows = []
    for f in logs.progress(fractions, desc=method or "sweep", unit="fraction",
                           enabled=progress, leave=False):
        t0 = time.perf_counter()
        s = fixed if fixed is not None else (scores(current) if callable(scores) else scores)
        if removed_before:
            s = {k: np.where(removed_before[k], np.inf, v) for k, v in s.items()}
        masks = decide(s, fraction=f)
        if network is not None:
            pruned = network(masks)
        else:
            pruned = apply_masks(current, masks)
            if retrain is not None and fraction_removed(masks) > 0:
                retrain(pruned, masks)
        if retrain is not None:
            current = pruned
            removed_before = {k: ~m for k, m in masks.items()}
        ev = evaluate_net(pruned, split)
        rows.append({"method": method, "fraction": float(f), "removed": fraction_removed(masks),
                     "acc": ev["acc"], "nll": ev["nll"],
                     "seconds": time.perf_counter() - t0})
    return rows
