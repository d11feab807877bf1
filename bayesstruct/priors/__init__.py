"""Weight and structure priors (METHODS.md M2), by name.

>>> from bayesstruct import priors
>>> priors.get("ard", per="unit")
"""

from __future__ import annotations

from .ard import ARD
from .base import LatentSite, ParamSite, Prior, param_sites
from .gaussian import Gaussian
from .horseshoe import Horseshoe
from .ibp import IBP
from .loguniform import LogUniform

__all__ = ["ARD", "IBP", "PRIORS", "Gaussian", "Horseshoe", "LatentSite", "LogUniform", "ParamSite",
           "Prior", "get", "param_sites"]

PRIORS: dict[str, type[Prior]] = {"gaussian": Gaussian, "ard": ARD, "log_uniform": LogUniform,
                                  "horseshoe": Horseshoe, "ibp": IBP}


def get(kind: str, **kwargs) -> Prior:
    """A prior by registry name: ``gaussian``, ``ard``, ``log_uniform``, ``horseshoe``, ``ibp``."""
    try:
        cls = PRIORS[kind]
    except KeyError:
        raise ValueError(f"prior kind {kind!r}; allowed: {', '.join(PRIORS)}") from None
    return cls(**kwargs)
