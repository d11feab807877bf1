"""Inference engines (METHODS.md M4). Each returns an ArviZ ``InferenceData``."""

from __future__ import annotations

from . import hypergrad
from .mcmc import mcmc
from .plain import evaluate_net, regularised_loss, train_plain
from .sgld import psgld, sgld
from .svi import NonFiniteLossError, evaluate, svi

__all__ = ["ENGINES", "NonFiniteLossError", "evaluate", "evaluate_net", "hypergrad", "mcmc",
           "psgld",
           "regularised_loss", "sgld", "svi", "train_plain"]

ENGINES = ("svi", "nuts", "hmc", "sgld", "psgld")
