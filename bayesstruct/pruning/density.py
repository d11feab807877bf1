"""M5: the relative variational density of weights and units.

    rho(w | h) = q_w(mode of p(w | h)) / q_w(mode of q_w)

For a Normal factor ``q = N(m, s^2)`` and a prior with mode ``mu_p`` (0 for the zero-mean
priors) this is ``rho = exp(-(m - mu_p)^2 / (2 s^2))``: a function of the signal-to-noise
ratio ``|m / s|``. ``rho`` near 1 means the posterior puts as much density at the prior's mode
as at its own: the weight is unimportant and is removed first. (Seed 001 says the opposite in
words; METHODS.md M5 follows the formula.)

A unit's (group's) rho is that of the whole group's factor, the product over its weights:
``log rho_g = sum_{i in g} log rho_i`` -- the same definition applied to the vector of the
group's weights, since ``q`` factorises.
"""

from __future__ import annotations

import numpy as np

from ..posterior import InferenceData

__all__ = ["log_relative_density", "normal_weight_factors", "relative_density"]

LEVELS = ("weight", "unit")


def normal_weight_factors(post: InferenceData):
    """Yield ``(site, m, s, prior_mode)`` (float64 arrays) of every weight site whose
    variational factor is Normal; a clear error when the posterior has no factors."""
    if "variational_loc" not in post.groups():
        engine = post.attrs.get("engine", "?")
        guide = post.attrs.get("guide", "")
        raise ValueError(
            f"this posterior (engine {engine} {guide}) has no variational density to evaluate; "
            "rho needs a guide with a density (meanfield). For point estimates use "
            "magnitude scores (pruning.magnitude).")
    for name, loc in post.variational_loc.data_vars.items():
        if loc.attrs.get("family") != "Normal" or "prior_mode" not in loc.attrs:
            continue
        yield (name, loc.values.astype(np.float64),
               post.variational_scale[name].values.astype(np.float64),
               float(loc.attrs["prior_mode"]))


def log_relative_density(post: InferenceData, level: str = "weight") -> dict[str, np.ndarray]:
    """``log rho`` of every weight site (``level="weight"``) or per input unit (``"unit"``).

    Unit level sums over every dimension but dim 1 (the input unit / input channel).
    """
    if level not in LEVELS:
        raise ValueError(f"level={level!r}; allowed: {', '.join(LEVELS)}")
    out = {}
    for name, m, s, mode in normal_weight_factors(post):
        log_rho = -((m - mode) ** 2) / (2.0 * s * s)
        if level == "unit":
            if log_rho.ndim < 2:
                continue
            log_rho = log_rho.sum(axis=tuple(d for d in range(log_rho.ndim) if d != 1))
        out[name] = log_rho
    return out


def relative_density(post: InferenceData, level: str = "weight") -> dict[str, np.ndarray]:
    """``rho`` in [0, 1] per weight or per unit (float64; strong weights underflow to 0)."""
    return {k: np.exp(v) for k, v in log_relative_density(post, level).items()}
