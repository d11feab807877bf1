"""The relative variational density of weights and units.

    rho(w | h) = q_w(mode of p(w | h)) / q_w(mode of q_w)

For a Normal factor ``q = N(m, s^2)`` and a prior with mode ``mu_p`` (0 for the zero-mean
priors) this is ``rho = exp(-(m - mu_p)^2 / (2 s^2))``: a function of the signal-to-noise
ratio ``|m / s|``. ``rho`` near 1 means the posterior puts as much density at the prior's mode
as at its own: the weight is unimportant and is removed first. (A reading that removes the
weights with rho near 0 first would invert the formula; the formula is followed.)

A unit's (group's) rho is that of the whole group's factor, the product over its weights:
``log rho_g = sum_{i in g} log rho_i`` -- the same definition applied to the vector of the
group's weights, since ``q`` factorises.

The closed form applies to any Normal mean-field posterior stored in the ``variational_loc`` /
``variational_scale`` groups: bayesstruct's ``MeanField`` guide, and Pyro's own ``AutoNormal``
guide (whose real-valued sites are Normal factors; :func:`bayesstruct.posterior.
autonormal_factors`).
"""

from __future__ import annotations

import numpy as np

from ..posterior import InferenceData, mode_array, weight_sites
from .decisions import check_matches

__all__ = ["kde_log_relative_density", "log_relative_density", "normal_weight_factors",
           "relative_density", "silverman_bandwidth"]

LEVELS = ("weight", "unit")


def normal_weight_factors(post: InferenceData):
    """Yield ``(site, m, s, prior_mode)`` (float64 arrays) of every weight site whose
    variational factor is Normal; a clear error when the posterior has no factors."""
    if "variational_loc" not in post.groups():
        engine = post.attrs.get("engine", "?")
        guide = post.attrs.get("guide", "")
        raise ValueError(
            f"this posterior (engine {engine} {guide}) has no variational density to evaluate; "
            "rho needs a guide with a density (meanfield, or Pyro's AutoNormal). For point "
            "estimates use "
            "magnitude scores (pruning.magnitude).")
    for name, loc in post.variational_loc.data_vars.items():
        if loc.attrs.get("family") != "Normal" or "prior_mode" not in loc.attrs:
            continue
        yield (name, loc.values.astype(np.float64),
               post.variational_scale[name].values.astype(np.float64),
               mode_array(loc.attrs["prior_mode"], loc.shape))


def log_relative_density(post: InferenceData, level: str = "weight",
                         method: str = "auto", model=None) -> dict[str, np.ndarray]:
    """``log rho`` of every weight site (``level="weight"``) or per input unit (``"unit"``).

    ``method``: ``closed_form`` (Normal variational factors), ``kde`` (from the posterior
    draws, :func:`kde_log_relative_density`), or ``auto`` (closed form when the posterior has
    variational factors, else KDE: MCMC, SGLD). Unit level sums over every dimension but dim 1
    (the input unit / input channel). With ``model`` given, a posterior whose weight sites are
    not the model's is refused (:func:`~bayesstruct.pruning.decisions.check_matches`), and
    the weights are the *network's* (:mod:`~bayesstruct.pruning.units`): for a group-scale
    prior (BC-GNJ, BC-GHS, IBP), whose sites hold ``w~``, rho is that of ``w = theta_g w~`` --
    by KDE of its draws, or in closed form from its moments under ``q``
    (:func:`~bayesstruct.pruning.units.effective_moments`, a Gaussian fit:
    ``log rho = -(E[w] - mode)^2 / (2 Var[w])``). Without ``model`` (and for the priors whose
    sites are the weights) the sites' own values are scored.
    """
    if model is not None:
        check_matches(post, model)
    if level not in LEVELS:
        raise ValueError(f"level={level!r}; allowed: {', '.join(LEVELS)}")
    if method not in ("auto", "closed_form", "kde"):
        raise ValueError(f"method={method!r}; allowed: auto, closed_form, kde")
    if method == "kde" or (method == "auto" and "variational_loc" not in post.groups()
                           and post.attrs.get("engine") not in (None, "svi")):
        out = kde_log_relative_density(post, model=model)
    else:
        out = {name: -((m - mode) ** 2) / (2.0 * s * s)
               for name, m, s, mode in normal_weight_factors(post)}
        if model is not None:
            out.update(_effective_closed_form(post, model, set(out)))
    if level == "unit":
        out = {k: v.sum(axis=tuple(d for d in range(v.ndim) if d != 1))
               for k, v in out.items() if v.ndim >= 2}
    return out


def _effective_closed_form(post: InferenceData, model, names: set[str]
                           ) -> dict[str, np.ndarray]:
    """``-(E[w] - mode)^2 / (2 Var[w])`` of the group-scaled sites' network weights."""
    from .units import effective_moments, scaled_sites

    scaled = [k for k in scaled_sites(model) if k in names]
    if not scaled:
        return {}
    moments = effective_moments(post, model)
    out = {}
    for k in scaled:
        mean, var = moments[k]
        mode = mode_array(post.variational_loc[k].attrs.get("prior_mode", 0.0), mean.shape)
        out[k] = -((mean - mode) ** 2) / (2.0 * np.maximum(var, np.finfo(np.float64).tiny))
    return out


def silverman_bandwidth(draws: np.ndarray) -> np.ndarray:
    """Silverman's rule per column: ``h = 0.9 min(sd, IQR / 1.34) n^(-1/5)`` (``sd`` if the IQR
    is 0; a tiny floor for constant columns)."""
    n = draws.shape[0]
    sd = draws.std(axis=0, ddof=1)
    q75, q25 = np.percentile(draws, [75, 25], axis=0)
    iqr = (q75 - q25) / 1.34
    spread = np.where(iqr > 0, np.minimum(sd, iqr), sd)
    return np.maximum(0.9 * spread * n ** (-0.2), 1e-12)


def kde_log_relative_density(post: InferenceData, *, max_draws: int = 2000, grid: int = 128,
                             model=None) -> dict[str, np.ndarray]:
    """``log rho = log q^(mode_p) - max_x log q^(x)`` per weight from the posterior draws.

    ``q^`` is a Gaussian kernel density estimate per weight with Silverman's bandwidth
    (:func:`silverman_bandwidth`) over at most ``max_draws`` draws (evenly thinned over
    chains x draws); its mode is the maximum over ``grid`` points spanning the draws' range.
    Computed in log space (log-sum-exp), vectorised over blocks of weights (about 64 MB of
    temporaries per block). For
    Gaussian draws ``E q^(x) = N(x; m, s^2 + h^2)``, so the estimate approaches the closed form
    ``-m^2 / 2 s^2`` as ``h -> 0`` (tested against ``-m^2 / 2 (s^2 + h^2)``).

    With ``model`` the draws are those of the network weights
    (:func:`~bayesstruct.pruning.units.effective_draws`: ``w = theta_g w~`` per draw for the
    group-scale priors; the sites' own draws for the others, the same numbers as without).
    """
    names = [n for n in weight_sites(post) if n in post.posterior]
    if model is not None:
        from .units import effective_draws, scaled_sites

        scaled = set(scaled_sites(model))
        eff = effective_draws(post, model, [n for n in names if n in scaled], max_draws)
    else:
        eff = {}
    out = {}
    for name in names:
        da = post.posterior[name]
        mode_attr = da.attrs.get("prior_mode", 0.0)
        if name in eff:
            vals = eff[name].astype(np.float64)
        else:
            vals = da.values.reshape(-1, *da.shape[2:]).astype(np.float64)
            if vals.shape[0] > max_draws:
                vals = vals[np.linspace(0, vals.shape[0] - 1, max_draws).round().astype(int)]
        out[name] = _kde_log_rho(vals, mode_attr, grid)
    return out


def _kde_log_rho(vals: np.ndarray, mode_attr, grid: int) -> np.ndarray:
    """The KDE's ``log rho`` per element of draws ``vals`` (``(draws, *shape)``)."""
    from scipy.special import logsumexp

    mode = np.broadcast_to(mode_array(mode_attr, vals.shape[1:]),
                           vals.shape[1:]).reshape(-1)
    flat = vals.reshape(vals.shape[0], -1)
    h = silverman_bandwidth(flat)
    res = np.empty(flat.shape[1])
    chunk = max(1, 2**23 // (grid * flat.shape[0]))
    for i in range(0, flat.shape[1], chunk):
        d, hh, md = flat[:, i: i + chunk], h[i: i + chunk], mode[i: i + chunk]
        lo, hi = d.min(0), d.max(0)
        pts = lo + (hi - lo) * np.linspace(0.0, 1.0, grid)[:, None]          # (G, C)
        log_k = -0.5 * ((pts[:, None, :] - d[None]) / hh) ** 2               # (G, S, C)
        log_max = logsumexp(log_k, axis=1).max(0)
        log_at = logsumexp(-0.5 * ((md - d) / hh) ** 2, axis=0)
        res[i: i + chunk] = log_at - np.maximum(log_max, log_at)
    return res.reshape(vals.shape[1:])


def relative_density(post: InferenceData, level: str = "weight",
                     method: str = "auto", model=None) -> dict[str, np.ndarray]:
    """``rho`` in [0, 1] per weight or per unit (float64; strong weights underflow to 0);
    ``model`` as for :func:`log_relative_density`."""
    return {k: np.exp(v) for k, v in log_relative_density(post, level, method, model).items()}
