"""Pruning by the signal-to-noise ratio ``lambda = |mu / sigma|`` (Graves 2011; Blundell et al.
2015).

For a Normal factor ``q(w_i) = N(mu_i, sigma_i^2)`` and a zero-mode prior the relative density
is ``rho_i = exp(-lambda_i^2 / 2)``: a weight with small ``lambda_i`` puts nearly as much density
at 0 as at its mode and is removed. The three SNR curves are the network evaluated at the
posterior mean with every weight of ``lambda_i < lambda`` set to zero, against ``lambda``:
parameters kept, test accuracy / macro F1, and test log-likelihood. (Removing the weights with
*large* lambda instead would invert the formula; the formula is followed.)

``lambda`` is computed from the moments of the *network* weights under ``q``
(:func:`~bayesstruct.pruning.effective_moments`), so group-scale priors are covered too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from .. import logs
from ..data import Split
from ..errors import UserInputError
from ..models.bayesnet import BayesianNet
from ..posterior import InferenceData
from ..training import evaluate
from .compression import mask_params
from .decisions import check_matches
from .units import effective_moments, mean_values

__all__ = ["lambda_grid", "removable", "snr", "snr_curve"]


def snr(post: InferenceData, model: BayesianNet) -> dict[str, np.ndarray]:
    """``lambda_i = |E_q w_i| / sd_q(w_i)`` for every weight site (needs variational factors)."""
    return {k: np.abs(m) / np.sqrt(np.maximum(v, np.finfo(np.float64).tiny))
            for k, (m, v) in effective_moments(post, model).items()}


def lambda_grid(scores: Mapping[str, np.ndarray], num: int = 40,
                fractions: Sequence[float] = tuple(np.linspace(0.0, 0.98, 50))) -> np.ndarray:
    """Thresholds for the curves: 0, ``num`` log-spaced values up to the largest ``lambda``, and
    the quantiles of ``lambda`` at ``fractions`` (so removed fractions are evenly resolved)."""
    flat = np.concatenate([np.ravel(v) for v in scores.values()])
    top = float(flat.max())
    logs = np.geomspace(max(top * 1e-3, 1e-3), top, num) if top > 0 else np.array([])
    return np.unique(np.concatenate([[0.0], logs, np.quantile(flat, fractions)]))


@torch.no_grad()
def snr_curve(model: BayesianNet, post: InferenceData, split: Split,
              lambdas: Sequence[float] | None = None,
              scores: Mapping[str, np.ndarray] | None = None, *, progress: bool = False,
              desc: str = "SNR curve") -> list[dict[str, float]]:
    """One row per threshold: ``lambda``, ``weights_kept``, ``params_kept`` (biases
    included), ``removed`` (fraction of weights), ``acc``, ``f1_macro``, ``nll`` (per
    example) and ``log_lik`` (summed over the split) of the posterior-mean network with the
    weights of ``lambda_i < lambda`` removed. ``progress``: report the thresholds done
    (:func:`bayesstruct.logs.progress`, labelled ``desc``)."""
    check_matches(post, model)
    scores = dict(scores) if scores is not None else snr(post, model)
    lambdas = lambda_grid(scores) if lambdas is None else np.asarray(lambdas, dtype=np.float64)
    if np.isnan(lambdas).any():
        raise UserInputError(f"lambdas hold NaN ({lambdas.tolist()}); thresholds must be numbers")
    device = split.x.device
    params = mean_values(post, model, device)
    n_weights = sum(v.size for v in scores.values())
    n_bias = sum(s.numel for s in model.sites if s.role != "weight")
    rows = []
    for lam in logs.progress(lambdas, desc=desc, unit="threshold", enabled=progress):
        masks = {k: v >= lam for k, v in scores.items()}
        kept = int(sum(int(m.sum()) for m in masks.values()))
        ev = evaluate(model, mask_params(params, masks), split)
        rows.append({"lambda": float(lam), "weights_kept": kept, "params_kept": kept + n_bias,
                     "removed": 1.0 - kept / n_weights, "acc": ev["acc"],
                     "f1_macro": ev["f1_macro"], "nll": ev["nll"],
                     "log_lik": -ev["nll"] * len(split)})
    return rows


def removable(rows: Sequence[Mapping[str, float]], tolerance: float = 0.01,
              metric: str = "acc") -> dict[str, float]:
    """The largest fraction of weights removed on the curve with ``metric`` at most
    ``tolerance`` (absolute, 0.01 = 1 pp) below the unpruned network's, with its ``lambda``."""
    base = next(r for r in sorted(rows, key=lambda r: r["lambda"]))
    ok = [r for r in rows if r[metric] >= base[metric] - tolerance]
    best = max(ok, key=lambda r: (r["removed"], -r["lambda"]))
    return {"removed": best["removed"], "lambda": best["lambda"], metric: best[metric],
            "dense": base[metric], "tolerance": tolerance}
