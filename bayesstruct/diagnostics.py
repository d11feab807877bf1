"""Convergence diagnostics of a run's posterior (``bayesstruct diagnose RUN_DIR``; M9).

What is summarised is the *structure*: every hyper-latent (ARD precisions, horseshoe and
group scales), the biases, and a fixed random sample of ``num_weights`` individual weights
(seeded, so two runs are compared on the same weights). For each, ArviZ's rank-normalised
split R-hat (Vehtari et al. 2021), bulk and tail ESS and the MCSE of the mean; per run, the
number of divergent transitions when the engine records them.

Warnings, in words, when

* R-hat > ``rhat_max`` (1.01): the chains have not mixed; run longer or re-parameterise;
* bulk or tail ESS < ``ess_min`` (100 per chain; 400 for 4 chains): too few effective draws
  for reliable means / intervals;
* any divergent transition: the sampler met curvature it could not follow (a funnel);
* one chain only: R-hat cannot be computed.

Draws from a variational posterior (engine ``svi``) are independent draws from ``q``: their
R-hat and ESS say nothing about whether the optimisation converged, and the report says so.

Figures: rank plots of the structural quantities (``diagnose-rank.png``; the trace when there
is one chain), a forest plot of the per-unit scales (``diagnose-forest.png``: precisions as
``1/sqrt(alpha)``, horseshoe/group scales as they are), and the histogram of per-weight
``log rho`` (``diagnose-log-rho.png``, M5).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from .posterior import InferenceData, weight_sites

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az

__all__ = ["Diagnosis", "diagnose", "structural_quantities"]


@dataclass
class Diagnosis:
    """The summary table (one row per scalar quantity), counts and warnings."""

    summary: object  # pandas.DataFrame from az.summary
    engine: str
    num_chains: int
    num_draws: int
    max_rhat: float | None
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int | None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"engine": self.engine, "num_chains": self.num_chains,
                "num_draws": self.num_draws, "max_rhat": self.max_rhat,
                "min_ess_bulk": self.min_ess_bulk, "min_ess_tail": self.min_ess_tail,
                "divergences": self.divergences, "warnings": list(self.warnings)}


def structural_quantities(post: InferenceData, num_weights: int = 16, seed: int = 0
                          ) -> xr.Dataset:
    """Hyper-latents and biases whole, plus ``num_weights`` weights drawn at random (seeded)
    and named ``<site>[i,j]``; dims ``(chain, draw)`` for the weights."""
    draws = post.posterior
    weights = weight_sites(post)
    out = {n: v for n, v in draws.data_vars.items() if n not in weights}
    rng = np.random.default_rng(seed)
    sizes = np.array([int(np.prod(draws[n].shape[2:])) for n in weights])
    if num_weights and sizes.sum():
        picks = rng.choice(int(sizes.sum()), size=min(num_weights, int(sizes.sum())),
                           replace=False)
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        for p in np.sort(picks):
            k = int(np.searchsorted(offsets, p, side="right") - 1)
            name = weights[k]
            idx = np.unravel_index(int(p - offsets[k]), draws[name].shape[2:])
            flat = draws[name].values.reshape(*draws[name].shape[:2], -1)
            label = f"{name}[{','.join(str(int(i)) for i in idx)}]"
            out[label] = xr.DataArray(flat[:, :, p - offsets[k]], dims=("chain", "draw"))
    return xr.Dataset(out)


def diagnose(post: InferenceData, *, num_weights: int = 16, rhat_max: float = 1.01,
             ess_per_chain: float = 100.0, seed: int = 0) -> Diagnosis:
    """ArviZ summary of :func:`structural_quantities` and the warnings of the module docstring."""
    q = structural_quantities(post, num_weights, seed)
    chains, ndraws = int(post.posterior.sizes["chain"]), int(post.posterior.sizes["draw"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = az.summary(q, kind="all", round_to="none")
    engine = str(post.attrs.get("engine", "?"))
    ess_min = ess_per_chain * chains
    notes: list[str] = []
    if engine == "svi":
        notes.append("these are independent draws from the variational posterior q: R-hat "
                     "and ESS describe q's draws, not whether SVI converged (look at the "
                     "loss curve instead)")
    max_rhat = None
    if chains < 2:
        notes.append("one chain only: R-hat needs several chains; run with num_chains >= 4 "
                     "to check mixing")
    else:
        max_rhat = float(np.nanmax(summary["r_hat"].values))
        bad = summary.index[summary["r_hat"] > rhat_max].tolist()
        if bad:
            notes.append(f"R-hat above {rhat_max} for {len(bad)} of {len(summary)} quantities "
                         f"(worst {max_rhat:.3f}: {_names(summary, 'r_hat', bad)}): the chains "
                         "disagree, so the draws are not yet from the posterior; run longer "
                         "(more warm-up and draws) or re-parameterise")
    for col, what in (("ess_bulk", "bulk"), ("ess_tail", "tail")):
        low = summary.index[summary[col] < ess_min].tolist()
        if low:
            notes.append(f"{what} ESS below {ess_min:.0f} ({ess_per_chain:.0f} per chain) for "
                         f"{len(low)} of {len(summary)} quantities (lowest "
                         f"{float(summary[col].min()):.0f}: {_names(summary, col, low, True)}): "
                         f"{'posterior means' if what == 'bulk' else 'interval ends'} are "
                         "uncertain; draw more or thin less")
    divergences = None
    if "sample_stats" in post.groups() and "diverging" in post.sample_stats:
        divergences = int(post.sample_stats["diverging"].values.sum())
        if divergences:
            remedy = ("raise target_accept (e.g. 0.95; the hierarchy is already sampled "
                      "non-centred)" if post.attrs.get("noncentred") else
                      "raise target_accept or sample the hierarchy non-centred "
                      "(noncentred: true)")
            notes.append(f"{divergences} divergent transitions of {chains * ndraws}: the "
                         "sampler met curvature it could not follow (typically a funnel "
                         f"between a scale and its weights); {remedy}")
    return Diagnosis(summary, engine, chains, ndraws, max_rhat,
                     float(summary["ess_bulk"].min()), float(summary["ess_tail"].min()),
                     divergences, notes)


def _names(summary, col: str, names: list[str], ascending: bool = False, k: int = 3) -> str:
    order = summary.loc[names, col].sort_values(ascending=ascending).index.tolist()
    shown = ", ".join(order[:k])
    return shown + (f" and {len(order) - k} more" if len(order) > k else "")


def plot_diagnostics(post: InferenceData, out: str | os.PathLike, *, num_weights: int = 16,
                     seed: int = 0, log_rho: dict[str, np.ndarray] | None = None
                     ) -> list[Path]:
    """Write the rank (or trace) plot, the forest of per-unit scales and the log-rho histogram
    into folder ``out``; return the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plots import save_figure

    out = Path(out)
    written = []
    q = structural_quantities(post, num_weights, seed)
    names = list(q.data_vars)[:12]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if int(post.posterior.sizes["chain"]) > 1:
            axes = az.plot_rank(q, var_names=names)
        else:
            axes = az.plot_trace(q, var_names=names, compact=True)
    fig = np.asarray(axes).ravel()[0].figure
    written.append(save_figure(fig, out / "diagnose-rank.png", "structural quantities "
                               "(rank plots: near-uniform bars = mixed chains)"))

    scales = _unit_scales(post)
    if scales:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows = sum(v.shape[-1] for v in scales.values())
            axes = az.plot_forest(xr.Dataset(scales), combined=True, hdi_prob=0.9,
                                  figsize=(6, 1 + 0.18 * rows))
        fig = np.asarray(axes).ravel()[0].figure
        written.append(save_figure(fig, out / "diagnose-forest.png",
                                   "per-unit prior scales (90 % HDI)"))

    if log_rho:
        values = np.concatenate([np.ravel(v) for v in log_rho.values()])
        fig, ax = plt.subplots(figsize=(6, 3.5), constrained_layout=True)
        ax.hist(np.maximum(values, -50), bins=60, color="C0")
        ax.axvline(np.log(0.5), color="C3", ls="--", label="rho = 0.5")
        ax.set_xlabel("log rho (per weight; clipped at -50)")
        ax.set_ylabel("weights")
        ax.legend()
        written.append(save_figure(fig, out / "diagnose-log-rho.png",
                                   "relative density of each weight (M5)"))
    return written


def _unit_scales(post: InferenceData) -> dict[str, xr.DataArray]:
    """Per-unit / per-group scales: ARD precisions as ``1/sqrt(alpha)``, other positive
    hyper-latents as they are (at most 64 entries per variable, for a readable forest)."""
    weights = set(weight_sites(post))
    out = {}
    for name, v in post.posterior.data_vars.items():
        if name in weights or name.endswith(".bias") or v.ndim < 3:
            continue
        vals = v.values
        if name.endswith(".alpha"):
            vals, label = 1.0 / np.sqrt(vals), f"{name} -> 1/sqrt(alpha)"
        elif np.all(vals > 0):
            label = name
        else:
            continue
        vals = vals.reshape(*vals.shape[:2], -1)[:, :, :64]
        out[label] = xr.DataArray(vals, dims=("chain", "draw", f"{name}_unit"))
    return out
