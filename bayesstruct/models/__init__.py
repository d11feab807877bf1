"""``BayesianNet`` and the likelihoods it uses."""

from __future__ import annotations

from . import likelihoods
from .bayesnet import BayesianNet

__all__ = ["BayesianNet", "likelihoods"]
