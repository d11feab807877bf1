"""Convergence diagnostics of a run's posterior (``bayesstruct diagnose RUN_DIR``).

What is summarised is the *structure*: every hyper-latent (ARD precisions, horseshoe and
group scales), the biases, and a fixed random sample of ``num_weights`` individual weights
(seeded, so two runs are compared on the same weights). For each, ArviZ's rank-normalised
split R-hat (Vehtari et al. 2021), bulk and tail ESS and the MCSE of the mean; per run, the
number of divergent transitions when the engine records them.

For a sampler (``nuts``, ``hmc``, ``sgld``, ``psgld``), warnings in words when

* R-hat > ``rhat_max`` (1.01): the chains have not mixed; run longer or re-parameterise;
* bulk or tail ESS < ``ess_min`` (100 per chain; 400 for 4 chains): too few effective draws
  for reliable means / intervals;
* any divergent transition: the sampler met curvature it could not follow (a funnel);
* one chain only: R-hat cannot be computed.

Draws from a variational posterior (engine ``svi``) are independent draws from ``q``: their
R-hat and ESS say nothing about whether the optimisation converged, so none of the above is
said for them. What is checked instead:

* the loss trace (negative ELBO per example, group ``optimization``): still falling over the
  last fifth of the epochs by more than ``loss_tol`` (5 %) of its total decrease, or rising;
* q's scales (group ``variational_scale``) of each weight site: collapsed (most below
  ``scale_min``, 1e-5: q is a point mass) or not spread at all (every weight the same scale:
  they have not moved from their common initial value);
* a MAP run (Delta guide) has no spread to diagnose, and the report says so.

Figures: rank plots of the structural quantities (``diagnose-rank.png``; the trace when there
is one chain), a forest plot of the per-unit scales (``diagnose-forest.png``: precisions as
``1/sqrt(alpha)``, horseshoe/group scales as they are), and the histogram of per-weight
``log rho`` (``diagnose-log-rho.png``).
"""

from __future__ import annotations

import itertools
import os
import warnings
from contextlib import contextmanager
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
    and named by their coordinates as ArviZ names the others' entries (``<site>[0, r3c5]``;
    positions where a dimension has no coordinate); dims ``(chain, draw)`` for the weights."""
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
            at = [str(draws[name][d].values[int(i)])
                  for d, i in zip(draws[name].dims[2:], idx, strict=True)]
            label = f"{name}[{', '.join(at)}]"
            out[label] = xr.DataArray(flat[:, :, p - offsets[k]], dims=("chain", "draw"))
    return xr.Dataset(out)


def diagnose(post: InferenceData, *, num_weights: int = 16, rhat_max: float = 1.01,
             ess_per_chain: float = 100.0, seed: int = 0, loss_tol: float = 0.05,
             scale_min: float = 1e-5) -> Diagnosis:
    """ArviZ summary of :func:`structural_quantities` and the warnings of the module docstring
    (the sampler's for a sampler, the loss trace's and q's scales' for ``svi``)."""
    q = structural_quantities(post, num_weights, seed)
    chains, ndraws = int(post.posterior.sizes["chain"]), int(post.posterior.sizes["draw"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = az.summary(q, kind="all", round_to="none")
    engine = str(post.attrs.get("engine", "?"))
    max_rhat = None
    if engine == "svi":
        notes = _svi_notes(post, loss_tol, scale_min)
    else:
        notes, max_rhat = _sampler_notes(summary, chains, rhat_max, ess_per_chain)
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


def _sampler_notes(summary, chains: int, rhat_max: float, ess_per_chain: float
                   ) -> tuple[list[str], float | None]:
    """R-hat (several chains) and bulk/tail ESS warnings of a sampler's draws."""
    notes: list[str] = []
    max_rhat = None
    ess_min = ess_per_chain * chains
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
    return notes, max_rhat


def _svi_notes(post: InferenceData, loss_tol: float, scale_min: float) -> list[str]:
    """What can be said of a variational run: the loss trace and q's scales."""
    notes = ["these are independent draws from the variational posterior q: R-hat and ESS "
             "describe q's draws, not whether SVI converged; the loss trace and q's scales "
             "are checked instead"]
    families = {}
    if "variational_loc" in post.groups():
        families = {n: str(v.attrs.get("family", "?"))
                    for n, v in post.variational_loc.data_vars.items()}
    weights = [n for n in weight_sites(post) if n in families]
    if weights and all(families[n] == "Delta" for n in weights):
        notes.append("a MAP point estimate (Delta guide): q has no spread, so the draws are "
                     "one point and the only convergence check is the loss trace")
    notes += _loss_notes(post, loss_tol)
    for name in weights:
        if families[name] != "Normal":
            continue
        scale = np.abs(post.variational_scale[name].values.ravel())
        if scale.size < 2:
            continue
        tiny = float(np.mean(scale < scale_min))
        spread = float(scale.std() / scale.mean()) if scale.mean() > 0 else 0.0
        if tiny > 0.5:
            notes.append(f"q's scale collapsed for {100 * tiny:.0f} % of the weights of {name} "
                         f"(below {scale_min:g}): q is a point mass there, so its intervals, "
                         "rho and signal-to-noise ratios mean little; check kl_weight (below 1 "
                         "it down-weights the prior) and the learning rate")
        elif spread < 0.01:
            notes.append(f"q's scales of {name} are all about {float(np.median(scale)):.3g} "
                         f"(relative spread {100 * spread:.2g} %): they have not moved apart "
                         "from their common initial value, so q's widths are not yet learned "
                         "(and its intervals not comparable with a sampler's); train longer "
                         "or raise the learning rate")
    return notes


def _loss_notes(post: InferenceData, loss_tol: float) -> list[str]:
    """Whether the loss (negative ELBO per example) has levelled off: its drop over the last
    fifth of the epochs against its total decrease (epochs of a KL warm-up left out)."""
    hist = post.optimization if "optimization" in post.groups() else None
    if hist is None or "loss" not in hist:
        return ["no loss trace recorded: whether SVI converged cannot be checked here"]
    loss = np.asarray(hist["loss"].values, dtype=float)
    if "kl_weight" in hist:  # compare only epochs at the final KL weight
        kl = np.asarray(hist["kl_weight"].values, dtype=float)
        loss = loss[np.isclose(kl, kl[-1])]
    loss = loss[np.isfinite(loss)]
    if len(loss) < 4:
        return [f"only {len(loss)} epochs of loss trace (at the final KL weight): too few to "
                "tell whether SVI converged; train for more epochs"]
    k = max(2, len(loss) // 5)
    before, last = float(loss[-2 * k:-k].mean()), float(loss[-k:].mean())
    total = float(loss[0] - loss.min())
    if total <= 0:
        total = float(np.ptp(loss))
    if total <= 0:
        return []
    drop = before - last
    if drop > loss_tol * total:
        return [f"the loss is still falling: over the last {k} of {len(loss)} epochs it fell "
                f"from {before:.4g} to {last:.4g} per example ({100 * drop / total:.0f} % of "
                "its total decrease), so q is not yet the optimum; train longer (more epochs) "
                "or raise the learning rate"]
    if -drop > loss_tol * total:
        return [f"the loss rose over the last {k} of {len(loss)} epochs (from {before:.4g} to "
                f"{last:.4g} per example): the optimisation is unstable; lower the learning "
                "rate"]
    return []


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
    shown = _some_scalars(q, 12)
    chains = int(post.posterior.sizes["chain"])
    with _arviz_plotting():
        if chains > 1:
            axes = az.plot_rank(shown)
        else:
            axes = az.plot_trace(shown, compact=True)
    fig = np.asarray(axes).ravel()[0].figure
    fig.set_layout_engine("constrained")
    caption = ("rank plots: near-uniform bars = mixed chains" if chains > 1 else
               "one chain, so no rank plots: density and draws in order")
    written.append(save_figure(fig, out / "diagnose-rank.png",
                               f"structural quantities ({caption})"))

    scales = _unit_scales(post)
    if scales:
        with _arviz_plotting():
            rows = sum(v.shape[-1] for v in scales.values())
            axes = az.plot_forest(xr.Dataset(scales), combined=True, hdi_prob=0.9,
                                  figsize=(8, 1 + 0.18 * rows))
        fig = np.asarray(axes).ravel()[0].figure
        fig.set_layout_engine("constrained")  # room for the unit labels on the left
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
                                   "relative density of each weight"))
    return written


def _some_scalars(q: xr.Dataset, k: int) -> xr.Dataset:
    """At most ``k`` scalar quantities of ``q`` for the rank / trace plot, taken in turn from
    each variable (its first element, then its second, ...), so every kind is shown and the
    figure stays within ArviZ's subplot limit. Elements are named by their coordinates, as
    ArviZ names them (``<variable>[0, r3c5]``)."""
    per_var = []
    for name, v in q.data_vars.items():
        vals = v.values.reshape(*v.shape[:2], -1)
        coords = [v[d].values for d in v.dims[2:]]  # named as ArviZ names them: [0, r3c5]
        labels = [name] if v.ndim == 2 else [
            f"{name}[{', '.join(str(c[i]) for c, i in zip(coords, idx, strict=True))}]"
            for idx in np.ndindex(v.shape[2:])]
        per_var.append((labels, vals))
    out: dict[str, xr.DataArray] = {}
    for i in range(max((len(labels) for labels, _ in per_var), default=0)):
        for labels, vals in per_var:
            if i < len(labels) and len(out) < k:
                out[labels[i]] = xr.DataArray(vals[:, :, i], dims=("chain", "draw"))
        if len(out) >= k:
            break
    return xr.Dataset(out)


#: what ArviZ 0.23's matplotlib backend makes matplotlib >= 3.11 say on every plot_trace (it
#: passes a dict as ``alias_mapping`` to ``normalize_kwargs``): ArviZ's call, not ours
_ARVIZ_ALIAS_MAPPING = r"Passing a dict or None as alias_mapping to normalize_kwargs"


@contextmanager
def _arviz_plotting():
    """Around ArviZ plotting calls: silence exactly the deprecation matplotlib raises about
    ArviZ's own code (any other warning still reaches the caller)."""
    from matplotlib import MatplotlibDeprecationWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_ARVIZ_ALIAS_MAPPING,
                                category=MatplotlibDeprecationWarning)
        yield


def _unit_scales(post: InferenceData) -> dict[str, xr.DataArray]:
    """Per-unit / per-group scales: ARD precisions as ``1/sqrt(alpha)``, other positive
    hyper-latents as they are (at most 64 entries per variable, for a readable forest), each
    entry labelled by the posterior's coordinates of its unit (``"0,r3c5"``: output unit 0,
    pixel r3c5), so the forest names the same units as the rest of the run."""
    weights = set(weight_sites(post))
    out = {}
    for name, v in post.posterior.data_vars.items():
        if name in weights or name.endswith(".bias") or v.ndim < 3:
            continue
        vals = v.values
        if name.endswith(".alpha"):
            vals, label = 1.0 / np.sqrt(vals), f"1/sqrt({name})"
        elif np.all(vals > 0):
            label = name
        else:
            continue
        vals = vals.reshape(*vals.shape[:2], -1)[:, :, :64]
        units = [",".join(str(c) for c in combo) for combo in
                 itertools.product(*(v[d].values for d in v.dims[2:]))][:64]
        out[label] = xr.DataArray(vals, dims=("chain", "draw", f"{name}_unit"),
                                  coords={f"{name}_unit": units})
    return out
