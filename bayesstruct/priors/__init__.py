"""Weight and structure priors (METHODS.md M2), by name.

>>> from bayesstruct import priors
>>> priors.get("ard", per="unit")
"""

from __future__ import annotations

from .ard import ARD
from .base import LatentSite, ParamSite, Prior, param_sites
from .gaussian import Gaussian

__all__ = ["ARD", "PRIORS", "Gaussian", "LatentSite", "ParamSite", "Prior", "get", "param_sites"]

PRIORS: dict[str, type[Prior]] = {"gaussian": Gaussian, "ard": ARD}


def get(kind: str, **kwargs) -> Prior:
    """Construct a prior by registry name (``gaussian``, ``ard``)."""
    try:
        cls = PRIORS[kind]
    except KeyError:
        raise ValueError(f"prior kind {kind!r}; allowed: {', '.join(PRIORS)}") from None
    return cls(**kwargs)
