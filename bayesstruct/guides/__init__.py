"""Interchangeable guides, by name."""

from __future__ import annotations

from .base import Guide, site_key
from .delta import Delta
from .lognormal import LogNormal, lognormal_obstacle
from .meanfield import LRTLayer, MeanField, latent_factor, lrt_twin

__all__ = ["GUIDES", "Delta", "Guide", "LRTLayer", "LogNormal", "MeanField", "get",
           "latent_factor", "lognormal_obstacle", "lrt_twin", "site_key"]

GUIDES: dict[str, type[Guide]] = {"meanfield": MeanField, "lognormal": LogNormal, "delta": Delta}


def get(name: str, model=None, **kwargs) -> Guide:
    """Construct a guide by registry name (``meanfield``, ``lognormal``, ``delta``)."""
    try:
        cls = GUIDES[name]
    except KeyError:
        raise ValueError(f"guide {name!r}; allowed: {', '.join(GUIDES)}") from None
    return cls(model, **kwargs)
