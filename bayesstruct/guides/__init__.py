"""Interchangeable guides, by name."""

from __future__ import annotations

from .base import Guide, site_key
from .delta import Delta
from .meanfield import LRTLayer, MeanField, lrt_twin

__all__ = ["GUIDES", "Delta", "Guide", "LRTLayer", "MeanField", "get", "lrt_twin",
           "site_key"]

GUIDES: dict[str, type[Guide]] = {"meanfield": MeanField, "delta": Delta}


def get(name: str, model=None, **kwargs) -> Guide:
    """Construct a guide by registry name (``meanfield``, ``delta``)."""
    try:
        cls = GUIDES[name]
    except KeyError:
        raise ValueError(f"guide {name!r}; allowed: {', '.join(GUIDES)}") from None
    return cls(model, **kwargs)
