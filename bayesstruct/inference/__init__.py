"""Inference engines. Each takes a :class:`~bayesstruct.models.BayesianNet` and data and
returns an ArviZ ``InferenceData``.

Every engine module declares a recipe model and an entry function and registers them
(:mod:`bayesstruct.inference.registry`); :data:`ENGINES` maps a recipe's ``engine:`` name to
them. Importing this package registers the engines below.
"""

from __future__ import annotations

# the import order is the registration order, which lists and messages show
# isort: off
from .registry import ENGINES, Engine, EngineConfig, FitOptions, get_engine, register_engine
from .svi import NonFiniteLossError, SVIConfig, evaluate, svi
from .mcmc import MCMCConfig, mcmc
from .sgld import PSGLDConfig, SGLDConfig, psgld, sgld
from . import hypergrad
# isort: on

__all__ = ["ENGINES", "Engine", "EngineConfig", "FitOptions", "MCMCConfig", "NonFiniteLossError",
           "PSGLDConfig", "SGLDConfig", "SVIConfig", "evaluate", "get_engine", "hypergrad",
           "mcmc", "psgld", "register_engine", "sgld", "svi"]
