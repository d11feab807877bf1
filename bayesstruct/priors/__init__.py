"""Weight and structure priors, by name.

Each prior module holds one :class:`Prior` subclass and, beside it, its config model; the class
registers itself in :data:`PRIORS` (``class Gaussian(Prior, config=GaussianConfig)``), and the
``prior:`` section of a catalog entry is validated against the registered configs.

>>> from bayesstruct import priors
>>> priors.get("ard", per="unit")
"""

from __future__ import annotations

# the import order is the registration order, which lists and messages show
# isort: off
from .base import PRIORS, LatentSite, ParamSite, Prior, PriorConfig, param_sites
from .gaussian import Gaussian, GaussianConfig
from .ard import ARD, ARDConfig
from .loguniform import LogUniform, LogUniformConfig
from .horseshoe import Horseshoe, HorseshoeConfig
from .ibp import IBP, IBPConfig
from .sbp import SBP, SBPConfig
# isort: on

__all__ = ["ARD", "IBP", "PRIORS", "ARDConfig", "Gaussian", "GaussianConfig", "Horseshoe",
           "HorseshoeConfig", "IBPConfig", "LatentSite", "LogUniform", "LogUniformConfig",
           "ParamSite", "Prior", "PriorConfig", "SBP", "SBPConfig", "from_config", "get",
           "param_sites"]


def get(kind: str, **kwargs) -> Prior:
    """A prior by registry name (a key of :data:`PRIORS`: ``gaussian``, ``ard``,
    ``log_uniform``, ``horseshoe``, ``ibp``, ``sbp``) and its constructor's arguments."""
    try:
        cls = PRIORS[kind]
    except KeyError:
        raise ValueError(f"prior kind {kind!r}; allowed: {', '.join(PRIORS)}") from None
    return cls(**kwargs)


def from_config(config: PriorConfig) -> Prior:
    """The prior a validated ``prior:`` config section describes."""
    return Prior.from_config(config)
